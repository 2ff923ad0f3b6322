"""The fitted classifiers and the RadScores applied with numpy alone.

A predict process spent ~1.5 s of CPU importing scikit-learn (the RadScores were scikit-learn
estimators) and skops (``skops.io`` walks every scikit-learn module) to apply a handful of
small models, beside the two radiomics processes on a 2-core machine. Here every fitted candidate
pipeline of ``classifiers.make_classifier`` (a StandardScaler, then one of seven classifiers) is
exported to a JSON document of plain numbers (``inference_export.export_classifier``, the
training side, which imports scikit-learn) and applied by
:class:`InferenceClassifier`, which imports nothing but numpy. With ``Z = (X - mean) / scale``:

- **SVM** (``CalibratedClassifierCV`` of an RBF SVC, Platt scaling): ``d = sum_i c_i
  exp(-gamma |Z - s_i|^2) + c_0`` with scikit-learn's public ``dual_coef_``/``intercept_``
  (already signed for class 1), ``P1 = 1 / (1 + exp(a d + b))``, averaged over the calibrated
  copies (one with ``ensemble=False``).
- **KNN** (distance weights, brute force): exact squared distances to the stored (scaled)
  training points; the k nearest, exactly tied ones decided as scikit-learn's fixed-size max-heap
  decides them; weights ``1/d``, or, when some distances are 0, weight 1 for those and 0 for the
  others (scikit-learn's rule); ``P = weighted votes / their sum``.
- **RF**: every tree walked on ``float32(Z)`` (scikit-learn compares float32 inputs with its
  float64 thresholds; NaN follows ``missing_go_to_left``), the leaves' class fractions summed in
  tree order and divided by the number of trees.
- **NB**: the Gaussian joint log-likelihood of each class, normalised by a log-sum-exp formed
  like scikit-learn's (max term split off, ``log1p`` of the rest).
- **LR**, **LDA**: ``P1 = 1 / (1 + exp(-(Z w + b)))``.
- **MLP**: the hidden layers (relu, tanh, logistic or identity), then a logistic output.

The export is checked before anything is written: the exported form must give the pipeline's own
``predict_proba`` to :data:`CHECK_ATOL` on the training inputs, perturbed copies of them, random
rows over the training range and rows far outside it. An estimator of another kind or setting,
or any difference, exports nothing (logged); the bundle then uses the skops file for that model.
One measured exception, for KNN only: a query that coincides with a training point has distance 0
here, but scikit-learn computes ``|x|^2 - 2 x.y + |y|^2`` and gets 0 for most such points and
~1e-8 (rounding) for the rest, so it applies its own zero-distance rule to some coinciding rows
and not to others. Check rows that lie on a training point, within that rounding (training
inputs and their round trip through the scaler), may differ (counted in the document's
``check``); every other row must match. A new case does not come within ~1e-3 SD of a training
case; a training case predicted again does (its RadScores are its training inputs), and there
the KNN applies the zero-distance rule exactly where scikit-learn may not.

:class:`RadScoreTransform` is the two RadScores from their coefficients in bundle.json: the
arithmetic of ``RadScore.score_values`` (median imputation, z-scoring, the linear score), equal to
``RadScorePair.transform``. :func:`read_inference` reads a bundle's inference file defensively:
any problem is one :class:`InputError` naming the file.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from DeepRadScoreLib.errors import InputError


FORMAT = "deepradscore-inference"
VERSION = 1
CHECK_ATOL = 1e-9
HIDDEN_ACTIVATIONS = ("relu", "tanh", "logistic", "identity")
ROIS = ("tumor", "peritumoral")
# scikit-learn's neighbour heaps start full of DBL_MAX: a distance enters when smaller.
_HEAP_START = float(np.finfo(np.float64).max)


def positive_probability(model, X: np.ndarray) -> np.ndarray:
    """P(class 1) of a fitted classifier (an :class:`InferenceClassifier` or a scikit-learn
    pipeline); NaN (GaussianNB fitted on inputs without variance) becomes 0.5, "no information".
    Training uses this same function (``classifiers`` re-exports it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        probability = model.predict_proba(X)[:, 1]
    return np.nan_to_num(probability, nan=0.5)


def _expit(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _two_columns(p1: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - p1, p1], axis=1)


# --- the RadScores ---------------------------------------------------------------------------
class RadScoreTransform:
    """The tumour and ring RadScores from bundle.json's coefficients, numpy only (the same
    arithmetic as ``RadScorePair.transform``; ``RadScorePair.from_coefficients`` gives the
    scikit-learn estimator)."""

    def __init__(self, description: dict):
        self._description = description
        self._scores = {}
        for roi in ROIS:
            score = description[roi]
            features = score["features"]
            self._scores[roi] = (
                [str(f["name"]) for f in features],
                np.array([f["coefficient"] for f in features], dtype=float),
                np.array([f["mean"] for f in features], dtype=float),
                np.array([f["sd"] for f in features], dtype=float),
                np.array([f["median"] for f in features], dtype=float),
                float(score["intercept"]))

    @classmethod
    def from_coefficients(cls, description: dict) -> "RadScoreTransform":
        """:param description: ``{"tumor": ..., "peritumoral": ...}`` as ``RadScorePair.coefficients``
        writes it (bundle.json's ``models.<endpoint>.radscore``)."""
        return cls(description)

    def coefficients(self) -> dict:
        return self._description

    def transform(self, X, feature_names=None) -> np.ndarray:
        """``(n, 2)``: the tumour and ring RadScores of each row, columns found by name.

        :param X: a DataFrame, or an array with ``feature_names``.
        """
        if hasattr(X, "columns"):
            X, names = X.to_numpy(dtype=float), [str(c) for c in X.columns]
        else:
            X = np.asarray(X, dtype=float)
            if feature_names is None:
                raise ValueError("a plain array needs feature_names")
            if len(feature_names) != X.shape[1]:
                raise ValueError(f"{len(feature_names)} feature names for {X.shape[1]} columns")
            names = list(feature_names)
        position = {name: i for i, name in enumerate(names)}
        columns = []
        for roi in ROIS:
            features, coef, mean, sd, median, intercept = self._scores[roi]
            missing = [f for f in features if f not in position]
            if missing:
                raise KeyError(f"features missing: {', '.join(missing[:5])}")
            if not features:
                columns.append(np.full(X.shape[0], intercept))
                continue
            values = X[:, [position[f] for f in features]].astype(float)
            bad = ~np.isfinite(values)
            values[bad] = np.broadcast_to(median, values.shape)[bad]
            columns.append(intercept + ((values - mean) / sd) @ coef)
        return np.column_stack(columns)


# --- applying an exported classifier ---------------------------------------------------------
def _squared_distances(Z: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(n, m)`` exact squared distances, one input column at a time (no ``|x|^2 - 2x.y + |y|^2``
    cancellation: 0 exactly when a row equals a point)."""
    d2 = np.zeros((Z.shape[0], points.shape[0]))
    for j in range(Z.shape[1]):
        d2 += (Z[:, j, None] - points[None, :, j]) ** 2
    return d2


def _heap_select(values: list[float], k: int) -> list[int]:
    """The k indices kept by a fixed-size max-heap into which ``values`` are pushed in index order,
    a value entering only when smaller than the heap's largest, which then sifts down (the left
    child first among equal children). scikit-learn's brute-force neighbour search works this
    way, and between exactly tied distances only this order decides who is a neighbour."""
    heap, index = [_HEAP_START] * k, [0] * k
    for j, value in enumerate(values):
        if value >= heap[0]:
            continue
        pos = 0
        while True:
            child = 2 * pos + 1
            if child >= k:
                break
            if child + 1 < k and heap[child + 1] > heap[child]:
                child += 1
            if heap[child] <= value:
                break
            heap[pos], index[pos] = heap[child], index[child]
            pos = child
        heap[pos], index[pos] = value, j
    return index


def _knn_neighbours(p: dict, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(squared distances (n, m), the k neighbours of each row, nearest first)``."""
    d2 = _squared_distances(Z, p["points"])
    k, m = p["k"], p["points"].shape[0]
    order = np.argsort(d2, axis=1, kind="stable")
    chosen = order[:, :k].copy()
    if k < m:
        rows = np.arange(len(Z))
        for r in np.flatnonzero(d2[rows, order[:, k - 1]] == d2[rows, order[:, k]]):
            picked = np.array(_heap_select(d2[r].tolist(), k))
            chosen[r] = picked[np.argsort(d2[r, picked], kind="stable")]
    return d2, chosen


def _knn(p: dict, Z: np.ndarray) -> np.ndarray:
    d2, chosen = _knn_neighbours(p, Z)
    with np.errstate(divide="ignore"):
        weights = 1.0 / np.sqrt(np.take_along_axis(d2, chosen, axis=1))
    at_zero = np.isinf(weights)
    rows_at_zero = at_zero.any(axis=1)
    weights[rows_at_zero] = at_zero[rows_at_zero]
    proba = np.zeros((len(Z), 2))
    rows = np.arange(len(Z))
    votes = p["labels"][chosen]
    for i in range(chosen.shape[1]):  # nearest first, as scikit-learn adds them
        proba[rows, votes[:, i]] += weights[:, i]
    return proba / proba.sum(axis=1)[:, None]


def _svm(p: dict, Z: np.ndarray) -> np.ndarray:
    total = np.zeros((len(Z), 2))
    for c in p["calibrated"]:
        kernel = np.exp(-c["gamma"] * _squared_distances(Z, c["support_vectors"]))
        decision = kernel @ c["dual_coef"] + c["intercept"]
        total += _two_columns(_expit(-(c["a"] * decision + c["b"])))
    return total / len(p["calibrated"])


def _rf(p: dict, Z: np.ndarray) -> np.ndarray:
    Zf = Z.astype(np.float32).astype(np.float64)
    total = np.zeros((len(Z), 2))
    rows = np.arange(len(Z))
    for tree in p["trees"]:
        left, right, feature, threshold = tree["left"], tree["right"], tree["feature"], tree["threshold"]
        node = np.zeros(len(Z), dtype=np.intp)
        inner = left[node] >= 0
        while inner.any():
            at, r = node[inner], rows[inner]
            x = Zf[r, feature[at]]
            go_left = np.where(np.isnan(x), tree["missing_left"][at] == 1, x <= threshold[at])
            node[inner] = np.where(go_left, left[at], right[at])
            inner = left[node] >= 0
        total += tree["value"][node]
    return total / len(p["trees"])


def _log_sum_exp(a: np.ndarray) -> np.ndarray:
    """Row-wise log(sum(exp(a))) with the largest term split off: ``top + log(count) +
    log1p(sum(exp(rest - top)) / count)`` (how scikit-learn normalises GaussianNB, so that rows
    far outside the training range give the same last bits)."""
    top = a.max(axis=1, keepdims=True)
    is_top = a == top
    count = is_top.sum(axis=1, keepdims=True).astype(float)
    shift = np.where(np.isfinite(top), top, 0.0)
    rest = np.exp(np.where(is_top, -np.inf, a) - shift).sum(axis=1, keepdims=True)
    rest = np.where(rest == 0, rest, rest / count)
    return (np.log1p(rest) + np.log(count) + top)[:, 0]


def _nb(p: dict, Z: np.ndarray) -> np.ndarray:
    theta, var, prior = p["theta"], p["var"], p["prior"]
    jll = np.empty((len(Z), 2))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in range(2):
            n_ij = -0.5 * np.sum(np.log(2.0 * np.pi * var[i, :]))
            n_ij = n_ij - 0.5 * np.sum(((Z - theta[i, :]) ** 2) / var[i, :], axis=1)
            jll[:, i] = np.log(prior[i]) + n_ij
        return np.exp(jll - _log_sum_exp(jll)[:, None])


def _linear(p: dict, Z: np.ndarray) -> np.ndarray:
    return _two_columns(_expit((Z @ p["coef"].T + p["intercept"]).reshape(-1)))


_HIDDEN = {"relu": lambda a: np.maximum(a, 0), "tanh": np.tanh, "logistic": _expit, "identity": lambda a: a}


def _mlp(p: dict, Z: np.ndarray) -> np.ndarray:
    activation = Z
    last = len(p["coefs"]) - 1
    for i, (weights, bias) in enumerate(zip(p["coefs"], p["intercepts"])):
        activation = activation @ weights
        activation += bias
        if i != last:
            activation = _HIDDEN[p["hidden_activation"]](activation)
    return _two_columns(_expit(activation).reshape(-1))


_PREDICT = {"SVM": _svm, "KNN": _knn, "RF": _rf, "NB": _nb, "LR": _linear, "MLP": _mlp, "LDA": _linear}


class InferenceClassifier:
    """One exported candidate pipeline: ``predict_proba(X) -> (n, 2)``, ``n_features_in_``,
    ``classes_`` (0, 1), computed with numpy only (see the module doc for each kind)."""

    classes_ = np.array([0, 1])

    def __init__(self, kind: str, mean: np.ndarray, scale: np.ndarray, params: dict, doc: dict):
        self.kind, self.mean, self.scale, self.params = kind, mean, scale, params
        self._doc = doc

    @property
    def n_features_in_(self) -> int:
        return int(self.mean.shape[0])

    def to_json(self) -> dict:
        """The JSON document (plain numbers) this classifier was read from or exported as."""
        return self._doc

    def _scaled(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}; this {self.kind} classifier takes "
                             f"{self.n_features_in_} inputs per row")
        if np.isinf(X).any():
            raise ValueError("Input X contains infinity")
        # RF alone routes NaN (missing_go_to_left); scikit-learn refuses it for the other six.
        if self.kind != "RF" and np.isnan(X).any():
            raise ValueError("Input X contains NaN")
        return (X - self.mean) / self.scale

    def predict_proba(self, X) -> np.ndarray:
        """``(n, 2)``: P(class 0), P(class 1) of each row of ``X`` ``(n, n_features_in_)``."""
        Z = self._scaled(X)
        if self.kind == "RF" and (np.abs(Z[np.isfinite(Z)]) > np.finfo(np.float32).max).any():
            raise ValueError("Input X contains a value too large for float32")
        return _PREDICT[self.kind](self.params, Z)

    @classmethod
    def from_json(cls, doc, n_inputs: int | None = None) -> "InferenceClassifier":
        """Parse and check an exported document (types, shapes, finite numbers, structure).

        :param n_inputs: the number of inputs the model must take (``None``: any).
        :raises ValueError: naming the field at fault.
        """
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        if doc.get("version") != VERSION:
            raise ValueError(f"version {doc.get('version')!r} is not {VERSION}")
        kind = doc.get("kind")
        if kind not in _PREDICT:
            raise ValueError(f"kind: unknown classifier {kind!r}")
        mean = _array(doc, "mean", 1)
        scale = _array(doc, "scale", 1)
        p = mean.shape[0]
        if p < 1 or scale.shape != (p,) or not (scale > 0).all():
            raise ValueError("scale: expected one positive number per input")
        if n_inputs is not None and p != n_inputs:
            raise ValueError(f"takes {p} inputs, the model needs {n_inputs}")
        model = doc.get("model")
        if not isinstance(model, dict):
            raise ValueError("model: expected an object")
        return cls(kind, mean, scale, _PARSE[kind](model, p), doc)


