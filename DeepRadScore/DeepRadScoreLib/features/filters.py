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


from functools import lru_cache
from typing import Iterator

import numpy as np


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


# --- every image type, per pyradiomics' generators ------------------------------------------

def wavelet_levels(image: np.ndarray, wavelet: str = "coif1", level: int = 1, start_level: int = 0,
                   plane: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """pyradiomics' ``getWaveletImage`` for any ``level`` / ``start_level`` (numpy (z, y, x) axes).

    A quirk of pyradiomics, kept: every level applies the *level-1* filters (``swtn`` with
    ``level=1, start_level=0``) to the previous level's approximation, instead of the
    upsampled filters of a true stationary transform of that level; ``start_level`` levels are
    so applied and dropped first. Names: ``wavelet-<band>`` for the first kept level,
    ``wavelet<n>-<band>`` for the n-th, the last approximation after all details, named with
    the number of kept levels (``wavelet-LLL`` for one). ``plane`` (the numpy axis of
    ``force2Ddimension`` under ``force2D``) is left unfiltered: 4 bands with two letters.
    """
    import pywt

    odd = [n % 2 for n in image.shape]
    data = np.pad(image, [(0, o) for o in odd], mode="wrap")
    back = tuple(slice(0, n) for n in image.shape)
    axes = tuple(a for a in AXES if a != plane)
    approximation = "a" * len(axes)
    for _ in range(start_level):
        data = pywt.swtn(data, wavelet, level=1, start_level=0, axes=axes)[0][approximation]
    for n in range(1, level + 1):
        bands = pywt.swtn(data, wavelet, level=1, start_level=0, axes=axes)[0]
        data = bands.pop(approximation)
        prefix = "wavelet-" if n == 1 else f"wavelet{n}-"
        for key, band in bands.items():
            yield prefix + key.replace("a", "L").replace("d", "H"), band[back]
        del bands
    yield ("wavelet-" if level == 1 else f"wavelet{level}-") + "L" * len(axes), data[back]


@lru_cache(maxsize=32)
def wavelet_names(wavelet: str = "coif1", level: int = 1, start_level: int = 0,
                  plane: int | None = None) -> tuple[str, ...]:
    return tuple(name for name, _ in wavelet_levels(np.zeros((2, 2, 2)), wavelet, level, start_level, plane))


def _plane(settings: dict) -> int | None:
    return int(settings["force2Ddimension"]) if settings.get("force2D") else None


def log_name(sigma) -> str:
    """pyradiomics' name of a LoG image: the sigma as Python prints it, '.' made '-'."""
    return "log-sigma-%s-mm-3D" % str(sigma).replace(".", "-")


SINGLE = {"Original": "original", "Square": "square", "SquareRoot": "squareroot",
          "Logarithm": "logarithm", "Exponential": "exponential", "Gradient": "gradient"}


def image_names(image_type: str, settings: dict) -> tuple[str, ...]:
    """The filtered images an image type yields under ``settings``, named as pyradiomics names them
    (LoG: one per positive sigma, in the list's order; pyradiomics skips the others)."""
    if image_type in SINGLE:
        return (SINGLE[image_type],)
    if image_type == "Wavelet":
        return wavelet_names(settings["wavelet"], int(settings["level"]), int(settings["start_level"]),
                             _plane(settings))
    if image_type == "LoG":
        return tuple(log_name(s) for s in settings["sigma"] if s > 0)
    raise ValueError(f"no filter for image type {image_type!r}")


def filtered_images(image_type: str, image, settings: dict, what: str) -> Iterator[tuple[str, np.ndarray]]:
    """(name, array) of each image ``image_type`` makes of ``image`` (a SimpleITK image: the crop
    pyradiomics filters), as its ``get<image_type>Image`` does; arrays in numpy (z, y, x) order.

    Raises ``ValueError`` (one line, starting with ``what``) where pyradiomics would skip an image
    (a LoG sigma too large for the crop): the table's columns could not be filled.
    """
    import SimpleITK as sitk

    if image_type == "Original":
        yield "original", sitk.GetArrayFromImage(image)
    elif image_type == "Wavelet":
        yield from wavelet_levels(sitk.GetArrayFromImage(image), settings["wavelet"], int(settings["level"]),
                                  int(settings["start_level"]), _plane(settings))
    elif image_type == "LoG":
        size = np.array(image.GetSize())
        spacing = np.array(image.GetSpacing())
        for sigma in settings["sigma"]:
            if sigma <= 0:
                continue
            if np.min(size) < 4 or not np.all(size >= np.ceil(sigma / spacing) + 1):
                raise ValueError(f"{what}: the image around the ROI ({tuple(int(s) for s in size)} voxels) is "
                                 f"too small for LoG sigma {sigma} mm, which pyradiomics then skips")
            log = sitk.LaplacianRecursiveGaussianImageFilter()
            log.SetNormalizeAcrossScale(True)
            log.SetSigma(float(sigma))
            yield log_name(sigma), sitk.GetArrayFromImage(log.Execute(image))
    elif image_type == "Gradient":
        gradient = sitk.GradientMagnitudeImageFilter()
        gradient.SetUseImageSpacing(bool(settings["gradientUseSpacing"]))
        yield "gradient", sitk.GetArrayFromImage(gradient.Execute(image))
    else:
        yield SINGLE[image_type], intensity_filter(image_type, sitk.GetArrayFromImage(image))


def intensity_filter(image_type: str, array: np.ndarray) -> np.ndarray:
    """pyradiomics' voxel-wise filters (float64), each scaled by the crop's largest |value|:
    Square ``(x / sqrt(M))^2``; SquareRoot ``sign(x) sqrt(|x| M)``; Logarithm
    ``sign(x) log(|x| + 1)`` rescaled to the range ``M``; Exponential ``exp(x log(M) / M)``."""
    x = np.asarray(array, dtype=np.float64).copy()
    top = np.max(np.abs(x))
    positive, negative = x > 0, x < 0
    if image_type == "Square":
        return (x * (1 / np.sqrt(top))) ** 2
    if image_type == "SquareRoot":
        x[positive] = np.sqrt(x[positive] * top)
        x[negative] = -np.sqrt(-x[negative] * top)
        return x
    if image_type == "Logarithm":
        x[positive] = np.log(x[positive] + 1)
        x[negative] = -np.log(-(x[negative] - 1))
        return x * (top / np.max(np.abs(x)))
    if image_type == "Exponential":
        return np.exp((np.log(top) / top) * x)
    raise ValueError(f"no filter for image type {image_type!r}")
