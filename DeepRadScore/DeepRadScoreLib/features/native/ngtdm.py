"""Neighbouring Grey Tone Difference Matrix (NGTDM) features, equal to pyradiomics' NGTDM class.

Distance 1, 3D: a ROI voxel's neighbourhood average ``A`` is the mean grey level of those of its
26 neighbours that lie inside the image and inside the ROI (``W`` of them), and it adds
``|i - A|`` to ``s_i`` of its grey level ``i``. A voxel with ``W = 0`` (isolated) adds nothing to
``s_i`` but, as pyradiomics' matrix code does (its documentation says otherwise), still counts in
``n_i``: so ``N_vp = sum n_i`` is the ROI's voxel count and ``p_i = n_i / N_vp``. Grey levels
with ``n_i = 0`` are dropped, so every sum runs over the ``N_gp`` levels with ``p_i > 0``.
pyradiomics' special values are kept: Coarseness 1e6 when ``sum p_i s_i = 0``; Contrast 0 when
``N_gp (N_gp - 1) = 0``; Busyness 0 when its denominator is 0; Strength 0 when ``sum s_i = 0``.
"""
from __future__ import annotations


import numpy as np

from DeepRadScoreLib.features.native.gldm import PaddedGrid, check_inputs


NAMES: tuple[str, ...] = ("Busyness", "Coarseness", "Complexity", "Contrast", "Strength")


def grey_tone_differences(grid: PaddedGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-empty NGTDM rows: grey levels ``i``, their ``n_i`` and ``s_i``.

    Parameters: ``grid``, the ROI's :class:`gldm.PaddedGrid`. Returns three float64 arrays, one
    entry per grey level with ``n_i > 0`` (ascending).
    """
    inside = grid.in_roi()
    grey_or_zero = np.where(inside, grid.level, 0)
    # int32 when 26 neighbours' grey levels cannot overflow it: the sums are exact integers in
    # either type, so the smaller one only lowers the memory peak.
    sums = np.int32 if 2 * len(grid.offsets) * int(grey_or_zero.max()) < 2 ** 31 else np.int64
    grey_or_zero = grey_or_zero.astype(sums, copy=False)
    # Per voxel: how many of the 26 neighbours are in the ROI and the sum of their grey levels
    # (grey_or_zero is 0 off the ROI and on the padding, so a plain sum drops those).
    count = np.zeros(grid.level.size, dtype=np.int8 if len(grid.offsets) < 64 else np.int32)
    total = np.zeros(grid.level.size, dtype=sums)
    for o in grid.offsets:
        count[:-o] += inside[o:]
        count[o:] += inside[:-o]
        total[:-o] += grey_or_zero[o:]
        total[o:] += grey_or_zero[:-o]
    count = count[grid.roi]
    grey = grey_or_zero[grid.roi]
    valid = count > 0
    difference = np.zeros(grey.size)
    difference[valid] = np.abs(grey[valid] - total[grid.roi][valid] / count[valid])
    n = np.bincount(grey)
    s = np.bincount(grey, weights=difference)
    present = np.nonzero(n)[0]
    return present.astype(np.float64), n[present].astype(np.float64), s[present]


def features(q: np.ndarray, mask: np.ndarray, distances=(1,), plane: int | None = None,
             grid: PaddedGrid | None = None) -> dict[str, float]:
    """The 5 NGTDM features (pyradiomics' names, no prefix) of the ROI ``mask`` on ``q``
    (``distances``: pyradiomics' setting, the neighbourhood's angles).

    Parameters: ``q``, the discretised image as pyradiomics' binImage gives it (int bin indices
    >= 1 in the ROI; values outside are ignored), and ``mask``, the boolean ROI, both (z, y, x).
    ``grid``: the same ROI's :class:`gldm.PaddedGrid` for these ``distances`` and ``plane`` where
    the caller already has it. Returns ``{name: value}`` for :data:`NAMES`.
    """
    grid = grid if grid is not None else PaddedGrid(*check_inputs(q, mask), distances=distances, plane=plane)
    i, n, s = grey_tone_differences(grid)
    nvp = float(np.sum(n))
    ngp = i.size
    p = n / nvp
    ps = p * s
    sum_ps = float(np.sum(ps))
    sum_s = float(np.sum(s))
    di = i[:, None] - i[None, :]
    coarseness = 1.0 / sum_ps if sum_ps != 0 else 1e6
    pairs = ngp * (ngp - 1)
    contrast = (float(np.sum(p[:, None] * p[None, :] * di ** 2)) * sum_s / nvp / pairs
                if pairs != 0 else 0.0)
    ip = i * p
    spread = float(np.sum(np.abs(ip[:, None] - ip[None, :])))
    busyness = sum_ps / spread if spread != 0 else 0.0
    # p_i + p_j > 0 for every kept pair (every ROI voxel counts in n_i, N_vp >= 1): no guard.
    complexity = float(np.sum(np.abs(di) * (ps[:, None] + ps[None, :])
                              / (p[:, None] + p[None, :]))) / nvp
    strength = float(np.sum((p[:, None] + p[None, :]) * di ** 2)) / sum_s if sum_s != 0 else 0.0
    values = {"Busyness": busyness, "Coarseness": coarseness, "Complexity": complexity,
              "Contrast": contrast, "Strength": strength}
    return {name: float(values[name]) for name in NAMES}
