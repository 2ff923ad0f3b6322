"""A synthetic chest-CT cohort with planted labels: the data of the demo and of the tests.

``synthesise_cohort(out_dir, n_cases, seed)`` writes ``images/*.nii.gz`` (int16 HU),
``masks/*.nii.gz`` (uint8 tumour), ``manifest.csv`` (the engine's manifest format with a 7:3
``split`` from iterative stratification), ``synthetic_truth.csv`` (every planted label and the
per-case parameters, no blanks) and ``SYNTHETIC.json`` (generator, version, seed, the mechanism
table and "synthetic data: not for clinical use").

Each case is a slab of an analytic chest phantom (body outline, fat, muscle, ribs, spine,
mediastinum with heart and aorta, two lungs with a 3D branching vessel tree) around one tumour.
The ten endpoints are planted by the image mechanisms of :data:`MECHANISMS` (see
docs/synthetic-cohort.md); TP53 is deliberately independent of the image, a leakage detector.

Determinism: a case depends only on ``(seed, case index)`` and its labels; the labels and the
split are drawn once per cohort from ``seed``. Every random stream of a case is drawn in a fixed
order whatever the labels, so flipping a label that does not move the tumour (EGFR, KRAS, ALK,
ROS1, LVI, PDL1, TP53) changes only the voxels of its mechanism: the tests use such
counterfactual pairs to prove each signal sits where the docs say.
"""
from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from DeepRadScoreLib import ENDPOINTS, __version__
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.io.manifest import SYNTHETIC_MARKER
from DeepRadScoreLib.outputs import atomic_dir
from DeepRadScoreLib.progress import report

GENERATOR = "DeepRadScore synthetic chest CT"
# Bump when the images, labels or split that a seed gives change: a cached cohort with another
# version is regenerated.
GENERATOR_VERSION = "2"
STATEMENT = "synthetic data: not for clinical use"
MIN_CASES = 10
MAX_VOXELS = 6_000_000

# Target prevalences: the training column of the paper's Table 1 (ALK raised from 4.2 % to 8 %
# so that small cohorts have positives).
PREVALENCE = {"LVI": 0.32, "PI": 0.63, "T4": 0.245, "EGFR": 0.385, "KRAS": 0.10, "ALK": 0.08,
              "TP53": 0.23, "PIK3CA": 0.11, "ROS1": 0.07, "PDL1": 0.50}
# Driver mutations are mutually exclusive in lung adenocarcinoma; the synthetic cohort keeps that.
DRIVERS = ("EGFR", "KRAS", "ALK", "ROS1")
# "Cohort II" (27.2 % of the paper's patients) has no PD-L1 status, as in the paper.
COHORT_II_FRACTION = 0.272
# Unknown molecular results elsewhere, a few per hundred as in real registries.
RANDOM_BLANK = {"EGFR": 0.04, "KRAS": 0.04, "ALK": 0.04, "TP53": 0.05, "PIK3CA": 0.05, "ROS1": 0.05}
TRAIN_FRACTION = 0.7

MECHANISMS = {
    "LVI": {"region": "peritumoral ring", "mechanism":
            "fine radial soft-tissue strands (about -170 HU, 25-35 % of the lung part of the ring) "
            "confined to 0-2.8 mm outside the tumour"},
    "PI": {"region": "tumour shape + peritumoral ring", "mechanism":
           "broad contact with the chest-wall pleura (the tumour is flattened against it and its "
           "ring holds chest wall); negatives keep >= 6 mm of lung around them"},
    "T4": {"region": "tumour size", "mechanism": "longest axis 62-82 mm (negatives 12-48 mm)"},
    "EGFR": {"region": "tumour interior", "mechanism":
             "ground-glass component (-650..-560 HU) making up 35-80 % of the tumour "
             "(15 % of negatives carry a small 4-15 % one)"},
    "KRAS": {"region": "tumour interior", "mechanism":
             "solid part denser (about 66 vs 36 HU) with coarse mottled texture "
             "(2.5 mm grain, 32 HU vs 1 mm grain, 10 HU)"},
    "ALK": {"region": "tumour interior", "mechanism":
            "3-7 punctate calcifications (1.3-2.5 mm radius, 650-1000 HU); 4 % of negatives have one"},
    "TP53": {"region": "none", "mechanism":
             "INDEPENDENT of the image (leakage detector): flipping it leaves every voxel unchanged"},
    "PIK3CA": {"region": "tumour shape", "mechanism":
               "elongated (cigar-shaped) tumour: short axes 0.38-0.55 of the long axis "
               "(negatives 0.72-1.0)"},
    "ROS1": {"region": "deep-ROI slice only", "mechanism":
             "in-plane stripes (period 5 pixels, +-250 HU) inside the tumour on the axial slice "
             "of largest tumour area only (the slice of the deep-ROI patch)"},
    "PDL1": {"region": "peritumoral ring", "mechanism":
             "ground-glass halo (about -540 HU) 2.4-2.8 mm thick around the tumour, lung part only"},
}
INDEPENDENT_ENDPOINTS = ("TP53",)

# Tissue classes of the phantom and their base HU.
AIR, FAT, SOFT, BLOOD, BONE, MARROW, LUNG, MED_FAT = range(8)
TISSUE_NAMES = ("air", "fat", "soft tissue", "blood", "cortical bone", "marrow", "lung",
                "mediastinal fat")
BASE_HU = np.array([-1000.0, -100.0, 45.0, 40.0, 750.0, 230.0, -870.0, -90.0], dtype=np.float32)

SLICE_THICKNESSES = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)
SLICE_WEIGHTS = (0.2, 0.1, 0.1, 0.15, 0.15, 0.1, 0.2)


# --------------------------------------------------------------------------------------------
# Cohort-level labels and split
# --------------------------------------------------------------------------------------------

@dataclass
class CohortLabels:
    """Planted labels of a cohort: ``truth`` has no blanks, ``known`` says which are reported."""

    truth: dict[str, np.ndarray]
    known: dict[str, np.ndarray]
    cohort: np.ndarray
    split: np.ndarray

    def manifest_value(self, endpoint: str, index: int) -> str:
        return str(int(self.truth[endpoint][index])) if self.known[endpoint][index] else ""


def _quota(p: float, n: int) -> int:
    """Positives for prevalence ``p``: exact, and at least one (and one negative) from 4 cases."""
    k = int(round(p * n))
    return min(max(k, 1), n - 1) if n >= 4 else k


