"""`evaluate` and `compare-backbones`: metrics from scores, and the whole command on a real bundle.

The bundle is trained here with the real training code (RadScores, the seven candidates, a
DenseNet121 Deep-CT) on a small generated cohort: 30 radiomics-like feature columns, of which
three carry the planted endpoint LVI, and 160 x 160 patches with a planted bright blob; NOISE's
labels are independent of everything.
"""
from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from conftest import make_case
from DeepRadScoreLib.cli import main as cli
from DeepRadScoreLib.evaluation import delong
from DeepRadScoreLib.evaluation import evaluate as evaluation
from DeepRadScoreLib.evaluation import metrics
from DeepRadScoreLib.pipelines.evaluate import evaluate_bundle
from DeepRadScoreLib.evaluation import reporting
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.settings import ExtractionSettings, settings_path, write_settings

from test_report import CHROMIUM, check_in_chromium


def random_scores(n=80, seed=0):
    rng = np.random.default_rng(seed)
    case_ids = [f"c{i}" for i in range(n)]
    labels = pd.DataFrame({"A": (rng.random(n) < 0.4).astype(float), "B": np.zeros(n)}, index=case_ids)
    labels.loc[case_ids[:7], "A"] = np.nan  # unknown labels
    rows = []
    for endpoint in ("A", "B"):
        y = labels[endpoint].fillna(0).to_numpy()
        for model, gap in (("radiomics", 0.1), ("deep", 0.2), ("fusion", 0.4)):
            rows.append(pd.DataFrame({"case_id": case_ids, "endpoint": endpoint, "model": model,
                                      "score": np.clip(rng.normal(0.4 + gap * y, 0.2), 0, 1)}))
    return pd.concat(rows, ignore_index=True), labels


def test_compute_metrics_columns_values_and_delong():
    scores, labels = random_scores()
    thresholds = {(e, m): 0.5 for e in "AB" for m in evaluation.MODELS}
    thresholds[("A", "deep")] = 0.3
    classifiers = {(e, m): "LR" for e in "AB" for m in evaluation.MODELS}
    table = evaluation.compute_metrics(scores, labels, thresholds, classifiers)
    assert list(table.columns) == [
        "endpoint", "model", "classifier", "n", "n_pos", "auc", "auc_ci_low", "auc_ci_high", "accuracy",
        "precision", "recall", "f1", "sensitivity", "specificity", "ppv", "npv", "delong_p_vs_fusion"]
    assert len(table) == 6
    known = labels.A.notna()
    y = labels.A[known].to_numpy(int)
    wide = scores[scores.endpoint == "A"].pivot(index="case_id", columns="model", values="score").loc[labels.index[known]]
    for model in evaluation.MODELS:
        row = table[(table.endpoint == "A") & (table.model == model)].iloc[0]
        assert row.n == known.sum() == 73 and row.n_pos == y.sum()
        assert row.auc == pytest.approx(roc_auc_score(y, wide[model]))
        ci = delong.delong_auc_ci(y, wide[model].to_numpy())
        assert (row.auc_ci_low, row.auc_ci_high) == pytest.approx((ci.ci_low, ci.ci_high))
        expected = metrics.threshold_metrics(y, wide[model].to_numpy(), thresholds[("A", model)])
        assert row.sensitivity == pytest.approx(expected["sensitivity"])
        assert row.npv == pytest.approx(expected["npv"])
        if model == "fusion":
            assert math.isnan(row.delong_p_vs_fusion)
        else:
            p = delong.delong_roc_test(y, wide[model].to_numpy(), wide["fusion"].to_numpy()).p_value
            assert row.delong_p_vs_fusion == pytest.approx(p)
    # Endpoint B has no positive test case: no AUC, no DeLong, but the counts are there.
    b = table[table.endpoint == "B"]
    assert b.auc.isna().all() and b.delong_p_vs_fusion.isna().all() and (b.n == 80).all()
    assert (b.specificity.notna()).all() and b.sensitivity.isna().all()


