"""Classification metrics at a fixed threshold, with stratified bootstrap confidence intervals.

A case is called positive when ``score >= threshold``; the threshold comes from the training data
(the bundle), never from the cases being evaluated.

Undefined ratios are NaN, never 0 or 1: precision/PPV with no predicted positives, recall/
sensitivity with no actual positives, specificity with no actual negatives, NPV with no predicted
negatives, F1 when precision or recall is undefined or both are 0. A table that shows "nan"
says "not estimable on these cases", which is the truth.

Bootstrap CIs (percentile method) resample positives and negatives separately (stratified, like
pROC's default), so every replicate keeps the observed prevalence; a replicate in which a metric
is undefined is left out of that metric's interval.
"""
from __future__ import annotations

import numpy as np


METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "sensitivity", "specificity", "ppv", "npv")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _from_counts(tp, fp, tn, fn) -> dict[str, np.ndarray]:
    """Metrics from confusion counts (arrays of any shape, broadcast together)."""
    tp, fp, tn, fn = (np.asarray(a, dtype=float) for a in (tp, fp, tn, fn))
    sensitivity = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    ppv = _ratio(tp, tp + fp)
    npv = _ratio(tn, tn + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    # F1 is the harmonic mean of precision and recall: undefined when either is.
    f1 = np.where(np.isnan(ppv) | np.isnan(sensitivity), np.nan, f1)
    return {"accuracy": _ratio(tp + tn, tp + fp + tn + fn), "precision": ppv, "recall": sensitivity,
            "f1": f1, "sensitivity": sensitivity, "specificity": specificity, "ppv": ppv, "npv": npv}


def _check(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {s.shape} do not match")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (drop unknown labels first)")
    return y.astype(bool), s


def threshold_metrics(y_true, score, threshold: float) -> dict[str, float]:
    """accuracy, precision, recall, f1, sensitivity, specificity, ppv, npv at ``threshold``."""
    y, s = _check(y_true, score)
    called = s >= threshold
    counts = (np.sum(called & y), np.sum(called & ~y), np.sum(~called & ~y), np.sum(~called & y))
    return {name: float(value) for name, value in _from_counts(*counts).items()}


def bootstrap_metric_cis(y_true, score, threshold: float, n_boot: int = 2000,
                         conf_level: float = 0.95, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile CIs of the threshold metrics from a stratified bootstrap of the cases.

    Vectorised over replicates: only the number of called positives among resampled positives
    and negatives matters, so each replicate costs two small integer sums.
    """
    y, s = _check(y_true, score)
    called = s >= threshold
    rng = np.random.default_rng(seed)
    pos_called, neg_called = called[y], called[~y]
    m, n = pos_called.size, neg_called.size
    tp = rng.choice(pos_called, size=(n_boot, m)).sum(axis=1) if m else np.zeros(n_boot)
    fp = rng.choice(neg_called, size=(n_boot, n)).sum(axis=1) if n else np.zeros(n_boot)
    values = _from_counts(tp, fp, n - fp, m - tp)
    alpha = (1 - conf_level) / 2
    cis = {}
    for name in METRIC_NAMES:
        v = values[name][np.isfinite(values[name])]
        cis[name] = ((float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha)))
                     if v.size else (float("nan"), float("nan")))
    return cis
