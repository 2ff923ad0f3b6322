"""extraction: cohort features + patches, cache and resume, failures, local processes and Dask."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import make_case

from DeepRadScoreLib import regions
from DeepRadScoreLib.cli import main as cli
from DeepRadScoreLib.io import images as imaging
from DeepRadScoreLib.errors import Cancelled, InputError
from DeepRadScoreLib.features.extraction import extract_cohort, output_paths
from DeepRadScoreLib.io.manifest import read_manifest
# The backend extract runs by default (auto), so the table holds exactly its one-case numbers.
from DeepRadScoreLib.features.backends import extract_case_features, feature_names

N_CASES = 4


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Four small generated cases (tumours of different sizes) and their manifest."""
    folder = tmp_path_factory.mktemp("cohort")
    lines = ["case_id,image,mask,split,EGFR"]
    for i in range(N_CASES):
        image, mask = make_case(shape=(16, 30, 30), radius_mm=4.0 + i, seed=10 + i)
        sitk.WriteImage(image, str(folder / f"case{i}.nii.gz"))
        sitk.WriteImage(mask, str(folder / f"case{i}_mask.nii.gz"))
        lines.append(f"case{i},case{i}.nii.gz,case{i}_mask.nii.gz,{'train' if i < 3 else 'test'},{i % 2}")
    (folder / "cohort.csv").write_text("\n".join(lines) + "\n")
    return folder / "cohort.csv"


@pytest.fixture(scope="module")
def reference(cohort, tmp_path_factory):
    """The cohort extracted in this process, one case after the other."""
    out = tmp_path_factory.mktemp("reference") / "features.csv"
    result = extract_cohort(read_manifest(cohort), out)
    size = {f"case{i}": sum((cohort.parent / f"case{i}{s}.nii.gz").stat().st_size for s in ("", "_mask"))
            for i in range(N_CASES)}
    assert result.computed == sorted(size, key=size.get, reverse=True)  # the largest files first
    return pd.read_csv(out, dtype={"case_id": str}).set_index("case_id")


def test_features_table_and_patches(cohort, reference, tmp_path):
    names = feature_names()
    assert list(reference.columns) == names and list(reference.index) == [f"case{i}" for i in range(N_CASES)]
    # The table holds exactly the one-case numbers (the CSV keeps full precision).
    case = imaging.load_case(cohort.parent / "case2.nii.gz", cohort.parent / "case2_mask.nii.gz")
    direct = extract_case_features(case.image, case.mask, regions.peritumoral_ring(case.mask, 3.0))
    np.testing.assert_array_equal(reference.loc["case2"].to_numpy(), [direct[n] for n in names])
    _, patches_file, _, _ = output_paths(tmp_path / "features.csv")
    assert patches_file.name == "features.patches.npz"


def test_interrupted_run_resumes_from_the_cache(cohort, reference, tmp_path):
    out = tmp_path / "features.csv"
    features_csv, patches_npz, failures_csv, cache = output_paths(out)
    seen = []
    with pytest.raises(Cancelled):  # stop after two cases, as Ctrl-C or Slicer's Cancel would
        extract_cohort(cohort, out, progress=lambda f, m: seen.append(f),
                       cancel=lambda: len(list(cache.glob("*.json"))) >= 2)
    assert not features_csv.exists() and not patches_npz.exists()
    first = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(first) == 4  # two cases: JSON + patch each

    result = extract_cohort(cohort, out)
    assert sorted(result.cached) == ["case2", "case3"] and sorted(result.computed) == ["case0", "case1"]
    assert {p: p.stat().st_mtime_ns for p in first} == first  # cached entries were not rewritten
    table = pd.read_csv(features_csv, dtype={"case_id": str}).set_index("case_id")
    pd.testing.assert_frame_equal(table, reference)
    with np.load(patches_npz) as npz:
        assert sorted(npz.files) == [f"case{i}" for i in range(N_CASES)]
        assert npz["case1"].shape == (160, 160) and npz["case1"].dtype == np.float32
        case = imaging.load_case(cohort.parent / "case1.nii.gz", cohort.parent / "case1_mask.nii.gz")
        np.testing.assert_array_equal(npz["case1"], regions.deep_roi_patch(case.image, case.mask).hu)

    # A changed mask file is recomputed; its stale cache entry is removed.
    changed = tmp_path / "changed"
    changed.mkdir()
    for file in cohort.parent.glob("case*"):
        (changed / file.name).write_bytes(file.read_bytes())
    manifest = changed / "cohort.csv"
    manifest.write_text(cohort.read_text())
    mask = sitk.ReadImage(str(changed / "case0_mask.nii.gz"))
    array = sitk.GetArrayFromImage(mask)
    array[array.nonzero()[0][0], array.nonzero()[1][0], array.nonzero()[2][0]] = 0
    edited = sitk.GetImageFromArray(array)
    edited.CopyInformation(mask)
    sitk.WriteImage(edited, str(changed / "case0_mask.nii.gz"))
    result = extract_cohort(manifest, out)
    assert result.computed == ["case0"] and sorted(result.cached) == ["case1", "case2", "case3"]
    assert len(list(cache.glob("*.json"))) == N_CASES
    new = pd.read_csv(features_csv, dtype={"case_id": str}).set_index("case_id")
    assert new.loc["case0", "tumor_original_shape_VoxelVolume"] < reference.loc["case0", "tumor_original_shape_VoxelVolume"]


