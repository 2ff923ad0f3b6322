"""The native backend end to end: all 851 features of the tumour and of its 3 mm ring
(1702 per case) equal pyradiomics' numbers, on the IBSI phantom, the generated cases and STS
cases. The reference is :func:`DeepRadScoreLib.features.radiomics.extract_case_features`, which
runs pyradiomics itself (its numbers are pyradiomics', tested in test_radiomics.py); one test also
compares a single ROI with plain ``RadiomicsFeatureExtractor.execute``.

One test per case, so that ``pytest -n 2`` spreads the slow part over both workers.
"""
from __future__ import annotations

import logging

import pytest

import native_cases as nc
from DeepRadScoreLib.features import radiomics
from DeepRadScoreLib.features.native import backend, params
from DeepRadScoreLib.regions import peritumoral_ring

logging.getLogger("radiomics").setLevel(logging.ERROR)

# All 18 STS cases (5.5k to 262k tumour voxels; about 1.5 min of one core for both paths).
STS_CASES = tuple(nc.sts_names())
GENERATED = tuple(name for name, _, _ in nc.generated_cases())


def _case(name: str):
    if name == "ibsi_phantom":
        return nc.phantom()
    if name.startswith("STS_"):
        return nc.sts_case(name)
    return next(c for c in nc.generated_cases() if c[0] == name)


def _equal_to_pyradiomics_path(name: str) -> None:
    _, image, mask = _case(name)
    ring = peritumoral_ring(mask, 3.0)
    reference = radiomics.extract_case_features(image, mask, ring)
    ours = backend.extract_case_features(image, mask, ring)
    assert len(ours) == 1702
    assert list(ours) == list(reference)
    assert nc.compare(reference, ours) == []


@pytest.mark.parametrize("name", ("ibsi_phantom",) + GENERATED)
def test_phantom_and_generated_cases(name):
    _equal_to_pyradiomics_path(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", STS_CASES)
def test_sts_cases(name):
    _equal_to_pyradiomics_path(name)


@pytest.mark.parametrize("name", ("anisotropic", "shell"))
def test_one_roi_equals_plain_pyradiomics(name):
    _, image, mask = _case(name)
    reference = nc.pyradiomics_reference(image, mask)
    ours = backend.extract_roi(image, mask, params.load())
    assert list(ours) == list(reference)
    assert nc.compare(reference, ours) == []


def test_runs_without_pyradiomics():
    """In a process where ``import radiomics`` fails, the native backend still gives pyradiomics'
    numbers (and never loads pyradiomics' parameter validator either)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, json\n"
        "sys.modules['radiomics'] = None  # every import of radiomics now raises ImportError\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import native_cases as nc\n"
        "from DeepRadScoreLib.features.native import backend\n"
        "from DeepRadScoreLib.regions import peritumoral_ring\n"
        "name, image, mask = nc.generated_cases()[0]\n"
        "features = backend.extract_case_features(image, mask, peritumoral_ring(mask, 3.0))\n"
        "assert 'pykwalify' not in sys.modules\n"
        "print(json.dumps(features))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    ours = json.loads(run.stdout.strip().splitlines()[-1])
    _, image, mask = nc.generated_cases()[0]
    reference = radiomics.extract_case_features(image, mask, peritumoral_ring(mask, 3.0))
    assert list(ours) == list(reference)
    assert nc.compare(reference, ours) == []
