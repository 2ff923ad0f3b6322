"""The native backend against live pyradiomics for the parameter files users write.

Each test builds a parameter mapping, runs pyradiomics' ``RadiomicsFeatureExtractor(mapping)``
and the native backend's ``extract_roi`` on the same image and mask in this process, and requires
the same names in the same order and values equal to relative 1e-6 (``native_cases.compare``;
a wider tolerance is named where interpolation makes 1e-6 impossible). The cases are small (the
generated 24 x 32 x 32 ones and crops of the phantom) so that the matrix stays quick; long sweeps
over the STS cases are ``benchmarks/bench_native.py``'s.
"""
from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import SimpleITK as sitk

import native_cases as cases
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.native import backend, params

# Texture classes on every image: small, fast, and every class's code path.
ALL_CLASSES = {"firstorder": [], "glcm": [], "glrlm": [], "glszm": [], "gldm": [], "ngtdm": []}


def _generated(*names):
    return [c for c in cases.generated_cases() if c[0] in names]


def _phantom_crop():
    _, image, mask = cases.phantom()
    array = sitk.GetArrayFromImage(mask)
    k = np.flatnonzero(array.any(axis=(1, 2)))
    lo = max(int(k[0]) - 2, 0)
    image, mask = image[:, :, lo:lo + 8], mask[:, :, lo:lo + 8]
    return "phantom_8_slices", image, mask


def pyradiomics_features(mapping: dict, image, mask) -> dict[str, float]:
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(copy.deepcopy(mapping))
    result = extractor.execute(image, mask)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def check(mapping: dict, image, mask, rtol: float = 1e-6, atol: float = 1e-9) -> dict[str, float]:
    reference = pyradiomics_features(mapping, image, mask)
    settings = params.from_dict(copy.deepcopy(mapping), "matrix")
    ours = backend.extract_roi(image, mask, settings)
    assert list(ours) == list(reference)
    assert list(backend.roi_feature_names(settings)) == list(reference)
    assert cases.compare(reference, ours, rtol=rtol, atol=atol) == []
    return ours


def _mapping(setting=None, image_type=None, classes=None):
    return {"setting": {"binWidth": 25, "label": 1, **(setting or {})},
            "imageType": image_type or {"Original": {}},
            "featureClass": classes or dict(ALL_CLASSES)}


@pytest.mark.parametrize("setting", [
    {"binCount": 16}, {"binCount": 7, "preCrop": True}, {"voxelArrayShift": 1000},
    {"voxelArrayShift": 300, "binCount": 32},
])
def test_discretisation_and_shift_settings(setting):
    for name, image, mask in _generated("border", "flat", "many_zones"):
        check(_mapping(setting, classes={"firstorder": [], "glcm": [], "glszm": []}), image, mask)


@pytest.mark.parametrize("image_type", [
    {"Square": {}}, {"SquareRoot": {}}, {"Logarithm": {}}, {"Exponential": {}},
    {"Gradient": {}}, {"Gradient": {"gradientUseSpacing": False}},
    {"LoG": {"sigma": [1.0, 2, 0.5]}},
    {"Wavelet": {"wavelet": "haar"}}, {"Wavelet": {"wavelet": "db2", "level": 2}},
    {"Wavelet": {"start_level": 1}},
])
@pytest.mark.parametrize("pre_crop", [True, False])
def test_image_types(image_type, pre_crop):
    for name, image, mask in _generated("anisotropic", "border"):
        check(_mapping({"preCrop": pre_crop}, image_type, {"firstorder": [], "glcm": ["Contrast", "Idmn"],
                                                          "glrlm": ["RunEntropy"]}), image, mask)


def test_exponential_of_a_ct_in_hounsfield_units():
    """CT values up to ~3000: Exponential's scale log(M) / M, on the phantom itself."""
    name, image, mask = _phantom_crop()
    check(_mapping({"preCrop": True}, {"Exponential": {}, "Logarithm": {}, "Square": {}, "SquareRoot": {}},
                   dict(ALL_CLASSES)), image, mask)


def test_per_image_type_overrides():
    mapping = _mapping({"preCrop": True, "sigma": [3.0], "binWidth": 10},
                       {"Original": {"binCount": 12}, "LoG": {"sigma": [1.5], "binWidth": 5},
                        "Wavelet": {"wavelet": "sym2", "voxelArrayShift": 50}, "Square": {}},
                       {"firstorder": [], "glcm": ["Contrast"], "ngtdm": [], "shape": []})
    for name, image, mask in _generated("shell"):
        check(mapping, image, mask)


