"""Table 1, the figures, SHAP/correlation and the self-contained HTML report (opened in Chromium)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from DeepRadScoreLib.evaluation import calibration, decision
from DeepRadScoreLib.evaluation import cohort_table
from DeepRadScoreLib.evaluation import explain
from DeepRadScoreLib.evaluation import figures
from DeepRadScoreLib.evaluation import report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a COPY of the report (the report itself has no scripts): records, once the page
# has loaded, whether each image decoded and how many body rows and empty cells each table has.
CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0,
                                                w: i.naturalWidth}));
  const tables = [...document.querySelectorAll('table')].map(t => ({
    rows: t.tBodies[0] ? t.tBodies[0].rows.length : 0,
    cells: t.querySelectorAll('tbody td').length,
    empty: [...t.querySelectorAll('tbody td')].filter(td => td.textContent.trim() === '').length}));
  const out = document.createElement('pre'); out.id = 'dom-check';
  out.textContent = JSON.stringify({imgs, tables,
    banner: !!document.querySelector('.banner') && document.querySelector('.banner').innerText});
  document.body.appendChild(out);
});
</script>"""


def chromium_args(tmp_path: Path) -> list[str]:
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}"]


def check_in_chromium(report_path: Path, tmp_path: Path) -> dict:
    """Load the report in headless Chromium and return what the check script saw."""
    page = tmp_path / "report_checked.html"
    page.write_text(report_path.read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT + "</body>"),
                    encoding="utf-8")
    result = subprocess.run(chromium_args(tmp_path) + ["--virtual-time-budget=5000", "--dump-dom",
                                                       page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="dom-check">(.*?)</pre>', result.stdout, re.S)
    assert match, f"Chromium did not run the check script: {result.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&")
                      .replace("&lt;", "<").replace("&gt;", ">"))


def synthetic_manifest(n=120, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    split = np.where(np.arange(n) < 84, "train", "test")
    return pd.DataFrame({
        "case_id": [f"c{i:03d}" for i in range(n)], "image": "ct.nii.gz", "mask": "m.nii.gz",
        "split": split,
        "age": np.round(rng.normal(62, 10, n) + np.where(split == "test", 8, 0)),
        "sex": rng.choice(["male", "female"], n),
        "LVI": np.where(rng.random(n) < 0.1, np.nan, (rng.random(n) < 0.3).astype(float)),
        "ALK": (rng.random(n) < 0.06).astype(int),
    })


def test_cohort_table_counts_and_tests():
    manifest = synthetic_manifest()
    table = cohort_table.cohort_table(manifest)
    assert list(table.columns) == ["characteristic", "level", "train", "test", "method", "p_value"]
    assert table.iloc[0]["train"] == "84 (70.0%)" and table.iloc[0]["test"] == "36 (30.0%)"
    age = table[table.characteristic == "age"].iloc[0]
    train_age = manifest.age[manifest.split == "train"]
    test_age = manifest.age[manifest.split == "test"]
    assert age["method"] == "Mann-Whitney U"
    assert age["p_value"] == pytest.approx(stats.mannwhitneyu(train_age, test_age).pvalue)
    assert age["p_value"] < 0.01  # the planted 8-year shift is found
    assert age["train"] == f"{train_age.mean():.1f} ± {train_age.std():.1f}"
    sex = table[table.characteristic == "sex"]
    counts = pd.crosstab(manifest.sex, manifest.split)[["train", "test"]].to_numpy()
    assert sex.iloc[0]["method"] == "chi-square"
    assert sex.iloc[0]["p_value"] == pytest.approx(stats.chi2_contingency(counts, correction=False).pvalue)
    lvi = table[table.characteristic == "LVI"]
    assert list(lvi.level) == ["0", "1", "missing"]
    n_missing_train = int(manifest.LVI[manifest.split == "train"].isna().sum())
    assert lvi.iloc[2]["train"] == str(n_missing_train)
    # ALK is rare: a 2 x 2 table with expected counts below 5 uses Fisher's exact test.
    alk = table[table.characteristic == "ALK"].iloc[0]
    assert alk["method"] == "Fisher exact"
    # Bookkeeping columns are not characteristics.
    assert not set(table.characteristic) & {"case_id", "image", "mask", "split"}
    # No split column: one group, no tests.
    single = cohort_table.cohort_table(manifest.drop(columns="split"))
    assert "all" in single.columns and single.p_value.isna().all()


def test_roc_points_match_scikit_learn():
    from sklearn.metrics import auc, roc_curve
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 80)
    s = np.round(rng.random(80) + 0.3 * y, 1)
    fpr, tpr = figures.roc_points(y, s)
    ref_fpr, ref_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert auc(fpr, tpr) == pytest.approx(auc(ref_fpr, ref_tpr))


