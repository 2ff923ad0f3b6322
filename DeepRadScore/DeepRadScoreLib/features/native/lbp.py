"""pyradiomics' local binary pattern image types, LBP2D and LBP3D, without scikit-image or trimesh.

pyradiomics makes LBP2D with ``skimage.feature.local_binary_pattern`` slice by slice and LBP3D
from spherical harmonics on ``trimesh``'s icosphere. Neither package is needed here: the same
arithmetic is written in numpy, operation for operation, so the filtered images are bit-identical
where the operations are (Testing/test_native_lbp.py compares them with pyradiomics' own).

Quirks of pyradiomics (and of the libraries it calls) that are kept, not fixed:

* LBP2D's result is written back into the image's own array, so it takes the image's dtype
  (an int16 CT truncates ``var``'s floats, and a NaN ``var`` becomes whatever numpy's cast
  makes of it); the slices are taken along numpy axis ``force2Ddimension`` of the (z, y, x) array.
* scikit-image's ``uniform`` counts the 0/1 changes between neighbours 0..P-1 only, not the
  wrap-around from P-1 back to 0; the samples lie at offsets rounded to 5 decimals and are
  read by bilinear interpolation with zeros outside the slice.
* LBP3D adds the icosphere's (x, y, z) vertex to the voxel's (z, y, x) index; it calls scipy's
  old ``sph_harm(m, n, theta, phi)`` with the polar angle as ``theta`` (scipy's azimuth) and the
  azimuth as ``phi``; its norm is ``sqrt(sum(f ** 2))`` of complex numbers (not of ``|f| ** 2``),
  of which the real part is kept; the interpolated samples take the image's dtype (rounded for
  an integer image) before they are compared with the centre voxel.
* ``lbp3DLevels`` 1 makes pyradiomics fail (an indexing error), so it is refused.

Where scipy is 1.17 or newer, ``sph_harm`` is gone and pyradiomics' LBP3D silently yields
nothing; the native backend then uses ``sph_harm_y`` with the arguments swapped back, which is
the same function (equal to 1e-14, checked against SciPy 1.13's ``sph_harm`` in the tests).

LBP3D is computed in chunks of voxels (pyradiomics holds a complex (voxels x 42 x levels^2) array
at once, 700 MB for a 260,000-voxel tumour); each voxel's arithmetic is unchanged by the chunking.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterator

import numpy as np

IMAGE_TYPES = ("LBP2D", "LBP3D")
CHUNK = 8192  # voxels per LBP3D chunk: about 25 MB of complex intermediates


def image_names(image_type: str, settings: dict) -> tuple[str, ...]:
    """The filtered images an LBP image type yields, named as pyradiomics names them."""
    if image_type == "LBP2D":
        return ("lbp-2D",)
    levels = int(settings["lbp3DLevels"])
    return tuple(f"lbp-3D-m{level + 1}" for level in range(levels)) + ("lbp-3D-k",)


def filtered(image_type: str, array: np.ndarray, roi: np.ndarray, settings: dict) -> Iterator[tuple[str, np.ndarray]]:
    """(name, array) of each image ``image_type`` makes of the crop ``array`` (numpy z, y, x);
    ``roi`` is the crop's boolean mask (LBP3D is computed on its voxels only)."""
    if image_type == "LBP2D":
        axis = int(settings["force2Ddimension"])
        yield "lbp-2D", lbp2d(array, float(settings["lbp2DRadius"]), int(settings["lbp2DSamples"]),
                              str(settings["lbp2DMethod"]), axis)
        return
    yield from zip(image_names("LBP3D", settings),
                   lbp3d(array, roi, int(settings["lbp3DLevels"]), float(settings["lbp3DIcosphereRadius"]),
                         int(settings["lbp3DIcosphereSubdivision"])))


# --- LBP2D ---------------------------------------------------------------------------------------

def lbp2d(array: np.ndarray, radius: float, samples: int, method: str, axis: int = 0) -> np.ndarray:
    """pyradiomics' ``getLBP2DImage`` of a 3D array: each slice along ``axis``, in its dtype."""
    out = np.array(array, copy=True)
    view = out.swapaxes(0, axis)
    for index in range(view.shape[0]):
        view[index, ...] = local_binary_pattern(view[index, ...], samples, radius, method)
    return out


