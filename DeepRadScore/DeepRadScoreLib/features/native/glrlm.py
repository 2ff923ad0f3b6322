"""Grey Level Run Length Matrix features, equal to pyradiomics' ``glrlm`` class.

Definitions follow pyradiomics' documentation for its defaults (3D, ``weightingNorm`` None): a
run is a maximal chain of consecutive ROI voxels with one grey level along one of the 13
directions of the 26-neighbourhood, broken where the line leaves the ROI; one matrix (grey
level present in the ROI x run length) per direction. pyradiomics drops a direction in which no
line through the ROI holds more than one ROI voxel (the ROI is flat for it) and every direction
without runs, keeps only run lengths that occur along some direction, computes each feature per
direction and returns the NaN-skipping mean over directions. All of that is reproduced.

Runs are found without a loop over voxels: a ROI voxel's run continues to its neighbour along
the direction when that neighbour is in the ROI with the same level (its successor), and a run
starts at every voxel that is no voxel's successor; run lengths come from list ranking by
pointer doubling over the successor links (O(n log L) for n ROI voxels and longest run L), and
one ``np.bincount`` per direction builds that direction's (grey level x run length) counts at
once, so that only one direction's per-voxel arrays are alive at a time (indices in int32 where
the ROI allows: the memory peak of a large ROI, not its numbers).
"""
from __future__ import annotations


import numpy as np

from DeepRadScoreLib.features.native.glcm import _nanmean, directions, flat_offsets, roi_levels, weights


NAMES: tuple[str, ...] = (
    "GrayLevelNonUniformity", "GrayLevelNonUniformityNormalized", "GrayLevelVariance",
    "HighGrayLevelRunEmphasis", "LongRunEmphasis", "LongRunHighGrayLevelEmphasis",
    "LongRunLowGrayLevelEmphasis", "LowGrayLevelRunEmphasis", "RunEntropy",
    "RunLengthNonUniformity", "RunLengthNonUniformityNormalized", "RunPercentage", "RunVariance",
    "ShortRunEmphasis", "ShortRunHighGrayLevelEmphasis", "ShortRunLowGrayLevelEmphasis",
)

EPS = np.spacing(1)


