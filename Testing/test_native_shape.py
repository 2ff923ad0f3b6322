"""The native shape class equals pyradiomics', checked on its own and side by side.

The marching-cubes table of DeepRadScoreLib.features.native.shape is built from the definition;
here every one of its 256 cube configurations, random small masks and all real cases are meshed
by pyradiomics' own C routine (``cShape.calculate_coefficients``) or its ``RadiomicsShape`` class
and compared. Each case is given to the native module exactly as pyradiomics' shape class gets
it: the ROI cropped to its bounding box by ``imageoperations.cropToTumorMask``.
"""
from __future__ import annotations

import ast
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import native_cases as cases
from DeepRadScoreLib.features import mesh
from DeepRadScoreLib.features.native import shape
from DeepRadScoreLib.regions import peritumoral_ring

SPACINGS_KJI = ((1.0, 1.0, 1.0), (2.5, 0.8, 0.8), (5.0, 0.7, 0.5), (1.3, 0.3, 2.9))


def _py_mesh(mask: np.ndarray, spacing_kji) -> tuple[float, float, np.ndarray]:
    from radiomics import cShape

    area, volume, diameters = cShape.calculate_coefficients(np.ascontiguousarray(mask, dtype=bool),
                                                            np.asarray(spacing_kji, dtype=float))
    return area, volume, np.asarray(diameters)


def _single_cube(configuration: int) -> np.ndarray:
    cube = np.zeros((2, 2, 2), dtype=bool)
    for bit, corner in enumerate(shape.CORNERS):
        cube[tuple(corner)] = bool(configuration >> bit & 1)
    return cube


def shape_inputs(image: sitk.Image, mask: sitk.Image):
    """(pyradiomics' shape features, the mask array and spacing its shape class receives)."""
    from radiomics import imageoperations
    from radiomics.shape import RadiomicsShape

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    mask = sitk.Cast(mask, sitk.sitkUInt32)
    box, _ = imageoperations.checkMask(image, mask, label=1)
    image_bb, mask_bb = imageoperations.cropToTumorMask(image, mask, box)
    start = time.process_time()
    reference_class = RadiomicsShape(image_bb, mask_bb, label=1)
    reference_class.enableAllFeatures()
    reference = {name: float(value) for name, value in reference_class.execute().items()}
    seconds = time.process_time() - start
    reference = {name: reference[name] for name in shape.NAMES}
    return reference, sitk.GetArrayFromImage(mask_bb) == 1, mask_bb.GetSpacing(), seconds


def check_case(image: sitk.Image, mask: sitk.Image) -> tuple[float, float]:
    """Native equals pyradiomics on this ROI; returns (pyradiomics s, native s) of CPU time."""
    reference, roi, spacing, py_seconds = shape_inputs(image, mask)
    start = time.process_time()
    ours = shape.features(roi, spacing)
    native_seconds = time.process_time() - start
    assert list(ours) == list(shape.NAMES)
    assert cases.compare(reference, ours) == []
    return py_seconds, native_seconds


def test_names_are_pyradiomics_non_deprecated_shape_features_in_its_order():
    from radiomics.shape import RadiomicsShape

    assert shape.NAMES == tuple(name for name, deprecated in RadiomicsShape.getFeatureNames().items()
                                if not deprecated)
    assert len(shape.NAMES) == 14


