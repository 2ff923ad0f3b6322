"""A case whose radiomics cannot finish is refused before they start: the grey-level bin bound.

pyradiomics' texture matrices (GLCM: bins x bins x 13 angles; GLSZM, GLRLM, GLDM: bins x sizes)
and the time to fill them grow with the number of grey-level bins. An image with a very wide
intensity range in an ROI (an int16 CT scaled by 1000, a non-CT image) ended in a MemoryError
traceback. benchmarks/bench_bins.py measures it (benchmarks/results/bins.md): on a small synthetic
case, 100 bins took 11 s and 1000 bins did not finish in 5 minutes on the shared 2-core machine.

The bins of an ROI are pyradiomics': ``floor(max / binWidth) - floor(min / binWidth) + 1`` over
the ROI's voxels (or ``binCount`` when the parameter file sets one), per image type. The
wavelet's LLL band is the image smoothed and scaled by the coif1 low-pass gain, 2^(3/2) in 3D, so
its range is estimated as that factor times the image's; other image types (LoG, Square, ...) are
not estimated. A CT in HU at binWidth 25 gives a few hundred bins at most (air to dense bone, 163
bins on the original image, ~460 in LLL); :data:`MAX_BINS` leaves room for that.
"""
from __future__ import annotations

import logging
import math
from functools import lru_cache

from DeepRadScoreLib.errors import InputError

logger = logging.getLogger(__name__)

# The most grey-level bins of any ROI and image type (see the module doc).
MAX_BINS = 1000
# Range of the wavelet's LLL band relative to the image's: coif1's low-pass filter sums to
# sqrt(2) per axis.
WAVELET_GAIN = 2 ** 1.5
_DEFAULT_BIN_WIDTH = 25.0  # pyradiomics' default, when a parameter file sets none


def check_bin_count(n_bins: int, where: str) -> None:
    """Refuse ``n_bins`` grey-level bins above :data:`MAX_BINS`; ``where`` says whose bins they are
    (``"tumour mask: values -1000 to 2e+06 at binWidth 25"``) and starts the one-line message."""
    if n_bins > MAX_BINS:
        raise InputError(f"{where} give {n_bins} grey-level bins, more than the {MAX_BINS} the texture "
                         "features can be computed for (their matrices grow with its square); use a "
                         "larger binWidth or a binCount in the parameter file")


def bins_for_range(lo: float, hi: float, bin_width: float) -> int:
    """pyradiomics' bin count for values ``lo``..``hi`` at ``bin_width``."""
    return int(math.floor(hi / bin_width) - math.floor(lo / bin_width)) + 1


def check_case_bins(image, mask, ring, params) -> None:
    """:func:`check_bin_count` for the tumour (``mask``) and the ``ring`` (SimpleITK 0/1 masks on
    ``image``) at every image type's binning of ``params`` (a ``features.params.
    RadiomicsParameters``)."""
    import numpy as np
    import SimpleITK as sitk

    binnings = _binnings(params)
    if not binnings:
        return
    # Views, not copies; the ROI's voxels are found with one pass over the mask. (SimpleITK's
    # LabelStatisticsImageFilter took 0.1 s an ROI, a quarter of a demo case's extraction.)
    values = sitk.GetArrayViewFromImage(image).reshape(-1)
    for name, roi in (("tumour mask", mask), ("peritumoral ring", ring)):
        if roi.GetSize() != image.GetSize():
            continue  # another grid: the backends check (or correct) the geometry themselves
        inside = np.flatnonzero(sitk.GetArrayViewFromImage(roi).reshape(-1) == 1)
        if inside.size == 0:
            continue  # an empty ROI is refused by the extraction with its own message
        roi_values = values[inside]
        lo, hi = float(roi_values.min()), float(roi_values.max())
        for image_type, width, count in binnings:
            if count is not None:
                check_bin_count(int(count), f"{name}: binCount {count} ({image_type})")
                continue
            gain = WAVELET_GAIN if image_type == "Wavelet" else 1.0
            check_bin_count(bins_for_range(gain * lo, gain * hi, width),
                            f"{name}: values {lo:.6g} to {hi:.6g} at binWidth {width:g} ({image_type}"
                            + (", LLL band estimated" if gain != 1.0 else "") + ")")


@lru_cache(maxsize=8)
def _binnings(parameters) -> tuple[tuple[str, float, int | None], ...]:
    """(image type, binWidth, binCount or None) per estimated image type of the parameters
    (hashed by their SHA-256); nothing when they are malformed (the extraction refuses them with
    its own message)."""
    params = parameters.mapping
    try:
        setting = params.get("setting") or {}
        types = params.get("imageType") or {"Original": {}}
        out = []
        for image_type, custom in types.items():
            if image_type not in ("Original", "Wavelet"):
                logger.debug("%s: bins of image type %s not estimated", parameters.source, image_type)
                continue
            merged = {**setting, **(custom or {})}
            width, count = float(merged.get("binWidth", _DEFAULT_BIN_WIDTH)), merged.get("binCount")
            if width > 0 or count is not None:
                out.append((image_type, width, count))
        return tuple(out)
    except (ValueError, TypeError, AttributeError):
        return ()
