"""Calibration and decision curves, each number against an independent computation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from scipy.optimize import brentq
from scipy.special import expit, logit
from scipy.stats import binomtest
from sklearn.linear_model import LogisticRegression

from DeepRadScoreLib.evaluation import calibration, decision, figures


def sample(n=400, seed=0, stretch=1.0):
    """True risks r, outcomes y ~ Bernoulli(r) and predictions p = expit(stretch * logit(r))."""
    rng = np.random.default_rng(seed)
    r = expit(rng.normal(-0.3, 1.2, n))
    y = (rng.random(n) < r).astype(int)
    return y, expit(stretch * logit(r))


def test_brier_by_hand():
    y = np.array([1, 0, 1, 1, 0])
    p = np.array([0.9, 0.2, 0.6, 0.4, 0.5])
    score, scaled = calibration.brier(y, p)
    by_hand = ((0.1 ** 2) + (0.2 ** 2) + (0.4 ** 2) + (0.6 ** 2) + (0.5 ** 2)) / 5
    assert score == pytest.approx(by_hand)
    assert scaled == pytest.approx(1 - by_hand / (0.6 * 0.4))
    assert math.isnan(calibration.brier(np.ones(4), np.full(4, 0.7))[1])  # one class: no reference


def test_slope_and_intercept_match_plain_logistic_fits():
    y, p = sample(stretch=2.0)  # too extreme: slope about 1/2
    got = calibration.calibration_metrics(y, p)
    lp = logit(p)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(lp[:, None], y)
    assert got["calibration_slope"] == pytest.approx(ref.coef_[0, 0], abs=1e-5)
    assert 0.35 < got["calibration_slope"] < 0.65
    # Its Wald CI from the inverse Fisher information at sklearn's estimate.
    X = np.column_stack([np.ones_like(lp), lp])
    mu = expit(X @ np.r_[ref.intercept_, ref.coef_[0]])
    se = math.sqrt(np.linalg.inv(X.T @ (X * (mu * (1 - mu))[:, None]))[1, 1])
    assert got["calibration_slope_ci_low"] == pytest.approx(ref.coef_[0, 0] - 1.959964 * se, abs=1e-4)
    assert got["calibration_slope_ci_high"] == pytest.approx(ref.coef_[0, 0] + 1.959964 * se, abs=1e-4)
    # Calibration-in-the-large: the a solving sum(y - expit(a + logit p)) = 0 (the score equation).
    a = brentq(lambda a: np.sum(y - expit(a + lp)), -10, 10, xtol=1e-12)
    assert got["calibration_intercept"] == pytest.approx(a, abs=1e-6)
    assert got["calibration_intercept_ci_low"] < a < got["calibration_intercept_ci_high"]
    assert got["brier_score"] == pytest.approx(np.mean((p - y) ** 2))


def test_well_calibrated_model_and_over_prediction():
    y, p = sample(n=3000, seed=1)
    got = calibration.calibration_metrics(y, p)
    assert got["calibration_slope_ci_low"] < 1 < got["calibration_slope_ci_high"]
    assert got["calibration_intercept_ci_low"] < 0 < got["calibration_intercept_ci_high"]
    shifted = calibration.calibration_metrics(y, expit(logit(p) + 1.0))  # over-predicts
    assert shifted["calibration_intercept"] == pytest.approx(-1.0, abs=0.15)


def test_separation_gives_nan_not_a_number():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    got = calibration.calibration_metrics(y, p)
    assert math.isnan(got["calibration_slope"])
    assert not math.isnan(got["brier_score"])


def test_spline_basis_is_natural_and_curve_matches_scikit_learn():
    knots = np.array([-1.0, 0.0, 1.5])
    x = np.linspace(-6, 6, 1201)
    basis = calibration.spline_basis(x, knots)
    second = np.diff(basis[:, 1], 2)
    assert np.allclose(second[x[1:-1] > 1.6], 0, atol=1e-9) and np.allclose(second[x[1:-1] < -1.1], 0)
    assert np.abs(second[(x[1:-1] > -0.9) & (x[1:-1] < 1.4)]).max() > 1e-6  # cubic in between
    y, p = sample(n=500, seed=2)
    curve = calibration.calibration_curve(y, p)
    assert "spline" in curve.method
    lp = logit(p)
    k = np.quantile(lp, [0.1, 0.5, 0.9])
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(calibration.spline_basis(lp, k), y)
    expected = ref.predict_proba(calibration.spline_basis(logit(curve.grid), k))[:, 1]
    np.testing.assert_allclose(curve.observed, expected, atol=1e-4)
    assert np.all(curve.band_low <= curve.observed) and np.all(curve.observed <= curve.band_high)
    # A calibrated model's diagonal lies inside the band over most of the range.
    # Few events: the straight recalibration line (its slope is the calibration slope's fit).
    y_small, p_small = sample(n=60, seed=2)
    small = calibration.calibration_curve(y_small, p_small)
    assert min(y_small.sum(), 60 - y_small.sum()) < calibration.SPLINE_MIN_EVENTS
    assert small.method == "logistic fit on logit(p)"
    line = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(logit(p_small)[:, None], y_small)
    np.testing.assert_allclose(small.observed, line.predict_proba(logit(small.grid)[:, None])[:, 1], atol=1e-5)
    big = calibration.calibration_curve(*sample(n=3000, seed=2))
    inside = (big.band_low <= big.grid) & (big.grid <= big.band_high)
    assert inside.mean() > 0.9 and np.abs(big.observed - big.grid).max() < 0.03


def test_binned_points_and_wilson_intervals():
    y, p = sample(n=200, seed=3)
    curve = calibration.calibration_curve(y, p, n_bins=5)
    assert curve.bin_n.sum() == 200 and len(curve.bin_n) == 5
    order = np.argsort(p, kind="mergesort")
    first = order[: curve.bin_n[0]]
    assert curve.bin_observed[0] == pytest.approx(y[first].mean())
    assert curve.bin_predicted[0] == pytest.approx(p[first].mean())
    for events, n, lo, hi in zip(np.round(curve.bin_observed * curve.bin_n), curve.bin_n,
                                 curve.bin_low, curve.bin_high):
        ci = binomtest(int(events), int(n)).proportion_ci(method="wilson")
        assert (lo, hi) == pytest.approx((ci.low, ci.high))


def test_wilson_bounds_hold_the_proportion_at_zero_and_all_events():
    for n in range(1, 60):
        for events in (0, n):
            lo, hi = calibration.wilson_interval(np.array([events]), np.array([n]))
            phat = events / n
            assert lo[0] <= phat <= hi[0] and 0 <= lo[0] and hi[0] <= 1
            ci = binomtest(events, n).proportion_ci(method="wilson")
            assert (lo[0], hi[0]) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_net_benefit_by_hand():
    y, p = sample(n=120, seed=4)
    nb = decision.net_benefit(y, p)
    assert decision.THRESHOLDS[0] == 0.01 and decision.THRESHOLDS[-1] == 0.99 and len(nb) == 99
    for i in (0, 19, 49, 79, 98):
        t = decision.THRESHOLDS[i]
        tp = sum(1 for yi, pi in zip(y, p) if pi >= t and yi == 1)
        fp = sum(1 for yi, pi in zip(y, p) if pi >= t and yi == 0)
        assert nb[i] == pytest.approx(tp / 120 - fp / 120 * t / (1 - t))
        prev = y.mean()
        assert decision.net_benefit_treat_all(y)[i] == pytest.approx(prev - (1 - prev) * t / (1 - t))
    # At a threshold below every prediction the model is treat-all.
    low = decision.net_benefit(y, p, [p.min() / 2])
    assert low[0] == pytest.approx(decision.net_benefit_treat_all(y, [p.min() / 2])[0])
    assert decision.useful_range(y, p) is not None
    assert decision.useful_range(y, np.full(120, 0.5)) is None  # no information: never useful


def test_figures_draw(tmp_path):
    y, p = sample(n=150, seed=5)
    curves = {m: calibration.calibration_curve(y, q) for m, q in
              (("radiomics", p), ("deep", expit(2 * logit(p))), ("fusion", np.full(150, 0.4)))}
    assert curves["fusion"].method == "not estimable" or np.isfinite(curves["fusion"].observed).all()
    for path in (figures.calibration_figure("LVI", curves, tmp_path / "cal.png"),
                 figures.decision_curve_figure("LVI", decision.THRESHOLDS,
                                               {"fusion": decision.net_benefit(y, p)},
                                               decision.net_benefit_treat_all(y), tmp_path / "dca.png")):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 300
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20
