"""The cohort CSV ("manifest"): read, checked, and every problem reported at once.

Columns (docs/architecture.md, "Manifest"):

* ``case_id``, ``image``, ``mask``: required. Paths are relative to the manifest's folder (or
  absolute); an image may be a file or a DICOM series folder.
* ``label`` (optional): the tumour's value in a multi-label mask; ``roi_name`` (optional): the
  ROI / segment name in an RTSTRUCT, DICOM SEG or ``.seg.nrrd``.
* ``split`` (optional): ``train`` or ``test``. Without the column every case is a training case.
* ``cohort`` (optional): free text (e.g. the hospital), kept for the cohort table.
* endpoint columns: the paper's ten (``LVI, PI, T4, EGFR, KRAS, ALK, TP53, PIK3CA, ROS1, PDL1``)
  when present, or the ones named with ``endpoints``; each holds 1, 0 or blank (unknown).
* anything else (age, sex, ...) is kept as text.

Row numbers in messages are the CSV's line numbers as a spreadsheet shows them: the header is
row 1, the first case row 2.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from DeepRadScoreLib import ENDPOINTS
from DeepRadScoreLib.errors import InputError


# A cohort folder holding this file beside its manifest is synthetic (``deepradscore synth``):
# bundles trained on it and reports of it say so.
SYNTHETIC_MARKER = "SYNTHETIC.json"

REQUIRED = ("case_id", "image", "mask")
SPLITS = ("train", "test")
# Shown in a message; the rest are counted ("... and 12 more problems") to keep it one line.
MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True)
class CaseEntry:
    """One manifest row as the extraction needs it."""

    case_id: str
    image: Path
    mask: Path
    label: Optional[int] = None
    roi_name: Optional[str] = None
    row: int = 0


@dataclass
class Manifest:
    """A checked cohort: ``table`` holds one row per case (``case_id`` as text, ``image``/``mask``
    as absolute paths, ``split`` lower-case, endpoint columns as float 1.0/0.0/NaN)."""

    path: Path
    table: pd.DataFrame
    endpoints: list[str] = field(default_factory=list)
    line_of: dict[str, int] = field(default_factory=dict)  # case_id -> CSV row number

    @property
    def case_ids(self) -> list[str]:
        return list(self.table["case_id"])

    def rows(self, split: Optional[str] = None) -> pd.DataFrame:
        """All rows, or those of one split (every row is ``train`` when there is no split column)."""
        if split is None:
            return self.table
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if "split" not in self.table.columns:
            return self.table if split == "train" else self.table.iloc[0:0]
        return self.table[self.table["split"] == split]

    def labels(self, endpoint: str, split: Optional[str] = None) -> pd.Series:
        """One endpoint's labels (1.0, 0.0, NaN = unknown) indexed by case_id."""
        if endpoint not in self.endpoints:
            raise InputError(f"{self.path}: no endpoint column {endpoint} "
                             f"(endpoints: {', '.join(self.endpoints) or 'none'})")
        rows = self.rows(split)
        return pd.Series(rows[endpoint].to_numpy(dtype=float), index=rows["case_id"].to_numpy(), name=endpoint)

    def cases(self, case_ids: Optional[Iterable[str]] = None, split: Optional[str] = None) -> list[CaseEntry]:
        """The rows as :class:`CaseEntry` objects, in manifest order or in ``case_ids``' order."""
        rows = self.rows(split)
        if case_ids is not None:
            rows = self.subset(case_ids).table
        labels = rows["label"] if "label" in rows.columns else pd.Series(np.nan, index=rows.index)
        names = rows["roi_name"] if "roi_name" in rows.columns else pd.Series(np.nan, index=rows.index)
        return [CaseEntry(case_id=case_id, image=Path(image), mask=Path(mask),
                          label=None if pd.isna(label) else int(label),
                          roi_name=None if pd.isna(name) else str(name), row=self.line_of.get(case_id, 0))
                for case_id, image, mask, label, name in zip(rows["case_id"], rows["image"], rows["mask"],
                                                               labels, names)]

    def subset(self, case_ids: Iterable[str]) -> "Manifest":
        """The manifest restricted to ``case_ids`` (in that order)."""
        case_ids = [str(c) for c in case_ids]
        indexed = self.table.set_index("case_id", drop=False)
        missing = [c for c in case_ids if c not in indexed.index]
        if missing:
            raise InputError(f"{self.path}: no case {missing[0]}"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return Manifest(self.path, indexed.loc[case_ids].reset_index(drop=True), list(self.endpoints),
                        {c: self.line_of[c] for c in case_ids if c in self.line_of})


def read_manifest(path: str | Path, endpoints: Optional[Iterable[str]] = None,
                  check_files: bool = True) -> Manifest:
    """Read and check a cohort CSV; raise one :class:`InputError` listing every problem.

    ``endpoints`` names the label columns to use (each must exist); by default those of the
    paper's ten that the file has. ``check_files=False`` skips the image/mask existence checks
    (for a manifest describing files on another machine, e.g. a Dask cluster's).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    header, records = _read_rows(path)
    problems: list[str] = []

    missing = [c for c in REQUIRED if c not in header]
    if missing:
        problems.append(f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                        f"(columns: {', '.join(header) or 'none'})")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        problems.append(f"duplicate column {', '.join(duplicated)}")
    if endpoints is None:
        chosen = [e for e in ENDPOINTS if e in header]
    else:
        chosen = list(dict.fromkeys(str(e) for e in endpoints))
        unknown = [e for e in chosen if e not in header]
        if unknown:
            problems.append(f"endpoint column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                            f"not in the manifest")
            chosen = [e for e in chosen if e in header]
        clash = [e for e in chosen if e in REQUIRED + ("split", "cohort", "label", "roi_name")]
        if clash:
            problems.append(f"{', '.join(clash)} cannot be an endpoint")
            chosen = [e for e in chosen if e not in clash]
    if problems:  # without the columns, per-row checks would only repeat the same problem
        _raise(path, problems)
    if not records:
        _raise(path, ["no cases (only a header)"])

    table = pd.DataFrame([values for _, values in records], columns=header, dtype=object)
    seen: dict[str, int] = {}
    folder = path.parent
    for index, (number, _) in enumerate(records):
        r = table.iloc[index]
        where = f"row {number}"
        case_id = r["case_id"]
        if case_id == "":
            problems.append(f"{where}: case_id is blank")
        elif case_id in seen:
            problems.append(f"{where}: case_id {case_id} repeats row {seen[case_id]}")
        else:
            seen[case_id] = number
        for column in ("image", "mask"):
            value = r[column]
            if value == "":
                problems.append(f"{where}: {column} is blank")
                continue
            try:
                full = (folder / value).resolve() if not Path(value).is_absolute() else Path(value)
                table.at[index, column] = str(full)
                if check_files and not full.exists():
                    problems.append(f"{where}: {column} not found: {value}")
            except (OSError, ValueError) as err:  # a NUL byte, a name too long for the system
                problems.append(f"{where}: {column} is not a usable path {value!r} "
                                f"({getattr(err, 'strerror', None) or err})")
        if "split" in header:
            split = r["split"].lower()
            table.at[index, "split"] = split
            if split not in SPLITS:
                problems.append(f"{where}: split must be train or test, got {r['split']!r}")
        if "label" in header and r["label"] != "":
            try:
                table.at[index, "label"] = int(r["label"])
            except ValueError:
                problems.append(f"{where}: label must be a whole number, got {r['label']!r}")
        for endpoint in chosen:
            value = r[endpoint]
            parsed = _binary(value)
            if parsed is None:
                problems.append(f"{where}: {endpoint} must be 0, 1 or blank, got {value!r}")
            else:
                table.at[index, endpoint] = parsed
    if problems:
        _raise(path, problems)

    for endpoint in chosen:
        table[endpoint] = table[endpoint].astype(float)
    if "label" in header:
        table["label"] = table["label"].map(lambda v: np.nan if v == "" else v)
    if "roi_name" in header:
        table["roi_name"] = table["roi_name"].map(lambda v: np.nan if v == "" else v)
    return Manifest(path=path, table=table, endpoints=chosen, line_of=seen)


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-empty data rows (line number, stripped cells) of a CSV file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as err:
        raise InputError(f"{path}: cannot read as CSV ({err})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise InputError(f"{path}: empty file (expected a header case_id,image,mask,...)")
    header = [cell.strip() for cell in rows[0]]
    records, problems = [], []
    for number, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            problems.append(f"row {number}: {len(cells)} cells, the header has {len(header)}")
            continue
        records.append((number, [cell.strip() for cell in cells]))
    if problems:
        _raise(path, problems)
    return header, records


def _binary(value: str) -> Optional[float]:
    """1/0/blank as 1.0/0.0/NaN (also 1.0/0.0 as spreadsheets write them); None if invalid."""
    if value == "":
        return np.nan
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number in (0.0, 1.0) else None


def _raise(path: Path, problems: list[str]) -> None:
    listed = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(listed)
    tail = f"; and {more} more problem{'s' if more > 1 else ''}" if more else ""
    raise InputError(f"{path}: " + "; ".join(listed) + tail)