# --- reading the documents defensively -------------------------------------------------------
def _array(obj: dict, key: str, ndim: int, integer: bool = False, where: str = "") -> np.ndarray:
    """``obj[key]`` as a finite ``ndim``-dimensional array of numbers (integers if asked)."""
    name = f"{where}{key}"
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{name}: missing")
    value = obj[key]
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        raise ValueError(f"{name}: expected a {ndim}-d array of numbers") from None
    if array.ndim != ndim or array.dtype.kind not in ("iu" if integer else "iuf"):
        raise ValueError(f"{name}: expected a {ndim}-d array of {'integers' if integer else 'numbers'}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{name}: numbers must be finite")
    return array.astype(np.intp if integer else np.float64)


def _number(obj: dict, key: str, where: str = "") -> float:
    value = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}{key}: expected a finite number, got {value!r}"[:120])
    return float(value)


def _list(obj: dict, key: str) -> list:
    value = obj.get(key)
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key}: expected a non-empty list")
    return value


def _parse_svm(model: dict, p: int) -> dict:
    calibrated = []
    for i, c in enumerate(_list(model, "calibrated")):
        at = f"calibrated[{i}]."
        sv = _array(c, "support_vectors", 2, where=at)
        dual = _array(c, "dual_coef", 1, where=at)
        if sv.shape[1] != p or dual.shape != (sv.shape[0],) or not sv.shape[0]:
            raise ValueError(f"{at}support_vectors/dual_coef: expected (m, {p}) and (m,)")
        calibrated.append({"support_vectors": sv, "dual_coef": dual,
                           **{k: _number(c, k, at) for k in ("intercept", "gamma", "a", "b")}})
    return {"calibrated": calibrated}


