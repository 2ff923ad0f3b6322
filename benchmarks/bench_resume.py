#!/usr/bin/env python
"""Testing/test_resume.py at scale: a 300-case synthetic cohort (tiny cases), ``extract --workers 2``
killed half way with SIGKILL and, separately, SIGTERM, then resumed; the resumed table must be
byte-identical to an uninterrupted run's with no case computed twice. Also samples the main
process's memory (PSS, without its workers) of uninterrupted runs of 25, 100 and 300 cases: it
must not grow with the number of cases.

    .venv/bin/python benchmarks/bench_resume.py [--cases 300] [--out benchmarks/results/resume.md]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "Testing"), str(ROOT / "DeepRadScore"), str(ROOT / "benchmarks")]

import psutil  # noqa: E402

from machine import cpu_model  # noqa: E402
from test_resume import cache_entries, kill_half_way, write_cohort  # noqa: E402


def main_process_peak(manifest: Path, output_csv: Path) -> tuple[float, float]:
    """Wall seconds and the main process's peak PSS (MiB) of an uninterrupted ``extract --workers 2``."""
    command = [str(Path(sys.executable).parent / "deepradscore"), "extract", "--manifest", str(manifest),
               "-o", str(output_csv), "--workers", "2"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = [0]

    def sample():
        try:
            me = psutil.Process(process.pid)
            while process.poll() is None:
                peak[0] = max(peak[0], me.memory_full_info().pss)
                time.sleep(0.05)
        except psutil.NoSuchProcess:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert process.wait() == 0
    sampler.join()
    return time.perf_counter() - started, peak[0] / 2 ** 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from DeepRadScoreLib.features.extraction import extract_cohort

    lines = [f"# extract --workers 2 killed half way and resumed ({args.cases} cases)", "",
             f"CPU: {cpu_model()}.", "", "| signal | cached at the kill | recomputed | computed on resume | "
             "table identical |", "|---|---:|---:|---:|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = write_cohort(tmp / "cases", args.cases)
        reference = tmp / "reference" / "features.csv"
        sizes = sorted({max(args.cases // 12, 2), max(args.cases // 3, 3), args.cases})
        memory = []
        for n in sizes:
            subset = manifest.with_name(f"cohort{n}.csv")  # beside the cases: paths are relative
            subset.write_text("\n".join(manifest.read_text().splitlines()[:n + 1]) + "\n")
            out = reference if n == args.cases else tmp / f"m{n}" / "features.csv"
            memory.append((n, *main_process_peak(subset, out)))
            print(memory[-1], flush=True)
        for signal_name in ("SIGKILL", "SIGTERM"):
            out = tmp / signal_name / "features.csv"
            done = kill_half_way(manifest, out, signal_name, args.cases, timeout=3600)
            before = cache_entries(out)
            resumed = extract_cohort(manifest, out, workers=2)
            recomputed = len(before) - len(resumed.cached)
            same = out.read_bytes() == reference.read_bytes()
            lines.append(f"| {signal_name} | {done} | {recomputed} | {len(resumed.computed)} | {same} |")
            print(lines[-1], flush=True)
    load = Path("/proc/loadavg").read_text().split()[0]
    lines += ["", "Main process (without its workers) of uninterrupted runs:", "",
              "| cases | seconds | main process peak PSS MiB |", "|---:|---:|---:|"]
    lines += [f"| {n} | {s:.1f} | {m:.0f} |" for n, s, m in memory]
    lines += ["", f"Load average at the end: {load} (shared machine).", ""]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
