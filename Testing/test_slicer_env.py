"""The module's dependency handling and radiomics in a Python like 3D Slicer 5.10's.

Slicer cannot run here, but its Python can be reproduced (tools/setup_slicer_env.py builds
``.venv-slicer/`` once per machine and caches it): Python 3.12, Slicer 5.10's numpy 2.0.2 and
scipy 1.13.1, and a pyradiomics built from the 3.1.0 sdist as SlicerRadiomics builds it, whose
metadata says 3.0.1a1. In it:

* the dependency check accepts that pyradiomics and asks only for what pip must
  install (pyradiomics is optional, PyYAML is asked for: the native backend needs it);
* pip, resolving those requirements under the module's constraints, keeps numpy and scipy;
* the tumour + ring radiomics equal this (main) environment's values.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

from conftest import make_case
from DeepRadScoreLib.features.radiomics import extract_case_features
from DeepRadScoreLib.regions import peritumoral_ring

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import setup_slicer_env  # noqa: E402

MODULE = ROOT / "DeepRadScore"


@pytest.fixture(scope="session")
def slicer_python() -> Path:
    """``.venv-slicer``'s Python, built on first use (about a minute) and then reused."""
    return setup_slicer_env.ensure()


def run_in(python: Path, code: str, *args: str, timeout: float = 600) -> str:
    done = subprocess.run([str(python), "-c", code, str(MODULE), *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


CHECK = """
import importlib.metadata, json, sys
sys.path.insert(0, sys.argv[1])
from DeepRadScoreSlicerLib import dependencies as deps
# What a Run with a bundle without ONNX networks (the most a Run installs) finds missing.
torch_bundle = deps.RunNeeds((deps.FEATURES, deps.TORCH, deps.SKLEARN))
missing = deps.missing_requirements(deps.requirements(torch_bundle))
features = deps.missing_requirements(deps.requirements(deps.run_needs("")))
print(json.dumps({
    "features_missing": [m.name for m in features],
    "python": list(sys.version_info[:2]),
    "versions": {n: importlib.metadata.version(n) for n in ("pyradiomics", "numpy", "scipy")},
    "missing": [m.name for m in missing],
    "pip": deps.pip_requirements(missing),
    "unresolvable": [m.name for m in deps.unresolvable(missing)],
    "constraints": deps.constraints_text(upgrading=[m.name for m in missing]),
}))
"""


def test_dependency_check_accepts_slicer_radiomics_pyradiomics(slicer_python):
    state = json.loads(run_in(slicer_python, CHECK))
    assert state["python"] == [3, 12]
    assert state["versions"] == {"pyradiomics": "3.0.1a1", "numpy": "2.0.2", "scipy": "1.13.1"}
    # pyradiomics (optional, accepted at SlicerRadiomics' 3.0.1a1), PyWavelets, numpy, scipy,
    # SimpleITK are there and accepted; PyYAML (the native backend's) is pip's to install.
    assert state["unresolvable"] == []
    # A features-only Run installs two small packages, and neither torch nor scikit-learn.
    assert state["features_missing"] == ["pandas", "PyYAML"]
    assert state["missing"] == ["torch", "pandas", "PyYAML", "safetensors", "scikit-learn", "skops"]
    assert state["pip"] == ["pandas>=2.2", "PyYAML>=6.0", "safetensors>=0.4", "scikit-learn==1.9.1",
                            "skops==0.16.0"]


def test_constraints_keep_slicers_numpy_and_scipy(slicer_python, tmp_path):
    state = json.loads(run_in(slicer_python, CHECK))
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(state["constraints"])
    assert "numpy==2.0.2" in state["constraints"] and "scipy==1.13.1" in state["constraints"]
    assert "pyradiomics==3.0.1a1" in state["constraints"] and "pywavelets==1.9.0" in state["constraints"]
    report = tmp_path / "report.json"
    # What pip_install([...requirements, "-c", constraints]) resolves in Slicer 5.10, not done.
    done = subprocess.run([str(slicer_python), "-m", "pip", "--disable-pip-version-check", "install", "--dry-run",
                           "--quiet", "--report", str(report), *state["pip"], "-c", str(constraints)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    installs = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert {"pandas", "scikit-learn", "skops", "safetensors", "pyyaml"} <= set(installs)
    assert installs["scikit-learn"] == "1.9.1" and installs["skops"] == "0.16.0"
    for slicer_owned in ("numpy", "scipy", "simpleitk", "pyradiomics", "pywavelets"):
        assert slicer_owned not in installs, f"pip would replace {slicer_owned} {installs.get(slicer_owned)}"


RADIOMICS = """
import json, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[4])
import SimpleITK as sitk
from DeepRadScoreLib.features.radiomics import extract_case_features
from DeepRadScoreLib.regions import peritumoral_ring
image, mask = sitk.ReadImage(sys.argv[2]), sitk.ReadImage(sys.argv[3])
print(json.dumps(extract_case_features(image, mask, peritumoral_ring(mask, 3.0))))
"""


def test_tumour_and_ring_radiomics_equal_the_main_environments(slicer_python, tmp_path):
    image, mask = make_case()
    image_path, mask_path = tmp_path / "image.nrrd", tmp_path / "mask.nrrd"
    sitk.WriteImage(image, str(image_path))
    sitk.WriteImage(mask, str(mask_path))
    # A Run installs the [features] group first; of it the radiomics need PyYAML (the parameter
    # file is parsed once, for either backend), which a fresh Slicer with SlicerRadiomics lacks.
    site = tmp_path / "site"
    subprocess.run([str(slicer_python), "-m", "pip", "--disable-pip-version-check", "install", "--quiet",
                    "--no-deps", "--target", str(site), "PyYAML==6.0.4"], check=True, timeout=600)
    there = json.loads(run_in(slicer_python, RADIOMICS, str(image_path), str(mask_path), str(site)))
    here = extract_case_features(sitk.ReadImage(str(image_path)), sitk.ReadImage(str(mask_path)),
                                 peritumoral_ring(sitk.ReadImage(str(mask_path)), 3.0))
    assert list(there) == list(here) and len(here) == 1702
    # Same pyradiomics C code and our own code; numpy 2.0 vs 2.4 and scipy 1.13 vs 1.17 may only
    # differ in the last bits of a sum.
    for name, value in here.items():
        assert there[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
