"""Bundle round trip and refusals: tampered bytes, newer format, foreign types in a skops file;
the numpy inference files: equal to skops, no scikit-learn in a loading process, older
bundles through skops, damaged files refused in one line."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from DeepRadScoreLib.model.bundle import Bundle, _content_hash
from DeepRadScoreLib.filehash import sha256_file
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.model.scoring import score_cases
from DeepRadScoreLib.features.extraction import read_feature_table
from DeepRadScoreLib.features.params import parameters
from DeepRadScoreLib.features.settings import SettingsRequest, resolve_settings
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


def _drop_inference(path, keys=None, format_version=None):
    """The bundle without the inference files of ``keys`` ((endpoint, model); default all), as
    an older DeepRadScore or a failed export leaves it; ``format_version=2``: as format 2 wrote it
    (no inference files, no ONNX graphs)."""
    def change(meta):
        for endpoint, info in meta["models"].items():
            for model, entry in info["models"].items():
                if keys is None or (endpoint, model) in keys:
                    meta["files"].pop(entry["inference_file"])
                    (path / entry["inference_file"]).unlink()
                    if format_version == 2:
                        del entry["inference_file"]
                    else:
                        entry["inference_file"] = ""
        if format_version is not None:
            meta["format_version"] = format_version
            for network in meta.pop("deep_onnx", []):  # format 4's ONNX graphs
                meta["files"].pop(network["file"])
                (path / network["file"]).unlink()
    _rewrite_meta(path, change)


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
    # Prediction uses the inference file; the skops file is refused where it is read.
    bundle = Bundle.load(bundle_copy, device="cpu")
    with pytest.raises(InputError, match=r"PLANT_fusion.skops: refusing to load unexpected types .*system"):
        bundle.pipelines  # noqa: B018
    _drop_inference(bundle_copy, keys={("PLANT", "fusion")})
    with pytest.raises(InputError, match=r"PLANT_fusion.skops: refusing to load unexpected types .*system"):
        Bundle.load(bundle_copy, device="cpu")


def test_missing_bundle_and_skipped_endpoint_messages(trained, tmp_path):  # noqa: F811
    with pytest.raises(InputError, match="not a DeepRadScore bundle"):
        Bundle.load(tmp_path, device="cpu")
    bundle = Bundle.load(trained["bundle"], device="cpu")
    with pytest.raises(InputError, match="RARE was skipped at training: 3 positive"):
        bundle.check_endpoint("RARE")


# --- malformed bundles whose hashes were recomputed: one error line, exit 2, no traceback -------

def _cli_error(bundle_copy, tmp_path, capsys) -> str:
    """`deepradscore predict` on the bundle; returns its one error line (exit 2, no output)."""
    from conftest import make_case
    import SimpleITK as sitk

    from DeepRadScoreLib.cli.main import main

    image, mask = make_case(shape=(12, 24, 24), radius_mm=4.0)
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "mask.nii.gz"))
    out = tmp_path / "result.json"
    code = main(["predict", str(bundle_copy), str(tmp_path / "ct.nii.gz"), str(tmp_path / "mask.nii.gz"),
                 "-o", str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 2 and not out.exists()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert lines[-1].startswith(f"error: {bundle_copy}"), lines
    return lines[-1]


MALFORMED = {
    "models is a list": (lambda m: m.update(models=[]), "models: expected an object"),
    "threshold is text": (lambda m: m["models"]["PLANT"]["models"]["fusion"].update(threshold="high"),
                          "models.PLANT.models.fusion.threshold: expected a number"),
    "chosen is unknown": (lambda m: m["models"]["PLANT"]["models"]["deep"].update(chosen="XGB"),
                          "models.PLANT.models.deep: unknown classifier 'XGB'"),
    "nested estimate missing": (lambda m: m["models"]["NULL"]["models"]["radiomics"].pop("nested_cv_auc"),
                                "models.NULL.models.radiomics.nested_cv_auc: missing"),
    "a model missing": (lambda m: m["models"]["NULL"]["models"].pop("fusion"), "models.NULL: models must be"),
    "settings missing": (lambda m: m.pop("settings"), "settings: missing"),
    "thickness negative": (lambda m: m["settings"].update(thickness_mm=-3),
                           "settings: thickness_mm -3: the ring thickness must be from 0.5 to 50 mm"),
    "feature not in table": (lambda m: m["models"]["PLANT"]["radscore"]["tumor"]["features"][0].update(name="x"),
                             "feature x is not among feature_names"),
    "endpoints disagree": (lambda m: m.update(endpoints=["PLANT"]), "endpoints and models must name"),
    "deep k is text": (lambda m: m["parameters"]["deep"].update(k="4"), "parameters.deep.k"),
    "deep description empty": (lambda m: m.update(deep={}), "deep.safetensors"),
    "files is a list": (lambda m: m.update(files=[]), "files: expected an object"),
    "unknown field": (lambda m: m.update(extra=1), "unknown field 'extra'"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_bundle_json_is_one_error_line(name, bundle_copy, tmp_path, capsys):
    change, message = MALFORMED[name]
    _rewrite_meta(bundle_copy, change)
    with pytest.raises(InputError) as info:
        Bundle.load(bundle_copy, device="cpu")
    assert str(info.value).startswith(str(bundle_copy)) and message in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_pickle_in_place_of_the_networks_and_foreign_estimator_are_refused(bundle_copy, tmp_path, capsys):
    import pickle

    import skops.io
    from sklearn.linear_model import LinearRegression

    deep = bundle_copy / "deep.safetensors"
    original = deep.read_bytes()
    deep.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    _rewrite_meta(bundle_copy, lambda meta: meta["files"].update({deep.name: sha256_file(deep)}))
    line = _cli_error(bundle_copy, tmp_path, capsys)
    assert "deep.safetensors: not a readable safetensors file" in line, line
    deep.write_bytes(original)  # the networks are read before the classifiers: put them back
    _rewrite_meta(bundle_copy, lambda meta: meta["files"].update({deep.name: sha256_file(deep)}))

    # A scikit-learn type skops trusts by default, but not a classifier on the model's inputs.
    name = "PLANT_radiomics.skops"
    skops.io.dump(LinearRegression().fit(np.zeros((3, 2)), [0, 1, 2]), bundle_copy / name)
    _rewrite_meta(bundle_copy, lambda meta: meta["files"].update({name: sha256_file(bundle_copy / name)}))
    _drop_inference(bundle_copy, keys={("PLANT", "radiomics")})
    with pytest.raises(InputError, match="PLANT_radiomics.skops: not a fitted classifier on 2 inputs"):
        Bundle.load(bundle_copy, device="cpu")


def test_cli_reports_a_malformed_bundle_in_one_line(bundle_copy, tmp_path, capsys):
    _rewrite_meta(bundle_copy, lambda meta: meta.update(models=[]))
    assert "models: expected an object" in _cli_error(bundle_copy, tmp_path, capsys)


def test_older_format_and_non_json_are_refused(bundle_copy):
    _rewrite_meta(bundle_copy, lambda meta: meta.update(format_version=1))
    with pytest.raises(InputError, match="format 1 does not record its extraction settings"):
        Bundle.load(bundle_copy, device="cpu")
    (bundle_copy / "bundle.json").write_text("[1, 2")
    with pytest.raises(InputError, match="bundle.json: not valid JSON"):
        Bundle.load(bundle_copy, device="cpu")


def test_every_bundle_file_has_normal_permissions(trained, tmp_path):  # noqa: F811
    """Issue 12 s.8: deep.safetensors was 0600 (safetensors writes private files)."""
    import os

    from DeepRadScoreLib.outputs import _default_mode

    bundle = Bundle.load(trained["bundle"], device="cpu")
    bundle.save(tmp_path / "again")
    for item in [tmp_path / "again", *(tmp_path / "again").iterdir()]:
        expected = _default_mode(0o777 if item.is_dir() else 0o666)
        assert os.stat(item).st_mode & 0o777 == expected, (item.name, oct(os.stat(item).st_mode))


def test_typed_metadata_and_settings_api(trained):  # noqa: F811
    """What the Slicer Logic and the commands read: typed, never a nested dict."""
    from DeepRadScoreLib.features.radiomics import PARAMS_PATH
    from DeepRadScoreLib.model.meta import BundleMeta, ModelInfo

    bundle = Bundle.load(trained["bundle"], device="cpu")
    assert isinstance(bundle.meta, BundleMeta)
    info = bundle.model_info("PLANT", "fusion")
    assert isinstance(info, ModelInfo) and info.chosen_cv_auc is info.cv_auc[info.chosen]
    assert 0.0 <= info.nested_cv_auc.mean <= 1.0 and len(info.nested_cv_auc.chosen) == 5
    assert bundle.settings.thickness_mm == 3.0
    assert bundle.settings.parameters().sha256 == parameters(PARAMS_PATH).sha256
    resolved = resolve_settings(SettingsRequest(3.0, str(PARAMS_PATH)), bundle.settings, "bundle")
    assert resolved.contradictions(bundle.settings) == [] and resolved.params_yaml == bundle.settings.params_yaml
    with pytest.raises(InputError, match=r"bundle.*: the bundle was trained on features extracted with "
                                         r"other settings: given ring thickness 5 mm, not 3 mm"):
        resolve_settings(SettingsRequest(thickness_mm=5), bundle.settings, str(bundle.path))
    with pytest.raises(InputError, match=f"{trained['bundle']}: endpoint KRAS is not in this bundle"):
        bundle.check_endpoint("KRAS")


def test_loading_a_bundle_imports_no_training_code_nor_scikit_learn(trained):  # noqa: F811
    """Prediction never imports training code, and a bundle with inference files loads
    and scores without scikit-learn or skops: checked in a fresh interpreter."""
    import subprocess
    import sys

    code = ("import sys; from DeepRadScoreLib.model.bundle import Bundle; "
            "from DeepRadScoreLib.features.extraction import read_feature_table; "
            "from DeepRadScoreLib.model.scoring import score_cases; "
            f"b = Bundle.load({str(trained['bundle'])!r}, device='cpu'); "
            f"f, p = read_feature_table({str(trained['features'])!r}, {trained['ids'][-2:]!r}); "
            "s = score_cases(b, f, p); assert len(s.scores) == 12; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'skops') "
            "or m.startswith('DeepRadScoreLib') and 'training' in m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_partial_load_reads_only_the_asked_endpoints_files(trained, bundle_copy):  # noqa: F811
    """Bundle.load(endpoints=...) never opens another endpoint's skops files: here they
    are garbage, which a full load refuses, and the probabilities equal a full load's."""
    for model in ("radiomics", "deep", "fusion"):
        (bundle_copy / f"NULL_{model}.skops").write_bytes(b"not a skops file")
    with pytest.raises(InputError, match=r"NULL_\w+\.skops: sha256 does not match"):
        Bundle.load(bundle_copy, device="cpu")
    features, patches = read_feature_table(trained["features"], trained["ids"][-4:])
    full = score_cases(Bundle.load(trained["bundle"], device="cpu"), features, patches, ["PLANT"])
    for background in (False, True):
        partial = Bundle.load(bundle_copy, device="cpu", endpoints=["PLANT"], background=background)
        assert partial.endpoints == ["PLANT"]
        assert set(partial.classifiers) == {("PLANT", m) for m in ("radiomics", "deep", "fusion")}
        scores = score_cases(partial, features, patches)
        np.testing.assert_array_equal(scores.scores.score.to_numpy(), full.scores.score.to_numpy())
        with pytest.raises(InputError, match="endpoint NULL was not loaded"):
            partial.check_endpoint("NULL")
    with pytest.raises(ValueError, match="partially loaded"):
        partial.save(bundle_copy.parent / "again")


