"""The tumour of a synthetic case and the image mechanisms that plant its labels.

Size (T4), elongation (PIK3CA) and broad pleural contact (PI) decide the tumour's shape and
place; the interior (EGFR, KRAS, ALK, ROS1) and the peritumoral ring (LVI, PD-L1) mechanisms
then paint HU into the tumour's box. The deep-slice signs, the second, independent part of seven
endpoints, are in :mod:`.signs`. :data:`MECHANISMS` is the table written into every cohort's
``SYNTHETIC.json`` and docs/synthetic-cohort.md says why each strength is what it is.

Every random stream is drawn in a fixed order whatever the labels (a texture skipped for a
negative label has its own stream), so a case generated with one label flipped differs from its
twin only where that label's mechanism acts: the tests rely on it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from DeepRadScoreLib.synthetic.phantom import LUNG, Body, Grid, anatomy_2d, smooth_noise
from DeepRadScoreLib.synthetic.signs import SLICE_SIGNS


# --- effect sizes (generator version 7; docs/synthetic-cohort.md says why each is what it is) ---
# Penetrance: the chance that a positive case shows a mechanism at all, as not every EGFR-mutant
# tumour has ground glass. "volume" is the 3D mechanism of tumour or ring (radiomics sees it
# best), "slice" a sign in the lung on the deep-ROI slice only, outside the ring (the Deep-CT
# patch sees it; the radiomics of tumour and ring cannot: see :mod:`.signs`). A silent positive
# looks like a negative there, which caps a perfect reader of that one mechanism at AUC
# 0.5 + 0.5 * penetrance; the two are drawn independently, so a model that reads both (the
# fusion) can do better than either. Version 7 raised the 3D penetrances of KRAS and PIK3CA
# (version 6's fused test AUCs on AMD CPUs: 0.65-0.68 and 0.70-0.80) and of LVI (0.72-0.76 in
# the trials that left it at 0.55).
PENETRANCE = {
    # endpoint: (volume, slice); 0 = no such mechanism
    "LVI": (0.65, 0.65), "PI": (0.75, 0.0), "T4": (0.65, 0.0), "EGFR": (0.75, 0.4),
    "KRAS": (0.7, 0.8), "ALK": (0.6, 0.45), "TP53": (0.0, 0.0), "PIK3CA": (0.8, 0.6),
    "ROS1": (0.75, 0.6), "PDL1": (0.55, 0.8),
}

# ROS1's 3D mechanism: a less dense solid part (a stronger mirror of KRAS's +28 HU).
ROS1_DENSITY_DROP_HU = 48.0

_VOLUME = {
    "LVI": ("peritumoral ring", "fine radial soft-tissue strands (about -330 HU, 15-25 % of the lung "
            "part of the ring) confined to 0-2.8 mm outside the tumour"),
    "PI": ("tumour shape + peritumoral ring", "broad contact with the chest-wall pleura (the tumour "
           "is flattened against it and its ring holds chest wall); negatives (and silent "
           "positives) keep >= 7 mm of lung around them"),
    "T4": ("tumour size", "longest axis 55-82 mm (negatives and silent positives 12-48 mm, log-uniform)"),
    "EGFR": ("tumour interior", "ground-glass component (-650..-560 HU) making up 20-50 % of the "
             "tumour (15 % of negatives carry a small 4-15 % one)"),
    "KRAS": ("tumour interior", "solid part denser (about 64 vs 36 HU) with coarse mottled texture "
             "(2.5 mm grain, 24 HU vs 1 mm grain, 10 HU)"),
    "ALK": ("tumour interior", "2-5 punctate calcifications (1.0-2.0 mm radius, 400-900 HU; 4 % of "
            "negatives have one)"),
    "PIK3CA": ("tumour shape", "elongated (cigar-shaped) tumour: short axes 0.5-0.7 of the long "
               "axis (negatives and silent positives 0.72-1.0)"),
    "ROS1": ("tumour interior", "less dense solid part (about -12 vs 36 HU, sd 8; a stronger mirror of KRAS)"),
    "PDL1": ("peritumoral ring", "faint ground-glass halo (about -690 HU) 1.6-2.8 mm thick around "
             "the tumour, lung part only"),
}


def _mechanisms() -> dict:
    table = {}
    for e in PENETRANCE:
        if e == "TP53":
            table[e] = {"region": "none", "penetrance": 0.0, "mechanism":
                        "INDEPENDENT of the image (leakage detector): flipping it leaves every voxel unchanged"}
            continue
        region, text = _VOLUME[e]
        entry = {"region": region, "penetrance": PENETRANCE[e][0], "mechanism": text}
        if e in SLICE_SIGNS:
            pattern, level, _ = SLICE_SIGNS[e]
            entry["region"] += " + deep-ROI slice (a quarter of the lung 6-40 mm beyond the tumour)"
            entry["slice_penetrance"] = PENETRANCE[e][1]
            entry["slice_sign"] = f"{pattern} ({level:.0f} HU)"
        table[e] = entry
    return table


MECHANISMS = _mechanisms()
INDEPENDENT_ENDPOINTS = ("TP53",)


@dataclass
class Expression:
    """Which mechanisms a case shows: ``volume[e]`` and ``slice[e]`` (False for a negative)."""

    volume: dict[str, bool]
    slice: dict[str, bool]

    def summary(self) -> str:
        """``EGFR:volume+slice;LVI:volume`` (empty when the case shows nothing)."""
        parts = []
        for e in self.volume:
            kinds = [k for k, shown in (("volume", self.volume[e]), ("slice", self.slice[e])) if shown]
            if kinds:
                parts.append(f"{e}:{'+'.join(kinds)}")
        return ";".join(parts)


def draw_expression(rng: np.random.Generator, lab: dict[str, int], full: bool = False) -> Expression:
    """Penetrance: which of each positive label's mechanisms the case shows (:data:`PENETRANCE`).

    The same 2 numbers per endpoint are drawn whatever the labels. ``full`` shows every
    mechanism of every positive label (the counterfactual tests and the documentation figure).
    """
    u = rng.random((len(lab), 2))
    volume, slice_ = {}, {}
    for row, (e, positive) in enumerate(lab.items()):
        p_volume, p_slice = PENETRANCE.get(e, (0.0, 0.0))
        volume[e] = bool(positive and p_volume > 0 and (full or u[row, 0] < p_volume))
        slice_[e] = bool(positive and p_slice > 0 and (full or u[row, 1] < p_slice))
    return Expression(volume=volume, slice=slice_)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def place_tumour(body: Body, semi: np.ndarray, lobe_amp: float, pleural: bool,
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
        anat = anatomy_2d(grid_x, grid_y, body)
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


# --------------------------------------------------------------------------------------------
# Tumour shape (local frame, mm): size (T4) and elongation (PIK3CA) are planted here
# --------------------------------------------------------------------------------------------

@dataclass
class TumourShape:
    long_axis: float
    semi: np.ndarray            # semi-axes (mm), the first the long one
    lobe_amp: float
    lobe_w: np.ndarray
    lobe_freq: np.ndarray
    lobe_dir: np.ndarray
    lobe_phase: np.ndarray
    spiculated: bool
    spicule_dirs: np.ndarray
    n_spicules: int
    spicule_len: np.ndarray
    spicule_width: np.ndarray
    cavitated: bool
    cavity_centre: np.ndarray
    cavity_radius: float

    @property
    def lobe_bound(self) -> float:
        return 1.0 + self.lobe_amp


def draw_tumour_shape(rng: np.random.Generator, show: Expression) -> TumourShape:
    """The tumour's size (T4), axis ratios (PIK3CA), lobulation, spicules and cavity."""
    # Both sizes and both shapes are drawn whatever the labels, so the stream stays aligned.
    big = float(rng.uniform(55.0, 82.0))
    small = float(math.exp(rng.uniform(math.log(12.0), math.log(48.0))))
    long_axis = big if show.volume["T4"] else small
    thin = rng.uniform(0.5, 0.7, 2)
    round_ = rng.uniform(0.72, 1.0, 2)
    semi = 0.5 * long_axis * np.concatenate([[1.0], thin if show.volume["PIK3CA"] else round_])
    lobe_amp = float(rng.uniform(0.03, 0.12))
    lobe_w = rng.dirichlet(np.ones(6)) * lobe_amp
    lobe_freq = rng.uniform(2.0, 5.0, 6)
    lobe_dir = rng.standard_normal((6, 3))
    lobe_dir /= np.linalg.norm(lobe_dir, axis=1, keepdims=True)
    lobe_phase = rng.uniform(0, 2 * math.pi, 6)
    spiculated = bool(rng.random() < 0.25)
    spicule_dirs = rng.standard_normal((12, 3))
    spicule_dirs /= np.linalg.norm(spicule_dirs, axis=1, keepdims=True)
    n_spicules = int(rng.integers(4, 11))
    spicule_len = rng.uniform(5.0, 15.0, 12)
    spicule_width = rng.uniform(0.9, 1.8, 12)
    cavitated = bool(rng.random() < 0.1) and long_axis >= 20.0
    cavity_centre = rng.uniform(-0.25, 0.25, 3)
    cavity_radius = float(rng.uniform(0.3, 0.5))
    return TumourShape(long_axis=long_axis, semi=semi, lobe_amp=lobe_amp, lobe_w=lobe_w,
                       lobe_freq=lobe_freq, lobe_dir=lobe_dir, lobe_phase=lobe_phase,
                       spiculated=spiculated, spicule_dirs=spicule_dirs, n_spicules=n_spicules,
                       spicule_len=spicule_len, spicule_width=spicule_width, cavitated=cavitated,
                       cavity_centre=cavity_centre, cavity_radius=cavity_radius)


