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
import SimpleITK as sitk

from .errors import InputError

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


def peritumoral_ring(mask: sitk.Image, thickness_mm: float = 3.0, image: sitk.Image | None = None,
                     constraint: sitk.Image | None = None,
                     hu_range: tuple[float, float] | None = None) -> sitk.Image:
    """Voxels outside the tumour within ``thickness_mm`` of it (exact Euclidean distance in mm).

    The distance is measured between voxel centres in physical millimetres with the image's own
    (possibly anisotropic) spacing, so the ring is ``0 < d <= thickness_mm``. It is clipped to the
    image (never padded beyond it). Optional, off by default as in the paper: ``constraint`` (a
    mask on the same grid, e.g. the body or lung) and ``hu_range`` (needs ``image``) drop voxels
    outside them, e.g. air outside the body.
    """
    from scipy import ndimage

    if thickness_mm <= 0:
        raise InputError(f"ring thickness must be positive, got {thickness_mm} mm")
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
    ring = np.zeros(tumour.shape, dtype=np.uint8)
    ring[box] = (distance > 0) & (distance <= thickness_mm)
    if constraint is not None:
        ring &= (sitk.GetArrayViewFromImage(constraint) > 0).astype(np.uint8)
    if hu_range is not None:
        if image is None:
            raise InputError("an HU range for the ring needs the CT image")
        hu = sitk.GetArrayViewFromImage(image)
        ring &= ((hu >= hu_range[0]) & (hu <= hu_range[1])).astype(np.uint8)
    out = sitk.GetImageFromArray(ring)
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

    Centred on the tumour's centroid in that slice (rounded to the nearest voxel); ties between
    slices go to the one nearest the tumour's 3D centroid so that the choice is stable.
    """
    tumour = sitk.GetArrayViewFromImage(mask) > 0
    areas = tumour.sum(axis=(1, 2))
    if areas.max() == 0:
        raise InputError("the tumour mask is empty")
    candidates = np.flatnonzero(areas == areas.max())
    centre_k = np.argwhere(tumour)[:, 0].mean()
    k = int(candidates[np.argmin(np.abs(candidates - centre_k))])
    rows, cols = np.nonzero(tumour[k])
    cy, cx = rows.mean(), cols.mean()
    row0 = int(round(cy)) - size // 2
    col0 = int(round(cx)) - size // 2
    hu_slice = sitk.GetArrayViewFromImage(image)[k]
    patch = np.full((size, size), AIR_HU, dtype=np.float32)
    r_lo, r_hi = max(row0, 0), min(row0 + size, hu_slice.shape[0])
    c_lo, c_hi = max(col0, 0), min(col0 + size, hu_slice.shape[1])
    if r_lo < r_hi and c_lo < c_hi:
        patch[r_lo - row0:r_hi - row0, c_lo - col0:c_hi - col0] = hu_slice[r_lo:r_hi, c_lo:c_hi]
    corners = np.array([image.TransformContinuousIndexToPhysicalPoint((float(col0 + c), float(row0 + r), float(k)))
                        for r, c in ((0, 0), (0, size - 1), (size - 1, 0), (size - 1, size - 1))])
    return DeepRoiPatch(hu=patch, slice_index=k, row0=row0, column0=col0,
                        centroid_index=(float(cx), float(cy), float(k)), corners=corners,
                        tumour_area_voxels=int(areas[k]))


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
    """Put a ``size`` x ``size`` map (e.g. Grad-CAM) back on the CT grid: zero elsewhere."""
    out = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.float32)
    size = patch.size
    r_lo, r_hi = max(patch.row0, 0), min(patch.row0 + size, out.shape[1])
    c_lo, c_hi = max(patch.column0, 0), min(patch.column0 + size, out.shape[2])
    out[patch.slice_index, r_lo:r_hi, c_lo:c_hi] = values[r_lo - patch.row0:r_hi - patch.row0,
                                                          c_lo - patch.column0:c_hi - patch.column0]
    volume = sitk.GetImageFromArray(out)
    volume.CopyInformation(reference)
    return volume
