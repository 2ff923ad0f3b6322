"""Grey Level Size Zone Matrix (GLSZM) features, equal to pyradiomics' ``RadiomicsGLSZM``.

A zone is a 26-connected set of ROI voxels sharing one grey level (3D, pyradiomics' definition;
neighbours outside the image or the ROI never join a zone). ``P(i, j)`` counts the zones of grey
level ``i`` and ``j`` voxels. With pyradiomics' conventions ``N_z`` is the number of zones,
``N_p`` the number of ROI voxels, and only grey levels and zone sizes that occur enter the sums
(an absent one contributes nothing to any feature, so summing over the non-empty cells only gives
the same numbers).

Zones come from connected components of a graph whose nodes are the ROI voxels and whose edges
join equal-grey 26-neighbours (13 comparisons of shifted contiguous slices of the flat padded
grid, then ``scipy.sparse.csgraph.connected_components``): its cost does not grow with the
number of grey levels, unlike one ``ndimage.label`` per level. The graph is not built whole: the
runs along x are the starting components (found by one comparison, no graph), and the other 12
neighbour steps are taken a few at a time, each batch's edges joining the components found so
far (an edge inside one component is dropped), so a large ROI never holds all its edges, and
SciPy's float64 copies of them, at once. Components do not depend on the order in which edges
are added, so the zones are the same.
"""
from __future__ import annotations


import numpy as np

from DeepRadScoreLib.features.native.gldm import PaddedGrid, check_inputs


NAMES: tuple[str, ...] = (
    "GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized", "GrayLevelVariance",
    "HighGrayLevelZoneEmphasis", "LargeAreaEmphasis", "LargeAreaHighGrayLevelEmphasis",
    "LargeAreaLowGrayLevelEmphasis", "LowGrayLevelZoneEmphasis", "SizeZoneNonUniformity",
    "SizeZoneNonUniformityNormalized", "SmallAreaEmphasis", "SmallAreaHighGrayLevelEmphasis",
    "SmallAreaLowGrayLevelEmphasis", "ZoneEntropy", "ZonePercentage", "ZoneVariance",
)


# Neighbour steps per connected-components pass: 2 was about the lowest peak and the fastest
# (1 to 13 measured on STS bands and a 300k-voxel case: later passes have few edges left).
STEPS_PER_PASS = 2


def zones(grid: PaddedGrid) -> tuple[np.ndarray, np.ndarray]:
    """Grey level and size of every zone (26-connected equal-grey ROI component).

    Parameters: ``grid``, the ROI's :class:`gldm.PaddedGrid`. Returns ``(grey, size)``, two int64
    arrays with one entry per zone (in no particular order).
    """
    # Imported here: the feature names (this module's NAMES) are read where SciPy is not needed.
    from scipy import sparse
    from scipy.sparse import csgraph

    n_voxels = grid.roi.size
    index = np.int32 if grid.level.size < 2 ** 31 else np.int64
    offsets = grid.offsets
    if 1 in offsets:
        # The runs along x are the first merge, for the price of one comparison: the ROI voxels
        # are in raveled order, so a run's voxels are consecutive there and a running count of
        # the run starts numbers the runs. The graphs below then have a node per run, not per
        # voxel (connected_components took about 30 % of the class's time on exampleCT.yaml).
        level = grid.level
        component = np.cumsum(level[grid.roi - 1] != level[grid.roi], dtype=index) - 1
        n_components = int(component[-1]) + 1
        offsets = tuple(o for o in offsets if o != 1)
    else:
        component = np.arange(n_voxels, dtype=index)  # of every ROI voxel, merged pass by pass
        n_components = n_voxels
    at = np.full(grid.level.size, -1, dtype=index)  # the component of the voxel at a position
    for first in range(0, len(offsets), STEPS_PER_PASS):
        at[grid.roi] = component
        starts, ends = [], []
        for o in offsets[first:first + STEPS_PER_PASS]:
            # Positions p whose neighbour p + o is in the ROI with the same grey level as p.
            p = np.flatnonzero(grid.level[:-o] == grid.level[o:])
            start, end = at[p], at[p + o]
            del p
            joins = start != end
            starts.append(start[joins])
            ends.append(end[joins])
            del start, end, joins
        start, end = np.concatenate(starts), np.concatenate(ends)
        del starts, ends
        if start.size == 0:
            continue
        graph = sparse.csr_matrix((np.ones(start.size, dtype=np.int8), (start, end)),
                                  shape=(n_components, n_components))
        del start, end
        n_components, merged = csgraph.connected_components(graph, directed=True, connection="weak")
        del graph
        component = merged[component].astype(index, copy=False)
        del merged
    del at
    size = np.bincount(component, minlength=n_components).astype(np.int64)
    grey = np.zeros(n_components, dtype=np.int64)
    grey[component] = grid.level[grid.roi]  # every voxel of a zone has the zone's grey level
    return grey, size


def features(q: np.ndarray, mask: np.ndarray, plane: int | None = None,
             grid: PaddedGrid | None = None) -> dict[str, float]:
    """The 16 GLSZM features (pyradiomics' names, no prefix) of the ROI ``mask`` on ``q``.

    Parameters: ``q``, the discretised image as pyradiomics' binImage gives it (int bin indices
    >= 1 in the ROI; values outside are ignored), and ``mask``, the boolean ROI, both (z, y, x).
    ``grid``: the same ROI's :class:`gldm.PaddedGrid` (distance 1, this ``plane``) where the caller
    already has it. Returns ``{name: value}`` for :data:`NAMES`.
    """
    grey, size = zones(grid if grid is not None else PaddedGrid(*check_inputs(q, mask), plane=plane))
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
