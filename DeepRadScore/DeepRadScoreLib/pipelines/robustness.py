"""``deepradscore robustness``: perturbed copies of every case, their features, an ICC per feature.

For each case of the manifest, ``copies`` perturbed copies (:mod:`.perturb`) are written as
uncompressed NIfTI files into ``<table>.work/copies/`` together with a manifest of them,
``<table>.work/copies.csv``; that manifest goes through the cohort extraction
(:func:`features.extraction.extract_cohort`) like any other, so the copies get the same 1,702
features, workers, Dask, progress, cache and resume as ``extract``. A copy's file is written
once: on a rerun it is found (the same seed gives the same bytes, so its cache key is the same)
and only the missing extractions are done. The ICC table (:mod:`.icc`) is written last,
atomically. A case whose copies could not all be extracted is left out of the ICCs and named.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.settings import SettingsRequest, resolve_settings
from DeepRadScoreLib.outputs import atomic_file, check_output_dir, check_output_file
from DeepRadScoreLib.progress import report, scaled
from DeepRadScoreLib.robustness.perturb import PerturbationSettings, perturbed_copy


COPY_SEPARATOR = "~p"


@dataclass
class RobustnessResult:
    """The ICC table written, its frame, the extraction of the copies and the cases left out."""

    table_csv: Path
    table: object
    extraction: object
    left_out: dict[str, str] = field(default_factory=dict)


def work_dir(table_csv: Path) -> Path:
    return Path(str(table_csv) + ".work")


def copy_id(case_id: str, copy: int) -> str:
    return f"{case_id}{COPY_SEPARATOR}{copy}"


def _write_copy(case, copy: int, settings: PerturbationSettings, seed: int, folder: Path) -> tuple[Path, Path]:
    import SimpleITK as sitk

    name = copy_id(case.case_id, copy)
    image_path, mask_path = folder / f"{name}_image.nii", folder / f"{name}_mask.nii"
    if image_path.exists() and mask_path.exists():
        return image_path, mask_path
    from DeepRadScoreLib.io.images import load_case

    loaded = load_case(case.image, case.mask, case.label, case.roi_name)
    image, mask = perturbed_copy(loaded.image, loaded.mask, settings, seed, case.case_id, copy)
    for picture, path in ((image, image_path), (mask, mask_path)):
        with atomic_file(path) as tmp:
            sitk.WriteImage(picture, str(tmp), False)  # uncompressed: the same copy, the same bytes
    return image_path, mask_path


def run_robustness(manifest, table_csv, copies: int = 4, perturbation: PerturbationSettings | None = None,
                   seed: int = 0, workers: int = 1, scheduler: str | None = None,
                   settings: SettingsRequest | None = None, progress=None, cancel=None) -> RobustnessResult:
    """Perturb every case of ``manifest`` ``copies`` times, extract the copies, write the ICC table.

    :param table_csv: the ICC table to write (:data:`icc.COLUMNS`); ``<table_csv>.work/`` holds
        the copies, their manifest and their feature table (with its cache), kept for a rerun.
    :param perturbation: which perturbations and how strong (default: all four, see
        :mod:`DeepRadScoreLib.robustness.perturb`).
    :param settings: the extraction settings asked for (ring thickness, parameters, backend;
        ``None``: the defaults), as for ``extract``.
    :param seed: fixes every copy; the same seed reproduces the same copies and ICCs.
    :raises InputError: bad input, or fewer than 2 cases with every copy extracted.
    """
    import pandas as pd

    from DeepRadScoreLib.features.extraction import extract_cohort
    from DeepRadScoreLib.io.manifest import read_manifest
    from DeepRadScoreLib.robustness.icc import icc_table

    perturbation = perturbation or PerturbationSettings()
    extraction_settings = resolve_settings(settings)
    if copies < 2:
        raise InputError(f"--copies must be at least 2 for an ICC, got {copies}")
    table_csv = Path(table_csv)
    check_output_file(table_csv)
    work = work_dir(table_csv)
    check_output_dir(work / "copies")
    cohort = read_manifest(manifest)
    cases = cohort.cases()
    if len(cases) < 2:
        raise InputError(f"{manifest}: an ICC needs at least 2 cases, the manifest has {len(cases)}")
    (work / "copies").mkdir(parents=True, exist_ok=True)
    rows, left_out = [], {}
    for i, case in enumerate(cases):
        report(progress, 0.25 * i / len(cases), f"{case.case_id}: {copies} perturbed copies", cancel)
        try:
            for j in range(copies):
                image, mask = _write_copy(case, j, perturbation, seed, work / "copies")
                rows.append({"case_id": copy_id(case.case_id, j), "image": str(image), "mask": str(mask)})
        except InputError as err:
            left_out[case.case_id] = str(err)
            rows = [r for r in rows if not r["case_id"].startswith(case.case_id + COPY_SEPARATOR)]
    copies_csv = work / "copies.csv"
    with atomic_file(copies_csv) as tmp:
        pd.DataFrame(rows, columns=["case_id", "image", "mask"]).to_csv(tmp, index=False)
    extraction = extract_cohort(copies_csv, work / "features.csv", extraction_settings, workers=workers,
                                scheduler=scheduler, progress=scaled(progress, 0.25, 0.95), cancel=cancel)
    features = pd.read_csv(work / "features.csv", index_col="case_id")
    features.index = features.index.astype(str)
    copies_of = {c.case_id: [copy_id(c.case_id, j) for j in range(copies)] for c in cases
                 if c.case_id not in left_out}
    for case_id, ids in copies_of.items():
        missing = [i for i in ids if i not in features.index]
        if missing:
            left_out[case_id] = f"copy {missing[0]} not extracted: {extraction.failed.get(missing[0], '?')}"
    copies_of = {c: ids for c, ids in copies_of.items() if c not in left_out}
    if len(copies_of) < 2:
        raise InputError(f"{manifest}: fewer than 2 cases with every copy extracted; "
                         + "; ".join(f"{c}: {why}" for c, why in list(left_out.items())[:3]))
    report(progress, 0.96, "intraclass correlations", cancel)
    table = icc_table(features, copies_of)
    with atomic_file(table_csv) as tmp:
        table.to_csv(tmp, index=False)
    report(progress, 1.0, "robustness done", None)
    return RobustnessResult(table_csv, table, extraction, left_out)
