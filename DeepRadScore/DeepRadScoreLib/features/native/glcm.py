"""Grey Level Co-occurrence Matrix features, equal to pyradiomics' ``glcm`` class.

Definitions follow pyradiomics' documentation for its defaults (3D, distance 1, symmetrical
GLCM, ``weightingNorm`` None): one co-occurrence matrix per direction of the 13 of the
26-neighbourhood, counting ordered pairs (voxel, voxel + direction) with both voxels in the ROI,
made symmetrical by adding its transpose; rows and columns of grey levels absent from the ROI
are dropped; directions without a single pair are dropped; each feature is computed per
direction and the mean over directions (NaN-skipping) is returned. ``eps`` is
``np.spacing(1)`` where pyradiomics adds it, and its fall-backs for degenerate matrices
(Correlation 1 when a marginal has no spread, Imc1 0 when both marginal entropies are 0, Imc2 0
when HXY2 equals HXY, MCC 1 for a single grey level) are kept.

The matrices are built with one ``np.bincount`` per direction over the ROI voxels' paired
grey-level indices (a neighbour outside the ROI counted in an extra column that is dropped);
features are vectorised over (direction, i, j).
"""
from __future__ import annotations


import numpy as np


NAMES: tuple[str, ...] = (
    "Autocorrelation", "ClusterProminence", "ClusterShade", "ClusterTendency", "Contrast",
    "Correlation", "DifferenceAverage", "DifferenceEntropy", "DifferenceVariance", "Id", "Idm",
    "Idmn", "Idn", "Imc1", "Imc2", "InverseVariance", "JointAverage", "JointEnergy",
    "JointEntropy", "MCC", "MaximumProbability", "SumAverage", "SumEntropy", "SumSquares",
)

EPS = np.spacing(1)


