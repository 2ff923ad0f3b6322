"""Table 1: the cohort's characteristics by split, with tests of difference between the splits.

Every manifest column that is not bookkeeping (case id, paths, mask label, ROI name, split) is a
characteristic. A column is continuous when it is numeric with more than ``MAX_LEVELS`` distinct
values (age, size), otherwise categorical (sex, smoking, 0/1 endpoints, cohort).

- continuous: mean +- SD per split (as the paper's Table 1), Mann-Whitney U between two splits
  (the paper's test), Kruskal-Wallis for more than two;
- categorical: n (%) per level and split, Pearson chi-square on the levels x splits table without
  continuity correction; when a 2 x 2 table has an expected count below 5 the chi-square
  approximation is poor and Fisher's exact test is used instead (the "method" column says which).
- blanks are counted in a "missing" row and left out of percentages and tests.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


BOOKKEEPING = ("case_id", "image", "mask", "label", "roi_name", "split")
MAX_LEVELS = 6


def _is_continuous(values: pd.Series) -> bool:
    numeric = pd.to_numeric(values.dropna(), errors="coerce")
    return bool(numeric.notna().all() and numeric.nunique() > MAX_LEVELS)


def _level_name(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _continuous_rows(name: str, values: pd.Series, groups: pd.Series, splits: list[str]) -> list[dict]:
    numeric = pd.to_numeric(values, errors="coerce")
    samples = [numeric[groups == g].dropna().to_numpy() for g in splits]
    row = {"characteristic": name, "level": "mean ± SD"}
    for g, sample in zip(splits, samples):
        row[g] = f"{sample.mean():.1f} ± {sample.std(ddof=1):.1f}" if sample.size > 1 else (
            f"{sample.mean():.1f}" if sample.size else "")
    testable = [s for s in samples if s.size > 0]
    if len(splits) < 2 or len(testable) < len(splits):
        row.update(method="", p_value=np.nan)
    elif len(splits) == 2:
        row.update(method="Mann-Whitney U",
                   p_value=float(stats.mannwhitneyu(*samples, alternative="two-sided").pvalue))
    else:
        row.update(method="Kruskal-Wallis", p_value=float(stats.kruskal(*samples).pvalue))
    rows = [row]
    missing = numeric.isna()
    if missing.any():
        rows.append({"characteristic": name, "level": "missing", "method": "", "p_value": np.nan,
                     **{g: str(int(missing[groups == g].sum())) for g in splits}})
    return rows


def _categorical_rows(name: str, values: pd.Series, groups: pd.Series, splits: list[str]) -> list[dict]:
    known = values.notna()
    table = pd.crosstab(values[known].map(_level_name), groups[known]).reindex(columns=splits, fill_value=0)
    method, p = "", np.nan
    if len(splits) >= 2 and table.shape[0] >= 2 and (table.sum(axis=0) > 0).all():
        observed = table.to_numpy()
        expected = stats.contingency.expected_freq(observed)
        if observed.shape == (2, 2) and expected.min() < 5:
            method, p = "Fisher exact", float(stats.fisher_exact(observed).pvalue)
        else:
            method = "chi-square"
            p = float(stats.chi2_contingency(observed, correction=False).pvalue)
    totals = table.sum(axis=0)
    rows = []
    for i, level in enumerate(table.index):
        row = {"characteristic": name, "level": level, "method": method if i == 0 else "",
               "p_value": p if i == 0 else np.nan}
        for g in splits:
            count = int(table.loc[level, g])
            row[g] = f"{count} ({100 * count / totals[g]:.1f}%)" if totals[g] else "0"
        rows.append(row)
    if (~known).any():
        rows.append({"characteristic": name, "level": "missing", "method": "", "p_value": np.nan,
                     **{g: str(int((~known & (groups == g)).sum())) for g in splits}})
    return rows


def cohort_table(manifest: pd.DataFrame, split_column: str = "split") -> pd.DataFrame:
    """One row per characteristic level: ``characteristic, level, <split>..., method, p_value``.

    The first row is the number of cases per split. Without a split column every case is in
    one group "all" and there are no tests.
    """
    if split_column in manifest.columns:
        groups = manifest[split_column].fillna("unassigned").astype(str)
    else:
        groups = pd.Series("all", index=manifest.index)
    order = {"train": 0, "validation": 1, "test": 2}
    splits = sorted(groups.unique(), key=lambda g: (order.get(g, 3), g))
    n = len(manifest)
    rows = [{"characteristic": "Number", "level": "", "method": "", "p_value": np.nan,
             **{g: f"{int((groups == g).sum())} ({100 * (groups == g).sum() / n:.1f}%)" for g in splits}}]
    for name in manifest.columns:
        if name in BOOKKEEPING:
            continue
        values = manifest[name].replace("", np.nan)
        if values.isna().all():
            continue
        builder = _continuous_rows if _is_continuous(values) else _categorical_rows
        rows.extend(builder(name, values, groups, splits))
    return pd.DataFrame(rows, columns=["characteristic", "level", *splits, "method", "p_value"])