# --------------------------------------------------------------------------------------------
# Tumour on the grid
# --------------------------------------------------------------------------------------------

@dataclass
class TumourBox:
    """The tumour's bounding box on the grid and its geometry there (arrays are box-shaped)."""

    box: tuple[slice, slice, slice]
    lo_idx: list[int]               # (i, j, k) of the box's first voxel
    bx: np.ndarray                  # mm from the tumour centre, broadcastable
    by: np.ndarray
    bz: np.ndarray
    loc: list[np.ndarray]           # tumour-frame coordinates (mm)
    unit: list[np.ndarray]          # unit direction in the scaled frame
    radial: np.ndarray              # 0 at the centre, 1 at the surface
    tumour: np.ndarray              # bool
    lung: np.ndarray                # bool: lung voxels of the box (before the tumour)
    d_out: np.ndarray               # mm outside the tumour (exact Euclidean)


def tumour_box(grid: Grid, shape: TumourShape, tissue: np.ndarray, rot: np.ndarray,
               cx: float, cy: float, half_extent: np.ndarray, index: int) -> TumourBox:
    """The lobulated ellipsoid on the grid, cut to the lung (a tumour against the chest wall is
    flattened by it)."""
    from scipy import ndimage

    (sx, _, sz), origin, cz = grid.spacing, grid.origin, grid.cz
    pad = 17.0 if shape.spiculated else 5.0
    lo_idx = [int(math.floor((c - h - pad - o) / sp)) for c, h, o, sp in
              zip((cx, cy, cz), half_extent, origin, (sx, sx, sz))]
    hi_idx = [int(math.ceil((c + h + pad - o) / sp)) + 1 for c, h, o, sp in
              zip((cx, cy, cz), half_extent, origin, (sx, sx, sz))]
    size_ijk = grid.shape[::-1]
    lo_idx = [max(v, 0) for v in lo_idx]
    hi_idx = [min(v, n) for v, n in zip(hi_idx, size_ijk)]
    box = (slice(lo_idx[2], hi_idx[2]), slice(lo_idx[1], hi_idx[1]), slice(lo_idx[0], hi_idx[0]))
    bz = (grid.zs[box[0]] - cz).astype(np.float32)[:, None, None]
    by = (grid.ys[box[1]] - cy).astype(np.float32)[None, :, None]
    bx = (grid.xs[box[2]] - cx).astype(np.float32)[None, None, :]
    semi = shape.semi
    # Local (tumour-frame) coordinates scaled by the semi-axes.
    loc = [rot[0, a] * bx + rot[1, a] * by + rot[2, a] * bz for a in range(3)]
    scaled = [loc[a] / semi[a] for a in range(3)]
    rho = np.sqrt(scaled[0] ** 2 + scaled[1] ** 2 + scaled[2] ** 2)
    unit = [s / np.maximum(rho, 1e-6) for s in scaled]
    lobes = np.ones_like(rho)
    for w, f, dvec, ph in zip(shape.lobe_w, shape.lobe_freq, shape.lobe_dir, shape.lobe_phase):
        lobes += w * np.cos(f * (dvec[0] * unit[0] + dvec[1] * unit[1] + dvec[2] * unit[2]) * math.pi + ph)
    box_lung = tissue[box] == LUNG
    tumour = (rho < lobes) & box_lung
    if not tumour.any():
        raise RuntimeError(f"case {index}: empty tumour")  # a generator bug, never user input
    d_out = ndimage.distance_transform_edt(~tumour, sampling=(sz, sx, sx)).astype(np.float32)
    return TumourBox(box=box, lo_idx=lo_idx, bx=bx, by=by, bz=bz, loc=loc, unit=unit,
                     radial=rho / np.maximum(lobes, 1e-6), tumour=tumour, lung=box_lung, d_out=d_out)


