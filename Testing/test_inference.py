"""The numpy inference forms: every candidate equals scikit-learn, edge cases by number,
the RadScores equal RadScorePair, and damaged documents are refused in one line.

Real data: scikit-learn's copy of the Wisconsin breast-cancer table (569 cases, 30 measurements),
subsampled per seed to 12-150 cases and 2 or 12 inputs, on their own scales.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.model import inference
from DeepRadScoreLib.model.classifiers import CANDIDATES, fit_classifier
from DeepRadScoreLib.model.classifiers import positive_probability as sklearn_positive
from DeepRadScoreLib.model.inference import (CHECK_ATOL, InferenceClassifier, RadScoreTransform,
                                             positive_probability, read_inference, write_inference)
from DeepRadScoreLib.model.inference_export import export_classifier


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return data.data.astype(float), data.target.astype(int)


def _sample(cancer, seed: int, n: int, p: int):
    """n training cases (at least 4 of each class) on p inputs, and the other cases held out."""
    X, y = cancer
    rng = np.random.default_rng(seed)
    columns = rng.choice(X.shape[1], p, replace=False)
    pos, neg = rng.permutation(np.flatnonzero(y == 1)), rng.permutation(np.flatnonzero(y == 0))
    n_pos = max(4, min(n - 4, int(round(n * rng.uniform(0.3, 0.7)))))
    train = np.concatenate([pos[:n_pos], neg[: n - n_pos]])
    held = np.setdiff1d(np.arange(len(y)), train)
    return X[train][:, columns], y[train], X[held][:, columns]


def _round_trip(doc: dict, tmp_path, n_inputs: int) -> InferenceClassifier:
    write_inference(doc, tmp_path / "model.inference.json")
    return read_inference(tmp_path / "model.inference.json", n_inputs)


@pytest.mark.parametrize("name", CANDIDATES)
def test_every_candidate_equals_scikit_learn(name, cancer, tmp_path):
    """3 seeds x n 12/40/150 x 2/12 inputs: exported (the check passed), written, read back, and
    equal to the pipeline on held-out real cases and on rows 10-1000 SD outside the range."""
    for seed in range(3):
        for n in (12, 40, 150):
            for p in (2, 12):
                X, y, held = _sample(cancer, seed, n, p)
                pipeline = fit_classifier(name, X, y, seed)
                doc = export_classifier(pipeline, X, name=f"{name} {seed} {n} {p}", seed=seed)
                assert doc is not None and doc["kind"] == name, (seed, n, p)
                assert doc["check"]["max_abs_difference"] <= CHECK_ATOL
                model = _round_trip(doc, tmp_path, p)
                rng = np.random.default_rng(seed)
                far = X.mean(0) + X.std(0) * rng.choice([-1, 1], (20, p)) * 10 ** rng.uniform(1, 3, (20, p))
                rows = np.vstack([held[:200], far])
                expected, got = pipeline.predict_proba(rows), model.predict_proba(rows)
                assert got.shape == (len(rows), 2) and model.n_features_in_ == p
                np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9, err_msg=f"{seed} {n} {p}")
                np.testing.assert_allclose(positive_probability(model, rows), sklearn_positive(pipeline, rows),
                                           rtol=0, atol=1e-9)
                assert list(model.classes_) == list(pipeline.classes_) == [0, 1]


def test_knn_zero_distances_and_exact_ties_follow_scikit_learn(tmp_path):
    """Inputs of mean 0 and SD 2 exactly (+-1, +-3) and queries on a 0.5 grid keep scikit-learn's
    |x|^2 - 2x.y + |y|^2 exact: queries on training points (duplicates with both labels among
    them) meet its zero-distance rule, and the many exact ties at the 15th neighbour are decided
    by its heap, not by index order (they differ: checked)."""
    rng = np.random.default_rng(3)
    column = np.array([1.0] * 10 + [-1.0] * 10 + [3.0] * 6 + [-3.0] * 6)
    X = np.column_stack([rng.permutation(column), rng.permutation(column)])
    y = rng.integers(0, 2, size=len(X))
    pipeline = fit_classifier("KNN", X, y)
    assert pipeline.steps[0][1].scale_.tolist() == [2.0, 2.0]
    doc = export_classifier(pipeline, X)
    assert doc is not None and doc["check"]["knn_rounding_rows"] == 0
    model = _round_trip(doc, tmp_path, 2)
    grid = np.array([[a, b] for a in np.arange(-4, 4.5, 0.5) for b in np.arange(-4, 4.5, 0.5)])
    np.testing.assert_array_equal(model.predict_proba(X), pipeline.predict_proba(X))
    np.testing.assert_allclose(model.predict_proba(grid), pipeline.predict_proba(grid), rtol=0, atol=1e-15)
    # Index order would pick other neighbours between the tied distances: the heap matters here.
    Z = (grid - model.mean) / model.scale
    d2 = inference._squared_distances(Z, model.params["points"])
    by_index = np.argsort(d2, axis=1, kind="stable")[:, :15]
    _, chosen = inference._knn_neighbours(model.params, Z)
    assert any(set(a) != set(b) for a, b in zip(by_index.tolist(), chosen.tolist()))
    # Constant inputs (a RadScore without features): every distance is 0, the first 15 vote.
    flat = fit_classifier("KNN", np.zeros((40, 2)), np.arange(40) % 3 == 0)
    flat_model = InferenceClassifier.from_json(export_classifier(flat, np.zeros((40, 2))))
    np.testing.assert_array_equal(flat_model.predict_proba(np.zeros((3, 2))), flat.predict_proba(np.zeros((3, 2))))


def test_naive_bayes_without_variance_gives_scikit_learns_nan_and_then_one_half():
    X, y = np.full((20, 3), 4.0), np.arange(20) % 2
    pipeline = fit_classifier("NB", X, y)
    model = InferenceClassifier.from_json(export_classifier(pipeline, X))
    rows = np.vstack([X[:2], X[:2] + 1.0])
    with np.errstate(all="ignore"):
        expected = pipeline.predict_proba(rows)
    got = model.predict_proba(rows)
    assert np.isnan(expected).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(positive_probability(model, rows), sklearn_positive(pipeline, rows))
    assert (positive_probability(model, rows) == 0.5).all()


def test_forest_class_weights_missing_values_and_input_checks(cancer):
    X, y, held = _sample(cancer, 7, 150, 12)
    y = (np.arange(150) % 5 == 0).astype(int)  # 1 in 5: class_weight="balanced" reweights the leaves
    pipeline = fit_classifier("RF", X, y)
    model = InferenceClassifier.from_json(export_classifier(pipeline, X))
    holes = held[:40].copy()
    holes[np.arange(40), np.arange(40) % 12] = np.nan  # routed by missing_go_to_left, as in scikit-learn
    np.testing.assert_array_equal(model.predict_proba(holes), pipeline.predict_proba(holes))
    np.testing.assert_array_equal(model.predict_proba(held), pipeline.predict_proba(held))
    lr = InferenceClassifier.from_json(export_classifier(fit_classifier("LR", X, y), X))
    for bad, message in ((holes, "NaN"), (np.full((1, 12), np.inf), "infinity"), (held[:, :3], "12 inputs")):
        with pytest.raises(ValueError, match=message):
            lr.predict_proba(bad)


def test_an_unknown_estimator_or_a_form_that_differs_exports_nothing(cancer, caplog, monkeypatch):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    X, y, _ = _sample(cancer, 1, 40, 2)
    caplog.set_level(logging.INFO, logger="DeepRadScoreLib.model.inference_export")
    for pipeline in (Pipeline([("s", StandardScaler()), ("c", DecisionTreeClassifier())]).fit(X, y),
                     Pipeline([("s", StandardScaler()), ("c", KNeighborsClassifier(5))]).fit(X, y),
                     fit_classifier("LR", X, y).fit(X, y + 1)):
        assert export_classifier(pipeline, X, name="odd") is None
    messages = [r.getMessage() for r in caplog.records]
    assert any("unknown estimator DecisionTreeClassifier" in m for m in messages), messages
    assert any("not a distance-weighted" in m for m in messages) and any("classes" in m for m in messages)
    # A form that is off by 1e-6 somewhere is refused by the check, never written.
    monkeypatch.setitem(inference._PREDICT, "LR", lambda p, Z: inference._linear(p, Z) + [[-1e-6, 1e-6]])
    assert export_classifier(fit_classifier("LR", X, y), X, name="LR off") is None
    assert any("LR off: numpy inference form not exported (differs from scikit-learn by 1e-06" in m
               for m in (r.getMessage() for r in caplog.records))


def test_radscores_equal_radscorepair(cancer):
    import pandas as pd

    from DeepRadScoreLib.model.radscore import RadScorePair

    X, y = cancer
    names = [f"tumor_f{i}" for i in range(30)] + [f"peritumoral_f{i}" for i in range(30)]
    rng = np.random.default_rng(0)
    table = np.hstack([X, X * rng.lognormal(0, 0.3, X.shape)])
    pair = RadScorePair(random_state=0).fit(table[:300], y[:300], names)
    numpy_pair = RadScoreTransform.from_coefficients(json.loads(json.dumps(pair.coefficients())))
    rows = table[300:].copy()
    rows[::7, ::5] = np.nan  # imputed with the training median
    rows[1::9, 3] = np.inf
    expected = pair.transform(rows, names)
    np.testing.assert_allclose(numpy_pair.transform(rows, names), expected, rtol=0, atol=1e-12)
    shuffled = pd.DataFrame(rows, columns=names).iloc[:, ::-1]  # found by name, in any order
    np.testing.assert_allclose(numpy_pair.transform(shuffled), expected, rtol=0, atol=1e-12)
    with pytest.raises(KeyError, match="features missing"):
        numpy_pair.transform(shuffled.drop(columns=pair.scores_["tumor"].features_[0]))
    empty = {roi: {**pair.coefficients()[roi], "features": [], "intercept": 0.25} for roi in ("tumor", "peritumoral")}
    assert (RadScoreTransform.from_coefficients(empty).transform(rows, names) == 0.25).all()


def _doc(cancer, name="RF", p=2):
    X, y, _ = _sample(cancer, 2, 40, p)
    return export_classifier(fit_classifier(name, X, y), X)


EDITS = {
    "not JSON": (None, "not a valid inference file: Expecting value"),
    "NaN literal": (lambda d: d.update(mean=[float("nan"), 1.0]), "NaN is not a JSON number"),
    "wrong format": (lambda d: d.update(format="pickle"), "not a deepradscore-inference document"),
    "unknown kind": (lambda d: d.update(kind="XGB"), "kind: unknown classifier 'XGB'"),
    "text among numbers": (lambda d: d["model"]["trees"][0]["threshold"].__setitem__(0, "0.5"),
                           "trees[0].threshold: expected a 1-d array of numbers"),
    "ragged rows": (lambda d: d["model"]["trees"][0]["value"][0].append(0.5), "trees[0].value: expected"),
    "zero scale": (lambda d: d["scale"].__setitem__(0, 0.0), "scale: expected one positive number"),
    "a cycle": (lambda d: d["model"]["trees"][0]["left"].__setitem__(0, 0), "malformed tree structure"),
    "feature out of range": (lambda d: d["model"]["trees"][0]["feature"].__setitem__(0, 7),
                             "malformed tree structure"),
    "no trees": (lambda d: d["model"].update(trees=[]), "trees: expected a non-empty list"),
    "other inputs": (lambda d: (d.update(mean=d["mean"] * 2), d.update(scale=d["scale"] * 2)),
                     "takes 4 inputs, the model needs 2"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_damaged_or_edited_documents_are_one_error_line(case, cancer, tmp_path):
    doc, (edit, message) = _doc(cancer), EDITS[case]
    file = tmp_path / "PLANT_fusion.inference.json"
    if edit is None:
        file.write_text('{"format": ')
    else:
        edit(doc)
        file.write_text(json.dumps(doc))
    with pytest.raises(InputError) as info:
        read_inference(file, 2)
    text = str(info.value)
    assert text.startswith(f"{file}: not a valid inference file: ") and message in text, text
    assert "\n" not in text


def test_every_kind_refuses_shapes_that_do_not_chain(cancer, tmp_path):
    cases = {"SVM": lambda m: m["calibrated"][0]["dual_coef"].pop(), "KNN": lambda m: m.update(k=10 ** 6),
             "NB": lambda m: m["prior"].append(0.5), "LR": lambda m: m["coef"][0].pop(),
             "MLP": lambda m: m["coefs"][1].pop(), "LDA": lambda m: m.update(intercept=[[0.0]])}
    for name, edit in cases.items():
        doc = _doc(cancer, name)
        read_inference(_write(doc, tmp_path), 2, kind=name)  # intact: reads
        with pytest.raises(InputError, match=f"holds a {name} classifier, bundle.json chose RF"):
            read_inference(_write(doc, tmp_path), 2, kind="RF")
        edit(doc["model"])
        with pytest.raises(InputError, match="not a valid inference file"):
            read_inference(_write(doc, tmp_path), 2, kind=name)


def _write(doc, tmp_path):
    file = tmp_path / "m.inference.json"
    file.write_text(json.dumps(doc))
    return file