def test_predictions_table_keeps_unknown_labels_blank():
    scores, labels = random_scores()
    table = evaluation.predictions_table(scores, labels)
    assert list(table.columns) == ["case_id", "endpoint", "model", "label", "score"]
    assert len(table) == len(scores)
    assert table[(table.endpoint == "A") & table.case_id.isin(labels.index[:7])].label.isna().all()
    assert table.label.notna().sum() == len(table) - 7 * 3


# ------------------------------------------------------------------ a real bundle, end to end
N_FEATURES = 30


def write_cohort(folder, n=70, seed=0):
    """manifest.csv + features.csv + features.patches.npz (+ one tiny CT/mask every row points to)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    image, mask = make_case(shape=(12, 24, 24), radius_mm=5.0)
    sitk.WriteImage(image, str(folder / "ct.nii.gz"))
    sitk.WriteImage(mask, str(folder / "mask.nii.gz"))
    case_ids = [f"case{i:03d}" for i in range(n)]
    lvi = (rng.random(n) < 0.4).astype(int)
    null = (rng.random(n) < 0.5).astype(float)
    null[rng.random(n) < 0.1] = np.nan  # some unknown labels
    split = np.where(rng.random(n) < 0.6, "train", "test")
    manifest = pd.DataFrame({"case_id": case_ids, "image": "ct.nii.gz", "mask": "mask.nii.gz",
                             "split": split, "LVI": lvi, "NOISE": null,
                             "age": np.round(rng.normal(63, 9, n)), "sex": rng.choice(["F", "M"], n)})
    manifest["NOISE"] = manifest["NOISE"].astype("Int64")
    manifest.to_csv(folder / "manifest.csv", index=False)
    X = rng.normal(size=(n, N_FEATURES))
    X[:, :3] += 1.6 * lvi[:, None]
    columns = [f"tumor_original_firstorder_F{j}" for j in range(N_FEATURES // 2)] + \
              [f"peritumoral_original_firstorder_F{j}" for j in range(N_FEATURES - N_FEATURES // 2)]
    features = pd.DataFrame(X, columns=columns, index=pd.Index(case_ids, name="case_id"))
    features.to_csv(folder / "features.csv")
    patches = rng.normal(-800, 60, size=(n, 160, 160)).astype(np.float32)
    yy, xx = np.mgrid[:160, :160]
    blob = ((yy - 80) ** 2 + (xx - 80) ** 2) < 30 ** 2
    for i in np.flatnonzero(lvi):
        patches[i][blob] += 700
    np.savez(folder / "features.patches.npz", **{c: p for c, p in zip(case_ids, patches)})
    write_settings(settings_path(folder / "features.csv"), ExtractionSettings.current())
    return manifest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real bundle trained on the cohort's training rows (small but real settings)."""
    from DeepRadScoreLib.deep.ensemble import DeepConfig
    from DeepRadScoreLib.features.extraction import read_feature_table
    from DeepRadScoreLib.pipelines.train import fit_bundle

    folder = tmp_path_factory.mktemp("cohort")
    manifest = write_cohort(folder)
    (folder / "SYNTHETIC.json").write_text('{"generator": "test_evaluation"}')
    train = manifest[manifest.split == "train"]
    features, patches = read_feature_table(folder / "features.csv", list(train.case_id))
    labels = pd.DataFrame({e: pd.to_numeric(train[e]).to_numpy(float) for e in ("LVI", "NOISE")},
                          index=features.index)
    config = DeepConfig(folds=2, epochs=1, k=3, mode="multitask", batch_size=16, device="cpu", patience=1)
    bundle = fit_bundle(features, patches, labels, config, cv_repeats=1, seed=0,
                        data={"synthetic": True, "manifest": str(folder / "manifest.csv"),
                              "n_training_cases": len(train)}, settings=ExtractionSettings.current())
    bundle.save(folder / "bundle")
    return folder, manifest, bundle


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
    folder, manifest, bundle = trained
    out = tmp_path_factory.mktemp("eval") / "report"
    seen = []
    result = evaluate_bundle(folder / "bundle", folder / "manifest.csv", out,
                                        features_csv=folder / "features.csv", device="cpu",
                                        progress=lambda f, m: seen.append(f), gradcam_cases=2)
    return folder, manifest, bundle, out, result, seen


