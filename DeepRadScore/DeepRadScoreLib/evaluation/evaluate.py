"""``deepradscore evaluate``: the paper's results section for a trained bundle on held-out cases.

On the manifest's ``split=test`` rows (every row when there is no split column) it writes, into
one report folder created atomically:

- ``metrics.csv``: per endpoint and model (radiomics, deep, fusion) the AUC with its DeLong 95 %
  CI, the threshold metrics at the bundle's threshold (chosen on the training cases, never on
  these), and DeLong's paired p-value of each single model against the fused one (Table 3);
- ``predictions.csv``: every scored case's score per endpoint and model, with its label;
- ``table1.csv``: the cohort's characteristics by split (all rows of the manifest);
- ``figures/``: ROC curves, CV AUC distributions, correlation heatmaps, SHAP and Grad-CAM;
- ``report.html``: all of it in one self-contained page.

Cases with an unknown (blank) label for an endpoint are scored and listed in predictions.csv but
left out of that endpoint's metrics. DeLong is run on the test cases only, each case once; the
CV AUCs shown come from the bundle and are never fed to a DeLong test (the cases of repeated CV
are not independent).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from DeepRadScoreLib.evaluation.delong import delong_auc_ci, delong_roc_test
from DeepRadScoreLib.evaluation.metrics import METRIC_NAMES, threshold_metrics

MODELS = ("radiomics", "deep", "fusion")
MODEL_NAMES = {"radiomics": "Radiomics-Score", "deep": "Deep-CT", "fusion": "Deep-RadScore"}
METRICS_COLUMNS = ["endpoint", "model", "classifier", "n", "n_pos", "auc", "auc_ci_low", "auc_ci_high",
                   *METRIC_NAMES, "delong_p_vs_fusion"]
PREDICTIONS_COLUMNS = ["case_id", "endpoint", "model", "label", "score"]


def labelled_scores(scores: pd.DataFrame, labels: pd.DataFrame, endpoint: str) -> pd.DataFrame:
    """Wide table (index case_id; columns label + one score per model) of the cases of
    ``endpoint`` whose label is known."""
    wide = (scores[scores.endpoint == endpoint].pivot(index="case_id", columns="model", values="score"))
    y = pd.to_numeric(labels[endpoint], errors="coerce").reindex(wide.index)
    wide.insert(0, "label", y)
    return wide[wide.label.notna()]


def compute_metrics(scores: pd.DataFrame, labels: pd.DataFrame,
                    thresholds: Mapping[tuple[str, str], float],
                    classifiers: Mapping[tuple[str, str], str]) -> pd.DataFrame:
    """metrics.csv: one row per endpoint and model present in ``scores``.

    ``scores``: case_id, endpoint, model, score; ``labels``: index case_id, one 0/1/NaN column
    per endpoint; ``thresholds`` and ``classifiers`` keyed by (endpoint, model).
    """
    rows = []
    for endpoint in pd.unique(scores.endpoint):
        wide = labelled_scores(scores, labels, endpoint)
        y = wide.label.to_numpy(dtype=int)
        models = [m for m in MODELS if m in wide.columns]
        for model in models:
            s = wide[model].to_numpy(dtype=float)
            row = {"endpoint": endpoint, "model": model, "classifier": classifiers.get((endpoint, model), ""),
                   "n": int(len(y)), "n_pos": int(y.sum())}
            if len(y) and 0 < y.sum() < len(y):
                ci = delong_auc_ci(y, s)
                row.update(auc=ci.auc, auc_ci_low=ci.ci_low, auc_ci_high=ci.ci_high)
            else:
                row.update(auc=math.nan, auc_ci_low=math.nan, auc_ci_high=math.nan)
            row.update(threshold_metrics(y, s, thresholds[(endpoint, model)]) if len(y)
                       else {name: math.nan for name in METRIC_NAMES})
            if model != "fusion" and "fusion" in wide.columns and 0 < y.sum() < len(y):
                row["delong_p_vs_fusion"] = delong_roc_test(y, s, wide["fusion"].to_numpy(dtype=float)).p_value
            else:
                row["delong_p_vs_fusion"] = math.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=METRICS_COLUMNS)


def predictions_table(scores: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """predictions.csv: every scored case, label blank where unknown."""
    out = scores.copy()
    out["label"] = [labels.at[c, e] if c in labels.index and e in labels.columns else np.nan
                    for c, e in zip(out.case_id, out.endpoint)]
    out["label"] = pd.to_numeric(out["label"], errors="coerce").astype("Int64")
    return out[PREDICTIONS_COLUMNS]


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


@dataclass
class EvaluationResult:
    """What ``evaluate_bundle`` wrote (paths inside the final report folder) and its tables."""

    output_dir: Path
    metrics: pd.DataFrame
    predictions: pd.DataFrame
    cohort_table: pd.DataFrame
    figures: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def held_out_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The manifest rows to evaluate: split=test, or every row when there is no split column."""
    if "split" not in table.columns:
        return table
    return table[table["split"].astype(str).str.strip().str.lower() == "test"]


