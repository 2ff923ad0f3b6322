"""The report of ``deepradscore robustness``: the ICC distribution per feature class.

:func:`robustness_blocks` gives the summary table and the figure, for the robustness command's
own page and for ``evaluate``'s report when the bundle was trained with an ICC filter whose
table is still where it was (and unchanged: its sha256 is checked).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from DeepRadScoreLib.evaluation.report import ReportContent, ReportFigure, ReportTable, write_report


ROBUSTNESS = "Feature robustness"
BOUNDS = (0.75, 0.9)


def class_summary(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for name, group in table.groupby("feature_class", sort=False):
        icc = group.icc
        rows.append({"feature class": name, "features": len(group),
                     "median ICC": float(icc.median()) if icc.notna().any() else float("nan"),
                     **{f"ICC >= {b:g}": f"{int((icc >= b).sum())} ({100 * (icc >= b).mean():.0f}%)" for b in BOUNDS},
                     "no ICC (constant)": int(icc.isna().sum())})
    return pd.DataFrame(rows)


def robustness_blocks(table: pd.DataFrame, figure_path: Path, min_icc: float | None = None) -> list:
    from DeepRadScoreLib.evaluation import figures

    n_cases, n_copies, kind = int(table.n_cases.iloc[0]), int(table.n_copies.iloc[0]), table.icc_type.iloc[0]
    words = (f"{kind} (one-way random effects, single copy; Shrout & Fleiss 1979) of each feature over "
             f"{n_copies} perturbed copies of each of {n_cases} cases: the share of a feature's variance "
             f"that lies between cases rather than between copies of the same case. 1: the perturbations "
             f"do not move it; 0 or below: they move it as much as the cases differ.")
    bound = f" Dashed: the training filter's bound {min_icc:g}." if min_icc is not None else ""
    return [ReportTable("ICC of the radiomics features by feature class", class_summary(table),
                        words + " The 95 % CI of each ICC (F distribution) is in the table's CSV.", ROBUSTNESS),
            ReportFigure("ICC distribution per feature class", figures.icc_figure(table, figure_path, min_icc),
                         "One dot per feature (tumour and ring); boxes: quartiles." + bound, ROBUSTNESS)]


def write_robustness_report(table: pd.DataFrame, html_path: Path, figure: Path, provenance: dict) -> Path:
    """One self-contained page (``html_path``; the figure, embedded, is also written to ``figure``)."""
    content = ReportContent(title="Deep-RadScore feature robustness", synthetic=False, provenance=provenance,
                            blocks=robustness_blocks(table, figure),
                            subtitle=f"{len(table)} features, {int(table.n_cases.iloc[0])} cases")
    return write_report(content, html_path)


def bundle_blocks(record: dict | None, figure_path: Path) -> list:
    """The blocks for ``evaluate`` when the bundle's ICC table is still there, unchanged."""
    if not record or not record.get("table"):
        return []
    path = Path(record["table"])
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != record.get("table_sha256"):
        return []
    return robustness_blocks(pd.read_csv(path), figure_path, record.get("min_icc"))
