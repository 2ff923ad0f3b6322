"""Bundle round trip and refusals: tampered bytes, newer format, foreign types in a skops file."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from DeepRadScoreLib.model.bundle import Bundle, _content_hash
from DeepRadScoreLib.filehash import sha256_file
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.model.scoring import score_cases
from DeepRadScoreLib.model.training import read_feature_table
from test_training import trained  # noqa: F401  (the session's trained bundle)


@pytest.fixture()
def bundle_copy(trained, tmp_path):  # noqa: F811
    path = tmp_path / "bundle"
    shutil.copytree(trained["bundle"], path)
    return path


def _rewrite_meta(path, change):
    meta = json.loads((path / "bundle.json").read_text())
    change(meta)
    meta["content_sha256"] = _content_hash(meta)
    (path / "bundle.json").write_text(json.dumps(meta))


def test_round_trip_gives_identical_predictions(trained, tmp_path):  # noqa: F811
    bundle = Bundle.load(trained["bundle"], device="cpu")
    features, patches = read_feature_table(trained["features"], trained["ids"][-4:])
    before = score_cases(bundle, features, patches)
    bundle.save(tmp_path / "again")
    after = score_cases(Bundle.load(tmp_path / "again", device="cpu"), features, patches)
    np.testing.assert_array_equal(before.scores.score.to_numpy(), after.scores.score.to_numpy())
    # The fusion head used for SHAP is the fusion model on the fused features.
    head, names = bundle.fusion_head("PLANT")
    fused = before.fused["PLANT"][names].to_numpy()
    assert names[-2:] == ["radscore_tumor", "radscore_peritumoral"]
    assert head(fused).shape == (4,)
    assert np.all((head(fused) >= 0) & (head(fused) <= 1))


def test_tampered_byte_is_refused(bundle_copy):
    target = bundle_copy / "deep.safetensors"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(InputError, match="deep.safetensors: sha256 does not match"):
        Bundle.load(bundle_copy, device="cpu")


def test_edited_bundle_json_is_refused(bundle_copy):
    meta_file = bundle_copy / "bundle.json"
    meta = json.loads(meta_file.read_text())
    meta["models"]["PLANT"]["models"]["fusion"]["threshold"] = 0.0
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="does not match its recorded hash"):
        Bundle.load(bundle_copy, device="cpu")


def test_newer_format_is_refused(bundle_copy):
    _rewrite_meta(bundle_copy, lambda meta: meta.update(format_version=99))
    with pytest.raises(InputError, match="format 99 is newer"):
        Bundle.load(bundle_copy, device="cpu")


def test_skops_file_with_foreign_type_is_refused(bundle_copy):
    import os

    import skops.io
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    name = "PLANT_fusion.skops"
    skops.io.dump(Pipeline([("f", FunctionTransformer(os.system))]), bundle_copy / name)
    _rewrite_meta(bundle_copy, lambda meta: meta["files"].update({name: sha256_file(bundle_copy / name)}))
    with pytest.raises(InputError, match=r"PLANT_fusion.skops: refusing to load unexpected types .*system"):
        Bundle.load(bundle_copy, device="cpu")


def test_missing_bundle_and_skipped_endpoint_messages(trained, tmp_path):  # noqa: F811
    with pytest.raises(InputError, match="not a DeepRadScore bundle"):
        Bundle.load(tmp_path, device="cpu")
    bundle = Bundle.load(trained["bundle"], device="cpu")
    with pytest.raises(InputError, match="RARE was skipped at training: 3 positive"):
        bundle.check_endpoint("RARE")