def local_binary_pattern(image: np.ndarray, samples: int, radius: float, method: str) -> np.ndarray:
    """scikit-image's ``local_binary_pattern`` (float64), vectorised over the pixels."""
    image = np.ascontiguousarray(image, dtype=np.float64)
    rows, cols = image.shape
    p = samples
    angles = 2 * np.pi * np.arange(p, dtype=np.float64) / p
    rp = np.round(-radius * np.sin(angles), 5)
    cp = np.round(radius * np.cos(angles), 5)
    textures = [_bilinear(image, np.arange(rows) + rp[i], np.arange(cols) + cp[i]) for i in range(p)]
    signed = [(t - image >= 0).astype(np.int64) for t in textures]
    if method == "var":
        total = np.zeros_like(image)
        squares = np.zeros_like(image)
        for t in textures:  # the same running sums, in the same order, as the loop it replaces
            total += t
            squares += t * t
        var = (squares - (total * total) / p) / p
        return np.where(var != 0, var, np.nan)
    if method == "uniform":
        changes = sum(((signed[i] - signed[i + 1]) != 0 for i in range(p - 1)), np.zeros(image.shape, np.int64))
        ones = sum(signed, np.zeros(image.shape, np.int64))
        return np.where(changes <= 2, ones, p + 1).astype(np.float64)
    # 'default' and 'ror': scikit-image's int32 weights summed into a double, and its rotations
    # in C ints (both wrap as numpy's int32 does, for a sample count above 30).
    weights = 2 ** np.arange(p, dtype=np.int32)
    value = np.zeros(image.shape, dtype=np.float64)
    for i, s in enumerate(signed):
        value += s * weights[i]
    if method == "ror":
        rotated = value.astype(np.int32)
        best = rotated.copy()
        for _ in range(1, p):
            rotated = (rotated >> np.int32(1)) | ((rotated & np.int32(1)) << np.int32(p - 1))
            best = np.minimum(best, rotated)
        value = best.astype(np.float64)
    return value


