#!/usr/bin/env python
"""The readers' fuzz oracle of Testing/test_fuzz.py, run long: truncated, bit-flipped and
header-mangled NIfTI/NRRD/MetaImage/DICOM series/RTSTRUCT/DICOM SEG/.seg.nrrd files at
``read_image``/``read_mask``, and malformed manifests at ``read_manifest``. Each outcome is
counted: refused (one line), read the same, or read as the mutated file means (Testing/fuzz_oracle);
anything else stops the run with hypothesis' minimal failing example. A different SEG tumour must
be the mutated file's bitmap (unpacked here); a different RTSTRUCT tumour is accepted only when
a changed byte lies in a ContourData value (a contour point moved).

Also times the size check against SimpleITK's own read of the phantom's .nii.gz (the check
streams the file through zlib once more, in a thread beside the read).

    .venv/bin/python benchmarks/fuzz_readers.py [--examples 2000] [--seed 1] [--only mha] [--out FILE]

A crash of ITK itself (a segfault) ends the process; the file that caused it is left in the
temporary folder of the example (``/tmp/tmp*/``), as happened with ``NDims = 1e15`` in a .mha.
"""
from __future__ import annotations

import argparse
import collections
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "Testing"), str(ROOT / "DeepRadScore"), str(ROOT / "benchmarks")]

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import test_fuzz as fuzz  # noqa: E402

OUTCOMES = ("refused", "same", "meaning")


def dicom_mask_seeds(seeds: dict) -> dict:
    """An RTSTRUCT (a square on the middle slice) and a DICOM SEG (a box) on the 3-slice series."""
    import numpy as np
    import pydicom
    import SimpleITK as sitk

    from DeepRadScoreLib.io import images
    from test_imaging import to_lps, write_rtstruct, write_seg

    reference = images.read_image(seeds["dicom"])
    datasets = sorted((pydicom.dcmread(str(f)) for f in seeds["dicom"].iterdir()),
                      key=lambda d: float(d.ImagePositionPatient[2]))
    folder = seeds["dicom"].parent
    square = to_lps(reference, [(40.5, 40.5, 1), (90.5, 40.5, 1), (90.5, 80.5, 1), (40.5, 80.5, 1)])
    rtstruct = write_rtstruct(folder / "rs.dcm", {"GTV": [square]}, str(datasets[0].FrameOfReferenceUID))
    box = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.uint8)
    box[:, 50:70, 60:90] = 1
    seg = write_seg(folder / "seg.dcm", datasets, box, "BINARY", ["GTV"])
    return {"rtstruct": rtstruct, "seg": seg, "reference": reference}


def value_ranges(path: Path) -> list[tuple[int, int]]:
    """Byte ranges of the ContourData and PixelData values (and the preamble) in a DICOM file."""
    import pydicom

    data = path.read_bytes()
    ranges = [(0, 128)]  # the preamble means nothing
    ds = pydicom.dcmread(str(path))
    for roi in ds.get("ROIContourSequence", []):
        for contour in roi.ContourSequence:
            raw = "\\".join(v.original_string if hasattr(v, "original_string") else str(v)
                             for v in contour.ContourData).encode()
            at = data.find(raw)
            if at >= 0:
                ranges.append((at, at + len(raw) + 1))
    pixel = pydicom.dcmread(str(path), defer_size=64).get_item(0x7FE00010, keep_deferred=True)
    if pixel is not None and getattr(pixel, "value_tell", None) is not None:
        ranges.append((pixel.value_tell, pixel.value_tell + pixel.length))
    return ranges


def check_dicom_mask_outcome(masks: dict, name: str, work: Path, draw) -> str:
    import numpy as np
    import SimpleITK as sitk

    from DeepRadScoreLib.io import images

    seed_file, reference = masks[name], masks["reference"]
    original = sitk.GetArrayFromImage(images.read_mask(seed_file, reference))
    data = seed_file.read_bytes()
    mutated, kind = draw(fuzz.mutations(data, text_header=False))
    target = work / seed_file.name
    target.write_bytes(mutated)
    outcome = fuzz._outcome(lambda: images.read_mask(target, reference), kind, mutated, data,
                            lambda mask: "same" if np.array_equal(sitk.GetArrayFromImage(mask), original) else "differs")
    if outcome == "differs" and name == "seg":
        # The bitmap itself, unpacked here: one bit per pixel, frames placed by their z position.
        import pydicom

        ds = pydicom.dcmread(str(target))
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = [float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in ds.PerFrameFunctionalGroupsSequence]
        bits = np.unpackbits(np.frombuffer(ds.PixelData, np.uint8), bitorder="little")
        bits = bits[:len(frames) * rows * cols].reshape(len(frames), rows, cols)
        zs = [reference.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(reference.GetSize()[2])]
        expected = np.zeros_like(original)
        for z, frame in zip(frames, bits):
            expected[int(np.argmin(np.abs(np.array(zs) - z)))] |= frame
        got = sitk.GetArrayFromImage(images.read_mask(target, reference))
        assert np.array_equal(got, expected), f"seg: the tumour read is not the mutated file's bitmap ({kind})"
        return "meaning"
    if outcome == "differs":
        n = min(len(data), len(mutated))
        changed = np.flatnonzero(np.frombuffer(data[:n], np.uint8) != np.frombuffer(mutated[:n], np.uint8))
        inside = len(data) == len(mutated) and any(any(lo <= c < hi for lo, hi in masks[name + "_ranges"][1:])
                                                   for c in changed)
        assert inside, (f"{name}: the tumour read changed, and not by a change of its contour/bitmap ({kind}: "
                        f"{[(int(c), data[max(c - 12, 0):c + 4]) for c in changed[:4]]})")
        return "meaning"
    return outcome


