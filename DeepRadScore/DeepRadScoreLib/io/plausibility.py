"""Are a CT's voxel values numbers, and can they be Hounsfield units?

Two readers change values silently: ITK's NIfTI reader turns NaN and infinite voxels into 0 and
ignores a non-finite ``scl_slope``; GDCM ignores a non-finite Rescale Slope. So the values are
checked where they are still the file's own: :class:`FiniteScan` is fed the raw float voxel data
as :mod:`~DeepRadScoreLib.io.integrity` streams it once anyway (truncation check), and
:func:`check_values` scans the image SimpleITK returns (NRRD and MetaImage keep NaN/inf as they
are) in slabs, finding non-finite voxels, the minimum and the maximum in one pass without an
image-sized temporary.

A CT's values must lie in :data:`HU_RANGE`: what 16-bit CT storage can hold, which covers air
(-1000), the padding scanners write outside the field of view (-1024, -2048, -3024, -32768) and
extended-scale metal (up to ~30 000). Anything outside is not HU (an int16 CT whose ``scl_slope``
is 1000 reads as millions): it is refused, naming the range, unless the user says the image is not
a CT on purpose by setting the environment variable :data:`NON_CT_ENV` to ``1`` (inherited by the
worker processes). The grey-level bin bound of the radiomics (``features.gate``) holds either way.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from DeepRadScoreLib.errors import InputError


# The values 16-bit CT storage can hold (see the module doc).
HU_RANGE = (-32768.0, 32767.0)
# Set to 1 to read an image that is not a CT (MR, a parametric map) without the HU range check.
NON_CT_ENV = "DEEPRADSCORE_NOT_CT"
# Voxels per slab of the value scan: a bool temporary of 4 MiB, not one the size of the image.
_SLAB_VOXELS = 1 << 22
_FLOAT_TYPES = (sitk.sitkFloat32, sitk.sitkFloat64)


def non_ct_allowed() -> bool:
    """True when :data:`NON_CT_ENV` says the images are not CTs, on purpose."""
    value = os.environ.get(NON_CT_ENV, "").strip().lower()
    if value in ("", "0", "no", "false"):
        return False
    if value in ("1", "yes", "true"):
        return True
    raise InputError(f"{NON_CT_ENV}={value!r}: expected 1 (the images are not CTs) or 0")


def non_finite_error(name, count: int, first: float, index: tuple[int, int, int]) -> InputError:
    i, j, k = index
    return InputError(f"{name}: {count} voxels are not finite numbers (NaN or infinite); the first, "
                      f"{first}, is at voxel index (i, j, k) = ({i}, {j}, {k})")


def check_values(image: sitk.Image, name: str | Path, source_type: int | None = None) -> sitk.Image:
    """``image`` unchanged, or an :class:`InputError`: non-finite voxels (how many, where the
    first is: they would become 0 HU in the patch and shift every feature), or values outside
    :data:`HU_RANGE` (unless :func:`non_ct_allowed`). ``source_type``: SimpleITK's pixel type
    before the cast to float; integer data cannot hold NaN, so only its range is scanned."""
    values = sitk.GetArrayViewFromImage(image)
    check_finite = source_type is None or source_type in _FLOAT_TYPES
    lo, hi = np.inf, -np.inf
    bad, first = 0, None
    flat = values.reshape(-1)
    for start in range(0, flat.size, _SLAB_VOXELS):
        slab = flat[start:start + _SLAB_VOXELS]
        if check_finite:
            finite = np.isfinite(slab)
            if not finite.all():
                missing = slab.size - int(np.count_nonzero(finite))
                if first is None:
                    first = start + int(np.argmin(finite))
                bad += missing
                continue
        if bad == 0 and slab.size:
            lo, hi = min(lo, float(slab.min())), max(hi, float(slab.max()))
    if bad:
        k, j, i = (int(v) for v in np.unravel_index(first, values.shape))
        raise non_finite_error(name, bad, values[k, j, i], (i, j, k))
    check_hu_range(lo, hi, name)
    return image


def check_hu_range(lo: float, hi: float, name: str | Path) -> None:
    """Refuse values ``lo``..``hi`` that cannot be HU (see the module doc)."""
    if HU_RANGE[0] <= lo and hi <= HU_RANGE[1]:
        return
    if non_ct_allowed():
        return
    raise InputError(f"{name}: the values range {lo:.6g} to {hi:.6g}, which cannot be CT numbers "
                     f"(HU lie in {HU_RANGE[0]:g} to {HU_RANGE[1]:g}; a wrong rescale slope?); to read "
                     f"an image that is not a CT on purpose, set {NON_CT_ENV}=1")


class FiniteScan:
    """Counts the non-finite values of raw float voxel data fed to it in pieces of any size.

    :param dtype: the stored type (with its byte order); ``sizes``: the voxel counts along the
        first (fastest) axes, to name the first bad voxel as (i, j, k); ``skip``: bytes before the
        voxel data in the stream (a NIfTI header inside the ``.nii.gz``).
    """

    def __init__(self, name, dtype: np.dtype, sizes: list[int], skip: int = 0, count: int | None = None):
        self.name, self.dtype, self.sizes = name, np.dtype(dtype), (list(sizes) + [1, 1, 1])[:3]
        self.skip, self.left = skip, count
        self.seen = self.bad = 0
        self.first: tuple[int, float] | None = None
        self._rest = b""

    def feed(self, data: bytes) -> None:
        if self.skip:
            cut = min(self.skip, len(data))
            data, self.skip = data[cut:], self.skip - cut
        data = self._rest + data if self._rest else data
        whole = len(data) - len(data) % self.dtype.itemsize
        self._rest = data[whole:]
        values = np.frombuffer(data, self.dtype, whole // self.dtype.itemsize)
        if self.left is not None:  # padding after the voxel data is not voxel data
            values = values[:max(self.left, 0)]
            self.left -= values.size
        finite = np.isfinite(values)
        if not finite.all():
            if self.first is None:
                at = int(np.argmin(finite))
                self.first = (self.seen + at, float(values[at]))
            self.bad += values.size - int(np.count_nonzero(finite))
        self.seen += values.size

    def finish(self) -> None:
        """Raise the :class:`InputError` of :func:`non_finite_error` if any value was not finite."""
        if self.bad:
            n, value = self.first
            nx, ny = self.sizes[0], self.sizes[1]
            raise non_finite_error(self.name, self.bad, value, (n % nx, (n // nx) % ny, n // (nx * ny)))
