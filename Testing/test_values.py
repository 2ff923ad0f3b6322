"""The voxel values a file holds, not what a reader made of them: NaN/inf voxels and scalings in
NIfTI, NRRD, MetaImage and DICOM are refused with one line, and so is a CT whose values cannot
be HU, unless the user says it is not a CT (``io.plausibility``). Every file is written here, in
the format under test, with real SimpleITK / pydicom writers and then byte-edited headers.
"""
from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import PHANTOM, make_case
from DeepRadScoreLib.cli.main import main
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.io import images
from DeepRadScoreLib.io.plausibility import NON_CT_ENV

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on NaN strings


@pytest.fixture(scope="module")
def small_case():
    return make_case(shape=(12, 24, 24), radius_mm=5.0)


def with_values(image: sitk.Image, array: np.ndarray) -> sitk.Image:
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


@pytest.mark.parametrize("suffix", ["ct.nii", "ct.nii.gz", "ct.nrrd", "ctz.nrrd", "ct.mha", "ctz.mha", "ct.nhdr"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels_of_every_float_format_are_refused(tmp_path, small_case, suffix, value):
    # ITK's NIfTI reader turned these into 0 HU: the case read, with every feature shifted.
    image, mask = small_case
    hu = sitk.GetArrayFromImage(image)
    hu[3, 5, 7] = value
    hu[6, 0, 0] = value
    path = tmp_path / suffix
    sitk.WriteImage(with_values(image, hu), str(path), useCompression=suffix.startswith("ctz"))
    with pytest.raises(InputError, match=r"2 voxels are not finite numbers \(NaN or infinite\); "
                                         rf"the first, {value}, is at voxel index \(i, j, k\) = \(7, 5, 3\)"):
        images.read_image(path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_nifti_of_doubles_with_one_nan_in_the_last_voxel_is_refused(tmp_path, small_case, dtype):
    image, _ = small_case
    hu = sitk.GetArrayFromImage(image).astype(dtype)
    hu[-1, -1, -1] = np.nan
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(with_values(image, hu), str(path))
    with pytest.raises(InputError, match=r"ct\.nii\.gz: 1 voxels are not finite.*= \(23, 23, 11\)"):
        images.read_image(path)


def nifti_with_scaling(tmp_path: Path, small_case, slope: float, inter: float, name="ct.nii") -> Path:
    """The small case as int16 NIfTI with its scl_slope / scl_inter set to these (bytes 112-119)."""
    image, _ = small_case
    path = tmp_path / "ct.nii"
    sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(path))
    data = bytearray(path.read_bytes())
    data[112:120] = struct.pack("<ff", slope, inter)
    path.unlink()
    out = tmp_path / name
    out.write_bytes(gzip.compress(bytes(data)) if name.endswith(".gz") else bytes(data))
    return out


@pytest.mark.parametrize("name", ["ct.nii", "ct.nii.gz"])
@pytest.mark.parametrize("slope, inter, message", [
    (np.inf, 0.0, r"scl_slope is inf"),
    (-np.inf, 0.0, r"scl_slope is -inf"),
    (1.0, np.nan, r"scl_slope is 1 but scl_inter is nan"),
    (2.0, np.inf, r"scl_slope is 2 but scl_inter is inf"),
    (0.0, 5.0, r"scl_slope is 0 \(no scaling\) but scl_inter is 5"),
])
def test_nifti_scalings_that_readers_ignore_or_disagree_on_are_refused(tmp_path, small_case, name, slope,
                                                                         inter, message):
    # ITK read all of these as something: inf/NaN scalings as none at all, (0, 5) as +5 HU.
    path = nifti_with_scaling(tmp_path, small_case, slope, inter, name)
    with pytest.raises(InputError, match=rf"{name}: the NIfTI {message}"):
        images.read_image(path)


def test_a_nan_scl_slope_is_nibabels_no_scaling_and_reads(tmp_path, small_case):
    (tmp_path / "a").mkdir()
    plain = images.read_image(nifti_with_scaling(tmp_path / "a", small_case, 1.0, 0.0))
    unset = images.read_image(nifti_with_scaling(tmp_path, small_case, np.nan, np.nan))
    assert np.array_equal(sitk.GetArrayFromImage(plain), sitk.GetArrayFromImage(unset))


def test_an_int16_ct_with_scl_slope_1000_is_not_hu(tmp_path, small_case, monkeypatch):
    path = nifti_with_scaling(tmp_path, small_case, 1000.0, 0.0)
    with pytest.raises(InputError, match=r"ct\.nii: the values range -[\d.e+]+ to [\d.e+]+, which cannot be "
                                         rf"CT numbers .*set {NON_CT_ENV}=1"):
        images.read_image(path)
    monkeypatch.setenv(NON_CT_ENV, "1")  # the documented way to read a non-CT image on purpose
    values = sitk.GetArrayFromImage(images.read_image(path))
    assert values.min() < -32768 and values.max() > 32767
    monkeypatch.setenv(NON_CT_ENV, "maybe")
    with pytest.raises(InputError, match=rf"{NON_CT_ENV}='maybe': expected 1"):
        images.read_image(path)


def test_the_cli_refuses_a_non_hu_ct_with_one_line_and_writes_nothing(tmp_path, small_case, capsys):
    path = nifti_with_scaling(tmp_path, small_case, 1000.0, 0.0)
    mask = tmp_path / "mask.nii.gz"
    sitk.WriteImage(small_case[1], str(mask))
    out = tmp_path / "out" / "features.csv"
    assert main(["extract", str(path), str(mask), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"error: {path}: the values range ")
    assert not out.parent.exists() or not any(out.parent.iterdir())


def dicom_series(tmp_path: Path, **attributes) -> Path:
    import pydicom

    series = tmp_path / "ct"
    series.mkdir()
    for file in sorted((PHANTOM / "dicom" / "image").iterdir())[20:23]:
        ds = pydicom.dcmread(str(file))
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        ds.save_as(str(series / file.name))
    return series


@pytest.mark.parametrize("keyword, value", [("RescaleSlope", "NaN"), ("RescaleSlope", "inf"),
                                            ("RescaleIntercept", "-inf"), ("RescaleSlope", "0")])
def test_dicom_rescale_that_gdcm_ignores_is_refused(tmp_path, keyword, value):
    # GDCM read a NaN or infinite slope as slope 1: the series read unscaled, silently.
    series = dicom_series(tmp_path, **{keyword: value})
    with pytest.raises(InputError, match=rf"{keyword} is '{value}', not a usable scaling"):
        images.read_image(series)


def test_a_dicom_series_with_rescale_slope_1000_is_not_hu(tmp_path):
    with pytest.raises(InputError, match=r"ct: the values range .* which cannot be CT numbers"):
        images.read_image(dicom_series(tmp_path, RescaleSlope="1000"))


def test_hu_range_bounds_are_inclusive_and_integer_cts_pass(tmp_path, small_case):
    image, _ = small_case
    hu = sitk.GetArrayFromImage(image)
    hu[0, 0, 0], hu[0, 0, 1] = -32768, 32767  # int16's whole range: padding and extended-scale metal
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(sitk.Cast(with_values(image, hu), sitk.sitkInt16), str(path))
    assert sitk.GetArrayFromImage(images.read_image(path)).max() == 32767
    hu[0, 0, 1] = 32768.5
    sitk.WriteImage(with_values(image, hu), str(path))
    with pytest.raises(InputError, match=r"to 32768\.5, which cannot be CT numbers"):
        images.read_image(path)
