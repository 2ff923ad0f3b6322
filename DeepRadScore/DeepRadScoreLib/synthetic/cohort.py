"""A synthetic chest-CT cohort with planted labels: the data of the demo and of the tests.

``synthesise_cohort(out_dir, n_cases, seed)`` writes ``images/*.nii.gz`` (int16 HU),
``masks/*.nii.gz`` (uint8 tumour), ``manifest.csv`` (the engine's manifest format with a 7:3
``split`` from iterative stratification), ``synthetic_truth.csv`` (every planted label and the
per-case parameters, no blanks) and ``SYNTHETIC.json`` (generator, version, seed, the mechanism
table and "synthetic data: not for clinical use").

The rooms: :mod:`.labels` draws the cohort's labels and split, :mod:`.phantom` the chest around
the tumour (acquisition, anatomy, scanner), :mod:`.tumour` the tumour and the label mechanisms;
:func:`generate_case` here puts one case together and the rest writes the cohort.

Determinism: a case depends only on ``(seed, case index)`` and its labels; the labels and the
split are drawn once per cohort from ``seed``. Every random stream of a case is drawn in a fixed
order whatever the labels, so flipping a label that does not move the tumour (EGFR, KRAS, ALK,
ROS1, LVI, PDL1, TP53) changes only the voxels of its mechanisms (its 3D mechanism in tumour or
ring, its sign in its own quarter of the lung on the deep-ROI slice): the tests use such
counterfactual pairs to prove each signal sits where the docs say.
"""
from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from DeepRadScoreLib import ENDPOINTS, __version__
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.settings import DEFAULT_THICKNESS_MM
from DeepRadScoreLib.io.manifest import SYNTHETIC_MARKER
from DeepRadScoreLib.outputs import atomic_dir
from DeepRadScoreLib.progress import report
# Re-exported: the cohort's public names (tests and callers reach them through this module).
from DeepRadScoreLib.synthetic.labels import (  # noqa: F401
    COHORT_II_FRACTION, DRIVERS, PREVALENCE, RANDOM_BLANK, TRAIN_FRACTION, CohortLabels,
    assign_labels, stratified_split)
from DeepRadScoreLib.synthetic.phantom import (  # noqa: F401
    AIR, BASE_HU, BLOOD, BONE, FAT, LUNG, MARROW, MAX_VOXELS, MED_FAT, SLICE_THICKNESSES,
    SLICE_WEIGHTS, SOFT, TISSUE_NAMES, add_vessels, anatomy_on_grid, draw_acquisition, draw_body,
    make_grid, scan)
from DeepRadScoreLib.synthetic.signs import SLICE_SIGNS, draw_signs, plant_slice_signs  # noqa: F401
from DeepRadScoreLib.synthetic.tumour import (  # noqa: F401
    INDEPENDENT_ENDPOINTS, MECHANISMS, PENETRANCE, Expression, add_spicules,
    draw_expression, draw_tumour_shape, place_tumour, plant_interior, plant_ring, tumour_box)

logger = logging.getLogger(__name__)

GENERATOR = "DeepRadScore synthetic chest CT"
# Bump when the images, labels or split that a seed gives change: a cached cohort with another
# version is regenerated.
GENERATOR_VERSION = "7"
STATEMENT = "synthetic data: not for clinical use"
MIN_CASES = 10


# --------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------

@dataclass
class SyntheticCase:
    """One generated case: arrays are [k, j, i]; spacing/origin in (x, y, z) mm as SimpleITK."""

    hu: np.ndarray
    mask: np.ndarray
    tissue: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    deep_slice: int
    params: dict = field(default_factory=dict)

    def images(self):
        """The CT (int16) and the mask (uint8) as SimpleITK images on the same grid."""
        import SimpleITK as sitk

        out = []
        for array in (self.hu, self.mask):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(self.spacing)
            image.SetOrigin(self.origin)
            out.append(image)
        return tuple(out)


# The random streams of a case; the last one draws the penetrance (see case_expression).
N_STREAMS = 14


def case_expression(seed: int, index: int, labels: dict[str, int], full: bool = False) -> Expression:
    """Which mechanisms case ``index`` of cohort ``seed`` shows for ``labels`` (penetrance).

    :param seed: the cohort's seed.
    :param index: the case's index.
    :param labels: endpoint -> 0/1, as for :func:`generate_case`.
    :param full: show every mechanism of every positive label.
    :returns: :class:`~.tumour.Expression`, the very draws :func:`generate_case` uses.
    """
    lab = {e: int(labels.get(e, 0)) for e in ENDPOINTS}
    stream = np.random.SeedSequence([seed, index]).spawn(N_STREAMS)[-1]
    return draw_expression(np.random.default_rng(stream), lab, full)


