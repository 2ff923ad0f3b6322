"""``deepradscore ring`` and ``deepradscore patch``: write the two derived regions for looking at.

``ring`` writes the peritumoral ring as a mask on the CT grid (format from the output's name:
``.nii.gz``, ``.nrrd``, ``.mha``). ``patch`` writes the deep-ROI patch as a PNG in the lung window
(C -600, W 1500) with the tumour outline in red, enlarged ``PNG_SCALE`` times so the outline is a
thin line; rows and columns are the CT's own (for a standard axial CT: anterior at the top, the
patient's right on the left, as radiologists view it).
"""
from __future__ import annotations

import argparse

import numpy as np

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.outputs import atomic_file, check_output_file
from DeepRadScoreLib.features.settings import check_thickness
from DeepRadScoreLib.regions import WINDOWS, deep_roi_patch, sample_patch

# SimpleITK and the image readers are imported in the handlers: cli.main imports this module for
# every command, and a cohort's `extract` main process never needs them (~30 MB).


PNG_SCALE = 3
OUTLINE_RGB = (255, 40, 40)


def run_ring(args: argparse.Namespace) -> int:
    import SimpleITK as sitk

    from DeepRadScoreLib.io.images import load_case, read_constraint
    from DeepRadScoreLib.regions import peritumoral_ring

    # The cheap refusals first: a bad option or an unwritable -o must not cost the reading.
    check_thickness(args.thickness_mm)
    check_output_file(args.output)
    case = load_case(args.image, args.mask, label=args.label, roi_name=args.roi_name)
    constraint = read_constraint(args.constraint, case.image) if args.constraint else None
    hu_range = tuple(args.hu_range) if args.hu_range else None
    ring = peritumoral_ring(case.mask, args.thickness_mm, image=case.image, constraint=constraint,
                            hu_range=hu_range)
    voxels = int(sitk.GetArrayViewFromImage(ring).sum())
    if voxels == 0:
        raise InputError(f"{args.mask}: the {args.thickness_mm:g} mm ring is empty"
                         + (" after the HU range / constraint" if hu_range or constraint else ""))
    with atomic_file(args.output) as tmp:
        _write_image(ring, tmp, args.output)
    volume_ml = voxels * float(np.prod(ring.GetSpacing())) / 1000.0
    print(f"ring: {voxels} voxels ({volume_ml:.2f} ml), {args.thickness_mm:g} mm -> {args.output}")
    return 0


def run_patch(args: argparse.Namespace) -> int:
    from DeepRadScoreLib.io.images import load_case

    check_output_file(args.output)
    case = load_case(args.image, args.mask, label=args.label, roi_name=args.roi_name)
    patch = deep_roi_patch(case.image, case.mask)
    tumour = sample_patch(case.mask, patch, 0.0) > 0
    rgb = patch_png_pixels(patch.hu, tumour)
    from PIL import Image

    with atomic_file(args.output) as tmp:
        try:
            Image.fromarray(rgb).save(tmp, format="PNG")
        except OSError as err:
            raise InputError(f"{args.output}: cannot write the PNG ({err})") from None
    print(f"patch: slice k={patch.slice_index}, rows {patch.row0}..{patch.row0 + patch.size - 1}, "
          f"columns {patch.column0}..{patch.column0 + patch.size - 1}, tumour {patch.tumour_area_voxels} "
          f"pixels -> {args.output}")
    return 0


def patch_png_pixels(hu: np.ndarray, tumour: np.ndarray, scale: int = PNG_SCALE) -> np.ndarray:
    """uint8 RGB ``(H*scale, W*scale, 3)``: lung-window grey, tumour boundary pixels in red."""
    _, centre, width = next(w for w in WINDOWS if w[0] == "lung")
    grey = np.clip((hu - (centre - width / 2.0)) / width, 0.0, 1.0)
    grey = np.round(grey * 255.0).astype(np.uint8)
    big_grey = np.kron(grey, np.ones((scale, scale), dtype=np.uint8))
    big_tumour = np.kron(tumour.astype(np.uint8), np.ones((scale, scale), dtype=np.uint8)) > 0
    padded = np.pad(big_tumour, 1, constant_values=False)
    interior = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    outline = big_tumour & ~interior
    rgb = np.repeat(big_grey[..., None], 3, axis=2)
    rgb[outline] = OUTLINE_RGB
    return rgb


def _write_image(image: sitk.Image, tmp, output) -> None:
    import SimpleITK as sitk

    try:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    except RuntimeError:
        raise InputError(f"{output}: cannot write an image with this name's format "
                         "(use .nii.gz, .nrrd or .mha)") from None