def test_native_shape_does_not_import_radiomics():
    tree = ast.parse(Path(shape.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "radiomics" not in imported
    # And it runs where radiomics cannot be imported at all.
    code = ("import sys; sys.modules['radiomics'] = None\n"
            "import numpy as np\n"
            "from DeepRadScoreLib.features.native import shape\n"
            "m = np.zeros((3, 4, 5), bool); m[1:, 1:3, 1:4] = True\n"
            "f = shape.features(m, (0.5, 0.7, 2.0)); assert abs(f['VoxelVolume'] - 12 * 0.7) < 1e-9, f\n"
            "print(sorted(f) == sorted(shape.NAMES))\n")
    root = Path(shape.__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_case_table_definition_properties():
    """Definition-level properties of the table, without pyradiomics: every triangle's vertices lie
    on edges whose corners differ, configurations 0 and 255 are empty, complements are reversed,
    and a single ROI corner is cut by exactly one outward triangle (positive signed volume)."""
    table = shape.case_table()
    assert len(table) == 256 and table[0] == () and table[255] == ()
    for configuration, triangles in enumerate(table):
        inside = [configuration >> b & 1 for b in range(8)]
        crossing = {n for n, (a, b) in enumerate(shape.EDGES) if inside[a] != inside[b]}
        used = {e for t in triangles for e in t}
        assert used == crossing, configuration
        complement = {tuple(np.roll(t, -int(np.argmin(t)))) for t in table[255 - configuration]}
        reversed_ = {tuple(np.roll((a, c, b), -int(np.argmin((a, c, b))))) for a, b, c in triangles}
        assert reversed_ == complement, configuration
    for bit in range(8):
        assert len(table[1 << bit]) == 1
        area, volume = shape.mesh_area_volume(_single_cube(1 << bit), (1.0, 1.0, 1.0))
        assert area == pytest.approx(np.sqrt(3) / 8) and volume != 0
    area, volume = shape.mesh_area_volume(_single_cube(1), (1.0, 1.0, 1.0))
    assert volume == pytest.approx(1 / 48)  # the corner tetrahedron (1/2)^3 / 6, outward normal


@pytest.mark.parametrize("spacing_kji", SPACINGS_KJI)
def test_every_cube_configuration_equals_pyradiomics(spacing_kji):
    """Surface area and signed volume of all 256 single-cube masks, at unit and anisotropic spacing."""
    wrong = []
    for configuration in range(256):
        cube = _single_cube(configuration)
        area, volume, _ = _py_mesh(cube, spacing_kji)
        ours = shape.mesh_area_volume(cube, spacing_kji)
        if not np.allclose(ours, (area, volume), rtol=1e-12, atol=1e-14):
            wrong.append((configuration, ours, (area, volume)))
    assert wrong == []


def test_random_masks_mesh_equals_pyradiomics():
    """Area, volume (position term included) and the four diameters on 200 random masks."""
    rng = np.random.default_rng(14)
    for n in range(200):
        size = tuple(int(s) for s in rng.integers(2, 7, 3))
        mask = np.pad(rng.random(size) < rng.uniform(0.15, 0.85), 1)
        spacing = tuple(rng.uniform(0.3, 3.0, 3))
        area, volume, diameters = _py_mesh(mask, spacing)
        ours_area, ours_volume = shape.mesh_area_volume(mask, spacing)
        ours_d = shape._diameters(mesh.mesh_vertices(mask), np.asarray(spacing))
        ours_diameters = [ours_d[name] for name in ("Maximum2DDiameterSlice", "Maximum2DDiameterColumn",
                                                    "Maximum2DDiameterRow", "Maximum3DDiameter")]
        assert ours_area == pytest.approx(area, rel=1e-10), n
        assert ours_volume == pytest.approx(volume, rel=1e-10, abs=1e-12), n
        assert np.allclose(ours_diameters, diameters, rtol=1e-10), n


def _circle_outline(radius: int, slices: int = 1) -> np.ndarray:
    """A one-voxel-wide circle outline in ``slices`` slices: planes with many candidate points
    (two per row, 2 * radius rows) but few mesh vertices, so pyradiomics' O(V^2) search is quick."""
    yy, xx = np.mgrid[-radius - 1:radius + 2, -radius - 1:radius + 2]
    r = np.hypot(yy, xx)
    ring = (r <= radius) & (r > radius - 1.2)
    return np.pad(np.repeat(ring[None], slices, axis=0), 1)


@pytest.mark.parametrize("radius, hull", [(25, False), (150, True)])
def test_large_planes_diameters_equal_pyradiomics(radius, hull):
    """The slice planes of a 150-voxel circle hold more candidates than mesh.SMALL_PLANE (their
    farthest pair comes from the hull), those of a 25-voxel one fewer (searched pair by pair):
    both equal cshape.c."""
    mask = _circle_outline(radius, slices=2)
    candidates = mesh._row_extremes(mesh.mesh_vertices(mask), 0, 2)
    per_plane = np.bincount(candidates[:, 0] - candidates[:, 0].min())
    assert (per_plane.max() > mesh.SMALL_PLANE) == hull  # the path this case is meant to take
    spacing = (2.5, 0.7, 0.9)
    *_, diameters = _py_mesh(mask, spacing)
    ours = shape._diameters(mesh.mesh_vertices(mask), np.asarray(spacing))
    ours = [ours[name] for name in ("Maximum2DDiameterSlice", "Maximum2DDiameterColumn",
                                    "Maximum2DDiameterRow", "Maximum3DDiameter")]
    assert np.allclose(ours, diameters, rtol=1e-10)


def test_plane_search_with_and_without_hull_agree(monkeypatch):
    """The farthest pair of a plane is the same searched over its hull or over all candidates."""
    rng = np.random.default_rng(3)
    masks = [_circle_outline(90)] + [np.pad(rng.random((4, 30, 30)) < 0.5, 1) for _ in range(5)]
    for mask in masks:
        half = mesh.mesh_vertices(mask)
        monkeypatch.setattr(mesh, "SMALL_PLANE", 0)
        with_hull = mesh.diameters(half, (1.7, 0.6, 0.8))
        monkeypatch.setattr(mesh, "SMALL_PLANE", 10 ** 9)
        without = mesh.diameters(half, (1.7, 0.6, 0.8))
        assert np.array_equal(with_hull, without)


def test_generated_cases_equal_pyradiomics():
    for name, image, mask in cases.generated_cases():
        check_case(image, mask)


def test_phantom_equals_pyradiomics_extractor():
    """The phantom through pyradiomics' whole extractor (preCrop, padDistance) as well."""
    _, image, mask = cases.phantom()
    reference = cases.pyradiomics_reference(image, mask, classes=["shape"], image_types=["Original"])
    reference = {name[len("original_shape_"):]: value for name, value in reference.items()}
    _, roi, spacing, _ = shape_inputs(image, mask)
    assert cases.compare(reference, shape.features(roi, spacing)) == []


def test_phantom_peritumoral_ring_equals_pyradiomics():
    """Our rings are hollow: two surfaces, one facing in; pyradiomics' O(V^2) diameters are slow here."""
    _, image, mask = cases.phantom()
    ring = peritumoral_ring(mask, 3.0)
    check_case(image, ring)  # its timing is benchmarks/bench_native.py's ring shape line


@pytest.mark.parametrize("name", cases.sts_names())
def test_sts_tumour_equals_pyradiomics(name):
    _, image, mask = cases.sts_case(name)
    check_case(image, mask)


def test_one_voxel_thick_rois():
    """Flat ROIs: LeastAxisLength and Flatness are 0 (pyradiomics rounds tiny negative eigenvalues
    to 0), 2D diameters per plane as pyradiomics'."""
    # (A straight line along one axis is 1D: pyradiomics' checkMask refuses it, and so do we.)
    disc = np.zeros((6, 9, 11), dtype=np.uint8)
    disc[2, 2:7, 3:9] = 1
    disc[2, 2, 3] = disc[2, 6, 8] = 0
    diagonal = np.zeros((6, 9, 11), dtype=np.uint8)
    diagonal[4, 1:8, 2:9] = np.eye(7, dtype=np.uint8)
    for grid in (disc, diagonal):
        for spacing in ((0.8, 0.8, 2.5), (0.5, 0.7, 5.0)):
            image = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=grid.shape).astype(np.float32))
            mask = sitk.GetImageFromArray(grid)
            image.SetSpacing(spacing)
            mask.SetSpacing(spacing)
            check_case(image, mask)
            ours = shape.features(sitk.GetArrayFromImage(mask) == 1, spacing)
            assert ours["LeastAxisLength"] == 0.0 and ours["Flatness"] == 0.0
