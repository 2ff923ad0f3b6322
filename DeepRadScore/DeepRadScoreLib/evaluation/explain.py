"""What the fused model looks at: Pearson correlation of the fused features and SHAP values.

SHAP is computed with the ``shap`` library's model-agnostic permutation explainer on the fitted
combined classifier (``Bundle.fusion_head``), with an independent masker whose background is a
small k-means summary of the explained cases. Permutation SHAP is exact for additive models and
needs only ``2 * n_features + 1`` model calls per case and permutation, which keeps ten endpoints
x a test set within seconds on a CPU (KernelExplainer needs thousands of calls per case).
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
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """SHAP values of the positive-class probability for (up to ``max_cases``) rows of ``X``.

    Returns ``(values (n, F), explained rows (n, F))``. The explained rows are a seeded random
    subset when ``X`` is larger than ``max_cases``.
    """
    import shap

    X = np.asarray(X, dtype=float)
    rng = np.random.default_rng(seed)
    rows = X if len(X) <= max_cases else X[np.sort(rng.choice(len(X), max_cases, replace=False))]
    k = min(background_size, len(X))
    background = shap.kmeans(X, k).data if len(X) > k else X
    masker = shap.maskers.Independent(background, max_samples=len(background))
    explainer = shap.explainers.Permutation(lambda a: np.asarray(predict_proba(a), dtype=float),
                                            masker, feature_names=list(feature_names), seed=seed)
    explanation = explainer(rows, max_evals=2 * X.shape[1] + 1, silent=True)
    return np.asarray(explanation.values, dtype=float), rows
