"""Bad input never gives wrong numbers, a traceback or leftovers.

Truncated files of every format read, NaN/inf voxels, output paths that cannot be written,
broken cache entries, workers outliving a killed parent and implausible ring thicknesses. Each
test builds its bad input from a real file (the IBSI phantom or a small generated case) and runs
the real readers / the real command line.
"""
from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import PHANTOM, make_case
from DeepRadScoreLib.cli.main import main
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.io import images
from DeepRadScoreLib.io.integrity import check_image_data

TRUNCATED = r"truncated image data \(expected (\d+) bytes, found (\d+)\)"


def cut(path: Path, keep: int | float, out: Path | None = None) -> Path:
    """``path`` (or a copy ``out``) cut to ``keep`` bytes, or to that fraction of its size."""
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    out = out or path
    out.write_bytes(data[:n])
    return out


@pytest.fixture(scope="module")
def small_case():
    return make_case(shape=(12, 24, 24), radius_mm=5.0)


# --- s.1: truncated image data ------------------------------------------------------------

def test_phantom_nii_gz_cut_to_20kb_is_refused(tmp_path, phantom_paths):
    image, mask = phantom_paths
    short = cut(image, 20_000, tmp_path / "image.nii.gz")
    # Before the check this read "fine": the tumour mean came out 9.0 HU instead of 40.4.
    with pytest.raises(InputError, match=rf"image\.nii\.gz: {TRUNCATED}") as err:
        images.load_case(short, mask)
    assert str(err.value).startswith(str(short))
    assert "expected 9840960 bytes" in str(err.value)


