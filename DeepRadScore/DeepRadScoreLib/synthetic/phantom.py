"""The synthetic chest around the tumour: acquisition, grid, anatomy and scanner.

An axial slab of an analytic chest (superellipse body, fat, muscle, helical ribs, spine,
mediastinum with heart or trachea, lungs with a 3D branching vessel tree) is drawn on the case's
grid, and the scanner blurs it in-plane and adds correlated noise. Nothing here depends on a
label; the tumour and every label mechanism are in :mod:`.tumour`.

Every function draws from the random stream it is given in a fixed order, so that a label
(which may skip a draw elsewhere) cannot shift any draw here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


MAX_VOXELS = 6_000_000

# Tissue classes of the phantom and their base HU.
AIR, FAT, SOFT, BLOOD, BONE, MARROW, LUNG, MED_FAT = range(8)
TISSUE_NAMES = ("air", "fat", "soft tissue", "blood", "cortical bone", "marrow", "lung",
                "mediastinal fat")
BASE_HU = np.array([-1000.0, -100.0, 45.0, 40.0, 750.0, 230.0, -870.0, -90.0], dtype=np.float32)

SLICE_THICKNESSES = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)
SLICE_WEIGHTS = (0.2, 0.1, 0.1, 0.15, 0.15, 0.1, 0.2)


@dataclass
class Body:
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


def draw_body(rng: np.random.Generator) -> Body:
    a = rng.uniform(150.0, 175.0)
    half_depth = a * rng.uniform(0.64, 0.74)
    return Body(a=a, b_ant=half_depth * 1.02, b_post=half_depth * 0.98, fat=rng.uniform(5.0, 20.0),
                 muscle=rng.uniform(7.0, 13.0), rib_period=rng.uniform(26.0, 32.0),
                 rib_slope=rng.uniform(70.0, 100.0), rib_phase=rng.uniform(0.0, 1.0),
                 heart=(rng.uniform(14.0, 24.0), rng.uniform(0.0, 1.0), rng.uniform(44.0, 54.0),
                        rng.uniform(34.0, 42.0), rng.uniform(0.45, 0.75)),
                 lung_hu=rng.normal(-905.0, 10.0), lung_gradient=rng.uniform(25.0, 55.0))


@dataclass
class Anatomy2D:
    tissue: np.ndarray      # uint8 class per pixel (ribs excluded)
    band: np.ndarray        # bool: the rib band (intercostal space between muscle and pleura)
    band_depth: np.ndarray  # 0..1 across the band
    theta: np.ndarray       # angle from the posterior midline, 0..pi
    cavity: np.ndarray      # bool: inside the pleura (lungs + mediastinum + spine notch)
    lung: np.ndarray


def anatomy_2d(x: np.ndarray, y: np.ndarray, body: Body) -> Anatomy2D:
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
    return Anatomy2D(tissue=tissue, band=band & ~spine_zone & ~sternum, band_depth=band_depth,
                      theta=theta, cavity=cavity, lung=lung)


def _add_ribs(tissue3d: np.ndarray, hu3d: np.ndarray, anat: Anatomy2D, z: np.ndarray, body: Body) -> None:
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


def smooth_noise(rng: np.random.Generator, shape, sigma_vox) -> np.ndarray:
    """Unit-variance Gaussian noise correlated over ``sigma_vox`` voxels (per axis)."""
    from scipy import ndimage

    white = rng.standard_normal(shape, dtype=np.float32)
    smooth = ndimage.gaussian_filter(white, sigma_vox, mode="reflect", truncate=3.0)
    sd = float(smooth.ravel()[::7].std())
    return smooth / sd if sd > 0 else smooth


# --------------------------------------------------------------------------------------------
# Acquisition
# --------------------------------------------------------------------------------------------

@dataclass
class Acquisition:
    sx: float           # in-plane spacing (mm)
    sz: float           # slice thickness (mm)
    noise_sd: float     # HU, before the in-plane correlation
    noise_grain: float  # in-plane correlation of the noise (pixels)
    psf: float          # in-plane point-spread sigma (pixels)
    z_margin: float     # slab beyond the tumour (mm)
    z_offset: float     # where the tumour sits in the slab (0..1)
    table_z: float      # z of the first slice (mm)
    at_edge: bool       # a targeted reconstruction whose lateral FOV edge is near the tumour
    edge_margin: float  # mm from the tumour to that edge (negative: the edge cuts it)


def draw_acquisition(rng: np.random.Generator) -> Acquisition:
    sx = round(float(rng.uniform(0.6, 0.9)), 4)
    sz = float(rng.choice(SLICE_THICKNESSES, p=SLICE_WEIGHTS))
    # Thinner slices are noisier (fewer photons per voxel).
    noise_sd = float(rng.uniform(14.0, 26.0) * (2.5 / sz) ** 0.35)
    return Acquisition(sx=sx, sz=sz, noise_sd=noise_sd, noise_grain=float(rng.uniform(0.7, 1.2)),
                       psf=float(rng.uniform(0.45, 0.7)), z_margin=float(rng.uniform(8.0, 20.0)),
                       z_offset=float(rng.uniform(0.0, 1.0)), table_z=float(rng.uniform(-320.0, -120.0)),
                       at_edge=bool(rng.random() < 0.1), edge_margin=float(rng.uniform(-1.5, 5.0)))


# --------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------

@dataclass
class Grid:
    shape: tuple[int, int, int]           # (k, j, i)
    origin: tuple[float, float, float]    # (x, y, z) mm
    spacing: tuple[float, float, float]   # (x, y, z) mm
    xs: np.ndarray
    ys: np.ndarray
    zs: np.ndarray
    cz: float                             # z of the tumour centre


def make_grid(acq: Acquisition, body: Body, cx: float, cy: float, half_extent: np.ndarray) -> Grid:
    """The slab's grid: enough slices for the tumour and margin (30-100), a matrix that keeps
    the volume under :data:`MAX_VOXELS`, and an FOV that holds the tumour with 15 mm to spare
    (centred on the body where possible; at the tumour's lateral side for an edge case)."""
    sx, sz = acq.sx, acq.sz
    n_slices = int(math.ceil((2 * half_extent[2] + 2 * acq.z_margin) / sz)) + 1
    n_slices = min(max(n_slices, 30), 100)
    matrix = min(384, int(math.sqrt(MAX_VOXELS / n_slices)) // 16 * 16)
    fov = matrix * sx
    span = (n_slices - 1) * sz
    slack = span - 2 * (half_extent[2] + 6.0)
    cz = acq.table_z + (half_extent[2] + 6.0 + max(slack, 0.0) * acq.z_offset if slack > 0 else span / 2)
    centre = []
    for axis, (c, lo_body, hi_body) in enumerate(((cx, -body.a, body.a), (cy, -body.b_ant, body.b_post))):
        margin = 15.0
        lo = c + half_extent[axis] + margin - fov / 2     # FOV centre must be >= lo
        hi = c - half_extent[axis] - margin + fov / 2     # ... and <= hi
        f = min(max(0.5 * (lo_body + hi_body), lo), hi) if lo <= hi else c
        if acq.at_edge and axis == 0:
            # Put the FOV edge just beyond the tumour on its lateral side (targeted reconstruction).
            out = c + math.copysign(half_extent[0] + acq.edge_margin, c)
            f = out - math.copysign(fov / 2, c)
        centre.append(f)
    origin = (round(centre[0] - (matrix - 1) * sx / 2, 3), round(centre[1] - (matrix - 1) * sx / 2, 3),
              round(acq.table_z, 3))
    return Grid(shape=(n_slices, matrix, matrix), origin=origin, spacing=(sx, sx, sz),
                xs=origin[0] + sx * np.arange(matrix), ys=origin[1] + sx * np.arange(matrix),
                zs=origin[2] + sz * np.arange(n_slices), cz=cz)


# --------------------------------------------------------------------------------------------
# Anatomy on the grid
# --------------------------------------------------------------------------------------------

def anatomy_on_grid(grid: Grid, body: Body, rng: np.random.Generator):
    """Tissue classes and HU of the slab without vessels: the 2D section extruded along z, ribs
    added per slice, lung denser towards the back and slowly varying in 3D.

    :returns: ``(tissue, hu, lung2d)``: uint8 and float32 [k, j, i] volumes, the 2D lung mask.
    """
    from scipy import ndimage

    shape, xs, ys, zs = grid.shape, grid.xs, grid.ys, grid.zs
    matrix = shape[1]
    # The phantom is extruded along z except the ribs, so most of the work is done in 2D.
    anat = anatomy_2d(xs, ys, body)
    lung2d = anat.lung
    lf = [ndimage.zoom(rng.standard_normal((12, 12)).astype(np.float32), matrix / 12.0, order=1)
          for _ in range(2)]
    hu2d = BASE_HU[anat.tissue]
    hu2d[anat.tissue == FAT] += 8.0 * lf[0][anat.tissue == FAT]
    # Lung: denser towards the back (gravity) and slowly varying in 3D.
    lung_level = body.lung_hu + body.lung_gradient * np.clip((ys + body.b_ant) / (body.b_ant + body.b_post), 0, 1)
    hu2d = np.where(lung2d, lung_level[:, None].astype(np.float32), hu2d)
    tissue = np.broadcast_to(anat.tissue, shape).copy()
    hu = np.broadcast_to(hu2d, shape).copy()
    _add_ribs(tissue, hu, anat, zs, body)
    zw = 2 * math.pi * zs / rng.uniform(60.0, 120.0)
    hu[:, lung2d] += 10.0 * (np.cos(zw)[:, None] * lf[0][lung2d][None] + np.sin(zw)[:, None] * lf[1][lung2d][None])
    return tissue, hu, lung2d


def add_vessels(hu: np.ndarray, lung2d: np.ndarray, grid: Grid, body: Body, anat_mm: Anatomy2D,
                grid_x: np.ndarray, grid_y: np.ndarray, rng: np.random.Generator) -> None:
    """Vessels (in place): trees from both hila plus twigs, rendered on the grid as blood
    (40 HU) in the lung, with the partial volume of the thin ones."""
    zs, cz = grid.zs, grid.cz

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
    hilum_z = cz + rng.uniform(-40.0, 40.0)
    starts, dirs, radii, origins = [], [], [], []
    for side in (-1.0, 1.0):
        hilum = np.array([side * (34.0 + rng.uniform(0, 8)), hilum_y + rng.uniform(-15, 10),
                          hilum_z + rng.uniform(-15, 15)])
        trunk = rng.standard_normal((8, 3)) * np.array([0.5, 1.0, 1.0]) + np.array([side, 0, 0])
        starts += [hilum] * 8
        dirs += list(trunk / np.linalg.norm(trunk, axis=1, keepdims=True))
        radii += list(rng.uniform(3.0, 4.5, 8))
        origins += [hilum] * 8
    lung_px = np.argwhere(anat_mm.lung)
    n_twigs = int(len(lung_px) * (zs[-1] - zs[0] + 20.0) / 8000.0)
    seeds = lung_px[rng.integers(0, len(lung_px), n_twigs)]
    twig_p = np.stack([grid_x[seeds[:, 1]], grid_y[seeds[:, 0]],
                       rng.uniform(zs[0] - 10.0, zs[-1] + 10.0, n_twigs)], axis=1)
    twig_origin = np.stack([np.where(twig_p[:, 0] < 0, -38.0, 38.0), np.full(n_twigs, hilum_y),
                            np.full(n_twigs, hilum_z)], axis=1)
    twig_d = twig_p - twig_origin + rng.normal(0, 15.0, (n_twigs, 3))
    twig_d /= np.linalg.norm(twig_d, axis=1, keepdims=True)
    segments = _vessel_segments(
        rng, lung_lookup,
        np.concatenate([np.array(starts), twig_p]), np.concatenate([np.array(dirs), twig_d]),
        np.concatenate([radii, rng.uniform(0.45, 1.1, n_twigs)]),
        np.concatenate([np.array(origins), twig_origin]))
    vf = _render_vessels(segments, grid.shape, grid.origin, grid.spacing)
    lung_hu = hu[:, lung2d]
    hu[:, lung2d] = lung_hu + vf[:, lung2d] * (40.0 - lung_hu)


# --------------------------------------------------------------------------------------------
# Scanner
# --------------------------------------------------------------------------------------------

def scan(hu: np.ndarray, acq: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """The scanner: in-plane point-spread blur, correlated noise, int16 HU clipped to
    -1024..3071 (slices are independent: the blur and noise grain are in-plane only)."""
    from scipy import ndimage

    hu = ndimage.gaussian_filter(hu, (0.0, acq.psf, acq.psf), truncate=3.0)
    noise = smooth_noise(rng, hu.shape, (0.0, acq.noise_grain, acq.noise_grain))
    return np.clip(np.rint(hu + acq.noise_sd * noise), -1024, 3071).astype(np.int16)
