"""What pyradiomics does to the image and mask before a feature class sees them.

All arrays are numpy's (z, y, x) order (``sitk.GetArrayFromImage``); boxes are inclusive
``(lo, hi)`` index triples in that order.

* **Mask checks** (pyradiomics' ``getMask`` and ``checkMask``): the ROI is ``mask == label``; it
  must not be empty, must span at least ``minimumROIDimensions`` axes (a single voxel never
  passes) and, when ``minimumROISize`` is set, hold more than that many voxels.
* **preCrop**: the ROI's bounding box grown by ``padDistance`` voxels on every side, clamped at
  the image. Filters run on that crop; every feature class then sees the bounding box itself
  (no padding), shape included.
* **Discretisation** with a fixed bin width: edges ``lo, lo + w, ...`` from
  ``lo = min - (min mod w)`` up to (not including) ``max + 2w``, each ROI voxel in the bin
  ``np.digitize`` gives (so bins are half-open and the ROI's lowest bin is 1). The arithmetic is
  done in the image's own dtype, as pyradiomics does it, because an edge computed in another
  precision moves voxels lying within rounding of it to the next bin.
* **Filters** (the wavelet and the other image types) live in :mod:`DeepRadScoreLib.features.filters`,
  shared with the pyradiomics path.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from DeepRadScoreLib.errors import InputError


Box = tuple[np.ndarray, np.ndarray]


def roi_array(mask: np.ndarray, label: int = 1) -> np.ndarray:
    """The ROI as a boolean array: voxels whose mask value equals ``label``."""
    return np.asarray(mask) == label


def bounding_box(roi: np.ndarray, what: str) -> Box:
    """Inclusive (lo, hi) (z, y, x) box of a boolean ROI; :class:`InputError` when it is empty."""
    lo, hi = [], []
    for axis in range(roi.ndim):
        present = np.flatnonzero(roi.any(axis=tuple(a for a in range(roi.ndim) if a != axis)))
        if len(present) == 0:
            raise InputError(f"{what}: the region is empty")
        lo.append(present[0])
        hi.append(present[-1])
    return np.array(lo), np.array(hi)


def check_roi(roi: np.ndarray, what: str, minimum_dimensions: int = 2,
              minimum_size: Optional[int] = None) -> Box:
    """pyradiomics' ROI checks (``checkMask``), with its messages; returns the bounding box.

    Raises :class:`InputError` (``"<what>: <problem>"``) for an empty ROI, a single voxel, an ROI
    spanning fewer than ``minimum_dimensions`` axes, or (when set) at most ``minimum_size`` voxels.
    """
    lo, hi = bounding_box(roi, what)
    dimensions = int(np.sum(hi - lo + 1 > 1))
    if dimensions == 0:
        raise InputError(f"{what}: mask only contains 1 segmented voxel! Cannot extract features for a "
                         "single voxel.")
    if dimensions < minimum_dimensions:
        raise InputError(f"{what}: mask has too few dimensions (number of dimensions {dimensions}, "
                         f"minimum required {minimum_dimensions})")
    if minimum_size is not None:
        size = int(np.count_nonzero(roi))
        if size <= minimum_size:
            raise InputError(f"{what}: Size of the ROI is too small (minimum size: {minimum_size:g}, "
                             f"ROI size: {size:g}")
    return lo, hi


def pad_box(box: Box, pad: int, shape) -> Box:
    """pyradiomics' preCrop box: ``box`` grown by ``pad`` voxels per side, clamped at the image."""
    lo, hi = box
    return np.maximum(lo - pad, 0), np.minimum(hi + pad, np.asarray(shape) - 1)


def crop(array: np.ndarray, box: Box) -> np.ndarray:
    """The part of ``array`` inside an inclusive box (a view)."""
    lo, hi = box
    return array[tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi))]


def relative(box: Box, within: Box) -> Box:
    """``box`` in the coordinates of a crop that starts at ``within``'s lower corner."""
    return box[0] - within[0], box[1] - within[0]


