"""The deep-slice signs of the synthetic cohort: lung patterns the Deep-CT patch sees and the 3D
radiomics of tumour and ring cannot.

Each sign fills a quarter of a wide band of lung around the tumour on the deep-ROI slice only
(the axial slice of largest tumour area, the one ``regions.deep_roi_patch`` takes its 160 x 160
patch from), from 6 to 40 mm beyond the tumour: outside the 3 mm peritumoral ring and the
scanner blur's reach, so no radiomics feature of tumour or ring changes, and inside the patch.
One pattern per endpoint (density and texture), distinct so that a network can tell them apart
(LVI's bright lattice is a coarser, fainter kin of ALK's micronodules: the distinct patterns
tried for LVI, septal lines, a fat-density consolidation and a hyperlucent quarter, were not
learnt; docs/synthetic-cohort.md);
the drivers (mutually exclusive) share the quarter with most lung, LVI, PD-L1 and PIK3CA take
one of the other three each (in a per-case order), so signs that co-occur never overlap. They
are synthetic markers, not imaging biomarkers of those labels; large on purpose
(docs/synthetic-cohort.md says why).

Every random number is drawn in a fixed order whatever the labels, so a case with one label
flipped differs from its twin only where that label's sign is drawn.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

# endpoint -> (pattern, HU, quarter: 0 for the drivers, 1 for the others, who share quarters 1-3
# in a per-case order). The patterns are bold and large on purpose: the Deep-CT,
# trained from random weights on about a hundred patches for a few epochs, learnt none of seven
# small lesions (5-15 mm nodules, a cyst, lines) in a trial of this version, only gross
# properties (tumour size, chest wall in the patch), and of large patterns the uniform or
# coarse ones (haze, hyperlucency, calcified micronodules, consolidation) but not thin septal
# lines, 40 HU micronodules or a -100 HU consolidation (docs/synthetic-cohort.md).
SLICE_SIGNS = {
    "EGFR": ("ground-glass haze", -600.0, 0),
    "KRAS": ("dense haze", -300.0, 0),
    "ALK": ("calcified micronodules", 700.0, 0),
    "ROS1": ("hyperlucent lung", -1000.0, 0),
    "LVI": ("bright nodular lattice", 400.0, 1),
    "PDL1": ("dense consolidation", 300.0, 1),
    "PIK3CA": ("coarse reticulation", -250.0, 1),
}
# The band, in mm beyond the tumour (in-plane): the 3 mm ring plus the blur's 3 pixels (at most
# 2.7 mm) stay clear of its inner edge.
MIN_GAP_MM = 6.0
MAX_GAP_MM = 40.0
QUARTER = math.pi / 4          # half-angle of a sign's sector
# Pixels kept between a sign and the patch's edge (the Deep-CT's +-8 px shifts, +-15 deg turns).
PATCH_MARGIN_PX = 10
# A sign with fewer pixels than this (its quarter holds almost no lung) is left out.
MIN_PIXELS = 200
NODULE_SPACING_MM = 4.0
NODULE_RADIUS_MM = 1.1
LATTICE_SPACING_MM = 6.0       # LVI's coarser, less dense lattice
LATTICE_RADIUS_MM = 1.6
RETICULE_PERIOD_MM = 5.0


@dataclass
class SignDraw:
    """The case's draws for the signs (made for every case, whatever its labels)."""

    direction: float        # first of 8 candidate angles for quarter 0 (radians)
    angle: float            # orientation of the reticulation
    phase: np.ndarray       # (2,) offsets of the nodule lattice (0..1)
    order: np.ndarray       # which of quarters 1-3 each non-driver sign takes (a permutation)


def draw_signs(rng: np.random.Generator) -> SignDraw:
    """The same draws for every case whatever its labels (stream alignment)."""
    return SignDraw(direction=float(rng.uniform(0.0, 2 * math.pi)), angle=float(rng.uniform(0.0, math.pi)),
                    phase=rng.uniform(0.0, 1.0, 2), order=rng.permutation(3))


def _lattice(u: np.ndarray, v: np.ndarray, phase: np.ndarray, spacing: float, radius: float) -> np.ndarray:
    """Dots of ``radius`` on a square lattice of ``spacing`` (mm; offset ``phase``)."""
    a = np.mod(u / spacing + phase[0], 1.0) - 0.5
    b = np.mod(v / spacing + phase[1], 1.0) - 0.5
    return np.hypot(a, b) * spacing <= radius