def _parse_knn(model: dict, p: int) -> dict:
    points = _array(model, "points", 2)
    labels = _array(model, "labels", 1, integer=True)
    k = model.get("k")
    if points.shape[1] != p or labels.shape != (points.shape[0],) or not points.shape[0]:
        raise ValueError(f"points/labels: expected (m, {p}) and (m,)")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels: expected 0 or 1")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= points.shape[0]:
        raise ValueError(f"k: expected an integer from 1 to {points.shape[0]}, got {k!r}")
    return {"points": points, "labels": labels, "k": k}


def _parse_tree(tree: dict, p: int, at: str) -> dict:
    out = {key: _array(tree, key, 1, integer=True, where=at)
           for key in ("left", "right", "feature", "missing_left")}
    out["threshold"] = _array(tree, "threshold", 1, where=at)
    out["value"] = _array(tree, "value", 2, where=at)
    n = out["left"].shape[0]
    if n < 1 or any(out[key].shape != (n,) for key in ("right", "feature", "missing_left", "threshold")) \
            or out["value"].shape != (n, 2):
        raise ValueError(f"{at}: every node array must have one entry per node, value two")
    nodes = np.arange(n)
    leaf = out["left"] == -1
    # Children come after their parent (scikit-learn builds depth first): every walk ends.
    inner_ok = ((out["left"] > nodes) & (out["right"] > nodes) & (out["left"] < n) & (out["right"] < n)
                & (out["feature"] >= 0) & (out["feature"] < p))
    if not (leaf | inner_ok).all() or not (out["right"][leaf] == -1).all():
        raise ValueError(f"{at}: malformed tree structure")
    if not np.isin(out["missing_left"], (0, 1)).all() or ((out["value"] < 0) | (out["value"] > 1)).any():
        raise ValueError(f"{at}: missing_left must be 0/1 and leaf values fractions")
    return out


