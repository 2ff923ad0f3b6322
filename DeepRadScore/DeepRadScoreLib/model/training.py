"""``deepradscore train``: per endpoint RadScores, Deep-CT, the three models and their thresholds.

Training uses the manifest rows with ``split=train`` (every row when there is no split column).
For each endpoint, cases with a blank label are left out of that endpoint only. An endpoint with
fewer than :func:`min_per_class` positives or negatives cannot be cross-validated: it is skipped
with a message and recorded as skipped in the bundle, never turned into a useless model.

Order of work: Deep-CT first (one call for all usable endpoints, cross-fitted, so every training
case gets deep features from a network that never saw it), then per endpoint the repeated-CV
classifier choice with its nested-CV estimate (:func:`classifiers.select_classifier`), then the
final fits on all training cases: the RadScorePair, and each model's chosen classifier on the
RadScores / the cross-fitted deep features / both.

The feature table must come with its extraction settings (``<stem>.settings.json``, written by
``extract``): they go into bundle.json, so that prediction extracts every new case the same way.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.extraction import read_feature_table
from DeepRadScoreLib.features.settings import ExtractionSettings, read_settings
from DeepRadScoreLib.io.manifest import SYNTHETIC_MARKER
from DeepRadScoreLib.model.bundle import FORMAT_VERSION, Bundle, package_versions
from DeepRadScoreLib.model.classifiers import (MIN_PER_CLASS, N_SPLITS, ModelSelection, fit_classifier,
                                               model_inputs, select_classifier)
from DeepRadScoreLib.model.inference_export import export_classifier
from DeepRadScoreLib.model.meta import BundleMeta
from DeepRadScoreLib.model.radscore import RadScorePair
from DeepRadScoreLib.progress import report, scaled
from DeepRadScoreLib.typedjson import from_json, to_json

logger = logging.getLogger(__name__)

__all__ = ["fit_bundle", "train_bundle", "min_per_class", "read_feature_table"]


def min_per_class(deep_folds: int) -> int:
    """Fewest positives (and negatives) an endpoint needs: one per CV fold, at least 5, and one
    per cross-fitted Deep-CT network."""
    return max(MIN_PER_CLASS, N_SPLITS, deep_folds)


def fit_bundle(features: pd.DataFrame, patches_hu: np.ndarray, labels: pd.DataFrame, deep_config,
               cv_repeats: int = 10, seed: int = 0, workers: int = 1, data: dict | None = None,
               progress=None, cancel=None, settings: ExtractionSettings | None = None,
               nested_repeats: int = 1, where: str = "training data") -> Bundle:
    """Train a bundle (not yet saved) on these cases.

    :param features: index case_id, the 1702 radiomics columns.
    :param patches_hu: ``(N, 160, 160)`` deep-ROI patches in the same order.
    :param labels: index case_id, one column per endpoint, 1 / 0 / NaN (unknown).
    :param deep_config: a checked ``DeepConfig``.
    :param cv_repeats: repeats of the 5-fold CV choosing each model's classifier.
    :param nested_repeats: outer repeats of the nested-CV estimate (10 fold fits each).
    :param settings: how ``features`` were extracted; ``None``: the default extraction (3 mm ring,
        the bundled parameters, this pyradiomics).
    :param data: data provenance for bundle.json (manifest, case ids, synthetic, ...).
    :param where: what to name in the error when no endpoint can be trained (the manifest).
    :returns: the :class:`Bundle`.
    """
    from DeepRadScoreLib.deep.training import train_deep

    started = time.perf_counter()
    if cv_repeats < 1:
        raise InputError(f"--cv-repeats must be at least 1, got {cv_repeats}")
    if nested_repeats < 1:
        raise InputError(f"--nested-repeats must be at least 1, got {nested_repeats}")
    if list(labels.index) != list(features.index):
        raise ValueError("labels and features must list the same cases in the same order")
    settings = settings or ExtractionSettings.current()
    patches_hu = np.asarray(patches_hu, dtype=np.float32)
    feature_names = [str(c) for c in features.columns]
    matrix = features.to_numpy(dtype=float)

    need = min_per_class(deep_config.folds)
    usable, skipped, counts = [], {}, {}
    for endpoint in labels.columns:
        y = labels[endpoint].to_numpy(dtype=float)
        n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
        counts[endpoint] = {"n": n_pos + n_neg, "n_pos": n_pos, "n_neg": n_neg}
        if min(n_pos, n_neg) < need:
            skipped[endpoint] = (f"{n_pos} positive and {n_neg} negative labelled training cases; "
                                 f"cross-validation needs at least {need} of each")
            report(progress, 0.0, f"skipping {endpoint}: {skipped[endpoint]}", cancel)
        else:
            usable.append(endpoint)
    if not usable:
        raise InputError(f"{where}: no endpoint has enough labelled training cases to train: " +
                         "; ".join(f"{e}: {why}" for e, why in skipped.items()))

    report(progress, 0.01, f"Deep-CT on {len(features)} cases, endpoints {', '.join(usable)}", cancel)
    deep_started = time.perf_counter()
    deep = train_deep(patches_hu, {e: labels[e].to_numpy(dtype=float) for e in usable}, deep_config,
                      progress=scaled(progress, 0.01, 0.6), cancel=cancel)
    deep_seconds = time.perf_counter() - deep_started

    models, classifiers, radscores, cv_seconds, inference = {}, {}, {}, {}, {}
    for i, endpoint in enumerate(usable):
        lo, hi = 0.6 + 0.4 * i / len(usable), 0.6 + 0.4 * (i + 1) / len(usable)
        report(progress, lo, f"{endpoint}: choosing classifiers ({cv_repeats} x {N_SPLITS}-fold CV "
                             f"+ nested estimate)", cancel)
        t0 = time.perf_counter()
        y_all = labels[endpoint].to_numpy(dtype=float)
        rows = np.flatnonzero(~np.isnan(y_all))
        y = y_all[rows].astype(int)
        deep_oof = np.asarray(deep.oof_features[endpoint], dtype=float)[rows]
        selections = select_classifier(matrix[rows], feature_names, y, deep_oof, repeats=cv_repeats,
                                       seed=seed, n_jobs=workers, nested_repeats=nested_repeats,
                                       progress=scaled(progress, lo, lo + 0.9 * (hi - lo)), cancel=cancel)
        pair = RadScorePair(random_state=seed).fit(matrix[rows], y, feature_names)
        inputs = model_inputs(pair.transform(matrix[rows], feature_names), deep_oof)
        radscores[endpoint] = pair
        for model, selection in selections.items():
            classifiers[(endpoint, model)] = fit_classifier(selection.chosen, inputs[model], y, seed)
            # Checked on the inputs it was fitted on; None: the bundle uses its skops file.
            inference[(endpoint, model)] = export_classifier(classifiers[(endpoint, model)], inputs[model],
                                                             name=f"{endpoint} {model}", seed=seed)
        cv_seconds[endpoint] = round(time.perf_counter() - t0, 3)
        models[endpoint] = {
            **counts[endpoint],
            "radscore": pair.coefficients(),
            "models": {m: _model_info(s) for m, s in selections.items()},
        }
        chosen = ", ".join(f"{m} {s.chosen} (CV AUC {s.cv_auc[s.chosen]['mean']:.3f}, nested "
                           f"{s.nested_cv_auc['mean']:.3f})" for m, s in selections.items())
        report(progress, hi, f"{endpoint}: {chosen}", cancel)

    meta = {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "software": package_versions(),
        "endpoints": usable,
        "skipped_endpoints": skipped,
        "label_counts": counts,
        "parameters": {
            "cv_folds": N_SPLITS, "cv_repeats": cv_repeats, "seed": seed,
            "min_per_class": need,
            "nested_cv": {"outer_folds": N_SPLITS, "outer_repeats": min(nested_repeats, cv_repeats),
                          "inner_folds": N_SPLITS - 1,
                          "rule": "outer folds = the first CV repeats' folds; on each outer fold's "
                                  "training part an inner CV over its other 4 folds chooses the "
                                  "candidate, scored on the outer fold"},
            "radscore": {k: (list(v) if isinstance(v, tuple) else v)
                         for k, v in RadScorePair().get_params().items() if k != "random_state"},
            "threshold_rule": "Youden's J on the chosen classifier's out-of-fold probabilities "
                              "(first CV repeat, training cases)",
            "deep": _plain(deep.to_json()["config"]),
        },
        "settings": settings,
        "feature_names": feature_names,
        "models": models,
        "deep": deep.to_json(),
        "training": {"n_cases": len(features), "seconds_total": round(time.perf_counter() - started, 3),
                     "seconds_deep": round(deep_seconds, 3), "seconds_classifiers": cv_seconds,
                     "workers": workers},
        "data": data or {},
    }
    report(progress, 1.0, "training done", cancel)
    return Bundle(from_json(BundleMeta, _plain(to_json(meta))), radscores, classifiers, deep,
                  inference={key: doc for key, doc in inference.items() if doc})


def _model_info(selection: ModelSelection) -> dict:
    return {"chosen": selection.chosen, "threshold": selection.threshold, "cv_auc": selection.cv_auc,
            "nested_cv_auc": selection.nested_cv_auc}


def train_bundle(manifest, output_dir, endpoints=None, deep_config=None, features_csv=None,
                 cv_repeats: int = 10, seed: int = 0, workers: int = 1, nested_repeats: int = 1,
                 thickness_mm: float | None = None, params_path=None, progress=None,
                 cancel=None, radiomics_backend: str | None = None,
                 robustness_csv=None, min_icc: float | None = None) -> Bundle:
    """Read the cohort, get its features, train on the training rows and write the bundle
    directory atomically.

    :param manifest: the cohort CSV (``split=train`` rows are used; all rows without a split).
    :param output_dir: the bundle directory to create.
    :param endpoints: endpoint columns (default: the known endpoints present).
    :param deep_config: a ``DeepConfig`` (default: its defaults with ``seed``).
    :param features_csv: a table from ``deepradscore extract`` (with its settings sidecar); else
        the features are extracted into ``<output_dir>.features.csv`` first, with ``thickness_mm``
        (default 3 mm) and ``params_path`` (default: the bundled parameters).
    :param cv_repeats: repeats of the 5-fold CV choosing the classifiers.
    :param nested_repeats: outer repeats of the nested-CV estimate.
    :param radiomics_backend: the radiomics backend when extracting here (``auto``/``None``,
        ``pyradiomics``, ``native``); the bundle records which one made its features.
    :param robustness_csv: / ``min_icc``: an ICC table from ``deepradscore robustness``; the
        features below ``min_icc`` (default 0.75) are dropped before any selection, and the bundle
        records the bound and the table's sha256.
    :returns: the saved :class:`Bundle`.
    :raises InputError: bad input, named by file (a table without or with inconsistent settings,
        a manifest without trainable endpoints, ...).
    """
    from DeepRadScoreLib.deep.ensemble import DeepConfig
    from DeepRadScoreLib.io.manifest import read_manifest

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
    # --- hook: the robustness filter, its table read and checked before any work ---
    from DeepRadScoreLib.robustness.icc import RobustnessFilter
    robust = RobustnessFilter.from_options(robustness_csv, min_icc)
    # --- end hook ---

    if features_csv is None:
        from DeepRadScoreLib.features.extraction import extract_cohort

        features_csv = output_dir.parent / f"{output_dir.name}.features.csv"
        report(progress, 0.0, f"extracting features into {features_csv}", cancel)
        extract_cohort(cohort.subset(train["case_id"]), features_csv, workers=workers,
                       thickness_mm=3.0 if thickness_mm is None else thickness_mm,
                       params_path=params_path, progress=scaled(progress, 0.0, 0.4), cancel=cancel,
                       backend=radiomics_backend)
        progress = scaled(progress, 0.4, 1.0)
    settings = read_settings(features_csv)
    if thickness_mm is not None or params_path is not None:
        from DeepRadScoreLib.features.settings import check_settings

        check_settings(settings, str(features_csv), thickness_mm, params_path)
    features, patches = read_feature_table(features_csv, list(train["case_id"]))
    features = robust.apply(features) if robust is not None else features  # hook: robustness filter
    labels = pd.DataFrame({e: cohort.labels(e, "train").to_numpy(dtype=float) for e in cohort.endpoints},
                          index=features.index)
    synthetic_file = manifest_path.parent / SYNTHETIC_MARKER
    data = {
        "manifest": str(manifest_path.resolve()),
        "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
        "features": str(Path(features_csv).resolve()),
        "n_training_cases": len(features),
        "training_case_ids": list(features.index),
        "synthetic": synthetic_file.exists(),
    }
    if robust is not None:  # hook: the bound and the table's hash go into bundle.json's data
        data["robustness"] = robust.record()
    if synthetic_file.exists():
        data["synthetic_description"] = json.loads(synthetic_file.read_text())
    bundle = fit_bundle(features, patches, labels, deep_config, cv_repeats=cv_repeats, seed=seed,
                        workers=workers, data=data, progress=progress, cancel=cancel,
                        settings=settings, nested_repeats=nested_repeats, where=str(manifest_path))
    bundle.save(output_dir)
    return bundle


def _plain(value):
    return json.loads(json.dumps(value))
