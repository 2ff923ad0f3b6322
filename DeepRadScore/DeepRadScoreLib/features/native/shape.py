"""pyradiomics' 14 non-deprecated 3D shape features in numpy/scipy (the native backend).

``features(mask, spacing)`` returns what ``radiomics.shape.RadiomicsShape`` returns for the same
mask: the ROI's bounding-box crop (pyradiomics' ``computeShape`` crop, no padDistance), which is
padded here by one empty voxel on every side as pyradiomics pads it.

The mesh is marching cubes on the padded mask with every vertex on the midpoint of a grid edge
whose two voxels differ. Its table (which triangles each of the 256 corner configurations of a
2x2x2 cube holds) is built here from that definition, not copied:

* **Polygons.** On each cube face the sign-changing edges are joined by segments that cut the
  ROI's corners off from the others. A face whose ROI corners are diagonal is ambiguous: like
  pyradiomics (measured on all 256 single-cube masks) the ROI corners are kept apart when the
  cube's reference corner ``(k+1, j+1, i)`` is outside the ROI, and a configuration whose
  reference corner is inside is the inverse of its complement (same triangles, reversed), as in
  Lorensen and Cline's complementary cases. The segments chain into closed loops, oriented so
  that every triangle's normal points out of the ROI (the signed-volume convention).
* **Triangles.** A planar loop may be split any way; a non-planar one is split into the fewest
  planar pieces (the corner triangle and planar quadrilateral of the three-corner case, the two
  planar quadrilaterals of the hexagonal cases), and the one seven-sided loop (two ROI corners
  joined across an ambiguous face to a lone one) is fanned from the lone outside corner's edge
  off that face. Testing/test_native_shape.py checks every configuration against pyradiomics.

Sums over the mesh are sums over cubes: a cube's area depends only on its configuration (a
256-entry table per spacing), its signed-tetrahedron volume ``a . (b x c) / 6`` (vertices in
``index * spacing`` of the padded grid, pyradiomics' origin) is linear in the cube's position,
so both need only ``np.bincount`` over the configuration array built by shifted-array bit ops.
Diameters are the largest vertex distances, overall and within each k, j and i plane; the
farthest pair lies on the convex hull (qhull, on exact half-voxel integer coordinates), so only
hull vertices are compared. Axis lengths come from the eigenvalues of the covariance of the ROI
voxels' physical coordinates, with pyradiomics' rounding of tiny negative eigenvalues to zero.
"""
from __future__ import annotations

import itertools
import logging
from functools import lru_cache

import numpy as np

from DeepRadScoreLib.features import mesh

logger = logging.getLogger(__name__)

# pyradiomics' order (getFeatureNames: alphabetical), deprecated Compactness1/2 and
# SphericalDisproportion left out.
NAMES = (
    "Elongation", "Flatness", "LeastAxisLength", "MajorAxisLength", "Maximum2DDiameterColumn",
    "Maximum2DDiameterRow", "Maximum2DDiameterSlice", "Maximum3DDiameter", "MeshVolume",
    "MinorAxisLength", "Sphericity", "SurfaceArea", "SurfaceVolumeRatio", "VoxelVolume",
)

# Deprecated in pyradiomics, yet computed when listed by name (never when a class is enabled whole).
DEPRECATED = ("Compactness1", "Compactness2", "SphericalDisproportion")