def assign_labels(n_cases: int, seed: int) -> CohortLabels:
    """Labels, blanks, cohorts and the train/test split of a cohort of ``n_cases``.

    Prevalences are exact quotas (not coin flips) so a small cohort still has its positives.
    """
    rng = np.random.default_rng([seed, 0x1AB])
    n = n_cases
    truth = {e: np.zeros(n, dtype=np.int8) for e in ENDPOINTS}
    order = rng.permutation(n)
    start = 0
    for e in DRIVERS:
        k = _quota(PREVALENCE[e], n)
        truth[e][order[start:start + k]] = 1
        start += k
    cohort = np.array(["I"] * n, dtype=object)
    cohort[rng.permutation(n)[:int(round(COHORT_II_FRACTION * n))]] = "II"
    for e in ENDPOINTS:
        if e not in DRIVERS and e != "PDL1":
            truth[e][rng.permutation(n)[:_quota(PREVALENCE[e], n)]] = 1
    # PD-L1 is planted in both cohorts (the images carry it) but reported for cohort I only, so
    # its quota is met within each cohort.
    for name in ("I", "II"):
        members = np.flatnonzero(cohort == name)
        truth["PDL1"][rng.permutation(members)[:_quota(PREVALENCE["PDL1"], len(members))]] = 1
    known = {e: np.ones(n, dtype=bool) for e in ENDPOINTS}
    known["PDL1"] = cohort == "I"
    for e in ENDPOINTS:
        blanks = rng.permutation(n)[:int(RANDOM_BLANK.get(e, 0.0) * n)]
        known[e][blanks] = False
    # Stratify on every reported positive and on the cohort (so PD-L1 blanks split 7:3 too).
    columns = [known[e] & (truth[e] == 1) for e in ENDPOINTS] + [cohort == "II"]
    split = stratified_split(np.stack(columns, axis=1), TRAIN_FRACTION, rng)
    return CohortLabels(truth=truth, known=known, cohort=cohort, split=split)


