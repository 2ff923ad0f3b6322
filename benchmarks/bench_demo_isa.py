"""Retrain a finished demo's models as on a CPU with fewer vector extensions, and score them.

    .venv/bin/python benchmarks/bench_demo_isa.py DEMO_DIR [--isa AVX2|AVX512]

The Deep-CT is not bit-identical across CPUs, so the demo's AUCs move with the machine. This
script gives a second numeric path on the same machine: it caps oneDNN, ATen and OpenBLAS at
``--isa`` (``ONEDNN_MAX_CPU_ISA``, ``ATEN_CPU_CAPABILITY``, ``OPENBLAS_CORETYPE``), trains in
float32 (what ``--precision auto`` picks on a CPU without bf16 instructions) with the demo's own
training arguments on the demo's cohort and features, and evaluates on its test split. It is an
emulation: an AVX2-only CPU runs these kernels, but its timings and its last bits differ. Writes
benchmarks/results/demo_isa_<isa>.md with the CPU model. Synthetic data: no clinical meaning.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench_demo import generator_version, results_table, trained_precision  # noqa: E402 (beside this script)
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DeepRadScore"))

# oneDNN's, ATen's and OpenBLAS's own names for the same cap.
CAPS = {"AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "OPENBLAS_CORETYPE": "Haswell"},
        # AVX-512 without bf16 instructions (a Skylake-class Xeon): float32 as well.
        "AVX512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "ATEN_CPU_CAPABILITY": "avx512",
                   "OPENBLAS_CORETYPE": "SkylakeX"}}


def main() -> int:
    from DeepRadScoreLib.cli.demo import evaluate_argv, train_argv

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", help="a folder `deepradscore demo` has finished in")
    parser.add_argument("--isa", default="AVX2", choices=sorted(CAPS))
    args = parser.parse_args()
    demo = Path(args.demo).resolve()
    manifest, features = demo / "cohort" / "manifest.csv", demo / "features.csv"
    if not manifest.is_file() or not features.is_file():
        print(f"error: {demo}: not a finished demo folder (no cohort/manifest.csv or features.csv)")
        return 2
    out = demo / f"isa-{args.isa.lower()}"
    env = {**os.environ, **CAPS[args.isa]}
    exe = str(ROOT / ".venv" / "bin" / "deepradscore")
    train = [exe, *train_argv(manifest, features, out / "bundle"), "--precision", "fp32"]
    evaluate = [exe, *evaluate_argv(out / "bundle", manifest, features, out / "report")]
    seconds = {}
    for name, cmd in (("train", train), ("evaluate", evaluate)):
        started = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds[name] = time.perf_counter() - started
        if done.returncode != 0:
            sys.stdout.write(done.stdout[-4000:] + done.stderr[-4000:])
            return done.returncode
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    caps = ", ".join(f"{k}={v}" for k, v in CAPS[args.isa].items())
    text = "\n".join([
        f"# The demo's models retrained with the CPU capped at {args.isa} (`benchmarks/bench_demo_isa.py`)",
        "",
        f"Written {when}. CPU: {cpu_model()}, {os.cpu_count()} cores, capped with {caps}; the demo's "
        f"cohort and features from `{demo}` (synthetic generator version {generator_version(demo)}), "
        f"its training arguments, Deep-CT trained in {trained_precision(out)}. An emulation of an "
        f"{args.isa}-only CPU's kernels, not its timings.",
        "",
        f"train {seconds['train']:.0f} s, evaluate {seconds['evaluate']:.0f} s.",
        "",
        *results_table(out),
        "",
        "Synthetic data: the model has no clinical meaning.",
        "",
    ])
    results = ROOT / "benchmarks" / "results" / f"demo_isa_{args.isa.lower()}.md"
    results.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
