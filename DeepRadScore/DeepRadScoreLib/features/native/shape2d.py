"""pyradiomics' 2D shape features (``shape2D``) of a one-slice ROI, from their definitions.

The 2D mesh is marching squares with every vertex on the midpoint of a grid edge whose two
pixels differ. On a square whose ROI pixels are diagonal the two are kept apart (each corner cut
off on its own), as pyradiomics' table does (measured: two diagonal pixels mesh as two diamonds).
Each square's share of the mesh area and perimeter then depends only on its configuration: one
corner 1/8 of the square and one cut of length ``|(sx, sy)| / 2``, two adjacent corners half the
square and one straight cut of the side's length, two diagonal ones 1/4 and two cuts, three 7/8
and one cut, four the whole square. The diameter is the largest vertex distance (over the convex
hull's vertices); the axis lengths come from the eigenvalues of the pixel coordinates'
covariance, as in 3D.
"""
from __future__ import annotations


import numpy as np

from DeepRadScoreLib.features import mesh
from DeepRadScoreLib.features.native.shape import covariance_eigenvalues


# pyradiomics' order (getFeatureNames: alphabetical), deprecated SphericalDisproportion left out.
NAMES = ("Elongation", "MajorAxisLength", "MaximumDiameter", "MeshSurface", "MinorAxisLength",
         "Perimeter", "PerimeterSurfaceRatio", "PixelSurface", "Sphericity")
DEPRECATED = ("SphericalDisproportion",)


def _square_tables(spacing) -> tuple[np.ndarray, np.ndarray]:
    """Area and perimeter of each of the 16 square configurations (bit b: corner (b>>1, b&1))."""
    sy, sx = (float(s) for s in spacing)
    cut = np.sqrt((sx / 2) ** 2 + (sy / 2) ** 2)
    area, perimeter = np.zeros(16), np.zeros(16)
    for c in range(16):
        inside = [(c >> b) & 1 for b in range(4)]  # corners (0,0), (0,1), (1,0), (1,1)
        n = sum(inside)
        if n in (1, 3):
            area[c], perimeter[c] = (1 / 8 if n == 1 else 7 / 8), cut
        elif n == 2:
            if inside[0] == inside[3]:  # diagonal: two corners cut off apart
                area[c], perimeter[c] = 1 / 4, 2 * cut
            else:
                area[c] = 1 / 2
                # Same row inside (corners 0, 1 or 2, 3): the cut runs along x.
                perimeter[c] = sx if inside[0] == inside[1] else sy
        elif n == 4:
            area[c] = 1.0
    return area * sx * sy, perimeter


def _vertices(padded: np.ndarray) -> np.ndarray:
    found = []
    for axis in range(2):
        lower, upper = [slice(None)] * 2, [slice(None)] * 2
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        points = np.argwhere(padded[tuple(lower)] != padded[tuple(upper)]) * 2
        points[:, axis] += 1
        found.append(points)
    return np.concatenate(found)


def features(mask: np.ndarray, spacing, deprecated: bool = False) -> dict[str, float]:
    """pyradiomics' shape2D features of a 2D boolean ``mask`` (the ROI's bounding box, the slice
    axis squeezed out) with ``spacing`` its two spacings in numpy order (mm)."""
    padded = np.pad(np.asarray(mask, dtype=bool), 1)
    m = padded.astype(np.uint8)
    configuration = m[:-1, :-1] | (m[:-1, 1:] << 1) | (m[1:, :-1] << 2) | (m[1:, 1:] << 3)
    counts = np.bincount(configuration.ravel(), minlength=16).astype(float)
    area_table, perimeter_table = _square_tables(spacing)
    surface = float(counts @ area_table)
    perimeter = float(counts @ perimeter_table)
    half = _vertices(padded)
    scale = np.asarray(spacing, dtype=float) / 2.0
    hull = half[mesh.hull_vertices(half)] if len(half) else half
    points = np.zeros((len(hull), 3))
    points[:, :2] = hull * scale
    diameter = float(np.sqrt(mesh.max_squared_distance(points))) if len(hull) else 0.0
    minor, major = covariance_eigenvalues(padded, np.asarray(spacing, dtype=float))
    sy, sx = (float(s) for s in spacing)
    sphericity = (2 * np.sqrt(np.pi * surface)) / perimeter if perimeter else float("nan")
    values = {
        "MeshSurface": surface, "PixelSurface": int(np.count_nonzero(padded)) * (sx * sy),
        "Perimeter": perimeter, "PerimeterSurfaceRatio": perimeter / surface if surface else float("nan"),
        "Sphericity": sphericity, "SphericalDisproportion": 1.0 / sphericity,
        "MaximumDiameter": diameter,
        "MajorAxisLength": np.sqrt(major) * 4 if major >= 0 else float("nan"),
        "MinorAxisLength": np.sqrt(minor) * 4 if minor >= 0 else float("nan"),
        "Elongation": np.sqrt(minor / major) if minor >= 0 and major > 0 else float("nan"),
    }
    return {name: float(values[name]) for name in NAMES + (DEPRECATED if deprecated else ())}
