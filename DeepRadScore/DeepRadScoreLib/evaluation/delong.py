"""DeLong's AUC variance, confidence interval and paired test (fast algorithm of Sun & Xu 2014).

DeLong, DeLong & Clarke-Pearson (Biometrics 1988) estimate the variance of the empirical AUC
from its structural components ("placements"): for each positive case the fraction of negatives
it outranks, for each negative the fraction of positives that outrank it, ties counted 1/2.
Sun & Xu (IEEE Signal Processing Letters 2014) get all placements from three mid-rank vectors,
O((m + n) log(m + n)) instead of O(m * n), which is what makes bootstrapping-free CIs cheap.

Conventions, chosen to match pROC (Robin et al. 2011), the reference implementation clinicians'
statisticians use:

- a higher score means "more likely positive" (pROC's ``direction = "<"``). The direction is
  never flipped from the data: on a test set that would bias the AUC upwards.
- the 95 % CI is ``auc +- z * sd`` clipped to [0, 1] (pROC's ``ci.auc(method = "delong")``),
  not a logit interval.
- fewer than two positives or two negatives make the variance undefined: NaN, as pROC's NA.
- the paired test's statistic is ``(auc1 - auc2) / sd(auc1 - auc2)``; identical curves give
  z = 0, p = 1. Its CI is the normal interval of the difference (pROC's ``roc.test`` conf.int).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata


@dataclass(frozen=True)
class AucInterval:
    """An AUC with its DeLong variance and confidence interval."""

    auc: float
    variance: float
    ci_low: float
    ci_high: float
    n_pos: int
    n_neg: int
    conf_level: float = 0.95


@dataclass(frozen=True)
class DelongTest:
    """DeLong's test of two correlated ROC curves (same cases, two scores)."""

    auc1: float
    auc2: float
    difference: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    conf_level: float = 0.95


def _split(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """Scores (k, N) -> positives (k, m) and negatives (k, n); checks labels and scores."""
    y = np.asarray(y_true)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    if y.ndim != 1 or s.shape[1] != y.shape[0]:
        raise ValueError(f"labels {y.shape} and scores {s.shape} do not match")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (drop unknown labels first)")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    positive = y == 1
    return s[:, positive], s[:, ~positive]


def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs (k,), positive placements V10 (k, m) and negative placements V01 (k, n).

    Sun & Xu 2014, Algorithm 1: with Tz the mid-ranks in the pooled sample and Tx, Ty the
    mid-ranks within positives and negatives, V10 = (Tz_pos - Tx) / n (negatives outranked by
    each positive) and V01 = 1 - (Tz_neg - Ty) / m (positives outranking each negative).
    """
    m, n = pos.shape[1], neg.shape[1]
    tx = rankdata(pos, axis=1)
    ty = rankdata(neg, axis=1)
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return aucs, v10, v01


def _covariance(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their DeLong covariance matrix (k, k); NaN when m < 2 or n < 2."""
    m, n = pos.shape[1], neg.shape[1]
    k = pos.shape[0]
    if m == 0 or n == 0:
        return np.full(k, np.nan), np.full((k, k), np.nan)
    aucs, v10, v01 = _placements(pos, neg)
    if m < 2 or n < 2:
        return aucs, np.full((k, k), np.nan)
    sx = np.atleast_2d(np.cov(v10))  # (k, k), divisor m - 1 as in DeLong 1988 and pROC
    sy = np.atleast_2d(np.cov(v01))
    return aucs, sx / m + sy / n


def auc(y_true, score) -> float:
    """Empirical AUC (Mann-Whitney, ties 1/2); NaN if a class is absent."""
    pos, neg = _split(y_true, score)
    if pos.shape[1] == 0 or neg.shape[1] == 0:
        return float("nan")
    return float(_placements(pos, neg)[0][0])


def delong_roc_variance(y_true, score) -> tuple[float, float]:
    """(AUC, DeLong variance of the AUC) of one score."""
    aucs, cov = _covariance(*_split(y_true, score))
    return float(aucs[0]), float(cov[0, 0])


def delong_roc_covariance(y_true, score1, score2) -> float:
    """DeLong covariance of the AUCs of two scores on the same cases (pROC's ``cov``)."""
    _, cov = _covariance(*_split(y_true, np.vstack([score1, score2])))
    return float(cov[0, 1])


def delong_auc_ci(y_true, score, conf_level: float = 0.95) -> AucInterval:
    """AUC with DeLong variance and the normal CI ``auc +- z * sd`` clipped to [0, 1]."""
    pos, neg = _split(y_true, score)
    aucs, cov = _covariance(pos, neg)
    value, var = float(aucs[0]), float(cov[0, 0])
    z = norm.ppf(1 - (1 - conf_level) / 2)
    half = z * np.sqrt(var) if np.isfinite(var) else np.nan
    return AucInterval(auc=value, variance=var,
                       ci_low=float(np.clip(value - half, 0.0, 1.0)),
                       ci_high=float(np.clip(value + half, 0.0, 1.0)),
                       n_pos=int(pos.shape[1]), n_neg=int(neg.shape[1]), conf_level=conf_level)


def delong_roc_test(y_true, score1, score2, conf_level: float = 0.95) -> DelongTest:
    """Two-sided DeLong test that two scores on the SAME cases have equal AUC.

    The cases must be independent: never pass predictions pooled over cross-validation
    repeats, where each case appears many times.
    """
    pos, neg = _split(y_true, np.vstack([score1, score2]))
    aucs, cov = _covariance(pos, neg)
    difference = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    sd = np.sqrt(max(var, 0.0)) if np.isfinite(var) else np.nan
    if not np.isfinite(sd):
        z = p = np.nan
    elif sd == 0.0:
        # Identical placements: no evidence of a difference (pROC's special case).
        z, p = (0.0, 1.0) if difference == 0.0 else (float(np.sign(difference) * np.inf), 0.0)
    else:
        z = difference / sd
        p = float(2 * norm.sf(abs(z)))
    crit = norm.ppf(1 - (1 - conf_level) / 2)
    return DelongTest(auc1=float(aucs[0]), auc2=float(aucs[1]), difference=difference,
                      z=float(z), p_value=float(p),
                      ci_low=float(difference - crit * sd), ci_high=float(difference + crit * sd),
                      conf_level=conf_level)
