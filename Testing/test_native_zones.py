"""Native GLSZM, GLDM and NGTDM (features/native) equal pyradiomics' own classes.

Each check feeds our module exactly what pyradiomics' feature class sees inside its extractor
(the pre-cropped image, the Original or wavelet band, cropped to the ROI's bounding box and
discretised by the class itself) and compares with that class's ``execute()`` at relative 1e-6,
so these modules are tested on their own, whatever the native preprocessing does. One test runs
the whole extractor to show that this harness is what the extractor does. Hand-checkable
matrices (pyradiomics' documented 2D examples) and a naive voxel-loop reference pin the
definitions independently of pyradiomics' code.
"""
from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
import SimpleITK as sitk

import native_cases as nc
from DeepRadScoreLib import regions
from DeepRadScoreLib.features.native import gldm, glszm, ngtdm

# pyradiomics is the reference: imported outright, so a venv without it fails here, not skips.
from radiomics import featureextractor, imageoperations
from radiomics import gldm as py_gldm, glszm as py_glszm, ngtdm as py_ngtdm

logging.getLogger("radiomics").setLevel(logging.ERROR)

CLASSES = {"glszm": (py_glszm.RadiomicsGLSZM, glszm), "gldm": (py_gldm.RadiomicsGLDM, gldm),
           "ngtdm": (py_ngtdm.RadiomicsNGTDM, ngtdm)}


def class_inputs(image: sitk.Image, mask: sitk.Image, wavelet: bool = True):
    """(image type, cropped image, cropped mask, settings) as pyradiomics' extractor makes them.

    The extractor's own steps for our parameter file: loadImage (preCrop with padDistance 5),
    checkMask's bounding box, the Original / Wavelet generators, then the crop to the bounding
    box (padDistance 0 outside voxel-based mode) that computeFeatures' classes receive.
    """
    extractor = featureextractor.RadiomicsFeatureExtractor(str(nc.PARAMS))
    settings = extractor.settings.copy()
    image, mask = extractor.loadImage(image, mask, None, **settings)
    box, _ = imageoperations.checkMask(image, mask, **settings)
    generators = [imageoperations.getOriginalImage(image, mask, **settings)]
    if wavelet:
        generators.append(imageoperations.getWaveletImage(image, mask, **settings))
    for band, name, kwargs in itertools.chain(*generators):
        cropped_image, cropped_mask = imageoperations.cropToTumorMask(band, mask, box, padDistance=0)
        yield name, cropped_image, cropped_mask, kwargs


def mismatches(case: str, image: sitk.Image, mask: sitk.Image, wavelet: bool = True) -> list[str]:
    """Every feature (of the three classes, every image type) where we differ from pyradiomics."""
    problems = []
    for name, cropped_image, cropped_mask, kwargs in class_inputs(image, mask, wavelet):
        for short, (reference_class, module) in CLASSES.items():
            reference = reference_class(cropped_image, cropped_mask, **kwargs)
            expected = {k: float(v) for k, v in reference.execute().items()}
            ours = module.features(reference.imageArray, reference.maskArray)
            assert tuple(ours) == module.NAMES
            problems += [f"{case} {name} {short} {p}" for p in nc.compare(expected, ours)]
    return problems


@pytest.mark.parametrize("short", sorted(CLASSES))
def test_names_are_pyradiomics_non_deprecated_names_in_its_order(short):
    reference_class, module = CLASSES[short]
    expected = tuple(k for k, deprecated in reference_class.getFeatureNames().items() if not deprecated)
    assert module.NAMES == expected
    assert len(module.NAMES) == {"glszm": 16, "gldm": 14, "ngtdm": 5}[short]


def test_generated_cases_and_phantom_original_and_wavelet():
    problems = []
    for case, image, mask in [nc.phantom()] + nc.generated_cases():
        problems += mismatches(case, image, mask)
    assert problems == []


def test_all_sts_tumours_original_and_wavelet():
    # About 15 s of one core, most of it pyradiomics' own wavelet filtering and classes.
    names = nc.sts_names()
    assert len(names) == 18
    problems = []
    for name in names:
        problems += mismatches(*nc.sts_case(name), wavelet=True)
    assert problems == []