def add_spicules(box_hu: np.ndarray, tb: TumourBox, shape: TumourShape) -> None:
    """Random spicules (any label, in place): a few long thick strands reaching 5-15 mm into
    the lung, beyond the ring, so that a long spicule is no label's sign."""
    if not shape.spiculated:
        return
    d_out = tb.d_out
    sk, sj, si = np.nonzero((d_out > 0) & (d_out <= shape.spicule_len.max()) & tb.lung)
    px, py, pz = tb.bx[0, 0, si], tb.by[0, sj, 0], tb.bz[sk, 0, 0]
    dist2 = px ** 2 + py ** 2 + pz ** 2
    dpt = d_out[sk, sj, si]
    hit = np.zeros(len(sk), dtype=bool)
    for sdir, slen, swid in zip(shape.spicule_dirs[:shape.n_spicules], shape.spicule_len, shape.spicule_width):
        along = sdir[0] * px + sdir[1] * py + sdir[2] * pz
        perp = np.sqrt(np.maximum(dist2 - along ** 2, 0.0))
        width = swid * np.clip(1.0 - dpt / slen, 0.0, 1.0)
        hit |= (along > 0) & (perp < width / 2 + 0.2) & (dpt <= slen)
    sel = (sk[hit], sj[hit], si[hit])
    box_hu[sel] = np.maximum(box_hu[sel], -90.0)


