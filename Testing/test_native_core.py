"""The native backend's core: parameter files, crops, mask checks, discretisation,
the coif1 wavelet and the first-order features, each checked against live pyradiomics."""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

import native_cases as nc
from DeepRadScoreLib.errors import Cancelled, InputError
from DeepRadScoreLib.features import filters
from DeepRadScoreLib.features import params as shared_params
from DeepRadScoreLib.features.native import backend, firstorder, params, preprocess
from DeepRadScoreLib.regions import peritumoral_ring

logging.getLogger("radiomics").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def phantom():
    return nc.phantom()


@pytest.fixture(scope="module")
def generated():
    return nc.generated_cases()


def _write(tmp_path, params_dict, name="params.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(params_dict, sort_keys=False))
    return path


def _bundled() -> dict:
    return yaml.safe_load(nc.PARAMS.read_text())


def _firstorder_only(tmp_path):
    p = _bundled()
    p["featureClass"] = {"firstorder": []}
    return _write(tmp_path, p)


def _firstorder_settings():
    p = _bundled()
    p["featureClass"] = {"firstorder": []}
    return params.from_dict(p, "firstorder-only")


def _pyradiomics_inputs(image, mask, pad=5):
    """What pyradiomics' feature classes see: its preCrop, then (per filtered image) the box."""
    from radiomics import imageoperations as io

    mask = sitk.Cast(mask, sitk.sitkUInt32)
    box, _ = io.checkMask(image, mask, label=1)
    image_c, mask_c = io.cropToTumorMask(image, mask, box, padDistance=pad)
    box_c, _ = io.checkMask(image_c, mask_c)
    return image_c, mask_c, box_c


# --- parameter files ---------------------------------------------------------------------------

def test_bundled_parameters():
    settings = params.load()
    assert settings.image_types == ("Original", "Wavelet")
    assert (settings.bin_width, settings.label, settings.pre_crop, settings.pad_distance) == (25, 1, True, 5)
    assert [c for c, _ in settings.classes] == ["shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.bin_width = 10


def test_feature_names_match_pyradiomics():
    """851 keys per ROI in pyradiomics' order, found without pyradiomics (needs every module)."""
    from DeepRadScoreLib.features import radiomics

    names = backend.roi_feature_names(params.load())
    assert len(names) == 851
    assert list(names) == list(radiomics._roi_feature_names(shared_params.read(nc.PARAMS)))
    assert backend.feature_names() == radiomics.feature_names()


@pytest.mark.parametrize("cls", ["firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm", "shape"])
def test_module_names_are_pyradiomics_non_deprecated(cls):
    from radiomics import getFeatureClasses

    expected = [n for n, deprecated in getFeatureClasses()[cls].getFeatureNames().items() if not deprecated]
    assert list(params.feature_module(cls).NAMES) == expected


@pytest.mark.parametrize("section, key, value, message", [
    ("imageType", "Wavelet", {"label": 2}, "setting 'label' under imageType 'Wavelet'"),
    ("featureClass", "glcm", ["NoSuchFeature"], "feature glcm/NoSuchFeature"),
])
def test_unsupported_parameters_are_one_line_errors(tmp_path, section, key, value, message):
    p = _bundled()
    p[section][key] = value
    path = _write(tmp_path, p)
    with pytest.raises(InputError) as err:
        params.load(path)
    text = str(err.value)
    assert text == (f"{path}: the native radiomics backend does not reproduce {message}; "
                    "use --radiomics-backend pyradiomics for it")
    assert "\n" not in text


@pytest.mark.parametrize("bad", ["setting: [1, 2", "- a list", "setting: {binWidth: -5}",
                                 "setting: {binWidth: true}", "setting: {noSuchSetting: 1}",
                                 "somethingElse: {}", "setting: {padDistance: 1.5}"])
def test_invalid_parameter_files(tmp_path, bad):
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    with pytest.raises(InputError, match=r"invalid pyradiomics parameter file"):
        params.load(path)
    with pytest.raises(InputError, match="not found"):
        params.load(tmp_path / "missing.yaml")


def test_no_op_defaults_and_reproduced_settings_are_accepted(tmp_path):
    p = _bundled()
    p["setting"].update({"normalize": False, "interpolator": "sitkLinear", "force2Ddimension": 2,
                         "distances": [1], "symmetricalGLCM": True, "gldm_a": 0, "wavelet": "coif1",
                         "level": 1, "start_level": 0, "voxelArrayShift": 0, "sigma": [1.0, 2.0],
                         "minimumROIDimensions": 3, "minimumROISize": 20, "binWidth": 12.5})
    p["imageType"] = {"Wavelet": {"binWidth": 10}, "Original": None}
    p["featureClass"] = {"glcm": ["Contrast", "Autocorrelation", "Contrast"], "firstorder": None}
    settings = params.load(_write(tmp_path, p))
    assert settings.image_types == ("Wavelet", "Original")
    assert settings.bin_width == 12.5 and settings.bin_width_for("Wavelet") == 10
    assert settings.bin_width_for("Original") == 12.5
    assert settings.minimum_roi_dimensions == 3 and settings.minimum_roi_size == 20
    assert settings.classes[0] == ("glcm", ("Contrast", "Autocorrelation"))
    assert settings.classes[1] == ("firstorder", firstorder.NAMES)
    assert settings.shape_features == ()
    # A file without featureClass enables every class, in pyradiomics' class order.
    empty = params.load(_write(tmp_path, {"setting": {"binWidth": 25}}, "empty.yaml"))
    assert [c for c, _ in empty.classes] == list(params.FEATURE_CLASSES)
    assert empty.image_types == ("Original",) and empty.pre_crop is False


def test_explicit_lists_and_overrides_give_pyradiomics_keys_and_numbers(tmp_path, generated):
    """Feature order of an explicit list, per-image-type bin width, no preCrop: as pyradiomics."""
    p = {"imageType": {"Wavelet": {"binWidth": 10}, "Original": {}},
         "featureClass": {"firstorder": ["Uniformity", "Mean", "Entropy"]},
         "setting": {"binWidth": 12.5, "label": 1, "additionalInfo": False}}
    path = _write(tmp_path, p)
    for name, image, mask in generated[:3]:
        reference = nc.pyradiomics_reference(image, mask, params=path)
        ours = backend.extract_roi(image, mask, params.load(path))
        assert list(ours) == list(reference), name
        assert nc.compare(reference, ours) == [], name


# --- mask checks and crops ----------------------------------------------------------------------

def _mask_like(image, array):
    mask = sitk.GetImageFromArray(array.astype(np.uint8))
    mask.CopyInformation(image)
    return mask


@pytest.mark.parametrize("voxels, problem", [
    ([], "the region is empty"),
    ([(5, 5, 5)], "mask only contains 1 segmented voxel! Cannot extract features for a single voxel."),
    ([(5, 5, 5), (5, 5, 6), (5, 5, 7)], "mask has too few dimensions (number of dimensions 1, minimum required 2)"),
])
def test_roi_checks_as_pyradiomics(generated, voxels, problem):
    from radiomics import imageoperations as io

    _, image, _ = generated[0]
    array = np.zeros(image.GetSize()[::-1], dtype=np.uint8)
    for v in voxels:
        array[v] = 1
    mask = _mask_like(image, array)
    with pytest.raises(InputError) as err:
        backend.extract_roi(image, mask, _firstorder_settings())
    assert str(err.value) == f"mask: {problem}"
    if voxels:  # pyradiomics' own check says the same
        with pytest.raises(ValueError, match=problem.split("(")[0].rstrip()):
            io.checkMask(image, sitk.Cast(mask, sitk.sitkUInt32), label=1, minimumROIDimensions=2)
    with pytest.raises(InputError, match="minimum size: 30, ROI size: 27"):
        preprocess.check_roi(preprocess.roi_array(sitk.GetArrayFromImage(generated[0][2])), "roi",
                             minimum_size=30)


def test_mask_on_another_grid_is_refused(generated):
    _, image, mask = generated[0]
    other = sitk.Image(mask)
    other.SetSpacing((1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="^mask: the mask's origin, spacing or direction"):
        backend.extract_roi(image, other, _firstorder_settings())
    with pytest.raises(InputError, match="^mask: size"):
        backend.extract_roi(image, mask[:-1, :, :], _firstorder_settings())


def test_pre_crop_box_as_pyradiomics(generated, phantom):
    """preCrop (pad 5, clamped at the image border) and the per-class box, as pyradiomics crops."""
    for name, image, mask in generated + [phantom]:
        image_c, mask_c, box_c = _pyradiomics_inputs(image, mask)
        array = sitk.GetArrayFromImage(image)
        roi = sitk.GetArrayFromImage(mask) == 1
        box = preprocess.check_roi(roi, name)
        crop_box = preprocess.pad_box(box, 5, array.shape)
        assert np.array_equal(preprocess.crop(array, crop_box), sitk.GetArrayFromImage(image_c)), name
        lo, hi = preprocess.relative(box, crop_box)
        assert list(lo[::-1]) == list(box_c[0::2]) and list(hi[::-1]) == list(box_c[1::2]), name


# --- discretisation and wavelet ------------------------------------------------------------------

def _band_inputs(image, mask):
    """(name, pyradiomics' feature-class input image array, mask array) for original + 8 bands."""
    from radiomics import imageoperations as io

    image_c, mask_c, box_c = _pyradiomics_inputs(image, mask)
    filtered = [(image_c, "original")] + [(im, n) for im, n, _ in io.getWaveletImage(image_c, mask_c)]
    for im, name in filtered:
        im_bb, mask_bb = io.cropToTumorMask(im, mask_c, box_c)
        yield name, sitk.GetArrayFromImage(im_bb), sitk.GetArrayFromImage(mask_bb) == 1


def _int16_case():
    rng = np.random.default_rng(3)
    hu = rng.integers(-1000, 400, size=(15, 21, 18)).astype(np.int16)
    hu[5:10, 6:14, 5:12] = rng.integers(0, 75, size=(5, 8, 7))   # includes exact bin edges 0, 25, 50
    m = np.zeros(hu.shape, np.uint8)
    m[5:10, 6:14, 5:12] = 1
    image = sitk.GetImageFromArray(hu)
    mask = sitk.GetImageFromArray(m)
    return "int16", image, mask


@pytest.mark.parametrize("bin_width", [25, 12.5, 7])
def test_discretise_as_pyradiomics(generated, phantom, bin_width):
    from radiomics import imageoperations as io

    for case, image, mask in generated + [phantom, _int16_case()]:
        for name, grey, roi in _band_inputs(image, mask):
            expected, _ = io.binImage(grey, roi, binWidth=bin_width)
            ours = preprocess.discretise(grey, roi, bin_width)
            assert np.array_equal(ours[roi], expected[roi]), (case, name)
            assert ours[roi].min() == 1


def test_discretise_flat_on_an_edge():
    from radiomics import imageoperations as io

    grey = np.full((3, 3, 3), 50.0, dtype=np.float32)
    roi = np.ones_like(grey, dtype=bool)
    assert list(preprocess.bin_edges(grey[roi], 25)) == [50.0, 75.0] == list(io.getBinEdges(grey[roi], binWidth=25))
    assert set(preprocess.discretise(grey, roi, 25)[roi]) == {1}


def test_wavelet_bands_equal_pyradiomics(generated, phantom):
    """Names, order, dtype and values (exactly) of the 8 bands, odd and even crop sizes."""
    from radiomics import imageoperations as io

    for case, image, mask in generated + [phantom, _int16_case()]:
        image_c, mask_c, _ = _pyradiomics_inputs(image, mask)
        theirs = [(n, sitk.GetArrayFromImage(im)) for im, n, _ in io.getWaveletImage(image_c, mask_c)]
        ours = list(filters.wavelet_bands(sitk.GetArrayFromImage(image_c)))
        assert [n for n, _ in ours] == [n for n, _ in theirs] == list(filters.wavelet_band_names())
        for (name, a), (_, b) in zip(ours, theirs):
            assert a.dtype == b.dtype and a.shape == b.shape, (case, name)
            assert np.array_equal(a, b), (case, name)


def test_wavelet_reach_bounds_the_dependence(phantom):
    """A band's values more than ``wavelet_reach`` inside a crop equal those of a larger crop."""
    _, image, _ = phantom
    array = sitk.GetArrayFromImage(image)[10:40, 50:130, 60:141]
    reach = filters.wavelet_reach()
    assert 1 <= reach <= 5  # fits in padDistance 5: the shared filtering applies
    inner = (np.array([7, 9, 8]), np.array([20, 60, 59]))
    small = (inner[0] - reach, inner[1] + reach)
    big = dict(filters.wavelet_bands(array))
    for name, band in filters.wavelet_bands(preprocess.crop(array, small)):
        a = preprocess.crop(band, preprocess.relative(inner, small))
        np.testing.assert_allclose(a, preprocess.crop(big[name], inner), rtol=1e-6, atol=1e-3)
    # One voxel less margin and the periodic wrap reaches the ROI: the test above can fail.
    tight = (inner[0] - reach + 1, inner[1] + reach - 1)
    changed = any(not np.allclose(preprocess.crop(band, preprocess.relative(inner, tight)),
                                  preprocess.crop(big[name], inner), rtol=1e-6, atol=1e-3)
                  for name, band in filters.wavelet_bands(preprocess.crop(array, tight)))
    assert changed


# --- first order -------------------------------------------------------------------------------

def _firstorder_equal(image, mask, bands=True):
    from radiomics.firstorder import RadiomicsFirstOrder
    from radiomics import imageoperations as io

    image_c, mask_c, box_c = _pyradiomics_inputs(image, mask)
    filtered = [(image_c, "original")]
    if bands:
        filtered += [(im, n) for im, n, _ in io.getWaveletImage(image_c, mask_c)]
    problems = []
    for im, name in filtered:
        im_bb, mask_bb = io.cropToTumorMask(im, mask_c, box_c)
        cls = RadiomicsFirstOrder(im_bb, mask_bb, binWidth=25)
        reference = {k: float(v) for k, v in cls.execute().items()}
        ours = firstorder.features(cls.imageArray, cls.maskArray, im_bb.GetSpacing(), 25)
        assert list(ours) == list(reference) == list(firstorder.NAMES)
        problems += [f"{name}: {p}" for p in nc.compare(reference, ours)]
    return problems


def test_firstorder_generated_and_phantom(generated, phantom):
    for case, image, mask in generated + [phantom, _int16_case()]:
        assert _firstorder_equal(image, mask) == [], case


def test_firstorder_phantom_ring(phantom):
    _, image, mask = phantom
    ring = peritumoral_ring(mask, 3.0, image=image)
    assert _firstorder_equal(image, ring) == []


def test_firstorder_sts_all_tumours():
    """All 18 STS tumours on the original image, the 8 bands on every third case."""
    for n, name in enumerate(nc.sts_names()):
        _, image, mask = nc.sts_case(name)
        assert _firstorder_equal(image, mask, bands=n % 3 == 0) == [], name


# --- the backend on first order only (the shared wavelet, progress, cancel) ----------------------

def test_case_features_share_the_wavelet_exactly(tmp_path, phantom, generated):
    """Tumour + ring through both paths. The three ways of filtering: one joint box (phantom,
    shell), tumour and ring each on its own box clamped at the image (border), the tumour's bands
    taken from the ring's clamped box (anisotropic)."""
    from DeepRadScoreLib.features import radiomics

    path = _firstorder_only(tmp_path)
    settings = params.load(path)
    expected = {"ibsi_phantom": [["tumor", "peritumoral"]], "shell": [["tumor", "peritumoral"]],
                "border": [["tumor"], ["peritumoral"]], "anisotropic": [["peritumoral", "tumor"]]}
    for name, image, mask in [phantom] + [c for c in generated if c[0] in expected]:
        ring = peritumoral_ring(mask, 3.0)
        case = backend._Case(image, {"tumor": mask, "peritumoral": ring}, settings, backend._ROI_LABELS)
        assert [m for m, _ in case._filter_boxes(["tumor", "peritumoral"])] == expected[name]
        reference = radiomics.extract_case_features(image, mask, ring, path)
        ours = backend.extract_case_features(image, mask, ring, path, jobs=2)
        assert list(ours) == list(reference), name
        assert nc.compare(reference, ours) == [], name


def test_progress_cancel_and_errors(tmp_path, generated):
    from DeepRadScoreLib.features import radiomics

    _, image, mask = generated[0]
    ring = peritumoral_ring(mask, 3.0)
    path = _firstorder_only(tmp_path)
    seen = []
    backend.extract_case_features(image, mask, ring, path, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and seen[-1] == (1.0, "radiomics done")
    assert len(seen) >= 18
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        backend.extract_case_features(image, mask, ring, path, cancel=cancel)
    assert len(calls) == 4
    # A one-voxel ring: the same one-line error as the pyradiomics path.
    array = np.zeros(image.GetSize()[::-1], np.uint8)
    array[2, 2, 2] = 1
    dot = _mask_like(image, array)
    with pytest.raises(InputError) as native_error:
        backend.extract_case_features(image, mask, dot, path)
    with pytest.raises(InputError) as pyradiomics_error:
        radiomics.extract_case_features(image, mask, dot, path)
    assert str(native_error.value) == str(pyradiomics_error.value)
