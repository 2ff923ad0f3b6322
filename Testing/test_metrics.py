"""Threshold metrics and their bootstrap CIs, checked against scikit-learn and by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from DeepRadScoreLib.evaluation import metrics


def test_metrics_match_hand_counts_and_scikit_learn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 150)
    s = rng.random(150) * 0.6 + 0.4 * y
    threshold = 0.5
    got = metrics.threshold_metrics(y, s, threshold)
    pred = (s >= threshold).astype(int)
    tp, fp = np.sum((pred == 1) & (y == 1)), np.sum((pred == 1) & (y == 0))
    tn, fn = np.sum((pred == 0) & (y == 0)), np.sum((pred == 0) & (y == 1))
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(precision_score(y, pred)) == pytest.approx(got["ppv"])
    assert got["recall"] == pytest.approx(recall_score(y, pred)) == pytest.approx(got["sensitivity"])
    assert got["f1"] == pytest.approx(f1_score(y, pred))
    assert got["specificity"] == pytest.approx(tn / (tn + fp))
    assert got["npv"] == pytest.approx(tn / (tn + fn))
    assert tp and fp and tn and fn  # the example exercises all four cells


def test_threshold_is_inclusive():
    got = metrics.threshold_metrics([1, 0], [0.5, 0.49], 0.5)
    assert got["sensitivity"] == 1.0 and got["specificity"] == 1.0


def test_undefined_metrics_are_nan():
    # Nobody called positive: precision/PPV/F1 undefined; NPV, specificity defined.
    got = metrics.threshold_metrics([1, 0, 0], [0.1, 0.2, 0.3], 0.9)
    assert math.isnan(got["precision"]) and math.isnan(got["ppv"]) and math.isnan(got["f1"])
    assert got["sensitivity"] == 0.0 and got["specificity"] == 1.0 and got["npv"] == pytest.approx(2 / 3)
    # No positives at all: sensitivity/recall undefined.
    got = metrics.threshold_metrics([0, 0], [0.1, 0.9], 0.5)
    assert math.isnan(got["sensitivity"]) and math.isnan(got["recall"]) and got["specificity"] == 0.5


def test_bootstrap_cis_cover_the_estimate_and_shrink_with_n():
    rng = np.random.default_rng(11)

    def sample(n):
        y = (rng.random(n) < 0.3).astype(int)
        return y, np.clip(rng.normal(0.35 + 0.3 * y, 0.15), 0, 1)

    y, s = sample(120)
    point = metrics.threshold_metrics(y, s, 0.5)
    cis = metrics.bootstrap_metric_cis(y, s, 0.5, n_boot=2000, seed=1)
    for name in metrics.METRIC_NAMES:
        lo, hi = cis[name]
        assert lo <= point[name] <= hi, name
        assert hi > lo, name
    y_big, s_big = sample(1200)
    cis_big = metrics.bootstrap_metric_cis(y_big, s_big, 0.5, n_boot=2000, seed=1)
    width = cis["accuracy"][1] - cis["accuracy"][0]
    assert cis_big["accuracy"][1] - cis_big["accuracy"][0] < 0.5 * width
    # Same seed, same interval: reports are reproducible.
    assert metrics.bootstrap_metric_cis(y, s, 0.5, n_boot=2000, seed=1) == cis


def test_bootstrap_sensitivity_ci_matches_binomial_spread():
    # Stratified bootstrap of sensitivity is a binomial(m, p_hat) / m: its 95 % interval must be
    # close to p_hat +- 1.96 sqrt(p_hat (1 - p_hat) / m).
    m = 400
    y = np.r_[np.ones(m, int), np.zeros(200, int)]
    s = np.r_[np.where(np.arange(m) < 280, 0.9, 0.1), np.full(200, 0.1)]  # sensitivity 0.7
    lo, hi = metrics.bootstrap_metric_cis(y, s, 0.5, n_boot=4000, seed=0)["sensitivity"]
    half = 1.96 * math.sqrt(0.7 * 0.3 / m)
    assert lo == pytest.approx(0.7 - half, abs=0.01) and hi == pytest.approx(0.7 + half, abs=0.01)
    # Specificity is 1 in every replicate.
    assert metrics.bootstrap_metric_cis(y, s, 0.5, n_boot=200)["specificity"] == (1.0, 1.0)
