"""Image and mask perturbations for feature robustness (Zwanenburg et al., Sci Rep 2019).

Each perturbation moves the case a little, as a repeat scan or a second reader would:

- ``rotation``: the image and mask rotated together about the mask's centroid, in the axial
  plane, by an angle drawn from [-max, +max] degrees (image linear, mask nearest neighbour);
- ``noise``: additive Gaussian noise of a fixed standard deviation (HU) on the image;
- ``volume``: the mask dilated (even copies) or eroded (odd copies) by one voxel (3D cross), the
  "volume adaptation" of the paper;
- ``contour``: contour randomisation: each voxel of the mask's inner and outer one-voxel border
  is flipped (removed / added) with a probability, independently.

A copy applies the chosen perturbations in that order, each with its own draw from a generator
seeded by ``(seed, case_id, copy)``: the same arguments always give the same copy, bit for bit,
which is what lets the extraction cache recognise a copy it has already extracted.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from DeepRadScoreLib.errors import InputError


KINDS = ("rotation", "noise", "volume", "contour")


@dataclass(frozen=True)
class PerturbationSettings:
    """Which perturbations a copy applies and how strong they are."""

    kinds: tuple[str, ...] = KINDS
    max_rotation_deg: float = 5.0
    noise_sd_hu: float = 10.0
    volume_voxels: int = 1
    contour_flip: float = 0.3

    def __post_init__(self):
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise InputError(f"--perturbations: unknown {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(KINDS)}")
        if self.max_rotation_deg < 0 or self.noise_sd_hu < 0 or self.volume_voxels < 0 \
                or not 0 <= self.contour_flip <= 1:
            raise InputError("perturbation strengths must be >= 0 (contour flip probability in [0, 1])")


def copy_rng(seed: int, case_id: str, copy: int) -> np.random.Generator:
    """The generator of one copy: independent of the other copies and cases, fixed by the seed."""
    digest = hashlib.sha256(f"{seed}\0{case_id}\0{copy}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def rotate(image: sitk.Image, mask: sitk.Image, degrees: float) -> tuple[sitk.Image, sitk.Image]:
    """Image and mask rotated by ``degrees`` about the mask's centroid in the axial plane (about
    the image's third axis), resampled on the original grid."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(mask > 0, sitk.sitkUInt8))
    if not stats.HasLabel(1):
        raise InputError("cannot rotate an empty mask")
    axis = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
    transform = sitk.VersorRigid3DTransform()
    transform.SetCenter(stats.GetCentroid(1))
    transform.SetRotation(tuple(float(a) for a in axis), float(np.deg2rad(degrees)))
    fill = float(sitk.GetArrayViewFromImage(image).min())
    rotated = sitk.Resample(image, image, transform, sitk.sitkLinear, fill, sitk.sitkFloat32)
    rotated_mask = sitk.Resample(sitk.Cast(mask > 0, sitk.sitkUInt8), mask, transform,
                                 sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return rotated, rotated_mask


def add_noise(image: sitk.Image, sd_hu: float, rng: np.random.Generator) -> sitk.Image:
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array += rng.normal(0.0, sd_hu, array.shape).astype(np.float32)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


def _cross(mask: np.ndarray) -> np.ndarray:
    """The 6-connected dilation of a boolean volume by one voxel."""
    out = mask.copy()
    for axis in range(3):
        for shift in (1, -1):
            rolled = np.roll(mask, shift, axis=axis)
            edge = [slice(None)] * 3
            edge[axis] = slice(0, 1) if shift == 1 else slice(-1, None)
            rolled[tuple(edge)] = False  # no wrap-around
            out |= rolled
    return out


def grow(mask: np.ndarray, voxels: int) -> np.ndarray:
    """Dilate (``voxels`` > 0) or erode (< 0) a boolean volume by whole voxels (3D cross)."""
    out = mask.astype(bool)
    for _ in range(abs(voxels)):
        out = _cross(out) if voxels > 0 else ~_cross(~out)
    return out


def randomise_contour(mask: np.ndarray, flip: float, rng: np.random.Generator) -> np.ndarray:
    """Flip each voxel of the one-voxel inner and outer border with probability ``flip``."""
    mask = mask.astype(bool)
    inner = mask & ~grow(mask, -1)
    outer = grow(mask, 1) & ~mask
    out = mask.copy()
    out[inner & (rng.random(mask.shape) < flip)] = False
    out[outer & (rng.random(mask.shape) < flip)] = True
    return out


def perturbed_copy(image: sitk.Image, mask: sitk.Image, settings: PerturbationSettings, seed: int,
                   case_id: str, copy: int) -> tuple[sitk.Image, sitk.Image]:
    """Copy number ``copy`` of one case (binary mask on the image's grid)."""
    rng = copy_rng(seed, case_id, copy)
    if "rotation" in settings.kinds:
        image, mask = rotate(image, mask, rng.uniform(-settings.max_rotation_deg, settings.max_rotation_deg))
    if "noise" in settings.kinds:
        image = add_noise(image, settings.noise_sd_hu, rng)
    array = sitk.GetArrayFromImage(mask) > 0
    if "volume" in settings.kinds:
        array = grow(array, settings.volume_voxels if copy % 2 == 0 else -settings.volume_voxels)
    if "contour" in settings.kinds:
        array = randomise_contour(array, settings.contour_flip, rng)
    if not array.any():
        raise InputError(f"{case_id}: the perturbed mask of copy {copy} is empty (the tumour is too small "
                         f"to erode)")
    out = sitk.GetImageFromArray(array.astype(np.uint8))
    out.CopyInformation(image)
    return image, out