def test_background_load_raises_its_error_in_the_callers_thread(bundle_copy):
    target = bundle_copy / "deep.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    bundle = Bundle.load(bundle_copy, device="cpu", background=True)
    assert bundle.endpoints == ["PLANT", "NULL"]  # bundle.json is read and checked at once
    with pytest.raises(InputError, match="deep.safetensors: sha256 does not match"):
        bundle.wait()
    with pytest.raises(InputError, match="deep.safetensors: sha256 does not match"):
        bundle.deep  # noqa: B018  (every later use fails the same way, never half-loaded)


def test_background_load_gives_the_networks_before_the_classifiers_and_their_errors_after(bundle_copy):
    """predict's Deep-CT starts once the networks are in; a broken classifier file is
    still an InputError naming it, raised where the classifiers are needed."""
    for name, message in (("PLANT_fusion.inference.json", "PLANT_fusion.inference.json: not a valid "
                                                          "inference file"),
                          ("PLANT_fusion.skops", "PLANT_fusion.skops: not a readable skops file")):
        if name.endswith(".skops"):
            _drop_inference(bundle_copy, keys={("PLANT", "fusion")})
        (bundle_copy / name).write_bytes(b"not a zip archive")
        _rewrite_meta(bundle_copy, lambda meta: meta["files"].update({name: sha256_file(bundle_copy / name)}))
        bundle = Bundle.load(bundle_copy, device="cpu", background=True)
        bundle._loader.join()  # the classifier error has happened: the networks are still served
        deep = bundle.deep
        assert deep.n_networks >= 1 and deep.features(np.full((1, 160, 160), -800.0))["PLANT"].shape[1] == 1
        with pytest.raises(InputError, match=message):
            bundle.wait()
        with pytest.raises(InputError, match=name):
            bundle.classifiers  # noqa: B018


