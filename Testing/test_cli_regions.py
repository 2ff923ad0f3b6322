"""`deepradscore ring` and `deepradscore patch` run as the user runs them: a subprocess."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from conftest import PHANTOM, make_case
from DeepRadScoreLib.io.images import load_case
from DeepRadScoreLib.regions import WINDOWS, deep_roi_patch, peritumoral_ring

DEEPRADSCORE = str(Path(sys.executable).parent / "deepradscore")


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([DEEPRADSCORE, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture()
def case_files(tmp_path):
    image, mask = make_case(shape=(30, 64, 64), spacing=(0.8, 0.8, 2.5), radius_mm=7.0,
                            direction=(0, 1, 0, -1, 0, 0, 0, 0, 1))
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "mask.nrrd"))
    return tmp_path / "ct.nii.gz", tmp_path / "mask.nrrd"


def test_ring_command_writes_the_ring(case_files, tmp_path):
    image, mask = case_files
    out = tmp_path / "out" / "ring.nii.gz"
    result = run("ring", image, mask, "-o", out, "--thickness-mm", "4", "--hu-range", "-900", "300")
    assert result.returncode == 0, result.stderr
    case = load_case(image, mask)
    expected = peritumoral_ring(case.mask, 4.0, image=case.image, hu_range=(-900, 300))
    written = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(expected))
    assert written.GetDirection() == pytest.approx(case.image.GetDirection())
    voxels = int(sitk.GetArrayFromImage(expected).sum())
    assert voxels > 0 and f"ring: {voxels} voxels" in result.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["ring.nii.gz"]
    result = run("ring", image, mask, "-o", out.parent / "ring.xyz")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "ring.xyz" in result.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["ring.nii.gz"]  # no temporary file left


def test_ring_command_reads_dicom_rtstruct_with_roi_name(tmp_path):
    out = tmp_path / "ring.nrrd"
    result = run("ring", PHANTOM / "dicom" / "image", PHANTOM / "dicom" / "mask", "-o", out,
                 "--roi-name", "GTV-1", "--constraint", PHANTOM / "nifti" / "mask.nii.gz")
    # The constraint (the tumour itself) leaves no ring: refused, and nothing written.
    assert result.returncode == 2 and "ring is empty after the HU range / constraint" in result.stderr
    assert not out.exists()
    result = run("ring", PHANTOM / "dicom" / "image", PHANTOM / "dicom" / "mask", "-o", out, "--roi-name", "GTV-1")
    assert result.returncode == 0, result.stderr
    case = load_case(PHANTOM / "nifti" / "image.nii.gz", PHANTOM / "nifti" / "mask.nii.gz")
    expected = sitk.GetArrayFromImage(peritumoral_ring(case.mask, 3.0))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), expected)


def test_patch_command_writes_a_lung_window_png_with_the_outline(case_files, tmp_path):
    image, mask = case_files
    out = tmp_path / "patch.png"
    result = run("patch", image, mask, "-o", out)
    assert result.returncode == 0, result.stderr
    png = np.asarray(Image.open(out))
    assert png.shape == (480, 480, 3) and png.dtype == np.uint8
    red = (png[..., 0] == 255) & (png[..., 1] == 40) & (png[..., 2] == 40)
    case = load_case(image, mask)
    patch = deep_roi_patch(case.image, case.mask)
    assert f"slice k={patch.slice_index}" in result.stdout
    # The outline is a closed ring around the tumour's pixels: inside it, grey again.
    tumour_rows, tumour_cols = np.nonzero(red)
    assert red.sum() > 50 and 200 < tumour_rows.mean() < 280 and 200 < tumour_cols.mean() < 280
    _, centre, width = WINDOWS[0]
    grey = np.round(np.clip((patch.hu - (centre - width / 2)) / width, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(png[1::3, 1::3, 0][~red[1::3, 1::3]], grey[~red[1::3, 1::3]])
    assert np.all(png[0:3, 0:3] == png[0, 0, 0])  # corner: air in the lung window


def bad_input_cases(tmp_path, image, mask):
    """(name, argv, the file the message must name, a phrase of the problem)."""
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08 definitely not a volume")
    reference = sitk.ReadImage(str(mask))
    wrong = sitk.Image(reference)
    wrong.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(wrong, str(tmp_path / "wrong_grid.nrrd"))
    empty = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(reference)
    sitk.WriteImage(empty, str(tmp_path / "empty.nrrd"))
    return [
        ("missing image", [tmp_path / "nope.nii.gz", mask], "nope.nii.gz", "file not found"),
        ("corrupt mask", [image, corrupt], "corrupt.nii.gz", "cannot read as a mask"),
        ("wrong grid", [image, tmp_path / "wrong_grid.nrrd"], "wrong_grid.nrrd", "not on the image's grid"),
        ("empty mask", [image, tmp_path / "empty.nrrd"], "empty.nrrd", "the mask is empty"),
        ("unknown label", [image, mask, "--label", "5"], "mask.nrrd", "no region with label 5"),
        ("unknown ROI", [PHANTOM / "dicom" / "image", PHANTOM / "dicom" / "mask", "--roi-name", "Heart"],
         "DCM_RS_00060.dcm", "no ROI named 'Heart' (available: 1 'GTV-1')"),
    ]


@pytest.mark.parametrize("command, output", [("ring", "ring.nii.gz"), ("patch", "patch.png")])
def test_bad_input_is_one_error_line_exit_2_and_no_output(case_files, tmp_path, command, output):
    image, mask = case_files
    out_dir = tmp_path / "out"
    for name, argv, file_named, problem in bad_input_cases(tmp_path, image, mask):
        if command == "patch" and name in ("corrupt mask", "unknown ROI"):
            continue  # the same reader as for `ring`; keep the suite quick
        result = run(command, *argv, "-o", out_dir / output)
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, result.stderr)
        assert file_named in lines[0] and problem in lines[0], (name, lines[0])
        assert "Traceback" not in result.stderr
        assert not out_dir.exists() or not any(out_dir.iterdir()), name
