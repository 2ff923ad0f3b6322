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
* **Wavelet**: the undecimated (stationary) one-level transform ``pywt.swtn`` over the axes
  (x, y, z), i.e. numpy axes (2, 1, 0), so the first letter of a band's name is the x filter (L =
  low pass, H = high pass). An odd-sized axis is first extended by one periodic (wrap) sample and
  the result cut back, because ``swtn`` needs even sizes. The bands keep ``pywt``'s dtype
  (float32 for a float32 image, float64 otherwise), which is what pyradiomics' feature classes
  then read back. ``swtn`` is one ``pywt.swt`` along each axis in turn, applied to both halves of
  the previous axis; we make the same calls depth first, so that a band is handed on as soon as
  it exists and at most one pending half per axis is held (4 arrays of the crop's size instead
  of ``swtn``'s 12), with the same numbers (Testing/test_native_core.py checks them exactly).
"""
from __future__ import annotations

import logging
from functools import lru_cache
from typing import Iterator, Optional

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


def bin_edges(values: np.ndarray, bin_width: float) -> np.ndarray:
    """The fixed-width bin edges of the ROI's grey values (see the module docstring)."""
    low = values.min()
    high = values.max()
    # In the values' own dtype (numpy scalars), exactly as the definition is evaluated upstream.
    start = low - (low % bin_width)
    edges = np.arange(start, high + 2 * bin_width, bin_width)
    if len(edges) == 1:
        # Only reachable through rounding (the range spans >= 2 widths): one bin around the value.
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    return edges


def discretise(image: np.ndarray, roi: np.ndarray, bin_width: float) -> np.ndarray:
    """Bin indices (>= 1) of the ROI's voxels; voxels outside the ROI are 0.

    ``image`` is a grey-level array, ``roi`` a boolean array of the same shape.
    """
    values = image[roi]
    q = np.zeros(image.shape, dtype=int)
    q[roi] = np.digitize(values, bin_edges(values, bin_width))
    return q


# --- the stationary wavelet -------------------------------------------------------------------

AXES = (2, 1, 0)  # numpy axes of x, y, z: band names spell the x, y, z filters in that order


def wavelet_bands(image: np.ndarray, wavelet: str = "coif1") -> Iterator[tuple[str, np.ndarray]]:
    """The 8 one-level coif1 bands of ``image`` as (name, array), in pyradiomics' order.

    The 7 detail bands come in the order ``pywt.swtn`` returns them (``wavelet-LLH`` ...
    ``wavelet-HHH``), the approximation ``wavelet-LLL`` last. Each array has ``image``'s shape.
    The bands are computed one after the other (see the module doc): a consumer that drops each
    band before asking for the next never holds more than a few crop-sized arrays.
    """
    import pywt

    odd = [n % 2 for n in image.shape]
    data = np.pad(image, [(0, o) for o in odd], mode="wrap") if any(odd) else image
    back = tuple(slice(0, n) for n in image.shape)
    approximation = "a" * len(AXES)
    deferred = None  # the approximation comes first depth first, but pyradiomics names it last
    pending = [("", data)]  # a stack: the low-pass half is split before its high-pass sibling
    del data
    while pending:
        key, x = pending.pop()
        if len(key) < len(AXES):
            # Exactly what swtn does per axis (its _swt_axis behind pywt.swt, level 1 from level 0).
            (low, high), = pywt.swt(x, wavelet, level=1, start_level=0, axis=AXES[len(key)])
            del x
            pending += [(key + "d", high), (key + "a", low)]
            del low, high
        elif key == approximation:
            deferred = x
        else:
            band = x[back]
            del x
            yield _band_name(key), band
            del band
    yield _band_name(approximation), deferred[back]


def _band_name(key: str) -> str:
    return "wavelet-" + key.replace("a", "L").replace("d", "H")


@lru_cache(maxsize=1)
def wavelet_band_names(wavelet: str = "coif1") -> tuple[str, ...]:
    """The band names :func:`wavelet_bands` yields, from a transform of a 2 x 2 x 2 array."""
    return tuple(name for name, _ in wavelet_bands(np.zeros((2, 2, 2)), wavelet))


@lru_cache(maxsize=8)
def wavelet_reach(wavelet: str = "coif1") -> int:
    """How far (voxels, per axis, either side) an input voxel still changes a band's value.

    Measured on an impulse: a band's value at a voxel depends only on the input within this
    reach, so two crops that both contain that neighbourhood (away from their periodic wrap)
    give that voxel the same value.
    """
    import pywt

    w = pywt.Wavelet(wavelet)
    n = 4 * w.dec_len + 4
    impulse = np.zeros(n)
    impulse[n // 2] = 1.0
    (low, high), = pywt.swt(impulse, w, level=1)
    touched = np.flatnonzero((low != 0) | (high != 0))
    return int(np.max(np.abs(touched - n // 2)))
