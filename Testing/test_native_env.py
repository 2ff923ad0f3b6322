"""The engine where pyradiomics cannot be installed: ``auto`` takes the native backend.

tools/setup_native_env.py builds ``.venv-native/`` once per machine and caches it: what 3D
Slicer 5.10 without SlicerRadiomics (macOS) gives the engine: Python 3.12 with Slicer's numpy
2.0.2, scipy 1.13.1 and SimpleITK, plus PyWavelets, PyYAML, pandas and tqdm, all from wheels,
and no pyradiomics (it checks that ``import radiomics`` fails there). The checkout's engine runs
in it from ``PYTHONPATH``. There:

* ``backends.resolve("auto")`` is ``native`` and ``resolve("pyradiomics")`` is one clear
  :class:`InputError`;
* ``deepradscore extract`` on the IBSI phantom writes the 1702 features that pyradiomics itself
  computes in this (main) environment, and its settings sidecar says ``native``;
* ``--radiomics-backend pyradiomics`` is refused with one line and exit status 2, writing nothing;
* the Slicer module (its dependency check and its worker process) runs there on the native
  backend and says so.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from DeepRadScoreLib.features.radiomics import extract_case_features
from DeepRadScoreLib.io.images import load_case
from DeepRadScoreLib.regions import peritumoral_ring

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "DeepRadScore"
sys.path.insert(0, str(ROOT / "tools"))
import setup_native_env  # noqa: E402


@pytest.fixture(scope="session")
def native_python() -> Path:
    """``.venv-native``'s Python, built on first use (under a minute, wheels only), then reused."""
    return setup_native_env.ensure()


def run_native(python: Path, args: list[str], cwd: Path, timeout: float = 300,
               input: str | None = None) -> subprocess.CompletedProcess:
    # Only the checkout's engine on the path: nothing of the main .venv can leak in.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PYTHONPATH=str(ENGINE), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, input=input)


RESOLVE = """
import json, sys
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features import backends
state = {"auto": backends.resolve("auto"), "default": backends.resolve(None),
         "describe": backends.describe("auto"), "version": backends.pyradiomics_version(),
         "radiomics_found": __import__("importlib.util").util.find_spec("radiomics") is not None,
         "python": list(sys.version_info[:2]),
         "numpy": __import__("numpy").__version__, "scipy": __import__("scipy").__version__}
try:
    backends.resolve("pyradiomics")
    state["pyradiomics"] = "accepted"
except InputError as err:
    state["pyradiomics"] = str(err)
print(json.dumps(state))
"""


def test_auto_resolves_to_native_and_pyradiomics_is_refused(native_python, tmp_path):
    done = run_native(native_python, ["-c", RESOLVE], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads(done.stdout)
    assert state["python"] == [3, 12] and state["radiomics_found"] is False and state["version"] is None
    assert (state["numpy"], state["scipy"]) == ("2.0.2", "1.13.1")  # Slicer 5.10's
    assert state["auto"] == state["default"] == "native"
    assert state["describe"].startswith("native (DeepRadScore ")
    message = state["pyradiomics"]
    assert message.startswith("--radiomics-backend pyradiomics: pyradiomics is not installed here")
    assert "\n" not in message and "--radiomics-backend native" in message


def test_extract_without_pyradiomics_equals_pyradiomics(native_python, tmp_path, phantom_paths):
    image_path, mask_path = phantom_paths
    out = tmp_path / "X.csv"
    done = run_native(native_python, ["-m", "DeepRadScoreLib.cli.main", "extract", str(image_path),
                                      str(mask_path), "-o", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    table = pd.read_csv(out)
    native = {k: float(v) for k, v in table.drop(columns="case_id").iloc[0].items()}
    # pyradiomics itself (our fast pyradiomics path) on the same files, in this environment.
    case = load_case(image_path, mask_path)
    reference = extract_case_features(case.image, case.mask, peritumoral_ring(case.mask, 3.0))
    assert len(reference) == 1702 and list(native) == list(reference)
    different = [name for name, value in reference.items()
                 if native[name] != pytest.approx(value, rel=1e-6, abs=1e-12, nan_ok=True)]
    assert not different, [(n, native[n], reference[n]) for n in different[:10]]
    sidecar = json.loads(out.with_suffix(".settings.json").read_text())["settings"]
    assert sidecar["backend"] == "native" and sidecar["pyradiomics_version"] == ""


def test_asking_for_pyradiomics_there_is_one_line_and_no_output(native_python, tmp_path, phantom_paths):
    image_path, mask_path = phantom_paths
    out = tmp_path / "Y.csv"
    done = run_native(native_python, ["-m", "DeepRadScoreLib.cli.main", "extract", str(image_path),
                                      str(mask_path), "-o", str(out), "--radiomics-backend", "pyradiomics"],
                      tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --radiomics-backend pyradiomics:"), lines
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


SLICER_CHECK = """
import json, sys
sys.path.insert(0, sys.argv[1])
from DeepRadScoreSlicerLib import dependencies as deps
missing = deps.missing_requirements(deps.requirements(deps.run_needs("")))  # a features-only Run
print(json.dumps({"missing": [m.name for m in missing], "unresolvable": [m.name for m in deps.unresolvable(missing)]}))
"""


def test_the_slicer_module_runs_there_on_the_native_backend(native_python, tmp_path):
    """Slicer without SlicerRadiomics (macOS): the dependency check does not ask for pyradiomics,
    and the module's worker (what the Run starts with PythonSlicer) computes the features on the
    native backend and records it."""
    import SimpleITK as sitk

    from conftest import make_case
    from DeepRadScoreSlicerLib import dependencies as deps
    from DeepRadScoreSlicerLib.worker import RunRequest, load_backend, load_result

    done = run_native(native_python, ["-c", SLICER_CHECK, str(ENGINE)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads(done.stdout)
    assert state["unresolvable"] == [] and "pyradiomics" not in state["missing"]
    assert not {"numpy", "scipy", "SimpleITK", "PyWavelets", "PyYAML", "pandas"} & set(state["missing"])

    image, mask = make_case()
    sitk.WriteImage(image, str(tmp_path / "image.nrrd"))
    sitk.WriteImage(mask, str(tmp_path / "mask.nrrd"), True)
    worker = ENGINE / "DeepRadScoreSlicerLib" / "worker.py"
    request = RunRequest(image=str(tmp_path / "image.nrrd"), mask=str(tmp_path / "mask.nrrd"),
                         output=str(tmp_path / "out"))
    done = run_native(native_python, [str(worker)], tmp_path, input=request.to_line() + "\n")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    described = load_backend(tmp_path / "out")
    assert described.startswith("native (DeepRadScore ")
    assert deps.radiomics_backend_text(described) == ("radiomics: DeepRadScore's native backend "
                                                      "(the default; the same numbers as pyradiomics).")
    result, synthetic, thickness = load_result(tmp_path / "out")
    reference = extract_case_features(image, mask, peritumoral_ring(mask, 3.0))
    assert list(result.features) == list(reference) and thickness == 3.0 and synthetic is False
    for name, value in reference.items():
        assert result.features[name] == pytest.approx(value, rel=1e-6, abs=1e-12, nan_ok=True), name
