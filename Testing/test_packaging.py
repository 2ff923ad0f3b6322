"""The engine as a user installs it: a wheel built from this repository, not the source tree.

A plain (non-editable) install must carry the default 851-feature parameter file and the report
template inside the package: the wheel is built from a copy of the sources, installed
with ``pip install --no-deps --target`` and run from another working directory with the target
first on ``PYTHONPATH``, so nothing can come from the checkout. Its metadata asks for no compiler: pyradiomics (an sdist
with C code) is only an extra, the native backend's packages are plain dependencies.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pandas as pd
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "DeepRadScore" / "DeepRadScoreLib", src / "DeepRadScore" / "DeepRadScoreLib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist), str(src)], check=True, capture_output=True, text=True)
    (wheel,) = dist.glob("deepradscore-*.whl")
    return wheel


def test_installed_wheel_carries_and_uses_the_default_parameters(tmp_path, phantom_paths):
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "DeepRadScoreLib/features/radiomics_params.yaml" in names
    assert "DeepRadScoreLib/evaluation/report_template.html" in names

    target, work = tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, text=True)
    env = dict(os.environ, PYTHONPATH=str(target))
    where = subprocess.run(
        [sys.executable, "-c", "import DeepRadScoreLib, DeepRadScoreLib.features.radiomics as r; "
                               "print(DeepRadScoreLib.__file__); print(r.PARAMS_PATH)"],
        cwd=work, env=env, check=True, capture_output=True, text=True).stdout.split()
    assert all(Path(p).resolve().is_relative_to(target.resolve()) for p in where), where
    assert Path(where[1]).read_bytes() == (ROOT / "DeepRadScore/DeepRadScoreLib/features/radiomics_params.yaml").read_bytes()

    image, mask = phantom_paths
    out = work / "features.csv"
    run = subprocess.run([sys.executable, "-m", "DeepRadScoreLib.cli.main", "extract", str(image), str(mask),
                          "-o", str(out)], cwd=work, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(out)
    assert table.shape == (1, 1 + 2 * 851)
    assert table["tumor_original_shape_VoxelVolume"].iloc[0] > 0


def test_wheel_metadata_lists_pyradiomics_only_as_an_extra(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(metadata).decode("utf-8"))
    requirements = [Requirement(line) for line in message.get_all("Requires-Dist")]
    plain = {r.name.lower(): r for r in requirements if r.marker is None}
    extras = [r for r in requirements if r.marker is not None]
    assert "pyradiomics" not in plain
    for name in ("numpy", "scipy", "simpleitk", "pywavelets", "pyyaml"):
        assert name in plain, f"{name} must be a plain dependency (the native backend needs it)"
    assert "pyradiomics" in message.get_all("Provides-Extra")
    (radiomics,) = [r for r in extras if r.name.lower() == "pyradiomics"]
    assert radiomics.marker.evaluate({"extra": "pyradiomics"})
    assert not radiomics.marker.evaluate({"extra": ""})
    # SlicerRadiomics' build and the 3.1.0 sdist both say 3.0.1a1: the extra accepts them.
    assert radiomics.specifier.contains("3.0.1a1", prereleases=True)


def test_wheel_metadata_needs_onnxruntime_and_torch_only_for_training(tmp_path):
    """Prediction runs the networks' ONNX graphs: onnxruntime is a plain dependency, torch,
    torchvision and onnx (the exporter's) are the ``train`` extra."""
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(metadata).decode("utf-8"))
    requirements = [Requirement(line) for line in message.get_all("Requires-Dist")]
    plain = {r.name.lower() for r in requirements if r.marker is None}
    assert "onnxruntime" in plain
    assert not plain & {"torch", "torchvision", "onnx"}
    assert "train" in message.get_all("Provides-Extra")
    train = {r.name.lower() for r in requirements
             if r.marker is not None and r.marker.evaluate({"extra": "train"})}
    assert {"torch", "torchvision", "onnx"} <= train


def test_installed_wheel_predicts_an_onnx_bundle_without_torch(tmp_path):
    """``pip install .`` without extras: the wheel (no torch among its dependencies) predicts
    with a bundle that has ONNX graphs, in a process where torch and torchvision cannot be
    imported."""
    from test_onnx import _blocking_path, _write_case
    from test_training import make_cohort, train_args

    from DeepRadScoreLib.cli.main import main

    cohort = make_cohort(tmp_path / "cohort")
    bundle = tmp_path / "bundle"
    assert main(train_args(cohort, bundle)) == 0
    wheel = _build_wheel(tmp_path)
    target, work = tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, text=True)
    block = _blocking_path(tmp_path / "block")
    ct, mask = _write_case(work)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(block), str(target)]), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", "import sys; from DeepRadScoreLib.cli.main import main; "
                          "import DeepRadScoreLib; print(DeepRadScoreLib.__file__, file=sys.stderr); "
                          "sys.exit(main(sys.argv[1:]))",
                          "predict", str(bundle), str(ct), str(mask), "-o", "result.json", "--gradcam", "heat.nrrd"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert str(target) in run.stderr.splitlines()[0]
    result = json.loads((work / "result.json").read_text())
    assert result["bundle"]["deep_runtime"]["engine"] == "onnxruntime"
    assert (work / "heat.nrrd").is_file()
