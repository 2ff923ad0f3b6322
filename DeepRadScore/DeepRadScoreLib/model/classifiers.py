"""The combined classifier: seven scikit-learn candidates, chosen by repeated cross-validation.

For each endpoint and each of the three models (``radiomics``: the two RadScores; ``deep``: the k
deep features; ``fusion``: the k deep features and the two RadScores side by side) the candidate
with the best mean AUC over stratified 5-fold CV x ``repeats`` on the training cases wins (paper,
Appendix E6). Everything fitted on data is fitted inside each fold: the RadScorePair (z-scoring,
selection, LASSO) is fitted on the fold's training part once and reused for all seven candidates
and the three models; each candidate is a pipeline that z-scores its inputs on the fold's training
part. Deep features come cross-fitted (``DeepEnsemble.oof_features``), so no network saw the label
of the case whose features it produced.

The decision threshold is chosen on training data only: Youden's J (sensitivity + specificity - 1)
maximised over the out-of-fold probabilities of the chosen candidate in the first CV repeat, where
every training case has exactly one held-out prediction.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from DeepRadScoreLib.errors import Cancelled
from DeepRadScoreLib.progress import report
from DeepRadScoreLib.model.radscore import RadScorePair, auc

CANDIDATES = ("SVM", "KNN", "RF", "NB", "LR", "MLP", "LDA")
MODELS = ("radiomics", "deep", "fusion")
N_SPLITS = 5
# Fewer cases of the rarer class than this and an endpoint cannot be cross-validated.
MIN_PER_CLASS = N_SPLITS


KNN_NEIGHBOURS = 15


def make_classifier(name: str, seed: int = 0, n_train: int | None = None):
    """A fresh, unfitted candidate: inputs z-scored, then the classifier.

    ``n_train``, the number of cases it will be fitted on, caps KNN's neighbours (a CV fold of a
    small cohort can hold fewer than 15 cases).

    Small, fixed settings suited to 2-12 inputs and one to a few hundred cases; they keep one
    fit in the milliseconds so that 7 candidates x 3 models x 50 folds x 10 endpoints stay cheap.
    The SVM's probabilities come from Platt scaling fitted on 3 internal folds of the training
    part (``CalibratedClassifierCV``, ``ensemble=False``: one SVC on all of it), not from the
    deprecated ``SVC(probability=True)``; ranks, hence AUC, are those of the SVC's decision value.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if name == "SVM":
        clf = CalibratedClassifierCV(SVC(kernel="rbf", C=1.0, gamma="scale", class_weight="balanced"),
                                     method="sigmoid", cv=3, ensemble=False)
    elif name == "KNN":
        neighbours = KNN_NEIGHBOURS if n_train is None else max(1, min(KNN_NEIGHBOURS, n_train))
        clf = KNeighborsClassifier(n_neighbors=neighbours, weights="distance", algorithm="brute")
    elif name == "RF":
        clf = RandomForestClassifier(n_estimators=30, min_samples_leaf=3, class_weight="balanced",
                                     random_state=seed, n_jobs=1)
    elif name == "NB":
        clf = GaussianNB()
    elif name == "LR":
        clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
    elif name == "MLP":
        clf = MLPClassifier(hidden_layer_sizes=(16,), alpha=1.0, solver="lbfgs", max_iter=100,
                            random_state=seed)
    elif name == "LDA":
        clf = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    else:
        raise ValueError(f"unknown classifier {name!r}; choose from {', '.join(CANDIDATES)}")
    return Pipeline([("scale", StandardScaler()), ("classifier", clf)])


def fit_classifier(name: str, X: np.ndarray, y: np.ndarray, seed: int = 0):
    """Fit candidate ``name`` quietly (the MLP's L-BFGS stops at its iteration cap by design)."""
    from sklearn.exceptions import ConvergenceWarning

    model = make_classifier(name, seed, n_train=len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, np.asarray(y).astype(int))


def positive_probability(model, X: np.ndarray) -> np.ndarray:
    """P(class 1). Inputs that were constant in training leave some candidates (GaussianNB with
    zero variance everywhere) without an answer: NaN becomes 0.5, "no information"."""
    with np.errstate(divide="ignore", invalid="ignore"):
        probability = model.predict_proba(X)[:, 1]
    return np.nan_to_num(probability, nan=0.5)


