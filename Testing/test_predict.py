"""`deepradscore predict` on a generated CT with the session's bundle: fields, heatmap, errors."""
from __future__ import annotations

import json
import re

import numpy as np
import SimpleITK as sitk

from conftest import make_case
from DeepRadScoreLib.cli.main import main
from test_training import trained  # noqa: F401


def _write_case(folder):
    image, mask = make_case(shape=(24, 48, 48), radius_mm=7.0, seed=4)
    sitk.WriteImage(image, str(folder / "ct.nii.gz"))
    sitk.WriteImage(mask, str(folder / "mask.nii.gz"))
    return folder / "ct.nii.gz", folder / "mask.nii.gz", image


def test_predict_writes_every_field_and_heatmap(trained, tmp_path, capsys):  # noqa: F811
    ct, mask, image = _write_case(tmp_path)
    out, heat = tmp_path / "result.json", tmp_path / "heat.nii.gz"
    assert main(["predict", str(trained["bundle"]), str(ct), str(mask), "-o", str(out),
                 "--gradcam", str(heat), "--gradcam-endpoint", "NULL", "--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    assert set(result["predictions"]) == {"PLANT", "NULL"}
    meta = json.loads((trained["bundle"] / "bundle.json").read_text())
    for endpoint, p in result["predictions"].items():
        assert 0.0 <= p["probability"] <= 1.0
        assert p["predicted_class"] == int(p["probability"] >= p["threshold"])
        assert p["threshold"] == meta["models"][endpoint]["models"]["fusion"]["threshold"]
        assert p["classifier"] == meta["models"][endpoint]["models"]["fusion"]["chosen"]
        assert 0.0 <= p["radiomics_probability"] <= 1.0 and 0.0 <= p["deep_probability"] <= 1.0
        assert np.isfinite([p["radscore_tumor"], p["radscore_peritumoral"]]).all()
        assert len(p["deep_features"]) == 4
    assert result["patch"]["size"] == 160 and result["bundle"]["synthetic"] is True
    assert result["gradcam"]["endpoint"] == "NULL"
    assert result["bundle"]["skipped_endpoints"].keys() == {"RARE"}
    volume = sitk.ReadImage(str(heat))
    assert volume.GetSize() == image.GetSize()
    assert np.allclose(volume.GetSpacing(), image.GetSpacing())
    values = sitk.GetArrayFromImage(volume)
    k = result["patch"]["slice_index"]
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert not np.delete(values, k, axis=0).any()  # only the deep-ROI slice carries the map
    assert "PLANT: Deep-RadScore" in capsys.readouterr().out
    # The radiomics processes were sized to the free cores (one torch thread beside them); the
    # background bundle load was waited for.
    assert result["threads"] == 1 and 1 <= result["radiomics_jobs"] <= 2
    assert result["seconds"]["bundle_wait"] >= 0.0
    # The Deep-CT ran beside the radiomics; the result says which radiomics backend ran (auto:
    # native, even where pyradiomics is installed).
    assert result["seconds"]["deep"] > 0.0 and result["seconds"]["deep_wait"] >= 0.0
    assert result["radiomics_backend"].startswith("native (")
    # The bundle has ONNX graphs: ONNX Runtime ran them, on the CPU (--device cpu), with the
    # one thread predict gives the Deep-CT beside the radiomics.
    assert result["bundle"]["deep_runtime"] == {"engine": "onnxruntime", "version": result["bundle"]["deep_runtime"]["version"],
                                               "provider": "CPUExecutionProvider", "threads": 1}


def test_predict_with_the_native_backend_gives_the_same_predictions(trained, tmp_path):  # noqa: F811
    ct, mask, _ = _write_case(tmp_path)
    results = {}
    for backend in ("native", "pyradiomics"):
        out = tmp_path / f"{backend}.json"
        assert main(["predict", str(trained["bundle"]), str(ct), str(mask), "-o", str(out), "--device", "cpu",
                     "--radiomics-backend", backend]) == 0
        results[backend] = json.loads(out.read_text())
    assert results["native"]["radiomics_backend"].startswith("native")
    for endpoint, p in results["pyradiomics"]["predictions"].items():
        q = results["native"]["predictions"][endpoint]
        assert np.isclose(q["radscore_tumor"], p["radscore_tumor"], rtol=1e-6, atol=1e-9)
        assert np.isclose(q["probability"], p["probability"], rtol=1e-6, atol=1e-9)


def test_predict_bad_inputs_exit_2_one_line_no_output(trained, tmp_path, capsys):  # noqa: F811
    ct, mask, _ = _write_case(tmp_path)
    out = tmp_path / "result.json"
    cases = [
        ([str(trained["bundle"]), str(ct), str(tmp_path / "absent.nii.gz")], "absent.nii.gz: file not found"),
        ([str(tmp_path), str(ct), str(mask)], "not a DeepRadScore bundle"),
        ([str(trained["bundle"]), str(ct), str(mask), "--endpoints", "RARE"], "RARE was skipped at training"),
        ([str(trained["bundle"]), str(ct), str(mask), "--gradcam-endpoint", "PLANT"], "needs --gradcam"),
    ]
    for argv, message in cases:
        assert main(["predict", *argv, "-o", str(out), "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: ") and message in err[-1], err
        assert not out.exists()


def test_predict_uses_the_bundle_settings_and_refuses_contradicting_ones(trained, tmp_path, capsys):  # noqa: F811
    """Issue 11 s.3: `predict --thickness-mm 5` on a 3 mm bundle is refused, before any work; the
    bundle's own thickness is what a case is extracted with; the bundle is named."""
    ct, mask, _ = _write_case(tmp_path)
    out = tmp_path / "result.json"
    params = tmp_path / "other.yaml"
    params.write_text("imageType:\n  Original: {}\nfeatureClass:\n  firstorder:\n")
    bundle = str(trained["bundle"])
    cases = [
        (["--thickness-mm", "5"], f"error: {bundle}: the bundle was trained on features extracted with "
                                  f"other settings: given ring thickness 5 mm, not 3 mm"),
        (["--params", str(params)], "given radiomics parameters other.yaml"),
        (["--endpoints", "KRAS"], f"error: {bundle}: endpoint KRAS is not in this bundle"),
    ]
    for extra, message in cases:
        assert main(["predict", bundle, str(ct), str(mask), "-o", str(out), "--device", "cpu", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"error: {bundle}: ") and message in err[-1], err
        assert not out.exists()
    assert main(["predict", bundle, str(ct), str(mask), "-o", str(out), "--thickness-mm", "nan"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: --thickness-mm nan: the ring thickness must be from 0.5 to 50 mm"
    # The explicit value equal to the bundle's is fine, and the JSON says what was used.
    assert main(["predict", bundle, str(ct), str(mask), "-o", str(out), "--device", "cpu",
                 "--thickness-mm", "3"]) == 0
    result = json.loads(out.read_text())
    meta = json.loads((trained["bundle"] / "bundle.json").read_text())
    # The settings used are recorded once, and they are the bundle's.
    assert out.read_text().count('"thickness_mm"') == 1 and "params_yaml" not in result["settings"]
    assert result["settings"]["thickness_mm"] == 3.0
    assert result["settings"]["params_sha256"] == meta["settings"]["params_sha256"]
    assert result["settings"]["backend"] == "native" and result["radiomics_backend"].startswith("native (")
    assert "ring 3 mm" in capsys.readouterr().out


def test_a_5mm_bundle_extracts_5mm_rings(trained, tmp_path):  # noqa: F811
    import shutil

    from DeepRadScoreLib.pipelines.case import analyse_case
    from DeepRadScoreLib.model.bundle import Bundle
    from DeepRadScoreLib.regions import peritumoral_ring
    from test_bundle import _rewrite_meta

    copy = tmp_path / "bundle5"
    shutil.copytree(trained["bundle"], copy)
    _rewrite_meta(copy, lambda meta: meta["settings"].update(thickness_mm=5.0))
    bundle = Bundle.load(copy, device="cpu")
    assert bundle.settings.thickness_mm == 5.0
    image, mask = make_case(shape=(24, 48, 48), radius_mm=7.0, seed=4)
    result = analyse_case(image, mask, bundle, gradcam=False)
    ring = sitk.GetArrayFromImage(result.ring)
    assert ring.sum() == sitk.GetArrayFromImage(peritumoral_ring(mask, 5.0)).sum()
    assert ring.sum() != sitk.GetArrayFromImage(peritumoral_ring(mask, 3.0)).sum()


def test_extract_writes_the_settings_sidecar(tmp_path):
    from DeepRadScoreLib.features.radiomics import PARAMS_PATH
    from DeepRadScoreLib.features.settings import MASK_RULE, read_settings

    ct, mask, _ = _write_case(tmp_path)
    table = tmp_path / "one.csv"
    assert main(["extract", str(ct), str(mask), "-o", str(table), "--thickness-mm", "4.5"]) == 0
    settings = read_settings(table)
    assert (tmp_path / "one.settings.json").is_file()
    assert settings.thickness_mm == 4.5 and settings.mask_rule == MASK_RULE
    assert settings.params_yaml == PARAMS_PATH.read_text() and settings.params_name == PARAMS_PATH.name
    import radiomics

    assert settings.pyradiomics_version == radiomics.__version__


def test_free_cores_is_at_least_one_and_within_the_affinity_set(tmp_path):
    import os
    import subprocess
    import sys

    from DeepRadScoreLib.resources import _cpu_times, allowed_cores, busy_between, free_cores

    allowed = allowed_cores()
    assert 1 <= free_cores(window_s=0.05) <= len(allowed)
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\n"
                    "cpu1 5 0 5 40 0 0 0 0 0 0\nintr 1 2\n")
    assert _cpu_times(str(stat)) == {0: (10, 50), 1: (10, 50)}
    # A file that does not change: no busy time seen, every allowed core free.
    assert free_cores(window_s=0.0, path=str(stat)) == len(allowed)
    # Without /proc/stat (macOS, Windows) the load average stands in, still clamped.
    assert 1 <= free_cores(window_s=0.0, path=str(tmp_path / "absent")) <= len(allowed)
    before = {0: (10, 50), 1: (10, 50)}
    both_busy = {0: (110, 150), 1: (110, 150)}
    assert busy_between(before, both_busy, {0, 1}) == 2.0
    assert busy_between(before, {0: (60, 150), 1: (10, 150)}, {0, 1}) == 0.5
    assert busy_between(before, both_busy, {1}) == 1.0  # only the cores this process may use
    # Pinned to one CPU, the helper counts that one CPU only, however many the machine has.
    code = ("import os; from DeepRadScoreLib.resources import free_cores; "
            f"os.sched_setaffinity(0, {{{min(allowed)}}}); print(free_cores(window_s=0.05))")
    if hasattr(os, "sched_setaffinity"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "1", out.stderr


def test_predict_of_some_endpoints_reads_only_their_classifiers(trained, tmp_path, capsys):  # noqa: F811
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(trained["bundle"], bundle)
    for model in ("radiomics", "deep", "fusion"):
        (bundle / f"NULL_{model}.skops").write_bytes(b"damaged")
    ct, mask, _ = _write_case(tmp_path)
    out = tmp_path / "result.json"
    assert main(["predict", str(bundle), str(ct), str(mask), "-o", str(out), "--endpoints", "PLANT",
                 "--device", "cpu"]) == 0
    assert set(json.loads(out.read_text())["predictions"]) == {"PLANT"}
    out.unlink()
    assert main(["predict", str(bundle), str(ct), str(mask), "-o", str(out), "--device", "cpu"]) == 2
    assert re.search(r"NULL_\w+\.skops: sha256 does not match", capsys.readouterr().err)
    assert not out.exists()


def test_predict_of_a_one_voxel_tumour_names_the_mask_file(trained, tmp_path, capsys):  # noqa: F811
    """Issue 12: the radiomics' "tumour mask: ..." refusal says which file holds that mask, in
    `predict` as in `extract`, and nothing is written."""
    ct, mask, image = _write_case(tmp_path)
    dot = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint8)
    dot[12, 24, 24] = 1
    single = sitk.GetImageFromArray(dot)
    single.CopyInformation(image)
    path = tmp_path / "dot.nii.gz"
    sitk.WriteImage(single, str(path))
    out = tmp_path / "result.json"
    assert main(["predict", str(trained["bundle"]), str(ct), str(path), "-o", str(out), "--device", "cpu"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"error: {path}: tumour mask: "), line
    assert not out.exists()



def test_a_predict_process_imports_neither_scikit_learn_nor_skops(trained, tmp_path):  # noqa: F811
    """Issue 13: the bundle's inference files replace scikit-learn and skops (1.5 s of CPU beside
    the radiomics); the cores are counted over the case's reading, not an idle window."""
    import subprocess
    import sys

    ct, mask, _ = _write_case(tmp_path)
    out = tmp_path / "result.json"
    argv = ["predict", str(trained["bundle"]), str(ct), str(mask), "-o", str(out), "--gradcam",
            str(tmp_path / "heat.nii.gz"), "--device", "cpu"]
    code = ("import sys; from DeepRadScoreLib.cli.main import main; "
            f"assert main({argv!r}) == 0; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'skops'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert set(result["predictions"]) == {"PLANT", "NULL"}
    assert {"count_cores", "load_bundle", "regions", "radiomics"} <= set(result["seconds"])
    assert 1 <= result["radiomics_jobs"] <= 2