def test_evaluate_writes_metrics_from_test_cases_only(evaluated):
    folder, manifest, bundle, out, result, seen = evaluated
    table = pd.read_csv(out / "metrics.csv")
    assert list(table.columns) == evaluation.METRICS_COLUMNS + reporting.EXTRA_COLUMNS
    assert set(zip(table.endpoint, table.model)) == {(e, m) for e in ("LVI", "NOISE") for m in evaluation.MODELS}
    test = manifest[manifest.split == "test"]
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["case_id", "endpoint", "model", "label", "score"]
    assert set(predictions.case_id) == set(test.case_id)  # training cases are never evaluated
    assert len(predictions) == len(test) * 2 * 3
    for row in table.itertuples():
        labelled = test[test[row.endpoint].notna()]
        assert row.n == len(labelled) and row.n_pos == int(labelled[row.endpoint].sum())
        p = predictions[(predictions.endpoint == row.endpoint) & (predictions.model == row.model)
                        & predictions.label.notna()]
        assert row.auc == pytest.approx(roc_auc_score(p.label, p.score))
        # The bundle's threshold (from training), not one tuned on these cases.
        expected = metrics.threshold_metrics(p.label.to_numpy(int), p.score.to_numpy(), bundle.threshold(row.endpoint, row.model))
        assert row.accuracy == pytest.approx(expected["accuracy"])
        assert row.classifier == bundle.model_info(row.endpoint, row.model).chosen
        # Calibration and net benefit, by hand from predictions.csv.
        y, q = p.label.to_numpy(float), p.score.to_numpy(float)
        assert row.brier_score == pytest.approx(np.mean((q - y) ** 2))
        assert row.brier_scaled == pytest.approx(1 - row.brier_score / (y.mean() * (1 - y.mean())))
        t = bundle.threshold(row.endpoint, row.model)
        tp, fp = np.sum((q >= t) & (y == 1)), np.sum((q >= t) & (y == 0))
        assert row.net_benefit_at_threshold == pytest.approx(tp / len(y) - fp / len(y) * t / (1 - t))
        if not math.isnan(row.calibration_slope):
            lp = np.log(np.clip(q, 1e-6, 1 - 1e-6) / (1 - np.clip(q, 1e-6, 1 - 1e-6)))
            ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(lp[:, None], y)
            assert row.calibration_slope == pytest.approx(ref.coef_[0, 0], rel=1e-4, abs=1e-5)
    curves = pd.read_csv(out / "decision_curves.csv")
    assert len(curves) == 2 * 3 * 99 and curves.threshold.min() == 0.01 and curves.threshold.max() == 0.99
    assert (curves.net_benefit_treat_none == 0).all()
    assert not (out / "metrics_by_cohort.csv").exists()  # no cohort column: nothing per cohort
    fusion = table[table.model == "fusion"].set_index("endpoint")
    # The planted endpoint is separated on held-out cases; the independent one is not.
    assert fusion.at["LVI", "auc"] >= 0.8
    assert abs(fusion.at["NOISE", "auc"] - 0.5) < 0.25
    assert seen and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)


