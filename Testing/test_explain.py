"""SHAP values of the fused model (evaluation.explain): checked against exact Shapley values,
computed here by enumerating every coalition, on a model with interactions (the closed form of
an additive model is checked in test_report)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from DeepRadScoreLib.evaluation.explain import _background, shap_values


def _model(a: np.ndarray) -> np.ndarray:
    """A probability with an interaction (x0 * x1), a non-linearity and a linear term."""
    return 1.0 / (1.0 + np.exp(-(a[:, 0] * a[:, 1] + np.sin(a[:, 2]) - 0.5 * a[:, 3])))


def _exact(predict, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Shapley values of v(S) = mean over the background of predict(x on S, background elsewhere)."""
    n = len(x)

    def value(subset) -> float:
        masked = background.copy()
        masked[:, list(subset)] = x[list(subset)]
        return float(predict(masked).mean())

    phi = np.zeros(n)
    for j in range(n):
        others = [i for i in range(n) if i != j]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                phi[j] += weight * (value(subset + (j,)) - value(subset))
    return phi


def test_values_converge_to_the_exact_shapley_values_and_add_up():
    X = np.random.default_rng(0).normal(size=(30, 4))
    values, rows = shap_values(_model, X, list("abcd"), background_size=8, permutations=200)
    background = _background(X, 8, 0)
    for i in range(3):
        np.testing.assert_allclose(values[i], _exact(_model, rows[i], background), atol=3e-3)
    # Efficiency: each case's values sum to its prediction minus the background's mean prediction.
    np.testing.assert_allclose(values.sum(axis=1), _model(rows) - _model(background).mean(), atol=1e-12)


def test_cases_are_a_seeded_subset_and_names_must_match():
    X = np.random.default_rng(2).normal(size=(80, 3))
    a, rows_a = shap_values(_model_3 := (lambda m: m[:, 0] * m[:, 1] + m[:, 2]), X, list("abc"), max_cases=20)
    b, rows_b = shap_values(_model_3, X, list("abc"), max_cases=20)
    assert rows_a.shape == (20, 3) and np.array_equal(rows_a, rows_b) and np.array_equal(a, b)
    assert all(any(np.array_equal(r, x) for x in X) for r in rows_a)
    with pytest.raises(ValueError, match="2 feature names for 3 columns"):
        shap_values(_model_3, X, ["a", "b"])
