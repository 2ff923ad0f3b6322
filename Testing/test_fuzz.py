"""Property test of the readers: whatever a file holds, a read is refused with one line, gives the
original voxels and geometry, or gives what the mutated file means, never a silent difference.

hypothesis throws truncated, bit-flipped, spliced and header-mangled NIfTI (int16 .nii, .nii.gz,
float .nii), NRRD (raw, gzip, detached, .seg.nrrd), MetaImage (raw, compressed) and DICOM slices
at ``read_image`` / ``read_mask``, and malformed manifests at ``read_manifest``. Each read is
judged by :mod:`fuzz_oracle` (its own decoders of the mutated bytes) and counted; a test fails
when an outcome that must occur never does (a run where everything is refused proves nothing).
The suite runs a few dozen derandomised examples per target (seconds);
``benchmarks/fuzz_readers.py`` runs the same oracle much longer, RTSTRUCT and DICOM SEG included.
"""
from __future__ import annotations

import collections
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_oracle as oracle
from conftest import PHANTOM, make_case
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.io import images
from DeepRadScoreLib.io.manifest import read_manifest

# A mutated DICOM header makes pydicom warn about every invalid value it meets: noise here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DUMP = os.environ.get("DEEPRADSCORE_FUZZ_DUMP")
SUITE_EXAMPLES = int(os.environ.get("DEEPRADSCORE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=SUITE_EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

IMAGE_FORMATS = ["ct.nii", "ctf.nii", "ct.nii.gz", "ct.nrrd", "ctz.nrrd", "ct.nhdr", "ct.mha", "ctz.mha"]
MASK_FORMATS = ["mask.nii.gz", "mask.nrrd", "tumour.seg.nrrd"]
# Values a mangled header field is set to: edge cases of every integer width and sign.
EVIL_NUMBERS = [-(2 ** 31), -1, 0, 1, 2, 3, 7, 255, 32767, 65535, 2 ** 31 - 1, 2 ** 40, 10 ** 15]
# NIfTI-1 binary header fields (offset, struct format) a mutation may overwrite.
NIFTI_FIELDS = [(0, "<i"), (40, "<h"), (42, "<h"), (44, "<h"), (46, "<h"), (70, "<h"), (72, "<h"),
                (76, "<f"), (80, "<f"), (108, "<f"), (112, "<f"), (116, "<f"), (252, "<h"), (254, "<h"), (344, "<i")]


def build_seeds(folder: Path) -> dict[str, Path]:
    """Small valid files of every format (a 8 x 16 x 16 CT and its tumour), plus 3 DICOM slices."""
    folder.mkdir(parents=True, exist_ok=True)
    image, mask = make_case(shape=(8, 16, 16), radius_mm=4.0, spacing=(1.0, 1.0, 2.0))
    as_float = image  # ctf.nii: float voxels, whose NaN the NIfTI reader made 0
    image = sitk.Cast(image, sitk.sitkInt16)
    seeds = {}
    for name in IMAGE_FORMATS:
        sitk.WriteImage(as_float if name.startswith("ctf") else image, str(folder / name),
                        useCompression=name.startswith("ctz") or name.endswith(".gz"))
        seeds[name] = folder / name
    for name in MASK_FORMATS[:2]:
        sitk.WriteImage(mask, str(folder / name), useCompression=True)
        seeds[name] = folder / name
    seg = sitk.Image(mask)
    for key, value in (("ID", "tumour"), ("Name", "tumour"), ("LabelValue", "1"), ("Layer", "0")):
        seg.SetMetaData(f"Segment0_{key}", value)
    sitk.WriteImage(seg, str(folder / "tumour.seg.nrrd"), useCompression=True)
    seeds["tumour.seg.nrrd"] = folder / "tumour.seg.nrrd"
    dicom = folder / "dicom"
    dicom.mkdir(exist_ok=True)
    for file in sorted((PHANTOM / "dicom" / "image").iterdir())[20:23]:
        shutil.copyfile(file, dicom / file.name)
    seeds["dicom"] = dicom
    manifest = folder / "cohort.csv"
    manifest.write_text("case_id,image,mask,split,EGFR,label,roi_name,cohort\n"
                        "a,ct.nii,mask.nii.gz,train,1,1,,A\n"
                        "b,ct.nrrd,mask.nrrd,test,0,,tumour,B\n"
                        "c,dicom,tumour.seg.nrrd,train,,,,\n")
    seeds["cohort.csv"] = manifest
    return seeds


@st.composite
def mutations(draw, data: bytes, text_header: bool):
    """A mutated copy of ``data`` and what was done (truncate / flip / header / splice)."""
    kind = draw(st.sampled_from(["truncate", "flip", "header", "splice"]))
    header_end = data.find(b"\n\n") if text_header else 352
    header_end = min(header_end if header_end > 0 else 512, len(data))
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))], kind
    out = bytearray(data)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            in_header = draw(st.booleans())
            position = draw(st.integers(0, (header_end if in_header else len(out)) - 1))
            out[position] ^= 1 << draw(st.integers(0, 7))
        return bytes(out), kind
    if kind == "header" and text_header:
        lines = bytes(out[:header_end]).split(b"\n")
        i = draw(st.integers(1, len(lines) - 1))
        action = draw(st.sampled_from(["number", "delete", "duplicate", "empty"]))
        if action == "number":
            words = lines[i].split(b" ")
            j = draw(st.integers(0, len(words) - 1))
            words[j] = str(draw(st.sampled_from(EVIL_NUMBERS))).encode()
            lines[i] = b" ".join(words)
        elif action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        else:
            lines[i] = b""
        return b"\n".join(lines) + bytes(out[header_end:]), f"header-{action}"
    if kind == "header":
        import struct

        offset, fmt = draw(st.sampled_from(NIFTI_FIELDS))
        value = draw(st.sampled_from(EVIL_NUMBERS))
        if fmt.endswith("f"):
            value = draw(st.sampled_from([float(value), float("nan"), float("inf"), -0.0, 1e-30]))
            packed = struct.pack(fmt, value)
        else:
            bits = 8 * struct.calcsize(fmt)
            packed = struct.pack(fmt.replace("h", "H").replace("i", "I"), value % (1 << bits))
        out[offset:offset + len(packed)] = packed
        return bytes(out), "header-field"
    start = draw(st.integers(0, len(out) - 1))
    junk = draw(st.binary(min_size=1, max_size=16))
    out[start:start + len(junk)] = junk
    return bytes(out), kind


