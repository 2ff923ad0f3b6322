"""What ``evaluate`` reports beyond the paper: calibration, decision curves, per-cohort metrics and
a TRIPOD+AI items table.

Two calls from the evaluation, so the orchestration stays where it is:

- :func:`measure` (after scoring): adds the calibration columns and the net benefit at the
  bundle's threshold to ``metrics.csv``, computes the calibration and decision curves, and, when
  the manifest has a ``cohort`` column, every metric per test cohort plus pooled;
- :func:`write` (inside the report folder): writes ``decision_curves.csv``,
  ``metrics_by_cohort.csv`` (several test cohorts only), the calibration and decision-curve
  figures, and returns the report blocks.

The computations live in :mod:`.calibration` and :mod:`.decision`; this module only arranges them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from DeepRadScoreLib.evaluation import calibration, decision
from DeepRadScoreLib.evaluation.captions import MODELS


EXTRA_COLUMNS = [*calibration.COLUMNS, "net_benefit_at_threshold"]
POOLED = "pooled"


def _wide(scores: pd.DataFrame, labels: pd.DataFrame, endpoint: str) -> pd.DataFrame:
    wide = scores[scores.endpoint == endpoint].pivot(index="case_id", columns="model", values="score")
    y = pd.to_numeric(labels[endpoint], errors="coerce").reindex(wide.index)
    wide.insert(0, "label", y)
    return wide[wide.label.notna()]


def add_calibration_columns(metrics: pd.DataFrame, scores: pd.DataFrame, labels: pd.DataFrame,
                            thresholds) -> pd.DataFrame:
    """``metrics`` with :data:`EXTRA_COLUMNS` appended (one value per endpoint and model row)."""
    out = metrics.copy()
    extra = {c: [] for c in EXTRA_COLUMNS}
    wides = {}
    for endpoint, model in zip(out.endpoint, out.model):
        wide = wides.setdefault(endpoint, _wide(scores, labels, endpoint))
        y, p = wide.label.to_numpy(dtype=float), wide[model].to_numpy(dtype=float)
        values = calibration.calibration_metrics(y, p)
        values["net_benefit_at_threshold"] = float(decision.net_benefit(
            y, p, [min(max(thresholds[(endpoint, model)], 1e-6), 1 - 1e-6)])[0])
        for c in EXTRA_COLUMNS:
            extra[c].append(values[c])
    for c in EXTRA_COLUMNS:
        out[c] = extra[c]
    return out


@dataclass
class Extras:
    """What :func:`measure` found; :func:`write` turns it into files and report blocks."""

    metrics: pd.DataFrame
    curves: dict = field(default_factory=dict)          # endpoint -> model -> CalibrationCurve
    decision: pd.DataFrame | None = None                # decision.CURVE_COLUMNS
    by_cohort: pd.DataFrame | None = None               # cohort + metrics columns
    training_cohorts: list[str] = field(default_factory=list)
    test_cohorts: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)           # for the TRIPOD+AI table


def _cohort_values(table: pd.DataFrame, case_ids) -> list[str]:
    if "cohort" not in table.columns:
        return []
    rows = table[table["case_id"].astype(str).isin(set(map(str, case_ids)))]
    return sorted(rows["cohort"].dropna().astype(str).str.strip().replace("", np.nan).dropna().unique())


def measure(inputs, scores: pd.DataFrame, metrics: pd.DataFrame,
            compute_metrics: Callable[..., pd.DataFrame]) -> Extras:
    """Calibration columns, curves and per-cohort metrics for the evaluated test cases.

    ``inputs`` is the evaluation's :class:`EvaluationInputs`; ``compute_metrics`` the function that
    made ``metrics`` (called again on each cohort's cases, so a cohort's row is the same metric).
    """
    bundle, labels = inputs.bundle, inputs.labels
    thresholds = {(e, m): bundle.threshold(e, m) for e in inputs.endpoints for m in MODELS}
    classifiers = {(e, m): bundle.model_info(e, m).chosen for e in inputs.endpoints for m in MODELS}
    extras = Extras(add_calibration_columns(metrics, scores, labels, thresholds))
    rows = []
    for endpoint in inputs.endpoints:
        wide = _wide(scores, labels, endpoint)
        y = wide.label.to_numpy(dtype=float)
        models = [m for m in MODELS if m in wide.columns]
        extras.curves[endpoint] = {m: calibration.calibration_curve(y, wide[m].to_numpy(float)) for m in models}
        treat_all = decision.net_benefit_treat_all(y)
        for m in models:
            rows.append(pd.DataFrame({"endpoint": endpoint, "model": m, "threshold": decision.THRESHOLDS,
                                      "net_benefit": decision.net_benefit(y, wide[m].to_numpy(float)),
                                      "net_benefit_treat_all": treat_all, "net_benefit_treat_none": 0.0}))
    extras.decision = (pd.concat(rows, ignore_index=True) if rows
                       else pd.DataFrame(columns=decision.CURVE_COLUMNS))

    table = inputs.cohort.table
    training_ids = bundle.meta.data.get("training_case_ids") or list(
        table[table.get("split", pd.Series("", index=table.index)).astype(str).str.lower() == "train"].case_id)
    extras.training_cohorts = _cohort_values(table, training_ids)
    extras.test_cohorts = _cohort_values(table, inputs.case_ids)
    if len(extras.test_cohorts) > 1:
        cohort_of = table.set_index(table["case_id"].astype(str))["cohort"].astype(str).str.strip()
        parts = [extras.metrics.assign(cohort=POOLED)]
        for name in extras.test_cohorts:
            ids = [c for c in inputs.case_ids if cohort_of.get(c) == name]
            sub = scores[scores.case_id.isin(ids)]
            part = compute_metrics(sub, labels.loc[ids], thresholds, classifiers)
            parts.append(add_calibration_columns(part, sub, labels.loc[ids], thresholds).assign(cohort=name))
        merged = pd.concat(parts, ignore_index=True)
        extras.by_cohort = merged[["cohort", *[c for c in merged.columns if c != "cohort"]]]
    extras.facts = _facts(inputs, extras)
    return extras


def _facts(inputs, extras: Extras) -> dict:
    """The numbers the TRIPOD+AI table quotes, gathered once."""
    table = inputs.cohort.table
    split = table["split"].astype(str).str.strip().str.lower() if "split" in table.columns else None
    test_rows = table[table["case_id"].astype(str).isin(set(inputs.case_ids))]
    missing = {e: int(pd.to_numeric(test_rows[e], errors="coerce").isna().sum()) for e in inputs.endpoints}
    return {
        "n_manifest": len(table),
        "n_train": int((split == "train").sum()) if split is not None else None,
        "n_test": len(inputs.case_ids),
        "missing_test_labels": missing,
        "robustness": inputs.bundle.meta.data.get("robustness"),
    }


def write(extras: Extras, folder: Path, synthetic: bool = False) -> dict[str, list]:
    """Write the extra tables and figures into the report folder ``folder``; return the report
    blocks by place: ``results`` (after the ROC curves), ``cohorts`` (after Table 1) and
    ``tripod`` (the last sections: the training ICC filter's table when the bundle has one, then
    the TRIPOD+AI items)."""
    from DeepRadScoreLib.evaluation import figures, reporting_captions as words

    folder = Path(folder)
    extras.decision.to_csv(folder / "decision_curves.csv", index=False)
    blocks = {"results": [words.calibration_table_block(words.calibration_display(extras.metrics))],
              "cohorts": [], "tripod": []}
    for endpoint, curves in extras.curves.items():
        path = figures.calibration_figure(endpoint, curves, folder / "figures" / f"calibration_{endpoint}.png")
        blocks["results"].append(words.calibration_block(endpoint, path, curves))
        dc = extras.decision[extras.decision.endpoint == endpoint]
        if dc.empty:
            continue
        nbs = {m: g.net_benefit.to_numpy() for m, g in dc.groupby("model", sort=False)}
        treat_all = dc[dc.model == dc.model.iloc[0]].net_benefit_treat_all.to_numpy()
        path = figures.decision_curve_figure(endpoint, decision.THRESHOLDS, nbs, treat_all,
                                             folder / "figures" / f"decision_{endpoint}.png")
        blocks["results"].append(words.decision_block(endpoint, path, words.useful_ranges(dc)))
    if extras.by_cohort is not None:
        extras.by_cohort.to_csv(folder / "metrics_by_cohort.csv", index=False)
        blocks["cohorts"].append(words.cohort_metrics_block(extras.by_cohort, extras.training_cohorts))
    elif extras.training_cohorts or extras.test_cohorts:
        blocks["cohorts"].append(words.cohorts_used_block(extras.training_cohorts, extras.test_cohorts))
    from DeepRadScoreLib.evaluation.robustness_report import bundle_blocks

    blocks["tripod"].extend(bundle_blocks(extras.facts.get("robustness"), folder / "figures" / "robustness_icc.png"))
    blocks["tripod"].append(words.tripod_block(extras, synthetic))
    return blocks
