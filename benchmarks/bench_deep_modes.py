"""Per-endpoint vs multitask Deep-CT on the same cohort: test AUCs and training times.

The paper fine-tunes one DenseNet121 per endpoint (ten trainings); `--deep-mode multitask` trains
one shared backbone with a head per endpoint. This trains a bundle in each mode on the same
cohort, features and settings, evaluates both on the test split and writes one table.

    .venv/bin/python benchmarks/bench_deep_modes.py DEMO_DIR [--epochs 4] [--deep-folds 2]
        [--output benchmarks/results/deep_modes.md]

DEMO_DIR is a folder made by `deepradscore demo` (its cohort/ and features.csv are reused). The
cohort is synthetic: the AUCs compare the two modes on planted signals, nothing clinical.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DeepRadScore"))

from DeepRadScoreLib.cli.main import main  # noqa: E402

MODES = ("multitask", "per-endpoint")


def run(argv: list[str]) -> None:
    if main(argv) != 0:
        raise SystemExit(f"failed: deepradscore {' '.join(argv)}")


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo_dir", type=Path)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--deep-folds", type=int, default=2)
    parser.add_argument("--cv-repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "deep_modes.md")
    args = parser.parse_args()
    manifest, features = args.demo_dir / "cohort" / "manifest.csv", args.demo_dir / "features.csv"
    work = args.demo_dir / "deep-modes"
    rows, times = [], {}
    for mode in MODES:
        bundle, report = work / f"bundle-{mode}", work / f"report-{mode}"
        started = time.perf_counter()
        run(["train", "--manifest", str(manifest), "--features", str(features), "-o", str(bundle),
             "--deep-mode", mode, "--deep-folds", str(args.deep_folds), "--epochs", str(args.epochs),
             "--cv-repeats", str(args.cv_repeats), "--workers", "2", "--seed", "7"])
        wall = time.perf_counter() - started
        training = json.loads((bundle / "bundle.json").read_text())["training"]
        times[mode] = (wall, training["seconds_deep"])
        run(["evaluate", str(bundle), "--manifest", str(manifest), "--features", str(features),
             "-o", str(report)])
        metrics = pd.read_csv(report / "metrics.csv")
        for row in metrics[metrics.model.isin(["deep", "fusion"])].itertuples():
            rows.append({"mode": mode, "endpoint": row.endpoint, "model": row.model, "auc": row.auc})
    table = pd.DataFrame(rows).pivot_table(index="endpoint", columns=["model", "mode"], values="auc",
                                           sort=False)
    lines = ["# Deep-CT modes on one cohort (`benchmarks/bench_deep_modes.py`)", "",
             f"Cohort: `{manifest}` (synthetic, planted signals; not clinical). Settings: "
             f"{args.deep_folds} cross-fitted networks, {args.epochs} epochs, {args.cv_repeats} CV "
             f"repeats, DenseNet121 from random weights, 2 CPU cores (load average now "
             f"{os.getloadavg()[0]:.1f}).", "",
             "| mode | training wall time (s) | of which Deep-CT (s) |", "| --- | ---: | ---: |"]
    lines += [f"| {mode} | {wall:.0f} | {deep:.0f} |" for mode, (wall, deep) in times.items()]
    lines += ["", "Test AUCs (test split of the cohort):", "",
              "| endpoint | " + " | ".join(f"{m} {mode}" for m, mode in table.columns) + " |",
              "| --- |" + " ---: |" * len(table.columns)]
    for endpoint, values in table.iterrows():
        lines.append(f"| {endpoint} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main_bench()
