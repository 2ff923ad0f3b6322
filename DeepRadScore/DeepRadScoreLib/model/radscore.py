"""RadScore: a readable linear score per ROI from its 851 radiomics features.

``RadScore = intercept + sum_i c_i * z_i`` where ``z_i`` is feature ``f_i`` z-scored with the mean
and standard deviation of the *training* cases (paper, "Deep learning radiomics architecture").
Feature selection, all fitted on the training cases given to :meth:`RadScore.fit` only:

1. non-finite values are replaced by the training median of that feature (pyradiomics returns NaN
   for a few features of degenerate regions);
2. near-constant features are dropped: zero spread, or one value shared by more than 90 % of the
   cases (such a feature cannot carry a signal that survives cross-validation);
3. univariate filter: two-sided Mann-Whitney U test between the classes, the ``top_m`` smallest
   p-values are kept (rank-based, so robust to the heavy tails of texture features);
4. redundancy: walking from the most to the least significant, a feature is dropped when its
   absolute Pearson correlation with an already kept one exceeds ``max_correlation``;
5. L1-penalised, class-weighted logistic regression; its strength C is chosen from ``Cs`` by an
   inner stratified ``inner_folds``-fold CV on AUC. Features with a zero coefficient drop out.

The fitted score keeps only what prediction needs, by feature name: median, mean, sd and
coefficient of each selected feature, and the intercept. :class:`RadScorePair` fits one RadScore on
the tumour columns and one on the peritumoral columns and returns the two scores side by side.

Both follow scikit-learn's estimator conventions: ``fit(X, y)`` takes a DataFrame (its columns
become ``feature_names_in_``) or an array (plus ``feature_names=`` where the names matter, as for
the pair's ``tumor_``/``peritumoral_`` prefixes); ``n_features_in_`` is set; ``transform`` of a
fitted RadScore checks the columns like any scikit-learn transformer does. The labels may be any
two classes (``classes_``; the second, sorted, is the positive one).
"""
from __future__ import annotations


import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from DeepRadScoreLib.model.meta import RADSCORE_COLUMNS  # noqa: F401  (re-exported)


TUMOR_PREFIX = "tumor_"
PERITUMORAL_PREFIX = "peritumoral_"

DEFAULT_CS = tuple(np.logspace(-2, 1, 8))


class _SelectionSettings(TransformerMixin, BaseEstimator):
    """The feature-selection settings shared by one RadScore and the tumour + ring pair (as
    scikit-learn parameters: ``get_params``/``clone`` read them from this ``__init__``)."""

    def __init__(self, top_m: int = 20, max_correlation: float = 0.9, max_mode_fraction: float = 0.9,
                 Cs=DEFAULT_CS, inner_folds: int = 3, random_state: int = 0):
        self.top_m = top_m
        self.max_correlation = max_correlation
        self.max_mode_fraction = max_mode_fraction
        self.Cs = Cs
        self.inner_folds = inner_folds
        self.random_state = random_state


