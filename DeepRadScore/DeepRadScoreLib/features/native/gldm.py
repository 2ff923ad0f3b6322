"""Grey Level Dependence Matrix (GLDM) features, equal to pyradiomics' ``RadiomicsGLDM``.

Settings are those of our parameter file: distance 1, the 26 neighbours of 3D, ``gldm_a = 0``
(a neighbour depends on the centre voxel when its grey level equals the centre's). For every ROI
voxel the dependence count ``j`` is 1 (the centre itself, pyradiomics' convention: a voxel with no
dependent neighbour falls in the first column, ``j = 1``) plus the number of its 26 neighbours
that lie inside the image *and* inside the ROI and are dependent. ``P(i, j)`` counts ROI voxels of
grey level ``i`` with count ``j``; only grey levels and counts that occur are kept, so
``N_z = N_p`` (the ROI's voxel count) and the features are sums over the non-empty cells.

Also home of :class:`PaddedGrid`, the flat padded neighbour layout that ``glszm`` and ``ngtdm``
share with it.
"""
from __future__ import annotations


import numpy as np

from DeepRadScoreLib.features.native.glcm import directions


NAMES: tuple[str, ...] = (
    "DependenceEntropy", "DependenceNonUniformity", "DependenceNonUniformityNormalized",
    "DependenceVariance", "GrayLevelNonUniformity", "GrayLevelVariance", "HighGrayLevelEmphasis",
    "LargeDependenceEmphasis", "LargeDependenceHighGrayLevelEmphasis",
    "LargeDependenceLowGrayLevelEmphasis", "LowGrayLevelEmphasis", "SmallDependenceEmphasis",
    "SmallDependenceHighGrayLevelEmphasis", "SmallDependenceLowGrayLevelEmphasis",
)

# The 13 offsets with a positive first non-zero component: with their negatives they are the 26
# neighbours at Chebyshev distance 1. Every neighbour relation used here is symmetric (same grey
# level, both in the ROI), so visiting each unordered pair once and crediting both ends halves the
# work.
FORWARD_OFFSETS: tuple[tuple[int, int, int], ...] = tuple(
    (dz, dy, dx)
    for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    if (dz, dy, dx) > (0, 0, 0)
)


class PaddedGrid:
    """The ROI's grey levels on the grid padded by one voxel, raveled (C order).

    Why padded and flat: on a raveled array the neighbour at ``(dz, dy, dx)`` is a fixed step
    ``o`` away, so a neighbour test over the whole volume is one comparison of two *contiguous*
    slices ``a[:-o]`` and ``a[o:]`` (several times faster than strided 3D slices), and the
    one-voxel margin guarantees that a step off an edge of the grid lands on padding, never on a
    voxel of the next row or slice. Padding plays the part of everything outside the image.

    Attributes: ``level`` (grey level of ROI voxels; every voxel outside the ROI, padding
    included, has its own negative value, so ``level[p] == level[p + o]`` means "both in the ROI
    with the same grey level"), ``roi`` (flat positions of the ROI voxels, in the order of
    ``q[mask]``) and ``offsets`` (the 13 forward steps, all positive).
    """

    def __init__(self, q: np.ndarray, mask: np.ndarray, distances=(1,), plane: int | None = None):
        """Parameters: ``q`` and ``mask`` as :func:`check_inputs` returns them; ``distances``
        pyradiomics' setting (the neighbours are its angles, :func:`glcm.directions`; the grid is
        padded by the largest distance); ``plane`` keeps the neighbours in that axis' plane
        (``force2D``)."""
        pad = int(max(distances))
        shape = tuple(n + 2 * pad for n in q.shape)
        size = int(np.prod(shape))
        dtype = np.int32 if size < 2 ** 31 - 1 and int(q.max()) < 2 ** 31 else np.int64
        level = -1 - np.arange(size, dtype=dtype).reshape(shape)
        inner = (slice(pad, -pad),) * 3
        level[inner] = np.where(mask, q, level[inner])
        self.shape = shape
        self.level = level.ravel()
        self.roi = np.flatnonzero(self.level > 0)
        forward = (FORWARD_OFFSETS if tuple(distances) == (1,) and plane is None
                   else [tuple(int(c) for c in o) for o in directions(distances, plane)])
        self.offsets = tuple((dz * shape[1] + dy) * shape[2] + dx for dz, dy, dx in forward)

    def in_roi(self) -> np.ndarray:
        """Flat boolean ROI on the padded grid."""
        return self.level > 0


