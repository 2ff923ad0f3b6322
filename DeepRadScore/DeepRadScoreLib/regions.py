"""The three regions of Deep-RadScore: tumour (given), peritumoral ring, deep-ROI patch.

Everything is computed on SimpleITK images so that spacing, origin and direction travel with the
data. Arrays taken from SimpleITK are indexed ``[k, j, i]`` (slice, row, column); "axial" means
the image's third index axis ``k``, which is the patient's superior-inferior axis for every CT
acquired axially (the direction cosines are honoured for physical positions, never for choosing
the slicing axis, exactly as a radiologist's "slice" means the acquired one).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from DeepRadScoreLib.errors import InputError

# SimpleITK (and io.grid, which needs it) are imported in the functions that use them: a cohort's
# main process imports this module (PATCH_SIZE) without loading SimpleITK (~30 MB it never uses).


PATCH_SIZE = 160
AIR_HU = -1000.0

# Three CT windows (centre, width) in HU, one per network input channel. The paper gives a single
# grey patch; ImageNet backbones want three channels, and three windows hand them lung
# parenchyma, soft tissue and a wide window instead of three copies of one.
WINDOWS = (
    ("lung", -600.0, 1500.0),
    ("mediastinal", 40.0, 400.0),
    ("wide", 0.0, 2000.0),
)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# Slack on the ring's distance test: the EDT's square root of a sum of squared spacings can land a
# few ulp above a thickness it equals exactly.
DISTANCE_TOLERANCE_MM = 1e-6
def peritumoral_ring(mask: sitk.Image, thickness_mm: float, image: sitk.Image | None = None,
                     constraint: sitk.Image | None = None,
                     hu_range: tuple[float, float] | None = None) -> sitk.Image:
    """Voxels outside the tumour within ``thickness_mm`` of it (exact Euclidean distance in mm).

    A voxel ``v`` outside the tumour ``T`` is in the ring when ``min over t in T of |v - t| <=
    thickness_mm``, the distance taken between voxel centres in physical millimetres with the
    image's own (possibly anisotropic) spacing; direction cosines rotate the grid but do not change
    these distances. ``DISTANCE_TOLERANCE_MM`` absorbs floating-point error so that a voxel exactly
    3 mm away (e.g. 5 x 0.6 mm) counts. The ring is clipped to the image (never padded beyond it).
    Optional, off by default as in the paper: ``constraint`` (a mask on the same grid, e.g. the body
    or lung) and ``hu_range`` (needs ``image``) drop voxels outside them, e.g. air outside the body.
    ``thickness_mm`` comes checked (``features.settings.check_thickness``, or the settings object).
    """
    import SimpleITK as sitk
    from scipy import ndimage

    from DeepRadScoreLib.io.grid import check_same_grid

    tumour = sitk.GetArrayViewFromImage(mask) > 0
    if not tumour.any():
        raise InputError("the tumour mask is empty")
    spacing_kji = np.array(mask.GetSpacing()[::-1], dtype=float)
    # Only a box around the tumour can hold ring voxels: compute the distance map there.
    margin = np.ceil(thickness_mm / spacing_kji).astype(int) + 1
    nonzero = np.argwhere(tumour)
    lo = np.maximum(nonzero.min(axis=0) - margin, 0)
    hi = np.minimum(nonzero.max(axis=0) + margin + 1, tumour.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    distance = ndimage.distance_transform_edt(~tumour[box], sampling=spacing_kji)
    ring = np.zeros(tumour.shape, dtype=bool)
    ring[box] = (distance > 0) & (distance <= thickness_mm + DISTANCE_TOLERANCE_MM)
    if constraint is not None:
        check_same_grid(mask, constraint, "ring constraint")
        ring &= sitk.GetArrayViewFromImage(constraint) > 0
    if hu_range is not None:
        if image is None:
            raise InputError("an HU range for the ring needs the CT image")
        low, high = hu_range
        if not low < high:
            raise InputError(f"the ring's HU range must have LOW < HIGH, got {low:g} {high:g}")
        check_same_grid(image, mask, "tumour mask")
        hu = sitk.GetArrayViewFromImage(image)
        ring &= (hu >= low) & (hu <= high)
    out = sitk.GetImageFromArray(ring.astype(np.uint8))
    out.CopyInformation(mask)
    return out


@dataclass
class DeepRoiPatch:
    """The deep-ROI patch and where it lies in the CT.

    ``hu[r, c]`` is the CT at index ``(i, j, k) = (column0 + c, row0 + r, slice_index)``; pixels
    beyond the image are air (-1000 HU). ``corners`` are the physical (LPS, mm) centres of the
    patch pixels [0, 0], [0, size-1], [size-1, 0] and [size-1, size-1].
    """

    hu: np.ndarray
    slice_index: int
    row0: int
    column0: int
    centroid_index: tuple[float, float, float]
    corners: np.ndarray
    tumour_area_voxels: int

    @property
    def size(self) -> int:
        return self.hu.shape[0]

    def to_dict(self) -> dict:
        return {"slice_index": self.slice_index, "row0": self.row0, "column0": self.column0,
                "size": self.size, "centroid_index": list(self.centroid_index),
                "corners_lps_mm": self.corners.tolist(),
                "tumour_area_voxels": self.tumour_area_voxels}


def deep_roi_patch(image: sitk.Image, mask: sitk.Image, size: int = PATCH_SIZE) -> DeepRoiPatch:
    """The ``size`` x ``size`` patch on the axial slice with the largest tumour area.

    Slice: the largest tumour cross-section (voxel count) on index axis ``k``; ties go to the slice
    nearest the tumour's 3D centroid, then to the lower ``k``, so the choice is stable. Centring:
    the tumour's centroid in that slice, rounded half up to a voxel, lands on patch pixel
    ``[size // 2, size // 2]``. Pixels beyond the image are air (-1000 HU).
    """
    import SimpleITK as sitk

    from DeepRadScoreLib.io.grid import check_same_grid

    check_same_grid(image, mask, "tumour mask")
    tumour = sitk.GetArrayViewFromImage(mask) > 0
    areas = tumour.sum(axis=(1, 2))
    if areas.max() == 0:
        raise InputError("the tumour mask is empty")
    candidates = np.flatnonzero(areas == areas.max())
    centre_k = np.argwhere(tumour)[:, 0].mean()
    k = int(candidates[np.argmin(np.abs(candidates - centre_k))])  # argmin: first (lower k) of a tie
    rows, cols = np.nonzero(tumour[k])
    cy, cx = rows.mean(), cols.mean()
    row0 = int(np.floor(cy + 0.5)) - size // 2
    col0 = int(np.floor(cx + 0.5)) - size // 2
    corners = np.array([image.TransformContinuousIndexToPhysicalPoint((float(col0 + c), float(row0 + r), float(k)))
                        for r, c in ((0, 0), (0, size - 1), (size - 1, 0), (size - 1, size - 1))])
    patch = DeepRoiPatch(hu=np.empty((size, size), dtype=np.float32), slice_index=k, row0=row0,
                         column0=col0, centroid_index=(float(cx), float(cy), float(k)), corners=corners,
                         tumour_area_voxels=int(areas[k]))
    patch.hu = sample_patch(image, patch, AIR_HU)
    return patch


def sample_patch(volume: sitk.Image, patch: DeepRoiPatch, fill: float = 0.0) -> np.ndarray:
    """The pixels of ``volume`` (on the CT grid) under ``patch``, ``fill`` beyond the image.

    E.g. ``sample_patch(mask, patch)`` is the tumour outline in the patch.
    """
    import SimpleITK as sitk

    plane = sitk.GetArrayViewFromImage(volume)[patch.slice_index]
    size = patch.size
    out = np.full((size, size), fill, dtype=np.float32)
    r_lo, r_hi = max(patch.row0, 0), min(patch.row0 + size, plane.shape[0])
    c_lo, c_hi = max(patch.column0, 0), min(patch.column0 + size, plane.shape[1])
    if r_lo < r_hi and c_lo < c_hi:
        out[r_lo - patch.row0:r_hi - patch.row0, c_lo - patch.column0:c_hi - patch.column0] = \
            plane[r_lo:r_hi, c_lo:c_hi]
    return out


def network_input(hu: np.ndarray) -> np.ndarray:
    """HU patch(es) ``(..., H, W)`` -> float32 ``(..., 3, H, W)`` for an ImageNet backbone.

    Channel c is the CT clipped to window ``WINDOWS[c]`` and scaled to 0..1, then normalised with
    ImageNet's per-channel mean and standard deviation (what torchvision's pretrained weights
    expect).
    """
    hu = np.asarray(hu, dtype=np.float32)
    channels = []
    for c, (_, centre, width) in enumerate(WINDOWS):
        scaled = np.clip((hu - (centre - width / 2.0)) / width, 0.0, 1.0)
        channels.append((scaled - IMAGENET_MEAN[c]) / IMAGENET_STD[c])
    return np.stack(channels, axis=-3).astype(np.float32)


def patch_to_volume(patch: DeepRoiPatch, values: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Put a ``size`` x ``size`` map (e.g. Grad-CAM) back on the CT grid: zero elsewhere.

    The inverse of :func:`sample_patch` on the pixels that lie inside the image.
    """
    import SimpleITK as sitk

    values = np.asarray(values, dtype=np.float32)
    if values.shape != (patch.size, patch.size):
        raise ValueError(f"expected a {patch.size} x {patch.size} map, got {values.shape}")
    out = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.float32)
    size = patch.size
    r_lo, r_hi = max(patch.row0, 0), min(patch.row0 + size, out.shape[1])
    c_lo, c_hi = max(patch.column0, 0), min(patch.column0 + size, out.shape[2])
    out[patch.slice_index, r_lo:r_hi, c_lo:c_hi] = values[r_lo - patch.row0:r_hi - patch.row0,
                                                          c_lo - patch.column0:c_hi - patch.column0]
    volume = sitk.GetImageFromArray(out)
    volume.CopyInformation(reference)
    return volume
