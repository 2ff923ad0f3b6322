"""RadScore: selection steps, training-only statistics, readable coefficients, round trip."""
from __future__ import annotations

import numpy as np
import pytest

from DeepRadScoreLib.model.radscore import RadScore, RadScorePair, auc

NAMES = [f"tumor_f{i}" for i in range(300)] + [f"peritumoral_f{i}" for i in range(300)]


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)
    X = rng.normal(size=(n, len(NAMES)))
    X[:, 3] += 1.5 * y                      # tumour signal
    X[:, 4] = X[:, 3] + rng.normal(0, 0.05, n)  # redundant copy (|r| > 0.9)
    X[:, 5] = 2.0                           # constant
    X[:, 6] = np.where(np.arange(n) < n - 3, 1.0, 0.0)  # near-constant (97.5 % one value)
    X[:, 300 + 7] += 1.5 * y                # ring signal
    return X, y


def test_selection_keeps_signal_drops_constant_and_redundant():
    X, y = _data()
    pair = RadScorePair().fit(X, y, NAMES)
    tumour = pair.scores_["tumor"]
    assert "tumor_f3" in tumour.features_ or "tumor_f4" in tumour.features_
    assert not {"tumor_f3", "tumor_f4"} <= set(tumour.features_)  # one of the redundant pair
    assert {"tumor_f5", "tumor_f6"}.isdisjoint(tumour.features_)
    assert "peritumoral_f7" in pair.scores_["peritumoral"].features_
    counts = pair.coefficients()["tumor"]["selection_counts"]
    assert counts["after_near_constant"] == 298
    X_new, y_new = _data(seed=1)
    scores = pair.transform(X_new, NAMES)
    assert scores.shape == (120, 2)
    assert auc(y_new, scores[:, 0]) > 0.8 and auc(y_new, scores[:, 1]) > 0.7


def test_radscore_is_the_linear_formula_on_training_z_scores():
    X, y = _data()
    score = RadScore().fit(X[:, :300], y, NAMES[:300])
    description = score.coefficients()
    manual = np.full(len(X), description["intercept"])
    for f in description["features"]:
        column = X[:, NAMES.index(f["name"])]
        assert f["mean"] == pytest.approx(column.mean()) and f["sd"] == pytest.approx(column.std())
        manual += f["coefficient"] * (column - f["mean"]) / f["sd"]
    np.testing.assert_allclose(score.score_values(X[:, :300], NAMES[:300]), manual)
    rebuilt = RadScore.from_coefficients(description)
    np.testing.assert_array_equal(rebuilt.score_values(X[:, :300], NAMES[:300]),
                                  score.score_values(X[:, :300], NAMES[:300]))


def test_non_finite_values_take_the_training_median():
    X, y = _data()
    X[0, 3] = np.nan
    score = RadScore().fit(X[:, :300], y, NAMES[:300])
    X_new = X[:5, :300].copy()
    X_new[:, :] = np.inf
    values = score.score_values(X_new, NAMES[:300])
    assert np.isfinite(values).all()
    assert np.allclose(values, values[0])


def test_pure_noise_gives_a_sparse_score():
    """With the filters refitted inside the inner CV, noise picks the strongest penalty."""
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(100, 300)), rng.permutation(np.arange(100) % 2)
    assert len(RadScore().fit(X, y, NAMES[:300]).features_) <= 5


# --- scikit-learn's estimator conventions -------------------------------------------
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402


@parametrize_with_checks([RadScore()])
def test_radscore_passes_scikit_learn_estimator_checks(estimator, check):
    """Every check of ``check_estimator`` (the array-API one skips itself without
    SCIPY_ARRAY_API). RadScorePair is not listed: it needs ``tumor_*``/``peritumoral_*`` columns,
    which the checks' generated data cannot have; its conventions are tested below."""
    check(estimator)


def test_feature_names_come_from_a_dataframe():
    import pandas as pd

    X, y = _data()
    frame = pd.DataFrame(X, columns=NAMES)
    score = RadScore().fit(frame.iloc[:, :300], y)
    assert list(score.feature_names_in_) == NAMES[:300] and score.n_features_in_ == 300
    assert set(score.features_) <= set(NAMES[:300])
    np.testing.assert_array_equal(score.transform(frame.iloc[:, :300]).ravel(),
                                  score.score_values(X[:, :300], NAMES[:300]))
    with pytest.raises(ValueError, match="feature names"):  # columns renamed: refused
        score.transform(frame.iloc[:, :300].rename(columns=lambda c: c + "_other"))
    pair = RadScorePair().fit(frame, y)
    assert list(pair.feature_names_in_) == NAMES and pair.n_features_in_ == 600
    np.testing.assert_array_equal(pair.transform(frame), pair.transform(X, NAMES))
    assert list(pair.get_feature_names_out()) == ["radscore_tumor", "radscore_peritumoral"]
    # Any two labels: the second (sorted) is the positive class.
    relabelled = RadScore().fit(X[:, :300], np.where(y == 1, "pos", "neg"), NAMES[:300])
    assert list(relabelled.classes_) == ["neg", "pos"]
    np.testing.assert_allclose(relabelled.score_values(X[:, :300], NAMES[:300]),
                               RadScore().fit(X[:, :300], y, NAMES[:300]).score_values(X[:, :300], NAMES[:300]))
