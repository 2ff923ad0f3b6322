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

The winner's mean CV AUC is the best of seven on the same folds, so it is optimistic: on labels
independent of the inputs its expected value is above 0.5. Beside it :func:`select_classifier`
reports a nested-CV estimate of the selection *procedure*: for each outer fold o (the 5 folds of
the first ``nested_repeats`` repeats) an inner CV on the other four folds alone chooses a
candidate, and that choice is scored on fold o. The inner CV uses the outer partition's own folds
(inner fold j of outer fold o trains on the folds other than o and j), so one fit on "all but
folds o and j" serves both outer fold o (held out: j) and outer fold j (held out: o), and the outer
scores are the standard CV's own fits of that repeat: a whole nested estimate costs 10 extra fold
fits per repeat (one RadScorePair each, shared by the 7 candidates and 3 models), not 25. Its
inner choice sees 3/5 of the cases in 4 folds, not 4/5 in 5 x ``repeats``, so it estimates a
slightly noisier procedure than the one trained: in expectation it errs on the pessimistic side.
On a null endpoint its mean stays at 0.5 where the winner's mean does not (Testing/test_classifiers).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from DeepRadScoreLib.errors import Cancelled
from DeepRadScoreLib.progress import report
# One rule for P(class 1) at training and prediction (NaN -> 0.5), kept with the numpy forms.
from DeepRadScoreLib.model.inference import positive_probability  # noqa: F401  (re-exported)
from DeepRadScoreLib.model.meta import CANDIDATES, MODELS  # noqa: F401  (re-exported)
from DeepRadScoreLib.model.radscore import RadScorePair, auc


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


@dataclass
class ModelSelection:
    """The CV result of one endpoint's one model: every candidate's AUCs, the winner, and the
    nested-CV estimate of choosing that way."""

    model: str
    chosen: str
    cv_auc: dict  # candidate -> {"mean", "sd", "aucs": [repeats * folds values]}
    oof_probability: np.ndarray = field(repr=False)  # chosen candidate, first repeat, per case
    threshold: float
    nested_cv_auc: dict  # {"mean", "sd", "aucs": [per outer fold], "chosen": [per outer fold]}


def model_inputs(radscores: np.ndarray, deep: np.ndarray | None) -> dict[str, np.ndarray]:
    """The classifier input of each model from the two RadScores and the deep features."""
    inputs = {"radiomics": radscores}
    if deep is not None:
        inputs["deep"] = deep
        inputs["fusion"] = np.hstack([deep, radscores])
    return inputs


