"""The one path from radiomics features + deep-ROI patches to the three models' scores.

Both one case (``analysis.analyse_case``) and a cohort (``evaluation``) go through
:func:`score_cases`, so a prediction never depends on who asked for it. The deep features come
from each of the K cross-fitted networks; the deep and fusion classifiers are applied to each
network's features and the K probabilities averaged (the classifiers were fitted on cross-fitted
features, i.e. on features of exactly such held-out networks).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from DeepRadScoreLib.errors import InputError
# scikit-learn-free: a loaded bundle's RadScores and classifiers are numpy (model.inference).
from DeepRadScoreLib.model.inference import InferenceClassifier, positive_probability
from DeepRadScoreLib.model.meta import RADSCORE_COLUMNS


@dataclass
class CohortScores:
    """``scores``: long table case_id, endpoint, model, score; ``fused``: per endpoint the
    classifier inputs (two RadScores, deep features averaged over the K networks)."""

    scores: pd.DataFrame
    fused: dict[str, pd.DataFrame]

    def score(self, case_id, endpoint: str, model: str) -> float:
        rows = self.scores[(self.scores.case_id == case_id) & (self.scores.endpoint == endpoint)
                           & (self.scores.model == model)]
        return float(rows.score.iloc[0])


def score_cases(bundle, features: pd.DataFrame, patches_hu: np.ndarray,
                endpoints: list[str] | None = None, deep_features: dict | None = None) -> CohortScores:
    """Score every case for each endpoint and model.

    :param bundle: a loaded :class:`~DeepRadScoreLib.model.bundle.Bundle`.
    :param features: one row per case (index = case_id) holding at least the bundle's feature
        columns (extracted with the bundle's settings).
    :param patches_hu: ``(N, 160, 160)`` deep-ROI patches in the same order.
    :param endpoints: the endpoints to score (default: all of the bundle's).
    :param deep_features: ``bundle.deep.features(patches_hu)`` if the caller already has it (one
        case computes it while its radiomics run); ``None``: computed here.
    :returns: a :class:`CohortScores` (long score table + the fused classifier inputs).
    :raises InputError: an unknown endpoint, missing columns or patches of the wrong shape.
    """
    endpoints = list(endpoints) if endpoints else bundle.endpoints
    for endpoint in endpoints:
        bundle.check_endpoint(endpoint)
    patches_hu = np.asarray(patches_hu, dtype=np.float32)
    if patches_hu.ndim != 3 or patches_hu.shape[0] != len(features):
        raise InputError(f"patches: expected ({len(features)}, 160, 160), got {patches_hu.shape}")
    names = bundle.feature_names
    missing = [n for n in names if n not in features.columns]
    if missing:
        raise InputError(f"features: {len(missing)} of the bundle's feature columns are missing "
                         f"(e.g. {missing[0]}); extract them with the same parameter file")
    matrix = features[names].to_numpy(dtype=float)
    case_ids = list(features.index)
    # {endpoint: (K, N, k)}, one batched pass per network
    deep = bundle.deep.features(patches_hu) if deep_features is None else deep_features

    if all(isinstance(bundle.classifiers[(e, m)], InferenceClassifier) for e in endpoints
           for m in ("radiomics", "deep", "fusion")):
        return _score(bundle, matrix, names, case_ids, features.index, deep, endpoints)
    # One BLAS/OpenMP thread for scikit-learn classifiers: small models on 2-12 inputs, and the
    # thread pools they would start (KNN's distance code above all) cost more than they save:
    # scoring one case took 0.85 s with the default pools and 0.28 s with one thread, on 2 busy
    # cores. (The numpy forms start no OpenMP pool and call BLAS on tiny matrices only.)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _score(bundle, matrix, names, case_ids, features.index, deep, endpoints)


def _score(bundle, matrix, names, case_ids, index, deep, endpoints) -> CohortScores:
    rows, fused = [], {}
    for endpoint in endpoints:
        radscores = bundle.radscores[endpoint].transform(matrix, names)
        per_network = np.asarray(deep[endpoint], dtype=float)
        n_networks, _, k = per_network.shape
        # The K networks' rows go through each classifier in one call (K calls cost K times the
        # per-call overhead of a scikit-learn pipeline: most of scoring's time for one case).
        n_cases = per_network.shape[1]
        stacked = per_network.reshape(n_networks * n_cases, k)
        fused_inputs = np.hstack([stacked, np.tile(radscores, (n_networks, 1))])
        scores = {
            "radiomics": positive_probability(bundle.classifiers[(endpoint, "radiomics")], radscores),
            "deep": positive_probability(bundle.classifiers[(endpoint, "deep")], stacked)
            .reshape(n_networks, n_cases).mean(axis=0),
            "fusion": positive_probability(bundle.classifiers[(endpoint, "fusion")], fused_inputs)
            .reshape(n_networks, n_cases).mean(axis=0),
        }
        for model, values in scores.items():
            rows.append(pd.DataFrame({"case_id": case_ids, "endpoint": endpoint, "model": model,
                                      "score": values}))
        table = pd.DataFrame(radscores, columns=list(RADSCORE_COLUMNS), index=index)
        mean_deep = per_network.mean(axis=0)
        for i in range(k):
            table[f"deep_{i + 1}"] = mean_deep[:, i]
        fused[endpoint] = table
    scores = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["case_id", "endpoint", "model", "score"])
    return CohortScores(scores=scores, fused=fused)