def test_failed_cases_are_listed_and_the_rest_go_on(cohort, reference, tmp_path, capsys):
    folder = cohort.parent
    (tmp_path / "corrupt.nii.gz").write_bytes(b"not an image")
    empty = sitk.Image(sitk.ReadImage(str(folder / "case0_mask.nii.gz")))
    empty *= 0
    sitk.WriteImage(empty, str(tmp_path / "empty_mask.nii.gz"))
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("case_id,image,mask\n"
                        f"good,{folder / 'case1.nii.gz'},{folder / 'case1_mask.nii.gz'}\n"
                        f"corrupt,corrupt.nii.gz,{folder / 'case1_mask.nii.gz'}\n"
                        f"empty,{folder / 'case0.nii.gz'},empty_mask.nii.gz\n")
    out = tmp_path / "out" / "features.csv"
    status = cli.main(["extract", "--manifest", str(manifest), "-o", str(out), "--workers", "2"])
    assert status == 1  # written, but some cases are missing
    stderr = capsys.readouterr().err
    assert "failed: corrupt: " in stderr and "cannot read as an image" in stderr
    assert "failed: empty: " in stderr and "empty" in stderr.split("failed: empty: ")[1]
    failures = pd.read_csv(tmp_path / "out" / "features.failures.csv")
    assert list(failures["case_id"]) == ["corrupt", "empty"] and list(failures["row"]) == [3, 4]
    table = pd.read_csv(out, dtype={"case_id": str}).set_index("case_id")
    np.testing.assert_array_equal(table.loc["good"].to_numpy(), reference.loc["case1"].to_numpy())

    # Nothing extracted at all: an error (exit 2), no table.
    manifest.write_text(f"case_id,image,mask\ncorrupt,corrupt.nii.gz,{folder / 'case1_mask.nii.gz'}\n")
    alone = tmp_path / "alone" / "features.csv"
    assert cli.main(["extract", "--manifest", str(manifest), "-o", str(alone)]) == 2
    assert "all 1 cases failed" in capsys.readouterr().err and not alone.exists()
    with pytest.raises(InputError, match="all 1 cases failed"):
        extract_cohort(manifest, alone)


def test_local_processes_and_dask_cluster_give_the_same_table(cohort, reference, tmp_path, monkeypatch):
    from distributed import LocalCluster

    from DeepRadScoreLib.features import extraction

    out = tmp_path / "processes" / "features.csv"
    extract_cohort(cohort, out, workers=2)
    pd.testing.assert_frame_equal(pd.read_csv(out, dtype={"case_id": str}).set_index("case_id"), reference)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        out = tmp_path / "dask" / "features.csv"
        result = extract_cohort(cohort, out, scheduler=cluster.scheduler_address)
        assert sorted(result.computed) == [f"case{i}" for i in range(N_CASES)]
        # The cases ran as tasks of the cluster's scheduler.
        assert any(prefix.startswith("deepradscore") for prefix in cluster.scheduler.task_prefixes)
    pd.testing.assert_frame_equal(pd.read_csv(out, dtype={"case_id": str}).set_index("case_id"), reference)
    monkeypatch.setattr(extraction, "SCHEDULER_TIMEOUT", "2s")
    with pytest.raises(InputError, match="cannot connect to a Dask scheduler"):
        extract_cohort(cohort, tmp_path / "x.csv", scheduler="tcp://127.0.0.1:9")