def generate_case(seed: int, index: int, labels: dict[str, int],
                  full_expression: bool = False) -> SyntheticCase:
    """Generate case ``index`` of cohort ``seed`` with the given planted labels.

    :param seed: the cohort's seed.
    :param index: the case's index in the cohort (its own random streams derive from both).
    :param labels: endpoint -> 0/1; endpoints not given are 0.
    :param full_expression: show every mechanism of every positive label, ignoring the
        penetrance draws (the counterfactual tests and the documentation figure); the cohort
        never sets it.
    :returns: :class:`SyntheticCase` with the int16 CT, the uint8 tumour mask, the tissue
        classes, the grid, the deep-ROI slice index and the case's parameters.
    """
    from DeepRadScoreLib.regions import deep_roi_patch

    lab = {e: int(labels.get(e, 0)) for e in ENDPOINTS}
    # One stream per component, each drawn in a fixed order whatever the labels; textures have
    # their own streams so that skipping one (label off) cannot shift any other draw.
    streams = np.random.SeedSequence([seed, index]).spawn(N_STREAMS)
    (acq_rng, anat_rng, shape_rng, place_rng, inner_rng, ring_rng, vessel_rng, noise_rng,
     fine_rng, coarse_rng, ggo_rng, halo_rng, sign_rng, _) = (np.random.default_rng(s) for s in streams)
    show = case_expression(seed, index, lab, full_expression)

    # --- acquisition, body, tumour shape and its place (T4, PIK3CA, PI) ----------------------
    acq = draw_acquisition(acq_rng)
    body = draw_body(anat_rng)
    shape = draw_tumour_shape(shape_rng, show)
    body, rot, cx, cy, grid_x, grid_y, anat_mm = place_tumour(body, shape.semi, shape.lobe_amp,
                                                              show.volume["PI"], place_rng)
    half_extent = np.sqrt(((rot @ np.diag(shape.semi)) ** 2).sum(axis=1)) * shape.lobe_bound  # x, y, z

    # --- grid and anatomy ----------------------------------------------------------------------
    grid = make_grid(acq, body, cx, cy, half_extent)
    tissue, hu, lung2d = anatomy_on_grid(grid, body, anat_rng)
    add_vessels(hu, lung2d, grid, body, anat_mm, grid_x, grid_y, vessel_rng)

    # --- tumour and the label mechanisms in and around it --------------------------------------
    tb = tumour_box(grid, shape, tissue, rot, cx, cy, half_extent, index)
    mask = np.zeros(grid.shape, dtype=np.uint8)
    mask[tb.box] = tb.tumour
    deep_slice = deep_roi_patch(*_mask_images(mask, grid.origin, grid.spacing)).slice_index
    interior = plant_interior(hu[tb.box].copy(), tb, shape, show, grid.spacing,
                              {"inner": inner_rng, "fine": fine_rng, "coarse": coarse_rng, "ggo": ggo_rng})
    box_hu = interior.hu
    plant_ring(box_hu, tb, shape, show, grid.spacing, {"ring": ring_rng, "halo": halo_rng})
    add_spicules(box_hu, tb, shape)
    hu[tb.box] = box_hu
    # The deep-slice signs, in the lung outside the ring (see .signs); one that finds no room is
    # left out and not recorded as shown.
    drawn = plant_slice_signs(hu, mask, tissue[deep_slice] == LUNG, deep_slice, grid.spacing,
                              show.slice, draw_signs(sign_rng))
    show.slice = {e: shown and e in drawn for e, shown in show.slice.items()}

    # --- scanner -------------------------------------------------------------------------------
    hu = scan(hu, acq, noise_rng)

    tumour_vox = int(tb.tumour.sum())
    params = {
        "spacing_mm": [acq.sx, acq.sx, acq.sz], "shape_kji": list(grid.shape),
        "noise_sd_hu": round(acq.noise_sd, 2), "long_axis_mm": round(shape.long_axis, 2),
        "axis_ratios": [round(float(v), 3) for v in shape.semi / shape.semi[0]],
        "ggo_fraction": round(float(interior.ggo.sum()) / tumour_vox, 3),
        "solid_hu": round(interior.solid_mean, 1), "calcifications": interior.n_calc,
        "cavitated": shape.cavitated, "spiculated": shape.spiculated,
        "pleural_contact": show.volume["PI"], "expressed": show.summary(),
        "fov_edge_case": acq.at_edge, "deep_slice": deep_slice, "side": "left" if cx > 0 else "right",
    }
    return SyntheticCase(hu=hu, mask=mask, tissue=tissue, spacing=grid.spacing, origin=grid.origin,
                         deep_slice=deep_slice, params=params)


