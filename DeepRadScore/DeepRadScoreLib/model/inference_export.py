"""A fitted candidate pipeline to its numpy inference form, checked against scikit-learn first.

The training side of :mod:`DeepRadScoreLib.model.inference` (what each form computes is described
there). :func:`export_classifier` reads the fitted attributes of the exact types
``classifiers.make_classifier`` builds, with the settings it uses, and refuses anything else;
then it compares the exported form's ``predict_proba`` with the pipeline's own on the training
inputs, noisy copies of them, random rows over the training range, rows far outside it and, for
RF, rows with a missing value. Any difference above :data:`~DeepRadScoreLib.model.inference.CHECK_ATOL`
exports nothing (logged): the bundle then applies that model through its skops file.
scikit-learn is imported inside the functions: this module is only used where a bundle is saved.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np

from DeepRadScoreLib.model.inference import (CHECK_ATOL, FORMAT, HIDDEN_ACTIVATIONS, VERSION,
                                             InferenceClassifier, _knn_neighbours)

logger = logging.getLogger(__name__)


class Unsupported(Exception):
    """An estimator (or setting) the inference forms do not reproduce."""


def export_classifier(pipeline, X=None, name: str = "classifier", seed: int = 0) -> dict | None:
    """The checked inference document of a fitted candidate pipeline, or ``None``.

    :param pipeline: a fitted ``Pipeline([StandardScaler, candidate])`` on classes 0 and 1.
    :param X: the inputs it was fitted on ``(n, p)``, rows it must reproduce; ``None``: only rows
        made from its fitted state (scaler statistics, stored training points).
    :param name: how the log names it (e.g. ``EGFR fusion``).
    :param seed: seeds the random check rows.
    :returns: a JSON-safe dict (``InferenceClassifier.from_json`` reads it back) whose ``check``
        records the rows compared and the largest difference; ``None`` (logged why) when the
        estimator is of an unknown kind or setting, or its form differs from it anywhere.
    """
    try:
        doc = describe(pipeline)
        model = InferenceClassifier.from_json(doc)
    except (Unsupported, ValueError, TypeError, AttributeError, IndexError) as why:
        logger.info("%s: no numpy inference form (%s); the bundle applies it through its skops file",
                    name, why)
        return None
    rows = check_rows(pipeline, X, seed)
    worst, skipped, problem = compare(pipeline, model, rows)
    if problem:
        logger.warning("%s: numpy inference form not exported (%s); the bundle applies it through "
                       "its skops file", name, problem)
        return None
    if skipped:
        logger.debug("%s: %d KNN check rows on training points differ where scikit-learn's distances "
                     "are rounding", name, skipped)
    doc["check"] = {"rows": int(len(rows)), "max_abs_difference": float(worst), "knn_rounding_rows": skipped}
    return doc


def describe(pipeline) -> dict:
    """The inference document of ``pipeline``, unchecked. :raises Unsupported: what does not fit."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if type(pipeline) is not Pipeline or len(pipeline.steps) != 2:
        raise Unsupported(f"{type(pipeline).__name__} is not a scaler + classifier pipeline")
    scaler, clf = (step for _, step in pipeline.steps)
    if type(scaler) is not StandardScaler or not (scaler.with_mean and scaler.with_std):
        raise Unsupported(f"first step {type(scaler).__name__} is not a centring, scaling StandardScaler")
    if [int(c) for c in getattr(clf, "classes_", [])] != [0, 1] or np.asarray(clf.classes_).dtype.kind not in "iu":
        raise Unsupported("classes are not the integers 0 and 1")
    describers = _describers()
    if type(clf) not in describers:
        raise Unsupported(f"unknown estimator {type(clf).__name__}")
    kind, model = describers[type(clf)](clf)
    return {"format": FORMAT, "version": VERSION, "kind": kind, "mean": scaler.mean_.tolist(),
            "scale": scaler.scale_.tolist(), "model": model}


def _describers() -> dict:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    return {CalibratedClassifierCV: _svm, KNeighborsClassifier: _knn, RandomForestClassifier: _rf,
            GaussianNB: _nb, LogisticRegression: lambda c: ("LR", _linear(c)), MLPClassifier: _mlp,
            LinearDiscriminantAnalysis: lambda c: ("LDA", _linear(c))}


def _svm(clf) -> tuple[str, dict]:
    from sklearn.calibration import _SigmoidCalibration
    from sklearn.svm import SVC

    if clf.method != "sigmoid":
        raise Unsupported(f"calibration method {clf.method!r}")
    calibrated = []
    for cc in clf.calibrated_classifiers_:
        svc = cc.estimator
        if (type(svc) is not SVC or svc.kernel != "rbf" or getattr(svc, "_sparse", False)
                or [int(c) for c in svc.classes_] != [0, 1] or cc.method != "sigmoid"
                or len(cc.calibrators) != 1 or type(cc.calibrators[0]) is not _SigmoidCalibration):
            raise Unsupported("not a sigmoid-calibrated dense RBF SVC on classes 0 and 1")
        sigmoid = cc.calibrators[0]
        # dual_coef_ and intercept_ as scikit-learn exposes them: signed for class 1 already.
        calibrated.append({"support_vectors": svc.support_vectors_.tolist(),
                           "dual_coef": svc.dual_coef_[0].tolist(), "intercept": float(svc.intercept_[0]),
                           "gamma": float(svc._gamma), "a": float(sigmoid.a_), "b": float(sigmoid.b_)})
    return "SVM", {"calibrated": calibrated}


def _knn(clf) -> tuple[str, dict]:
    if (clf.weights != "distance" or clf._fit_method != "brute" or clf.effective_metric_ != "euclidean"
            or clf.outputs_2d_ or not isinstance(clf._fit_X, np.ndarray)):
        raise Unsupported("not a distance-weighted brute-force euclidean KNN on one output")
    return "KNN", {"points": clf._fit_X.tolist(), "labels": [int(v) for v in clf._y],
                   "k": int(clf.n_neighbors)}