def test_a_sigma_pyradiomics_would_skip_is_refused_with_one_line():
    name, image, mask = _generated("tiny")[0]
    mapping = _mapping({"preCrop": True, "padDistance": 1}, {"LoG": {"sigma": [5.0]}})
    with pytest.raises(InputError, match=r"^mask: .* too small for LoG sigma 5.0 mm") as err:
        backend.extract_roi(image, mask, params.from_dict(mapping))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("setting", [
    {"normalize": True}, {"normalize": True, "normalizeScale": 100, "removeOutliers": 3},
    {"resegmentRange": [-100, 50]}, {"resegmentRange": [-50]},
    {"resegmentRange": [0.2, 0.9], "resegmentMode": "relative", "resegmentShape": True},
    {"resegmentRange": [-2, 2], "resegmentMode": "sigma", "preCrop": True},
    {"resegmentRange": [-1.5, 1], "resegmentMode": "sigma", "resegmentShape": True},
])
def test_normalisation_and_resegmentation(setting):
    classes = {"firstorder": [], "glcm": ["Contrast"], "glszm": [], "shape": []}
    for name, image, mask in _generated("anisotropic", "shell"):
        check(_mapping(setting, classes=classes), image, mask)


@pytest.mark.parametrize("setting", [
    {"resampledPixelSpacing": [1, 1, 1]},
    {"resampledPixelSpacing": [0.6, 0.6, 0.6], "interpolator": "sitkLinear", "padDistance": 2},
    {"resampledPixelSpacing": [2, 2, 0], "interpolator": "sitkNearestNeighbor"},
    {"resampledPixelSpacing": [0.8, 0.8, 2.5], "preCrop": True},   # the image's own spacing: only a crop
    {"resampledPixelSpacing": [1, 1, 1], "normalize": True, "resegmentRange": [-1, 20]},
])
def test_resampling(setting):
    """SimpleITK's resampling, called as pyradiomics calls it (B-spline by default, nearest
    neighbour for the mask): the same calls give the same voxels, so 1e-6 holds here too."""
    image_types = {"Original": {}, "Wavelet": {}, "LoG": {"sigma": [1.0]}}
    for name, image, mask in _generated("anisotropic", "border", "one_voxel_thick"):
        check(_mapping(setting, image_types, {"firstorder": [], "glcm": ["Idmn"], "shape": []}), image, mask)


@pytest.mark.parametrize("setting", [
    {"distances": [2]}, {"distances": [1, 3]}, {"symmetricalGLCM": False},
    {"symmetricalGLCM": False, "distances": [1, 2]},
    {"weightingNorm": "infinity"}, {"weightingNorm": "euclidean"}, {"weightingNorm": "manhattan"},
    {"weightingNorm": "no_weighting", "distances": [2]}, {"gldm_a": 1}, {"gldm_a": 2, "distances": [1, 2]},
])
def test_texture_class_settings(setting):
    classes = {"glcm": [], "glrlm": [], "gldm": [], "ngtdm": [], "glszm": ["ZoneEntropy"]}
    for name, image, mask in _generated("anisotropic", "many_zones", "one_voxel_thick"):
        check(_mapping({**setting, "binWidth": 10}, classes=classes), image, mask)


def test_deprecated_features_listed_by_name():
    """pyradiomics computes deprecated shape and first-order features listed by name, and yields
    nothing for those whose method only raises a DeprecationWarning."""
    classes = {"shape": ["Compactness1", "VoxelVolume", "Compactness2", "SphericalDisproportion"],
               "firstorder": ["StandardDeviation", "Mean"],
               "glcm": ["Dissimilarity", "Contrast", "Homogeneity1", "Homogeneity2", "SumVariance"],
               "gldm": ["DependencePercentage", "GrayLevelNonUniformityNormalized", "DependenceEntropy"]}
    for name, image, mask in _generated("anisotropic", "flat"):
        ours = check(_mapping(classes=classes), image, mask)
        assert "original_glcm_Dissimilarity" not in ours and "original_shape_Compactness1" in ours


@pytest.mark.parametrize("setting", [
    {"force2D": True}, {"force2D": True, "force2Ddimension": 1, "distances": [1, 2]},
    {"force2D": True, "force2Ddimension": 2, "weightingNorm": "euclidean", "symmetricalGLCM": False},
])
def test_force2d(setting):
    image_types = {"Original": {}, "Wavelet": {}, "LoG": {"sigma": [1.0]}}
    classes = {"firstorder": ["Mean"], "glcm": [], "glrlm": [], "glszm": [], "gldm": [], "ngtdm": []}
    for name, image, mask in _generated("anisotropic", "shell", "one_voxel_thick"):
        check(_mapping({**setting, "preCrop": True}, image_types, classes), image, mask)


