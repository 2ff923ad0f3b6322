"""An ``extract --workers 2`` killed about half way (SIGKILL, and separately SIGTERM) resumes with
no case computed twice and writes a table byte-identical to an uninterrupted run's.

A small cohort of tiny synthetic cases keeps it fast; ``benchmarks/bench_resume.py`` runs the same
on 300 cases and records the main process's memory against the number of cases.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import make_case
from DeepRadScoreLib.features.extraction import extract_cohort, output_paths

N_CASES = 10


def write_cohort(folder: Path, n_cases: int) -> Path:
    """``n_cases`` tiny cases (12 x 24 x 24 voxels, tumours of 4-6 mm) and their manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["case_id,image,mask"]
    for i in range(n_cases):
        image, mask = make_case(shape=(12, 24, 24), radius_mm=4.0 + i % 3, seed=i)
        sitk.WriteImage(image, str(folder / f"c{i:03d}.nii.gz"))
        sitk.WriteImage(mask, str(folder / f"c{i:03d}_m.nii.gz"))
        lines.append(f"c{i:03d},c{i:03d}.nii.gz,c{i:03d}_m.nii.gz")
    manifest = folder / "cohort.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def cache_entries(output_csv: Path) -> set[str]:
    cache = output_paths(output_csv)[3]
    # Finished entries only: an entry being written is a hidden temporary ``.<key>.json.*.tmp.json``
    # that a stopped run removes, so counting it made the count drop after the kill.
    return {p.stem for p in cache.glob("*.json") if not p.name.startswith(".")} if cache.is_dir() else set()


def kill_half_way(manifest: Path, output_csv: Path, signal_name: str, n_cases: int, timeout: float = 300) -> int:
    """Run the CLI's ``extract --workers 2``; send ``signal_name`` once half the cases are cached.
    Returns the number of cache entries once the process has ended."""
    command = [str(Path(sys.executable).parent / "deepradscore"), "extract", "--manifest", str(manifest),
               "-o", str(output_csv), "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while len(cache_entries(output_csv)) < n_cases // 2 and process.poll() is None:
            assert time.monotonic() < deadline, "the extraction did not get half way"
            time.sleep(0.02)
        assert process.poll() is None, f"it ended before the kill: {process.stderr.read().decode()[-400:]}"
        os.kill(process.pid, getattr(signal, signal_name))
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    return len(cache_entries(output_csv))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    manifest = write_cohort(folder / "cases", N_CASES)
    reference = folder / "reference" / "features.csv"
    result = extract_cohort(manifest, reference, workers=1)
    assert len(result.computed) == N_CASES
    return manifest, reference


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_a_killed_extraction_resumes_without_recomputing_and_gives_the_same_table(tmp_path, cohort, signal_name):
    manifest, reference = cohort
    output_csv = tmp_path / "out" / "features.csv"
    done = kill_half_way(manifest, output_csv, signal_name, N_CASES)
    assert N_CASES // 2 <= done < N_CASES, f"killed at {done} of {N_CASES} cases: not half way"
    assert not output_csv.exists(), "a killed run left a table"
    resumed = extract_cohort(manifest, output_csv, workers=2)
    assert resumed.broken_cache == [] and resumed.failed == {}
    assert len(resumed.cached) == done, "a case cached before the kill was computed again"
    assert len(resumed.computed) == N_CASES - done
    assert output_csv.read_bytes() == reference.read_bytes()
    with np.load(output_paths(output_csv)[1]) as got, np.load(output_paths(reference)[1]) as want:
        assert sorted(got.files) == sorted(want.files)
        for key in want.files:
            assert np.array_equal(got[key], want[key])