def test_one_case_command(cohort, reference, tmp_path, capsys):
    folder = cohort.parent
    out = tmp_path / "one" / "features.csv"
    assert cli.main(["extract", str(folder / "case3.nii.gz"), str(folder / "case3_mask.nii.gz"), "-o", str(out)]) == 0
    table = pd.read_csv(out, dtype={"case_id": str}).set_index("case_id")
    assert list(table.index) == ["case3"] and table.shape == (1, 1702)
    np.testing.assert_array_equal(table.loc["case3"].to_numpy(), reference.loc["case3"].to_numpy())
    with np.load(tmp_path / "one" / "features.patches.npz") as npz:
        assert npz.files == ["case3"]

    bad = tmp_path / "bad" / "features.csv"
    assert cli.main(["extract", str(folder / "missing.nii.gz"), str(folder / "case3_mask.nii.gz"), "-o", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "missing.nii.gz: file not found" in err and "Traceback" not in err
    assert not bad.parent.exists() or not any(bad.parent.iterdir())
    assert cli.main(["extract", "--manifest", str(cohort), str(folder / "case3.nii.gz"), "-o", str(bad)]) == 2


def test_the_command_prints_no_pyradiomics_notes_and_leaves_its_logger_alone(cohort, tmp_path):
    """pyradiomics warns once per GLCM ("GLCM is symmetrical, ..."): the `deepradscore` command and
    the workers it starts show only its errors, while the engine, imported as a library, leaves
    pyradiomics' logging as it is (in Slicer SlicerRadiomics logs through the same logger)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "DeepRadScoreLib.cli.main", "extract", "--manifest", str(cohort),
                          "-o", str(tmp_path / "f.csv"), "--workers", "2"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "GLCM is symmetrical" not in run.stderr
    # The engine used as a library (as inside Slicer), in a fresh process: pyradiomics' own
    # handler still passes its warnings afterwards. (Not this test process: other tests here call
    # the command line's main(), which quietens it as the application may.)
    library = subprocess.run([sys.executable, "-c", (
        "import logging, radiomics\n"
        "from DeepRadScoreLib.features.extraction import extract_case\n"
        f"extract_case({str(cohort.parent / 'case0.nii.gz')!r}, {str(cohort.parent / 'case0_mask.nii.gz')!r})\n"
        "print(radiomics.handler.level == logging.WARNING)\n")], capture_output=True, text=True)
    assert library.returncode == 0, library.stderr
    assert library.stdout.strip().splitlines()[-1] == "True"


def test_the_main_process_of_a_cohort_run_imports_no_extraction_library(cohort, reference, tmp_path):
    """With local processes the main process only reads, hashes and writes: pyradiomics,
    SimpleITK and SciPy (~35 MB there) are imported by the workers alone, the backend's facts
    (pyradiomics' version, the column names) come from one of them, and the table is the same."""
    import subprocess
    import sys

    out = tmp_path / "features.csv"
    script = ("import sys\n"
              "from DeepRadScoreLib.cli.main import main\n"
              f"status = main(['extract', '--manifest', {str(cohort)!r}, '-o', {str(out)!r}, '--workers', '2'])\n"
              "print(status, sorted(m for m in ('radiomics', 'SimpleITK', 'scipy', 'pywt') if m in sys.modules))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "0 []"
    pd.testing.assert_frame_equal(pd.read_csv(out, dtype={"case_id": str}).set_index("case_id"), reference)
    settings = (tmp_path / "features.settings.json").read_text()
    import radiomics

    assert f'"pyradiomics_version": "{radiomics.__version__}"' in settings  # as the worker found it


def test_the_settings_object_keeps_the_cache_keys_of_the_bundled_parameters():
    """The cache key is made of the settings object now; for the bundled parameter file it is
    the key the path-and-thickness version made, so existing caches (the demo's) stay valid."""
    import hashlib

    from DeepRadScoreLib import __version__
    from DeepRadScoreLib.features.backends import describe
    from DeepRadScoreLib.features.extraction import CACHE_FORMAT, _fixed_key_part
    from DeepRadScoreLib.features.settings import PARAMS_PATH, SettingsRequest, resolve_settings

    for thickness in (3.0, 4.5):
        earlier = hashlib.sha256(f"format {CACHE_FORMAT} engine {__version__} {describe('native')} "
                                 f"ring {thickness!r}\n".encode())
        earlier.update(PARAMS_PATH.read_bytes())
        settings = resolve_settings(SettingsRequest(thickness_mm=thickness)).ran_with("native", "")
        assert _fixed_key_part(settings) == earlier.hexdigest()
