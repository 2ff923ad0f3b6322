"""The classifiers and RadScores of a bundle, fitted on cases whose Deep-CT is already trained.

For each endpoint, cases with a blank label are left out of that endpoint only. An endpoint with
fewer than :func:`min_per_class` positives or negatives cannot be cross-validated: it is skipped
with a message and recorded as skipped in the bundle, never turned into a useless model
(:func:`plan_endpoints`, before the Deep-CT is trained on the others).

:func:`fit_models`, per endpoint: the repeated-CV classifier choice with its nested-CV estimate
(:func:`classifiers.select_classifier`) on the cross-fitted deep features (every training case's
from a network that never saw it), then the final fits on all training cases: the RadScorePair,
and each model's chosen classifier on the RadScores / the deep features / both. The Deep-CT
training and reading the cohort are :mod:`DeepRadScoreLib.pipelines.train`'s.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.settings import ExtractionSettings
from DeepRadScoreLib.model.bundle import FORMAT_VERSION, Bundle, package_versions
from DeepRadScoreLib.model.classifiers import (MIN_PER_CLASS, N_SPLITS, ModelSelection, fit_classifier,
                                               model_inputs, select_classifier)
from DeepRadScoreLib.model.inference_export import export_classifier
from DeepRadScoreLib.model.meta import BundleMeta
from DeepRadScoreLib.model.radscore import RadScorePair
from DeepRadScoreLib.progress import report, scaled
from DeepRadScoreLib.typedjson import from_json, to_json


def min_per_class(deep_folds: int) -> int:
    """Fewest positives (and negatives) an endpoint needs: one per CV fold, at least 5, and one
    per cross-fitted Deep-CT network."""
    return max(MIN_PER_CLASS, N_SPLITS, deep_folds)


@dataclass
class EndpointPlan:
    """Which endpoints can be trained: ``usable``, ``skipped`` (with why), the label ``counts``
    of each and the fewest of each class ``need``-ed."""

    usable: list[str]
    skipped: dict[str, str]
    counts: dict[str, dict[str, int]]
    need: int


def plan_endpoints(labels: pd.DataFrame, deep_folds: int, where: str = "training data",
                   progress=None, cancel=None) -> EndpointPlan:
    """The endpoints of ``labels`` (one 1/0/NaN column each) with enough cases of both classes.

    :raises InputError: ``<where>: ...`` when none has.
    """
    need = min_per_class(deep_folds)
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
    return EndpointPlan(usable, skipped, counts, need)


def check_fit_arguments(cv_repeats: int, nested_repeats: int) -> None:
    """:raises InputError: a repeat count below one, naming its option."""
    if cv_repeats < 1:
        raise InputError(f"--cv-repeats must be at least 1, got {cv_repeats}")
    if nested_repeats < 1:
        raise InputError(f"--nested-repeats must be at least 1, got {nested_repeats}")


def fit_models(features: pd.DataFrame, labels: pd.DataFrame, deep, plan: EndpointPlan,
               settings: ExtractionSettings, cv_repeats: int = 10, seed: int = 0, workers: int = 1,
               nested_repeats: int = 1, data: dict | None = None, seconds: dict | None = None,
               progress=None, cancel=None) -> Bundle:
    """The bundle (not yet saved) of a trained Deep-CT ``deep`` and the classifiers fitted here.

    :param features: index case_id, the 1702 radiomics columns.
    :param labels: index case_id (the same order), one column per endpoint, 1 / 0 / NaN.
    :param deep: the cross-fitted ``DeepEnsemble`` of ``plan.usable`` on these cases.
    :param settings: how ``features`` were extracted (recorded in bundle.json).
    :param cv_repeats: repeats of the 5-fold CV choosing each model's classifier.
    :param nested_repeats: outer repeats of the nested-CV estimate (10 fold fits each).
    :param data: data provenance for bundle.json (manifest, case ids, synthetic, ...).
    :param seconds: ``{"started": perf_counter at the start, "deep": the Deep-CT's seconds}``.
    :param progress: fills 0..1 over the endpoints.
    """
    if list(labels.index) != list(features.index):
        raise ValueError("labels and features must list the same cases in the same order")
    seconds = seconds or {}
    started = seconds.get("started", time.perf_counter())
    feature_names = [str(c) for c in features.columns]
    matrix = features.to_numpy(dtype=float)
    usable, skipped, counts, need = plan.usable, plan.skipped, plan.counts, plan.need
    models, classifiers, radscores, cv_seconds, inference = {}, {}, {}, {}, {}
    for i, endpoint in enumerate(usable):
        lo, hi = i / len(usable), (i + 1) / len(usable)
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
                     "seconds_deep": round(seconds.get("deep", 0.0), 3), "seconds_classifiers": cv_seconds,
                     "workers": workers},
        "data": data or {},
    }
    report(progress, 1.0, "training done", cancel)
    return Bundle(from_json(BundleMeta, _plain(to_json(meta))), radscores, classifiers, deep,
                  inference={key: doc for key, doc in inference.items() if doc})


def _model_info(selection: ModelSelection) -> dict:
    return {"chosen": selection.chosen, "threshold": selection.threshold, "cv_auc": selection.cv_auc,
            "nested_cv_auc": selection.nested_cv_auc}


def _plain(value):
    return json.loads(json.dumps(value))