def directions_3d() -> np.ndarray:
    """The 13 offsets (dz, dy, dx) of distance 1, one of each +/- pair, shape (13, 3).

    A symmetrical GLCM and a run length do not depend on which of the two opposite offsets
    stands for a direction, so any fixed representative gives pyradiomics' numbers.
    """
    offsets = np.array([(dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    # Keep the lexicographically positive half: first non-zero component > 0.
    keep = [o for o in offsets if o.any() and o[np.flatnonzero(o)[0]] > 0]
    return np.array(keep, dtype=np.int64)


def directions(distances=(1,), plane: int | None = None) -> np.ndarray:
    """pyradiomics' angles for ``distances``: every offset (dz, dy, dx) whose largest absolute
    component is one of the distances, one of each +/- pair (first non-zero component > 0),
    shape (n, 3); with ``plane`` (``force2Ddimension`` under ``force2D``) only those that stay
    in that axis' plane. Distance 1 alone gives :func:`directions_3d`."""
    reach = int(max(distances))
    wanted = {int(d) for d in distances}
    span = range(-reach, reach + 1)
    keep = [(dz, dy, dx) for dz in span for dy in span for dx in span
            if max(abs(dz), abs(dy), abs(dx)) in wanted
            and [c for c in (dz, dy, dx) if c != 0][0] > 0
            and (plane is None or (dz, dy, dx)[plane] == 0)]
    return np.array(keep, dtype=np.int64).reshape(-1, 3)


def weights(offsets: np.ndarray, spacing_kji, norm: str, kind: str) -> np.ndarray:
    """pyradiomics' weight per angle for ``weightingNorm``: the angle's length in mm (``|a| *
    spacing``, (z, y, x)) under the norm (``infinity``: the largest component, ``euclidean``,
    ``manhattan``: the sum), or 1 for ``no_weighting``. ``kind`` "glcm" gives
    ``exp(-length^2)`` (GLCM's weights), "glrlm" the length itself (GLRLM's)."""
    scaled = np.abs(offsets) * np.asarray(spacing_kji, dtype=float)[None, :]
    if norm == "no_weighting":
        return np.ones(len(offsets))
    if norm == "infinity":
        length = scaled.max(axis=1)
        return np.exp(-length ** 2) if kind == "glcm" else length
    if norm == "euclidean":
        squared = (scaled ** 2).sum(axis=1)
        # exp(-(sqrt(x))^2) written as exp(-x), as pyradiomics writes it.
        return np.exp(-squared) if kind == "glcm" else np.sqrt(squared)
    length = scaled.sum(axis=1)  # manhattan
    return np.exp(-length ** 2) if kind == "glcm" else length


def roi_levels(q: np.ndarray, mask: np.ndarray, pad: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded ROI, per-voxel index of its grey level among those present, and those levels.

    Returns ``(padded_mask, padded_index, levels)``: both arrays padded by one voxel of
    background on every side, so that a neighbour offset never leaves the array (pyradiomics
    ignores neighbours outside the image, and padding with background does the same);
    ``padded_index`` holds, inside the ROI, the position of the voxel's grey level in the sorted
    ``levels`` present in the ROI (pyradiomics' ``grayLevels``) and 0 elsewhere.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"texture features need a 3D mask, got {mask.ndim}D")
    if not mask.any():
        raise ValueError("the ROI is empty")
    values = np.asarray(q)[mask]
    levels, index = _levels_and_index(values)
    if levels[0] < 1:
        raise ValueError(f"grey levels inside the ROI must be bin indices >= 1, found {levels[0]}")
    padded_mask = np.pad(mask, pad)
    padded_index = np.zeros(padded_mask.shape, dtype=np.int64)
    padded_index[(slice(pad, -pad),) * 3][mask] = index.ravel()
    return padded_mask, padded_index, levels


def _levels_and_index(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``, by counting where the values are small
    non-negative integers (bin indices always are): one pass instead of a sort."""
    if values.dtype.kind in "iu" and values.size:
        low, high = int(values.min()), int(values.max())
        if low >= 0 and high <= 4 * values.size + 65536:  # else a sparse range: the sort is cheaper
            present = np.bincount(values, minlength=high + 1) > 0
            lookup = np.cumsum(present) - 1
            return np.flatnonzero(present).astype(values.dtype), lookup[values]
    return np.unique(values, return_inverse=True)


def flat_offsets(shape: tuple[int, ...], offsets: np.ndarray | None = None) -> np.ndarray:
    """Offsets (default :func:`directions_3d`) in a C-ordered flattened array of ``shape``."""
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
    return (directions_3d() if offsets is None else offsets) @ strides


def matrices(q: np.ndarray, mask: np.ndarray, distances=(1,), symmetrical: bool = True,
             plane: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetrical co-occurrence counts per direction and the ROI's grey levels.

    Returns ``(P, levels)``: ``P`` of shape (13, Ng, Ng) over the Ng grey levels present in the
    ROI (``levels``, ascending), ``P[a, i, j]`` the number of pairs with levels i and j along
    direction ``a`` in either orientation.
    """
    offsets = directions(distances, plane)
    padded_mask, padded_index, levels = roi_levels(q, mask, int(max(distances)))
    n = len(levels)
    flat_mask = padded_mask.ravel()
    # Level n stands for "outside the ROI": a pair with its neighbour outside falls into column
    # n, dropped below, so no pair needs testing or compressing (fewer passes over the voxels).
    code = np.where(flat_mask, padded_index.ravel(), n)
    del padded_index
    voxels = np.flatnonzero(flat_mask)
    side = n + 1
    row = code[voxels] * side
    counts = np.empty((len(offsets), n, n), dtype=np.float64)
    neighbours, pairs = np.empty_like(voxels), np.empty_like(voxels)
    for a, offset in enumerate(flat_offsets(padded_mask.shape, offsets)):
        # Row: the voxel's level, column: its neighbour's at + angle (pyradiomics' orientation,
        # which only an asymmetrical GLCM shows).
        np.add(voxels, offset, out=neighbours)
        np.add(row, code[neighbours], out=pairs)
        counts[a] = np.bincount(pairs, minlength=side * side).reshape(side, side)[:n, :n]
    if symmetrical:
        # A new array, not an in-place add of its own transposed view.
        counts = counts + counts.transpose(0, 2, 1)
    return counts, levels


def _nanmean(values: np.ndarray) -> float:
    """Mean over directions skipping NaN; NaN (without a warning) when nothing is left."""
    values = np.asarray(values, dtype=float)
    finite = ~np.isnan(values)
    return float(values[finite].mean()) if finite.any() else float("nan")


def features(q: np.ndarray, mask: np.ndarray, distances=(1,), symmetrical: bool = True,
             weighting: str | None = None, spacing_kji=(1.0, 1.0, 1.0), plane: int | None = None
             ) -> dict[str, float]:
    """pyradiomics' 24 GLCM features of one ROI.

    Parameters: ``q`` the discretised image (bin indices >= 1 inside the ROI, as pyradiomics'
    ``binImage`` gives them; values outside ``mask`` are ignored), ``mask`` the ROI (bool, same
    3D shape, numpy (z, y, x) order); ``distances``, ``symmetrical`` (``symmetricalGLCM``) and
    ``weighting`` (``weightingNorm``, with the voxel ``spacing_kji``) and ``plane`` (the numpy
    axis of ``force2Ddimension`` under ``force2D``, else None) as pyradiomics' settings.
    Returns: ``{name: value}`` for every name in :data:`NAMES`.
    """
    counts, levels = matrices(q, mask, distances, symmetrical, plane)
    if weighting is not None:
        # One matrix: the angles' matrices summed with their weights (pyradiomics' order).
        w = weights(directions(distances, plane), spacing_kji, weighting, "glcm")
        counts = np.sum(counts * w[:, None, None], axis=0, keepdims=True)
    totals = counts.sum(axis=(1, 2))
    # Directions along which no two ROI voxels neighbour each other carry no information.
    counts = counts[totals > 0]
    totals = totals[totals > 0]
    ng_max = float(levels.max())  # pyradiomics' Ng: the highest grey level in the ROI
    if counts.shape[0] == 0:
        values = {name: float("nan") for name in NAMES}
        if len(levels) < 2:
            values["MCC"] = 1.0
        return values
    return _from_matrices(counts / totals[:, None, None], levels.astype(float), ng_max, not symmetrical)


def _from_matrices(p: np.ndarray, g: np.ndarray, ng_max: float, asymmetrical: bool = False) -> dict[str, float]:
    """Features from normalised matrices ``p`` (directions, Ng, Ng) over grey levels ``g``."""
    n_dir, n = p.shape[0], len(g)
    gi, gj = g[:, None], g[None, :]
    px = p.sum(axis=2)  # (directions, Ng): marginal over j
    py = p.sum(axis=1)  # marginal over i
    ux = (p * gi).sum(axis=(1, 2))
    uy = (p * gj).sum(axis=(1, 2))

    # p_{x+y}(k), k = 2 .. 2 Ng_max and p_{x-y}(k), k = 0 .. Ng_max - 1, over present levels.
    n_sum, n_diff = int(2 * ng_max - 1), int(ng_max)
    k_sum = np.arange(2, 2 * ng_max + 1)
    k_diff = np.arange(0, ng_max)
    rows = np.arange(n_dir)[:, None]
    sum_code = (rows * n_sum + (gi + gj - 2).astype(np.int64).ravel()[None, :]).ravel()
    diff_code = (rows * n_diff + np.abs(gi - gj).astype(np.int64).ravel()[None, :]).ravel()
    flat_p = p.reshape(n_dir, -1).ravel()
    p_sum = np.bincount(sum_code, flat_p, minlength=n_dir * n_sum).reshape(n_dir, n_sum)
    p_diff = np.bincount(diff_code, flat_p, minlength=n_dir * n_diff).reshape(n_dir, n_diff)

    hxy = -(p * np.log2(p + EPS)).sum(axis=(1, 2))
    s = gi + gj - (ux + uy)[:, None, None]
    dx = gi - ux[:, None, None]
    dy = gj - uy[:, None, None]

    out = {}
    out["Autocorrelation"] = (p * (gi * gj)).sum(axis=(1, 2))
    out["JointAverage"] = ux
    out["ClusterProminence"] = (p * s ** 4).sum(axis=(1, 2))
    out["ClusterShade"] = (p * s ** 3).sum(axis=(1, 2))
    out["ClusterTendency"] = (p * s ** 2).sum(axis=(1, 2))
    out["Contrast"] = (p * (gi - gj) ** 2).sum(axis=(1, 2))

    sig_x = np.sqrt((p * dx ** 2).sum(axis=(1, 2)))
    sig_y = np.sqrt((p * dy ** 2).sum(axis=(1, 2)))
    cov = (p * dx * dy).sum(axis=(1, 2))
    spread = sig_x * sig_y
    # No spread in a marginal (one grey level along this direction): pyradiomics returns 1.
    out["Correlation"] = np.where(spread == 0, 1.0, cov / (spread + EPS))

    diff_avg = (k_diff * p_diff).sum(axis=1)
    out["DifferenceAverage"] = diff_avg
    out["DifferenceEntropy"] = -(p_diff * np.log2(p_diff + EPS)).sum(axis=1)
    out["DifferenceVariance"] = (p_diff * (k_diff[None, :] - diff_avg[:, None]) ** 2).sum(axis=1)
    out["JointEnergy"] = (p ** 2).sum(axis=(1, 2))
    out["JointEntropy"] = hxy

    hx = -(px * np.log2(px + EPS)).sum(axis=1)
    hy = -(py * np.log2(py + EPS)).sum(axis=1)
    pxpy = px[:, :, None] * py[:, None, :]
    hxy1 = -(p * np.log2(pxpy + EPS)).sum(axis=(1, 2))
    hxy2 = -(pxpy * np.log2(pxpy + EPS)).sum(axis=(1, 2))
    div = np.fmax(hx, hy)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Both marginal entropies 0 (flat ROI): pyradiomics' arbitrary 0.
        out["Imc1"] = np.where(div != 0, (hxy - hxy1) / np.where(div != 0, div, 1.0), 0.0)
        # HXY > HXY2 only by rounding: the square root of a negative number is NaN there, as in
        # pyradiomics, and the NaN-skipping mean then leaves that direction out.
        imc2 = np.sqrt(1 - np.exp(-2 * (hxy2 - hxy)))
    out["Imc2"] = np.where(hxy2 == hxy, 0.0, imc2)

    out["Idm"] = (p_diff / (1 + k_diff ** 2)).sum(axis=1)
    out["Idmn"] = (p_diff / (1 + k_diff ** 2 / ng_max ** 2)).sum(axis=1)
    out["Id"] = (p_diff / (1 + k_diff)).sum(axis=1)
    out["Idn"] = (p_diff / (1 + k_diff / ng_max)).sum(axis=1)
    out["InverseVariance"] = (p_diff[:, 1:] / k_diff[1:] ** 2).sum(axis=1)
    out["MaximumProbability"] = p.max(axis=(1, 2))
    out["SumAverage"] = (k_sum * p_sum).sum(axis=1)
    out["SumEntropy"] = -(p_sum * np.log2(p_sum + EPS)).sum(axis=1)
    out["SumSquares"] = (p * dx ** 2).sum(axis=(1, 2))

    values = {name: _nanmean(out[name]) for name in NAMES if name != "MCC"}
    values["MCC"] = (_mcc_sequential(p, px, py) if asymmetrical else _mcc(p, px, py)) if n > 1 else 1.0
    return {name: values[name] for name in NAMES}


def _mcc_sequential(p: np.ndarray, px: np.ndarray, py: np.ndarray) -> float:
    """:func:`_mcc` with Q summed term by term over k in pyradiomics' order and arithmetic
    (``(p_ik p_jk) / (p_x(i) p_y(k) + eps)``). An asymmetrical GLCM makes Q non-symmetric, whose
    eigenvalues can turn from a close real pair into a complex one on a last-bit difference, and
    one complex direction makes every direction's root complex (a negative eigenvalue then adds an
    imaginary root instead of a skipped NaN): only Q's own bits give pyradiomics' number."""
    q_matrix = np.zeros((p.shape[0], p.shape[1], p.shape[1]))
    for k in range(p.shape[2]):
        q_matrix += (p[:, :, None, k] * p[:, None, :, k]) / (px[:, :, None] * py[:, None, k, None] + EPS)
    return _mcc_of(q_matrix)


def _mcc(p: np.ndarray, px: np.ndarray, py: np.ndarray) -> float:
    """Maximal correlation coefficient: sqrt of Q's second largest eigenvalue, mean over directions.

    Q(i, j) = sum_k p(i, k) p(j, k) / (p_x(i) p_y(k) + eps), one matrix product per direction.
    Eigenvalues are taken for all directions in one call and sorted as numpy sorts complex
    numbers (real part first), as pyradiomics does, so the real or complex outcome of that call
    and the square root of a (rounding-)negative eigenvalue behave as in pyradiomics.
    """
    weighted = p / (px[:, :, None] * py[:, None, :] + EPS)
    return _mcc_of(weighted @ p.transpose(0, 2, 1))


def _mcc_of(q_matrix: np.ndarray) -> float:
    eigen = np.linalg.eigvals(q_matrix)
    eigen.sort(axis=-1)
    with np.errstate(invalid="ignore"):
        second = np.sqrt(eigen[:, -2])
    if np.iscomplexobj(second):
        # pyradiomics takes the real part after its NaN-skipping mean of the complex roots.
        finite = ~np.isnan(second)
        return float(second[finite].mean().real) if finite.any() else float("nan")
    return _nanmean(second)