def test_shap_values_are_exact_for_a_linear_model_and_add_up():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 6))
    w = np.array([2.0, -1.0, 0.5, 0.0, 0.0, 1.5])
    values, rows = explain.shap_values(lambda a: a @ w, X, list("abcdef"), max_cases=30)
    assert values.shape == (30, 6) and rows.shape == (30, 6)
    background = explain._background(X, 10, 0)
    # For f(x) = w.x with an independent masker, the Shapley value is w_j (x_j - E_bg[x_j]).
    np.testing.assert_allclose(values, w * (rows - background.mean(axis=0)), atol=1e-10)
    assert np.all(values[:, 3:5] == 0)  # unused features get nothing


def test_correlation_and_cross_correlation():
    rng = np.random.default_rng(1)
    deep = rng.normal(size=(100, 3))
    fused = pd.DataFrame({"radscore_tumor": deep[:, 0] + 0.1 * rng.normal(size=100),
                          "radscore_peritumoral": rng.normal(size=100),
                          "deep_1": deep[:, 0], "deep_2": deep[:, 1], "deep_3": deep[:, 2]})
    corr = explain.fused_correlation(fused)
    assert corr.loc["radscore_tumor", "deep_1"] == pytest.approx(np.corrcoef(fused.radscore_tumor, fused.deep_1)[0, 1])
    cross = explain.mean_abs_cross_correlation(corr)
    block = corr.loc[["radscore_tumor", "radscore_peritumoral"], ["deep_1", "deep_2", "deep_3"]].abs()
    assert cross == pytest.approx(block.to_numpy().mean())
    assert 0.1 < cross < 0.5


