"""The words of the report's calibration, decision-curve, per-cohort and TRIPOD+AI blocks.

Like :mod:`.captions`, every block says in plain language what its numbers are; the TRIPOD+AI
table separates what this run measured from what only the researcher can write.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from DeepRadScoreLib.evaluation.captions import MODEL_NAMES, RESULTS, COHORT, display_metrics
from DeepRadScoreLib.evaluation.report import ReportFigure, ReportTable


TRIPOD = "TRIPOD+AI items"
ANSWERED, RESEARCHER = "answered by this run", "the researcher's to write"


def _num(v, digits=3) -> str:
    return "–" if pd.isna(v) else f"{v:.{digits}f}"


def _with_ci(v, lo, hi) -> str:
    return "not estimable" if pd.isna(v) else f"{v:.2f} [{_num(lo, 2)}, {_num(hi, 2)}]"


def calibration_display(metrics: pd.DataFrame) -> pd.DataFrame:
    """The calibration columns of metrics.csv for people."""
    return pd.DataFrame({
        "endpoint": metrics.endpoint, "model": metrics.model.map(MODEL_NAMES),
        "Brier": metrics.brier_score.map(_num), "scaled Brier": metrics.brier_scaled.map(_num),
        "calibration intercept [95% CI]": [_with_ci(*v) for v in zip(
            metrics.calibration_intercept, metrics.calibration_intercept_ci_low,
            metrics.calibration_intercept_ci_high)],
        "calibration slope [95% CI]": [_with_ci(*v) for v in zip(
            metrics.calibration_slope, metrics.calibration_slope_ci_low, metrics.calibration_slope_ci_high)],
        "net benefit at the bundle's threshold": metrics.net_benefit_at_threshold.map(_num),
    })


def calibration_table_block(display: pd.DataFrame) -> ReportTable:
    return ReportTable(
        "Calibration and net benefit on the test cases", display,
        "Brier score: mean squared difference between predicted probability and outcome (0 is "
        "perfect); scaled Brier: 1 - Brier / Brier of predicting the prevalence to everyone (0: no "
        "better than the prevalence, 1: perfect). Calibration intercept (calibration-in-the-large): "
        "logistic recalibration logit P(y=1) = a + logit(p); 0 is ideal, below 0 the model "
        "over-predicts. Calibration slope: b in logit P(y=1) = a + b logit(p); 1 is ideal, below 1 "
        "the probabilities are too extreme (overfitting). Wald 95 % CIs. \"Not estimable\": the "
        "fit does not converge, typically because the test cases are perfectly separated. Net "
        "benefit: true positives minus weighted false positives per case at the bundle's threshold.",
        RESULTS)


def calibration_block(endpoint: str, path: Path, curves: dict) -> ReportFigure:
    method = next((c.method for c in curves.values() if c.method != "not estimable"), "not estimable")
    n_bins = max((len(c.bin_n) for c in curves.values()), default=0)
    return ReportFigure(
        f"{endpoint}: calibration curves on the test cases", path,
        f"Observed proportion of {endpoint}-positive cases against the predicted probability. Line "
        f"and shaded band: {method}, with its pointwise 95 % confidence band (not drawn where the "
        f"fit does not converge). Dots: the cases in {n_bins} groups of about equal size by predicted "
        f"probability, each at its mean prediction and observed rate with a Wilson 95 % interval. "
        f"On the dashed diagonal the probabilities mean what they say.", RESULTS)


def useful_ranges(curve: pd.DataFrame) -> dict[str, tuple[float, float] | None]:
    """Per model: the lowest and highest threshold where it beats both treat-all and treat-none."""
    out = {}
    for model, g in curve.groupby("model", sort=False):
        better = g.net_benefit.to_numpy() > np.maximum(g.net_benefit_treat_all.to_numpy(), 0) + 1e-12
        t = g.threshold.to_numpy()
        out[model] = (float(t[better].min()), float(t[better].max())) if better.any() else None
    return out


def decision_block(endpoint: str, path: Path, ranges: dict) -> ReportFigure:
    said = "; ".join(f"{MODEL_NAMES.get(m, m)}: " + (f"{r[0]:.2f}–{r[1]:.2f}" if r else "none")
                     for m, r in ranges.items())
    return ReportFigure(
        f"{endpoint}: decision curves on the test cases", path,
        f"Net benefit (true positives minus false positives weighted by pt / (1 - pt), per case) of "
        f"acting on each model's probability at threshold probabilities pt from 0.01 to 0.99, "
        f"against treating every case (grey) and no case (black). A model is useful at the "
        f"thresholds where its curve lies above both. Thresholds at which each model beats both "
        f"(lowest–highest): {said}. The curves are in decision_curves.csv.", RESULTS)


def cohort_metrics_block(by_cohort: pd.DataFrame, training: list[str]) -> ReportTable:
    shown = display_metrics(by_cohort)
    shown.insert(0, "cohort", by_cohort.cohort.to_numpy())
    shown["Brier"] = by_cohort.brier_score.map(_num).to_numpy()
    shown["calibration slope"] = by_cohort.calibration_slope.map(lambda v: _num(v, 2)).to_numpy()
    used = ", ".join(training) if training else "unknown (no cohort recorded for the training cases)"
    return ReportTable(
        "Performance per test cohort (external validation)", shown,
        f"Every metric on each cohort's test cases separately, and pooled over all of them; AUC CIs "
        f"and p-values are DeLong's on that cohort's cases alone. Cohort(s) used for training: "
        f"{used}. A test cohort not among them is an external validation. All columns are in "
        f"metrics_by_cohort.csv.", COHORT)


def cohorts_used_block(training: list[str], test: list[str]) -> ReportTable:
    frame = pd.DataFrame({"role": ["training", "test"],
                          "cohort(s)": [", ".join(training) or "–", ", ".join(test) or "–"]})
    return ReportTable("Cohorts used", frame,
                       "Which values of the manifest's cohort column the training and the test cases "
                       "come from; with a single test cohort the pooled metrics above are that "
                       "cohort's.", COHORT)


def _per_endpoint(metrics: pd.DataFrame, text) -> str:
    fusion = metrics[metrics.model == "fusion"]
    return "; ".join(text(r) for r in fusion.itertuples())


def tripod_rows(extras, synthetic: bool) -> list[tuple[str, str, str]]:
    """(TRIPOD+AI topic, status, content) rows."""
    m, f = extras.metrics, extras.facts
    ranges = {e: useful_ranges(extras.decision[extras.decision.endpoint == e]).get("fusion")
              for e in m.endpoint.unique()} if extras.decision is not None else {}
    data = ("SYNTHETIC cohort (planted labels): no clinical meaning" if synthetic else
            "the manifest's cases; describe their source, dates and setting")
    cohorts = (f"training cohort(s) {', '.join(extras.training_cohorts) or '–'}; test cohort(s) "
               f"{', '.join(extras.test_cohorts) or '–'}" if (extras.training_cohorts or extras.test_cohorts)
               else "no cohort column in the manifest")
    robust = f.get("robustness")
    rows = [
        ("Data sources", ANSWERED, f"{f['n_manifest']} cases in the manifest; {data}; {cohorts}"),
        ("Data split (training vs evaluation)", ANSWERED,
         f"{f['n_train'] if f['n_train'] is not None else '?'} split=train cases for development, "
         f"{f['n_test']} held-out split=test cases evaluated here; thresholds fixed on the training cases"),
        ("Missing data (labels)", ANSWERED,
         "unknown labels are left out of that endpoint's metrics and training, never imputed; test cases "
         "without a label: " + ", ".join(f"{e} {n}" for e, n in f["missing_test_labels"].items())),
        ("Model choice and internal validation", ANSWERED,
         "per endpoint and model the best mean CV AUC of 7 candidate classifiers, its honest estimate by "
         "nested CV (see Training); chosen fused classifiers: "
         + _per_endpoint(m, lambda r: f"{r.endpoint} {r.classifier}")),
        ("Discrimination", ANSWERED,
         "test AUC with DeLong 95 % CI (Deep-RadScore): "
         + _per_endpoint(m, lambda r: f"{r.endpoint} {_num(r.auc)} [{_num(r.auc_ci_low)}, {_num(r.auc_ci_high)}]")),
        ("Calibration", ANSWERED,
         "Brier, scaled Brier, calibration intercept and slope, curves (Deep-RadScore slope): "
         + _per_endpoint(m, lambda r: f"{r.endpoint} {_with_ci(r.calibration_slope, r.calibration_slope_ci_low, r.calibration_slope_ci_high)}")),
        ("Clinical usefulness", ANSWERED,
         "decision curves; thresholds where Deep-RadScore beats treat-all and treat-none: "
         + "; ".join(f"{e} " + (f"{r[0]:.2f}–{r[1]:.2f}" if r else "none") for e, r in ranges.items())),
        ("Robustness of the features", ANSWERED if robust else RESEARCHER,
         (f"features with ICC below {robust.get('min_icc')} dropped before selection "
          f"(ICC table sha256 {str(robust.get('table_sha256', ''))[:12]})") if robust else
         "no ICC filter at training: run `deepradscore robustness` and `train --min-icc`, or describe"),
        ("Performance per cohort / subgroup", ANSWERED if extras.by_cohort is not None else RESEARCHER,
         "metrics per test cohort and pooled (see Cohort)" if extras.by_cohort is not None else
         "one test cohort only; describe subgroup or fairness analyses"),
    ]
    for topic in ("Title and abstract", "Background, objectives and intended use",
                  "Participants: eligibility, setting, dates", "Outcome definition and its assessment (blinding)",
                  "Predictors: imaging protocol, segmentation and who did it", "Sample size justification",
                  "Fairness and health inequalities", "Ethics, funding, conflicts, registration",
                  "Data and code availability", "Patient and public involvement",
                  "Interpretation, limitations and implications"):
        rows.append((topic, RESEARCHER, "not known to the software"))
    return rows


def tripod_block(extras, synthetic: bool) -> ReportTable:
    frame = pd.DataFrame(tripod_rows(extras, synthetic), columns=["TRIPOD+AI topic", "status", "from this run"])
    return ReportTable(
        "What this report answers for TRIPOD+AI", frame,
        "The TRIPOD+AI statement (Collins et al., BMJ 2024) lists what a prediction-model study "
        "must report. Rows marked \"answered by this run\" are filled from what was computed here; "
        "the others only the researcher can write. Map each row to the checklist's item numbers "
        "when filling it in.", TRIPOD)
