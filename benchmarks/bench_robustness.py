#!/usr/bin/env python
"""``robustness`` against one ``extract`` of the same cohort (native backend, fresh caches).

    .venv/bin/python benchmarks/bench_robustness.py [--cases STS_002,STS_008,STS_019] [--copies 4]
        [--workers 1] [--output benchmarks/results/robustness.md]

The cases come from ../shared/data/ibsi_sts_ct. First ``extract_cohort`` of the cases into a fresh
folder, then ``run_robustness`` with ``--copies`` copies of each (all four perturbations) into
another: the ratio of the two wall times is the figure the issue bounds (<= 5x for 4 copies).
The load average is written next to the numbers: on a shared machine it moves them.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DeepRadScore"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_model  # noqa: E402
from DeepRadScoreLib.outputs import atomic_file  # noqa: E402

STS = ROOT.parent / "shared" / "data" / "ibsi_sts_ct"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="STS_002,STS_008,STS_019")
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "robustness.md"))
    args = parser.parse_args()

    from DeepRadScoreLib.features.extraction import extract_cohort
    from DeepRadScoreLib.features.settings import SettingsRequest, resolve_settings
    from DeepRadScoreLib.pipelines.robustness import run_robustness

    native = SettingsRequest(backend="native")

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-robustness-") as tmp:
        tmp = Path(tmp)
        pd.DataFrame({"case_id": cases, "image": [str(STS / c / "image.nii.gz") for c in cases],
                      "mask": [str(STS / c / "mask.nii.gz") for c in cases]}).to_csv(tmp / "cohort.csv", index=False)
        load_before = os.getloadavg()
        t = time.perf_counter()
        extract_cohort(tmp / "cohort.csv", tmp / "extract" / "features.csv", resolve_settings(native),
                       workers=args.workers)
        extract_s = time.perf_counter() - t
        t = time.perf_counter()
        result = run_robustness(tmp / "cohort.csv", tmp / "robust" / "icc.csv", copies=args.copies,
                                workers=args.workers, settings=native)
        robust_s = time.perf_counter() - t
        load_after = os.getloadavg()
    icc = result.table.icc
    text = "\n".join([
        f"## robustness: {len(cases)} STS cases ({', '.join(cases)}), {args.copies} copies, "
        f"native backend, {args.workers} worker(s)",
        "",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores; load average before/after: "
        f"{load_before[0]:.1f} / {load_after[0]:.1f}",
        f"- command: `.venv/bin/python benchmarks/bench_robustness.py --cases {args.cases} "
        f"--copies {args.copies} --workers {args.workers}`",
        f"- extract: **{extract_s:.1f} s**; robustness: **{robust_s:.1f} s** = "
        f"**{robust_s / extract_s:.2f} x** one extract ({args.copies} copies per case)",
        f"- features with ICC(1,1) >= 0.75: {int((icc >= 0.75).sum())} of {len(icc)}",
        "",
    ])
    print(text)
    output = Path(args.output)
    previous = output.read_text() if output.exists() else "# robustness benchmark\n\n"
    with atomic_file(output) as tmp_file:
        tmp_file.write_text(previous + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
