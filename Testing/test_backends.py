"""Choosing the radiomics backend (features/backends.py) from the command line, in this
environment where pyradiomics is installed (Testing/test_native_env.py covers a Python without it)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from conftest import make_case
from DeepRadScoreLib.cli.main import main
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features import backends


def _write_case(folder):
    image, mask = make_case(shape=(24, 40, 40), radius_mm=6.0, seed=3)
    paths = folder / "ct.nii.gz", folder / "gtv.nii.gz"
    sitk.WriteImage(image, str(paths[0]))
    sitk.WriteImage(mask, str(paths[1]))
    return paths


def test_auto_takes_native_even_where_pyradiomics_imports_and_names_are_checked():
    assert backends.pyradiomics_version() is not None
    assert backends.resolve("auto") == backends.resolve(None) == "native"
    assert backends.resolve("pyradiomics") == "pyradiomics"
    assert backends.resolve("native") == "native"
    assert backends.describe("native").startswith("native (DeepRadScore ")
    with pytest.raises(InputError, match="unknown backend 'fast'"):
        backends.resolve("fast")
    assert backends.feature_names(backend="native") == backends.feature_names(backend="pyradiomics")


def test_extract_with_either_backend_gives_the_same_table_and_records_which(tmp_path, capsys):
    image, mask = _write_case(tmp_path)
    tables = {}
    for backend in ("native", "pyradiomics"):
        out = tmp_path / backend / "features.csv"
        assert main(["extract", str(image), str(mask), "-o", str(out), "--radiomics-backend", backend]) == 0
        tables[backend] = pd.read_csv(out)
        settings = json.loads((tmp_path / backend / "features.settings.json").read_text())["settings"]
        assert settings["backend"] == backend
    a, b = tables["native"], tables["pyradiomics"]
    assert list(a.columns) == list(b.columns) and a.shape == (1, 1703)
    x, y = a.iloc[0, 1:].to_numpy(float), b.iloc[0, 1:].to_numpy(float)
    both_nan = np.isnan(x) & np.isnan(y)
    assert np.all(both_nan | (np.abs(x - y) <= 1e-9 + 1e-6 * np.abs(y)))


def test_an_unknown_backend_is_refused_by_the_parser(tmp_path, capsys):
    image, mask = _write_case(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["extract", str(image), str(mask), "-o", str(tmp_path / "f.csv"), "--radiomics-backend", "gpu"])
    assert stop.value.code == 2
    assert "invalid choice: 'gpu'" in capsys.readouterr().err
    assert not (tmp_path / "f.csv").exists()


def test_the_cache_key_depends_on_the_backend(tmp_path):
    from DeepRadScoreLib.features.extraction import _fixed_key_part
    from DeepRadScoreLib.features.settings import resolve_settings

    settings = resolve_settings()
    assert _fixed_key_part(settings.ran_with("native", "")) != _fixed_key_part(settings.ran_with("pyradiomics", ""))



def test_the_backends_are_peers_sharing_only_the_features_modules():
    """features/radiomics.py imports nothing of features/native/, and native nothing of it."""
    import ast
    from pathlib import Path

    features = Path(backends.__file__).resolve().parent

    def imported(path):
        tree = ast.parse(path.read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    assert not [n for n in imported(features / "radiomics.py") if ".features.native" in n]
    for path in (features / "native").glob("*.py"):
        assert not [n for n in imported(path) if n.endswith("features.radiomics")], path


def test_parameters_as_a_mapping_give_the_file_s_features_and_no_file_is_needed(tmp_path):
    """Both backends take the parsed mapping (and a path, as before); caches key on the SHA-256."""
    import yaml

    from DeepRadScoreLib.features import params as shared

    image, mask = make_case(shape=(16, 28, 28), radius_mm=5.0, seed=4)
    ring = sitk.BinaryDilate(mask, [2, 2, 1]) - mask
    mapping = {"setting": {"binWidth": 25, "preCrop": True}, "imageType": {"Original": {}},
               "featureClass": {"firstorder": [], "glcm": ["Contrast", "Correlation"]}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(mapping))
    from_text = shared.from_text(path.read_text(), "p.yaml")
    assert from_text == shared.read(path) and from_text.sha256 == shared.sha256_text(path.read_text())
    for backend in ("native", "pyradiomics"):
        by_path = backends.extract_case_features(image, mask, ring, path, backend=backend)
        path.unlink()  # from here on only the mapping exists
        by_mapping = backends.extract_case_features(image, mask, ring, mapping, backend=backend)
        by_parameters = backends.extract_case_features(image, mask, ring, from_text, backend=backend)
        assert by_path == by_mapping == by_parameters and len(by_path) == 2 * (18 + 2)
        assert list(by_path) == backends.feature_names(mapping, backend)
        path.write_text(yaml.safe_dump(mapping))
    with pytest.raises(InputError, match="^<parameters>: invalid pyradiomics parameter file"):
        backends.extract_case_features(image, mask, ring, {"setting": {"binWidth": "wide"}},
                                       backend="pyradiomics")