def bundle_provenance(bundle, bundle_path: Path, synthetic: bool) -> dict[str, str]:
    """The facts a reader needs to judge the numbers: data, software, weights, training setup."""
    from DeepRadScoreLib.model.bundle import package_versions

    meta = bundle.meta
    data = meta.get("data", {})
    deep = meta.get("deep", {})
    weights = deep.get("provenance", {})
    config = meta.get("parameters", {}).get("deep", {})
    software = meta.get("software", {})
    rows = {
        "Data": "SYNTHETIC (generated, planted labels)" if synthetic else "as given by the user",
        "Bundle": str(Path(bundle_path).resolve()),
        "Bundle created": str(meta.get("created", "unknown")),
        "Training manifest": str(data.get("manifest", "unknown")),
        "Training cases": str(data.get("n_training_cases", meta.get("training", {}).get("n_cases", "unknown"))),
        "Endpoints": ", ".join(bundle.endpoints),
        "ImageNet weights": ("yes — " + str(weights.get("source", ""))) if weights.get("weights") == "imagenet"
                            else "no — backbone trained from random initialisation",
        "Deep-CT": (f"{config.get('backbone', '?')}, {config.get('mode', '?')}, "
                    f"{config.get('folds', '?')} cross-fitted network(s), k = {config.get('k', '?')}, "
                    f"up to {config.get('epochs', '?')} epochs"),
        "Classifier choice": (f"best mean AUC of 7 candidates over {meta.get('parameters', {}).get('cv_folds', 5)}-fold "
                              f"CV x {meta.get('parameters', {}).get('cv_repeats', '?')} repeats"),
        "Threshold rule": str(meta.get("parameters", {}).get("threshold_rule", "from the bundle")),
    }
    if bundle.skipped:
        rows["Skipped at training"] = "; ".join(f"{e}: {why}" for e, why in bundle.skipped.items())
    if software:
        rows["Software (training)"] = ", ".join(f"{k} {v}" for k, v in software.items())
    rows["Software (this evaluation)"] = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    return rows


def _labels(rows: pd.DataFrame, endpoints: list[str]) -> pd.DataFrame:
    return pd.DataFrame({e: pd.to_numeric(rows[e], errors="coerce").to_numpy(dtype=float)
                         for e in endpoints}, index=rows["case_id"].astype(str).to_numpy())


def _gradcam_cases(scores: pd.DataFrame, labels: pd.DataFrame, metrics: pd.DataFrame,
                   count: int) -> list[tuple[str, str]]:
    """(endpoint, case) pairs for the Grad-CAM figure: the ``count`` endpoints with the highest
    fused test AUC, each with its highest-scored labelled positive case. A few panels, not one per
    case and endpoint: each costs a backward pass through every fold's network."""
    fusion = metrics[(metrics.model == "fusion") & metrics.auc.notna()].sort_values("auc", ascending=False)
    pairs = []
    for endpoint in fusion.endpoint[:count]:
        wide = labelled_scores(scores, labels, endpoint)
        positives = wide[wide.label == 1].sort_values("fusion", ascending=False)
        if len(positives):
            pairs.append((endpoint, positives.index[0]))
    return pairs


