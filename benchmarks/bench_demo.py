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
sys.path.insert(0, str(ROOT / "DeepRadScore"))


def trained_precision(out: Path) -> str:
    """The precision the demo's Deep-CT trained in, as its bundle records it (auto resolves by CPU)."""
    import json

    return json.loads((out / "bundle" / "bundle.json").read_text())["deep"]["summary"]["precision"]


def generator_version(out: Path) -> str:
    """The synthetic generator's version, as the demo's cohort records it (its AUCs depend on it)."""
    import json

    return json.loads((out / "cohort" / "SYNTHETIC.json").read_text())["version"]


def results_table(out: Path) -> list[str]:
    """The README's results table, from the demo's metrics.csv and bundle: per endpoint the test
    AUC of each model, the fusion's CI, nested-CV AUC, classifier, Brier score and calibration
    slope."""
    import pandas as pd

    from DeepRadScoreLib.model.bundle import Bundle

    metrics = pd.read_csv(out / "report" / "metrics.csv")
    bundle = Bundle.load(out / "bundle", device="cpu")
    rows = ["| endpoint | test n (positive) | Radiomics-Score AUC | Deep-CT AUC | Deep-RadScore AUC [95 % CI] "
            "| fusion: nested CV AUC (train) | fusion classifier | Brier | calibration slope |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for endpoint in pd.unique(metrics.endpoint):
        by_model = metrics[metrics.endpoint == endpoint].set_index("model")
        fusion = by_model.loc["fusion"]
        info = bundle.model_info(endpoint, "fusion")
        rows.append(f"| {endpoint} | {int(fusion.n)} ({int(fusion.n_pos)}) | {by_model.loc['radiomics', 'auc']:.3f} "
                    f"| {by_model.loc['deep', 'auc']:.3f} | {fusion.auc:.3f} [{fusion.auc_ci_low:.3f}, "
                    f"{fusion.auc_ci_high:.3f}] | {info.nested_cv_auc.mean:.3f} | {info.chosen} "
                    f"| {fusion.brier_score:.3f} | {fusion.calibration_slope:.2f} |")
    return rows



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
        "Test-split results of this run (the README's table is copied from here); synthetic generator "
        f"version {generator_version(out)}, Deep-CT trained in {trained_precision(out)}:",
        "",
        *results_table(out),
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