def test_phantom_nii_cut_to_half_its_data_is_refused(tmp_path, phantom_paths):
    image, mask = phantom_paths
    raw = gzip.decompress(image.read_bytes())
    half = tmp_path / "image.nii"
    half.write_bytes(raw[:352 + (len(raw) - 352) // 2])
    with pytest.raises(InputError, match=TRUNCATED) as err:
        images.load_case(half, mask)
    expected, found = (int(v) for v in re.search(TRUNCATED, str(err.value)).groups())
    assert expected == len(raw) - 352 and found == expected // 2
    # The complete file reads, and the size check passes on it.
    half.write_bytes(raw)
    assert images.read_image(half).GetSize() == (204, 201, 60)


@pytest.mark.parametrize("suffix,compress", [(".nrrd", False), (".nrrd", True), (".mha", False),
                                             (".mha", True), (".nii", False), (".nii.gz", True)])
def test_every_single_file_format_cut_short_is_refused(tmp_path, small_case, suffix, compress):
    image, mask = small_case
    full = tmp_path / f"ct{suffix}"
    sitk.WriteImage(image, str(full), useCompression=compress)
    assert images.read_image(full).GetSize() == image.GetSize()
    short = cut(full, 0.7, tmp_path / f"short{suffix}")
    with pytest.raises(InputError, match=rf"short{suffix.replace('.', '[.]')}: truncated image data"):
        images.read_image(short)
    # The mask reader checks its files the same way.
    mask_file = tmp_path / f"mask{suffix}"
    sitk.WriteImage(mask, str(mask_file), useCompression=compress)
    cut(mask_file, mask_file.stat().st_size - 12)  # a compressed mask is mostly header: cut its data
    with pytest.raises(InputError, match=rf"mask{suffix.replace('.', '[.]')}: .*truncated image data"):
        images.read_mask(mask_file, image)


@pytest.mark.parametrize("header,data", [(".nhdr", ".raw"), (".mhd", ".raw"), (".hdr", ".img")])
def test_detached_data_file_cut_short_is_refused_naming_the_data_file(tmp_path, small_case, header, data):
    image, _ = small_case
    head = tmp_path / f"ct{header}"
    sitk.WriteImage(image, str(head))
    payload = tmp_path / f"ct{data}"
    assert payload.is_file()
    images.read_image(head)
    cut(payload, 0.5)
    with pytest.raises(InputError, match=rf"ct{data.replace('.', '[.]')}: {TRUNCATED}"):
        images.read_image(head)


def test_gzip_cut_in_its_trailer_or_with_a_flipped_bit_is_refused(tmp_path, small_case):
    image, _ = small_case
    full = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(full), useCompression=True)
    data = full.read_bytes()
    trailer = tmp_path / "trailer.nii.gz"
    trailer.write_bytes(data[:-3])  # every voxel is there; the CRC and size are not
    with pytest.raises(InputError, match="trailer.nii.gz: .*truncated image data"):
        images.read_image(trailer)
    flipped = bytearray(data)
    flipped[-6] ^= 0x01  # in the CRC: the voxels decompress, the checksum disagrees
    bad = tmp_path / "crc.nii.gz"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(InputError, match="crc.nii.gz: .*(incorrect data check|corrupt)"):
        images.read_image(bad)


def test_seg_nrrd_cut_short_is_refused(tmp_path, small_case):
    image, mask = small_case
    seg = sitk.Image(mask)
    seg.SetMetaData("Segment0_ID", "tumour")
    seg.SetMetaData("Segment0_Name", "tumour")
    seg.SetMetaData("Segment0_LabelValue", "1")
    seg.SetMetaData("Segment0_Layer", "0")
    path = tmp_path / "tumour.seg.nrrd"
    sitk.WriteImage(seg, str(path), useCompression=True)
    assert sitk.GetArrayViewFromImage(images.read_mask(path, image)).sum() == sitk.GetArrayViewFromImage(mask).sum()
    cut(path, 0.8)
    with pytest.raises(InputError, match=r"tumour\.seg\.nrrd: .*truncated image data"):
        images.read_mask(path, image)


def test_dicom_slice_with_short_pixel_data_names_the_file(tmp_path):
    series = tmp_path / "ct"
    shutil.copytree(PHANTOM / "dicom" / "image", series)
    for file in series.iterdir():
        file.chmod(0o644)
    victim = sorted(series.iterdir())[17]
    cut(victim, victim.stat().st_size - 4000)
    with pytest.raises(InputError, match=rf"{victim.name}: truncated image data \(expected 82008 bytes "
                                         r"of pixel data, found 78008\)"):
        images.read_image(series)


def test_the_cli_refuses_a_truncated_image_with_one_line_and_no_output(tmp_path, phantom_paths, capsys):
    image, mask = phantom_paths
    short = cut(image, 20_000, tmp_path / "image.nii.gz")
    out = tmp_path / "out" / "features.csv"
    assert main(["extract", str(short), str(mask), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {short}: truncated image data (expected 9840960 bytes")
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_size_check_leaves_unknown_headers_to_simpleitk(tmp_path):
    odd = tmp_path / "odd.nrrd"
    odd.write_bytes(b"NRRD0004\ntype: block\nsizes: 2 2\nencoding: raw\n\n" + b"\0" * 4)
    check_image_data(odd)  # a type we do not size: no verdict, SimpleITK decides
    check_image_data(tmp_path / "whatever.png")  # not a format we check


# --- s.2: NaN / infinite voxels -----------------------------------------------------------

@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels_are_refused_with_count_and_position(tmp_path, small_case, value):
    image, mask = small_case
    hu = sitk.GetArrayFromImage(image)
    hu[3, 5, 7] = value
    hu[6, 0, 0] = value
    bad = sitk.GetImageFromArray(hu)
    bad.CopyInformation(image)
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(bad, str(path))
    with pytest.raises(InputError, match=r"ct\.nrrd: 2 voxels are not finite numbers \(NaN or infinite\); "
                                         rf"the first, {value}, is at voxel index \(i, j, k\) = \(7, 5, 3\)"):
        images.load_case(path, tmp_path / "unused.nii.gz")


# --- s.3: output paths are checked before any work -----------------------------------------

@pytest.fixture()
def unwritable_dir(tmp_path):
    """A folder no file can be created in, also for root (tests run as root): ``chattr +i``.

    Root ignores permission bits, so a real immutable flag (ext4, xfs, btrfs) is used; as another
    user, plain 0555 permissions do. Skipped only where neither works (e.g. tmpfs as root).
    """
    import os
    import subprocess

    folder = tmp_path / "locked"
    folder.mkdir()
    immutable = False
    if os.geteuid() == 0:
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    else:
        folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        pass
    else:
        (folder / "probe").unlink()
        pytest.skip("cannot make an unwritable folder here (root on a filesystem without chattr +i)")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o755)


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def refused(capsys, argv: list[str], path: str) -> str:
    """Run the CLI in-process: exit 2 and one ``error: PATH: reason`` line, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "\r" not in line]
    assert lines[-1].startswith(f"error: {path}: "), err
    assert "Traceback" not in err
    return lines[-1]


@pytest.fixture()
def one_case(tmp_path, small_case):
    image, mask = small_case
    folder = tmp_path / "in"
    folder.mkdir()
    sitk.WriteImage(image, str(folder / "ct.nii.gz"))
    sitk.WriteImage(mask, str(folder / "mask.nii.gz"))
    return folder / "ct.nii.gz", folder / "mask.nii.gz"


def test_extract_refuses_bad_output_paths_before_work(tmp_path, one_case, unwritable_dir, capsys):
    image, mask = one_case
    before = files_under(tmp_path)
    a_folder = tmp_path / "existing"
    a_folder.mkdir()
    cases = [(a_folder, "is a folder"),
             (Path("/proc/features.csv"), "cannot write in the folder /proc"),
             (Path("/proc/self/nowhere/features.csv"), "cannot create the folder /proc/self/nowhere"),
             (unwritable_dir / "features.csv", f"cannot write in the folder {unwritable_dir}"),
             (unwritable_dir / "sub" / "features.csv", f"cannot create the folder {unwritable_dir / 'sub'}"),
             (image / "features.csv", f"{image} is not a folder")]
    for out, reason in cases:
        line = refused(capsys, ["extract", str(image), str(mask), "-o", str(out)], str(out))
        assert reason in line, line
    # A derived output that cannot be written is refused too: here the patches file is a folder.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "features.patches.npz").mkdir()
    refused(capsys, ["extract", str(image), str(mask), "-o", str(tmp_path / "out" / "features.csv")],
            str(tmp_path / "out" / "features.patches.npz"))
    assert files_under(tmp_path) == before | {a_folder, tmp_path / "out", tmp_path / "out" / "features.patches.npz"}


def test_cohort_extract_refuses_a_cache_path_that_is_a_file(tmp_path, one_case, capsys):
    image, mask = one_case
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"case_id,image,mask\nc1,{image},{mask}\n")
    (tmp_path / "features.csv.cache").write_text("not a folder")
    refused(capsys, ["extract", "--manifest", str(manifest), "-o", str(tmp_path / "features.csv")],
            str(tmp_path / "features.csv.cache"))
    assert not (tmp_path / "features.patches.npz").exists() and not (tmp_path / "features.csv").exists()


def test_predict_ring_and_patch_refuse_bad_outputs_before_reading(tmp_path, one_case, unwritable_dir, capsys):
    image, mask = one_case
    missing_bundle = tmp_path / "no-bundle"  # never read: the output check comes first
    before = files_under(tmp_path)
    for out in (tmp_path, Path("/proc/result.json"), unwritable_dir / "result.json"):
        refused(capsys, ["predict", str(missing_bundle), str(image), str(mask), "-o", str(out)], str(out))
    refused(capsys, ["predict", str(missing_bundle), str(image), str(mask), "-o", str(tmp_path / "r.json"),
                     "--gradcam", "/proc/heatmap.nii.gz"], "/proc/heatmap.nii.gz")
    for command in ("ring", "patch"):
        for out in (tmp_path, Path("/proc/out.nii.gz"), unwritable_dir / "out.png"):
            refused(capsys, [command, str(image), str(mask), "-o", str(out)], str(out))
    assert files_under(tmp_path) == before


# --- s.4: unusable cache entries are computed again ----------------------------------------

def test_zero_byte_or_broken_cache_entries_are_recomputed_once_noted(tmp_path, small_case, capsys):
    from DeepRadScoreLib.features.extraction import output_paths

    image, mask = small_case
    lines = ["case_id,image,mask"]
    for i in range(3):
        sitk.WriteImage(image, str(tmp_path / f"c{i}.nii.gz"))
        sitk.WriteImage(mask, str(tmp_path / f"c{i}_m.nii.gz"))
        image = image + 1.0  # another file content, another cache key
        lines.append(f"c{i},c{i}.nii.gz,c{i}_m.nii.gz")
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "features.csv"
    assert main(["extract", "--manifest", str(manifest), "-o", str(out)]) == 0
    first = out.read_text()
    cache = output_paths(out)[3]
    npys, jsons = sorted(cache.glob("*.npy")), sorted(cache.glob("*.json"))
    assert len(npys) == len(jsons) == 3
    npys[0].write_bytes(b"")                 # the EOFError of the issue
    jsons[1].write_bytes(b"")                # an empty JSON
    np.save(npys[2], np.zeros((3, 3)))       # readable but not a patch (np.save keeps the name)
    capsys.readouterr()
    assert main(["extract", "--manifest", str(manifest), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "unreadable cache entries" in line]
    assert len(notes) == 1 and notes[0].startswith("note: 3 unreadable cache entries"), err
    assert "3 computed, 0 from the cache" in err
    assert out.read_text() == first
    # Repaired: the next run takes every case from the cache, silently.
    assert main(["extract", "--manifest", str(manifest), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "0 computed, 3 from the cache" in err and "unreadable" not in err


# --- s.5: workers do not outlive their parent ----------------------------------------------

def _descendants(pid: int) -> list[int]:
    """Every living process below ``pid``, from /proc (forkserver, resource tracker, workers)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if stat[0] not in (b"Z", b"X"):
                parents[int(entry.name)] = int(stat[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in (b"Z", b"X"):
            alive.append(pid)
    return alive


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc (Linux)")
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_killing_the_main_process_leaves_no_worker(tmp_path, signal_name):
    import os
    import signal
    import subprocess
    import sys
    import time

    lines = ["case_id,image,mask"]
    for i in range(4):
        image, mask = make_case(shape=(24, 48, 48), radius_mm=6.0 + i, seed=i)
        sitk.WriteImage(image, str(tmp_path / f"c{i}.nii.gz"))
        sitk.WriteImage(mask, str(tmp_path / f"c{i}_m.nii.gz"))
        lines.append(f"c{i},c{i}.nii.gz,c{i}_m.nii.gz")
    (tmp_path / "cohort.csv").write_text("\n".join(lines) + "\n")
    command = [str(Path(sys.executable).parent / "deepradscore"), "extract", "--manifest",
               str(tmp_path / "cohort.csv"), "-o", str(tmp_path / "out" / "features.csv"), "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        children: list[int] = []
        # Resource tracker + fork server + 2 workers.
        while len(children) < 4 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
            children = _descendants(process.pid)
        assert len(children) >= 4, f"the pool did not start: {process.stderr.read().decode()[-500:]}"
        os.kill(process.pid, getattr(signal, signal_name))
        deadline = time.monotonic() + 10
        while _alive(children) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _alive(children)
        assert not left, f"still running after {signal_name} of the main process: {left}"
        status = process.wait(timeout=30)
        if signal_name == "SIGTERM":
            assert status == 130  # cleaned up as Ctrl-C is
            assert "interrupted" in process.stderr.read().decode()
        assert not (tmp_path / "out" / "features.patches.npz").exists()
    finally:
        for pid in _alive(_descendants(process.pid)) + ([process.pid] if process.poll() is None else []):
            os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)


# --- s.7 of the issue: thickness, and errors that name their file ---------------------------

@pytest.mark.parametrize("value", ["inf", "nan", "0", "0.4", "-2", "50.5", "1e9"])
def test_implausible_ring_thickness_is_refused_naming_the_option(one_case, tmp_path, capsys, value):
    image, mask = one_case
    for argv in (["ring", str(image), str(mask), "-o", str(tmp_path / "ring.nii.gz")],
                 ["extract", str(image), str(mask), "-o", str(tmp_path / "f.csv")]):
        assert main(argv + ["--thickness-mm", value]) == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1].startswith(f"error: --thickness-mm {float(value):g}: the ring "
                                                       "thickness must be from 0.5 to 50 mm"), err
        assert "RuntimeWarning" not in err
    assert not any(tmp_path.glob("ring*")) and not any(tmp_path.glob("f.*"))


def test_a_one_voxel_tumour_error_names_the_mask_file(one_case, tmp_path, small_case, capsys):
    image, _ = one_case
    _, mask = small_case
    dot = np.zeros(sitk.GetArrayViewFromImage(mask).shape, np.uint8)
    dot[6, 12, 12] = 1
    single = sitk.GetImageFromArray(dot)
    single.CopyInformation(mask)
    path = tmp_path / "dot.nii.gz"
    sitk.WriteImage(single, str(path))
    assert main(["extract", str(image), str(path), "-o", str(tmp_path / "f.csv")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"error: {path}: tumour mask: "), line


@pytest.mark.parametrize("encoding", ["raw", "gzip", "bzip2", "ascii"])
def test_hand_written_nrrd_encodings_are_sized(tmp_path, encoding):
    import bz2

    values = np.arange(4 * 5 * 6, dtype="<i2")
    payload = {"raw": values.tobytes(), "gzip": gzip.compress(values.tobytes()),
               "bzip2": bz2.compress(values.tobytes()),
               "ascii": " ".join(map(str, values)).encode()}[encoding]
    header = f"NRRD0004\ntype: short\ndimension: 3\nsizes: 4 5 6\nencoding: {encoding}\nendian: little\n\n"
    full = tmp_path / "full.nrrd"
    full.write_bytes(header.encode() + payload)
    check_image_data(full)
    short = tmp_path / "short.nrrd"
    short.write_bytes(header.encode() + payload[:len(payload) * 2 // 3])
    with pytest.raises(InputError, match=r"short\.nrrd: (truncated image data|corrupt compressed)"):
        check_image_data(short)
    # Detached: the header names the data file, which is the one cut.
    (tmp_path / "data.bin").write_bytes(payload[:len(payload) // 2])
    detached = tmp_path / "detached.nhdr"
    detached.write_text(header.strip() + "\ndata file: data.bin\n")
    with pytest.raises(InputError, match=r"data\.bin: (truncated image data|corrupt compressed)"):
        check_image_data(detached)


def test_a_mask_with_a_nan_names_the_nan(tmp_path, small_case):
    image, mask = small_case
    values = sitk.GetArrayFromImage(mask).astype(np.float32)
    values[0, 0, 0] = np.nan
    bad = sitk.GetImageFromArray(values)
    bad.CopyInformation(mask)
    sitk.WriteImage(bad, str(tmp_path / "mask.nrrd"))
    with pytest.raises(InputError, match=r"mask\.nrrd: mask values must be integer labels \(found e\.g\. nan\)"):
        images.read_mask(tmp_path / "mask.nrrd", image)


@pytest.mark.parametrize("ndims", ["-1", "99", "1e9", "1000000000000000"])
def test_metaimage_ndims_that_crash_itk_are_refused_first(tmp_path, small_case, ndims):
    # Found by benchmarks/fuzz_readers.py: ITK's MetaImage reader segfaults on these NDims.
    image, _ = small_case
    path = tmp_path / "ct.mha"
    sitk.WriteImage(image, str(path))
    path.write_bytes(path.read_bytes().replace(b"NDims = 3", f"NDims = {ndims}".encode(), 1))
    with pytest.raises(InputError, match=r"ct\.mha: malformed MetaImage header \(NDims"):
        images.read_image(path)


def test_metaimage_data_file_and_compressed_size_are_checked_before_itk(tmp_path, small_case):
    # Found by benchmarks/fuzz_readers.py: "ElementDataFile = LOCAL<junk>" crashed ITK's reader.
    image, _ = small_case
    path = tmp_path / "ct.mha"
    sitk.WriteImage(image, str(path), useCompression=True)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"ElementDataFile = LOCAL\n", b"ElementDataFile = LOCAL!\xd9>\n", 1))
    with pytest.raises(InputError, match=r"ct\.mha: malformed MetaImage header \(ElementDataFile"):
        images.read_image(path)
    declared = int(data.split(b"CompressedDataSize = ")[1].split(b"\n")[0])
    path.write_bytes(data.replace(b"CompressedDataSize = %d" % declared,
                                  b"CompressedDataSize = %d" % (declared + 100), 1))
    with pytest.raises(InputError, match=rf"ct\.mha: truncated image data \(expected {declared + 100} compressed"):
        images.read_image(path)


@pytest.mark.parametrize("keep", [0, 140, 600])
def test_a_dicom_slice_cut_before_its_pixels_is_not_silently_dropped(tmp_path, keep):
    # Found by benchmarks/fuzz_readers.py: a first/last slice cut to nothing (or inside its header)
    # used to be skipped, and the series read with one slice less (the gap check cannot see it).
    series = tmp_path / "ct"
    series.mkdir()
    for file in sorted((PHANTOM / "dicom" / "image").iterdir())[:4]:
        shutil.copyfile(file, series / file.name)
    assert images.read_image(series).GetSize()[2] == 4
    victim = sorted(series.iterdir())[0]
    cut(victim, keep)
    with pytest.raises(InputError, match=rf"{victim.name}: "):
        images.read_image(series)


def test_a_dicom_slice_without_a_transfer_syntax_is_refused_before_gdcm(tmp_path):
    # Found by benchmarks/fuzz_readers.py: with its file meta damaged, GDCM allocated ~1 GB per
    # slice before failing (20 GB over a run). Here the TransferSyntaxUID element is renamed.
    series = tmp_path / "ct"
    series.mkdir()
    for file in sorted((PHANTOM / "dicom" / "image").iterdir())[:3]:
        shutil.copyfile(file, series / file.name)
    victim = sorted(series.iterdir())[1]
    data = victim.read_bytes()
    tag = b"\x02\x00\x10\x00UI"  # (0002,0010) TransferSyntaxUID, explicit VR little endian
    assert data.count(tag) == 1
    victim.write_bytes(data.replace(tag, b"\x02\x00\x11\x00UI"))
    with pytest.raises(InputError, match=rf"{victim.name}: the DICOM file meta information has no valid "
                                         r"transfer syntax"):
        images.read_image(series)

