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


def test_auto_takes_pyradiomics_where_it_imports_and_names_are_checked():
    assert backends.pyradiomics_version() is not None
    assert backends.resolve("auto") == backends.resolve(None) == "pyradiomics"
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