def test_peritumoral_ring_of_the_phantom():
    case, image, mask = nc.phantom()
    ring = regions.peritumoral_ring(mask, 3.0)
    ring_voxels = sitk.GetArrayViewFromImage(ring).astype(bool)
    assert ring_voxels.sum() > 1000 and not (ring_voxels & sitk.GetArrayViewFromImage(mask).astype(bool)).any()
    assert mismatches("phantom_ring", image, ring) == []


def test_harness_is_what_the_extractor_computes():
    # The extractor end to end (class-restricted) on a generated case, Original and wavelet:
    # the per-class inputs above must be exactly what it feeds its classes.
    case, image, mask = nc.generated_cases()[2]  # anisotropic
    expected = nc.pyradiomics_reference(image, mask, classes=list(CLASSES))
    ours = {}
    for name, cropped_image, cropped_mask, kwargs in class_inputs(image, mask):
        for short, (reference_class, module) in CLASSES.items():
            q = reference_class(cropped_image, cropped_mask, **kwargs)
            ours.update({f"{name}_{short}_{k}": v
                         for k, v in module.features(q.imageArray, q.maskArray).items()})
    assert len(expected) == 9 * 35
    assert nc.compare(expected, ours) == []


# --- Definitions pinned without pyradiomics' code -------------------------------------------------

# pyradiomics' documented 2D examples; one slice in 3D has exactly the 8 in-plane neighbours.
DOC_IMAGE = np.array([[5, 2, 5, 4, 4], [3, 3, 3, 1, 3], [2, 1, 1, 1, 3], [4, 2, 2, 2, 3],
                      [3, 5, 3, 3, 2]])[None]
DOC_GLSZM = np.array([[0, 0, 0, 1, 0], [1, 0, 0, 0, 1], [1, 0, 1, 0, 1], [1, 1, 0, 0, 0],
                      [3, 0, 0, 0, 0]])
DOC_GLDM = np.array([[0, 1, 2, 1], [1, 2, 3, 0], [1, 4, 4, 0], [1, 2, 0, 0], [3, 0, 0, 0]])


def _grid(q, mask=None):
    mask = np.ones(q.shape, bool) if mask is None else mask
    return gldm.PaddedGrid(*gldm.check_inputs(q, mask))


def test_glszm_and_gldm_matrices_of_the_documented_example():
    grey, size = glszm.zones(_grid(DOC_IMAGE))
    matrix = np.zeros((5, 5), int)
    np.add.at(matrix, (grey - 1, size - 1), 1)
    assert (matrix == DOC_GLSZM).all()
    grid = _grid(DOC_IMAGE)
    dependence = gldm.dependence_counts(grid) + 1
    matrix = np.zeros((5, 4), int)
    np.add.at(matrix, (grid.level[grid.roi] - 1, dependence - 1), 1)
    assert (matrix == DOC_GLDM).all()


