"""DeLong AUC variance, CI and paired test: against an independent O(m*n) computation and pROC.

The reference values below are copied verbatim from pROC's own test suite, xrobin/pROC at commit
ee2877e858bcd2757c05ce797ea64ade2c05885b, computed there on its aSAH data set (our copy:
Testing/data/aSAH.csv, see Testing/data/README.md). pROC's curves are
``roc(aSAH$outcome, aSAH$<marker>)`` with controls "Good", cases "Poor" and direction "<".
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from DeepRadScoreLib.evaluation import delong

ASAH = Path(__file__).resolve().parent / "data" / "aSAH.csv"


@pytest.fixture(scope="module")
def asah():
    df = pd.read_csv(ASAH)
    assert len(df) == 113
    y = (df["outcome"] == "Poor").astype(int).to_numpy()
    assert y.sum() == 41
    return y, {name: df[name].to_numpy(dtype=float) for name in ("wfns", "ndka", "s100b")}


def structural_components(y, scores):
    """DeLong 1988 written out directly: psi(x, y) over all m * n pairs, O(m * n).

    Independent of the mid-rank algorithm: returns the AUCs and the covariance matrix
    S = S10 / m + S01 / n of a list of scores on the same cases.
    """
    y = np.asarray(y)
    pos_idx, neg_idx = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    m, n = len(pos_idx), len(neg_idx)
    v10, v01, aucs = [], [], []
    for s in scores:
        s = np.asarray(s, dtype=float)
        psi = np.empty((m, n))
        for a, i in enumerate(pos_idx):
            for b, j in enumerate(neg_idx):
                psi[a, b] = 1.0 if s[i] > s[j] else (0.5 if s[i] == s[j] else 0.0)
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    k = len(scores)
    s10, s01 = np.empty((k, k)), np.empty((k, k))
    for r in range(k):
        for c in range(k):
            s10[r, c] = np.sum((v10[r] - aucs[r]) * (v10[c] - aucs[c])) / (m - 1)
            s01[r, c] = np.sum((v01[r] - aucs[r]) * (v01[c] - aucs[c])) / (n - 1)
    return np.array(aucs), s10 / m + s01 / n


@pytest.mark.parametrize("seed", range(6))
def test_fast_delong_matches_structural_components_with_ties(seed):
    rng = np.random.default_rng(seed)
    n_cases = int(rng.integers(20, 90))
    y = (rng.random(n_cases) < rng.uniform(0.15, 0.6)).astype(int)
    y[:2], y[2:4] = 1, 0  # at least two of each class
    # Rounded scores force many ties, within and across classes.
    s1 = np.round(rng.normal(size=n_cases) + 0.8 * y, 1)
    s2 = np.round(0.6 * s1 + rng.normal(size=n_cases) * 0.7, 0)
    ref_auc, ref_cov = structural_components(y, [s1, s2])

    a1, v1 = delong.delong_roc_variance(y, s1)
    a2, v2 = delong.delong_roc_variance(y, s2)
    assert a1 == pytest.approx(ref_auc[0], abs=1e-12)
    assert a2 == pytest.approx(ref_auc[1], abs=1e-12)
    assert abs(v1 - ref_cov[0, 0]) < 1e-9 and abs(v2 - ref_cov[1, 1]) < 1e-9
    assert abs(delong.delong_roc_covariance(y, s1, s2) - ref_cov[0, 1]) < 1e-9

    test = delong.delong_roc_test(y, s1, s2)
    ref_z = (ref_auc[0] - ref_auc[1]) / math.sqrt(ref_cov[0, 0] + ref_cov[1, 1] - 2 * ref_cov[0, 1])
    assert abs(test.z - ref_z) < 1e-9
    assert abs(test.p_value - 2 * norm.sf(abs(ref_z))) < 1e-9


def test_auc_agrees_with_scikit_learn():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)
    assert delong.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_and_variance_match_pROC(asah):
    y, x = asah
    # pROC tests/testthat/test-auc.R lines 7 and 10 (auc); test-var.R lines 6-8 (var).
    expected = {"wfns": (0.823678861788618, 0.00146991470882363),
                "ndka": (0.611957994579946, 0.0031908105493913),
                "s100b": (None, 0.00266868245717244)}
    for name, (exp_auc, exp_var) in expected.items():
        value, var = delong.delong_roc_variance(y, x[name])
        if exp_auc is not None:
            assert value == pytest.approx(exp_auc, abs=1e-12), name
        assert var == pytest.approx(exp_var, rel=1e-10), name


def test_ci_matches_pROC(asah):
    y, x = asah
    # pROC tests/testthat/test-ci.auc.R line 6: ci.auc(r.ndka) (DeLong, 95 %).
    ci = delong.delong_auc_ci(y, x["ndka"])
    assert (ci.ci_low, ci.auc, ci.ci_high) == pytest.approx(
        (0.501244999271703, 0.611957994579946, 0.722670989888189), abs=1e-12)
    assert (ci.n_pos, ci.n_neg) == (41, 72)
    # test-ci.auc.R line 29: the same on the women only.
    women = pd.read_csv(ASAH)["gender"].eq("Female").to_numpy()
    ci_f = delong.delong_auc_ci(y[women], x["ndka"][women])
    assert (ci_f.ci_low, ci_f.auc, ci_f.ci_high) == pytest.approx(
        (0.5261398281, 0.6671428571, 0.8081458862), abs=1e-9)


def test_covariance_matches_pROC(asah):
    y, x = asah
    # pROC tests/testthat/test-cov.R lines 5-7.
    assert delong.delong_roc_covariance(y, x["wfns"], x["ndka"]) == pytest.approx(-0.000532967856762438, rel=1e-10)
    assert delong.delong_roc_covariance(y, x["ndka"], x["s100b"]) == pytest.approx(-0.000756164938056579, rel=1e-10)
    assert delong.delong_roc_covariance(y, x["s100b"], x["wfns"]) == pytest.approx(0.00119615567376754, rel=1e-10)


@pytest.mark.parametrize("first,second,z,p,lo,hi", [
    # pROC tests/testthat/test-roc.test.R lines 28-31 (t1), 37-40 (t2), 46-49 (t3).
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, 0.0104061769564846, 0.174214419249478),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, 0.0634011709339876, 0.3600405634833566),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054, -0.2876917446341914, 0.0488706064228094),
])
def test_paired_test_matches_pROC(asah, first, second, z, p, lo, hi):
    y, x = asah
    result = delong.delong_roc_test(y, x[first], x[second])
    assert result.z == pytest.approx(z, rel=1e-10)
    assert result.p_value == pytest.approx(p, rel=1e-10)
    assert (result.ci_low, result.ci_high) == pytest.approx((lo, hi), abs=1e-12)
    # Swapping the curves flips the sign, keeps p (test-roc.test.R "reversed" block).
    swapped = delong.delong_roc_test(y, x[second], x[first])
    assert swapped.z == pytest.approx(-z, rel=1e-10) and swapped.p_value == pytest.approx(p, rel=1e-10)


def test_identical_curves_give_z0_p1(asah):
    # pROC tests/testthat/test-roc.test.R lines 20-23.
    y, x = asah
    result = delong.delong_roc_test(y, x["wfns"], x["wfns"])
    assert result.z == 0.0 and result.p_value == 1.0


def test_degenerate_inputs():
    # One positive: AUC defined, variance not (pROC returns NA).
    y = np.array([1, 0, 0, 0])
    value, var = delong.delong_roc_variance(y, [0.9, 0.1, 0.2, 0.3])
    assert value == 1.0 and math.isnan(var)
    ci = delong.delong_auc_ci(y, [0.9, 0.1, 0.2, 0.3])
    assert math.isnan(ci.ci_low) and math.isnan(ci.ci_high)
    assert math.isnan(delong.auc([0, 0, 0], [0.1, 0.2, 0.3]))
    # A perfect separation has zero variance; the CI collapses onto 1.
    ci = delong.delong_auc_ci([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2])
    assert (ci.auc, ci.variance, ci.ci_low, ci.ci_high) == (1.0, 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="0 or 1"):
        delong.delong_roc_variance([1, 0, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        delong.delong_roc_variance([1, 0, 1], [0.1, np.nan, 0.3])