def check_inputs(q: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q, mask)`` as int64 / bool 3D arrays, q zeroed outside the ROI; ValueError if unusable.

    Parameters: ``q``, the discretised image (bin indices >= 1 inside the ROI, anything outside),
    and ``mask``, the ROI, both (z, y, x) on the same grid. Returns the cleaned pair.
    """
    q = np.asarray(q)
    mask = np.asarray(mask, dtype=bool)
    if q.ndim != 3 or q.shape != mask.shape:
        raise ValueError(f"discretised image {q.shape} and mask {mask.shape} must be one 3D grid")
    if not mask.any():
        raise ValueError("the ROI mask is empty")
    q = np.where(mask, q, 0).astype(np.int64, copy=False)
    if q[mask].min() < 1:
        raise ValueError("discretised grey levels inside the ROI must be >= 1")
    return q, mask


def dependence_counts(grid: PaddedGrid, alpha: float = 0) -> np.ndarray:
    """Per ROI voxel (order of ``grid.roi``), how many of its neighbours are in the ROI with a
    grey level at most ``alpha`` (``gldm_a``) from its own.

    Parameters: ``grid``, the :class:`PaddedGrid` of the ROI. Returns an int64 array.
    """
    level = grid.level
    counts = np.zeros(level.size, dtype=np.int8 if len(grid.offsets) < 64 else np.int32)
    inside = level > 0
    for o in grid.offsets:
        if alpha == 0:
            dependent = level[:-o] == level[o:]
        else:
            dependent = inside[:-o] & inside[o:] & (np.abs(level[:-o] - level[o:]) <= alpha)
        counts[:-o] += dependent
        counts[o:] += dependent
    return counts[grid.roi].astype(np.int64)


def features(q: np.ndarray, mask: np.ndarray, distances=(1,), alpha: float = 0,
             plane: int | None = None, grid: PaddedGrid | None = None) -> dict[str, float]:
    """The 14 GLDM features (pyradiomics' names, no prefix) of the ROI ``mask`` on ``q``
    (``distances`` and ``alpha``: pyradiomics' ``distances`` and ``gldm_a``).

    Parameters: ``q``, the discretised image as pyradiomics' binImage gives it (int bin indices
    >= 1 in the ROI; values outside are ignored), and ``mask``, the boolean ROI, both (z, y, x).
    ``grid``: the same ROI's :class:`PaddedGrid` for these ``distances`` and ``plane`` where the
    caller already has it (GLSZM and NGTDM read the same one). Returns ``{name: value}`` for
    :data:`NAMES`.
    """
    grid = grid if grid is not None else PaddedGrid(*check_inputs(q, mask), distances=distances, plane=plane)
    grey = grid.level[grid.roi].astype(np.int64)
    size = dependence_counts(grid, alpha) + 1
    # Dense matrix over (grey level, dependence count): (Ng + 1) x (2 angles + 2) cells.
    width = 2 * len(grid.offsets) + 2
    matrix = np.bincount(grey * width + size, minlength=(int(grey.max()) + 1) * width)
    matrix = matrix.reshape(-1, width).astype(np.float64)
    rows = matrix.sum(axis=1) > 0
    cols = matrix.sum(axis=0) > 0
    matrix = matrix[rows][:, cols]
    i = np.nonzero(rows)[0].astype(np.float64)
    j = np.nonzero(cols)[0].astype(np.float64)
    pg = matrix.sum(axis=1)
    pd = matrix.sum(axis=0)
    nz = float(grey.size)

    pg_norm = pg / nz
    pd_norm = pd / nz
    mu_i = np.sum(pg_norm * i)
    mu_j = np.sum(pd_norm * j)
    p = matrix / nz
    i2 = (i ** 2)[:, None]
    j2 = (j ** 2)[None, :]
    values = {
        "DependenceEntropy": -np.sum(p * np.log2(p + np.spacing(1))),
        "DependenceNonUniformity": np.sum(pd ** 2) / nz,
        "DependenceNonUniformityNormalized": np.sum(pd ** 2) / nz ** 2,
        "DependenceVariance": np.sum(pd_norm * (j - mu_j) ** 2),
        "GrayLevelNonUniformity": np.sum(pg ** 2) / nz,
        "GrayLevelVariance": np.sum(pg_norm * (i - mu_i) ** 2),
        "HighGrayLevelEmphasis": np.sum(pg * i ** 2) / nz,
        "LargeDependenceEmphasis": np.sum(pd * j ** 2) / nz,
        "LargeDependenceHighGrayLevelEmphasis": np.sum(matrix * i2 * j2) / nz,
        "LargeDependenceLowGrayLevelEmphasis": np.sum(matrix * j2 / i2) / nz,
        "LowGrayLevelEmphasis": np.sum(pg / i ** 2) / nz,
        "SmallDependenceEmphasis": np.sum(pd / j ** 2) / nz,
        "SmallDependenceHighGrayLevelEmphasis": np.sum(matrix * i2 / j2) / nz,
        "SmallDependenceLowGrayLevelEmphasis": np.sum(matrix / (i2 * j2)) / nz,
    }
    return {name: float(values[name]) for name in NAMES}