def run_property(name: str, check, examples: int, random_seed: int, outcomes: collections.Counter) -> float:
    config = settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                      suppress_health_check=list(HealthCheck))

    @seed(random_seed)
    @config
    @given(data=st.data())
    def prop(data):
        with tempfile.TemporaryDirectory() as work:
            outcomes[(name, check(Path(work), data.draw))] += 1

    started = time.perf_counter()
    prop()
    return time.perf_counter() - started


def size_check_timing(repeats: int = 7) -> tuple[float, float, float]:
    import SimpleITK as sitk

    from DeepRadScoreLib.io.images import _read_sitk
    from DeepRadScoreLib.io.integrity import check_image_data

    path = fuzz.PHANTOM / "nifti" / "image.nii.gz"
    plain, check, both = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sitk.ReadImage(str(path))
        t1 = time.perf_counter()
        check_image_data(path)
        t2 = time.perf_counter()
        _read_sitk(path, "an image")
        t3 = time.perf_counter()
        plain.append(t1 - t0)
        check.append(t2 - t1)
        both.append(t3 - t2)
    return statistics.median(plain), statistics.median(check), statistics.median(both)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="examples per target")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="write a Markdown summary here")
    parser.add_argument("--only", default="", help="comma-separated: run only the targets whose name "
                                                   "contains one of these (e.g. mha,dicom)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as folder:
        seeds = fuzz.build_seeds(Path(folder) / "seeds")
        outcomes: collections.Counter = collections.Counter()
        seconds = {}
        targets = {f"image {n}": (lambda n: lambda work, draw: fuzz.check_image_outcome(seeds, work, n, draw))(n)
                   for n in fuzz.IMAGE_FORMATS}
        targets.update({f"mask {n}": (lambda n: lambda work, draw: fuzz.check_mask_outcome(seeds, work, n, draw))(n)
                        for n in fuzz.MASK_FORMATS})
        targets["dicom slice"] = lambda work, draw: fuzz.check_dicom_outcome(seeds, work, draw)
        masks = dicom_mask_seeds(seeds)
        for name in ("rtstruct", "seg"):
            masks[name + "_ranges"] = value_ranges(masks[name])
            targets[f"mask {name}"] = (lambda n: lambda work, draw: check_dicom_mask_outcome(masks, n, work, draw))(name)
        targets["manifest"] = lambda work, draw: fuzz.check_manifest_outcome(seeds, work, draw)
        wanted = [w for w in args.only.split(",") if w] or [""]
        targets = {n: c for n, c in targets.items() if any(w in n for w in wanted)}
        for name, check in targets.items():
            seconds[name] = run_property(name, check, args.examples, args.seed, outcomes)
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # a runaway allocation shows here
            print(f"{name}: " + ", ".join(f"{outcomes[(name, o)]} {o}" for o in OUTCOMES + ("read",)
                                          if outcomes[(name, o)] or o != "read")
                  + f" ({seconds[name]:.1f} s, peak memory so far {peak_mb:.0f} MB)", flush=True)
    plain, check, both = size_check_timing()
    timing = (f"phantom image.nii.gz (3.9 MB): SimpleITK read {plain * 1000:.0f} ms, size check alone "
              f"{check * 1000:.0f} ms, read with the check in parallel {both * 1000:.0f} ms")
    print(timing)
    if args.out:
        from machine import cpu_model

        lines = [f"# Reader fuzzing ({args.examples} examples per target, seed {args.seed})", "",
                 f"CPU: {cpu_model()}. Outcomes (Testing/fuzz_oracle.py): refused with one line; read the "
                 "same voxels and geometry; read as the mutated file means (its voxels decoded independently, "
                 "a changed geometry from a geometry field; SEG: its bitmap unpacked; RTSTRUCT: a ContourData byte "
                 "changed). Manifests: read or refused.", "",
                 "| target | refused | same | meaning | read (manifest) | seconds |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {n} | " + " | ".join(str(outcomes[(n, o)]) for o in OUTCOMES + ("read",))
                  + f" | {seconds[n]:.1f} |" for n in targets]
        lines += ["", "No other outcome occurred (a silent difference or any other exception stops the run).", "",
                  timing, ""]
        Path(args.out).write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
