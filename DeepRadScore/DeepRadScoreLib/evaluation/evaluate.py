"""The paper's results for a trained bundle on held-out cases: scores, metrics, figures.

What ``deepradscore evaluate`` (:mod:`DeepRadScoreLib.pipelines.evaluate`) writes into its
report folder comes from here:

- ``metrics.csv``: per endpoint and model (radiomics, deep, fusion) the AUC with its DeLong 95 %
  CI, the threshold metrics at the bundle's threshold (chosen on the training cases, never on
  these), and DeLong's paired p-value of each single model against the fused one (Table 3);
- ``predictions.csv``: every scored case's score per endpoint and model, with its label;
- ``figures/``: ROC curves, CV AUC distributions, correlation heatmaps, SHAP and Grad-CAM.

The work is split on its seams: :class:`EvaluationInputs` (bundle, cohort, labels, features, read
by the pipeline), :func:`score_and_measure` (scores and metrics), :func:`make_figures` (the figure
files and their report blocks) and the report's words in :mod:`DeepRadScoreLib.evaluation.captions`.

Cases with an unknown (blank) label for an endpoint are scored and listed in predictions.csv but
left out of that endpoint's metrics. DeLong is run on the test cases only, each case once; the
CV AUCs shown come from the bundle and are never fed to a DeLong test (the cases of repeated CV
are not independent).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from DeepRadScoreLib.evaluation import captions
from DeepRadScoreLib.evaluation.captions import MODEL_NAMES, MODELS, display_metrics  # noqa: F401
from DeepRadScoreLib.evaluation.delong import delong_auc_ci, delong_roc_test
from DeepRadScoreLib.evaluation.metrics import METRIC_NAMES, threshold_metrics
from DeepRadScoreLib.progress import report

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


@dataclass
class EvaluationResult:
    """What ``pipelines.evaluate.evaluate_bundle`` wrote (paths inside the final report folder) and its tables."""

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


def labels_table(rows: pd.DataFrame, endpoints: list[str]) -> pd.DataFrame:
    """Index case_id, one 1/0/NaN column per endpoint, from manifest rows."""
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


@dataclass
class EvaluationInputs:
    """Everything read before scoring: the bundle, the cohort, its test rows' labels and features."""

    bundle: object
    bundle_path: Path
    manifest_path: Path
    cohort: object
    case_ids: list[str]
    endpoints: list[str]
    labels: pd.DataFrame
    features: pd.DataFrame
    patches: np.ndarray
    synthetic: bool
    skipped: dict[str, str] = field(default_factory=dict)


def score_and_measure(inputs: EvaluationInputs):
    """``(scored, metrics, predictions)``: the three models' scores of every test case, the
    metrics at the bundle's thresholds, and predictions.csv's table."""
    from DeepRadScoreLib.model.scoring import score_cases

    bundle, endpoints = inputs.bundle, inputs.endpoints
    scored = score_cases(bundle, inputs.features, inputs.patches, endpoints)
    thresholds = {(e, m): bundle.threshold(e, m) for e in endpoints for m in MODELS}
    classifiers = {(e, m): bundle.model_info(e, m).chosen for e in endpoints for m in MODELS}
    metrics = compute_metrics(scored.scores, inputs.labels, thresholds, classifiers)
    for endpoint in endpoints:
        if metrics[(metrics.endpoint == endpoint)].auc.isna().all():
            inputs.skipped[endpoint] = "the test cases do not have both classes: no AUC"
    return scored, metrics, predictions_table(scored.scores, inputs.labels)


def make_figures(inputs: EvaluationInputs, scored, metrics: pd.DataFrame, fig_dir: Path,
                 gradcam_cases: int, shap_cases: int, seconds: dict, progress=None, cancel=None):
    """Draw every figure into ``fig_dir``: ``(files by key, results blocks, training blocks,
    explanation blocks)`` for the report."""
    from DeepRadScoreLib.evaluation import explain, figures

    bundle, labels, endpoints = inputs.bundle, inputs.labels, inputs.endpoints
    made: dict[str, Path] = {}
    results, training, explained = [], [], []
    t = time.perf_counter()
    for i, endpoint in enumerate(endpoints):
        report(progress, 0.1 + 0.3 * i / len(endpoints), f"{endpoint}: figures", cancel)
        wide = labelled_scores(scored.scores, labels, endpoint)
        rows_e = metrics[metrics.endpoint == endpoint].set_index("model")
        if wide.label.nunique() == 2:
            curves = {m: (wide.label.to_numpy(int), wide[m].to_numpy(float), rows_e.at[m, "auc"],
                          rows_e.at[m, "auc_ci_low"], rows_e.at[m, "auc_ci_high"]) for m in MODELS}
            made[f"roc_{endpoint}"] = figures.roc_figure(endpoint, curves, fig_dir / f"roc_{endpoint}.png")
            results.append(captions.roc_block(endpoint, made[f"roc_{endpoint}"], len(wide),
                                              int(wide.label.sum())))
        infos = {m: bundle.model_info(endpoint, m) for m in MODELS}
        cv = {m: {c: v.aucs for c, v in info.cv_auc.items()} for m, info in infos.items()}
        made[f"cv_{endpoint}"] = figures.cv_auc_figure(endpoint, cv, {m: i.chosen for m, i in infos.items()},
                                                       fig_dir / f"cv_{endpoint}.png")
        training.append(captions.cv_block(endpoint, made[f"cv_{endpoint}"],
                                          {m: i.nested_cv_auc.mean for m, i in infos.items()}))
        corr = explain.fused_correlation(scored.fused[endpoint])
        made[f"corr_{endpoint}"] = figures.correlation_figure(endpoint, corr, fig_dir / f"corr_{endpoint}.png")
        explained.append(captions.correlation_block(endpoint, made[f"corr_{endpoint}"],
                                                    bundle.settings.thickness_mm,
                                                    explain.mean_abs_cross_correlation(corr)))
    seconds["figures"] = time.perf_counter() - t

    t = time.perf_counter()
    for i, endpoint in enumerate(endpoints):
        report(progress, 0.4 + 0.3 * i / len(endpoints), f"{endpoint}: SHAP", cancel)
        predict, names = bundle.fusion_head(endpoint)
        X = scored.fused[endpoint][names].to_numpy(dtype=float)
        values, cases = explain.shap_values(predict, X, names, max_cases=shap_cases)
        made[f"shap_{endpoint}"] = figures.shap_figure(endpoint, values, cases, names,
                                                       fig_dir / f"shap_{endpoint}.png")
        explained.append(captions.shap_block(endpoint, made[f"shap_{endpoint}"], len(cases)))
    seconds["shap"] = time.perf_counter() - t

    t = time.perf_counter()
    panels = []
    case_index = {c: i for i, c in enumerate(inputs.case_ids)}
    for endpoint, case in _gradcam_cases(scored.scores, labels, metrics, gradcam_cases):
        report(progress, 0.7 + 0.25 * len(panels) / gradcam_cases, f"{endpoint}: Grad-CAM", cancel)
        patch = inputs.patches[case_index[case]]
        score = scored.score(case, endpoint, "fusion")
        panels.append((f"{case}: {endpoint}={int(labels.at[case, endpoint])}, p={score:.2f}",
                       patch, bundle.deep.gradcam(patch, endpoint)))
    if panels:
        made["gradcam"] = figures.gradcam_figure(panels, fig_dir / "gradcam.png")
        explained.append(captions.gradcam_block(made["gradcam"]))
    seconds["gradcam"] = time.perf_counter() - t
    return made, results, training, explained