@pytest.fixture(scope="module")
def report_content(tmp_path_factory) -> report.ReportContent:
    """A report with every kind of table and figure the evaluation produces."""
    out = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(4)
    y = (rng.random(90) < 0.35).astype(int)
    scores = {m: np.clip(rng.normal(0.4 + gap * y, 0.2), 0, 1)
              for m, gap in (("radiomics", 0.15), ("deep", 0.2), ("fusion", 0.35))}
    curves = {m: (y, s, 0.7, 0.6, 0.8) for m, s in scores.items()}
    fused = pd.DataFrame(rng.normal(size=(90, 5)),
                         columns=["radscore_tumor", "radscore_peritumoral", "deep_1", "deep_2", "deep_3"])
    values, rows = explain.shap_values(lambda a: 1 / (1 + np.exp(-a @ np.arange(5))), fused.to_numpy(),
                                       list(fused.columns), max_cases=30)
    patch = rng.normal(-800, 100, (160, 160)).astype(np.float32)
    heat = np.zeros((160, 160)); heat[60:100, 60:100] = 1
    cv = {m: {c: rng.uniform(0.4, 0.9, 10).tolist() for c in ("SVM", "KNN", "RF", "NB", "LR", "MLP", "LDA")}
          for m in ("radiomics", "deep", "fusion")}
    figs = [
        report.ReportFigure("LVI: ROC", figures.roc_figure("LVI", curves, out / "roc.png"),
                            "ROC curves on the test cases.", "Figures"),
        report.ReportFigure("LVI: CV AUC", figures.cv_auc_figure("LVI", cv, {"fusion": "LR"}, out / "cv.png"),
                            "Cross-validated AUCs.", "Figures"),
        report.ReportFigure("LVI: correlation", figures.correlation_figure(
            "LVI", explain.fused_correlation(fused), out / "corr.png"), "Pearson r.", "Figures"),
        report.ReportFigure("LVI: SHAP", figures.shap_figure("LVI", values, rows, list(fused.columns),
                                                             out / "shap.png"), "SHAP.", "Figures"),
        report.ReportFigure("Grad-CAM", figures.gradcam_figure([("c001 LVI=1", patch, heat)] * 3,
                                                               out / "gradcam.png"), "Heatmaps.", "Figures"),
        report.ReportFigure("LVI: calibration", figures.calibration_figure(
            "LVI", {m: calibration.calibration_curve(y, s) for m, s in scores.items()}, out / "cal.png"),
            "Calibration curves.", "Figures"),
        report.ReportFigure("LVI: decision curves", figures.decision_curve_figure(
            "LVI", decision.THRESHOLDS, {m: decision.net_benefit(y, s) for m, s in scores.items()},
            decision.net_benefit_treat_all(y), out / "dca.png"), "Net benefit.", "Figures"),
    ]
    metrics = pd.DataFrame({"endpoint": ["LVI"] * 3, "model": ["radiomics", "deep", "fusion"],
                            "auc": [0.71, 0.74, 0.86], "delong_p_vs_fusion": [0.0004, 0.03, np.nan]})
    tables = [report.ReportTable("Table 1 <cohort>", cohort_table.cohort_table(synthetic_manifest()),
                                 "Characteristics by split.", "Tables"),
              report.ReportTable("Test metrics", metrics, "AUC with DeLong CIs.", "Tables")]
    return report.ReportContent(title="DeepRadScore evaluation", synthetic=True,
                                provenance={"bundle": "/x/bundle", "torch": "2.14.1", "ImageNet weights": "no"},
                                blocks=tables + figs, subtitle="test split, 90 cases",
                                notes=["Thresholds were chosen on the training cases."])


def test_figures_are_real_pngs(report_content):
    for block in report_content.blocks:
        if isinstance(block, report.ReportFigure):
            with Image.open(block.path) as image:
                assert image.format == "PNG" and image.width > 200 and image.height > 150, block.title
                # Not a blank canvas: a drawn figure has many distinct colours.
                assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20, block.title


def test_report_is_self_contained_and_escaped(report_content, tmp_path):
    path = report.write_report(report_content, tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 7
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing fetched from elsewhere
    assert "<script" not in text
    assert "Table 1 &lt;cohort&gt;" in text  # escaped, not markup
    assert report.SYNTHETIC_BANNER in text
    assert "<0.001" not in text and "&lt;0.001" in text  # p-value formatting, escaped
    plain = report.render_report(report.ReportContent("t", synthetic=False, provenance={"a": "b"}))
    assert report.SYNTHETIC_BANNER not in plain


# On CI (`CI` set, `./run.sh test` installs Chromium) a missing browser fails rather than skips.
@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                    reason="chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report_content, tmp_path):
    path = report.write_report(report_content, tmp_path / "report.html")
    seen = check_in_chromium(path, tmp_path)
    assert len(seen["imgs"]) == 7 and all(i["ok"] for i in seen["imgs"]), seen["imgs"]
    assert len(seen["tables"]) == 2
    for table in seen["tables"]:
        assert table["rows"] > 0 and table["cells"] > 0
    assert seen["banner"] and "not for clinical use" in seen["banner"].lower()
    # And a screenshot, for people: a non-blank PNG of the page.
    shot = tmp_path / "report.png"
    subprocess.run(chromium_args(tmp_path) + ["--window-size=1200,2400", "--hide-scrollbars",
                                              f"--screenshot={shot}", path.as_uri()],
                   capture_output=True, timeout=120, check=True)
    with Image.open(shot) as image:
        assert image.size == (1200, 2400)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50
