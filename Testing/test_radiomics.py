"""radiomics_features: 851 features per ROI, equal to pyradiomics' own extractor (rel. 1e-6)."""
from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import make_case

from DeepRadScoreLib import regions
from DeepRadScoreLib.io import images as imaging
from DeepRadScoreLib.features import params as shared_params
from DeepRadScoreLib.features import radiomics as rf
from DeepRadScoreLib.errors import Cancelled, InputError

RTOL = 1e-6


def pyradiomics_reference(image, mask, ring, params=None) -> dict[str, float]:
    """What the issue defines as right: RadiomicsFeatureExtractor(params).execute per ROI."""
    from radiomics import featureextractor
    from threadpoolctl import threadpool_limits

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(str(params or rf.PARAMS_PATH))
    out = {}
    # One BLAS thread only for the test's speed on a busy 2-core box (GLCM's many small
    # eigenvalue problems); it does not change pyradiomics' numbers beyond rounding.
    with threadpool_limits(limits=1):
        for prefix, roi in (("tumor", mask), ("peritumoral", ring)):
            out.update({f"{prefix}_{k}": float(v) for k, v in extractor.execute(image, roi).items()
                        if not k.startswith("diagnostics_")})
    return out


def assert_same_features(ours: dict, reference: dict) -> None:
    assert list(ours) == list(reference)
    a = np.array([ours[k] for k in reference])
    b = np.array([reference[k] for k in reference])
    both_nan = np.isnan(a) & np.isnan(b)
    bad = ~both_nan & ~np.isclose(a, b, rtol=RTOL, atol=0)
    assert not bad.any(), {k: (ours[k], reference[k]) for k in np.array(list(reference))[bad][:5]}


def test_parameter_file_gives_851_features_per_roi():
    names = rf.feature_names()
    assert len(names) == 1702 and len(set(names)) == 1702
    tumour = [n[len("tumor_"):] for n in names[:851]]
    assert all(n.startswith("tumor_") for n in names[:851])
    assert [n[len("peritumoral_"):] for n in names[851:]] == tumour
    original = Counter(n.split("_")[1] for n in tumour if n.startswith("original_"))
    assert original == {"shape": 14, "firstorder": 18, "glcm": 24, "glrlm": 16, "glszm": 16, "gldm": 14, "ngtdm": 5}
    bands = Counter(n.split("_")[0] for n in tumour if n.startswith("wavelet"))
    assert sorted(bands) == sorted(f"wavelet-{b}" for b in ("LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH", "LLL"))
    assert set(bands.values()) == {93}
    assert "tumor_original_shape_Sphericity" in names and "peritumoral_wavelet-LLH_glcm_Idmn" in names


def test_equals_pyradiomics_on_the_real_phantom(phantom_paths):
    case = imaging.load_case(*phantom_paths)
    ring = regions.peritumoral_ring(case.mask, 3.0)
    fractions = []
    ours = rf.extract_case_features(case.image, case.mask, ring, jobs=2,
                                    progress=lambda f, m: fractions.append(f))
    assert len(ours) == 1702
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert_same_features(ours, pyradiomics_reference(case.image, case.mask, ring))


@pytest.mark.parametrize("where", ["centre", "image border"])
def test_equals_pyradiomics_on_a_generated_case(where):
    # Anisotropic, oblique grid. At the border the ROI is closer to the image edge than the
    # wavelet's reach, so the shared crop is not exact and each ROI is filtered on its own.
    direction = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    image, mask = make_case(shape=(20, 36, 36), spacing=(0.7, 0.9, 2.0), radius_mm=5.0, seed=3,
                            direction=direction)
    if where == "image border":
        shifted = sitk.GetImageFromArray(np.roll(sitk.GetArrayFromImage(mask), 15, axis=2))
        shifted.CopyInformation(image)
        mask = imaging.binarise(shifted, image, None, "shifted")
    ring = regions.peritumoral_ring(mask, 3.0)
    plan = rf._Plan(rf._extractor(shared_params.read()), image,
                    {"tumor": rf._as_label_map(mask), "peritumoral": rf._as_label_map(ring)})
    assert plan.shareable("Wavelet", plan.settings) == (where == "centre")
    ours = rf.extract_case_features(image, mask, ring)
    assert_same_features(ours, pyradiomics_reference(image, mask, ring))


def test_mesh_coefficients_equal_pyradiomics_c_code():
    from radiomics import cShape

    rng = np.random.default_rng(7)
    for _ in range(150):
        mask = np.pad(rng.random(rng.integers(2, 12, size=3)) < rng.uniform(0.05, 0.95), 1)
        spacing = rng.uniform(0.3, 4.0, size=3)
        area, volume, diameters = cShape.calculate_coefficients(mask, spacing)
        ours = rf.mesh_coefficients(mask, spacing)
        np.testing.assert_allclose([ours[0], ours[1], *ours[2]], [area, volume, *diameters], rtol=1e-9, atol=1e-12)


def test_other_settings_fall_back_to_plain_pyradiomics(tmp_path):
    params = tmp_path / "normalised.yaml"
    params.write_text("imageType: {Original: {}}\nfeatureClass: {firstorder: [], glcm: [Idmn]}\n"
                      "setting: {binWidth: 0.5, normalize: true, label: 1}\n")
    image, mask = make_case(shape=(16, 28, 28), seed=5)
    ring = regions.peritumoral_ring(mask, 3.0)
    ours = rf.extract_case_features(image, mask, ring, params)
    assert len(ours) == 2 * 19 and list(ours) == rf.feature_names(params)
    assert_same_features(ours, pyradiomics_reference(image, mask, ring, params))


def test_bad_inputs_are_one_line_errors(tmp_path):
    image, mask = make_case(shape=(12, 20, 20), seed=1)
    ring = regions.peritumoral_ring(mask, 3.0)
    single = np.zeros((12, 20, 20), np.uint8)
    single[6, 10, 10] = 1
    one_voxel = sitk.GetImageFromArray(single)
    one_voxel.CopyInformation(image)
    with pytest.raises(InputError, match="tumour mask: .*1 segmented voxel"):
        rf.extract_case_features(image, one_voxel, regions.peritumoral_ring(one_voxel, 3.0))
    broken = tmp_path / "broken.yaml"
    broken.write_text("setting: {binWidth: -3}\n")
    with pytest.raises(InputError, match="broken.yaml: invalid pyradiomics parameter file"):
        rf.extract_case_features(image, mask, ring, broken)
    with pytest.raises(InputError, match="not found"):
        rf.extract_case_features(image, mask, ring, tmp_path / "missing.yaml")
    with pytest.raises(Cancelled):
        rf.extract_case_features(image, mask, ring, cancel=lambda: True)