def test_inference_forms_give_the_skops_pipelines_probabilities(trained):  # noqa: F811
    """Every trained model has an inference file whose export check passed on the training
    inputs; scores, the SHAP head and each classifier equal the scikit-learn pipelines'."""
    from DeepRadScoreLib.model.inference import InferenceClassifier, positive_probability

    bundle = Bundle.load(trained["bundle"], device="cpu")
    meta = json.loads((trained["bundle"] / "bundle.json").read_text())
    assert meta["format_version"] == 4
    features, patches = read_feature_table(trained["features"], trained["ids"][-6:])
    numpy_scores = score_cases(bundle, features, patches)
    rng = np.random.default_rng(0)
    for (endpoint, model), classifier in bundle.classifiers.items():
        entry = meta["models"][endpoint]["models"][model]
        assert isinstance(classifier, InferenceClassifier) and classifier.kind == entry["chosen"]
        check = json.loads((trained["bundle"] / entry["inference_file"]).read_text())["check"]
        assert check["max_abs_difference"] <= 1e-9 and check["rows"] > 300
        pipeline = bundle.pipelines[(endpoint, model)]
        assert type(pipeline).__name__ == "Pipeline"
        rows = rng.normal(size=(50, classifier.n_features_in_)) * classifier.scale + classifier.mean
        np.testing.assert_allclose(positive_probability(classifier, rows), positive_probability(pipeline, rows),
                                   rtol=0, atol=1e-9)
    heads = {"numpy": bundle.fusion_head("PLANT")}
    bundle.classifiers = dict(bundle.pipelines)  # the scikit-learn path, as format-2 bundles run
    heads["sklearn"] = bundle.fusion_head("PLANT")
    sklearn_scores = score_cases(bundle, features, patches)
    np.testing.assert_allclose(numpy_scores.scores.score, sklearn_scores.scores.score, rtol=0, atol=1e-9)
    fused = numpy_scores.fused["PLANT"][heads["numpy"][1]].to_numpy()
    np.testing.assert_allclose(heads["numpy"][0](fused), heads["sklearn"][0](fused), rtol=0, atol=1e-9)


