"""The intraclass correlation of each feature across a case's perturbed copies.

ICC(1,1) of Shrout & Fleiss (1979) (McGraw & Wong's one-way random, single measure): the copies
of a case are interchangeable "raters" with no rater effect to model, which is the model
Zwanenburg et al. (Sci Rep 2019) use for perturbation robustness:

    ICC(1,1) = (MSB - MSW) / (MSB + (k - 1) MSW)

with MSB the between-case and MSW the within-case mean square over ``n`` cases of ``k`` copies.
Its confidence interval is the exact one from the F distribution of ``MSB / MSW`` with
``(n - 1, n (k - 1))`` degrees of freedom (Shrout & Fleiss, table 4). A feature that is constant
over all copies of all cases has no ICC (NaN): it carries no information either way.
"""
from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import numpy as np
from scipy.stats import f as f_dist

from DeepRadScoreLib.errors import InputError

logger = logging.getLogger(__name__)

ICC_TYPE = "ICC(1,1)"
COLUMNS = ["feature", "feature_class", "icc", "icc_ci_low", "icc_ci_high", "icc_type", "n_cases", "n_copies"]


def icc_1_1(values: np.ndarray, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(icc, ci_low, ci_high)`` per feature of ``values`` shaped (cases, copies, features)."""
    x = np.asarray(values, dtype=float)
    if x.ndim == 2:
        x = x[:, :, None]
    n, k = x.shape[:2]
    if n < 2 or k < 2:
        raise InputError(f"an ICC needs at least 2 cases and 2 copies, got {n} and {k}")
    case_mean = x.mean(axis=1)
    grand = case_mean.mean(axis=0)
    msb = k * np.sum((case_mean - grand) ** 2, axis=0) / (n - 1)
    msw = np.sum((x - case_mean[:, None, :]) ** 2, axis=(0, 1)) / (n * (k - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        icc = (msb - msw) / (msb + (k - 1) * msw)
        ratio = msb / msw
        alpha = 1 - conf_level
        fl = ratio / f_dist.ppf(1 - alpha / 2, n - 1, n * (k - 1))
        fu = ratio * f_dist.ppf(1 - alpha / 2, n * (k - 1), n - 1)
        low = (fl - 1) / (fl + k - 1)
        high = (fu - 1) / (fu + k - 1)
    # No within-case variation at all: perfectly reproducible when the cases differ.
    exact = (msw == 0) & (msb > 0)
    icc, low, high = (np.where(exact, 1.0, a) for a in (icc, low, high))
    undefined = (msw == 0) & (msb == 0)
    return tuple(np.where(undefined | ~np.isfinite(a), np.nan, a) for a in (icc, low, high))


_CLASS = re.compile(r"^(?:tumor|peritumoral)_(?:[A-Za-z0-9-]+?)_(shape|firstorder|glcm|glrlm|glszm|gldm|ngtdm)_")


def feature_class(name: str) -> str:
    """The pyradiomics feature class of a column name (``tumor_original_glcm_Contrast`` ->
    ``glcm``); ``other`` for a column that does not follow the pattern."""
    match = _CLASS.match(name)
    return match.group(1) if match else "other"


def icc_table(features, copies_of: dict[str, list[str]], conf_level: float = 0.95):
    """The robustness table (:data:`COLUMNS`) from a feature table indexed by copy id and the
    copy ids of each case (every case the same number of copies)."""
    import pandas as pd

    cases = [c for c, ids in copies_of.items() if all(i in features.index for i in ids)]
    counts = {len(copies_of[c]) for c in cases}
    if len(counts) != 1:
        raise InputError("every case needs the same number of extracted copies for an ICC; "
                         f"got {sorted(counts) or 'none'}")
    columns = [c for c in features.columns if c != "case_id"]
    values = np.stack([features.loc[copies_of[c], columns].to_numpy(dtype=float) for c in cases])
    icc, low, high = icc_1_1(values, conf_level)
    return pd.DataFrame({"feature": columns, "feature_class": [feature_class(c) for c in columns],
                         "icc": icc, "icc_ci_low": low, "icc_ci_high": high, "icc_type": ICC_TYPE,
                         "n_cases": len(cases), "n_copies": counts.pop()}, columns=COLUMNS)


def read_icc_table(path) -> tuple[dict[str, float], str]:
    """``({feature: icc}, sha256 of the file)`` of a robustness table written by
    ``deepradscore robustness``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: robustness table not found")
    try:
        table = pd.read_csv(path)
    except Exception as err:  # noqa: BLE001 - any parse failure is the file's problem
        raise InputError(f"{path}: not a readable CSV ({type(err).__name__})") from None
    missing = [c for c in ("feature", "icc", "icc_type") if c not in table.columns]
    if missing:
        raise InputError(f"{path}: not a robustness table (no column {', '.join(missing)})")
    return (dict(zip(table.feature.astype(str), pd.to_numeric(table.icc, errors="coerce"))),
            hashlib.sha256(path.read_bytes()).hexdigest())


def robust_columns(columns, iccs: dict[str, float], min_icc: float, where: str) -> list[str]:
    """The columns whose ICC is at least ``min_icc`` (NaN ICC fails); every column must be in the
    table, else the table was made from another extraction."""
    if not 0 <= min_icc <= 1:
        raise InputError(f"--min-icc must be between 0 and 1, got {min_icc}")
    absent = [c for c in columns if c not in iccs]
    if absent:
        raise InputError(f"{where}: has no ICC for {len(absent)} feature(s) of the table, e.g. {absent[0]}")
    return [c for c in columns if iccs[c] >= min_icc]


# The bound of the ICC filter when a table is given without one: Koo & Li (2016) call ICC
# above 0.75 "good" reliability, the usual cut for radiomics feature selection.
DEFAULT_MIN_ICC = 0.75


class RobustnessFilter:
    """``train --robustness TABLE [--min-icc B]``: keep the features with ICC >= B.

    Made (and the table read and checked) before any work, so a bad table costs nothing; applied
    to the training feature table before any selection; :meth:`record` is what the bundle keeps.
    """

    def __init__(self, table_csv, min_icc: float | None = None):
        self.table_csv = Path(table_csv)
        self.min_icc = DEFAULT_MIN_ICC if min_icc is None else float(min_icc)
        if not 0 <= self.min_icc <= 1:
            raise InputError(f"--min-icc must be between 0 and 1, got {min_icc}")
        self.iccs, self.sha256 = read_icc_table(self.table_csv)
        self.kept: list[str] = []
        self.dropped = 0

    @classmethod
    def from_options(cls, table_csv, min_icc) -> "RobustnessFilter | None":
        if table_csv is None:
            if min_icc is not None:
                raise InputError("--min-icc needs --robustness TABLE (from `deepradscore robustness`)")
            return None
        return cls(table_csv, min_icc)

    def apply(self, features):
        """``features`` without the columns below the bound (each region keeps at least one)."""
        columns = [c for c in features.columns if c != "case_id"]
        self.kept = robust_columns(columns, self.iccs, self.min_icc, str(self.table_csv))
        self.dropped = len(columns) - len(self.kept)
        for prefix in ("tumor_", "peritumoral_"):
            if any(c.startswith(prefix) for c in columns) and not any(c.startswith(prefix) for c in self.kept):
                raise InputError(f"{self.table_csv}: no {prefix}* feature has ICC >= {self.min_icc}; "
                                 f"lower --min-icc")
        logger.info("robustness filter: %d of %d features with ICC >= %g kept", len(self.kept),
                    len(columns), self.min_icc)
        return features[[c for c in features.columns if c == "case_id" or c in set(self.kept)]]

    def record(self) -> dict:
        return {"min_icc": self.min_icc, "icc_type": ICC_TYPE, "table": str(self.table_csv.resolve()),
                "table_sha256": self.sha256, "n_kept": len(self.kept), "n_dropped": self.dropped}
