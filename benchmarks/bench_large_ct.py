#!/usr/bin/env python
"""Load on record: ``extract`` and ``predict`` of a synthetic 512 x 512 x 700 int16 CT with a
large tumour, against the IBSI phantom, with time and peak memory scaled by voxel count.

The large CT: lung-like noise (-850 HU), a body outline, a 40 mm-radius soft-tissue tumour
(~270 000 voxels at 0.8 x 0.8 x 1.25 mm) and its mask, written as int16 .nii.gz. The phantom is
../shared/data/ibsi_ct_phantom/nifti. Each command runs in a fresh process; its process tree's
wall time and peak PSS/RSS are sampled (benchmarks/bench_extraction.run_measured). The goal
(issue): each figure of the large CT within 3x the phantom's scaled by the voxel ratio. A bundle
is trained on a small synthetic table (benchmarks/bench_predict.make_cohort; its numbers mean
nothing, only its shape matters for time).

    .venv/bin/python benchmarks/bench_large_ct.py [--slices 700] [--out benchmarks/results/large_ct.md]

Takes minutes and ~1 GB of memory per process: not for a shared 2-core machine at peak.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "DeepRadScore")]

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from bench_extraction import run_measured  # noqa: E402
from machine import cpu_model  # noqa: E402

PHANTOM = ROOT.parent / "shared" / "data" / "ibsi_ct_phantom" / "nifti"


def large_ct(folder: Path, slices: int, size: int = 512, radius_mm: float = 40.0) -> tuple[Path, Path]:
    """The synthetic CT and its tumour mask, written slab by slab to bound this process's memory."""
    spacing = (0.8, 0.8, 1.25)
    rng = np.random.default_rng(0)
    hu = np.empty((slices, size, size), np.int16)
    mask = np.zeros((slices, size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - size / 2) / (0.42 * size)) ** 2 + ((xx - size / 2) / (0.48 * size)) ** 2 <= 1
    centre = np.array([slices / 2 * spacing[2], size / 2 * spacing[1], size / 2 * spacing[0]])
    for k in range(slices):
        plane = rng.normal(-850, 40, (size, size))
        plane[~body] = -1000
        dz = (k * spacing[2] - centre[0])
        r2 = radius_mm ** 2 - dz ** 2
        if r2 > 0:
            inside = ((yy * spacing[1] - centre[1]) ** 2 + (xx * spacing[0] - centre[2]) ** 2) <= r2
            plane[inside] = rng.normal(30, 20, int(inside.sum()))
            mask[k][inside] = 1
        hu[k] = np.clip(plane, -1024, 3071)
    paths = folder / "large.nii.gz", folder / "large_mask.nii.gz"
    for array, path in ((hu, paths[0]), (mask, paths[1])):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        sitk.WriteImage(image, str(path))
    return paths


def bundle(folder: Path) -> Path:
    from bench_predict import make_cohort
    from DeepRadScoreLib.cli.main import main as cli

    manifest, features = make_cohort(folder / "cohort", 40)
    out = folder / "bundle"
    assert cli(["train", "--manifest", str(manifest), "-o", str(out), "--features", str(features), "--epochs",
                "1", "--deep-mode", "multitask", "--deep-folds", "2", "--cv-repeats", "1", "--workers", "2",
                "--device", "cpu"]) == 0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=700)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    engine = [sys.executable, "-m", "DeepRadScoreLib.cli.main"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = {"phantom": (PHANTOM / "image.nii.gz", PHANTOM / "mask.nii.gz"),
                 f"512x512x{args.slices}": large_ct(tmp, args.slices)}
        model = bundle(tmp)
        for name, (image, mask) in cases.items():
            voxels = int(np.prod(sitk.ReadImage(str(image)).GetSize()))
            for command in ("extract", "predict"):
                argv = ([*engine, "extract", str(image), str(mask), "-o", str(tmp / "f.csv")] if command == "extract"
                        else [*engine, "predict", str(model), str(image), str(mask), "-o", str(tmp / "r.json"),
                              "--device", "cpu"])
                got = run_measured(argv)
                rows.append((name, command, voxels, got["wall"], got["pss"] / 2 ** 20, got["rss"] / 2 ** 20))
                print(rows[-1], flush=True)
    load = Path("/proc/loadavg").read_text().split()[0]
    lines = [f"# extract / predict of a 512 x 512 x {args.slices} CT against the phantom", "",
             f"CPU: {cpu_model()}; load average at the end: {load}.", "",
             "| case | command | voxels | seconds | peak PSS MiB | peak RSS MiB | s / phantom's x voxels | PSS / phantom's x voxels |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    base = {r[1]: r for r in rows if r[0] == "phantom"}
    for name, command, voxels, wall, pss, rss in rows:
        ratio = voxels / base[command][2]
        lines.append(f"| {name} | {command} | {voxels} | {wall:.1f} | {pss:.0f} | {rss:.0f} | "
                     f"{wall / (base[command][3] * ratio):.2f} | {pss / (base[command][4] * ratio):.2f} |")
    lines += ["", "Goal: the last two columns at most 3 for the large CT.", ""]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
