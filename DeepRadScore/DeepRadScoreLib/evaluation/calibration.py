"""Calibration of predicted probabilities: Brier score, logistic recalibration and a smoothed curve.

A model can rank cases well (high AUC) and still state probabilities a clinician cannot take at
face value. Following Van Calster et al. (J Clin Epidemiol 2016, "A calibration hierarchy"):

- **Brier score**: mean squared difference between probability and outcome; **scaled Brier**
  ``1 - Brier / (ybar (1 - ybar))``: 0 for a model that predicts the prevalence to every case,
  1 for a perfect one, negative for one worse than the prevalence.
- **Calibration intercept** (calibration-in-the-large): ``a`` in ``logit P(y=1) = a + logit(p)``
  (the slope fixed at 1, an offset); 0 when the mean probability matches the event rate, < 0 when
  the model over-predicts.
- **Calibration slope**: ``b`` in ``logit P(y=1) = a + b logit(p)``; 1 is ideal, < 1 means the
  probabilities are too extreme (the usual sign of overfitting), > 1 too modest.
- **Calibration curve**: the observed event rate as a smooth function of the predicted
  probability, here a logistic regression on a restricted cubic spline of ``logit(p)`` (3 knots
  at the 10th, 50th and 90th percentiles, Harrell's default; with fewer than
  :data:`SPLINE_MIN_EVENTS` cases of the rarer class, the straight line of the recalibration
  fit) with a 95 % pointwise band from the fit's covariance; plus the observed rate in quantile
  bins with Wilson 95 % intervals.

Probabilities are clipped to [1e-6, 1 - 1e-6] before the logit. Every fit is a plain Newton
iteration (no penalty); when it does not converge (complete separation, which small test sets
with a very good model produce) the estimate is NaN, not a number that only looks like one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit
from scipy.stats import norm


EPS = 1e-6
# Fewer cases of the rarer class than this, and the curve is the straight logistic
# recalibration line instead of the spline: about ten events per fitted parameter (a spline with
# 3 knots has three), or the curve's wiggles are noise.
SPLINE_MIN_EVENTS = 30
# The calibration columns of metrics.csv, in order.
COLUMNS = ("brier_score", "brier_scaled", "calibration_intercept", "calibration_intercept_ci_low",
           "calibration_intercept_ci_high", "calibration_slope", "calibration_slope_ci_low",
           "calibration_slope_ci_high")


def _check(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} do not match")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (drop unknown labels first)")
    return y, p


def brier(y, p) -> tuple[float, float]:
    """``(Brier score, scaled Brier)``; scaled is NaN when the cases have one class only."""
    y, p = _check(y, p)
    if not y.size:
        return math.nan, math.nan
    score = float(np.mean((p - y) ** 2))
    prevalence = y.mean()
    reference = prevalence * (1 - prevalence)
    return score, (1 - score / reference) if reference > 0 else math.nan


@dataclass(frozen=True)
class LogisticFit:
    """Coefficients of a logistic regression and their covariance (inverse Fisher information)."""

    coef: np.ndarray
    cov: np.ndarray
    converged: bool


def logistic_fit(X: np.ndarray, y: np.ndarray, offset: np.ndarray | None = None,
                 max_iter: int = 100, tol: float = 1e-10) -> LogisticFit:
    """Maximum-likelihood logistic regression ``logit P = X @ coef + offset`` by Newton-Raphson
    with step halving. ``converged`` is False on separation (coefficients running away)."""
    X = np.asarray(X, dtype=float)
    offset = np.zeros(len(y)) if offset is None else np.asarray(offset, dtype=float)
    beta = np.zeros(X.shape[1])

    def loglik(b):
        eta = X @ b + offset
        return float(np.sum(y * eta - np.logaddexp(0, eta)))

    current = loglik(beta)
    for _ in range(max_iter):
        mu = expit(X @ beta + offset)
        w = mu * (1 - mu)
        info = X.T @ (X * w[:, None])
        try:
            step = np.linalg.solve(info, X.T @ (y - mu))
        except np.linalg.LinAlgError:
            return LogisticFit(beta, np.full((X.shape[1],) * 2, np.nan), False)
        scale = 1.0
        while scale > 1e-8:
            candidate = beta + scale * step
            new = loglik(candidate)
            if new >= current - 1e-12:
                break
            scale /= 2
        beta, gain, current = candidate, new - current, new
        if np.max(np.abs(beta)) > 50:
            break
        if abs(gain) < tol and np.max(np.abs(scale * step)) < 1e-7:
            mu = expit(X @ beta + offset)
            info = X.T @ (X * (mu * (1 - mu))[:, None])
            try:
                return LogisticFit(beta, np.linalg.inv(info), True)
            except np.linalg.LinAlgError:
                break
    return LogisticFit(beta, np.full((X.shape[1],) * 2, np.nan), False)


def _wald(value: float, variance: float, conf_level: float) -> tuple[float, float]:
    half = norm.ppf(0.5 + conf_level / 2) * math.sqrt(variance) if variance >= 0 else math.nan
    return value - half, value + half


def calibration_metrics(y, p, conf_level: float = 0.95) -> dict[str, float]:
    """The :data:`COLUMNS` for one model: Brier, scaled Brier, intercept and slope with Wald CIs."""
    y, p = _check(y, p)
    score, scaled = brier(y, p)
    out = dict.fromkeys(COLUMNS, math.nan)
    out.update(brier_score=score, brier_scaled=scaled)
    if not (y.size and 0 < y.sum() < y.size):
        return out
    lp = logit(np.clip(p, EPS, 1 - EPS))
    ones = np.ones((y.size, 1))
    large = logistic_fit(ones, y, offset=lp)
    if large.converged:
        a = float(large.coef[0])
        lo, hi = _wald(a, large.cov[0, 0], conf_level)
        out.update(calibration_intercept=a, calibration_intercept_ci_low=lo, calibration_intercept_ci_high=hi)
    slope = logistic_fit(np.column_stack([ones, lp]), y)
    if slope.converged:
        b = float(slope.coef[1])
        lo, hi = _wald(b, slope.cov[1, 1], conf_level)
        out.update(calibration_slope=b, calibration_slope_ci_low=lo, calibration_slope_ci_high=hi)
    return out


def spline_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Restricted (natural) cubic spline basis of ``x`` (Harrell's parametrisation, scaled by the
    knot span): ``[x, s_1, ..., s_{K-2}]``, linear beyond the outer knots."""
    x = np.asarray(x, dtype=float)
    t = np.asarray(knots, dtype=float)
    k = t.size
    span = (t[-1] - t[0]) ** 2 or 1.0
    cube = lambda v: np.maximum(v, 0.0) ** 3  # noqa: E731
    columns = [x]
    for j in range(k - 2):
        columns.append((cube(x - t[j]) - cube(x - t[k - 2]) * (t[k - 1] - t[j]) / (t[k - 1] - t[k - 2])
                        + cube(x - t[k - 1]) * (t[k - 2] - t[j]) / (t[k - 1] - t[k - 2])) / span)
    return np.column_stack(columns)


