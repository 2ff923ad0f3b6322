"""One settings object, end to end: what is asked (``SettingsRequest``), resolved once against
what a bundle or table recorded (``resolve_settings``), and the options every command shares."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from DeepRadScoreLib.cli.parser import build_parser, settings_request
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.settings import (DEFAULT_THICKNESS_MM, PARAMS_PATH, ExtractionSettings,
                                               SettingsRequest, resolve_settings)


def test_recorded_beats_default_and_an_asked_value_must_agree(tmp_path):
    fresh = resolve_settings(SettingsRequest())
    assert fresh.thickness_mm == DEFAULT_THICKNESS_MM and fresh.params_name == PARAMS_PATH.name
    assert fresh.params_yaml == PARAMS_PATH.read_text(encoding="utf-8") and fresh.backend == "auto"
    assert resolve_settings(SettingsRequest(thickness_mm=4.5)).thickness_mm == 4.5
    recorded = replace(fresh, thickness_mm=5.0, backend="pyradiomics")
    # Not asked: the recorded value, not the default; the backend is the one asked for.
    used = resolve_settings(SettingsRequest(backend="native"), recorded, "bundle-x")
    assert used.thickness_mm == 5.0 and used.backend == "native"
    assert resolve_settings(SettingsRequest(thickness_mm=5), recorded, "bundle-x").thickness_mm == 5.0
    with pytest.raises(InputError, match=r"^bundle-x: .*given ring thickness 3 mm, not 5 mm"):
        resolve_settings(SettingsRequest(thickness_mm=3.0), recorded, "bundle-x")
    other = tmp_path / "other.yaml"
    other.write_text("imageType:\n  Original: {}\n")
    with pytest.raises(InputError, match=r"^bundle-x: .*radiomics parameters other.yaml"):
        resolve_settings(SettingsRequest(params_path=str(other)), recorded, "bundle-x")
    asked = resolve_settings(SettingsRequest(params_path=str(other)))
    assert asked.params_yaml == other.read_text() and asked.params_name == "other.yaml"
    with pytest.raises(InputError, match="missing.yaml: radiomics parameter file not found"):
        resolve_settings(SettingsRequest(params_path=str(tmp_path / "missing.yaml")))


def test_a_run_records_its_backend_and_a_result_records_the_settings_once():
    used = resolve_settings(SettingsRequest()).ran_with("native", "")
    assert used.backend == "native" and used.pyradiomics_version == ""
    summary = used.summary()
    assert summary["thickness_mm"] == DEFAULT_THICKNESS_MM and "params_yaml" not in summary
    assert summary["params_sha256"] == used.params_sha256 and summary["backend"] == "native"
    # A recorded settings object that was edited (thickness out of range) is refused on reading.
    from DeepRadScoreLib.typedjson import SchemaError, from_json, to_json

    document = to_json(used)
    document["thickness_mm"] = 0.1
    with pytest.raises(SchemaError, match="thickness_mm 0.1: the ring thickness must be from 0.5 to 50 mm"):
        from_json(ExtractionSettings, document, "settings")


def test_a_request_travels_as_typed_json():
    request = SettingsRequest(thickness_mm=4.0, params_path="p.yaml", backend="native")
    assert SettingsRequest.from_json(json.loads(json.dumps(request.to_json()))) == request
    assert SettingsRequest.from_json({}) == SettingsRequest()
    with pytest.raises(InputError, match="thickness_mm"):
        SettingsRequest.from_json({"thickness_mm": "thick"})
    with pytest.raises(InputError, match="unknown field 'ring'"):
        SettingsRequest.from_json({"ring": 3})


@pytest.mark.parametrize("argv", [
    ["extract", "ct.nii.gz", "mask.nii.gz", "-o", "f.csv"],
    ["train", "--manifest", "m.csv", "-o", "b"],
    ["predict", "b", "ct.nii.gz", "mask.nii.gz", "-o", "r.json"],
    ["evaluate", "b", "--manifest", "m.csv", "-o", "r"],
])
def test_every_command_takes_the_same_settings_options(argv):
    options = ["--thickness-mm", "4", "--params", "p.yaml", "--radiomics-backend", "native"]
    assert settings_request(build_parser().parse_args(argv + options)) == SettingsRequest(4.0, "p.yaml", "native")
    default = settings_request(build_parser().parse_args(argv))
    # Where a bundle or table recorded the settings, not asking leaves them to it.
    assert default.thickness_mm == (DEFAULT_THICKNESS_MM if argv[0] == "extract" else None)
    assert (default.params_path, default.backend) == (None, "auto")
