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

import logging
from typing import Optional

import numpy as np

from DeepRadScoreLib.errors import InputError

logger = logging.getLogger(__name__)

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