def _binary_nifti(name: str, data: bytes) -> bytes:
    """NIfTI-gz headers are mutated inside the stream (else every mutation is a CRC error)."""
    import gzip

    return gzip.decompress(data) if name.endswith(".gz") else data


def check_image_outcome(seeds: dict[str, Path], work: Path, name: str, draw) -> str:
    """Mutate one seed image, read it: a correct read or an InputError. Returns the outcome."""
    import gzip

    seed = seeds[name]
    original = images.read_image(seed)
    target = work / name
    if name == "ct.nhdr":  # mutate the detached header; the data file stays intact
        shutil.copyfile(seed.with_suffix(".raw"), work / "ct.raw")
    data = seed.read_bytes()
    gz = name.endswith(".gz") and draw(st.booleans())
    source = _binary_nifti(name, data) if gz else data
    mutated, kind = draw(mutations(source, text_header=".nii" not in name))
    target.write_bytes(gzip.compress(mutated) if gz else mutated)
    kind_of = "nifti" if ".nii" in name else "meta" if name.endswith(".mha") else "nrrd"
    return _outcome(lambda: images.read_image(target), kind, mutated, source,
                    lambda image: oracle.judge(image, original, kind_of, mutated, source, work))


def check_mask_outcome(seeds: dict[str, Path], work: Path, name: str, draw) -> str:
    seed = seeds[name]
    reference = images.read_image(seeds["ct.nrrd"])
    original = images.read_mask(seed, reference)
    mutated, kind = draw(mutations(seed.read_bytes(), text_header=name.endswith("nrrd")))
    target = work / name
    target.write_bytes(mutated)
    kind_of = "seg" if name.endswith(".seg.nrrd") else "nrrd" if name.endswith(".nrrd") else "nifti"
    return _outcome(lambda: images.read_mask(target, reference), kind, mutated, seed.read_bytes(),
                    lambda mask: oracle.judge_mask(mask, original, kind_of, mutated, work))


def check_dicom_outcome(seeds: dict[str, Path], work: Path, draw) -> str:
    folder = work / "dicom"
    shutil.copytree(seeds["dicom"], folder)
    original = images.read_image(seeds["dicom"])
    victim = sorted(folder.iterdir())[draw(st.integers(0, 2))]
    data = victim.read_bytes()
    mutated, kind = draw(mutations(data, text_header=False))
    victim.write_bytes(mutated)
    return _outcome(lambda: images.read_image(folder), kind, mutated, data,
                    lambda image: oracle.judge_dicom(image, original, folder))


def _outcome(read, kind: str, mutated: bytes, source: bytes, judge) -> str:
    """``refused`` (one line), ``same`` or ``meaning`` (:mod:`fuzz_oracle`); anything else fails."""
    if DUMP:  # keep every input, to replay the one that crashed ITK itself (benchmarks/fuzz_readers.py)
        dump = Path(DUMP)
        dump.mkdir(parents=True, exist_ok=True)
        (dump / f"{len(list(dump.iterdir())):06d}.bin").write_bytes(mutated)
    try:
        image = read()
    except InputError as err:
        assert str(err).strip() and "\n" not in str(err), f"not one line: {err!r}"
        # Under a memory limit (ulimit -v), an allocation a damaged header asked for shows up as
        # ITK's bad_alloc: the file should have been refused before ITK allocated anything.
        assert "bad_alloc" not in str(err) and "memory" not in str(err).lower(), f"allocation blew up: {err}"
        return "refused"
    outcome = judge(image)
    if kind == "truncate" and len(mutated) < len(source):
        # A cut file may only read when the cut was in padding after the data: same voxels.
        assert outcome == "same", f"a file cut to {len(mutated)} of {len(source)} bytes read as a different image"
    return outcome


