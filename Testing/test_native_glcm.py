"""The native GLCM and GLRLM classes equal pyradiomics', each checked on its own.

Every check runs pyradiomics side by side: the case goes through pyradiomics' own preprocessing
(``loadImage`` with preCrop, ``checkMask``, the Original / coif1 Wavelet image generators,
``cropToTumorMask``), pyradiomics' feature class is built on the resulting image and computes the
reference, and the native module gets exactly that class's discretised ``imageArray`` and
``maskArray``. So a difference here is a difference in the GLCM / GLRLM code alone.
"""
from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import native_cases as cases
from DeepRadScoreLib.features.native import glcm, glrlm
from DeepRadScoreLib.regions import peritumoral_ring

NATIVE = Path(glcm.__file__).resolve().parent
# pyradiomics' own warnings on degenerate ROIs (its NaN means over no direction) are expected.
pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning:radiomics"),
              pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning:numpy._core._methods")]


def _classes():
    from radiomics import glcm as py_glcm, glrlm as py_glrlm

    return {"glcm": (py_glcm.RadiomicsGLCM, glcm), "glrlm": (py_glrlm.RadiomicsGLRLM, glrlm)}


def class_inputs(image: sitk.Image, mask: sitk.Image, image_types=("Original", "Wavelet")):
    """(image type name, cropped image, cropped mask, settings) as pyradiomics' extractor makes them."""
    from radiomics import featureextractor, imageoperations

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(str(cases.PARAMS))
    settings = extractor.settings.copy()
    image, mask = extractor.loadImage(image, mask, None, **settings)
    box, corrected = imageoperations.checkMask(image, mask, **settings)
    if corrected is not None:
        mask = corrected
    for image_type in image_types:
        args = settings.copy()
        args.update(extractor.enabledImagetypes.get(image_type, {}))
        generator = getattr(imageoperations, f"get{image_type}Image")(image, mask, **args)
        for band, name, kwargs in generator:
            band, band_mask = imageoperations.cropToTumorMask(band, mask, box)
            yield name, band, band_mask, kwargs


def side_by_side(image, mask, image_types=("Original", "Wavelet"), classes=("glcm", "glrlm")):
    """Problems (empty when equal) and seconds spent per side, over image types and classes."""
    problems, seconds = [], {"pyradiomics": 0.0, "native": 0.0}
    for name, band, band_mask, kwargs in class_inputs(image, mask, image_types):
        for cls_name in classes:
            py_class, module = _classes()[cls_name]
            start = time.perf_counter()
            feature_class = py_class(band, band_mask, **kwargs)
            feature_class.enableAllFeatures()
            reference = {k: float(v) for k, v in feature_class.execute().items()}
            seconds["pyradiomics"] += time.perf_counter() - start
            start = time.perf_counter()
            ours = module.features(feature_class.imageArray, feature_class.maskArray)
            seconds["native"] += time.perf_counter() - start
            problems += [f"{name} {cls_name} {p}" for p in cases.compare(reference, ours)]
    return problems, seconds


def _image(hu: np.ndarray, mask: np.ndarray) -> tuple[sitk.Image, sitk.Image]:
    image = sitk.GetImageFromArray(hu.astype(np.float32))
    roi = sitk.GetImageFromArray(mask.astype(np.uint8))
    roi.CopyInformation(image)
    return image, roi


def edge_cases():
    """ROIs at the edges of the run and direction rules, beyond the shared generated cases."""
    rng = np.random.default_rng(7)
    shape = (16, 16, 16)
    k, j, i = np.indices(shape)
    hu = rng.normal(0, 60, shape)
    box = (abs(k - 8) <= 2) & (abs(j - 8) <= 3) & (abs(i - 8) <= 3)
    out = [
        # Two one-voxel-thick sheets with a gap: along z every run has length 1, yet each line
        # holds two ROI voxels, so pyradiomics keeps that direction for the GLRLM (but the GLCM
        # has no pair along z).
        ("two_sheets", hu, ((k == 6) | (k == 8)) & (abs(j - 8) <= 3) & (abs(i - 8) <= 3)),
        # Isolated voxels: no neighbouring pair in any direction (every GLCM feature NaN, as in
        # pyradiomics), runs of length 1 only.
        ("lattice", hu, (k % 2 == 0) & (j % 2 == 0) & (i % 2 == 0) & (k < 8) & (j < 8) & (i < 8)),
        # A checkerboard of two levels: runs of length 1 along the axes, long along diagonals.
        ("checker", np.where((k + j + i) % 2 == 0, 0.0, 200.0), box),
        # A wide HU spread: many grey levels absent from the ROI inside its range.
        ("wide", rng.normal(0, 2000, shape), box),
    ]
    return [(name, *_image(h, m)) for name, h, m in out]