def _run_lengths(successor: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Number of voxels from each of ``starts`` to the end of its chain of ``successor`` links.

    ``successor[i]`` is the next voxel of i's run or ``len(successor)`` (none). Pointer
    doubling: after step s every voxel knows the voxel 2^s links ahead and the count up to it.
    """
    n = len(successor)
    succ = np.empty(n + 1, dtype=successor.dtype)
    succ[:n] = successor
    succ[n] = n
    count = np.ones(n + 1, dtype=np.int32)  # a run is at most one image side long
    count[n] = 0
    active = np.flatnonzero(succ[:n] != n)
    while active.size:
        nxt = succ[active]
        count[active] += count[nxt]
        succ[active] = succ[nxt]
        del nxt
        active = active[succ[active] != n]
    return count[starts]


def _has_multi_voxel_line(coords: np.ndarray, direction: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether some line along ``direction`` holds two or more ROI voxels (coords (n, 3))."""
    axis = int(np.flatnonzero(direction)[0])  # direction[axis] == 1 (directions_3d)
    # Project each voxel back to where its line crosses coordinate 0 of ``axis``: one key per line.
    keys = coords - coords[:, axis:axis + 1] * direction[None, :]
    # A component moves by at most the largest extent: shift by it to keep keys non-negative.
    reach = int(max(shape))
    keys += reach
    encoded = np.ravel_multi_index(keys.T, tuple(s + 2 * reach for s in shape))
    return np.unique(encoded).size < len(encoded)


def matrices(q: np.ndarray, mask: np.ndarray, plane: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run counts per direction and the ROI's grey levels.

    Returns ``(P, levels)``: ``P`` of shape (13, Ng, Lmax) over the Ng grey levels present in
    the ROI (``levels``, ascending), ``P[a, i, l - 1]`` the number of runs of level i and length
    l along direction ``a`` (all zero for a direction pyradiomics discards as flat).
    """
    padded_mask, padded_index, levels = roi_levels(q, mask)
    shape = padded_mask.shape
    voxels = np.flatnonzero(padded_mask.ravel())
    n = len(voxels)
    index = np.int32 if n < 2 ** 31 - 1 else np.int64
    own = padded_index.ravel()[voxels].astype(index)
    del padded_index
    own_or_none = np.append(own, index(-1))  # level by voxel number; -1 for "no ROI voxel" (n)
    position = np.full(padded_mask.size, n, dtype=index)  # voxel number among ROI voxels
    position[voxels] = np.arange(n, dtype=index)
    coords = None
    per_direction = []  # (Ng, longest run of the direction) counts
    offsets = directions((1,), plane)
    for offset, direction in zip(flat_offsets(shape, offsets), offsets):
        # The run goes on from v to v + direction when that voxel is in the ROI with v's level.
        ahead = position[voxels + offset]
        successor = np.where(own_or_none[ahead] == own, ahead, index(n))
        del ahead
        # A run starts at every voxel that is nobody's successor.
        has_predecessor = np.zeros(n + 1, dtype=bool)
        has_predecessor[successor] = True
        starts = np.flatnonzero(~has_predecessor[:n])
        del has_predecessor
        lengths = _run_lengths(successor, starts)
        del successor
        if not (lengths > 1).any():
            # Only single-voxel runs: pyradiomics drops the direction when no line holds two
            # ROI voxels (a gap between them still counts them as two runs of length 1).
            if coords is None:
                coords = np.column_stack(np.unravel_index(voxels, shape))
            if not _has_multi_voxel_line(coords, direction, shape):
                starts = starts[:0]
                lengths = lengths[:0]
        longest = int(lengths.max()) if lengths.size else 0
        code = own[starts].astype(np.int64) * longest + lengths - 1
        per_direction.append(np.bincount(code, minlength=len(levels) * longest).reshape(len(levels), longest))
        del starts, lengths, code
    longest = max((counts.shape[1] for counts in per_direction), default=0) or 1
    counts = np.zeros((len(per_direction), len(levels), longest), dtype=np.float64)
    for a, direction_counts in enumerate(per_direction):
        counts[a, :, :direction_counts.shape[1]] = direction_counts
    return counts, levels


def features(q: np.ndarray, mask: np.ndarray, weighting: str | None = None,
             spacing_kji=(1.0, 1.0, 1.0), plane: int | None = None) -> dict[str, float]:
    """pyradiomics' 16 GLRLM features of one ROI (``weighting``: its ``weightingNorm``, the
    directions' matrices summed with weights of their length in mm at ``spacing_kji``).

    Parameters: ``q`` the discretised image (bin indices >= 1 inside the ROI, as pyradiomics'
    ``binImage`` gives them; values outside ``mask`` are ignored), ``mask`` the ROI (bool, same
    3D shape, numpy (z, y, x) order).
    Returns: ``{name: value}`` for every name in :data:`NAMES`.
    """
    counts, levels = matrices(q, mask, plane)
    if weighting is not None:
        w = weights(directions((1,), plane), spacing_kji, weighting, "glrlm")
        counts = np.sum(counts * w[:, None, None], axis=0, keepdims=True)
    n_runs = counts.sum(axis=(1, 2))
    counts = counts[n_runs > 0]
    n_runs = n_runs[n_runs > 0]
    if counts.shape[0] == 0:
        return {name: float("nan") for name in NAMES}
    # Run lengths that occur along no direction are left out (pyradiomics' jvector).
    present = counts.sum(axis=(0, 1)) > 0
    counts = counts[:, :, present]
    i = levels.astype(float)[None, :]  # (1, Ng)
    j = (np.flatnonzero(present) + 1).astype(float)[None, :]  # (1, Nr) run lengths
    pr = counts.sum(axis=1)  # (directions, run lengths)
    pg = counts.sum(axis=2)  # (directions, grey levels)
    nr = n_runs[:, None]
    ii, jj = i[:, :, None], j[:, None, :]

    out = {}
    out["ShortRunEmphasis"] = (pr / j ** 2).sum(axis=1) / n_runs
    out["LongRunEmphasis"] = (pr * j ** 2).sum(axis=1) / n_runs
    out["GrayLevelNonUniformity"] = (pg ** 2).sum(axis=1) / n_runs
    out["GrayLevelNonUniformityNormalized"] = (pg ** 2).sum(axis=1) / n_runs ** 2
    out["RunLengthNonUniformity"] = (pr ** 2).sum(axis=1) / n_runs
    out["RunLengthNonUniformityNormalized"] = (pr ** 2).sum(axis=1) / n_runs ** 2
    out["RunPercentage"] = n_runs / (pr * j).sum(axis=1)
    pg_norm = pg / nr
    mean_level = (pg_norm * i).sum(axis=1, keepdims=True)
    out["GrayLevelVariance"] = (pg_norm * (i - mean_level) ** 2).sum(axis=1)
    pr_norm = pr / nr
    mean_length = (pr_norm * j).sum(axis=1, keepdims=True)
    out["RunVariance"] = (pr_norm * (j - mean_length) ** 2).sum(axis=1)
    p = counts / n_runs[:, None, None]
    out["RunEntropy"] = -(p * np.log2(p + EPS)).sum(axis=(1, 2))
    out["LowGrayLevelRunEmphasis"] = (pg / i ** 2).sum(axis=1) / n_runs
    out["HighGrayLevelRunEmphasis"] = (pg * i ** 2).sum(axis=1) / n_runs
    out["ShortRunLowGrayLevelEmphasis"] = (counts / (ii ** 2 * jj ** 2)).sum(axis=(1, 2)) / n_runs
    out["ShortRunHighGrayLevelEmphasis"] = (counts * ii ** 2 / jj ** 2).sum(axis=(1, 2)) / n_runs
    out["LongRunLowGrayLevelEmphasis"] = (counts * jj ** 2 / ii ** 2).sum(axis=(1, 2)) / n_runs
    out["LongRunHighGrayLevelEmphasis"] = (counts * jj ** 2 * ii ** 2).sum(axis=(1, 2)) / n_runs
    return {name: _nanmean(out[name]) for name in NAMES}
