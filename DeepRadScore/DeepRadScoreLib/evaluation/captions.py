"""The words of the evaluation report: headings, captions, provenance and the display tables.

:mod:`DeepRadScoreLib.evaluation.evaluate` computes; this module says what the numbers are, in
plain language, for a reader who did not write the code. Every figure and table of the report gets
its block from one function here, so the captions can be read (and corrected) in one place. Two
training-CV figures are easy to confuse, so both are named wherever they appear: the *chosen
candidate's CV AUC* (the best mean of seven candidates on the same folds: optimistic) and the
*nested-CV AUC* (each outer fold scored by the candidate an inner CV chose without it: the honest
estimate of the selection procedure).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from DeepRadScoreLib.evaluation.report import ReportFigure, ReportTable


MODELS = ("radiomics", "deep", "fusion")
MODEL_NAMES = {"radiomics": "Radiomics-Score", "deep": "Deep-CT", "fusion": "Deep-RadScore"}
RESULTS, TRAINING, COHORT, EXPLAIN = ("Results on the test cases", "Training: classifier choice",
                                      "Cohort", "What the models use")


def display_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """metrics.csv condensed for people: AUC with its CI in one cell, percentages for the rest."""
    def pct(v):
        return "–" if pd.isna(v) else f"{100 * v:.1f}"

    return pd.DataFrame({
        "endpoint": metrics.endpoint,
        "model": metrics.model.map(MODEL_NAMES),
        "classifier": metrics.classifier,
        "n (pos)": [f"{n} ({p})" for n, p in zip(metrics.n, metrics.n_pos)],
        "AUC [95% CI]": ["–" if pd.isna(a) else f"{a:.3f} [{lo:.3f}, {hi:.3f}]"
                         for a, lo, hi in zip(metrics.auc, metrics.auc_ci_low, metrics.auc_ci_high)],
        "accuracy %": metrics.accuracy.map(pct), "sensitivity %": metrics.sensitivity.map(pct),
        "specificity %": metrics.specificity.map(pct), "PPV %": metrics.ppv.map(pct),
        "NPV %": metrics.npv.map(pct), "F1 %": metrics.f1.map(pct),
        "DeLong p vs Deep-RadScore": ["baseline" if m == "fusion" else
                                      ("–" if pd.isna(p) else ("<0.001" if p < 0.001 else f"{p:.3f}"))
                                      for m, p in zip(metrics.model, metrics.delong_p_vs_fusion)],
    })


def training_cv_table(bundle, endpoints: list[str]) -> pd.DataFrame:
    """Per endpoint and model: chosen classifier, its (optimistic) CV AUC and the nested-CV AUC."""
    rows = []
    for endpoint in endpoints:
        for model in MODELS:
            info = bundle.model_info(endpoint, model)
            best, nested = info.chosen_cv_auc, info.nested_cv_auc
            rows.append({"endpoint": endpoint, "model": MODEL_NAMES[model], "chosen": info.chosen,
                         "CV AUC of the chosen (best of 7)": f"{best.mean:.3f} ± {best.sd:.3f}",
                         "nested CV AUC (honest estimate)": f"{nested.mean:.3f} ± {nested.sd:.3f}",
                         "inner choices": ", ".join(sorted(set(nested.chosen)))})
    return pd.DataFrame(rows)


def metrics_block(display: pd.DataFrame) -> ReportTable:
    return ReportTable(
        "Performance of the three models on the test cases (Table 3)", display,
        "Radiomics-Score uses the two RadScores (tumour and peritumoral ring), Deep-CT the deep "
        "features of the deep-ROI slice, Deep-RadScore both. AUC with DeLong 95 % CI; the other "
        "metrics at the bundle's threshold. The p-value is DeLong's test of each single model "
        "against Deep-RadScore on the same cases.", RESULTS)


def training_cv_block(table: pd.DataFrame, cv_repeats, nested_repeats) -> ReportTable:
    return ReportTable(
        "Cross-validated AUC on the training cases: the chosen classifier and the honest estimate",
        table,
        f"Two different figures, both from the training cases only. \"CV AUC of the chosen\" is "
        f"the mean AUC over 5-fold CV x {cv_repeats} repeat(s) of the candidate that had the best "
        f"mean among seven on those same folds: picking the maximum makes it optimistic (on labels "
        f"unrelated to the images it lies above 0.5). \"Nested CV AUC\" estimates the whole "
        f"procedure instead: for each of 5 outer folds ({nested_repeats} repeat(s)) an inner CV on "
        f"the other folds alone chose a candidate, and that choice was scored on the outer fold. "
        f"Quote the nested figure as the training estimate; the test cases above are the "
        f"independent check. \"Inner choices\" lists the candidates the inner CVs picked.", TRAINING)


def roc_block(endpoint: str, path: Path, n: int, n_pos: int) -> ReportFigure:
    return ReportFigure(
        f"{endpoint}: ROC curves on the test cases", path,
        f"Each curve shows, for every possible cut-off of one model's score, the share of "
        f"{endpoint}-positive cases found (sensitivity) against the share of negative cases "
        f"wrongly flagged (1 - specificity), on {n} test cases with a known label ({n_pos} "
        f"positive). The area under the curve (AUC) is 0.5 for a coin toss and 1 for a perfect "
        f"separation; brackets: DeLong 95 % confidence interval.", RESULTS)


def cv_block(endpoint: str, path: Path, nested: dict[str, float]) -> ReportFigure:
    figures = "; ".join(f"{MODEL_NAMES[m]} {v:.3f}" for m, v in nested.items())
    return ReportFigure(
        f"{endpoint}: cross-validated AUC of the seven candidate classifiers", path,
        "On the training cases only, each candidate classifier was scored by repeated 5-fold "
        "cross-validation (one dot per held-out fold). The coloured box is the classifier the "
        "bundle chose (highest mean AUC); its mean is the best of seven, hence optimistic. A wide "
        f"spread means the choice itself is uncertain. Nested-CV AUC of the choice: {figures}.",
        TRAINING)


def correlation_block(endpoint: str, path: Path, thickness_mm: float, mean_abs_r: float) -> ReportFigure:
    return ReportFigure(
        f"{endpoint}: correlation of the fused features", path,
        f"Pearson correlation on the test cases between the two RadScores (tumour, {thickness_mm:g} mm "
        f"ring) and the deep features of the Deep-CT network. Mean |r| between the RadScores and the "
        f"deep features: {mean_abs_r:.2f} (low values mean the two sources carry different "
        f"information, the premise of fusing them).", EXPLAIN)


def shap_block(endpoint: str, path: Path, n_explained: int) -> ReportFigure:
    return ReportFigure(
        f"{endpoint}: contribution of each fused feature (SHAP)", path,
        f"For {n_explained} test cases, how much each input of the Deep-RadScore classifier pushed "
        f"that case's predicted probability up (right) or down (left) from the average; colour is "
        f"the feature's value (red high, blue low). Features are sorted by mean impact. Estimated "
        f"by permutation sampling (antithetic pairs of feature orderings, a k-means summary of "
        f"the test cases as the background), as the shap library's Permutation explainer does; "
        f"each case's values add up to its probability minus the background's mean.", EXPLAIN)


def gradcam_block(path: Path) -> ReportFigure:
    return ReportFigure(
        "Grad-CAM of the Deep-CT network", path,
        "For the endpoints the fused model separates best on these test cases, the deep-ROI patch "
        "(lung window) of the positive case it scored highest, overlaid with the Grad-CAM heatmap: "
        "where in the patch that endpoint's positive output was most sensitive. The map is coarse "
        "(the last convolutional block sees the 160 x 160 patch as about 5 x 5 cells).", EXPLAIN)


def cohort_block(table: pd.DataFrame) -> ReportTable:
    return ReportTable(
        "Cohort characteristics (Table 1)", table,
        "All cases of the manifest by split. Continuous columns: mean ± SD, Mann-Whitney U test; "
        "categorical: n (%), chi-square test (Fisher's exact test for a 2 x 2 table with small "
        "expected counts). Blank labels are counted as missing.", COHORT)


def notes(n_cases: int, manifest_name: str, synthetic: bool, skipped: dict[str, str]) -> list[str]:
    out = [f"Evaluated on {n_cases} held-out test cases of {manifest_name}. Decision thresholds "
           f"were chosen on the training cases (stored in the bundle), never on these."]
    if synthetic:
        out.insert(0, "These models were trained on a SYNTHETIC cohort whose labels were planted by "
                      "the generator. The numbers show that the software works; they say nothing "
                      "about patients.")
    return out + [f"{e}: {why}" for e, why in skipped.items()]


def bundle_provenance(bundle, bundle_path: Path, synthetic: bool) -> dict[str, str]:
    """The facts a reader needs to judge the numbers: data, software, weights, training setup."""
    from DeepRadScoreLib.model.bundle import package_versions

    meta = bundle.meta
    weights = meta.deep.get("provenance", {})
    config = meta.parameters.deep
    settings = bundle.settings
    rows = {
        "Data": "SYNTHETIC (generated, planted labels)" if synthetic else "as given by the user",
        "Bundle": str(Path(bundle_path).resolve()),
        "Bundle created": meta.created,
        "Training manifest": str(meta.data.get("manifest", "unknown")),
        "Training cases": str(meta.data.get("n_training_cases", meta.training.get("n_cases", "unknown"))),
        "Endpoints": ", ".join(bundle.endpoints),
        "Extraction": (f"ring {settings.thickness_mm:g} mm; radiomics parameters "
                       f"{settings.params_name or 'file'} (sha256 {settings.params_sha256[:12]}); "
                       f"pyradiomics {settings.pyradiomics_version} at training"),
        "ImageNet weights": ("yes — " + str(weights.get("source", ""))) if weights.get("weights") == "imagenet"
                            else "no — backbone trained from random initialisation",
        "Deep-CT": (f"{config.get('backbone', '?')}, {config.get('mode', '?')}, "
                    f"{config.get('folds', '?')} cross-fitted network(s), k = {config.get('k', '?')}, "
                    f"up to {config.get('epochs', '?')} epochs"),
        "Classifier choice": (f"best mean AUC of 7 candidates over {meta.parameters.cv_folds}-fold CV x "
                              f"{meta.parameters.cv_repeats} repeats; its performance estimated by "
                              f"nested CV ({meta.parameters.nested_cv.outer_repeats} x "
                              f"{meta.parameters.nested_cv.outer_folds} outer folds)"),
        "Threshold rule": meta.parameters.threshold_rule,
    }
    if bundle.skipped:
        rows["Skipped at training"] = "; ".join(f"{e}: {why}" for e, why in bundle.skipped.items())
    if meta.software:
        rows["Software (training)"] = ", ".join(f"{k} {v}" for k, v in meta.software.items())
    rows["Software (this evaluation)"] = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    return rows
