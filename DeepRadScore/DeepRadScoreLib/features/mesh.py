"""The mesh vertices and maximum diameters pyradiomics' shape class reports, without O(V^2).

Both radiomics backends use this: pyradiomics' C shape code compares every pair of mesh vertices
for the four maximum diameters, seconds for a ring, whose inner and outer surfaces double the
vertex count. A farthest pair always lies on the convex hull, so the diameters here are taken
over the hull's vertices (qhull, on exact half-voxel integer coordinates: a hull of the scaled
points is the scaled hull), per plane for the 2D ones. Distances are summed term by term in the
order cshape.c sums them, so the maxima are its numbers.
"""
from __future__ import annotations


import numpy as np


# Point pairs per block of the farthest-pair search: a hull of ~1500 vertices compared at once
# made two (1500, 1500, 3) float64 arrays, over 100 MB; blocks of rows give the same maximum.
PAIRS_PER_BLOCK = 1 << 18
# A plane with at most this many candidate points is searched pair by pair without its hull: its
# 256^2 distances cost less than a qhull call (the per-plane ConvexHull was a tenth of a cohort
# extraction's CPU), and a superset of the hull holds the same farthest pair.
SMALL_PLANE = 256


def mesh_vertices(padded: np.ndarray) -> np.ndarray:
    """The mesh's vertices in half-voxel integer units: midpoints of grid edges whose two voxels
    differ (pyradiomics stores, per cube, the vertices on the three edges at its corner 7 whose
    other end differs; with a zero border that is every such edge of the grid exactly once)."""
    found = []
    for axis in range(3):
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        points = np.argwhere(padded[tuple(lower)] != padded[tuple(upper)]) * 2
        points[:, axis] += 1
        found.append(points)
    return np.concatenate(found)


def hull_vertices(points: np.ndarray) -> np.ndarray:
    """Indices of the convex hull's vertices; all points when the set is flat or tiny."""
    from scipy.spatial import ConvexHull, QhullError

    if len(points) > points.shape[1] + 1:
        try:
            return ConvexHull(points).vertices
        except QhullError:  # collinear / coplanar: every point is a candidate
            pass
    return np.arange(len(points))


def max_squared_distance(points: np.ndarray) -> float:
    """Largest squared distance between two of ``points`` (n, 3), in row blocks."""
    best = 0.0
    block = max(1, PAIRS_PER_BLOCK // max(len(points), 1))
    for start in range(0, len(points), block):
        a = points[start:start + block]
        d = ((a[:, None, 0] - points[None, :, 0]) ** 2 + (a[:, None, 1] - points[None, :, 1]) ** 2
             + (a[:, None, 2] - points[None, :, 2]) ** 2)
        best = max(best, float(d.max()))
    return best


def _row_extremes(half: np.ndarray, axis: int, along: int) -> np.ndarray:
    """Per plane (same ``axis`` coordinate) and line along ``along``: only the two end points can
    be hull vertices of that plane, so the rest are dropped before qhull (vectorised)."""
    other = 3 - axis - along
    order = np.lexsort((half[:, along], half[:, other], half[:, axis]))
    ordered = half[order]
    key = ordered[:, [axis, other]]
    new = np.ones(len(ordered), dtype=bool)
    new[1:] = np.any(key[1:] != key[:-1], axis=1)
    last = np.ones(len(ordered), dtype=bool)
    last[:-1] = new[1:]
    return ordered[new | last]


def diameters(half: np.ndarray, spacing_kji) -> np.ndarray:
    """The largest vertex distance within one k plane, one j plane, one i plane, and overall (mm):
    cshape.c's four diameters in its order. ``half`` holds vertices in half-voxel units
    (:func:`mesh_vertices`), ``spacing_kji`` the (k, j, i) spacing."""
    spacing = np.asarray(spacing_kji, dtype=float)
    result = np.zeros(4)
    if len(half) == 0:
        return result
    candidates = _row_extremes(half, 0, 2)
    hull = candidates[hull_vertices(candidates)]
    result[3] = max_squared_distance((hull / 2.0) * spacing)
    for axis in range(3):
        in_plane = [d for d in range(3) if d != axis]
        candidates = _row_extremes(half, axis, in_plane[1])
        starts = np.flatnonzero(np.diff(candidates[:, axis])) + 1
        best = 0.0
        for plane in np.split(candidates, starts):
            if len(plane) > 1:
                points = plane if len(plane) <= SMALL_PLANE else plane[hull_vertices(plane[:, in_plane])]
                best = max(best, max_squared_distance((points / 2.0) * spacing))
        result[axis] = best
    return np.sqrt(result)
