"""Time `deepradscore demo` after set-up, stage by stage, into a fresh folder.

    .venv/bin/python benchmarks/bench_demo.py [--keep DIR] [--cases N]

Runs `.venv/bin/deepradscore demo -o DIR` as a user would (a fresh process, nothing cached), reads
the stage banners it prints (`== 1/5 ...`) with their arrival times, and writes
benchmarks/results/demo.md with the CPU model, the core count and the load average before and
after, so that the figure can be compared with another machine's. The demo's model is trained on
synthetic data and means nothing clinically.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, beside this script)

ROOT = Path(__file__).resolve().parent.parent



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default=None, help="demo folder to keep (default: a temporary one)")
    parser.add_argument("--cases", type=int, default=None)
    args = parser.parse_args()
    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-demo-")) / "demo"
    cmd = [str(ROOT / ".venv" / "bin" / "deepradscore"), "demo", "-o", str(out)]
    if args.cases:
        cmd += ["--cases", str(args.cases)]
    load_before = os.getloadavg()
    started = time.perf_counter()
    stages, lines = [], []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("== "):
                stages.append((time.perf_counter() - started, line[3:].strip()))
    total = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stdout.write("".join(lines[-40:]))
        return proc.returncode
    load_after = os.getloadavg()
    rows = []
    for i, (t, title) in enumerate(stages):
        end = stages[i + 1][0] if i + 1 < len(stages) else total
        rows.append(f"| {title[:70]} | {end - t:.0f} |")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join([
        "# `deepradscore demo` after set-up",
        "",
        f"Written by `benchmarks/bench_demo.py` ({when}). CPU: {cpu_model()}, {os.cpu_count()} cores; "
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min).",
        "",
        f"Total: **{total:.0f} s ({total / 60:.1f} min)**, a fresh folder (nothing reused).",
        "",
        "| stage | seconds |",
        "| --- | ---: |",
        *rows,
        "",
        "The demo trains on a synthetic cohort: its model has no clinical meaning.",
        "",
    ])
    results = ROOT / "benchmarks" / "results" / "demo.md"
    results.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