def test_older_bundles_load_through_skops_and_gain_inference_files_when_saved(trained, bundle_copy, tmp_path):  # noqa: F811
    """A format-2 bundle (no inference files) and one whose export failed for one model load
    through skops, with the same scores; saving a format-2 bundle again writes its forms."""
    from DeepRadScoreLib.model.inference import InferenceClassifier

    features, patches = read_feature_table(trained["features"], trained["ids"][-6:])
    expected = score_cases(Bundle.load(trained["bundle"], device="cpu"), features, patches).scores.score
    mixed = tmp_path / "mixed"
    shutil.copytree(bundle_copy, mixed)
    _drop_inference(mixed, keys={("NULL", "fusion")})
    bundle = Bundle.load(mixed, device="cpu")
    assert not isinstance(bundle.classifiers[("NULL", "fusion")], InferenceClassifier)
    assert isinstance(bundle.classifiers[("NULL", "deep")], InferenceClassifier)
    np.testing.assert_allclose(score_cases(bundle, features, patches).scores.score, expected, rtol=0, atol=1e-9)

    _drop_inference(bundle_copy, format_version=2)
    old = Bundle.load(bundle_copy, device="cpu")
    assert not any(isinstance(c, InferenceClassifier) for c in old.classifiers.values())
    # Format 2 has no ONNX graphs: its networks run through torch, as the original's can.
    through_torch = score_cases(Bundle.load(trained["bundle"], device="cpu", deep_runtime="torch"),
                                features, patches).scores.score
    np.testing.assert_allclose(score_cases(old, features, patches).scores.score, through_torch, rtol=0, atol=1e-9)
    old.save(tmp_path / "again")
    again = Bundle.load(tmp_path / "again", device="cpu")
    saved = json.loads((tmp_path / "again" / "bundle.json").read_text())
    # Loaded through torch (format 2 has no ONNX graphs), saved again with its graphs.
    assert saved["format_version"] == 4 and len(saved["deep_onnx"]) == len(saved["deep"]["members"])
    assert again.has_onnx and type(again.deep).__name__ == "OnnxEnsemble"
    assert all(isinstance(c, InferenceClassifier) for c in again.classifiers.values())
    np.testing.assert_allclose(score_cases(again, features, patches).scores.score, expected, rtol=0, atol=1e-9)