# --------------------------------------------------------------------------------------------
# Interior mechanisms: EGFR, KRAS, ALK, ROS1 (and the label-free cavity)
# --------------------------------------------------------------------------------------------

@dataclass
class Interior:
    hu: np.ndarray          # HU of the tumour's box, tumour voxels painted
    ggo: np.ndarray         # bool: the ground-glass part
    solid_mean: float
    n_calc: int


def plant_interior(box_hu: np.ndarray, tb: TumourBox, shape: TumourShape, show: Expression,
                   spacing: tuple[float, float, float], streams: dict) -> Interior:
    """The tumour's interior: solid part (KRAS: denser, coarse mottling; ROS1: less dense), ground glass (EGFR),
    cavity, calcifications (ALK); ROS1's solid part is less dense.

    ``streams`` holds the generators ``inner``, ``fine``, ``coarse`` and ``ggo``; ``inner`` is
    drawn in the same order whatever the labels, the textures only when used.
    """
    sx, _, sz = spacing
    tumour, semi, loc, unit = tb.tumour, shape.semi, tb.loc, tb.unit
    inner_rng = streams["inner"]
    solid_kras = float(inner_rng.normal(64.0, 8.0))
    solid_other = float(inner_rng.normal(36.0, 8.0))
    # ROS1: the same draw 48 HU lower (no draw of its own, so the stream stays as it was).
    ros1_drop = ROS1_DENSITY_DROP_HU if show.volume["ROS1"] else 0.0
    solid_mean = solid_kras if show.volume["KRAS"] else solid_other - ros1_drop
    if show.volume["KRAS"]:
        solid = solid_mean + 24.0 * smooth_noise(streams["coarse"], tumour.shape, (2.5 / sz, 2.5 / sx, 2.5 / sx))
    else:
        solid = solid_mean + 10.0 * smooth_noise(streams["fine"], tumour.shape, (1.0 / sz, 1.0 / sx, 1.0 / sx))
    ggo_egfr = float(inner_rng.uniform(0.2, 0.5))
    ggo_small = float(inner_rng.uniform(0.04, 0.15))
    ggo_in_negative = inner_rng.random() < 0.15
    ggo_fraction = ggo_egfr if show.volume["EGFR"] else (ggo_small if ggo_in_negative else 0.0)
    ggo_mean = float(inner_rng.uniform(-650.0, -560.0))
    ggo_bias = inner_rng.standard_normal(3)
    ggo_bias /= np.linalg.norm(ggo_bias)
    interior = solid
    ggo = np.zeros_like(tumour)
    if ggo_fraction > 0:
        # GGO takes the outer, eccentric part: where radius + a directional bias is largest.
        ggo_grain = smooth_noise(streams["ggo"], tumour.shape, (1.5 / sz, 1.5 / sx, 1.5 / sx))
        score = tb.radial + 0.45 * (ggo_bias[0] * unit[0] + ggo_bias[1] * unit[1] + ggo_bias[2] * unit[2]) \
            + 0.1 * ggo_grain
        ggo = tumour & (score > np.quantile(score[tumour], 1.0 - ggo_fraction))
        interior = np.where(ggo, np.maximum(box_hu, ggo_mean + 40.0 * ggo_grain), solid)
    if shape.cavitated:
        cav = sum(((loc[a] / semi[a] - shape.cavity_centre[a]) / shape.cavity_radius) ** 2
                  for a in range(3)) < 1.0
        interior = np.where(cav & ~ggo, -990.0, interior)
    calc_n = int(inner_rng.integers(2, 6))
    calc_where = inner_rng.uniform(-0.55, 0.55, (7, 3))
    calc_radius = inner_rng.uniform(1.0, 2.0, 7)
    calc_hu = inner_rng.uniform(400.0, 900.0, 7)
    calc_in_negative = inner_rng.random() < 0.04
    n_calc = calc_n if show.volume["ALK"] else (1 if calc_in_negative else 0)
    for c in range(n_calc):
        d2 = sum((loc[a] - calc_where[c, a] * semi[a]) ** 2 for a in range(3))
        interior = np.where(d2 <= calc_radius[c] ** 2, calc_hu[c], interior)
    return Interior(hu=np.where(tumour, interior, box_hu), ggo=ggo, solid_mean=solid_mean, n_calc=n_calc)