@dataclass(frozen=True)
class CalibrationCurve:
    """A smoothed calibration curve (NaN where the fit failed) and the binned observed rates."""

    grid: np.ndarray
    observed: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    bin_predicted: np.ndarray
    bin_observed: np.ndarray
    bin_low: np.ndarray
    bin_high: np.ndarray
    bin_n: np.ndarray
    method: str


def wilson_interval(events: np.ndarray, n: np.ndarray, conf_level: float = 0.95):
    """Wilson score interval of a binomial proportion (valid at 0 and n events, unlike Wald)."""
    events, n = np.asarray(events, dtype=float), np.asarray(n, dtype=float)
    z = norm.ppf(0.5 + conf_level / 2)
    phat = events / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At 0 or n events one bound is the proportion itself; rounding must not put it past it.
    return np.clip(np.minimum(centre - half, phat), 0, 1), np.clip(np.maximum(centre + half, phat), 0, 1)


def calibration_curve(y, p, n_bins: int | None = None, conf_level: float = 0.95,
                      grid_points: int = 101) -> CalibrationCurve:
    """The smoothed curve on a grid spanning the observed probabilities, and quantile bins
    (``n_bins`` default: about 10 cases per bin, between 3 and 10 bins)."""
    y, p = _check(y, p)
    pc = np.clip(p, EPS, 1 - EPS)
    lp = logit(pc)
    grid = np.linspace(pc.min(), pc.max(), grid_points) if y.size else np.array([])
    observed = low = high = np.full(grid.shape, np.nan)
    method = "not estimable"
    if y.size >= 5 and 0 < y.sum() < y.size:
        distinct = np.unique(lp)
        knots = np.quantile(lp, [0.1, 0.5, 0.9])
        minority = min(y.sum(), y.size - y.sum())
        use_spline = (minority >= SPLINE_MIN_EVENTS and distinct.size >= 5
                      and bool(np.all(np.diff(knots) > 1e-9)))
        basis = (lambda v: spline_basis(v, knots)) if use_spline else (lambda v: v[:, None])  # noqa: E731
        X = np.column_stack([np.ones(y.size), basis(lp)])
        fit = logistic_fit(X, y)
        if fit.converged:
            G = np.column_stack([np.ones(grid.size), basis(logit(grid))])
            eta = G @ fit.coef
            se = np.sqrt(np.einsum("ij,jk,ik->i", G, fit.cov, G))
            z = norm.ppf(0.5 + conf_level / 2)
            observed, low, high = expit(eta), expit(eta - z * se), expit(eta + z * se)
            method = ("logistic fit on a restricted cubic spline of logit(p), 3 knots" if use_spline
                      else "logistic fit on logit(p)")
    if n_bins is None:
        n_bins = int(min(10, max(3, y.size // 10)))
    edges = np.unique(np.quantile(pc, np.linspace(0, 1, n_bins + 1))) if y.size else np.array([0.0, 1.0])
    which = np.clip(np.searchsorted(edges, pc, side="right") - 1, 0, max(edges.size - 2, 0))
    keep = [b for b in range(max(edges.size - 1, 1)) if np.any(which == b)]
    n = np.array([np.sum(which == b) for b in keep], dtype=float)
    events = np.array([y[which == b].sum() for b in keep], dtype=float)
    predicted = np.array([pc[which == b].mean() for b in keep], dtype=float)
    lo, hi = wilson_interval(events, n, conf_level) if n.size else (np.array([]), np.array([]))
    return CalibrationCurve(grid, observed, low, high, predicted, events / np.where(n > 0, n, 1),
                            lo, hi, n.astype(int), method)