def _paint(pattern: str, level: float, draw: SignDraw, u: np.ndarray, v: np.ndarray,
           old: np.ndarray) -> np.ndarray:
    """New HU of the sector's pixels at in-plane offsets ``u``, ``v`` (mm) from the tumour."""
    c, s = math.cos(draw.angle), math.sin(draw.angle)
    across = -s * u + c * v
    if pattern in ("ground-glass haze", "dense haze"):
        return np.maximum(old, level)                # vessels show through the haze
    if pattern == "dense consolidation":
        return np.full(old.shape, level)
    if pattern == "hyperlucent lung":
        return np.where(old < -700.0, level, old)    # parenchyma darker, vessels kept
    if pattern == "calcified micronodules":
        return np.where(_lattice(u, v, draw.phase, NODULE_SPACING_MM, NODULE_RADIUS_MM), level, old)
    if pattern == "bright nodular lattice":
        return np.where(_lattice(u, v, draw.phase, LATTICE_SPACING_MM, LATTICE_RADIUS_MM), level, old)
    if pattern == "coarse reticulation":
        stripes = np.sin(2 * math.pi * (across / RETICULE_PERIOD_MM + draw.phase[0])) > 0
        return np.where(stripes, np.maximum(old, level), old)
    raise AssertionError(pattern)  # a generator bug


def sign_region(mask: np.ndarray, lung: np.ndarray, deep_slice: int, spacing) -> tuple:
    """Where signs may go on the deep slice: lung 6-40 mm beyond the tumour, inside the patch.

    :returns: ``(allowed (2D bool), angle (2D, radians from the tumour's centre), u, v (mm))``.
    """
    from scipy import ndimage

    sx, _, sz = spacing
    k = deep_slice
    # The ring is 3 mm in 3D: tumour on slices within 3 mm of this one counts too.
    near = max(0, int(math.floor(3.0 / sz)))
    tumour_near = mask[max(0, k - near):k + near + 1].any(axis=0)
    d_tumour = ndimage.distance_transform_edt(~tumour_near, sampling=sx)
    rows, cols = np.nonzero(mask[k])
    cy, cx = int(np.floor(rows.mean() + 0.5)), int(np.floor(cols.mean() + 0.5))
    jj, ii = np.meshgrid(np.arange(mask.shape[1]), np.arange(mask.shape[2]), indexing="ij")
    half = 80 - PATCH_MARGIN_PX
    allowed = (lung & ~tumour_near & (d_tumour >= MIN_GAP_MM) & (d_tumour <= MAX_GAP_MM)
               & (np.abs(jj - cy) <= half) & (np.abs(ii - cx) <= half))
    return allowed, np.arctan2(jj - cy, ii - cx), (ii - cx) * sx, (jj - cy) * sx


def plant_slice_signs(hu: np.ndarray, mask: np.ndarray, lung: np.ndarray, deep_slice: int,
                      spacing: tuple[float, float, float], shown: dict[str, bool],
                      draw: SignDraw) -> list[str]:
    """Paint the shown signs (in place) on slice ``deep_slice`` of ``hu``; return those painted.

    :param hu: the case's HU volume [k, j, i], tumour painted, before the scanner.
    :param mask: the tumour mask [k, j, i].
    :param lung: lung pixels of the phantom on that slice (2D [j, i]).
    :param deep_slice: the deep-ROI slice index.
    :param spacing: (x, y, z) mm.
    :param shown: endpoint -> whether the case shows its sign (penetrance drawn).
    :param draw: :func:`draw_signs`' draws.
    :returns: the endpoints whose sign was painted (a sign whose quarter holds no lung, e.g.
        a tumour filling the patch, is left out, and the case's ``expressed`` record says so).
    """
    wanted = [e for e in SLICE_SIGNS if shown.get(e)]
    if not wanted:
        return []
    allowed, angle, u, v = sign_region(mask, lung, deep_slice, spacing)
    # Quarter 0 (the drivers') turned to the most lung among 8 turns of the drawn direction: it
    # depends on the geometry only, never on the labels.
    turns = draw.direction + np.arange(8) * math.pi / 4
    room = [int((allowed & (np.cos(angle - t) >= math.cos(QUARTER))).sum()) for t in turns]
    direction = float(turns[int(np.argmax(room))])
    section = hu[deep_slice]
    painted = []
    others = [e for e in SLICE_SIGNS if SLICE_SIGNS[e][2]]
    quarters = {e: 1 + int(q) for e, q in zip(others, draw.order)}
    for e in wanted:
        pattern, level, quarter = SLICE_SIGNS[e]
        centre = direction + (quarters[e] if quarter else 0) * math.pi / 2
        sector = allowed & (np.cos(angle - centre) >= math.cos(QUARTER))
        if sector.sum() < MIN_PIXELS:
            logger.debug("no room for the %s sign", e)
            continue
        section[sector] = _paint(pattern, level, draw, u[sector], v[sector], section[sector])
        painted.append(e)
    return painted