# --------------------------------------------------------------------------------------------
# Ring mechanisms: PD-L1 halo, LVI strands
# --------------------------------------------------------------------------------------------

def plant_ring(box_hu: np.ndarray, tb: TumourBox, shape: TumourShape, show: Expression,
               spacing: tuple[float, float, float], streams: dict) -> None:
    """The peritumoral mechanisms (in place), on the lung part of the ring only and within
    2.8 mm of the tumour, so that they stay inside the 3 mm ring of ``regions``.

    ``streams`` holds ``ring`` (drawn in the same order whatever the labels) and ``halo``.
    """
    sx, _, sz = spacing
    d_out, tumour = tb.d_out, tb.tumour
    ring_rng = streams["ring"]
    ring_lung = (d_out > 0) & (d_out <= 2.8) & tb.lung
    halo_thickness = float(ring_rng.uniform(1.6, 2.8))
    halo_level = float(ring_rng.normal(-690.0, 30.0))
    coverage = float(ring_rng.uniform(0.15, 0.25))
    waves = ring_rng.standard_normal((24, 3))
    waves /= np.linalg.norm(waves, axis=1, keepdims=True)
    wave_phase = ring_rng.uniform(0, 2 * math.pi, 24)
    strand_level = float(ring_rng.normal(-330.0, 30.0))
    if show.volume["PDL1"]:
        halo = ring_lung & (d_out <= halo_thickness)
        grain = smooth_noise(streams["halo"], tumour.shape, (1.0 / sz, 1.0 / sx, 1.0 / sx))
        box_hu[...] = np.where(halo, np.maximum(box_hu, halo_level + 35.0 * grain), box_hu)
    if show.volume["LVI"] and ring_lung.any():
        # A random field of the direction from the centre, thresholded: radial rods about 1 mm
        # across at the tumour surface, evaluated on the ring voxels only.
        rk, rj, ri = np.nonzero(ring_lung)
        px, py, pz = tb.bx[0, 0, ri], tb.by[0, rj, 0], tb.bz[rk, 0, 0]
        dist = np.sqrt(px ** 2 + py ** 2 + pz ** 2) + 1e-6
        kappa = 2 * math.pi * float(np.mean(shape.semi)) / 2.5
        field_ = sum(np.cos(kappa * (w[0] * px + w[1] * py + w[2] * pz) / dist + ph)
                     for w, ph in zip(waves, wave_phase))
        rods = field_ > np.quantile(field_, 1.0 - coverage)
        sel = (rk[rods], rj[rods], ri[rods])
        box_hu[sel] = np.maximum(box_hu[sel], strand_level)
