"""The grey-level bin bound (``features.gate``): a case whose texture matrices could not be built
is refused before the radiomics start, with one line naming the range and the bin count, on both
backends; real CTs (the IBSI phantom, the 18 STS cases) stay well inside it."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import PHANTOM, STS, make_case
from DeepRadScoreLib.cli.main import main
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features import gate
from DeepRadScoreLib.features.params import parameters
from DeepRadScoreLib.io.images import load_case
from DeepRadScoreLib.io.plausibility import NON_CT_ENV
from DeepRadScoreLib.regions import peritumoral_ring


def test_check_bin_count_refuses_above_the_bound_only():
    gate.check_bin_count(gate.MAX_BINS, "tumour mask: values 0 to 1")
    with pytest.raises(InputError, match=rf"^tumour mask: x give {gate.MAX_BINS + 1} grey-level bins, more "
                                         rf"than the {gate.MAX_BINS}"):
        gate.check_bin_count(gate.MAX_BINS + 1, "tumour mask: x")


def test_the_bin_count_is_pyradiomics_own():
    from radiomics.imageoperations import getBinEdges

    rng = np.random.default_rng(3)
    for _ in range(50):
        values = rng.uniform(-3000, 3000, 20) * rng.choice([1e-3, 1, 7])
        width = float(rng.choice([1, 5, 25, 0.3]))
        edges = getBinEdges(values, binWidth=width)
        levels = np.digitize(values, edges)  # pyradiomics' binImage: the grey levels the matrices hold
        assert gate.bins_for_range(values.min(), values.max(), width) == levels.max() - levels.min() + 1
        # its edges may hold one more, empty, bin above the maximum
        assert len(edges) - 1 - gate.bins_for_range(values.min(), values.max(), width) in (0, 1)


def test_real_cts_pass_the_gate_with_room_to_spare():
    cases = [(PHANTOM / "nifti" / "image.nii.gz", PHANTOM / "nifti" / "mask.nii.gz")]
    cases += [(d / "image.nii.gz", d / "mask.nii.gz") for d in sorted(STS.glob("STS_*"))]
    assert len(cases) == 19
    stats = sitk.LabelStatisticsImageFilter()
    for image_path, mask_path in cases:
        case = load_case(image_path, mask_path)
        ring = peritumoral_ring(case.mask, 3.0)
        gate.check_case_bins(case.image, case.mask, ring, parameters())
        stats.Execute(case.image, case.mask)
        lo, hi = stats.GetMinimum(1), stats.GetMaximum(1)
        assert gate.bins_for_range(gate.WAVELET_GAIN * lo, gate.WAVELET_GAIN * hi, 25) < gate.MAX_BINS / 2


@pytest.fixture()
def wide_case(tmp_path, monkeypatch):
    """An image that is not a CT (values x 1000), passed on purpose: the bin bound still holds."""
    image, mask = make_case(shape=(12, 24, 24), radius_mm=5.0)
    wide = sitk.GetImageFromArray(sitk.GetArrayFromImage(image) * 1000)
    wide.CopyInformation(image)
    sitk.WriteImage(wide, str(tmp_path / "map.nrrd"))
    sitk.WriteImage(mask, str(tmp_path / "mask.nrrd"))
    monkeypatch.setenv(NON_CT_ENV, "1")
    return tmp_path / "map.nrrd", tmp_path / "mask.nrrd"


@pytest.mark.parametrize("backend", ["pyradiomics", "native"])
def test_a_range_beyond_the_bin_bound_is_refused_before_the_radiomics(tmp_path, wide_case, capsys, backend):
    # Before the gate, pyradiomics ended this in a MemoryError traceback (exit 1).
    image, mask = wide_case
    out = tmp_path / "out" / "features.csv"
    assert main(["extract", str(image), str(mask), "-o", str(out), "--radiomics-backend", backend]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "MemoryError" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: {mask}: tumour mask: values -")
    assert " at binWidth 25 (Original) give " in last and "grey-level bins, more than the 1000" in last
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_a_tiny_bin_width_in_the_parameter_file_is_refused(tmp_path, capsys):
    from DeepRadScoreLib.features.settings import params_file

    image, mask = make_case(shape=(12, 24, 24), radius_mm=5.0)
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    sitk.WriteImage(mask, str(tmp_path / "mask.nrrd"))
    params = tmp_path / "params.yaml"
    params.write_text(params_file(None).read_text().replace("binWidth: 25", "binWidth: 0.01"))
    out = tmp_path / "out" / "features.csv"
    assert main(["extract", str(tmp_path / "ct.nrrd"), str(tmp_path / "mask.nrrd"), "-o", str(out),
                 "--params", str(params)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "at binWidth 0.01 (Original) give " in last, last