def evaluate_bundle(bundle_path, manifest_path, output_dir, features_csv=None, device: str = "auto",
                    workers: int = 1, progress=None, cancel=None, gradcam_cases: int = 4,
                    shap_cases: int = 60) -> EvaluationResult:
    """Evaluate a bundle on the manifest's test rows; write the report folder atomically."""
    import time

    from DeepRadScoreLib.evaluation import cohort_table as table1
    from DeepRadScoreLib.evaluation import explain
    from DeepRadScoreLib.evaluation import figures
    from DeepRadScoreLib.model.bundle import Bundle
    from DeepRadScoreLib.errors import InputError
    from DeepRadScoreLib.io.manifest import read_manifest
    from DeepRadScoreLib.outputs import atomic_dir
    from DeepRadScoreLib.progress import report, scaled
    from DeepRadScoreLib.evaluation.report import ReportContent, ReportFigure, ReportTable, write_report
    from DeepRadScoreLib.model.scoring import score_cases
    from DeepRadScoreLib.features.extraction import read_feature_table
    from DeepRadScoreLib.io.manifest import SYNTHETIC_MARKER

    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    bundle_path, manifest_path, output_dir = Path(bundle_path), Path(manifest_path), Path(output_dir)
    report(progress, 0.0, "loading the bundle", cancel)
    bundle = Bundle.load(bundle_path, device=device)
    cohort = read_manifest(manifest_path)
    present = [e for e in bundle.endpoints if e in cohort.table.columns]
    if present and set(present) - set(cohort.endpoints):
        # The bundle has endpoints named with --endpoints at training: read their columns as labels.
        cohort = read_manifest(manifest_path, present)
    rows = held_out_rows(cohort.table)
    if rows.empty:
        raise InputError(f"{manifest_path}: no row has split=test")
    case_ids = list(rows["case_id"].astype(str))
    skipped = {e: "no label column in the manifest" for e in bundle.endpoints if e not in rows.columns}
    endpoints = [e for e in bundle.endpoints if e not in skipped]
    if not endpoints:
        raise InputError(f"{manifest_path}: none of the bundle's endpoints ({', '.join(bundle.endpoints)}) "
                         f"is a column of the manifest")
    labels = _labels(rows, endpoints)
    synthetic = bundle.synthetic or (manifest_path.parent / SYNTHETIC_MARKER).exists()

    if features_csv is None:
        from DeepRadScoreLib.features.extraction import extract_cohort

        features_csv = output_dir.parent / f"{output_dir.name}.features.csv"
        report(progress, 0.02, f"extracting the test cases' features into {features_csv}", cancel)
        extract_cohort(cohort.subset(case_ids), features_csv, workers=workers, scheduler=None,
                       progress=scaled(progress, 0.02, 0.5))
        progress = scaled(progress, 0.5, 1.0)
    features, patches = read_feature_table(features_csv, case_ids)
    seconds["load"] = time.perf_counter() - t0

    t = time.perf_counter()
    report(progress, 0.05, f"scoring {len(case_ids)} test cases", cancel)
    scored = score_cases(bundle, features, patches, endpoints)
    seconds["score"] = time.perf_counter() - t

    thresholds = {(e, m): bundle.threshold(e, m) for e in endpoints for m in MODELS}
    classifiers = {(e, m): bundle.model_info(e, m)["chosen"] for e in endpoints for m in MODELS}
    metrics = compute_metrics(scored.scores, labels, thresholds, classifiers)
    predictions = predictions_table(scored.scores, labels)
    cohort_summary = table1.cohort_table(cohort.table)
    for endpoint in endpoints:
        if metrics[(metrics.endpoint == endpoint)].auc.isna().all():
            skipped[endpoint] = "the test cases do not have both classes: no AUC"

    with atomic_dir(output_dir) as tmp:
        fig_dir = tmp / "figures"
        made: dict[str, Path] = {}
        blocks_results, blocks_cv, blocks_explain = [], [], []
        t = time.perf_counter()
        for i, endpoint in enumerate(endpoints):
            report(progress, 0.1 + 0.3 * i / len(endpoints), f"{endpoint}: figures", cancel)
            wide = labelled_scores(scored.scores, labels, endpoint)
            rows_e = metrics[metrics.endpoint == endpoint].set_index("model")
            if wide.label.nunique() == 2:
                curves = {m: (wide.label.to_numpy(int), wide[m].to_numpy(float), rows_e.at[m, "auc"],
                              rows_e.at[m, "auc_ci_low"], rows_e.at[m, "auc_ci_high"]) for m in MODELS}
                made[f"roc_{endpoint}"] = figures.roc_figure(endpoint, curves, fig_dir / f"roc_{endpoint}.png")
                blocks_results.append(ReportFigure(
                    f"{endpoint}: ROC curves on the test cases", made[f"roc_{endpoint}"],
                    f"Each curve shows, for every possible cut-off of one model's score, the share of "
                    f"{endpoint}-positive cases found (sensitivity) against the share of negative cases "
                    f"wrongly flagged (1 - specificity), on {len(wide)} test cases with a known label "
                    f"({int(wide.label.sum())} positive). The area under the curve (AUC) is 0.5 for a coin "
                    f"toss and 1 for a perfect separation; brackets: DeLong 95 % confidence interval.",
                    "Results on the test cases"))
            cv = {m: {c: v["aucs"] for c, v in bundle.model_info(endpoint, m)["cv_auc"].items()} for m in MODELS}
            chosen = {m: bundle.model_info(endpoint, m)["chosen"] for m in MODELS}
            made[f"cv_{endpoint}"] = figures.cv_auc_figure(endpoint, cv, chosen, fig_dir / f"cv_{endpoint}.png")
            blocks_cv.append(ReportFigure(
                f"{endpoint}: cross-validated AUC of the seven candidate classifiers", made[f"cv_{endpoint}"],
                "On the training cases only, each candidate classifier was scored by repeated 5-fold "
                "cross-validation (one dot per held-out fold). The coloured box is the classifier the "
                "bundle chose (highest mean AUC). A wide spread means the choice itself is uncertain.",
                "Training: classifier choice"))
            fused = scored.fused[endpoint]
            corr = explain.fused_correlation(fused)
            made[f"corr_{endpoint}"] = figures.correlation_figure(endpoint, corr, fig_dir / f"corr_{endpoint}.png")
            blocks_explain.append(ReportFigure(
                f"{endpoint}: correlation of the fused features", made[f"corr_{endpoint}"],
                f"Pearson correlation on the test cases between the two RadScores (tumour, 3 mm ring) and "
                f"the deep features of the Deep-CT network. Mean |r| between the RadScores and the deep "
                f"features: {explain.mean_abs_cross_correlation(corr):.2f} (low values mean the two "
                f"sources carry different information, the premise of fusing them).",
                "What the models use"))
        seconds["figures"] = time.perf_counter() - t

        t = time.perf_counter()
        for i, endpoint in enumerate(endpoints):
            report(progress, 0.4 + 0.3 * i / len(endpoints), f"{endpoint}: SHAP", cancel)
            predict, names = bundle.fusion_head(endpoint)
            X = scored.fused[endpoint][names].to_numpy(dtype=float)
            values, explained = explain.shap_values(predict, X, names, max_cases=shap_cases)
            made[f"shap_{endpoint}"] = figures.shap_figure(endpoint, values, explained, names,
                                                           fig_dir / f"shap_{endpoint}.png")
            blocks_explain.append(ReportFigure(
                f"{endpoint}: contribution of each fused feature (SHAP)", made[f"shap_{endpoint}"],
                f"For {len(explained)} test cases, how much each input of the Deep-RadScore classifier "
                f"pushed that case's predicted probability up (right) or down (left) from the average; "
                f"colour is the feature's value (red high, blue low). Features are sorted by mean "
                f"impact. Computed with the shap library's permutation explainer.",
                "What the models use"))
        seconds["shap"] = time.perf_counter() - t

        t = time.perf_counter()
        panels = []
        case_index = {c: i for i, c in enumerate(case_ids)}
        for endpoint, case in _gradcam_cases(scored.scores, labels, metrics, gradcam_cases):
            report(progress, 0.7 + 0.25 * len(panels) / gradcam_cases, f"{endpoint}: Grad-CAM", cancel)
            patch = patches[case_index[case]]
            score = scored.score(case, endpoint, "fusion")
            panels.append((f"{case}: {endpoint}={int(labels.at[case, endpoint])}, p={score:.2f}",
                           patch, bundle.deep.gradcam(patch, endpoint)))
        if panels:
            made["gradcam"] = figures.gradcam_figure(panels, fig_dir / "gradcam.png")
            blocks_explain.append(ReportFigure(
                "Grad-CAM of the Deep-CT network", made["gradcam"],
                "For the endpoints the fused model separates best on these test cases, the deep-ROI "
                "patch (lung window) of the positive case it scored highest, overlaid with the Grad-CAM "
                "heatmap: where in the patch that endpoint's positive output was most sensitive. The "
                "map is coarse (the last convolutional block sees the 160 x 160 patch as about 5 x 5 "
                "cells).", "What the models use"))
        seconds["gradcam"] = time.perf_counter() - t

        report(progress, 0.96, "writing the tables and the report", cancel)
        metrics.to_csv(tmp / "metrics.csv", index=False)
        predictions.to_csv(tmp / "predictions.csv", index=False)
        cohort_summary.to_csv(tmp / "table1.csv", index=False)
        notes = [f"Evaluated on {len(case_ids)} held-out test cases of {manifest_path.name}. Decision "
                 f"thresholds were chosen on the training cases (stored in the bundle), never on these."]
        if synthetic:
            notes.insert(0, "These models were trained on a SYNTHETIC cohort whose labels were planted "
                            "by the generator. The numbers show that the software works; they say nothing "
                            "about patients.")
        notes += [f"{e}: {why}" for e, why in skipped.items()]
        content = ReportContent(
            title="Deep-RadScore evaluation", synthetic=synthetic,
            subtitle=f"{len(case_ids)} test cases, endpoints {', '.join(endpoints)}",
            provenance=bundle_provenance(bundle, bundle_path, synthetic), notes=notes,
            blocks=[ReportTable(
                "Performance of the three models on the test cases (Table 3)", display_metrics(metrics),
                "Radiomics-Score uses the two RadScores (tumour and 3 mm ring), Deep-CT the deep "
                "features of the deep-ROI slice, Deep-RadScore both. AUC with DeLong 95 % CI; the other "
                "metrics at the bundle's threshold. The p-value is DeLong's test of each single model "
                "against Deep-RadScore on the same cases.", "Results on the test cases"),
                *blocks_results, *blocks_cv,
                ReportTable("Cohort characteristics (Table 1)", cohort_summary,
                            "All cases of the manifest by split. Continuous columns: mean ± SD, "
                            "Mann-Whitney U test; categorical: n (%), chi-square test (Fisher's exact "
                            "test for a 2 x 2 table with small expected counts). Blank labels are "
                            "counted as missing.", "Cohort"),
                *blocks_explain])
        write_report(content, tmp / "report.html")
    seconds["total"] = time.perf_counter() - t0
    report(progress, 1.0, "evaluation done", None)
    return EvaluationResult(output_dir=output_dir, metrics=metrics, predictions=predictions,
                            cohort_table=cohort_summary,
                            figures={k: output_dir / "figures" / v.name for k, v in made.items()},
                            skipped=skipped, seconds=seconds)