def _bilinear(image: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """scikit-image's ``bilinear_interpolation`` at every (r[i], c[j]), zeros outside (mode 'C')."""
    rows, cols = image.shape
    min_r, max_r = np.floor(r).astype(np.int64), np.ceil(r).astype(np.int64)
    min_c, max_c = np.floor(c).astype(np.int64), np.ceil(c).astype(np.int64)
    dr = (r - min_r)[:, None]
    dc = (c - min_c)[None, :]

    def pixel(ri, ci):
        inside = ((ri >= 0) & (ri < rows))[:, None] & ((ci >= 0) & (ci < cols))[None, :]
        values = image[np.clip(ri, 0, rows - 1)[:, None], np.clip(ci, 0, cols - 1)[None, :]]
        return np.where(inside, values, 0.0)

    top = (1 - dc) * pixel(min_r, min_c) + dc * pixel(min_r, max_c)
    bottom = (1 - dc) * pixel(max_r, min_c) + dc * pixel(max_r, max_c)
    return (1 - dr) * top + dr * bottom


# --- LBP3D ---------------------------------------------------------------------------------------

# trimesh's stored icosahedron (creation.json): unit vertices and the 20 faces, in its order.
_A, _B = 0.5257311121191336, 0.85065080835204
_ICOSAHEDRON = np.array([[-_A, _B, 0.0], [_A, _B, 0.0], [-_A, -_B, 0.0], [_A, -_B, 0.0],
                         [0.0, -_A, _B], [0.0, _A, _B], [0.0, -_A, -_B], [0.0, _A, -_B],
                         [_B, 0.0, -_A], [_B, 0.0, _A], [-_B, 0.0, -_A], [-_B, 0.0, _A]], dtype=np.float64)
_FACES = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
                   [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
                   [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int64)


@lru_cache(maxsize=8)
def icosphere(subdivisions: int, radius: float) -> np.ndarray:
    """The vertices of ``trimesh.creation.icosphere(subdivisions, radius)`` (read-only (n, 3)).

    Each subdivision adds the midpoint of every edge (the mean of its two ends) and four faces
    per face, then moves every vertex onto the sphere as trimesh does, in trimesh's vertex order
    (LBP3D sums over the vertices, so the order changes its last bits).
    """
    vertices, faces = _ICOSAHEDRON.copy(), _FACES
    for _ in range(max(subdivisions, 1)):
        if subdivisions > 0:
            vertices, faces = _subdivide(vertices, faces)
        scalar = np.sqrt(np.dot(vertices ** 2, [1, 1, 1]))
        unit = vertices / scalar.reshape((-1, 1))
        vertices = vertices + unit * (radius - scalar).reshape((-1, 1))
    vertices.setflags(write=False)
    return vertices


def _subdivide(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape((-1, 2)), axis=1)
    # trimesh orders the unique edges by a hash that packs the second index above the first:
    # by (second, first). The order matters to the last bits of LBP3D's sums over the vertices.
    flipped, inverse = np.unique(edges[:, ::-1], axis=0, return_inverse=True)
    unique = flipped[:, ::-1]
    middle = vertices[unique].mean(axis=1)
    m = inverse.reshape((-1, 3)) + len(vertices)
    new_faces = np.column_stack([faces[:, 0], m[:, 0], m[:, 2], m[:, 0], faces[:, 1], m[:, 1],
                                 m[:, 2], m[:, 1], faces[:, 2], m[:, 0], m[:, 1], m[:, 2]]).reshape((-1, 3))
    return np.vstack((vertices, middle)), new_faces


def spherical_harmonic(m: int, n: int, azimuth: np.ndarray, polar: np.ndarray) -> np.ndarray:
    """scipy's old ``sph_harm(m, n, azimuth, polar)``, on any scipy (``sph_harm_y`` from 1.15)."""
    from scipy import special

    if hasattr(special, "sph_harm_y"):
        return special.sph_harm_y(n, m, polar, azimuth)
    return special.sph_harm(m, n, azimuth, polar)


def lbp3d(array: np.ndarray, roi: np.ndarray, levels: int, radius: float, subdivisions: int) -> list[np.ndarray]:
    """pyradiomics' ``getLBP3DImage``: the ``levels`` images ``lbp-3D-m<l>``, then ``lbp-3D-k``
    (the spherical kurtosis), float64, set on the ROI's voxels (zero elsewhere, where
    pyradiomics leaves uninitialised memory that no feature reads)."""
    from scipy import ndimage
    from scipy.stats import kurtosis

    vertices = icosphere(subdivisions, radius)
    # pyradiomics' names: theta from z (the polar angle), phi from (x, y) (the azimuth) ...
    theta = np.arccos(np.true_divide(vertices[:, 2], radius))
    phi = np.arctan2(vertices[:, 1], vertices[:, 0])
    # ... handed to sph_harm(m, n, theta, phi), whose theta is the azimuth: kept (see module doc).
    y = spherical_harmonic(0, 0, theta, phi)
    n_ix = np.array(0)
    for n in range(1, levels):
        for m in range(-n, n + 1):
            n_ix = np.append(n_ix, n)
            y = np.column_stack((y, spherical_harmonic(m, n, theta, phi)))

    coords_roi = np.where(roi)
    # map_coordinates(order=3, mode='constant') is spline_filter once, then the interpolation:
    # done in that order here so that the prefilter runs once, not once per chunk.
    spline = ndimage.spline_filter(array, 3, output=np.float64, mode="constant")
    results = [np.zeros(array.shape, dtype=np.float64) for _ in range(levels + 1)]
    for start in range(0, len(coords_roi[0]), CHUNK):
        part = tuple(c[start:start + CHUNK] for c in coords_roi)
        coords = np.array(part).T[None, :, :] + vertices[:, None, :]
        f = np.empty((len(part[0]), len(vertices)), dtype=array.dtype)
        ndimage.map_coordinates(spline, coords.T, output=f, order=3, mode="constant", prefilter=False)
        k = kurtosis(f, axis=1)
        f = np.greater_equal(f, array[part][:, None]).astype(int)
        c = np.multiply(f[:, :, None], y[None, :, :]).sum(axis=1)
        g = np.multiply(c[:, None, n_ix == 0], y[None, :, n_ix == 0])
        for n in range(1, levels):
            g = np.concatenate((g, np.sum(np.multiply(c[:, None, n_ix == n], y[None, :, n_ix == n]),
                                          axis=2, keepdims=True)), axis=2)
        g = np.real(np.sqrt(np.sum(g ** 2, axis=1)))
        for level in range(levels):
            results[level][part] = g[:, level]
        results[levels][part] = np.real(k)
    return results