def _parse_rf(model: dict, p: int) -> dict:
    return {"trees": [_parse_tree(t, p, f"trees[{i}].") for i, t in enumerate(_list(model, "trees"))]}


def _parse_nb(model: dict, p: int) -> dict:
    theta, var, prior = _array(model, "theta", 2), _array(model, "var", 2), _array(model, "prior", 1)
    if theta.shape != (2, p) or var.shape != (2, p) or prior.shape != (2,):
        raise ValueError(f"theta/var/prior: expected (2, {p}), (2, {p}) and (2,)")
    if (var < 0).any() or not ((prior > 0) & (prior < 1)).all():
        raise ValueError("var must be >= 0 and prior within (0, 1)")
    return {"theta": theta, "var": var, "prior": prior}


def _parse_linear(model: dict, p: int) -> dict:
    coef, intercept = _array(model, "coef", 2), _array(model, "intercept", 1)
    if coef.shape != (1, p) or intercept.shape != (1,):
        raise ValueError(f"coef/intercept: expected (1, {p}) and (1,)")
    return {"coef": coef, "intercept": intercept}


def _parse_mlp(model: dict, p: int) -> dict:
    if model.get("hidden_activation") not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"hidden_activation: expected one of {', '.join(HIDDEN_ACTIVATIONS)}")
    coefs = [_array({"w": w}, "w", 2, where=f"coefs[{i}]") for i, w in enumerate(_list(model, "coefs"))]
    biases = [_array({"b": b}, "b", 1, where=f"intercepts[{i}]") for i, b in enumerate(_list(model, "intercepts"))]
    width = p
    for i, (w, b) in enumerate(zip(coefs, biases)):
        if w.shape[0] != width or b.shape != (w.shape[1],):
            raise ValueError(f"coefs[{i}]/intercepts[{i}]: shapes do not chain from {p} inputs")
        width = w.shape[1]
    if len(coefs) != len(biases) or width != 1:
        raise ValueError("coefs/intercepts: expected layers ending in one output")
    return {"hidden_activation": model["hidden_activation"], "coefs": coefs, "intercepts": biases}


_PARSE = {"SVM": _parse_svm, "KNN": _parse_knn, "RF": _parse_rf, "NB": _parse_nb, "LR": _parse_linear,
          "MLP": _parse_mlp, "LDA": _parse_linear}


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


def read_inference(file: Path, n_inputs: int, kind: str | None = None) -> InferenceClassifier:
    """A bundle's inference file, checked (see :meth:`InferenceClassifier.from_json`).

    :param kind: the classifier bundle.json says was chosen; the file must hold that kind.
    :raises InputError: ``<file>: not a valid inference file: <problem>``, one line.
    """
    try:
        doc = json.loads(Path(file).read_text(encoding="utf-8"), parse_constant=_no_constants)
        model = InferenceClassifier.from_json(doc, n_inputs)
        if kind is not None and model.kind != kind:
            raise ValueError(f"holds a {model.kind} classifier, bundle.json chose {kind}")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        problem = " ".join(str(err).split())[:300]
        raise InputError(f"{file}: not a valid inference file: {problem}") from None
    return model


def write_inference(doc: dict, file: Path) -> None:
    Path(file).write_text(json.dumps(doc, allow_nan=False, separators=(",", ":")) + "\n")