def select_classifier(features: np.ndarray, feature_names: list[str], y: np.ndarray,
                      deep_oof: np.ndarray | None, repeats: int = 10, seed: int = 0,
                      n_jobs: int = 1, radscore_params: dict | None = None, nested_repeats: int = 1,
                      progress=None, cancel=None) -> dict[str, ModelSelection]:
    """Choose each model's classifier by stratified 5-fold CV x ``repeats`` (seeded), and
    estimate that choice's performance by nested CV (see the module doc).

    :param features: the training cases' radiomics columns ``(n, 1702)``.
    :param feature_names: their names (tumour columns ``tumor_*``, ring columns ``peritumoral_*``).
    :param y: the 0/1 labels ``(n,)``.
    :param deep_oof: the cases' cross-fitted deep features ``(n, k)``; ``None``: radiomics only.
    :param repeats: repeats of the 5-fold CV that chooses the classifier.
    :param nested_repeats: outer repeats of the nested estimate (at most ``repeats``); each costs
        10 fold fits.
    :param n_jobs: processes for the folds.
    :returns: ``{model: ModelSelection}``.
    """
    from joblib import Parallel, delayed
    from sklearn.model_selection import RepeatedStratifiedKFold

    y = np.asarray(y).astype(int)
    n_pos, n_neg = int(y.sum()), int((y == 0).sum())
    if min(n_pos, n_neg) < MIN_PER_CLASS:
        raise ValueError(f"{n_pos} positive / {n_neg} negative cases: need {MIN_PER_CLASS} of each")
    if nested_repeats < 1:
        raise ValueError(f"nested_repeats must be at least 1, got {nested_repeats}")
    splitter = RepeatedStratifiedKFold(n_splits=N_SPLITS, n_repeats=repeats, random_state=seed)
    splits = list(splitter.split(np.zeros(len(y)), y))  # repeat r, fold f at r * N_SPLITS + f
    nested_repeats = min(nested_repeats, repeats)
    # The nested CV's extra fits: per outer repeat, one per pair of folds {o, j}.
    pairs = [(r, o, j) for r in range(nested_repeats) for o in range(N_SPLITS) for j in range(o + 1, N_SPLITS)]
    jobs = [(i, train, held_out) for i, (train, held_out) in enumerate(splits)]
    for r, o, j in pairs:
        fold_o, fold_j = splits[r * N_SPLITS + o][1], splits[r * N_SPLITS + j][1]
        held_out = np.concatenate([fold_o, fold_j])
        jobs.append(((r, o, j), np.setdiff1d(np.arange(len(y)), held_out), held_out))
    features = np.asarray(features, dtype=float)
    models = list(model_inputs(np.zeros((1, 2)), None if deep_oof is None else np.zeros((1, 1))))
    aucs = {m: {c: np.full(len(splits), np.nan) for c in CANDIDATES} for m in models}
    first_repeat = {m: {c: np.full(len(y), np.nan) for c in CANDIDATES} for m in models}
    pair_probability: dict = {}

    tasks = (delayed(_evaluate_fold)(key, features, feature_names, y, deep_oof, train, held_out, seed,
                                     radscore_params or {})
             for key, train, held_out in jobs)
    done = 0
    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks)
    try:
        for key, fold in results:
            if isinstance(key, tuple):
                pair_probability[key] = fold
            else:
                held_out = splits[key][1]
                for m, per_candidate in fold.items():
                    for c, probability in per_candidate.items():
                        aucs[m][c][key] = auc(y[held_out], probability)
                        if key < N_SPLITS:
                            first_repeat[m][c][held_out] = probability
            done += 1
            report(progress, done / len(jobs), f"cross-validation fold {done}/{len(jobs)}", cancel)
    except Cancelled:
        results.close()
        raise

    selections = {}
    for m in models:
        table = {c: {"mean": float(np.mean(a)), "sd": _sd(a), "aucs": [float(v) for v in a]}
                 for c, a in aucs[m].items()}
        chosen = max(CANDIDATES, key=lambda c: table[c]["mean"])  # ties: the earlier candidate
        oof = first_repeat[m][chosen]
        nested = _nested_estimate(m, splits, pair_probability, aucs[m], y, nested_repeats)
        selections[m] = ModelSelection(m, chosen, table, oof, youden_threshold(y, oof), nested)
    return selections


def _nested_estimate(model: str, splits, pair_probability: dict, outer_aucs: dict, y: np.ndarray,
                     nested_repeats: int) -> dict:
    """Per outer fold: the inner CV's winner on the other four folds, scored on the outer fold."""
    values, chosen = [], []
    for r in range(nested_repeats):
        for o in range(N_SPLITS):
            inner = {c: [] for c in CANDIDATES}
            for j in range(N_SPLITS):
                if j == o:
                    continue
                key = (r, min(o, j), max(o, j))
                fold_j = splits[r * N_SPLITS + j][1]
                n_first = len(splits[r * N_SPLITS + key[1]][1])
                # The pair fit's held-out rows are fold min(o, j) then fold max(o, j).
                part = slice(n_first, None) if j > o else slice(0, n_first)
                for c in CANDIDATES:
                    inner[c].append(auc(y[fold_j], pair_probability[key][model][c][part]))
            winner = max(CANDIDATES, key=lambda c: float(np.mean(inner[c])))
            chosen.append(winner)
            values.append(float(outer_aucs[winner][r * N_SPLITS + o]))
    return {"mean": float(np.mean(values)), "sd": _sd(values), "aucs": values, "chosen": chosen}


def _sd(values) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _evaluate_fold(index, features, feature_names, y, deep_oof, train, held_out, seed,
                   radscore_params):
    """One fold: fit the RadScorePair once, then every candidate for every model.

    One BLAS/OpenMP thread: these are tiny problems (2-12 inputs, ~100 cases), where a thread
    pool's start-up and spinning cost more than the work (measured: the MLP's L-BFGS and KNN's
    distances ran 6x slower with two threads on two busy cores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
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