def run_counted(check, examples: int, must: tuple[str, ...]) -> collections.Counter:
    """Run ``check(work, draw)`` over ``examples`` derandomised examples; fail unless each outcome
    of ``must`` occurred (a run where everything is refused proves nothing)."""
    counts: collections.Counter = collections.Counter()

    @settings(FUZZ, max_examples=examples)
    @given(data=st.data())
    def prop(data):
        with tempfile.TemporaryDirectory() as work:
            counts[check(Path(work), data.draw)] += 1

    prop()
    missing = [m for m in must if not counts[m]]
    assert not missing, f"outcomes {missing} never occurred in {dict(counts)}"
    return counts


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return build_seeds(tmp_path_factory.mktemp("fuzz-seeds"))


def test_mutated_images_are_refused_read_the_same_or_read_as_they_say(seeds):
    counts = run_counted(lambda work, draw: check_image_outcome(seeds, work, draw(st.sampled_from(IMAGE_FORMATS)),
                                                                draw), SUITE_EXAMPLES, ("refused", "same", "meaning"))
    print("images:", dict(counts))


def test_mutated_masks_are_refused_read_the_same_or_read_as_they_say(seeds):
    counts = run_counted(lambda work, draw: check_mask_outcome(seeds, work, draw(st.sampled_from(MASK_FORMATS)),
                                                               draw), SUITE_EXAMPLES, ("refused", "same"))
    print("masks:", dict(counts))


def test_mutated_dicom_slices_are_refused_read_the_same_or_read_as_they_say(seeds):
    counts = run_counted(lambda work, draw: check_dicom_outcome(seeds, work, draw), max(SUITE_EXAMPLES // 2, 5),
                         ("refused", "meaning"))
    print("dicom:", dict(counts))


def test_the_oracle_catches_a_silent_change(seeds, tmp_path):
    """A reader that returned other voxels than the file holds must fail the oracle."""
    original = images.read_image(seeds["ct.nrrd"])
    data = seeds["ct.nrrd"].read_bytes()
    changed = sitk.Image(original)
    changed[3, 4, 5] = 99.0  # as if a reader had changed one voxel
    with pytest.raises(AssertionError, match="not those the mutated file holds"):
        oracle.judge(changed, original, "nrrd", data, data, tmp_path)
    moved = sitk.Image(original)
    moved.SetOrigin((1.0, 2.0, 3.0))  # as if a reader had moved the image, no header field saying so
    with pytest.raises(AssertionError, match="no geometry field did"):
        oracle.judge(moved, original, "nrrd", data, data, tmp_path)
    assert oracle.judge(images.read_image(seeds["ct.nrrd"]), original, "nrrd", data, data, tmp_path) == "same"


@st.composite
def manifest_texts(draw, text: str):
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["char", "delete", "line", "duplicate", "cell", "encoding"]))
        i = draw(st.integers(0, len(lines) - 1))
        if action == "char":
            j = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:j] + draw(st.sampled_from([",", '"', ";", "\t", "\x00", "é", "\ufeff", " "])) + lines[i][j:]
        elif action == "delete" and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + lines[i][j + 1:]
        elif action == "line":
            lines[i] = draw(st.text(alphabet=st.sampled_from(list("abc,01\" \t;-.")), max_size=30))
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "cell":
            cells = lines[i].split(",")
            k = draw(st.integers(0, len(cells) - 1))
            cells[k] = draw(st.sampled_from(["", "nan", "inf", "-1", "1.5", "2", "TRAIN", "../x", "/", "a" * 300,
                                             "1e400", "0x1", "NULL", "case_id"]))
            lines[i] = ",".join(cells)
        else:
            return "\n".join(lines).encode(draw(st.sampled_from(["utf-16", "latin-1", "utf-8-sig"])),
                                           errors="replace")
    return "\n".join(lines).encode("utf-8")


def check_manifest_outcome(seeds: dict[str, Path], work: Path, draw) -> str:
    target = work / "cohort.csv"
    for name in ("ct.nii", "mask.nii.gz", "ct.nrrd", "mask.nrrd", "tumour.seg.nrrd"):
        os.symlink(seeds[name], work / name)
    os.symlink(seeds["dicom"], work / "dicom")
    target.write_bytes(draw(manifest_texts(seeds["cohort.csv"].read_text())))
    try:
        manifest = read_manifest(target, check_files=draw(st.booleans()))
    except InputError as err:
        assert str(err).strip(), "an empty message"
        return "refused"
    manifest.cases()
    return "read"


@FUZZ
@given(data=st.data())
def test_malformed_manifests_read_or_are_refused(seeds, data):
    with tempfile.TemporaryDirectory() as work:
        check_manifest_outcome(seeds, Path(work), data.draw)