# A cube corner's bit b is the voxel at offset (dk, dj, di) = (b>>2 & 1, b>>1 & 1, b & 1).
CORNERS = np.array([((b >> 2) & 1, (b >> 1) & 1, b & 1) for b in range(8)])
# Edges: corner pairs differing in one offset; a vertex sits on each edge's midpoint.
EDGES = tuple((a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1)
MIDPOINTS = np.array([(CORNERS[a] + CORNERS[b]) / 2.0 for a, b in EDGES])
_EDGE_OF = {pair: n for n, pair in enumerate(EDGES)}
# The corner whose state decides ambiguous faces (see the module docstring): offset (1, 1, 0).
REFERENCE_BIT = 6
# Eigenvalues in (-1e-10, 0) are rounding errors of flat ROIs; pyradiomics sets them to 0.
_EIGEN_ROUNDING = 1e-10


def _faces() -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """The six cube faces: their corners in cyclic order and their outward normal."""
    faces = []
    for axis in range(3):
        u, v = [d for d in range(3) if d != axis]
        for side in (0, 1):
            cycle = []
            for du, dv in ((0, 0), (0, 1), (1, 1), (1, 0)):
                offset = [0, 0, 0]
                offset[axis], offset[u], offset[v] = side, du, dv
                cycle.append(offset[0] * 4 + offset[1] * 2 + offset[2])
            normal = np.zeros(3)
            normal[axis] = 1.0 if side else -1.0
            faces.append((tuple(cycle), normal))
    return faces


_FACES = _faces()


def _edge(a: int, b: int) -> int:
    return _EDGE_OF[(min(a, b), max(a, b))]


def _inside(configuration: int) -> list[bool]:
    return [bool(configuration >> b & 1) for b in range(8)]


def _ambiguous_faces(configuration: int) -> list[int]:
    inside = _inside(configuration)
    return [n for n, (cycle, _) in enumerate(_FACES)
            if [inside[c] for c in cycle] in ([True, False, True, False], [False, True, False, True])]


def _face_segments(configuration: int) -> dict[int, int]:
    """Directed segments edge -> edge on every face, ROI corners kept apart on ambiguous faces.

    A segment (p -> q) on a face with outward normal n is directed so that (q - p) x n points to
    the side of the ROI corners it cuts off: chained into loops, the triangles' right-hand normals
    then point out of the ROI.
    """
    inside = _inside(configuration)
    segments = {}
    for cycle, normal in _FACES:
        state = [inside[c] for c in cycle]
        # Face edge n joins cycle[n] and cycle[n + 1]; corner n lies between face edges n-1 and n.
        changes = [n for n in range(4) if state[n] != state[(n + 1) % 4]]
        if len(changes) == 2:
            pairs = [tuple(changes)]
        elif len(changes) == 4:  # ambiguous: cut off each ROI corner on its own
            pairs = [((n - 1) % 4, n) for n in range(4) if state[n]]
        else:
            continue
        for f, g in pairs:
            e1 = _edge(cycle[f], cycle[(f + 1) % 4])
            e2 = _edge(cycle[g], cycle[(g + 1) % 4])
            p, q = MIDPOINTS[e1], MIDPOINTS[e2]
            side = np.cross(q - p, normal)
            # The corners on either side of the segment's line; the smaller side is the one cut
            # off, and it holds only ROI corners or only others.
            offsets = [float(np.dot(CORNERS[c] - p, side)) for c in cycle]
            positive = [c for c, o in zip(cycle, offsets) if o > 0]
            negative = [c for c, o in zip(cycle, offsets) if o < 0]
            cut, cut_on_positive = (positive, True) if len(positive) <= len(negative) else (negative, False)
            if inside[cut[0]] != cut_on_positive:
                e1, e2 = e2, e1
            segments[e1] = e2
    return segments


def _loops(configuration: int) -> list[list[int]]:
    segments = _face_segments(configuration)
    loops, seen = [], set()
    for start in sorted(segments):
        if start in seen:
            continue
        loop, edge = [], start
        while edge not in seen:
            seen.add(edge)
            loop.append(edge)
            edge = segments[edge]
        loops.append(loop)
    return loops


def _triangulations(loop: list[int]) -> list[list[tuple[int, int, int]]]:
    """Every triangulation of a polygon, each triangle in the polygon's orientation."""
    if len(loop) < 3:
        return [[]]
    result = []
    first, last = loop[0], loop[-1]
    for k in range(1, len(loop) - 1):
        for left in _triangulations(loop[:k + 1]):
            for right in _triangulations(loop[k:]):
                result.append(left + right + [(first, loop[k], last)])
    return result


def _plane_count(triangles: list[tuple[int, int, int]]) -> int:
    planes: list[tuple[np.ndarray, float]] = []
    for t in triangles:
        a, b, c = MIDPOINTS[list(t)]
        normal = np.cross(b - a, c - a)
        normal /= np.linalg.norm(normal)
        offset = float(np.dot(normal, a))
        if not any(np.allclose(normal, n) and np.isclose(offset, o) for n, o in planes):
            planes.append((normal, offset))
    return len(planes)


def _fan(loop: list[int], apex: int) -> list[tuple[int, int, int]]:
    n = loop.index(apex)
    turned = loop[n:] + loop[:n]
    return [(turned[0], turned[k], turned[k + 1]) for k in range(1, len(turned) - 1)]


def _heptagon_apex(configuration: int, loop: list[int]) -> int:
    """The seven-sided loop's fan apex: the lone outside corner's edge off the ambiguous face."""
    inside = _inside(configuration)
    (face,) = _ambiguous_faces(configuration)
    axis = face // 2
    for e in loop:
        a, b = EDGES[e]
        lone = b if inside[a] else a
        neighbours = [lone ^ (1 << bit) for bit in range(3)]
        if (a ^ b) == 1 << (2 - axis) and all(inside[n] for n in neighbours):
            return e
    raise AssertionError(f"configuration {configuration}: no lone corner on its 7-sided loop")


def _triangulate(configuration: int, loop: list[int]) -> list[tuple[int, int, int]]:
    if len(loop) == 7:
        return _fan(loop, _heptagon_apex(configuration, loop))
    candidates = _triangulations(loop)
    counts = [_plane_count(t) for t in candidates]
    return candidates[int(np.argmin(counts))]


@lru_cache(maxsize=1)
def case_table() -> tuple[tuple[tuple[int, int, int], ...], ...]:
    """The triangles (edge index triples, outward normals) of each of the 256 configurations."""
    table: list = [None] * 256
    for configuration in range(256):
        if configuration >> REFERENCE_BIT & 1:
            continue
        table[configuration] = tuple(tri for loop in _loops(configuration)
                                     for tri in _triangulate(configuration, loop))
    for configuration in range(256):
        if table[configuration] is None:  # reference corner inside: the complement, reversed
            table[configuration] = tuple((a, c, b) for a, b, c in table[255 - configuration])
    return tuple(table)


@lru_cache(maxsize=1)
def _triangle_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All tabled triangles as (n, 3 vertices, 3 coords) in voxel units, and their configuration."""
    owners, vertices = [], []
    for configuration, triangles in enumerate(case_table()):
        for t in triangles:
            owners.append(configuration)
            vertices.append(MIDPOINTS[list(t)])
    return np.array(vertices), np.array(owners)


@lru_cache(maxsize=1)
def _volume_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per configuration: its signed volume at the origin and its change per unit of position.

    A cube at position P has vertices P + a: det(P+a, P+b, P+c) = det(a, b, c) + P . (a x b +
    b x c + c x a), the terms quadratic in P cancelling. Unit spacing; a spacing multiplies every
    determinant by the voxel volume.
    """
    tri, owner = _triangle_arrays()
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    det = np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0
    moment = (np.cross(a, b) + np.cross(b, c) + np.cross(c, a)) / 6.0
    volume = np.bincount(owner, weights=det, minlength=256)
    slope = np.stack([np.bincount(owner, weights=moment[:, d], minlength=256) for d in range(3)], axis=1)
    return volume, slope


@lru_cache(maxsize=64)
def _area_table(spacing_kji: tuple[float, float, float]) -> np.ndarray:
    """Area of each configuration's triangles at this spacing (the cube's position does not matter)."""
    tri, owner = _triangle_arrays()
    scaled = tri * np.asarray(spacing_kji)
    area = 0.5 * np.linalg.norm(np.cross(scaled[:, 1] - scaled[:, 0], scaled[:, 2] - scaled[:, 0]), axis=1)
    return np.bincount(owner, weights=area, minlength=256)


def configurations(padded: np.ndarray) -> np.ndarray:
    """Every cube's 8-bit corner configuration, cube (k, j, i) having its corner 0 at voxel (k, j, i)."""
    k, j, i = padded.shape
    m = padded.astype(np.uint8)
    index = np.zeros((k - 1, j - 1, i - 1), dtype=np.uint8)
    for bit, (dk, dj, di) in enumerate(CORNERS):
        index |= m[dk:dk + k - 1, dj:dj + j - 1, di:di + i - 1] << np.uint8(bit)
    return index


def mesh_area_volume(padded: np.ndarray, spacing_kji) -> tuple[float, float]:
    """Surface area (mm^2) and signed mesh volume (mm^3) of a boolean [k, j, i] mask.

    The mask is meshed as given (callers pad it); vertex coordinates are index * spacing.
    """
    spacing = tuple(float(s) for s in spacing_kji)
    cubes = configurations(np.asarray(padded, dtype=bool))
    flat = cubes.ravel()
    counts = np.bincount(flat, minlength=256).astype(float)
    area = float(counts @ _area_table(spacing))
    volume0, slope = _volume_tables()
    total = counts @ volume0
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = cubes.shape[axis]
        position = np.broadcast_to(np.arange(cubes.shape[axis], dtype=float).reshape(shape), cubes.shape)
        total += np.bincount(flat, weights=position.ravel(), minlength=256) @ slope[:, axis]
    return area, float(total * spacing[0] * spacing[1] * spacing[2])


def _diameters(half: np.ndarray, spacing_kji: np.ndarray) -> dict[str, float]:
    """Largest vertex distance in a k plane (Slice), j plane (Column), i plane (Row) and in 3D."""
    values = mesh.diameters(half, spacing_kji)
    return {"Maximum2DDiameterSlice": float(values[0]), "Maximum2DDiameterColumn": float(values[1]),
            "Maximum2DDiameterRow": float(values[2]), "Maximum3DDiameter": float(values[3])}


def covariance_eigenvalues(padded: np.ndarray, spacing_kji: np.ndarray) -> np.ndarray:
    """Sorted eigenvalues of the covariance (population) of the ROI voxels' physical coordinates."""
    coordinates = np.stack(np.nonzero(padded), axis=1) * spacing_kji
    coordinates -= coordinates.mean(axis=0)
    coordinates /= np.sqrt(len(coordinates))
    # The general eigensolver on a C-ordered product, as pyradiomics: for a collinear ROI the zero
    # eigenvalues are rounding noise, and their square roots are only equal when the noise is.
    covariance = np.dot(np.ascontiguousarray(coordinates.T), coordinates)
    values = np.real(np.linalg.eigvals(covariance))
    values[(values < 0) & (values > -_EIGEN_ROUNDING)] = 0.0
    return np.sort(values)


def _root(value: float) -> float:
    if value < 0:
        logger.warning("negative shape eigenvalue %g: NaN, as pyradiomics", value)
        return float("nan")
    return float(np.sqrt(value))


def features(mask: np.ndarray, spacing: tuple[float, float, float], deprecated: bool = False) -> dict[str, float]:
    """pyradiomics' 3D shape features of one ROI.

    Parameters: ``mask`` a boolean [k, j, i] array, the ROI's bounding-box crop as pyradiomics'
    shape class receives it (the mesh volume of pyradiomics' mesh depends on that grid's origin
    where its ambiguous faces leave a gap, so the crop must be the same); ``spacing`` in
    SimpleITK (x, y, z) order, mm. Returns ``{name: value}`` for every name in :data:`NAMES`.
    """
    spacing_kji = np.asarray(spacing, dtype=float)[::-1]
    padded = np.pad(np.asarray(mask, dtype=bool), 1)
    area, volume = mesh_area_volume(padded, spacing_kji)
    count = int(np.count_nonzero(padded))
    least, minor, major = covariance_eigenvalues(padded, spacing_kji)
    out = {
        "MeshVolume": volume,
        "VoxelVolume": count * float(np.prod(spacing_kji)),
        "SurfaceArea": area,
        "SurfaceVolumeRatio": area / volume if volume != 0 else float("nan"),
        "Sphericity": (36 * np.pi * volume ** 2) ** (1.0 / 3.0) / area if area != 0 else float("nan"),
        "MajorAxisLength": 4 * _root(major),
        "MinorAxisLength": 4 * _root(minor),
        "LeastAxisLength": 4 * _root(least),
        "Elongation": _root(minor / major) if major > 0 and minor >= 0 else float("nan"),
        "Flatness": _root(least / major) if major > 0 and least >= 0 else float("nan"),
    }
    out.update(_diameters(mesh.mesh_vertices(padded), spacing_kji))
    # pyradiomics' deprecated shape features: computed when a file lists them by name.
    out["Compactness1"] = volume / (area ** (3.0 / 2.0) * np.sqrt(np.pi)) if area != 0 else float("nan")
    out["Compactness2"] = (36.0 * np.pi) * (volume ** 2.0) / (area ** 3.0) if area != 0 else float("nan")
    out["SphericalDisproportion"] = (area / (36 * np.pi * volume ** 2) ** (1.0 / 3.0)
                                     if volume != 0 else float("nan"))
    return {name: float(out[name]) for name in NAMES + (DEPRECATED if deprecated else ())}