def test_evaluate_writes_table1_figures_and_a_report_that_renders(evaluated, tmp_path):
    folder, manifest, bundle, out, result, seen = evaluated
    table1 = pd.read_csv(out / "table1.csv")
    assert {"train", "test", "p_value"} <= set(table1.columns)
    assert {"age", "sex", "LVI", "NOISE"} <= set(table1.characteristic)
    names = {p.name for p in (out / "figures").iterdir()}
    for endpoint in ("LVI", "NOISE"):
        assert {f"roc_{endpoint}.png", f"cv_{endpoint}.png", f"corr_{endpoint}.png",
                f"shap_{endpoint}.png", f"calibration_{endpoint}.png", f"decision_{endpoint}.png"} <= names
    assert "gradcam.png" in names
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "not for clinical use" in html and "ImageNet weights" in html
    # Both training figures are shown, and the report says which is which.
    assert "nested CV AUC (honest estimate)" in html and "CV AUC of the chosen (best of 7)" in html
    assert "optimistic" in html and "Quote the nested figure" in html
    nested = bundle.model_info("LVI", "fusion").nested_cv_auc.mean
    assert f"{nested:.3f} ±" in html
    assert "ring 3 mm" in html  # the extraction settings in the provenance
    assert html.count("data:image/png;base64,") == len(names)
    if CHROMIUM is None and not os.environ.get("CI"):
        pytest.skip("chromium not installed")
    seen_dom = check_in_chromium(out / "report.html", tmp_path)
    assert len(seen_dom["imgs"]) == len(names) and all(i["ok"] for i in seen_dom["imgs"])
    # Table 3, its calibration companion, training CV, Table 1 and the TRIPOD+AI items.
    assert len(seen_dom["tables"]) == 5 and all(t["rows"] > 0 for t in seen_dom["tables"])
    alts = [i["alt"] for i in seen_dom["imgs"]]
    for endpoint in ("LVI", "NOISE"):
        assert f"{endpoint}: calibration curves on the test cases" in alts
        assert f"{endpoint}: decision curves on the test cases" in alts
    assert "What this report answers for TRIPOD+AI" in html and "the researcher&#x27;s to write" in html
    assert "Calibration intercept" in html and "treat-all" in html


def test_evaluate_reports_every_metric_per_test_cohort(trained, tmp_path):
    """Training on cohort I, testing on II and III: each test cohort's metrics on its own cases
    (DeLong CIs included), pooled rows equal to metrics.csv, and the training cohort named."""
    folder, manifest, bundle = trained
    cohort = manifest.copy()
    test_ids = list(cohort[cohort.split == "test"].case_id)
    cohort["cohort"] = "I"
    cohort.loc[cohort.case_id.isin(test_ids[::2]), "cohort"] = "II"
    cohort.loc[cohort.case_id.isin(test_ids[1::2]), "cohort"] = "III"
    for name in ("ct.nii.gz", "mask.nii.gz", "SYNTHETIC.json"):
        shutil.copy(folder / name, tmp_path / name)
    cohort.to_csv(tmp_path / "manifest.csv", index=False)
    out = tmp_path / "report"
    evaluate_bundle(folder / "bundle", tmp_path / "manifest.csv", out,
                               features_csv=folder / "features.csv", device="cpu", gradcam_cases=0,
                               shap_cases=10)
    table = pd.read_csv(out / "metrics_by_cohort.csv")
    assert sorted(table.cohort.unique()) == ["II", "III", "pooled"]
    pooled = pd.read_csv(out / "metrics.csv")
    mine = table[table.cohort == "pooled"].drop(columns="cohort").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, pooled, check_dtype=False)
    predictions = pd.read_csv(out / "predictions.csv")
    for name, ids in (("II", test_ids[::2]), ("III", test_ids[1::2])):
        p = predictions[(predictions.endpoint == "LVI") & (predictions.model == "fusion")
                        & predictions.case_id.isin(ids) & predictions.label.notna()]
        row = table[(table.cohort == name) & (table.endpoint == "LVI") & (table.model == "fusion")].iloc[0]
        assert row.n == len(p) and row.n_pos == int(p.label.sum())
        ci = delong.delong_auc_ci(p.label.to_numpy(int), p.score.to_numpy(float))
        assert (row.auc, row.auc_ci_low, row.auc_ci_high) == pytest.approx((ci.auc, ci.ci_low, ci.ci_high))
        assert row.brier_score == pytest.approx(np.mean((p.score - p.label) ** 2))
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Performance per test cohort (external validation)" in html
    assert "Cohort(s) used for training: I." in html