def test_damaged_or_edited_inference_file_is_refused_in_one_line(bundle_copy, tmp_path, capsys):
    target = bundle_copy / "PLANT_deep.inference.json"
    original = target.read_bytes()
    target.write_bytes(original.replace(b'"kind":"', b'"kind":"X', 1))
    with pytest.raises(InputError, match="PLANT_deep.inference.json: sha256 does not match"):
        Bundle.load(bundle_copy, device="cpu")
    _rewrite_meta(bundle_copy, lambda meta: meta["files"].update({target.name: sha256_file(target)}))
    line = _cli_error(bundle_copy, tmp_path, capsys)
    assert f"{target}: not a valid inference file: kind: unknown classifier 'X" in line, line
    # A valid document, but of another kind than bundle.json chose for that model.
    from DeepRadScoreLib.model.classifiers import fit_classifier
    from DeepRadScoreLib.model.inference_export import export_classifier

    chosen = json.loads(original)["kind"]
    other = "NB" if chosen != "NB" else "LR"
    X = np.random.default_rng(0).normal(size=(30, json.loads(original)["mean"].__len__()))
    target.write_text(json.dumps(export_classifier(fit_classifier(other, X, np.arange(30) % 2), X)))
    _rewrite_meta(bundle_copy, lambda meta: meta["files"].update({target.name: sha256_file(target)}))
    with pytest.raises(InputError, match=f"{target.name}: not a valid inference file: holds a {other} "
                                         f"classifier, bundle.json chose {chosen}"):
        Bundle.load(bundle_copy, device="cpu")
