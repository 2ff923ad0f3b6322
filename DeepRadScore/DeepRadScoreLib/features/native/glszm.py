"""Grey Level Size Zone Matrix (GLSZM) features, equal to pyradiomics' ``RadiomicsGLSZM``.

A zone is a 26-connected set of ROI voxels sharing one grey level (3D, pyradiomics' definition;
neighbours outside the image or the ROI never join a zone). ``P(i, j)`` counts the zones of grey
level ``i`` and ``j`` voxels. With pyradiomics' conventions ``N_z`` is the number of zones,
``N_p`` the number of ROI voxels, and only grey levels and zone sizes that occur enter the sums
(an absent one contributes nothing to any feature, so summing over the non-empty cells only gives
the same numbers).

Zones come from one connected-components pass over a graph whose nodes are the ROI voxels and
whose edges join equal-grey 26-neighbours (13 comparisons of shifted contiguous slices of the
flat padded grid, then ``scipy.sparse.csgraph.connected_components``): its cost does not grow
with the number of grey levels, unlike one ``ndimage.label`` per level.
"""
from __future__ import annotations

import logging

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from DeepRadScoreLib.features.native.gldm import PaddedGrid, check_inputs

logger = logging.getLogger(__name__)

NAMES: tuple[str, ...] = (
    "GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized", "GrayLevelVariance",
    "HighGrayLevelZoneEmphasis", "LargeAreaEmphasis", "LargeAreaHighGrayLevelEmphasis",
    "LargeAreaLowGrayLevelEmphasis", "LowGrayLevelZoneEmphasis", "SizeZoneNonUniformity",
    "SizeZoneNonUniformityNormalized", "SmallAreaEmphasis", "SmallAreaHighGrayLevelEmphasis",
    "SmallAreaLowGrayLevelEmphasis", "ZoneEntropy", "ZonePercentage", "ZoneVariance",
)


def zones(grid: PaddedGrid) -> tuple[np.ndarray, np.ndarray]:
    """Grey level and size of every zone (26-connected equal-grey ROI component).

    Parameters: ``grid``, the ROI's :class:`gldm.PaddedGrid`. Returns ``(grey, size)``, two int64
    arrays with one entry per zone (in no particular order).
    """
    n_voxels = grid.roi.size
    node = np.full(grid.level.size, -1, dtype=np.int32 if n_voxels < 2 ** 31 else np.int64)
    node[grid.roi] = np.arange(n_voxels, dtype=node.dtype)
    starts, ends = [], []
    for o in grid.offsets:
        # Positions p whose neighbour p + o is in the ROI with the same grey level as p.
        p = np.flatnonzero(grid.level[:-o] == grid.level[o:])
        starts.append(node[p])
        ends.append(node[p + o])
    start, end = np.concatenate(starts), np.concatenate(ends)
    graph = sparse.csr_matrix((np.ones(start.size, dtype=np.int8), (start, end)),
                              shape=(n_voxels, n_voxels))
    n_zones, label = csgraph.connected_components(graph, directed=True, connection="weak")
    size = np.bincount(label, minlength=n_zones).astype(np.int64)
    grey = np.zeros(n_zones, dtype=np.int64)
    grey[label] = grid.level[grid.roi]  # every voxel of a zone has the zone's grey level
    return grey, size


def features(q: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The 16 GLSZM features (pyradiomics' names, no prefix) of the ROI ``mask`` on ``q``.

    Parameters: ``q``, the discretised image as pyradiomics' binImage gives it (int bin indices
    >= 1 in the ROI; values outside are ignored), and ``mask``, the boolean ROI, both (z, y, x).
    Returns ``{name: value}`` for :data:`NAMES`.
    """
    grey, size = zones(PaddedGrid(*check_inputs(q, mask)))
    # The non-empty cells of P: one (i, j, count) triple each.
    stride = int(size.max()) + 1
    cell, count = np.unique(grey * stride + size, return_counts=True)
    i = (cell // stride).astype(np.float64)
    j = (cell % stride).astype(np.float64)
    count = count.astype(np.float64)
    levels, level_index = np.unique(i, return_inverse=True)
    sizes, size_index = np.unique(j, return_inverse=True)
    pg = np.bincount(level_index, weights=count)
    ps = np.bincount(size_index, weights=count)

    nz = float(size.size)
    n_p = float(np.sum(ps * sizes))
    pg_norm = pg / nz
    ps_norm = ps / nz
    mu_i = np.sum(pg_norm * levels)
    mu_j = np.sum(ps_norm * sizes)
    p = count / nz
    values = {
        "GrayLevelNonUniformity": np.sum(pg ** 2) / nz,
        "GrayLevelNonUniformityNormalized": np.sum(pg ** 2) / nz ** 2,
        "GrayLevelVariance": np.sum(pg_norm * (levels - mu_i) ** 2),
        "HighGrayLevelZoneEmphasis": np.sum(pg * levels ** 2) / nz,
        "LargeAreaEmphasis": np.sum(ps * sizes ** 2) / nz,
        "LargeAreaHighGrayLevelEmphasis": np.sum(count * i ** 2 * j ** 2) / nz,
        "LargeAreaLowGrayLevelEmphasis": np.sum(count * j ** 2 / i ** 2) / nz,
        "LowGrayLevelZoneEmphasis": np.sum(pg / levels ** 2) / nz,
        "SizeZoneNonUniformity": np.sum(ps ** 2) / nz,
        "SizeZoneNonUniformityNormalized": np.sum(ps ** 2) / nz ** 2,
        "SmallAreaEmphasis": np.sum(ps / sizes ** 2) / nz,
        "SmallAreaHighGrayLevelEmphasis": np.sum(count * i ** 2 / j ** 2) / nz,
        "SmallAreaLowGrayLevelEmphasis": np.sum(count / (i ** 2 * j ** 2)) / nz,
        "ZoneEntropy": -np.sum(p * np.log2(p + np.spacing(1))),
        "ZonePercentage": nz / n_p,
        "ZoneVariance": np.sum(ps_norm * (sizes - mu_j) ** 2),
    }
    return {name: float(values[name]) for name in NAMES}
