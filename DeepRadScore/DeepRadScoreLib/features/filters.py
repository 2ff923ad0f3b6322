"""Filtered images as pyradiomics' image types make them, shared by both radiomics backends.

The wavelet is the undecimated (stationary) one-level transform ``pywt.swtn`` over the axes
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
from typing import Iterator

import numpy as np

logger = logging.getLogger(__name__)

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
