"""The Slicer module's Logic with the radiomics backend chosen, on real MRML nodes.

Without pyradiomics (no SlicerRadiomics, e.g. on macOS) the module runs on the engine's native
backend and says so; ``radiomicsBackend`` ("auto" by default) picks one explicitly. Here (where
pyradiomics imports) ``native`` is chosen, in this process and in the worker process, and the
features are compared with pyradiomics' own. That ``auto`` takes the native backend where
pyradiomics is absent is tested in such an environment (Testing/test_native_env.py); the GUI
parts (help text, the self-test) statically in Testing/test_slicer_static.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DeepRadScore"))

from conftest import make_case  # noqa: E402
from DeepRadScoreLib.errors import InputError  # noqa: E402
from DeepRadScoreLib.regions import peritumoral_ring  # noqa: E402
from DeepRadScoreSlicerLib import logic as module  # noqa: E402
from test_slicer_logic import Scene, leftovers  # noqa: E402  (slicer-core scene helpers)


@pytest.fixture(scope="module")
def small_case():
    return make_case()


def features_of(output) -> dict:
    table = output.featuresTableNode.GetTable()
    return {table.GetValue(r, 0).ToString(): table.GetValue(r, 1).ToDouble() for r in range(table.GetNumberOfRows())}


def assert_equal_to_pyradiomics(got: dict, image, mask) -> None:
    from DeepRadScoreLib.features.radiomics import extract_case_features

    expected = extract_case_features(image, mask, peritumoral_ring(mask, 3.0))
    assert list(got) == list(expected) and len(got) == 1702
    different = [n for n, v in expected.items() if got[n] != pytest.approx(v, rel=1e-6, abs=1e-12, nan_ok=True)]
    assert not different, [(n, got[n], expected[n]) for n in different[:5]]


def test_process_with_the_native_backend_says_so_and_equals_pyradiomics(small_case):
    """The radiomicsBackend reaches the engine in this process; the output records what ran."""
    from DeepRadScoreLib.features.backends import describe

    image, mask = small_case
    scene = Scene()
    volume, segmentation, tumour = scene.add_case(image, mask)
    output = module.DeepRadScoreLogic().process(volume, segmentation, tumour, None, radiomicsBackend="native")
    assert output.radiomicsBackend == describe("native") and output.radiomicsBackend.startswith("native (")
    assert "radiomics: DeepRadScore's native backend (chosen" in output.message
    assert_equal_to_pyradiomics(features_of(output), image, mask)
    # A backend that does not exist is refused before anything is added to the scene.
    segments = segmentation.GetSegmentation().GetNumberOfSegments()
    with pytest.raises(InputError, match="unknown backend 'fast'"):
        module.DeepRadScoreLogic().process(volume, segmentation, tumour, None, radiomicsBackend="fast")
    assert segmentation.GetSegmentation().GetNumberOfSegments() == segments


def test_background_worker_with_the_native_backend_says_so(small_case, tmp_path):
    """The backend goes to the worker process (here a one-shot one) and comes back with the result."""
    image, mask = small_case
    scene = Scene()
    volume, segmentation, tumour = scene.add_case(image, mask)
    logic = module.DeepRadScoreLogic()
    logic.temporaryRoot = str(tmp_path)
    logic.keepEngine = False
    with pytest.raises(InputError, match="unknown backend"):
        logic.startBackground(volume, segmentation, tumour, None, radiomicsBackend="fast")
    assert leftovers(tmp_path) == []
    job = logic.startBackground(volume, segmentation, tumour, None, radiomicsBackend="native")
    assert job.request.settings.backend == "native"
    assert job.wait(timeout=300) == 0, job.error_message()
    output = logic.finishBackground(job)
    assert output.radiomicsBackend.startswith("native (DeepRadScore ")
    assert "radiomics: DeepRadScore's native backend (chosen" in output.message
    assert_equal_to_pyradiomics(features_of(output), image, mask)
    assert leftovers(tmp_path) == []


def test_worker_refuses_an_unusable_backend_in_one_line(tmp_path, capsys):
    from DeepRadScoreLib.features.settings import SettingsRequest
    from DeepRadScoreSlicerLib.worker import RunRequest, serve

    request = RunRequest(image=str(tmp_path / "x.nrrd"), mask=str(tmp_path / "m.nrrd"), output=str(tmp_path / "out"),
                         settings=SettingsRequest(backend="fast"))
    assert serve([request.to_line()]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("error: ") and "unknown backend 'fast'" in lines[0]
    assert lines[1:] == ["DONE 2 bundle-loads=0"]
    assert not (tmp_path / "out").exists()
    # The typed request carries the backend as it was sent, and its default is auto.
    native = RunRequest(image="i", mask="m", output="o", settings=SettingsRequest(backend="native"))
    assert RunRequest.from_line(native.to_line()) == native
    assert RunRequest.from_line('{"image": "i", "mask": "m", "output": "o"}').settings.backend == "auto"


def test_a_malformed_request_is_one_line_naming_the_field(capsys):
    from DeepRadScoreSlicerLib.worker import serve

    assert serve(['{"image": "i", "mask": "m", "output": "o", "settings": {"thickness_mm": "thick"}}',
                  "not json"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "error: engine request: request.settings.thickness_mm: expected a number, got 'thick'"
    assert lines[2].startswith("error: engine request: ") and lines[3] == "DONE 2 bundle-loads=0"