class RadScore(_SelectionSettings):
    """One ROI's RadScore (scikit-learn estimator; ``transform`` gives an ``(n, 1)`` column)."""

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags

        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # non-finite values take the training median (step 1)
        tags.target_tags.required = True  # the selection is supervised
        # Two classes only (Mann-Whitney between them, a binary logistic score). scikit-learn has
        # this tag for classifiers alone; set here it makes the estimator checks give a binary y.
        tags.classifier_tags = ClassifierTags(multi_class=False)
        return tags

    def fit(self, X, y, feature_names=None):
        """Select features and fit the L1 logistic regression on these (training) cases only.

        :param X: ``(n, p)`` DataFrame (names from its columns) or array.
        :param y: ``(n,)`` labels of two classes.
        :param feature_names: the ``p`` names of an array's columns (default ``x0, x1, ...``).
        :returns: ``self``.
        """
        from sklearn.utils.validation import validate_data

        X, y = validate_data(self, X, y, ensure_all_finite=False, dtype=np.float64)
        names = _names(self, feature_names, X.shape[1])
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError(f"RadScore needs two classes among the training cases, got "
                             f"{len(self.classes_)} class{'' if len(self.classes_) == 1 else 'es'}")
        y = (y == self.classes_[1]).astype(int)
        X = X.copy()
        finite = np.isfinite(X)
        medians = np.nanmedian(np.where(finite, X, np.nan), axis=0)
        medians = np.where(np.isfinite(medians), medians, 0.0)
        X[~finite] = np.broadcast_to(medians, X.shape)[~finite]

        mean = X.mean(axis=0)
        sd = X.std(axis=0)
        keep = (sd > 1e-12 * np.maximum(1.0, np.abs(mean))) & (_mode_fraction(X) <= self.max_mode_fraction)
        candidates = np.flatnonzero(keep)
        self.n_after_constant_ = int(candidates.size)

        z = (X[:, candidates] - mean[candidates]) / sd[candidates]
        filtered = self._filter(z, y)
        self.n_after_univariate_ = min(self.top_m, int(candidates.size))
        self.n_after_correlation_ = int(filtered.size)
        selected = candidates[filtered]
        coef = np.zeros(selected.size)
        intercept = 0.0
        self.C_ = float("nan")
        if selected.size:
            self.C_ = self._choose_c(z, y)
            model = _l1_logistic(self.C_, self.random_state).fit(z[:, filtered], y)
            coef = model.coef_.ravel()
            intercept = float(model.intercept_[0])
        nonzero = coef != 0
        selected, coef = selected[nonzero], coef[nonzero]
        self.selected_index_ = selected
        self.features_ = [names[i] for i in selected]
        self.median_ = medians[selected]
        self.mean_ = mean[selected]
        self.sd_ = sd[selected]
        self.coef_ = coef
        self.intercept_ = intercept
        return self

    def _filter(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Columns of ``z`` kept by the univariate filter and the correlation filter."""
        from scipy.stats import mannwhitneyu

        if z.shape[1] == 0:
            return np.array([], dtype=int)
        p = mannwhitneyu(z[y == 1], z[y == 0], axis=0, method="asymptotic").pvalue
        p = np.where(np.isfinite(p), p, 1.0)
        order = np.argsort(p, kind="stable")[: self.top_m]
        return order[_drop_correlated(z[:, order], self.max_correlation)]

    def _choose_c(self, z: np.ndarray, y: np.ndarray) -> float:
        """The C with the best mean held-out AUC over a stratified inner CV (ties: sparser).

        The univariate and correlation filters are refitted inside each inner fold, so that the
        inner AUC is not inflated by features chosen for separating the held-out cases too (with
        851 candidates, selecting first would make the strongest C look best on pure noise).
        """
        from sklearn.model_selection import StratifiedKFold

        folds = StratifiedKFold(self.inner_folds, shuffle=True, random_state=self.random_state)
        Cs = sorted(float(c) for c in self.Cs)
        mean_auc = np.zeros(len(Cs))
        for train, held_out in folds.split(z, y):
            columns = self._filter(z[train], y[train])
            for i, C in enumerate(Cs):
                model = _l1_logistic(C, self.random_state).fit(z[train][:, columns], y[train])
                mean_auc[i] += auc(y[held_out], z[held_out][:, columns] @ model.coef_.ravel())
        return Cs[int(np.argmax(mean_auc))]  # argmax takes the first, i.e. the smallest C

    def score_values(self, X, feature_names=None) -> np.ndarray:
        """The RadScore of each row, ``(n,)``, reading the selected features by name (any other
        columns, in any order, may be present: this is how a bundle applies it).

        :param X: a DataFrame, or an array with ``feature_names``.
        """
        X, names = _as_matrix(X, feature_names)
        position = {name: i for i, name in enumerate(names)}
        missing = [f for f in self.features_ if f not in position]
        if missing:
            raise KeyError(f"features missing: {', '.join(missing[:5])}")
        return self._score(X[:, [position[f] for f in self.features_]])

    def _score(self, values: np.ndarray) -> np.ndarray:
        if not self.features_:
            return np.full(values.shape[0], self.intercept_)
        values = values.astype(float)
        bad = ~np.isfinite(values)
        values[bad] = np.broadcast_to(self.median_, values.shape)[bad]
        return self.intercept_ + ((values - self.mean_) / self.sd_) @ self.coef_

    def transform(self, X, feature_names=None) -> np.ndarray:
        """The RadScore as an ``(n, 1)`` column.

        Without ``feature_names`` the columns must be those of :meth:`fit` (checked as any
        scikit-learn transformer checks them); with them, columns are found by name.
        """
        from sklearn.utils.validation import check_is_fitted, validate_data

        check_is_fitted(self, "features_")
        if feature_names is not None or not hasattr(self, "selected_index_"):
            return self.score_values(X, feature_names)[:, None]
        X = validate_data(self, X, reset=False, ensure_all_finite=False, dtype=np.float64)
        return self._score(X[:, self.selected_index_])[:, None]

    def get_feature_names_out(self, input_features=None):
        return np.asarray(["radscore"], dtype=object)

    def coefficients(self) -> dict:
        """Readable description: intercept and, per selected feature, its coefficient on the
        z-scored feature plus the training mean / sd / median used to z-score (impute) it."""
        return {
            "intercept": float(self.intercept_),
            "C": None if np.isnan(self.C_) else float(self.C_),
            "selection_counts": {"input": int(self.n_features_in_),
                                 "after_near_constant": self.n_after_constant_,
                                 "after_univariate": self.n_after_univariate_,
                                 "after_correlation": self.n_after_correlation_,
                                 "after_lasso": len(self.features_)},
            "features": [{"name": f, "coefficient": float(c), "mean": float(m), "sd": float(s),
                          "median": float(md)}
                         for f, c, m, s, md in zip(self.features_, self.coef_, self.mean_, self.sd_,
                                                    self.median_)],
        }

    @classmethod
    def from_coefficients(cls, description: dict) -> "RadScore":
        """Rebuild a fitted RadScore from :meth:`coefficients` (as stored in bundle.json)."""
        score = cls()
        features = description["features"]
        score.features_ = [f["name"] for f in features]
        score.coef_ = np.array([f["coefficient"] for f in features], dtype=float)
        score.mean_ = np.array([f["mean"] for f in features], dtype=float)
        score.sd_ = np.array([f["sd"] for f in features], dtype=float)
        score.median_ = np.array([f["median"] for f in features], dtype=float)
        score.intercept_ = float(description["intercept"])
        score.C_ = float("nan") if description.get("C") is None else float(description["C"])
        counts = description.get("selection_counts", {})
        score.n_features_in_ = counts.get("input", 0)
        score.n_after_constant_ = counts.get("after_near_constant", 0)
        score.n_after_univariate_ = counts.get("after_univariate", 0)
        score.n_after_correlation_ = counts.get("after_correlation", 0)
        return score


class RadScorePair(_SelectionSettings):
    """The tumour and peritumoral RadScores from the 1702 feature columns: ``(n, 2)``."""

    def fit(self, X, y, feature_names=None):
        """Fit the tumour RadScore on the ``tumor_*`` columns and the ring's on ``peritumoral_*``.

        :param X: ``(n, 1702)`` DataFrame or array (then ``feature_names`` is required).
        :param y: ``(n,)`` labels of two classes.
        :returns: ``self``.
        """
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        X, names = _as_matrix(X, feature_names)
        self.n_features_in_ = X.shape[1]
        self.scores_ = {}
        for roi, prefix in (("tumor", TUMOR_PREFIX), ("peritumoral", PERITUMORAL_PREFIX)):
            columns = [i for i, n in enumerate(names) if n.startswith(prefix)]
            if not columns:
                raise ValueError(f"no '{prefix}*' feature columns")
            score = RadScore(self.top_m, self.max_correlation, self.max_mode_fraction, self.Cs,
                             self.inner_folds, self.random_state)
            self.scores_[roi] = score.fit(X[:, columns], y, [names[i] for i in columns])
        return self

    def transform(self, X, feature_names=None) -> np.ndarray:
        """``(n, 2)``: the tumour and ring RadScores (columns found by name)."""
        X, names = _as_matrix(X, feature_names if feature_names is not None
                              else getattr(self, "feature_names_in_", None))
        return np.column_stack([self.scores_[roi].score_values(X, names)
                                for roi in ("tumor", "peritumoral")])

    def get_feature_names_out(self, input_features=None):
        return np.asarray(RADSCORE_COLUMNS, dtype=object)

    def coefficients(self) -> dict:
        return {roi: score.coefficients() for roi, score in self.scores_.items()}

    @classmethod
    def from_coefficients(cls, description: dict) -> "RadScorePair":
        pair = cls()
        pair.scores_ = {roi: RadScore.from_coefficients(description[roi])
                        for roi in ("tumor", "peritumoral")}
        return pair


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties count 1/2); 0.5 for a constant score."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _l1_logistic(C: float, random_state: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", class_weight="balanced",
                              max_iter=1000, random_state=random_state)


def _names(estimator, feature_names, n_columns: int) -> list[str]:
    """The column names of what ``fit`` was given: explicit ones, the DataFrame's, or x0, x1..."""
    if feature_names is not None:
        if len(feature_names) != n_columns:
            raise ValueError(f"{len(feature_names)} feature names for {n_columns} columns")
        return [str(n) for n in feature_names]
    if hasattr(estimator, "feature_names_in_"):
        return [str(n) for n in estimator.feature_names_in_]
    return [f"x{i}" for i in range(n_columns)]


def _as_matrix(X, feature_names) -> tuple[np.ndarray, list[str]]:
    """A float matrix and its column names, from a DataFrame or an array plus names."""
    if hasattr(X, "columns"):
        return X.to_numpy(dtype=float), [str(c) for c in X.columns]
    X = np.asarray(X, dtype=float)
    if feature_names is None:
        raise ValueError("a plain array needs feature_names")
    if len(feature_names) != X.shape[1]:
        raise ValueError(f"{len(feature_names)} feature names for {X.shape[1]} columns")
    return X, list(feature_names)


def _mode_fraction(X: np.ndarray) -> np.ndarray:
    """Per column, the share of rows holding that column's most frequent value."""
    s = np.sort(X, axis=0)
    n = s.shape[0]
    if n == 0:
        return np.zeros(X.shape[1])
    # Sorted, equal values are adjacent: number the runs per column and count the longest.
    change = np.vstack([np.ones((1, s.shape[1]), bool), s[1:] != s[:-1]])
    run = np.cumsum(change, axis=0) - 1
    counts = np.bincount((run + np.arange(s.shape[1]) * n).ravel(), minlength=n * s.shape[1])
    best = counts.reshape(s.shape[1], n).max(axis=1)
    return best / n


def _drop_correlated(z: np.ndarray, max_correlation: float) -> np.ndarray:
    """Indices (into ``z``'s columns, ordered most significant first) kept by the greedy filter."""
    if z.shape[1] <= 1:
        return np.arange(z.shape[1])
    r = np.abs(np.corrcoef(z, rowvar=False))
    kept: list[int] = []
    for j in range(z.shape[1]):
        if all(r[j, i] <= max_correlation for i in kept):
            kept.append(j)
    return np.array(kept, dtype=int)