@dataclass
class ModelSelection:
    """The CV result of one endpoint's one model: every candidate's AUCs and the winner."""

    model: str
    chosen: str
    cv_auc: dict  # candidate -> {"mean", "sd", "aucs": [repeats * folds values]}
    oof_probability: np.ndarray = field(repr=False)  # chosen candidate, first repeat, per case
    threshold: float

    def to_json(self) -> dict:
        return {"chosen": self.chosen, "threshold": self.threshold, "cv_auc": self.cv_auc}


def model_inputs(radscores: np.ndarray, deep: np.ndarray | None) -> dict[str, np.ndarray]:
    """The classifier input of each model from the two RadScores and the deep features."""
    inputs = {"radiomics": radscores}
    if deep is not None:
        inputs["deep"] = deep
        inputs["fusion"] = np.hstack([deep, radscores])
    return inputs


def select_classifier(features: np.ndarray, feature_names: list[str], y: np.ndarray,
                      deep_oof: np.ndarray | None, repeats: int = 10, seed: int = 0,
                      n_jobs: int = 1, radscore_params: dict | None = None,
                      progress=None, cancel=None) -> dict[str, ModelSelection]:
    """Choose each model's classifier by stratified 5-fold CV x ``repeats`` (seeded).

    ``features`` are the training cases' 1702 radiomics columns, ``deep_oof`` their cross-fitted
    deep features ``(n, k)`` (``None``: the radiomics model only). Returns ``{model: selection}``.
    """
    from joblib import Parallel, delayed
    from sklearn.model_selection import RepeatedStratifiedKFold

    y = np.asarray(y).astype(int)
    n_pos, n_neg = int(y.sum()), int((y == 0).sum())
    if min(n_pos, n_neg) < MIN_PER_CLASS:
        raise ValueError(f"{n_pos} positive / {n_neg} negative cases: need {MIN_PER_CLASS} of each")
    splitter = RepeatedStratifiedKFold(n_splits=N_SPLITS, n_repeats=repeats, random_state=seed)
    splits = list(splitter.split(np.zeros(len(y)), y))
    features = np.asarray(features, dtype=float)
    models = list(model_inputs(np.zeros((1, 2)), None if deep_oof is None else np.zeros((1, 1))))
    aucs = {m: {c: np.full(len(splits), np.nan) for c in CANDIDATES} for m in models}
    first_repeat = {m: {c: np.full(len(y), np.nan) for c in CANDIDATES} for m in models}

    tasks = (delayed(_evaluate_fold)(i, features, feature_names, y, deep_oof, train, held_out, seed,
                                     radscore_params or {})
             for i, (train, held_out) in enumerate(splits))
    done = 0
    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks)
    try:
        for i, fold in results:
            held_out = splits[i][1]
            for m, per_candidate in fold.items():
                for c, probability in per_candidate.items():
                    aucs[m][c][i] = auc(y[held_out], probability)
                    if i < N_SPLITS:
                        first_repeat[m][c][held_out] = probability
            done += 1
            report(progress, done / len(splits), f"cross-validation fold {done}/{len(splits)}", cancel)
    except Cancelled:
        results.close()
        raise

    selections = {}
    for m in models:
        table = {c: {"mean": float(np.mean(a)), "sd": float(np.std(a, ddof=1)) if len(a) > 1 else 0.0,
                     "aucs": [float(v) for v in a]} for c, a in aucs[m].items()}
        chosen = max(CANDIDATES, key=lambda c: table[c]["mean"])  # ties: the earlier candidate
        oof = first_repeat[m][chosen]
        selections[m] = ModelSelection(m, chosen, table, oof, youden_threshold(y, oof))
    return selections


def _evaluate_fold(index, features, feature_names, y, deep_oof, train, held_out, seed,
                   radscore_params):
    """One fold: fit the RadScorePair once, then every candidate for every model."""
    pair = RadScorePair(random_state=seed, **radscore_params).fit(features[train], y[train],
                                                                  feature_names)
    radscores = pair.transform(features, feature_names)
    inputs = model_inputs(radscores, deep_oof)
    out = {}
    for m, X in inputs.items():
        out[m] = {c: positive_probability(fit_classifier(c, X[train], y[train], seed), X[held_out])
                  for c in CANDIDATES}
    return index, out


def youden_threshold(y: np.ndarray, probability: np.ndarray) -> float:
    """The probability cut maximising sensitivity + specificity - 1 (``>=`` means positive)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(np.asarray(y).astype(int), probability)
    j = tpr - fpr
    j[~np.isfinite(thresholds)] = -np.inf  # roc_curve's first cut (+inf) calls no case positive
    return float(thresholds[int(np.argmax(j))])
