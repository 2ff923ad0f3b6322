#!/usr/bin/env python
"""The readers' fuzz properties of Testing/test_fuzz.py, run long: truncated, bit-flipped and
header-mangled NIfTI/NRRD/MetaImage/DICOM files at ``read_image``/``read_mask``, and malformed
manifests at ``read_manifest``. The only accepted outcomes are a correct read or an InputError;
anything else stops the run with hypothesis' minimal failing example.

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
sys.path[:0] = [str(ROOT / "Testing"), str(ROOT / "DeepRadScore")]

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import test_fuzz as fuzz  # noqa: E402


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
        targets["manifest"] = lambda work, draw: fuzz.check_manifest_outcome(seeds, work, draw)
        wanted = [w for w in args.only.split(",") if w] or [""]
        targets = {n: c for n, c in targets.items() if any(w in n for w in wanted)}
        for name, check in targets.items():
            seconds[name] = run_property(name, check, args.examples, args.seed, outcomes)
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # a runaway allocation shows here
            print(f"{name}: {outcomes[(name, 'read')]} read, {outcomes[(name, 'refused')]} refused "
                  f"({seconds[name]:.1f} s, peak memory so far {peak_mb:.0f} MB)", flush=True)
    plain, check, both = size_check_timing()
    timing = (f"phantom image.nii.gz (3.9 MB): SimpleITK read {plain * 1000:.0f} ms, size check alone "
              f"{check * 1000:.0f} ms, read with the check in parallel {both * 1000:.0f} ms")
    print(timing)
    if args.out:
        lines = [f"# Reader fuzzing ({args.examples} examples per target, seed {args.seed})", "",
                 "| target | read | refused | seconds |", "|---|---:|---:|---:|"]
        lines += [f"| {n} | {outcomes[(n, 'read')]} | {outcomes[(n, 'refused')]} | {seconds[n]:.1f} |" for n in targets]
        lines += ["", "No other outcome occurred (any other exception stops the run).", "", timing, ""]
        Path(args.out).write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
