"""Voxel grids: when a mask lies on a CT's grid, and how a mask with its own geometry is put on it.

The lowest layer of ``io``: both the image readers (``images``) and the DICOM readers (``dicom``)
build on it, so neither needs the other's internals and there is no import cycle between them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import SimpleITK as sitk

from DeepRadScoreLib.errors import InputError


# Two grids are "the same" when origins agree within this many mm and spacing/direction within
# this relative tolerance: what survives a NIfTI/NRRD round trip of float32 headers.
ORIGIN_TOLERANCE_MM = 1e-3
GRID_TOLERANCE = 1e-4
# A cropped segmentation (seg.nrrd, SEG frame) is accepted when its voxel centres fall on the
# CT's within this fraction of a voxel; its axes may be the CT's axes permuted or flipped.
SUBGRID_TOLERANCE_VOXELS = 1e-3


@dataclass
class Segment:
    """One candidate region of a mask file: its label number, its name (if the format has names)
    and ``load()``, which returns it as a bool array ``[k, j, i]`` on the CT's grid."""

    label: int
    name: str | None
    load: Callable[[], np.ndarray]

    def describe(self) -> str:
        return f"{self.label} '{self.name}'" if self.name is not None else str(self.label)


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


def place_on_grid(array: np.ndarray, origin, spacing, direction, reference: sitk.Image,
                  name: str) -> np.ndarray:
    """Put a bool array ``[k, j, i]`` with its own geometry onto ``reference``'s grid, losslessly.

    Its voxel centres must be voxel centres of the reference (a sub-grid: equal spacing, axes
    equal to the reference's up to order and sign, origin on a reference voxel) and its non-zero
    voxels inside the reference; anything else would need interpolation and is refused.
    """
    ref_matrix = np.array(reference.GetDirection()).reshape(3, 3) * np.array(reference.GetSpacing())
    own_matrix = np.array(direction, dtype=float).reshape(3, 3) * np.array(spacing, dtype=float)
    to_reference = np.linalg.inv(ref_matrix)
    transform = to_reference @ own_matrix  # own index (i, j, k) -> reference continuous index
    offset = to_reference @ (np.asarray(origin, dtype=float) - np.array(reference.GetOrigin()))
    used = [axis for axis in range(3) if array.shape[2 - axis] > 1]  # axes with more than one voxel
    rounded_transform, rounded_offset = np.round(transform), np.round(offset)
    aligned = (np.abs(transform[:, used] - rounded_transform[:, used]).max(initial=0) <= SUBGRID_TOLERANCE_VOXELS
               and np.abs(offset - rounded_offset).max() <= SUBGRID_TOLERANCE_VOXELS
               and all(np.abs(rounded_transform[:, a]).sum() == 1 for a in used)
               and len({int(np.argmax(np.abs(rounded_transform[:, a]))) for a in used}) == len(used))
    if not aligned:
        raise InputError(f"{name}: the segmentation's voxels do not fall on the CT's voxels (different "
                         "spacing, direction or a sub-voxel shift); resample it onto the CT first")
    kji = np.argwhere(array)
    index = kji[:, ::-1] @ rounded_transform.T + rounded_offset
    index = index.astype(np.int64)
    size = np.array(reference.GetSize())
    inside = np.all((index >= 0) & (index < size), axis=1)
    if not inside.all():
        raise InputError(f"{name}: {int((~inside).sum())} segmented voxels lie outside the CT")
    out = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=bool)
    out[index[:, 2], index[:, 1], index[:, 0]] = True
    return out


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