def _coarse_mask(image, mask):
    """The mask on a grid of twice the in-plane spacing, a little shifted: another geometry."""
    reference = sitk.Image([s // 2 for s in mask.GetSize()[:2]] + [mask.GetSize()[2]], sitk.sitkUInt8)
    reference.SetSpacing((mask.GetSpacing()[0] * 2, mask.GetSpacing()[1] * 2, mask.GetSpacing()[2]))
    reference.SetOrigin(tuple(o + 0.3 for o in mask.GetOrigin()))
    reference.SetDirection(mask.GetDirection())
    return sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def test_correct_mask_geometry_tolerance_and_label_channel():
    classes = {"firstorder": [], "glcm": ["Contrast"], "shape": ["VoxelVolume", "MeshVolume"]}
    for name, image, mask in _generated("anisotropic", "shell"):
        coarse = _coarse_mask(image, mask)
        check(_mapping({"correctMask": True}, classes=classes), image, coarse)
        check(_mapping({"correctMask": True, "preCrop": True}, classes=classes), image, coarse)
        check(_mapping({"resampledPixelSpacing": [1, 1, 1]}, classes=classes), image, coarse)
        with pytest.raises(InputError, match="^mask: size .* correctMask"):
            backend.extract_roi(image, coarse, params.from_dict(_mapping(classes=classes)))
        # Within geometryTolerance a slightly moved mask is the image's grid.
        moved = sitk.Image(mask)
        moved.SetOrigin(tuple(o + 1e-4 for o in mask.GetOrigin()))
        check(_mapping({"geometryTolerance": 1e-3}, classes=classes), image, moved)
        with pytest.raises(InputError, match="geometryTolerance"):
            backend.extract_roi(image, moved, params.from_dict(_mapping(classes=classes)))
        # A two-channel segmentation: label_channel picks the channel.
        other = sitk.Cast(sitk.BinaryDilate(mask, [1, 1, 1]), sitk.sitkUInt8)
        other.CopyInformation(mask)
        vector = sitk.Compose(mask, other)
        check(_mapping({"label_channel": 1}, classes=classes), image, vector)
        check(_mapping({"label_channel": 0}, classes=classes), image, vector)


def test_shape2d_on_one_slice_rois():
    """shape2D needs force2D and a one-slice ROI (along force2Ddimension); pyradiomics' quirky
    gate reads the box size in x, y, z order. Discs, a ring and diagonal pixels, anisotropic."""
    classes = {"shape2D": [], "shape": ["VoxelVolume"], "firstorder": ["Mean"]}
    name, image, mask = _generated("one_voxel_thick")[0]
    ring = sitk.GetArrayFromImage(mask)
    ring[9, 14:17, 15:18] = 0  # a hole
    ring[9, 3, 3] = ring[9, 4, 4] = 1  # two diagonal pixels apart from the disc
    holed = sitk.GetImageFromArray(ring)
    holed.CopyInformation(mask)
    for roi in (mask, holed):
        check(_mapping({"force2D": True}, classes=classes), image, roi)
        check(_mapping({"force2D": True, "preCrop": True},
                       classes={"shape2D": ["Perimeter", "SphericalDisproportion"]}), image, roi)
    # Without force2D pyradiomics gives no shape2D features, and neither do we.
    assert not [k for k in check(_mapping(classes=classes), image, mask) if "shape2D" in k]
    # A multi-slice ROI: pyradiomics raises; so do we, with its message.
    name, image, mask = _generated("anisotropic")[0]
    with pytest.raises(InputError, match="Size of the mask in dimension 0 is more than 1"):
        backend.extract_roi(image, mask, params.from_dict(_mapping({"force2D": True}, classes=classes)))


def test_preparation_settings_under_an_image_type_change_nothing_as_in_pyradiomics():
    """pyradiomics normalises, resamples, crops and resegments once, with the global settings."""
    mapping = _mapping({"preCrop": True},
                       {"Original": {"normalize": True, "resampledPixelSpacing": [2, 2, 2], "padDistance": 1},
                        "Square": {"resegmentRange": [-50, 50], "minimumROISize": 3}},
                       {"firstorder": [], "glcm": ["Contrast"]})
    for name, image, mask in _generated("anisotropic"):
        check(mapping, image, mask)


EVERY_IMAGE_TYPE = {"Original": {}, "LoG": {"sigma": [1.0, 2.0]}, "Wavelet": {"wavelet": "db2", "level": 2},
                    "Square": {}, "SquareRoot": {}, "Logarithm": {}, "Exponential": {}, "Gradient": {}}


def test_asymmetrical_glcm_on_every_image_type():
    """Q of an asymmetrical GLCM is not symmetric: its eigenvalues, and so MCC, follow Q's last
    bits (the square image of the border case flipped to complex: 10% apart before)."""
    for name, image, mask in _generated("border", "shell"):
        check(_mapping({"symmetricalGLCM": False, "preCrop": True}, EVERY_IMAGE_TYPE, {"glcm": []}), image, mask)


@pytest.mark.parametrize("setting", [{"binCount": 16}, {"voxelArrayShift": 1000, "normalize": True},
                                     {"resampledPixelSpacing": [1, 1, 1]}, {"force2D": True}])
def test_settings_on_every_image_type(setting):
    """A slice of the setting x image type matrix (the rest: benchmarks' --params runs)."""
    for name, image, mask in _generated("anisotropic"):
        check(_mapping({**setting, "preCrop": True}, EVERY_IMAGE_TYPE, dict(ALL_CLASSES)), image, mask)