def naive_ngtdm(q: np.ndarray, mask: np.ndarray) -> dict[int, tuple[int, float]]:
    """n_i and s_i from the definition, one voxel at a time (tests only).

    pyradiomics' convention (its matrix code, not its documentation): a voxel without a
    neighbour in the ROI still counts in n_i and adds 0 to s_i.
    """
    out: dict[int, list] = {}
    for z, y, x in zip(*np.nonzero(mask)):
        values = [q[z + dz, y + dy, x + dx]
                  for dz, dy, dx in itertools.product((-1, 0, 1), repeat=3)
                  if (dz, dy, dx) != (0, 0, 0)
                  and 0 <= z + dz < q.shape[0] and 0 <= y + dy < q.shape[1] and 0 <= x + dx < q.shape[2]
                  and mask[z + dz, y + dy, x + dx]]
        entry = out.setdefault(int(q[z, y, x]), [0, 0.0])
        entry[0] += 1
        if values:
            entry[1] += abs(q[z, y, x] - np.mean(values))
    return {k: (n, s) for k, (n, s) in out.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ngtdm_rows_equal_the_voxel_by_voxel_definition(seed):
    rng = np.random.default_rng(seed)
    q = rng.integers(1, 5, size=(4, 6, 5))
    mask = rng.random(q.shape) < 0.6  # holes, isolated voxels and ROI voxels on every face
    levels, n, s = ngtdm.grey_tone_differences(_grid(q, mask))
    expected = naive_ngtdm(q, mask)
    assert [int(v) for v in levels] == sorted(expected)
    assert n.tolist() == [expected[int(v)][0] for v in levels]
    assert np.allclose(s, [expected[int(v)][1] for v in levels], rtol=1e-12)


def test_values_outside_the_roi_and_the_crop_are_ignored():
    rng = np.random.default_rng(3)
    q = rng.integers(1, 6, size=(6, 7, 8))
    mask = rng.random(q.shape) < 0.5
    scrambled = np.where(mask, q, rng.integers(-50, 50, size=q.shape))
    # A larger grid around the same ROI (a crop with padding instead of the bounding box).
    padded_q, padded_mask = np.pad(scrambled, 3, constant_values=7), np.pad(mask, 3)
    for module in (glszm, gldm, ngtdm):
        assert module.features(q, mask) == module.features(scrambled, mask)
        assert module.features(q, mask) == module.features(padded_q, padded_mask)
    # ...while the ROI's own values do matter (so the check above can fail).
    changed = q.copy()
    changed[tuple(np.argwhere(mask)[0])] += 1
    assert glszm.features(changed, mask) != glszm.features(q, mask)


def _pyradiomics_on_levels(reference_class, levels: np.ndarray, mask: np.ndarray):
    """pyradiomics' class (bin width 1) on a small array: its features and its discretised array."""
    image = sitk.GetImageFromArray(levels.astype(np.float64))
    roi = sitk.GetImageFromArray(mask.astype(np.uint8))
    reference = reference_class(image, roi, binWidth=1, label=1)
    return {k: float(v) for k, v in reference.execute().items()}, reference.imageArray


def test_isolated_voxels_and_a_single_grey_level_follow_pyradiomics_special_values():
    levels = np.full((3, 5, 5), 1)
    levels[2, 4, 4] = 3
    isolated = np.zeros(levels.shape, bool)
    isolated[0, 0, 0] = isolated[2, 4, 4] = isolated[0, 4, 0] = True  # no voxel has a neighbour
    flat = np.zeros(levels.shape, bool)
    flat[1:, 1:4, 1:4] = True  # one grey level, every voxel with neighbours
    for mask in (isolated, flat):
        for short, (reference_class, module) in CLASSES.items():
            expected, q = _pyradiomics_on_levels(reference_class, levels, mask)
            assert nc.compare(expected, module.features(q, mask)) == [], short
    values = ngtdm.features(levels, isolated)
    assert values["Complexity"] == 0 and values["Coarseness"] == 1e6 and values["Contrast"] == 0
    assert ngtdm.features(levels, flat)["Coarseness"] == 1e6
    assert glszm.features(levels, flat)["ZonePercentage"] == 1 / flat.sum()


@pytest.mark.parametrize("density", [0.1, 0.35, 0.8])
def test_random_rois_with_holes_and_isolated_voxels_equal_pyradiomics(density):
    rng = np.random.default_rng(int(density * 100))
    levels = rng.integers(1, 7, size=(5, 9, 8))
    mask = rng.random(levels.shape) < density
    for short, (reference_class, module) in CLASSES.items():
        expected, q = _pyradiomics_on_levels(reference_class, levels, mask)
        assert nc.compare(expected, module.features(q, mask)) == [], short


def test_bad_input_is_refused():
    q = np.ones((2, 3, 4), int)
    with pytest.raises(ValueError, match="empty"):
        glszm.features(q, np.zeros(q.shape, bool))
    with pytest.raises(ValueError, match="one 3D grid"):
        gldm.features(q, np.ones((2, 3, 5), bool))
    with pytest.raises(ValueError, match=">= 1"):
        ngtdm.features(q - 1, np.ones(q.shape, bool))
