"""``deepradscore train``: per endpoint RadScores, Deep-CT, the three models and their thresholds.

Training uses the manifest rows with ``split=train`` (every row when there is no split column).
Order of work: the cohort's features (:func:`~DeepRadScoreLib.pipelines.cohort.cohort_features`:
a given table with its settings sidecar, else extracted here), the trainable endpoints
(:func:`model.fitting.plan_endpoints`), the Deep-CT (one call for all of them, cross-fitted, so
every training case gets deep features from a network that never saw it), then the classifiers
and RadScores (:func:`model.fitting.fit_models`). The features' extraction settings go into
bundle.json, so that prediction extracts every new case the same way.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.settings import ExtractionSettings, SettingsRequest
from DeepRadScoreLib.io.manifest import SYNTHETIC_MARKER
from DeepRadScoreLib.model.bundle import Bundle
from DeepRadScoreLib.model.fitting import check_fit_arguments, fit_models, plan_endpoints
from DeepRadScoreLib.progress import report, scaled


def fit_bundle(features: pd.DataFrame, patches_hu: np.ndarray, labels: pd.DataFrame, deep_config,
               cv_repeats: int = 10, seed: int = 0, workers: int = 1, data: dict | None = None,
               progress=None, cancel=None, settings: ExtractionSettings | None = None,
               nested_repeats: int = 1, where: str = "training data") -> Bundle:
    """Train a bundle (not yet saved) on these cases: the Deep-CT, then the classifiers.

    :param features: index case_id, the 1702 radiomics columns.
    :param patches_hu: ``(N, 160, 160)`` deep-ROI patches in the same order.
    :param labels: index case_id, one column per endpoint, 1 / 0 / NaN (unknown).
    :param deep_config: a checked ``DeepConfig``.
    :param settings: how ``features`` were extracted; ``None``: the default extraction here.
    :param where: what to name in the error when no endpoint can be trained (the manifest).
    :returns: the :class:`Bundle` (see :func:`model.fitting.fit_models` for the other arguments).
    """
    from DeepRadScoreLib.deep.training import train_deep

    started = time.perf_counter()
    check_fit_arguments(cv_repeats, nested_repeats)
    if list(labels.index) != list(features.index):
        raise ValueError("labels and features must list the same cases in the same order")
    settings = settings or ExtractionSettings.current()
    plan = plan_endpoints(labels, deep_config.folds, where, progress, cancel)
    report(progress, 0.01, f"Deep-CT on {len(features)} cases, endpoints {', '.join(plan.usable)}", cancel)
    deep_started = time.perf_counter()
    deep = train_deep(np.asarray(patches_hu, dtype=np.float32),
                      {e: labels[e].to_numpy(dtype=float) for e in plan.usable}, deep_config,
                      progress=scaled(progress, 0.01, 0.6), cancel=cancel)
    seconds = {"started": started, "deep": time.perf_counter() - deep_started}
    return fit_models(features, labels, deep, plan, settings, cv_repeats=cv_repeats, seed=seed,
                      workers=workers, nested_repeats=nested_repeats, data=data, seconds=seconds,
                      progress=scaled(progress, 0.6, 1.0), cancel=cancel)


def train_bundle(manifest, output_dir, endpoints=None, deep_config=None, features_csv=None,
                 cv_repeats: int = 10, seed: int = 0, workers: int = 1, nested_repeats: int = 1,
                 settings: SettingsRequest | None = None, progress=None, cancel=None,
                 robustness_csv=None, min_icc: float | None = None) -> Bundle:
    """Read the cohort, get its features, train on the training rows and write the bundle
    directory atomically.

    :param manifest: the cohort CSV (``split=train`` rows are used; all rows without a split).
    :param output_dir: the bundle directory to create.
    :param endpoints: endpoint columns (default: the known endpoints present).
    :param deep_config: a ``DeepConfig`` (default: its defaults with ``seed``).
    :param features_csv: a table from ``deepradscore extract`` (with its settings sidecar); else
        the features are extracted into ``<output_dir>.features.csv`` first.
    :param settings: what the user asked for (ring thickness, parameter file, backend): the
        extraction's here, and with ``features_csv`` what its recorded settings must agree with.
    :param cv_repeats: repeats of the 5-fold CV choosing the classifiers.
    :param nested_repeats: outer repeats of the nested-CV estimate.
    :param robustness_csv: / ``min_icc``: an ICC table from ``deepradscore robustness``; the
        features below ``min_icc`` (default 0.75) are dropped before any selection, and the bundle
        records the bound and the table's sha256.
    :returns: the saved :class:`Bundle`.
    :raises InputError: bad input, named by file (a table without or with inconsistent settings,
        a manifest without trainable endpoints, ...).
    """
    from DeepRadScoreLib.deep.ensemble import DeepConfig
    from DeepRadScoreLib.io.manifest import read_manifest
    from DeepRadScoreLib.pipelines.cohort import cohort_features
    from DeepRadScoreLib.robustness.icc import RobustnessFilter

    manifest_path = Path(manifest)
    output_dir = Path(output_dir)
    deep_config = (deep_config or DeepConfig(seed=seed)).check()
    # With a feature table the images are not read again, so they need not be present.
    cohort = read_manifest(manifest_path, endpoints, check_files=features_csv is None)
    train = cohort.rows("train")
    if train.empty:
        raise InputError(f"{manifest_path}: no row has split=train")
    if not cohort.endpoints:
        raise InputError(f"{manifest_path}: no endpoint column (e.g. LVI, EGFR, or name one with --endpoints)")
    # The robustness table is read and checked before any work.
    robust = RobustnessFilter.from_options(robustness_csv, min_icc)

    extracting = features_csv is None
    got = cohort_features(cohort, list(train["case_id"]), features_csv,
                          extract_to=output_dir.parent / f"{output_dir.name}.features.csv",
                          request=settings, workers=workers,
                          progress=scaled(progress, 0.0, 0.4), cancel=cancel)
    if extracting:
        progress = scaled(progress, 0.4, 1.0)
    features = robust.apply(got.features) if robust is not None else got.features
    labels = pd.DataFrame({e: cohort.labels(e, "train").to_numpy(dtype=float) for e in cohort.endpoints},
                          index=features.index)
    synthetic_file = manifest_path.parent / SYNTHETIC_MARKER
    data = {
        "manifest": str(manifest_path.resolve()),
        "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
        "features": str(got.features_csv.resolve()),
        "n_training_cases": len(features),
        "training_case_ids": list(features.index),
        "synthetic": synthetic_file.exists(),
    }
    if robust is not None:
        data["robustness"] = robust.record()
    if synthetic_file.exists():
        data["synthetic_description"] = json.loads(synthetic_file.read_text())
    bundle = fit_bundle(features, got.patches, labels, deep_config, cv_repeats=cv_repeats, seed=seed,
                        workers=workers, data=data, progress=progress, cancel=cancel,
                        settings=got.settings, nested_repeats=nested_repeats, where=str(manifest_path))
    bundle.save(output_dir)
    return bundle