def stratified_split(y: np.ndarray, train_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Iterative stratification (Sechidis, Tsoumakas & Vlahavas, ECML 2011) into train/test.

    ``y`` is (n, labels) boolean. The rarest label with cases left is handled first; each of its
    cases goes to the subset that still wants most of that label (ties: the subset that wants
    most cases, then at random). Cases with no positive label fill the subsets' remaining demand.
    """
    n = len(y)
    fractions = np.array([train_fraction, 1.0 - train_fraction])
    want_cases = fractions * n
    want_label = fractions[:, None] * y.sum(axis=0)[None, :].astype(float)
    subset = np.full(n, -1)
    left = np.ones(n, dtype=bool)
    while left.any():
        counts = y[left].sum(axis=0)
        labelled = counts > 0
        if labelled.any():
            fewest = np.flatnonzero(labelled & (counts == counts[labelled].min()))
            label = int(rng.choice(fewest))
            cases = np.flatnonzero(left & y[:, label])
        else:
            label = None
            cases = np.flatnonzero(left)
        for case in rng.permutation(cases):
            if label is not None:
                best = np.flatnonzero(want_label[:, label] == want_label[:, label].max())
            else:
                best = np.arange(2)
            if len(best) > 1:
                best = best[want_cases[best] == want_cases[best].max()]
            chosen = int(rng.choice(best))
            subset[case] = chosen
            left[case] = False
            want_cases[chosen] -= 1
            want_label[chosen] -= y[case]
    _balance_by_swaps(y, subset, train_fraction, rng)
    return np.where(subset == 0, "train", "test").astype(object)


def _balance_by_swaps(y: np.ndarray, subset: np.ndarray, train_fraction: float,
                      rng: np.random.Generator) -> None:
    """Polish a split in place: swap a train and a test case while that brings every label's
    train count closer to ``train_fraction`` of its positives (sum of squared deviations).

    The greedy pass above cannot always honour ten overlapping labels at once; swaps keep the
    subset sizes. Cases with the same label pattern are interchangeable, so the search runs over
    patterns, which keeps it small for any cohort size.
    """
    # A column of ones makes the train size one more count to match; moving a single case
    # (an empty pattern on the other side) can fix it, swapping keeps it.
    y = np.concatenate([y.astype(int), np.ones((len(y), 1), dtype=int)], axis=1)
    target = train_fraction * y.sum(axis=0)
    empty = np.zeros((1, y.shape[1]), dtype=int)
    for _ in range(10 * len(y)):
        deviation = y[subset == 0].sum(axis=0) - target
        leaving = np.concatenate([empty, np.unique(y[subset == 0], axis=0)])
        joining = np.concatenate([empty, np.unique(y[subset == 1], axis=0)])
        change = joining[None, :, :] - leaving[:, None, :]
        objective = ((deviation + change) ** 2).sum(axis=2)
        a, b = np.unravel_index(np.argmin(objective), objective.shape)
        if objective[a, b] >= (deviation ** 2).sum() - 1e-9:
            return
        if a > 0:
            subset[rng.choice(np.flatnonzero((subset == 0) & (y == leaving[a]).all(axis=1)))] = 1
        if b > 0:
            subset[rng.choice(np.flatnonzero((subset == 1) & (y == joining[b]).all(axis=1)))] = 0


# --------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------

@dataclass
class SyntheticCase:
    """One generated case: arrays are [k, j, i]; spacing/origin in (x, y, z) mm as SimpleITK."""

    hu: np.ndarray
    mask: np.ndarray
    tissue: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    deep_slice: int
    params: dict = field(default_factory=dict)

    def images(self):
        """The CT (int16) and the mask (uint8) as SimpleITK images on the same grid."""
        import SimpleITK as sitk

        out = []
        for array in (self.hu, self.mask):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(self.spacing)
            image.SetOrigin(self.origin)
            out.append(image)
        return tuple(out)


@dataclass
class _Body:
    a: float            # half width (mm)
    b_ant: float        # half depth anterior of the centre
    b_post: float
    fat: float          # subcutaneous fat thickness at the side
    muscle: float
    rib_period: float   # rib + intercostal space along z
    rib_slope: float    # how far ribs descend from back to front (mm)
    rib_phase: float
    heart: tuple[float, float, float, float, float]  # x, y, half axes, rotation
    lung_hu: float
    lung_gradient: float


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _draw_body(rng: np.random.Generator) -> _Body:
    a = rng.uniform(150.0, 175.0)
    half_depth = a * rng.uniform(0.64, 0.74)
    return _Body(a=a, b_ant=half_depth * 1.02, b_post=half_depth * 0.98, fat=rng.uniform(5.0, 20.0),
                 muscle=rng.uniform(7.0, 13.0), rib_period=rng.uniform(26.0, 32.0),
                 rib_slope=rng.uniform(70.0, 100.0), rib_phase=rng.uniform(0.0, 1.0),
                 heart=(rng.uniform(14.0, 24.0), rng.uniform(0.0, 1.0), rng.uniform(44.0, 54.0),
                        rng.uniform(34.0, 42.0), rng.uniform(0.45, 0.75)),
                 lung_hu=rng.normal(-905.0, 10.0), lung_gradient=rng.uniform(25.0, 55.0))


@dataclass
class _Anatomy2D:
    tissue: np.ndarray      # uint8 class per pixel (ribs excluded)
    band: np.ndarray        # bool: the rib band (intercostal space between muscle and pleura)
    band_depth: np.ndarray  # 0..1 across the band
    theta: np.ndarray       # angle from the posterior midline, 0..pi
    cavity: np.ndarray      # bool: inside the pleura (lungs + mediastinum + spine notch)
    lung: np.ndarray


def _anatomy_2d(x: np.ndarray, y: np.ndarray, body: _Body) -> _Anatomy2D:
    """Tissue classes of one axial section at physical x (patient left +) and y (posterior +)."""
    X, Y = np.meshgrid(x.astype(np.float32), y.astype(np.float32))
    b = np.where(Y < 0, body.b_ant, body.b_post).astype(np.float32)
    p = 2.4
    rho = (np.abs(X / body.a) ** p + np.abs(Y / b) ** p) ** (1.0 / p)
    radius = np.hypot(X, Y)
    depth = radius / np.maximum(rho, 1e-6) - radius          # radial depth below the skin (mm)
    side = np.abs(X) / np.maximum(radius, 1e-6)             # 1 at the sides, 0 front/back
    fat = body.fat * (0.55 + 0.6 * side)
    muscle = body.muscle * (1.25 - 0.4 * side)
    band_in = 2.0 + fat + muscle
    wall = band_in + 10.0
    tissue = np.full(X.shape, AIR, dtype=np.uint8)
    inside = rho <= 1.0
    tissue[inside] = SOFT
    tissue[inside & (depth >= 2.0) & (depth < 2.0 + fat)] = FAT
    cavity = inside & (depth >= wall)
    band = inside & (depth >= band_in) & ~cavity
    band_depth = np.clip((depth - band_in) / 10.0, 0.0, 1.0)
    theta = np.arctan2(np.abs(X), Y)                       # 0 at the spine, pi at the sternum
    tissue[cavity] = MED_FAT

    # Cavity landmarks along the midline.
    wall_midline = 2.0 + body.fat * 0.55 + body.muscle * 1.25 + 10.0
    y_post = body.b_post - wall_midline
    y_ant = -(body.b_ant - wall_midline)
    # Spine: vertebral body bulging into the cavity, canal, posterior elements, paraspinal muscle.
    yv = y_post - 4.0
    d_vert = np.hypot(X, Y - yv)
    canal_y = yv + 26.0
    d_canal = np.hypot(X, Y - canal_y)
    paraspinal = ((np.abs(X) - 30.0) / 24.0) ** 2 + ((Y - canal_y - 8.0) / 20.0) ** 2 <= 1.0
    tissue[paraspinal & inside] = SOFT
    tissue[d_vert <= 17.0] = MARROW
    tissue[(d_vert > 15.5) & (d_vert <= 17.0)] = BONE
    lamina = (d_canal > 8.0) & (d_canal <= 12.5) & (Y > canal_y - 4.0)
    spinous = (np.abs(X) < 4.0) & (Y > canal_y) & (Y < canal_y + 34.0)
    tissue[(lamina | spinous) & inside] = BONE
    tissue[d_canal <= 8.0] = SOFT
    spine_zone = (d_vert <= 21.0) | (paraspinal & (Y > yv)) | ((np.abs(X) < 22.0) & (Y > yv))

    # Mediastinum: a central band, the heart (anterior, to the patient's left), the aortas.
    xm = 4.0
    # ``level`` < 0.35: a slab above the heart (great vessels only); else the heart, its size
    # growing with the level.
    hx, level, ha, hb, hrot = body.heart
    heart_scale = 0.0 if level < 0.35 else 0.75 + 0.25 * (level - 0.35) / 0.65
    ha, hb = max(ha * heart_scale, 1e-3), max(hb * heart_scale, 1e-3)
    hy = y_ant + 6.0 + hb * 0.95
    c, s = math.cos(hrot), math.sin(hrot)
    u = ((X - hx) * c + (Y - hy) * s) / ha
    v = (-(X - hx) * s + (Y - hy) * c) / hb
    heart_rho = np.sqrt(u * u + v * v) if heart_scale > 0 else np.full(X.shape, np.inf, np.float32)
    desc_aorta = np.hypot(X - (xm + 18.0), Y - (y_post - 20.0))
    asc_aorta = np.hypot(X - (xm - 10.0), Y - (y_ant + 30.0 if heart_scale == 0 else hy - hb * 0.55))
    oesophagus = np.hypot(X - (xm - 4.0), Y - (y_post - 20.0))
    y_mid = 0.5 * (y_ant + y_post)
    trachea = np.hypot(X - (xm - 3.0), Y - (y_mid + 8.0)) if heart_scale == 0 else np.full(X.shape, np.inf)
    central = ((X - xm) / 30.0) ** 2 + ((Y - y_mid) / (0.5 * (y_post - y_ant) + 12.0)) ** 2 <= 1.0
    mediastinum = cavity & (central | (heart_rho < 1.08) | (desc_aorta < 16.0) | (asc_aorta < 19.0)
                            | (trachea < 12.0))
    tissue[cavity & (heart_rho < 1.0)] = BLOOD
    tissue[cavity & ((desc_aorta < 12.5) | (asc_aorta < 15.5))] = BLOOD
    tissue[cavity & ((oesophagus < 8.0) | (trachea < 10.5))] = SOFT
    tissue[cavity & (trachea < 8.5)] = AIR
    lung = cavity & ~mediastinum & ~spine_zone
    tissue[lung] = LUNG
    # The band between the muscle and the pleura holds intercostal muscle (ribs added per slice).
    tissue[band & ~spine_zone] = SOFT
    sternum = (((X / 14.0) ** 2 + ((Y - (y_ant - 6.0)) / 6.0) ** 2) <= 1.0) & inside
    tissue[sternum] = MARROW
    tissue[sternum & ((((X / 14.0) ** 2 + ((Y - (y_ant - 6.0)) / 6.0) ** 2) > 0.6))] = BONE
    return _Anatomy2D(tissue=tissue, band=band & ~spine_zone & ~sternum, band_depth=band_depth,
                      theta=theta, cavity=cavity, lung=lung)


def _add_ribs(tissue3d: np.ndarray, hu3d: np.ndarray, anat: _Anatomy2D, z: np.ndarray, body: _Body) -> None:
    """Ribs: helical bands through the rib band, so each slice cuts them into bright arcs.

    A rib occupies the inner 80 % of the band where ``frac((z + h(theta)) / period) < 0.42``;
    ``h`` makes ribs descend from the spine to the front, as real ribs do. Arcs have a cortical
    rim and marrow inside; the front 15 % (costal cartilage) has none.
    """
    jj, ii = np.nonzero(anat.band & (anat.theta < 0.85 * math.pi))
    theta = anat.theta[jj, ii]
    depth = anat.band_depth[jj, ii]
    h = body.rib_slope * (1.0 - np.cos(theta)) / 2.0
    in_rib_depth = (depth > 0.1) & (depth < 0.9)
    rim_depth = (depth < 0.22) | (depth > 0.78)
    for k, zk in enumerate(z):
        phase = np.mod((zk + h) / body.rib_period + body.rib_phase, 1.0)
        rib = in_rib_depth & (phase < 0.42)
        rim = rib & (rim_depth | (phase < 0.06) | (phase > 0.36))
        tissue3d[k, jj[rib], ii[rib]] = MARROW
        tissue3d[k, jj[rim], ii[rim]] = BONE
        hu3d[k, jj[rib], ii[rib]] = BASE_HU[MARROW]
        hu3d[k, jj[rim], ii[rim]] = BASE_HU[BONE]


def _vessel_segments(rng: np.random.Generator, lung_lookup, p: np.ndarray, d: np.ndarray,
                     r: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """Pulmonary vessel trees grown from start points ``p`` (directions ``d``, radii ``r``):
    asymmetric binary branching, radii shrinking by 0.70-0.86 per generation (close to Murray's
    law), branches bending away from their tree's ``origins``; a branch that would leave the lung
    is shortened once, then dropped; growth stops at 0.35 mm. Returns rows (p0, p1, radius)."""
    root = np.arange(len(r))
    segments = []
    while len(r):
        length = 5.0 + 7.0 * r
        q = p + length[:, None] * d
        inside = lung_lookup(q)
        half = p + 0.5 * length[:, None] * d
        q = np.where(inside[:, None], q, half)
        keep = inside | lung_lookup(half) | (r > 3.0)
        p, d, r, root, q = p[keep], d[keep], r[keep], root[keep], q[keep]
        segments.append(np.concatenate([p, q, r[:, None]], axis=1))
        m = len(r)
        if m == 0:
            break
        axis = np.cross(d, rng.standard_normal((m, 3)))
        axis /= np.linalg.norm(axis, axis=1, keepdims=True) + 1e-9
        angles = rng.uniform(0.3, 0.7, size=(2, m))
        shrink = np.stack([rng.uniform(0.78, 0.86, m), rng.uniform(0.70, 0.80, m)])
        outward = q - origins[root]
        outward /= np.linalg.norm(outward, axis=1, keepdims=True) + 1e-9
        children = []
        for c, sign in enumerate((1.0, -1.0)):
            dc = np.cos(angles[c])[:, None] * d + sign * np.sin(angles[c])[:, None] * axis
            dc = dc + 0.25 * outward
            dc /= np.linalg.norm(dc, axis=1, keepdims=True)
            children.append(dc)
        p = np.concatenate([q, q])
        d = np.concatenate(children)
        r = np.concatenate([r * shrink[0], r * shrink[1]])
        root = np.concatenate([root, root])
        alive = r >= 0.35
        p, d, r, root = p[alive], d[alive], r[alive], root[alive]
    return np.concatenate(segments) if segments else np.zeros((0, 7))


def _render_vessels(segments: np.ndarray, shape, origin, spacing) -> np.ndarray:
    """Vessel volume fraction (0..1) on the grid: each segment sampled every half voxel and
    stamped with a ball of its radius; vessels thinner than a voxel get their partial volume."""
    sx, sy, sz = spacing
    o = np.array(origin)
    z_lo, z_hi = o[2] - 6.0, o[2] + (shape[0] - 1) * sz + 6.0
    seg = segments[(np.maximum(segments[:, 2], segments[:, 5]) >= z_lo)
                   & (np.minimum(segments[:, 2], segments[:, 5]) <= z_hi)]
    vf = np.zeros(int(np.prod(shape)), dtype=np.float32)
    if not len(seg):
        return vf.reshape(shape)
    step = 0.6 * min(sx, sz)
    length = np.linalg.norm(seg[:, 3:6] - seg[:, 0:3], axis=1)
    n_pts = np.maximum(np.ceil(length / step).astype(int), 1) + 1
    owner = np.repeat(np.arange(len(seg)), n_pts)
    first = np.cumsum(n_pts) - n_pts
    t = (np.arange(owner.size) - first[owner]) / (n_pts[owner] - 1)
    pts = seg[owner, 0:3] + t[:, None] * (seg[owner, 3:6] - seg[owner, 0:3])
    radius = seg[owner, 6]
    idx = np.rint((pts - o) / np.array(spacing)).astype(int)   # (i, j, k)
    bins = np.array([0.5, 1.0, 1.5, 2.0, 2.75, 3.5, 4.5, 6.0])
    which = np.searchsorted(bins, radius)
    for b in np.unique(which):
        sel = which == b
        rb = bins[min(b, len(bins) - 1)]
        n = int(math.ceil(rb / min(sx, sz)))
        di, dj, dk = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), np.arange(-n, n + 1),
                                 indexing="ij")
        ball = ((di * sx) ** 2 + (dj * sy) ** 2 + (dk * sz) ** 2) <= rb * rb
        offsets = np.stack([di[ball], dj[ball], dk[ball]], axis=1)
        cells = (idx[sel][:, None, :] + offsets[None, :, :]).reshape(-1, 3)
        ok = ((cells >= 0) & (cells < np.array(shape[::-1]))).all(axis=1)
        flat = (cells[ok, 2] * shape[1] + cells[ok, 1]) * shape[2] + cells[ok, 0]
        if rb <= 0.5:
            r = radius[sel]
            weight = np.minimum(1.0, 2.0 * r / sx) * np.minimum(1.0, np.maximum(2.0 * r, sx) / sz)
            np.maximum.at(vf, flat, np.repeat(weight, len(offsets)).astype(np.float32)[ok])
        else:
            vf[flat] = 1.0
    return vf.reshape(shape)


def _smooth_noise(rng: np.random.Generator, shape, sigma_vox) -> np.ndarray:
    """Unit-variance Gaussian noise correlated over ``sigma_vox`` voxels (per axis)."""
    from scipy import ndimage

    white = rng.standard_normal(shape, dtype=np.float32)
    smooth = ndimage.gaussian_filter(white, sigma_vox, mode="reflect", truncate=3.0)
    sd = float(smooth.ravel()[::7].std())
    return smooth / sd if sd > 0 else smooth


def _place_tumour(body: _Body, semi: np.ndarray, lobe_amp: float, pleural: bool,
                  rng: np.random.Generator):
    """A rotation and an in-plane centre for the tumour, on a 1 mm map of the section.

    Pleural invasion: the centre lies 0.45-0.8 of the tumour's smallest in-plane radius from the
    chest wall (so the tumour is pressed against it) and clear of the mediastinum. Otherwise at
    least 7 mm of lung is kept around the tumour's largest in-plane radius. The phantom is the
    same on every slice, so this holds in 3D. A tumour that fits nowhere (a large one in a small
    chest) gets a 6 % larger patient and another try.
    """
    from scipy import ndimage

    for _ in range(6):
        grid_x = np.arange(-body.a - 2.0, body.a + 2.0, 1.0)
        grid_y = np.arange(-body.b_ant - 2.0, body.b_post + 2.0, 1.0)
        anat = _anatomy_2d(grid_x, grid_y, body)
        d_lung = ndimage.distance_transform_edt(anat.lung)
        d_wall = ndimage.distance_transform_edt(anat.cavity)
        d_med = ndimage.distance_transform_edt(~(anat.cavity & ~anat.lung))
        for _ in range(30):
            rot = _rotation(rng)
            m = rot @ np.diag(semi)
            eig = np.linalg.eigvalsh((m @ m.T)[:2, :2])
            r_max = math.sqrt(eig[-1]) * (1.0 + lobe_amp)
            r_min = math.sqrt(eig[0]) * (1.0 - lobe_amp)
            contact = float(rng.uniform(0.45, 0.8))
            pick = rng.random()
            if pleural:
                ok = (anat.lung & (np.abs(d_wall - contact * r_min) <= 0.5) & (d_med >= r_max + 8.0))
            else:
                ok = anat.lung & (d_lung >= r_max + 7.0)
            candidates = np.argwhere(ok)
            if len(candidates):
                jy, ix = candidates[int(pick * len(candidates))]
                return body, rot, float(grid_x[ix]), float(grid_y[jy]), grid_x, grid_y, anat
        body = replace(body, a=body.a * 1.06, b_ant=body.b_ant * 1.06, b_post=body.b_post * 1.06)
    raise RuntimeError("no room for the tumour in the lung")  # a generator bug, never user input


def generate_case(seed: int, index: int, labels: dict[str, int]) -> SyntheticCase:
    """Generate case ``index`` of cohort ``seed`` with the given planted ``labels`` (0/1 each)."""
    from scipy import ndimage

    from DeepRadScoreLib.regions import deep_roi_patch

    lab = {e: int(labels.get(e, 0)) for e in ENDPOINTS}
    # One stream per component, each drawn in a fixed order whatever the labels; textures have
    # their own streams so that skipping one (label off) cannot shift any other draw.
    streams = np.random.SeedSequence([seed, index]).spawn(12)
    (acq_rng, anat_rng, shape_rng, place_rng, inner_rng, ring_rng, vessel_rng, noise_rng,
     fine_rng, coarse_rng, ggo_rng, halo_rng) = (np.random.default_rng(s) for s in streams)

    # --- acquisition ------------------------------------------------------------------------
    sx = round(float(acq_rng.uniform(0.6, 0.9)), 4)
    sz = float(acq_rng.choice(SLICE_THICKNESSES, p=SLICE_WEIGHTS))
    noise_sd = float(acq_rng.uniform(14.0, 26.0) * (2.5 / sz) ** 0.35)
    noise_grain = float(acq_rng.uniform(0.7, 1.2))
    psf = float(acq_rng.uniform(0.45, 0.7))
    z_margin = float(acq_rng.uniform(8.0, 20.0))
    z_offset = float(acq_rng.uniform(0.0, 1.0))
    table_z = float(acq_rng.uniform(-320.0, -120.0))
    at_edge = bool(acq_rng.random() < 0.1)
    edge_margin = float(acq_rng.uniform(-1.5, 5.0))

    body = _draw_body(anat_rng)

    # --- tumour shape (local frame, mm) -----------------------------------------------------
    big = float(shape_rng.uniform(62.0, 82.0))
    small = float(math.exp(shape_rng.uniform(math.log(12.0), math.log(48.0))))
    long_axis = big if lab["T4"] else small
    thin = shape_rng.uniform(0.38, 0.55, 2)
    round_ = shape_rng.uniform(0.72, 1.0, 2)
    semi = 0.5 * long_axis * np.concatenate([[1.0], thin if lab["PIK3CA"] else round_])
    lobe_amp = float(shape_rng.uniform(0.03, 0.12))
    lobe_w = shape_rng.dirichlet(np.ones(6)) * lobe_amp
    lobe_freq = shape_rng.uniform(2.0, 5.0, 6)
    lobe_dir = shape_rng.standard_normal((6, 3))
    lobe_dir /= np.linalg.norm(lobe_dir, axis=1, keepdims=True)
    lobe_phase = shape_rng.uniform(0, 2 * math.pi, 6)
    spiculated = bool(shape_rng.random() < 0.25)
    spicule_dirs = shape_rng.standard_normal((12, 3))
    spicule_dirs /= np.linalg.norm(spicule_dirs, axis=1, keepdims=True)
    n_spicules = int(shape_rng.integers(4, 11))
    spicule_len = shape_rng.uniform(5.0, 15.0, 12)
    spicule_width = shape_rng.uniform(0.9, 1.8, 12)
    cavitated = bool(shape_rng.random() < 0.1) and long_axis >= 20.0
    cavity_centre = shape_rng.uniform(-0.25, 0.25, 3)
    cavity_radius = float(shape_rng.uniform(0.3, 0.5))
    lobe_bound = 1.0 + lobe_amp

    # --- placement: a side, a centre in the lung, a rotation --------------------------------
    body, rot, cx, cy, grid_x, grid_y, anat_mm = _place_tumour(body, semi, lobe_amp, bool(lab["PI"]), place_rng)
    half_extent = np.sqrt(((rot @ np.diag(semi)) ** 2).sum(axis=1)) * lobe_bound  # x, y, z

    # --- grid ---------------------------------------------------------------------------------
    n_slices = int(math.ceil((2 * half_extent[2] + 2 * z_margin) / sz)) + 1
    n_slices = min(max(n_slices, 30), 100)
    matrix = min(384, int(math.sqrt(MAX_VOXELS / n_slices)) // 16 * 16)
    fov = matrix * sx
    span = (n_slices - 1) * sz
    slack = span - 2 * (half_extent[2] + 6.0)
    cz = table_z + (half_extent[2] + 6.0 + max(slack, 0.0) * z_offset if slack > 0 else span / 2)
    centre = []
    for axis, (c, lo_body, hi_body) in enumerate(((cx, -body.a, body.a), (cy, -body.b_ant, body.b_post))):
        margin = 15.0
        lo = c + half_extent[axis] + margin - fov / 2     # FOV centre must be >= lo
        hi = c - half_extent[axis] - margin + fov / 2     # ... and <= hi
        f = min(max(0.5 * (lo_body + hi_body), lo), hi) if lo <= hi else c
        if at_edge and axis == 0:
            # Put the FOV edge just beyond the tumour on its lateral side (targeted reconstruction).
            out = c + math.copysign(half_extent[0] + edge_margin, c)
            f = out - math.copysign(fov / 2, c)
        centre.append(f)
    origin = (round(centre[0] - (matrix - 1) * sx / 2, 3), round(centre[1] - (matrix - 1) * sx / 2, 3),
              round(table_z, 3))
    shape = (n_slices, matrix, matrix)
    xs = origin[0] + sx * np.arange(matrix)
    ys = origin[1] + sx * np.arange(matrix)
    zs = origin[2] + sz * np.arange(n_slices)

    # --- anatomy on the grid --------------------------------------------------------------------
    # The phantom is extruded along z except the ribs, so most of the work is done in 2D.
    anat = _anatomy_2d(xs, ys, body)
    lung2d = anat.lung
    lf = [ndimage.zoom(anat_rng.standard_normal((12, 12)).astype(np.float32), matrix / 12.0, order=1)
          for _ in range(2)]
    hu2d = BASE_HU[anat.tissue]
    hu2d[anat.tissue == FAT] += 8.0 * lf[0][anat.tissue == FAT]
    # Lung: denser towards the back (gravity) and slowly varying in 3D.
    lung_level = body.lung_hu + body.lung_gradient * np.clip((ys + body.b_ant) / (body.b_ant + body.b_post), 0, 1)
    hu2d = np.where(lung2d, lung_level[:, None].astype(np.float32), hu2d)
    tissue = np.broadcast_to(anat.tissue, shape).copy()
    hu = np.broadcast_to(hu2d, shape).copy()
    _add_ribs(tissue, hu, anat, zs, body)
    zw = 2 * math.pi * zs / anat_rng.uniform(60.0, 120.0)
    hu[:, lung2d] += 10.0 * (np.cos(zw)[:, None] * lf[0][lung2d][None] + np.sin(zw)[:, None] * lf[1][lung2d][None])

    # Vessels: trees from both hila, rendered on the grid, blood (40 HU) in the lung.
    def lung_lookup(points: np.ndarray) -> np.ndarray:
        ix = np.rint(points[:, 0] - grid_x[0]).astype(int)
        jy = np.rint(points[:, 1] - grid_y[0]).astype(int)
        ok = (ix >= 0) & (ix < len(grid_x)) & (jy >= 0) & (jy < len(grid_y))
        ok &= np.abs(points[:, 2] - cz) < 170.0
        out = np.zeros(len(points), dtype=bool)
        out[ok] = anat_mm.lung[jy[ok], ix[ok]]
        return out

    # Big trees from both hila (8 trunks each, spread over all directions) plus small twigs
    # seeded through the slab's lung (about one per 8 cm^3), growing away from the hilum.
    hilum_y = -body.b_ant + (body.b_ant + body.b_post) * 0.5
    hilum_z = cz + vessel_rng.uniform(-40.0, 40.0)
    starts, dirs, radii, origins = [], [], [], []
    for side in (-1.0, 1.0):
        hilum = np.array([side * (34.0 + vessel_rng.uniform(0, 8)), hilum_y + vessel_rng.uniform(-15, 10),
                          hilum_z + vessel_rng.uniform(-15, 15)])
        trunk = vessel_rng.standard_normal((8, 3)) * np.array([0.5, 1.0, 1.0]) + np.array([side, 0, 0])
        starts += [hilum] * 8
        dirs += list(trunk / np.linalg.norm(trunk, axis=1, keepdims=True))
        radii += list(vessel_rng.uniform(3.0, 4.5, 8))
        origins += [hilum] * 8
    lung_px = np.argwhere(anat_mm.lung)
    n_twigs = int(len(lung_px) * (zs[-1] - zs[0] + 20.0) / 8000.0)
    seeds = lung_px[vessel_rng.integers(0, len(lung_px), n_twigs)]
    twig_p = np.stack([grid_x[seeds[:, 1]], grid_y[seeds[:, 0]],
                       vessel_rng.uniform(zs[0] - 10.0, zs[-1] + 10.0, n_twigs)], axis=1)
    twig_origin = np.stack([np.where(twig_p[:, 0] < 0, -38.0, 38.0), np.full(n_twigs, hilum_y),
                            np.full(n_twigs, hilum_z)], axis=1)
    twig_d = twig_p - twig_origin + vessel_rng.normal(0, 15.0, (n_twigs, 3))
    twig_d /= np.linalg.norm(twig_d, axis=1, keepdims=True)
    segments = _vessel_segments(
        vessel_rng, lung_lookup,
        np.concatenate([np.array(starts), twig_p]), np.concatenate([np.array(dirs), twig_d]),
        np.concatenate([radii, vessel_rng.uniform(0.45, 1.1, n_twigs)]),
        np.concatenate([np.array(origins), twig_origin]))
    vf = _render_vessels(segments, shape, origin, (sx, sx, sz))
    lung_hu = hu[:, lung2d]
    hu[:, lung2d] = lung_hu + vf[:, lung2d] * (40.0 - lung_hu)

    # --- tumour ---------------------------------------------------------------------------------
    pad = 17.0 if spiculated else 5.0
    lo_idx = [int(math.floor((c - h - pad - o) / sp)) for c, h, o, sp in
              zip((cx, cy, cz), half_extent, origin, (sx, sx, sz))]
    hi_idx = [int(math.ceil((c + h + pad - o) / sp)) + 1 for c, h, o, sp in
              zip((cx, cy, cz), half_extent, origin, (sx, sx, sz))]
    size_ijk = (matrix, matrix, n_slices)
    lo_idx = [max(v, 0) for v in lo_idx]
    hi_idx = [min(v, n) for v, n in zip(hi_idx, size_ijk)]
    box = (slice(lo_idx[2], hi_idx[2]), slice(lo_idx[1], hi_idx[1]), slice(lo_idx[0], hi_idx[0]))
    bz = (zs[box[0]] - cz).astype(np.float32)[:, None, None]
    by = (ys[box[1]] - cy).astype(np.float32)[None, :, None]
    bx = (xs[box[2]] - cx).astype(np.float32)[None, None, :]
    # Local (tumour-frame) coordinates scaled by the semi-axes.
    loc = [rot[0, a] * bx + rot[1, a] * by + rot[2, a] * bz for a in range(3)]
    scaled = [loc[a] / semi[a] for a in range(3)]
    rho = np.sqrt(scaled[0] ** 2 + scaled[1] ** 2 + scaled[2] ** 2)
    unit = [s / np.maximum(rho, 1e-6) for s in scaled]
    lobes = np.ones_like(rho)
    for w, f, dvec, ph in zip(lobe_w, lobe_freq, lobe_dir, lobe_phase):
        lobes += w * np.cos(f * (dvec[0] * unit[0] + dvec[1] * unit[1] + dvec[2] * unit[2]) * math.pi + ph)
    box_tissue = tissue[box]
    box_lung = box_tissue == LUNG
    tumour = (rho < lobes) & box_lung
    if not tumour.any():
        raise RuntimeError(f"case {index}: empty tumour")  # a generator bug, never user input
    mask = np.zeros(shape, dtype=np.uint8)
    mask[box] = tumour
    deep_slice = deep_roi_patch(*_mask_images(mask, origin, (sx, sx, sz))).slice_index

    d_out = ndimage.distance_transform_edt(~tumour, sampling=(sz, sx, sx)).astype(np.float32)
    radial = rho / np.maximum(lobes, 1e-6)   # 0 at the centre, 1 at the surface
    box_hu = hu[box].copy()

    # Interior: solid part, ground glass, cavity, calcifications, ROS1 stripes.
    solid_kras = float(inner_rng.normal(66.0, 6.0))
    solid_other = float(inner_rng.normal(36.0, 6.0))
    solid_mean = solid_kras if lab["KRAS"] else solid_other
    if lab["KRAS"]:
        solid = solid_mean + 32.0 * _smooth_noise(coarse_rng, tumour.shape, (2.5 / sz, 2.5 / sx, 2.5 / sx))
    else:
        solid = solid_mean + 10.0 * _smooth_noise(fine_rng, tumour.shape, (1.0 / sz, 1.0 / sx, 1.0 / sx))
    ggo_egfr = float(inner_rng.uniform(0.35, 0.8))
    ggo_small = float(inner_rng.uniform(0.04, 0.15))
    ggo_in_negative = inner_rng.random() < 0.15
    ggo_fraction = ggo_egfr if lab["EGFR"] else (ggo_small if ggo_in_negative else 0.0)
    ggo_mean = float(inner_rng.uniform(-650.0, -560.0))
    ggo_bias = inner_rng.standard_normal(3)
    ggo_bias /= np.linalg.norm(ggo_bias)
    interior = solid
    ggo = np.zeros_like(tumour)
    if ggo_fraction > 0:
        # GGO takes the outer, eccentric part: where radius + a directional bias is largest.
        ggo_grain = _smooth_noise(ggo_rng, tumour.shape, (1.5 / sz, 1.5 / sx, 1.5 / sx))
        score = radial + 0.45 * (ggo_bias[0] * unit[0] + ggo_bias[1] * unit[1] + ggo_bias[2] * unit[2]) \
            + 0.1 * ggo_grain
        ggo = tumour & (score > np.quantile(score[tumour], 1.0 - ggo_fraction))
        interior = np.where(ggo, np.maximum(box_hu, ggo_mean + 40.0 * ggo_grain), solid)
    if cavitated:
        cav = sum(((loc[a] / semi[a] - cavity_centre[a]) / cavity_radius) ** 2 for a in range(3)) < 1.0
        interior = np.where(cav & ~ggo, -990.0, interior)
    calc_n = int(inner_rng.integers(3, 8))
    calc_where = inner_rng.uniform(-0.55, 0.55, (7, 3))
    calc_radius = inner_rng.uniform(1.3, 2.5, 7)
    calc_hu = inner_rng.uniform(650.0, 1000.0, 7)
    calc_in_negative = inner_rng.random() < 0.04
    n_calc = calc_n if lab["ALK"] else (1 if calc_in_negative else 0)
    for c in range(n_calc):
        d2 = sum((loc[a] - calc_where[c, a] * semi[a]) ** 2 for a in range(3))
        interior = np.where(d2 <= calc_radius[c] ** 2, calc_hu[c], interior)
    stripe_angle = float(inner_rng.uniform(0.0, math.pi))
    if lab["ROS1"]:
        k_local = deep_slice - lo_idx[2]
        jj, ii = np.meshgrid(np.arange(tumour.shape[1]), np.arange(tumour.shape[2]), indexing="ij")
        wave = np.sign(np.sin(2 * math.pi * (ii * math.cos(stripe_angle) + jj * math.sin(stripe_angle)) / 5.0))
        interior[k_local] = interior[k_local] + 250.0 * wave * tumour[k_local]
    box_hu = np.where(tumour, interior, box_hu)

    # Ring (lung part only, <= 2.8 mm, so it stays inside the 3 mm ring): PD-L1 halo, LVI strands.
    ring_lung = (d_out > 0) & (d_out <= 2.8) & box_lung
    halo_thickness = float(ring_rng.uniform(2.4, 2.8))
    halo_level = float(ring_rng.normal(-540.0, 25.0))
    coverage = float(ring_rng.uniform(0.25, 0.35))
    waves = ring_rng.standard_normal((24, 3))
    waves /= np.linalg.norm(waves, axis=1, keepdims=True)
    wave_phase = ring_rng.uniform(0, 2 * math.pi, 24)
    strand_level = float(ring_rng.normal(-170.0, 25.0))
    if lab["PDL1"]:
        halo = ring_lung & (d_out <= halo_thickness)
        grain = _smooth_noise(halo_rng, tumour.shape, (1.0 / sz, 1.0 / sx, 1.0 / sx))
        box_hu = np.where(halo, np.maximum(box_hu, halo_level + 35.0 * grain), box_hu)
    if lab["LVI"] and ring_lung.any():
        # A random field of the direction from the centre, thresholded: radial rods about 1 mm
        # across at the tumour surface, evaluated on the ring voxels only.
        rk, rj, ri = np.nonzero(ring_lung)
        px, py, pz = bx[0, 0, ri], by[0, rj, 0], bz[rk, 0, 0]
        dist = np.sqrt(px ** 2 + py ** 2 + pz ** 2) + 1e-6
        kappa = 2 * math.pi * float(np.mean(semi)) / 2.5
        field_ = sum(np.cos(kappa * (w[0] * px + w[1] * py + w[2] * pz) / dist + ph)
                     for w, ph in zip(waves, wave_phase))
        rods = field_ > np.quantile(field_, 1.0 - coverage)
        sel = (rk[rods], rj[rods], ri[rods])
        box_hu[sel] = np.maximum(box_hu[sel], strand_level)

    # Random spicules (any label): a few long thick strands reaching 5-15 mm into the lung.
    if spiculated:
        sk, sj, si = np.nonzero((d_out > 0) & (d_out <= spicule_len.max()) & box_lung)
        px, py, pz = bx[0, 0, si], by[0, sj, 0], bz[sk, 0, 0]
        dist2 = px ** 2 + py ** 2 + pz ** 2
        dpt = d_out[sk, sj, si]
        hit = np.zeros(len(sk), dtype=bool)
        for sdir, slen, swid in zip(spicule_dirs[:n_spicules], spicule_len, spicule_width):
            along = sdir[0] * px + sdir[1] * py + sdir[2] * pz
            perp = np.sqrt(np.maximum(dist2 - along ** 2, 0.0))
            width = swid * np.clip(1.0 - dpt / slen, 0.0, 1.0)
            hit |= (along > 0) & (perp < width / 2 + 0.2) & (dpt <= slen)
        sel = (sk[hit], sj[hit], si[hit])
        box_hu[sel] = np.maximum(box_hu[sel], -90.0)
    hu[box] = box_hu

    # --- scanner: point-spread blur in-plane, correlated noise, int16 ------------------------
    hu = ndimage.gaussian_filter(hu, (0.0, psf, psf), truncate=3.0)
    noise = _smooth_noise(noise_rng, shape, (0.0, noise_grain, noise_grain))
    hu = np.clip(np.rint(hu + noise_sd * noise), -1024, 3071).astype(np.int16)

    tumour_vox = int(tumour.sum())
    params = {
        "spacing_mm": [sx, sx, sz], "shape_kji": list(shape), "noise_sd_hu": round(noise_sd, 2),
        "long_axis_mm": round(long_axis, 2), "axis_ratios": [round(float(v), 3) for v in semi / semi[0]],
        "ggo_fraction": round(float(ggo.sum()) / tumour_vox, 3), "solid_hu": round(solid_mean, 1),
        "calcifications": n_calc, "cavitated": cavitated, "spiculated": spiculated,
        "pleural_contact": bool(lab["PI"]), "fov_edge_case": at_edge, "deep_slice": deep_slice,
        "side": "left" if cx > 0 else "right",
    }
    return SyntheticCase(hu=hu, mask=mask, tissue=tissue, spacing=(sx, sx, sz), origin=origin,
                         deep_slice=deep_slice, params=params)


def _mask_images(mask: np.ndarray, origin, spacing):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    # deep_roi_patch only needs the mask to choose the slice; the mask stands in for the CT.
    return image, image


# --------------------------------------------------------------------------------------------
# Cohort
# --------------------------------------------------------------------------------------------

def _case_id(index: int) -> str:
    return f"synth-{index:04d}"


def _write_case(job: tuple) -> dict:
    """Worker: generate one case and write its two NIfTI files into ``folder``."""
    import SimpleITK as sitk

    seed, index, labels, folder = job
    case = generate_case(seed, index, labels)
    image, mask = case.images()
    cid = _case_id(index)
    sitk.WriteImage(image, str(Path(folder) / "images" / f"{cid}.nii.gz"), True, 1)
    sitk.WriteImage(mask, str(Path(folder) / "masks" / f"{cid}.nii.gz"), True, 1)
    return {"case_id": cid, **case.params}


def _reusable(out_dir: Path, n_cases: int, seed: int) -> bool:
    info_path = out_dir / SYNTHETIC_MARKER
    manifest = out_dir / "manifest.csv"
    if not (info_path.is_file() and manifest.is_file()):
        return False
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return False
    if (info.get("generator"), info.get("version"), info.get("seed"), info.get("n_cases")) != \
            (GENERATOR, GENERATOR_VERSION, seed, n_cases):
        return False
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return len(rows) == n_cases and all((out_dir / r["image"]).is_file() and (out_dir / r["mask"]).is_file()
                                        for r in rows)


def synthesise_cohort(out_dir, n_cases: int, seed: int = 0, progress=None, cancel=None,
                      workers: int | None = None) -> Path:
    """Write a synthetic cohort of ``n_cases`` into ``out_dir``; return the manifest's path.

    A folder already holding this very cohort (same generator version, seed and size, all files
    present) is reused as it is. A non-empty folder that is not a synthetic cohort is refused
    rather than overwritten. ``workers`` processes (default: up to 2) generate the cases; the
    result is the same for any number of workers.
    """
    out_dir = Path(out_dir)
    if n_cases < MIN_CASES:
        raise InputError(f"--cases: a cohort needs at least {MIN_CASES} cases for a 7:3 split, got {n_cases}")
    if seed < 0:
        raise InputError(f"--seed: must be 0 or more, got {seed}")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    if _reusable(out_dir, n_cases, seed):
        report(progress, 1.0, f"reusing the synthetic cohort in {out_dir}", cancel)
        return out_dir / "manifest.csv"
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / SYNTHETIC_MARKER).exists():
        raise InputError(f"{out_dir}: folder is not empty and holds no synthetic cohort; "
                         "give a new or empty folder")
    labels = assign_labels(n_cases, seed)
    workers = max(1, min(workers or min(2, os.cpu_count() or 1), n_cases))
    report(progress, 0.0, f"synthesising {n_cases} chest CTs", cancel)
    with atomic_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        jobs = [(seed, i, {e: int(labels.truth[e][i]) for e in ENDPOINTS}, str(tmp))
                for i in range(n_cases)]
        summaries = []

        def collect(results):
            for summary in results:
                summaries.append(summary)
                report(progress, len(summaries) / n_cases,
                       f"synthesised {len(summaries)}/{n_cases} cases", cancel)

        if workers == 1:
            collect(map(_write_case, jobs))
        else:
            # spawn: safe whatever threads (torch, Qt) the calling process already runs.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                collect(pool.imap(_write_case, jobs))
        _write_tables(tmp, labels, summaries)
        _write_info(tmp, n_cases, seed, labels)
    return out_dir / "manifest.csv"


def _write_tables(folder: Path, labels: CohortLabels, summaries: list[dict]) -> None:
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "image", "mask", "split", "cohort", *ENDPOINTS])
        for i, s in enumerate(summaries):
            cid = s["case_id"]
            writer.writerow([cid, f"images/{cid}.nii.gz", f"masks/{cid}.nii.gz", labels.split[i],
                             labels.cohort[i], *(labels.manifest_value(e, i) for e in ENDPOINTS)])
    keys = [k for k in summaries[0] if k != "case_id"]
    with open(folder / "synthetic_truth.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", *ENDPOINTS, *keys])
        for i, s in enumerate(summaries):
            writer.writerow([s["case_id"], *(int(labels.truth[e][i]) for e in ENDPOINTS),
                             *(json.dumps(s[k]) if isinstance(s[k], list) else s[k] for k in keys)])


def _write_info(folder: Path, n_cases: int, seed: int, labels: CohortLabels) -> None:
    known = {e: labels.known[e] for e in ENDPOINTS}
    info = {
        "generator": GENERATOR, "version": GENERATOR_VERSION, "package_version": __version__,
        "seed": seed, "n_cases": n_cases, "statement": STATEMENT,
        "mechanisms": MECHANISMS, "independent_endpoints": list(INDEPENDENT_ENDPOINTS),
        "target_prevalence": PREVALENCE, "mutually_exclusive": list(DRIVERS),
        "blanks": {"PDL1": "unknown for cohort II (as in the paper)",
                   **{e: f"{r:.0%} of cases at random" for e, r in RANDOM_BLANK.items()}},
        "split": "7:3 train/test by iterative stratification (Sechidis 2011) on every reported "
                 "positive label and on the cohort",
        "observed_prevalence": {e: round(float(labels.truth[e][known[e]].mean()), 4) for e in ENDPOINTS},
    }
    (folder / SYNTHETIC_MARKER).write_text(json.dumps(info, indent=2) + "\n")


def save_montage(image_path, mask_path, png_path, thickness_mm: float = 3.0) -> Path:
    """A PNG of one case: the deep-ROI axial slice in lung and mediastinal windows with the
    tumour (red) and 3 mm ring (yellow) outlined, and the 160 x 160 deep-ROI patch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    from DeepRadScoreLib.io.images import load_case
    from DeepRadScoreLib.outputs import atomic_file
    from DeepRadScoreLib.regions import deep_roi_patch, peritumoral_ring

    case = load_case(image_path, mask_path)
    ring = peritumoral_ring(case.mask, thickness_mm)
    patch = deep_roi_patch(case.image, case.mask)
    k = patch.slice_index
    hu = sitk.GetArrayViewFromImage(case.image)[k]
    tumour = sitk.GetArrayViewFromImage(case.mask)[k]
    ring_k = sitk.GetArrayViewFromImage(ring)[k]
    sx, sy, _ = case.image.GetSpacing()
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.4))
    extent = (0, hu.shape[1] * sx, hu.shape[0] * sy, 0)
    cols = (np.arange(hu.shape[1]) + 0.5) * sx
    rows = (np.arange(hu.shape[0]) + 0.5) * sy
    for ax, (title, centre, width) in zip(axes[:2], (("lung window (C -600, W 1500)", -600, 1500),
                                                     ("mediastinal window (C 40, W 400)", 40, 400))):
        ax.imshow(hu, cmap="gray", vmin=centre - width / 2, vmax=centre + width / 2, extent=extent)
        ax.contour(cols, rows, tumour, levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(title)
        ax.set_xlabel("mm (patient right on the left)")
    axes[0].contour(cols, rows, ring_k, levels=[0.5], colors="yellow", linewidths=0.6)
    axes[2].imshow(patch.hu, cmap="gray", vmin=-1350, vmax=150)
    axes[2].set_title("deep-ROI patch 160 x 160 (lung window)")
    fig.suptitle(f"{Path(image_path).name}: axial slice {k}, spacing {sx:.2f} x {sy:.2f} x "
                 f"{case.image.GetSpacing()[2]:.2f} mm  -  {STATEMENT}")
    fig.tight_layout()
    with atomic_file(png_path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(png_path)