def _rf(clf) -> tuple[str, dict]:
    if clf.n_outputs_ != 1 or int(clf.n_classes_) != 2:
        raise Unsupported("not a two-class forest with one output")
    trees = []
    for estimator in clf.estimators_:
        tree = estimator.tree_
        trees.append({"left": tree.children_left.tolist(), "right": tree.children_right.tolist(),
                      "feature": tree.feature.tolist(), "threshold": tree.threshold.tolist(),
                      "missing_left": np.asarray(tree.missing_go_to_left).astype(int).tolist(),
                      "value": tree.value[:, 0, :].tolist()})
    return "RF", {"trees": trees}


def _nb(clf) -> tuple[str, dict]:
    return "NB", {"theta": clf.theta_.tolist(), "var": clf.var_.tolist(), "prior": clf.class_prior_.tolist()}


def _linear(clf) -> dict:
    return {"coef": np.asarray(clf.coef_, dtype=float).tolist(),
            "intercept": np.asarray(clf.intercept_, dtype=float).reshape(-1).tolist()}


def _mlp(clf) -> tuple[str, dict]:
    if clf.out_activation_ != "logistic" or clf.activation not in HIDDEN_ACTIVATIONS or clf.n_outputs_ != 1:
        raise Unsupported(f"MLP with {clf.activation} hidden layers and a {clf.out_activation_} output")
    return "MLP", {"hidden_activation": clf.activation, "coefs": [w.tolist() for w in clf.coefs_],
                   "intercepts": [b.tolist() for b in clf.intercepts_]}


def check_rows(pipeline, X=None, seed: int = 0) -> np.ndarray:
    """Rows to compare on: ``X`` and noisy copies, the training points the estimator stores (KNN's,
    the SVC's support vectors), random rows over the training range (1 and 4 SD) and rows 10 to
    1000 SD outside it."""
    scaler, clf = (step for _, step in pipeline.steps)
    mean, sd = scaler.mean_, scaler.scale_
    rng = np.random.default_rng(seed)
    p = mean.shape[0]
    parts = []
    if X is not None:
        X = np.asarray(X, dtype=float)
        parts += [X, X + 0.05 * sd * rng.standard_normal(X.shape)]
    stored = [getattr(clf, "_fit_X", None)] + [getattr(cc.estimator, "support_vectors_", None)
                                               for cc in getattr(clf, "calibrated_classifiers_", [])]
    parts += [np.asarray(z) * sd + mean for z in stored if isinstance(z, np.ndarray) and z.ndim == 2]
    parts.append(mean + sd * rng.standard_normal((200, p)))
    parts.append(mean + 4 * sd * rng.standard_normal((40, p)))
    parts.append(mean + sd * rng.choice([-1.0, 1.0], (40, p)) * 10 ** rng.uniform(1, 3, (40, p)))
    return np.vstack(parts)


def compare(pipeline, model: InferenceClassifier, rows: np.ndarray) -> tuple[float, int, str]:
    """``(largest difference, KNN rows left out, problem or "")`` of ``model`` against ``pipeline``."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        expected = pipeline.predict_proba(rows)
        got = model.predict_proba(rows)
        if model.kind == "RF":  # the one kind that takes a missing value (missing_go_to_left)
            holes = rows[: min(len(rows), 30)].copy()
            holes[np.arange(len(holes)), np.arange(len(holes)) % holes.shape[1]] = np.nan
            expected = np.vstack([expected, pipeline.predict_proba(holes)])
            got = np.vstack([got, model.predict_proba(holes)])
    if expected.shape != got.shape:
        return np.inf, 0, f"shape {got.shape} instead of {expected.shape}"
    if (np.isnan(expected) != np.isnan(got)).any():
        return np.inf, 0, "NaN where scikit-learn gives a number, or the reverse"
    difference = np.abs(np.where(np.isnan(expected), 0.0, expected - got)).max(axis=1)
    skip = np.zeros(len(difference), dtype=bool)
    if model.kind == "KNN":  # compared everywhere; a difference is excused only on rounding rows
        skip[: len(rows)] = _knn_rounding_rows(model, rows) & (difference[: len(rows)] > CHECK_ATOL)
    worst = float(difference[~skip].max(initial=0.0))
    if not worst <= CHECK_ATOL:
        row = int(np.flatnonzero(~skip)[np.argmax(difference[~skip])])
        return worst, int(skip.sum()), f"differs from scikit-learn by {worst:.3g} on check row {row}"
    return worst, int(skip.sum()), ""


def _knn_rounding_rows(model: InferenceClassifier, rows: np.ndarray) -> np.ndarray:
    """Rows with a training point so near that scikit-learn's distance to it is rounding.

    scikit-learn computes ``|x|^2 - 2 x.y + |y|^2``, whose absolute error is about
    ``eps (|x|^2 + |y|^2)`` times the few terms summed; the weight ``1/d`` then keeps 9 digits only
    where ``d^2`` exceeds that error 1e7-fold (measured: a query equal to a training point gets 0
    from it for ~85 % of points and ~1e-8 for the rest). Such rows are training inputs, or their
    round trip through the scaler: a new case never lies within ~1e-3 SD of a training case.
    """
    Z = (rows - model.mean) / model.scale
    points = model.params["points"]
    d2, _ = _knn_neighbours(model.params, Z)
    norms = (Z ** 2).sum(axis=1)[:, None] + (points ** 2).sum(axis=1)[None, :]
    return (d2 <= 1e7 * 64 * np.finfo(float).eps * norms).any(axis=1)
