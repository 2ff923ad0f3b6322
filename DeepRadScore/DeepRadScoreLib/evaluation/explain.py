"""What the fused model looks at: Pearson correlation of the fused features and SHAP values.

SHAP values are estimated here by permutation sampling (Strumbelj & Kononenko 2014, the method
of the ``shap`` library's Permutation explainer) with an independent (interventional) masker:
for a case x and an ordering of the features, the features are switched from a background row
to x's value one by one, and each feature's value is the mean change of the positive-class
probability its switch causes, averaged over the background rows and over ``permutations``
antithetic pairs of orderings (an ordering and its reverse). The values add up exactly to
f(x) minus the background's mean prediction, and are exact for an additive model.

Why not the ``shap`` package, which this module used until 2026-12: it calls the model once per
case and ordering and compiles its numba maskers in every new process (10 of the 34 s of the
demo's ``evaluate``), while here one ``predict_proba`` call takes every masked row of an
endpoint at once (48 cases x 10 orderings x 13 steps x 10 background rows = 62,400 rows). It also
installs a PyPI package named ``slicer``, the name of 3D Slicer's own module.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd


def fused_correlation(fused: pd.DataFrame) -> pd.DataFrame:
    """Pearson correlation between every pair of fused features (deep features + RadScores)."""
    return fused.astype(float).corr(method="pearson")


def mean_abs_cross_correlation(corr: pd.DataFrame, radscore_columns=("radscore_tumor", "radscore_peritumoral")) -> float:
    """Mean |r| between the RadScores and the deep features: the paper's "average absolute
    correlation between the two sets of model features" (low = complementary information)."""
    rad = [c for c in corr.columns if c in radscore_columns]
    deep = [c for c in corr.columns if c not in radscore_columns]
    if not rad or not deep:
        return float("nan")
    return float(np.nanmean(np.abs(corr.loc[rad, deep].to_numpy(dtype=float))))


def shap_values(predict_proba: Callable[[np.ndarray], np.ndarray], X: np.ndarray,
                feature_names, max_cases: int = 60, background_size: int = 10,
                seed: int = 0, permutations: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """SHAP values of the positive-class probability for (up to ``max_cases``) rows of ``X``.

    :param predict_proba: ``(m, F)`` -> ``(m,)`` positive-class probabilities.
    :param X: the cases ``(n, F)``; the background is a k-means summary of all of them
        (``background_size`` centres), or ``X`` itself when it has no more rows than that.
    :param feature_names: the F column names (kept for the caller's figure; checked for length).
    :param permutations: antithetic pairs of feature orderings per case (2 x this orderings).
    :returns: ``(values (n, F), explained rows (n, F))``. The explained rows are a seeded random
        subset when ``X`` has more than ``max_cases`` rows.
    """
    X = np.asarray(X, dtype=float)
    n_features = X.shape[1]
    if len(feature_names) != n_features:
        raise ValueError(f"{len(feature_names)} feature names for {n_features} columns")
    rng = np.random.default_rng(seed)
    rows = X if len(X) <= max_cases else X[np.sort(rng.choice(len(X), max_cases, replace=False))]
    background = _background(X, background_size, seed)
    orders = []
    for _ in range(len(rows) * permutations):
        order = rng.permutation(n_features)
        orders += [order, order[::-1]]
    orders = np.asarray(orders).reshape(len(rows), 2 * permutations, n_features)
    # switched[c, p, s, f]: feature f already takes case c's value at step s of ordering p.
    rank = np.argsort(orders, axis=-1)
    steps = np.arange(n_features + 1)
    switched = rank[:, :, None, :] < steps[None, None, :, None]
    masked = np.where(switched[..., None, :], rows[:, None, None, None, :], background[None, None, None])
    predictions = np.asarray(predict_proba(masked.reshape(-1, n_features)), dtype=float)
    mean = predictions.reshape(switched.shape[:3] + (len(background),)).mean(axis=-1)  # (c, p, s)
    gains = np.diff(mean, axis=-1)  # gains[c, p, s]: the step that switched orders[c, p, s]
    per_order = np.zeros_like(orders, dtype=float)
    np.put_along_axis(per_order, orders, gains, axis=-1)
    return per_order.mean(axis=1), rows


def _background(X: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` k-means centres of ``X`` (all of ``X`` when it is no larger): the rows a feature
    takes when it is "absent"."""
    if len(X) <= size:
        return X
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=size, n_init=3, random_state=seed).fit(X).cluster_centers_
