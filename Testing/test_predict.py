"""`deepradscore predict` on a generated CT with the session's bundle: fields, heatmap, errors."""
from __future__ import annotations

import json

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
