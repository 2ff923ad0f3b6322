#!/usr/bin/env python
"""Time and peak memory of one case's radiomics against its number of grey-level bins: the
figures behind ``features.gate.MAX_BINS``. A small synthetic case (24 x 40 x 40 voxels, 1 mm,
a 7 mm tumour and its 3 mm ring) with uniform noise spanning ``SPAN`` units, so that the
original image has SPAN / 25 bins at binWidth 25; each span runs in its own process (its peak
RSS is its own) with a time limit.

    .venv/bin/python benchmarks/bench_bins.py [--spans 2500 25000] [--backend pyradiomics] [--limit 300]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "Testing"), str(ROOT / "DeepRadScore"), str(ROOT / "benchmarks")]


def one(span: float, backend: str) -> None:
    import numpy as np
    import SimpleITK as sitk

    from conftest import make_case
    from DeepRadScoreLib.features.radiomics import extract_case_features as pyradiomics
    from DeepRadScoreLib.features.native.backend import extract_case_features as native
    from DeepRadScoreLib.regions import peritumoral_ring

    image, mask = make_case(shape=(24, 40, 40), radius_mm=7.0, spacing=(1.0, 1.0, 1.0))
    values = np.random.default_rng(0).uniform(-span / 2, span / 2, sitk.GetArrayViewFromImage(image).shape)
    wide = sitk.GetImageFromArray(values.astype(np.float32))
    wide.CopyInformation(image)
    ring = peritumoral_ring(mask, 3.0)
    extract = pyradiomics if backend == "pyradiomics" else native  # past the gate, on purpose
    started = time.perf_counter()
    try:
        extract(wide, mask, ring, None)
        outcome = "ok"
    except MemoryError:
        outcome = "MemoryError"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| {span:g} | {span / 25:g} | {backend} | {outcome} | {time.perf_counter() - started:.1f} | {peak:.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=float, nargs="+", default=[2500, 25000])
    parser.add_argument("--backend", default="pyradiomics", choices=["pyradiomics", "native"])
    parser.add_argument("--limit", type=float, default=300, help="seconds per span")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        one(args.one, args.backend)
        return 0
    from machine import cpu_model

    print(f"CPU: {cpu_model()}\n\n| span | bins (original) | backend | outcome | seconds | peak RSS MiB |\n"
          "|---:|---:|---|---|---:|---:|", flush=True)
    for span in args.spans:
        try:
            subprocess.run([sys.executable, __file__, "--one", str(span), "--backend", args.backend],
                           timeout=args.limit, check=False)
        except subprocess.TimeoutExpired:
            print(f"| {span:g} | {span / 25:g} | {args.backend} | not finished | > {args.limit:g} | |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