def _mask_images(mask: np.ndarray, origin, spacing):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    # deep_roi_patch only needs the mask to choose the slice; the mask stands in for the CT.
    return image, image


# --------------------------------------------------------------------------------------------
# Cohort
# --------------------------------------------------------------------------------------------

def _case_id(index: int) -> str:
    return f"synth-{index:04d}"


def _write_case(job: tuple) -> dict:
    """Worker: generate one case and write its two NIfTI files into ``folder``."""
    import SimpleITK as sitk

    seed, index, labels, folder = job
    case = generate_case(seed, index, labels)
    image, mask = case.images()
    cid = _case_id(index)
    sitk.WriteImage(image, str(Path(folder) / "images" / f"{cid}.nii.gz"), True, 1)
    sitk.WriteImage(mask, str(Path(folder) / "masks" / f"{cid}.nii.gz"), True, 1)
    return {"case_id": cid, **case.params}


def _reusable(out_dir: Path, n_cases: int, seed: int) -> bool:
    info_path = out_dir / SYNTHETIC_MARKER
    manifest = out_dir / "manifest.csv"
    if not (info_path.is_file() and manifest.is_file()):
        return False
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return False
    if (info.get("generator"), info.get("version"), info.get("seed"), info.get("n_cases")) != \
            (GENERATOR, GENERATOR_VERSION, seed, n_cases):
        return False
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return len(rows) == n_cases and all((out_dir / r["image"]).is_file() and (out_dir / r["mask"]).is_file()
                                        for r in rows)


def synthesise_cohort(out_dir, n_cases: int, seed: int = 0, progress=None, cancel=None,
                      workers: int | None = None) -> Path:
    """Write a synthetic cohort of ``n_cases`` into ``out_dir``; return the manifest's path.

    A folder already holding this very cohort (same generator version, seed and size, all files
    present) is reused as it is. A non-empty folder that is not a synthetic cohort is refused
    rather than overwritten. The folder is written atomically.

    :param out_dir: the cohort folder (created; see docs/synthetic-cohort.md for its files).
    :param n_cases: number of cases, at least :data:`MIN_CASES` (for a 7:3 split).
    :param seed: the cohort's seed (0 or more): same seed, size and version, same bytes.
    :param progress: optional ``progress(fraction, message)`` callback (``progress.report``).
    :param cancel: optional callable; returning True stops with ``Cancelled``, leaving nothing.
    :param workers: processes generating the cases (default: up to 2); the files are the same
        for any number.
    :returns: the path of ``manifest.csv``.
    :raises InputError: too few cases, a negative seed, or a folder that is not a cohort.
    """
    out_dir = Path(out_dir)
    if n_cases < MIN_CASES:
        raise InputError(f"--cases: a cohort needs at least {MIN_CASES} cases for a 7:3 split, got {n_cases}")
    if seed < 0:
        raise InputError(f"--seed: must be 0 or more, got {seed}")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    if _reusable(out_dir, n_cases, seed):
        logger.info("reusing the synthetic cohort in %s (version %s, seed %d)", out_dir, GENERATOR_VERSION, seed)
        report(progress, 1.0, f"reusing the synthetic cohort in {out_dir}", cancel)
        return out_dir / "manifest.csv"
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / SYNTHETIC_MARKER).exists():
        raise InputError(f"{out_dir}: folder is not empty and holds no synthetic cohort; "
                         "give a new or empty folder")
    labels = assign_labels(n_cases, seed)
    workers = max(1, min(workers or min(2, os.cpu_count() or 1), n_cases))
    report(progress, 0.0, f"synthesising {n_cases} chest CTs", cancel)
    with atomic_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        jobs = [(seed, i, {e: int(labels.truth[e][i]) for e in ENDPOINTS}, str(tmp))
                for i in range(n_cases)]
        summaries = []

        def collect(results):
            for summary in results:
                summaries.append(summary)
                report(progress, len(summaries) / n_cases,
                       f"synthesised {len(summaries)}/{n_cases} cases", cancel)

        if workers == 1:
            collect(map(_write_case, jobs))
        else:
            # spawn: safe whatever threads (torch, Qt) the calling process already runs.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                collect(pool.imap(_write_case, jobs))
        _write_tables(tmp, labels, summaries)
        _write_info(tmp, n_cases, seed, labels)
    return out_dir / "manifest.csv"