def bin_edges(values: np.ndarray, bin_width: float, bin_count: Optional[int] = None) -> np.ndarray:
    """The bin edges of the ROI's grey values (see the module docstring).

    With ``bin_count`` set: numpy's ``histogram`` edges of that many equal bins over the values'
    range, the top edge raised by 1 so that ``np.digitize`` puts the maximum in the top bin
    (pyradiomics' rule, whatever the scale of the values).
    """
    if bin_count is not None:
        edges = np.histogram(values, int(bin_count))[1]
        edges[-1] += 1
        return edges
    low = values.min()
    high = values.max()
    # In the values' own dtype (numpy scalars), exactly as the definition is evaluated upstream.
    start = low - (low % bin_width)
    edges = np.arange(start, high + 2 * bin_width, bin_width)
    if len(edges) == 1:
        # Only reachable through rounding (the range spans >= 2 widths): one bin around the value.
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    return edges


def discretise(image: np.ndarray, roi: np.ndarray, bin_width: float, bin_count: Optional[int] = None) -> np.ndarray:
    """Bin indices (>= 1) of the ROI's voxels; voxels outside the ROI are 0.

    ``image`` is a grey-level array, ``roi`` a boolean array of the same shape; ``bin_count``
    (when set) takes the place of ``bin_width``, as in pyradiomics.
    """
    values = image[roi]
    q = np.zeros(image.shape, dtype=int)
    q[roi] = np.digitize(values, bin_edges(values, bin_width, bin_count))
    return q


# --- image preparation before the mask checks: normalisation, resampling, resegmentation --------

def normalised(image, scale=1, outliers=None):
    """pyradiomics' ``normalize``: SimpleITK's ``Normalize`` (zero mean, unit standard deviation
    over the whole image, not the ROI), values beyond +/- ``outliers`` clipped, times ``scale``."""
    import SimpleITK as sitk

    image = sitk.Normalize(image)
    if outliers is not None:
        array = sitk.GetArrayFromImage(image)
        np.clip(array, -outliers, outliers, out=array)
        clipped = sitk.GetImageFromArray(array)
        clipped.CopyInformation(image)
        image = clipped
    return image * scale


def check_inside(image, mask, label: int, what: str) -> None:
    """pyradiomics' ``_checkROI``: the ROI's bounding box (voxel edges, in the mask's geometry)
    must lie within the image's extent, up to 1e-3 voxel."""
    lo, hi = bounding_box(np.asarray(sitk_array(mask)) == label, what)
    index, size = lo[::-1].astype(float), (hi - lo + 1)[::-1].astype(float)
    first = mask.TransformContinuousIndexToPhysicalPoint((index - 0.5).tolist())
    last = mask.TransformContinuousIndexToPhysicalPoint((index + size - 0.5).tolist())
    bounds = np.array([image.TransformPhysicalPointToContinuousIndex(first),
                       image.TransformPhysicalPointToContinuousIndex(last)])
    if (np.any(bounds.min(axis=0) < -0.5 - 1e-3)
            or np.any(bounds.max(axis=0) > np.array(image.GetSize()) - 0.5 + 1e-3)):
        raise InputError(f"{what}: the ROI's bounding box is larger than the image space")


def onto(image, mask):
    """pyradiomics' ``_correctMask``: the mask resampled onto the image's grid, nearest neighbour."""
    import SimpleITK as sitk

    resample = sitk.ResampleImageFilter()
    resample.SetReferenceImage(image)
    resample.SetInterpolator(sitk.sitkNearestNeighbor)
    return resample.Execute(mask)


def sitk_array(image):
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(image)


def _interpolator(name):
    import SimpleITK as sitk

    # pyradiomics falls back to B-spline for a name SimpleITK does not know.
    return getattr(sitk, name, sitk.sitkBSpline) if isinstance(name, str) else name