@lru_cache(maxsize=None)
def _phantom():
    return cases.phantom()


def test_names_are_pyradiomics_non_deprecated_features_in_order():
    for py_class, module in _classes().values():
        expected = tuple(name for name, deprecated in py_class.getFeatureNames().items() if not deprecated)
        assert module.NAMES == expected


def test_modules_do_not_import_radiomics():
    for path in (NATIVE / "glcm.py", NATIVE / "glrlm.py"):
        tree = ast.parse(path.read_text())
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [name for name in imported if name.split(".")[0] == "radiomics"], path
    # And they compute where pyradiomics cannot be imported at all.
    code = (
        "import sys; sys.modules['radiomics'] = None\n"
        "import numpy as np\n"
        "from DeepRadScoreLib.features.native import glcm, glrlm\n"
        "q = np.arange(1, 28).reshape(3, 3, 3) % 4 + 1\n"
        "m = np.ones((3, 3, 3), bool)\n"
        "print(len(glcm.features(q, m)) + len(glrlm.features(q, m)))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(NATIVE.parents[2]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "40"


def test_documented_glcm_example():
    """pyradiomics' documented 5x5 example: the symmetrical GLCM at 0 degrees (along x)."""
    image = np.array([[1, 2, 5, 2, 3], [3, 2, 1, 3, 1], [1, 3, 5, 5, 2], [1, 1, 1, 1, 2], [1, 2, 4, 3, 5]])
    expected = np.array([[6, 4, 3, 0, 0], [4, 0, 2, 1, 3], [3, 2, 0, 1, 2], [0, 1, 1, 0, 0], [0, 3, 2, 0, 2]])
    counts, levels = glcm.matrices(image[None], np.ones((1, 5, 5), bool))
    along_x = [a for a, d in enumerate(glcm.directions_3d()) if tuple(d) == (0, 0, 1)]
    assert levels.tolist() == [1, 2, 3, 4, 5]
    assert np.array_equal(counts[along_x[0]], expected)
    assert len(glcm.directions_3d()) == 13


def test_documented_glrlm_example():
    """pyradiomics' documented 5x5 example: the run length matrix at 0 degrees (along x)."""
    image = np.array([[5, 2, 5, 4, 4], [3, 3, 3, 1, 3], [2, 1, 1, 1, 3], [4, 2, 2, 2, 3], [3, 5, 3, 3, 2]])
    expected = np.array([[1, 0, 1, 0, 0], [3, 0, 1, 0, 0], [4, 1, 1, 0, 0], [1, 1, 0, 0, 0], [3, 0, 0, 0, 0]])
    counts, _ = glrlm.matrices(image[None], np.ones((1, 5, 5), bool))
    along_x = [a for a, d in enumerate(glcm.directions_3d()) if tuple(d) == (0, 0, 1)][0]
    got = np.zeros((5, 5))
    got[:, :counts.shape[2]] = counts[along_x]
    assert np.array_equal(got, expected)
    # A single slice: every direction with a z component has one ROI voxel per line and is
    # dropped (all zero), as pyradiomics drops it.
    with_z = [a for a, d in enumerate(glcm.directions_3d()) if d[0] != 0]
    assert len(with_z) == 9 and not counts[with_z].any()


def _runs_by_walking_lines(q, mask, direction):
    """The (level index, run length) counts of one direction, by stepping along every line voxel
    by voxel: the definition, independent of the module's flags and walks."""
    levels = np.unique(q[mask])
    counts = {}
    d = np.array(direction)
    for start in zip(*np.nonzero(mask)):
        p = np.array(start)
        before = p - d
        if (before >= 0).all() and (before < mask.shape).all() and mask[tuple(before)] and q[tuple(before)] == q[start]:
            continue  # not the first voxel of its run
        length = 1
        while True:
            p = p + d
            if not ((p >= 0).all() and (p < mask.shape).all() and mask[tuple(p)] and q[tuple(p)] == q[start]):
                break
            length += 1
        key = (int(np.searchsorted(levels, q[start])), length)
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_run_lengths_equal_walking_every_line():
    """Every direction (three array axes, read off transposed copies; ten diagonals, walked from
    the run starts) against the definition, on random ROIs with few levels (long runs), a full
    box, and a one-slice ROI under force2D's planes."""
    rng = np.random.default_rng(5)
    cases = []
    for _ in range(12):
        shape = tuple(int(n) for n in rng.integers(2, 9, 3))
        mask = rng.random(shape) < rng.uniform(0.3, 1.0)
        mask.flat[0] = True
        cases.append((rng.integers(1, int(rng.integers(2, 5)), shape), mask, None))
    cases.append((np.ones((3, 4, 5), int), np.ones((3, 4, 5), bool), None))
    flat = rng.integers(1, 3, (1, 6, 7))
    cases += [(flat, np.ones_like(flat, bool), plane) for plane in (0, 1, 2)]
    for q, mask, plane in cases:
        counts, _ = glrlm.matrices(q, mask, plane)
        for a, direction in enumerate(glcm.directions((1,), plane)):
            expected = _runs_by_walking_lines(q, mask, direction)
            got = {(int(i), int(j) + 1): int(c) for i, j in zip(*np.nonzero(counts[a])) for c in [counts[a, i, j]]}
            if not any(length > 1 for _, length in expected):
                # pyradiomics drops a direction without a line of two ROI voxels; a direction
                # whose lines do hold two (split by a level change) keeps its runs of length 1.
                assert got in ({}, expected), (q.shape, direction)
            else:
                assert got == expected, (q.shape, direction)


def test_outside_mask_values_are_ignored():
    name, image, mask = cases.generated_cases()[2]
    _, band, band_mask, kwargs = next(class_inputs(image, mask, ("Original",)))
    py_class, _ = _classes()["glcm"]
    feature_class = py_class(band, band_mask, **kwargs)
    q, m = feature_class.imageArray, feature_class.maskArray
    scrambled = np.where(m, q, np.random.default_rng(0).integers(-5, 500, q.shape))
    for module in (glcm, glrlm):
        assert module.features(q, m) == module.features(scrambled, m)


def test_bad_input_is_refused():
    q = np.ones((3, 3, 3), dtype=int)
    mask = np.ones((3, 3, 3), dtype=bool)
    for module in (glcm, glrlm):
        with pytest.raises(ValueError, match=">= 1"):
            module.features(q - 1, mask)
        with pytest.raises(ValueError, match="empty"):
            module.features(q, ~mask)
        with pytest.raises(ValueError, match="3D"):
            module.features(q[0], mask[0])


def test_phantom_original_and_wavelet():
    problems, _ = side_by_side(*_phantom()[1:])
    assert not problems, problems[:20]


def test_generated_and_edge_cases_original_and_wavelet():
    problems = []
    for name, image, mask in cases.generated_cases() + edge_cases():
        found, _ = side_by_side(image, mask)
        problems += [f"{name}: {p}" for p in found]
    assert not problems, problems[:20]


def test_sts_tumours_original():
    problems = []
    for sts in cases.sts_names():
        name, image, mask = cases.sts_case(sts)
        found, _ = side_by_side(image, mask, ("Original",))
        problems += [f"{name}: {p}" for p in found]
    assert len(cases.sts_names()) == 18
    assert not problems, problems[:20]


@pytest.mark.parametrize("sts", cases.sts_names())
def test_sts_tumours_wavelet(sts):
    name, image, mask = cases.sts_case(sts)
    problems, _ = side_by_side(image, mask, ("Wavelet",))
    assert not problems, problems[:20]


def test_phantom_peritumoral_ring():
    """The engine's 3 mm ring around the phantom's ROI: a hollow ROI with inner and outer walls."""
    _, image, mask = _phantom()
    ring = peritumoral_ring(mask, 3.0)
    assert sitk.GetArrayViewFromImage(ring).sum() > 1000
    problems, _ = side_by_side(image, ring)
    assert not problems, problems[:20]


def test_harness_matches_the_extractor():
    """The per-class inputs above give the numbers of pyradiomics' full extractor."""
    _, image, mask = cases.generated_cases()[6]
    reference = cases.pyradiomics_reference(image, mask, classes=["glcm", "glrlm"])
    ours = {}
    for name, band, band_mask, kwargs in class_inputs(image, mask):
        for cls_name, (py_class, module) in _classes().items():
            q = py_class(band, band_mask, **kwargs)
            values = module.features(q.imageArray, q.maskArray)
            ours.update({f"{name}_{cls_name}_{k}": v for k, v in values.items()})
    assert len(reference) == 9 * (24 + 16)
    assert not cases.compare(reference, ours)
