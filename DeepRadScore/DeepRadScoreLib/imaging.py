"""Reading a CT and its tumour mask into SimpleITK images on one grid.

``load_case(image_path, mask_path)`` is the entry point: the CT as float32 HU and the tumour as a
uint8 0/1 mask on exactly the CT's grid, or an :class:`InputError` that names the file and the
problem.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError

# Two grids are "the same" when origins agree within this many mm and spacing/direction within
# this relative tolerance: what survives a NIfTI/NRRD round trip of float32 headers.
ORIGIN_TOLERANCE_MM = 1e-3
GRID_TOLERANCE = 1e-4


@dataclass
class Case:
    """One CT with its tumour mask, both on the CT's grid."""

    image: sitk.Image
    mask: sitk.Image
    image_path: str = ""
    mask_path: str = ""


def read_image(path: str | Path) -> sitk.Image:
    """Read a CT volume (NIfTI, NRRD, MHA, ...) as float32 HU."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise InputError(f"{path}: cannot read as an image ({_first_line(err)})") from None
    if image.GetDimension() != 3:
        raise InputError(f"{path}: expected a 3D image, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: expected a scalar CT image, got {image.GetNumberOfComponentsPerPixel()} components")
    return sitk.Cast(image, sitk.sitkFloat32)


def read_mask(path: str | Path, reference: sitk.Image, label: int | None = None) -> sitk.Image:
    """Read a tumour mask and return it as uint8 0/1 on ``reference``'s grid.

    A mask holding several labels needs ``label``; one holding a single non-zero value is taken
    as it is.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        mask = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise InputError(f"{path}: cannot read as a mask ({_first_line(err)})") from None
    return binarise(mask, reference, label, str(path))


def binarise(mask: sitk.Image, reference: sitk.Image, label: int | None, name: str) -> sitk.Image:
    """Select ``label`` (or the only label) of ``mask`` and check it lies on ``reference``'s grid."""
    if mask.GetDimension() != 3:
        raise InputError(f"{name}: expected a 3D mask, got {mask.GetDimension()}D")
    check_same_grid(reference, mask, name)
    values = sitk.GetArrayViewFromImage(mask)
    labels = np.unique(values)
    labels = labels[labels != 0]
    if label is None:
        if len(labels) == 0:
            raise InputError(f"{name}: the mask is empty")
        if len(labels) > 1:
            raise InputError(f"{name}: the mask holds labels {', '.join(str(int(v)) for v in labels)}; "
                             "choose one with --label N")
        label = labels[0]
    elif label not in labels:
        raise InputError(f"{name}: label {label} is not in the mask (labels: "
                         f"{', '.join(str(int(v)) for v in labels) or 'none'})")
    binary = sitk.GetImageFromArray((values == label).astype(np.uint8))
    binary.CopyInformation(reference)
    return binary


def check_same_grid(reference: sitk.Image, other: sitk.Image, name: str) -> None:
    """Raise an :class:`InputError` unless ``other`` lies on ``reference``'s voxel grid."""
    problems = []
    if reference.GetSize() != other.GetSize():
        problems.append(f"size {other.GetSize()} vs image {reference.GetSize()}")
    if not np.allclose(reference.GetSpacing(), other.GetSpacing(), rtol=GRID_TOLERANCE, atol=0):
        problems.append(f"spacing {_fmt(other.GetSpacing())} vs image {_fmt(reference.GetSpacing())}")
    if not np.allclose(reference.GetOrigin(), other.GetOrigin(), rtol=0, atol=ORIGIN_TOLERANCE_MM):
        problems.append(f"origin {_fmt(other.GetOrigin())} vs image {_fmt(reference.GetOrigin())}")
    if not np.allclose(reference.GetDirection(), other.GetDirection(), rtol=0, atol=GRID_TOLERANCE):
        problems.append("direction cosines differ from the image's")
    if problems:
        raise InputError(f"{name}: mask is not on the image's grid ({'; '.join(problems)})")


def load_case(image_path: str | Path, mask_path: str | Path, label: int | None = None) -> Case:
    """Read a CT and its tumour mask, checked and on one grid."""
    image = read_image(image_path)
    mask = read_mask(mask_path, image, label)
    return Case(image=image, mask=mask, image_path=str(image_path), mask_path=str(mask_path))


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