def resampled(image, mask, spacing, interpolator, pad_distance: int, label: int, what: str):
    """pyradiomics' ``resampleImage``: the image (its pixel type kept) and the UInt32 mask on a
    grid of ``spacing`` (0 keeps the mask's spacing; so does an axis the ROI spans one voxel of)
    that covers the ROI's bounding box grown by ``pad_distance`` new voxels, clamped at the image.

    The new grid's first voxel centre sits half the spacing difference in from the old grid's
    first voxel's edge, as pyradiomics puts it; the image is interpolated with ``interpolator``
    (a SimpleITK name), the mask with nearest neighbour. With the image's own spacing the mask is
    only cropped (pyradiomics' shortcut, which then crops both with ``cropToTumorMask``).
    """
    import SimpleITK as sitk

    values = sitk.GetArrayViewFromImage(mask)
    lo, hi = bounding_box(values == label, what)
    index, size = lo[::-1].astype(float), (hi - lo + 1)[::-1].astype(float)
    mask_spacing = np.array(mask.GetSpacing())
    new_spacing = np.array(spacing, dtype=float)
    if len(new_spacing) != len(mask_spacing):
        raise InputError(f"{what}: resampledPixelSpacing needs {len(mask_spacing)} values")
    new_spacing = np.where(new_spacing == 0, mask_spacing, new_spacing)
    new_spacing = np.where(size != 1, new_spacing, mask_spacing)
    if np.allclose(np.array(image.GetSpacing()), new_spacing):
        lo_b = np.maximum(lo - pad_distance, 0)
        hi_b = np.minimum(hi + pad_distance, np.array(values.shape) - 1)
        (k0, j0, i0), (k1, j1, i1) = lo_b, hi_b
        box = (slice(int(i0), int(i1) + 1), slice(int(j0), int(j1) + 1), slice(int(k0), int(k1) + 1))
        return image[box], mask[box]
    ratio = mask_spacing / new_spacing
    new_lo = np.floor((index - 0.5) * ratio - pad_distance)
    new_hi = np.ceil((index + size - 0.5) * ratio + pad_distance)
    top = np.ceil(np.array(mask.GetSize()) * ratio) - 1
    new_lo = np.where(new_lo < 0, 0, new_lo)
    new_hi = np.where(new_hi > top, top, new_hi)
    new_size = np.array(new_hi - new_lo + 1, dtype="int").tolist()
    origin_index = 0.5 * (new_spacing - mask_spacing) / mask_spacing + new_lo / ratio
    origin = mask.TransformContinuousIndexToPhysicalPoint(origin_index.tolist())
    resample = sitk.ResampleImageFilter()
    resample.SetOutputSpacing(new_spacing.tolist())
    resample.SetOutputDirection(mask.GetDirection())
    resample.SetSize(new_size)
    resample.SetOutputOrigin(origin)
    resample.SetOutputPixelType(image.GetPixelID())
    resample.SetInterpolator(_interpolator(interpolator))
    image = resample.Execute(image)
    resample.SetOutputPixelType(mask.GetPixelID())
    resample.SetInterpolator(sitk.sitkNearestNeighbor)
    return image, resample.Execute(mask)


def resegmented(array: np.ndarray, roi: np.ndarray, value_range, mode: str, label: int, what: str) -> np.ndarray:
    """pyradiomics' ``resegmentMask``: the ROI voxels whose grey value lies within the range's
    thresholds (sorted; one value: a lower bound only), read as grey values (``absolute``), as
    fractions of the ROI's maximum (``relative``) or as standard deviations from its mean
    (``sigma``, population standard deviation). Raises :class:`InputError` when at most one voxel
    is left, as pyradiomics refuses it."""
    values = array[roi]
    ordered = sorted(value_range)
    if mode == "absolute":
        thresholds = ordered
    elif mode == "relative":
        top = np.max(values)
        thresholds = [top * t for t in ordered]
    else:  # sigma
        mean, sd = np.mean(values), np.std(values)
        thresholds = [mean + sd * t for t in ordered]
    keep = values >= thresholds[0]
    if len(thresholds) == 2:
        keep &= values <= thresholds[1]
    kept = int(np.count_nonzero(keep))
    if kept <= 1:
        raise InputError(f"{what}: Resegmentation excluded too many voxels with label {label} (retained "
                         f"{kept} voxel(s))! Cannot extract features")
    out = np.zeros(roi.shape, dtype=bool)
    out[roi] = keep
    return out