def _write_tables(folder: Path, labels: CohortLabels, summaries: list[dict]) -> None:
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "image", "mask", "split", "cohort", *ENDPOINTS])
        for i, s in enumerate(summaries):
            cid = s["case_id"]
            writer.writerow([cid, f"images/{cid}.nii.gz", f"masks/{cid}.nii.gz", labels.split[i],
                             labels.cohort[i], *(labels.manifest_value(e, i) for e in ENDPOINTS)])
    keys = [k for k in summaries[0] if k != "case_id"]
    with open(folder / "synthetic_truth.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", *ENDPOINTS, *keys])
        for i, s in enumerate(summaries):
            writer.writerow([s["case_id"], *(int(labels.truth[e][i]) for e in ENDPOINTS),
                             *(json.dumps(s[k]) if isinstance(s[k], list) else s[k] for k in keys)])


def _write_info(folder: Path, n_cases: int, seed: int, labels: CohortLabels) -> None:
    known = {e: labels.known[e] for e in ENDPOINTS}
    info = {
        "generator": GENERATOR, "version": GENERATOR_VERSION, "package_version": __version__,
        "seed": seed, "n_cases": n_cases, "statement": STATEMENT,
        "mechanisms": MECHANISMS, "independent_endpoints": list(INDEPENDENT_ENDPOINTS),
        "target_prevalence": PREVALENCE, "mutually_exclusive": list(DRIVERS),
        "blanks": {"PDL1": "unknown for cohort II (as in the paper)",
                   **{e: f"{r:.0%} of cases at random" for e, r in RANDOM_BLANK.items()}},
        "split": "7:3 train/test by iterative stratification (Sechidis 2011) on every reported "
                 "positive label and on the cohort",
        "observed_prevalence": {e: round(float(labels.truth[e][known[e]].mean()), 4) for e in ENDPOINTS},
    }
    (folder / SYNTHETIC_MARKER).write_text(json.dumps(info, indent=2) + "\n")


def save_montage(image_path, mask_path, png_path, thickness_mm: float = DEFAULT_THICKNESS_MM) -> Path:
    """A PNG of one case: the deep-ROI axial slice in lung and mediastinal windows with the
    tumour (red) and 3 mm ring (yellow) outlined, and the 160 x 160 deep-ROI patch.

    :param image_path: the case's CT (any format ``io.images.load_case`` reads).
    :param mask_path: its tumour mask.
    :param png_path: the PNG to write (atomically).
    :param thickness_mm: the ring drawn.
    :returns: ``png_path`` as a Path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    from DeepRadScoreLib.io.images import load_case
    from DeepRadScoreLib.outputs import atomic_file
    from DeepRadScoreLib.regions import deep_roi_patch, peritumoral_ring

    case = load_case(image_path, mask_path)
    ring = peritumoral_ring(case.mask, thickness_mm)
    patch = deep_roi_patch(case.image, case.mask)
    k = patch.slice_index
    hu = sitk.GetArrayViewFromImage(case.image)[k]
    tumour = sitk.GetArrayViewFromImage(case.mask)[k]
    ring_k = sitk.GetArrayViewFromImage(ring)[k]
    sx, sy, _ = case.image.GetSpacing()
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.4))
    extent = (0, hu.shape[1] * sx, hu.shape[0] * sy, 0)
    cols = (np.arange(hu.shape[1]) + 0.5) * sx
    rows = (np.arange(hu.shape[0]) + 0.5) * sy
    for ax, (title, centre, width) in zip(axes[:2], (("lung window (C -600, W 1500)", -600, 1500),
                                                     ("mediastinal window (C 40, W 400)", 40, 400))):
        ax.imshow(hu, cmap="gray", vmin=centre - width / 2, vmax=centre + width / 2, extent=extent)
        ax.contour(cols, rows, tumour, levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(title)
        ax.set_xlabel("mm (patient right on the left)")
    axes[0].contour(cols, rows, ring_k, levels=[0.5], colors="yellow", linewidths=0.6)
    axes[2].imshow(patch.hu, cmap="gray", vmin=-1350, vmax=150)
    axes[2].set_title("deep-ROI patch 160 x 160 (lung window)")
    fig.suptitle(f"{Path(image_path).name}: axial slice {k}, spacing {sx:.2f} x {sy:.2f} x "
                 f"{case.image.GetSpacing()[2]:.2f} mm  -  {STATEMENT}")
    fig.tight_layout()
    with atomic_file(png_path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(png_path)
