"""The Deep-CT through ONNX Runtime: the bundle's ONNX graphs equal torch's networks (features,
probabilities, Grad-CAM without autograd), predict and evaluate run without torch, older bundles
still run through torch and say so, and every bad graph or runtime is one error line.

Every comparison runs both paths on this machine (the session's bundle, trained in the test),
never against stored numbers."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from conftest import make_case
from DeepRadScoreLib.cli.main import main
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.filehash import sha256_file
from DeepRadScoreLib.model.bundle import Bundle
from DeepRadScoreLib.features.extraction import read_feature_table
from test_bundle import _rewrite_meta, bundle_copy  # noqa: F401  (a copy of the trained bundle)
from test_training import trained  # noqa: F401  (the session's trained bundle)

ROOT = Path(__file__).resolve().parent.parent
BLOCKER = 'raise ImportError("blocked: this process must not import {name}")\n'




def _rehash(path, name):
    _rewrite_meta(path, lambda meta: meta["files"].__setitem__(name, sha256_file(path / name)))


def _write_case(folder):
    image, mask = make_case(shape=(24, 48, 48), radius_mm=7.0, seed=4)
    sitk.WriteImage(image, str(folder / "ct.nii.gz"))
    sitk.WriteImage(mask, str(folder / "mask.nii.gz"))
    return folder / "ct.nii.gz", folder / "mask.nii.gz"


def _blocking_path(folder: Path, block=("torch", "torchvision")) -> Path:
    """A path entry whose ``torch`` and ``torchvision`` raise ImportError when imported.

    The engine no longer uses the ``shap`` package; where an older environment still has it,
    its PyPI ``slicer`` dependency shares a folder with slicer-core's ``slicer`` package, whose
    ``__init__`` then imports a test module that imports torch. The entry then also carries that
    ``slicer`` package as a plain install of it has it."""
    for name in block:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(BLOCKER.format(name=name))
    import importlib.util

    spec = importlib.util.find_spec("shap")
    if spec is None:
        return folder
    installed = Path(spec.origin).parent.parent / "slicer"
    (folder / "slicer").mkdir()
    for name in ("slicer.py", "slicer_internal.py", "utils.py", "util.py"):
        if (installed / name).is_file():
            shutil.copy(installed / name, folder / "slicer" / name)
    (folder / "slicer" / "__init__.py").write_text("from .slicer import Slicer, Alias, Obj\n")
    return folder


def _run_cli(args, block_dir, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(block_dir), str(ROOT / "DeepRadScore")]),
               OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "DeepRadScoreLib.cli.main", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_bundle_lists_each_network_as_onnx_with_its_hash(trained):  # noqa: F811
    meta = json.loads((trained["bundle"] / "bundle.json").read_text())
    assert meta["format_version"] == 4
    prefixes = [m["prefix"] for m in meta["deep"]["members"]]
    assert [n["prefix"] for n in meta["deep_onnx"]] == prefixes
    for network in meta["deep_onnx"]:
        assert network["file"].endswith(".onnx")
        assert meta["files"][network["file"]] == sha256_file(trained["bundle"] / network["file"])
    assert meta["software"]["onnxruntime"] != "not installed"
    bundle = Bundle.load(trained["bundle"], device="cpu")
    assert bundle.has_onnx and type(bundle.deep).__name__ == "OnnxEnsemble"
    assert bundle.deep.runtime["engine"] == "onnxruntime"
    assert bundle.deep.runtime["provider"] == "CPUExecutionProvider"


def test_onnx_runtime_gives_torchs_features_and_probabilities(trained):  # noqa: F811
    onnx = Bundle.load(trained["bundle"], device="cpu").deep
    torch_deep = Bundle.load(trained["bundle"], device="cpu", deep_runtime="torch").deep
    assert type(torch_deep).__name__ == "DeepEnsemble"
    _, patches = read_feature_table(trained["features"], trained["ids"][::6])
    features, probabilities = onnx.features_and_probabilities(patches)
    want_features, want_probabilities = torch_deep.features_and_probabilities(patches)
    assert set(features) == set(want_features) == set(trained["bundle"] and onnx.endpoints)
    for endpoint in onnx.endpoints:
        assert features[endpoint].shape == want_features[endpoint].shape
        np.testing.assert_allclose(probabilities[endpoint], want_probabilities[endpoint], rtol=0, atol=1e-5)
        # float32 features of size ~40 are 4e-6 apart per rounding step: 1e-5 of their scale.
        scale = max(1.0, float(np.abs(want_features[endpoint]).max()))
        np.testing.assert_allclose(features[endpoint], want_features[endpoint], rtol=0, atol=1e-5 * scale)
    # One case's one-pass path gives the batched path's features.
    one, _ = onnx.features_and_gradcams(patches[0], onnx.endpoints[:1])
    for endpoint in onnx.endpoints:
        np.testing.assert_array_equal(one[endpoint][:, 0], features[endpoint][:, 0])


def test_gradcam_without_autograd_equals_torchs(trained):  # noqa: F811
    onnx = Bundle.load(trained["bundle"], device="cpu").deep
    torch_deep = Bundle.load(trained["bundle"], device="cpu", deep_runtime="torch").deep
    _, patches = read_feature_table(trained["features"], trained["ids"][40:46])
    for patch in patches:
        got, want = onnx.gradcams(patch), torch_deep.gradcams(patch)
        for endpoint in onnx.endpoints:
            a, b = got[endpoint], want[endpoint]
            assert a.shape == b.shape == (160, 160) and a.dtype == np.float32
            span = float(b.max() - b.min())
            assert span > 0.1  # a real map, not a blank one compared with another blank one
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= 0.999
            assert np.abs(a - b).max() <= 1e-4 * span


def test_predict_and_evaluate_run_without_torch(trained, tmp_path):  # noqa: F811
    block = _blocking_path(tmp_path / "block")
    ct, mask = _write_case(tmp_path)
    run = _run_cli(["predict", trained["bundle"], ct, mask, "-o", "result.json", "--gradcam", "heat.nii.gz"],
                   block, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["bundle"]["deep_runtime"]["engine"] == "onnxruntime"
    heat = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "heat.nii.gz")))
    assert heat.max() > 0
    # The same case in this process (torch importable), through torch: the same predictions.
    assert main(["predict", str(trained["bundle"]), str(ct), str(mask), "-o", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    for endpoint, p in result["predictions"].items():
        assert p["probability"] == pytest.approx(again["predictions"][endpoint]["probability"], abs=1e-12)

    manifest = pd.read_csv(trained["manifest"])
    manifest["image"], manifest["mask"] = str(ct), str(mask)  # --features: the files are not read
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    run = _run_cli(["evaluate", trained["bundle"], "--manifest", tmp_path / "manifest.csv", "--features",
                    trained["features"], "-o", tmp_path / "report", "--device", "cpu"], block, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "report" / "metrics.csv").is_file()
    assert (tmp_path / "report" / "figures" / "gradcam.png").is_file()


def test_the_blocking_path_does_block_torch(tmp_path):
    """The test above would prove nothing if the blocked import could succeed."""
    block = _blocking_path(tmp_path / "block")
    env = dict(os.environ, PYTHONPATH=str(block))
    run = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert run.returncode != 0 and "blocked" in run.stderr


def test_a_bundle_without_onnx_runs_through_torch_and_says_so_once(trained, bundle_copy, tmp_path, caplog):  # noqa: F811
    def drop(meta):
        for network in meta.pop("deep_onnx"):
            meta["files"].pop(network["file"])
            (bundle_copy / network["file"]).unlink()
        meta["format_version"] = 3
    _rewrite_meta(bundle_copy, drop)
    ct, mask = _write_case(tmp_path)
    with caplog.at_level(logging.WARNING, logger="DeepRadScoreLib.model.bundle"):
        for name in ("old1.json", "old2.json"):
            assert main(["predict", str(bundle_copy), str(ct), str(mask), "-o", str(tmp_path / name),
                         "--device", "cpu"]) == 0
    notes = [r for r in caplog.records if "through torch" in r.getMessage()]
    assert len(notes) == 1 and str(bundle_copy) in notes[0].getMessage()
    old = json.loads((tmp_path / "old1.json").read_text())
    assert old["bundle"]["deep_runtime"]["engine"] == "torch"
    assert "no ONNX networks" in old["bundle"]["deep_runtime"]["note"]
    assert main(["predict", str(trained["bundle"]), str(ct), str(mask), "-o", str(tmp_path / "new.json"),
                 "--device", "cpu"]) == 0
    new = json.loads((tmp_path / "new.json").read_text())
    assert new["bundle"]["deep_runtime"]["engine"] == "onnxruntime"
    for endpoint, p in new["predictions"].items():
        assert p["deep_probability"] == pytest.approx(old["predictions"][endpoint]["deep_probability"], abs=1e-5)


def _foreign_onnx(path: Path, kind: str) -> None:
    """A valid ONNX file of another network: another input shape, or fewer outputs."""
    import torch

    class Other(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(1, 2)), x.amax(dim=(1, 2))

    shape = (1, 3, 160, 160) if kind == "input" else (1, 160, 160)
    names = ["features", "probabilities"]
    torch.onnx.export(Other().eval(), (torch.zeros(shape),), str(path), input_names=["patch_hu"],
                      output_names=names, opset_version=17, dynamo=False,
                      dynamic_axes={n: {0: "batch"} for n in ["patch_hu", *names]})


@pytest.mark.parametrize("damage", ["truncated", "wrong hash", "other input", "other outputs"])
def test_a_bad_onnx_file_is_one_error_line_naming_it(bundle_copy, tmp_path, capsys, damage):
    meta = json.loads((bundle_copy / "bundle.json").read_text())
    name = meta["deep_onnx"][-1]["file"]
    file = bundle_copy / name
    if damage == "truncated":
        file.write_bytes(file.read_bytes()[:len(file.read_bytes()) // 3])
    elif damage == "wrong hash":
        data = bytearray(file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        file.write_bytes(bytes(data))
    else:
        _foreign_onnx(file, "input" if damage == "other input" else "outputs")
    if damage != "wrong hash":
        _rehash(bundle_copy, name)
    ct, mask = _write_case(tmp_path)
    capsys.readouterr()
    out = tmp_path / "out"
    out.mkdir()
    status = main(["predict", str(bundle_copy), str(ct), str(mask), "-o", str(out / "result.json"),
                   "--gradcam", str(out / "heat.nii.gz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and str(file) in errors[0], err
    assert "Traceback" not in "\n".join(err)
    assert {"truncated": "not a readable ONNX network", "wrong hash": "sha256 does not match",
            "other input": "not this bundle's Deep-CT network: it takes",
            "other outputs": "not this bundle's Deep-CT network: it gives 2 outputs"}[damage] in errors[0]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("runtime", ["absent", "too old"])
def test_an_absent_or_old_onnxruntime_is_one_error_line(trained, tmp_path, runtime):  # noqa: F811
    block = tmp_path / "block"
    (block / "onnxruntime").mkdir(parents=True)
    (block / "onnxruntime" / "__init__.py").write_text(
        BLOCKER.format(name="onnxruntime") if runtime == "absent" else '__version__ = "1.10.0"\n')
    ct, mask = _write_case(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    run = _run_cli(["predict", trained["bundle"], ct, mask, "-o", out / "result.json"], block, tmp_path)
    assert run.returncode == 2, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and ".onnx" in errors[0] and str(trained["bundle"]) in errors[0], run.stderr
    assert ("not installed" if runtime == "absent" else "1.10.0 is too old") in errors[0]
    assert "Traceback" not in run.stderr
    assert list(out.iterdir()) == []


def test_threads_and_device_keep_their_meaning(trained):  # noqa: F811
    import onnxruntime as ort

    deep = Bundle.load(trained["bundle"], device="cpu", threads=2).deep
    assert deep.runtime["threads"] == 2
    assert all(n.session.get_session_options().intra_op_num_threads == 2 for n in deep.networks)
    from DeepRadScoreLib.resources import allowed_cores

    free = Bundle.load(trained["bundle"], device="cpu").deep.runtime["threads"]
    assert 1 <= free <= len(allowed_cores())
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(InputError, match="onnxruntime-gpu"):
            Bundle.load(trained["bundle"], device="cuda")
        auto = Bundle.load(trained["bundle"], device="auto").deep
        assert auto.runtime["provider"] == "CPUExecutionProvider"
    with pytest.raises(InputError, match="unknown device"):
        Bundle.load(trained["bundle"], device="tpu")