def test_evaluate_refuses_bad_input_and_leaves_nothing(trained, tmp_path):
    folder, manifest, bundle = trained
    features = pd.read_csv(folder / "features.csv")
    test_case = manifest[manifest.split == "test"].case_id.iloc[0]
    bad = tmp_path / "features.csv"
    features[features.case_id != test_case].to_csv(bad, index=False)
    shutil.copy(folder / "features.patches.npz", tmp_path / "features.patches.npz")
    shutil.copy(folder / "features.settings.json", tmp_path / "features.settings.json")
    out = tmp_path / "report"
    with pytest.raises(InputError, match=f"{test_case}"):
        evaluate_bundle(folder / "bundle", folder / "manifest.csv", out, features_csv=bad,
                                   device="cpu")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]
    code = cli.main(["evaluate", str(tmp_path / "no-bundle"), "--manifest", str(folder / "manifest.csv"),
                     "-o", str(out)])
    assert code == 2 and not out.exists()


def test_evaluate_refuses_features_or_options_against_the_bundle_settings(trained, tmp_path, capsys):
    """Issue 11 s.3: a table extracted with 5 mm rings, or `--thickness-mm 5`, on a 3 mm bundle."""
    from dataclasses import replace

    folder, manifest, bundle = trained
    for name in ("features.csv", "features.patches.npz"):
        shutil.copy(folder / name, tmp_path / name)
    write_settings(settings_path(tmp_path / "features.csv"),
                   replace(ExtractionSettings.current(), thickness_mm=5.0))
    out = tmp_path / "report"
    argv = ["evaluate", str(folder / "bundle"), "--manifest", str(folder / "manifest.csv"), "-o", str(out),
            "--features", str(tmp_path / "features.csv"), "--device", "cpu"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {tmp_path / 'features.csv'}: extracted with other settings than the "
                          f"bundle") and "ring thickness 5 mm, not 3 mm" in err, err
    argv[argv.index("--features") + 1] = str(folder / "features.csv")
    assert cli.main(argv + ["--thickness-mm", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {folder / 'bundle'}: ") and "ring thickness 5 mm" in err, err
    assert not out.exists()


def test_compare_backbones_table2(trained, tmp_path):
    from DeepRadScoreLib.evaluation import backbones as backbone_comparison

    folder, manifest, bundle = trained
    out = tmp_path / "table2"
    code = cli.main(["compare-backbones", "--manifest", str(folder / "manifest.csv"), "--endpoint", "LVI",
                     "-o", str(out), "--epochs", "1", "--backbones", "densenet121", "--device", "cpu",
                     "--features", str(folder / "features.csv")])
    assert code == 0
    table = pd.read_csv(out / "table2.csv")
    assert list(table.columns) == backbone_comparison.COLUMNS
    assert list(table.set) == ["training", "validation", "test"]
    train = manifest[manifest.split == "train"]
    test = manifest[manifest.split == "test"]
    assert table.n.iloc[0] + table.n.iloc[1] == len(train) and table.n.iloc[2] == len(test)
    assert table.n.iloc[1] == pytest.approx(len(train) / 4, abs=2)  # the paper's 25 % validation
    for name in ("auc", "accuracy", "sensitivity", "specificity"):
        assert (table[f"{name}_ci_low"] <= table[name]).all() and (table[name] <= table[f"{name}_ci_high"]).all()
    html = (out / "table2.html").read_text(encoding="utf-8")
    assert "densenet121" in html and "not for clinical use" in html
