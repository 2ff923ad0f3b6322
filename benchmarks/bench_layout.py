#!/usr/bin/env python3
"""One DenseNet121 training step (batch 16, 160 x 160, ten heads) on this CPU in each memory
layout and precision, and one early-stopping pass over 21 patches.

    .venv/bin/python benchmarks/bench_layout.py [--threads 2] [--repeats 3]

The three settings (float32 contiguous, float32 channels-last, bf16 autocast channels-last) are
timed interleaved, each repeat the mean of 4 steps after one untimed step, so that a busy
neighbour slows them all alike. ``deep.training`` trains in channels-last on every CPU because of
these figures. Appends its line to benchmarks/results/layout.md with the CPU model.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DeepRadScore"))

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, beside this script)


def main() -> int:
    import torch

    from DeepRadScoreLib.deep.ensemble import hu_to_input
    from DeepRadScoreLib.deep.model import DeepCT
    from DeepRadScoreLib.deep.training import augment_hu, masked_multitask_loss

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hu = torch.randn(64, 160, 160) * 300
    labels = torch.randint(0, 2, (64, 10)).float()
    weights = torch.ones(10, 2)
    settings = {"fp32 contiguous": ("fp32", torch.contiguous_format),
                "fp32 channels-last": ("fp32", torch.channels_last),
                "bf16 channels-last": ("bf16", torch.channels_last)}
    nets = {}
    for name, (_, layout) in settings.items():
        torch.manual_seed(0)
        model = DeepCT("densenet121", [f"e{i}" for i in range(10)]).to(memory_format=layout)
        nets[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4))

    def steps(name: str, n: int) -> float:
        precision, layout = settings[name]
        model, optimiser = nets[name]
        model.train()
        generator = torch.Generator().manual_seed(0)
        started = time.perf_counter()
        for _ in range(n):
            x = hu_to_input(augment_hu(hu[:16], generator)).contiguous(memory_format=layout)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                _, logits = model(x)
            loss = masked_multitask_loss(logits.float(), labels[:16], weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return (time.perf_counter() - started) / n

    def validation(name: str) -> float:
        precision, layout = settings[name]
        model = nets[name][0].eval()
        started = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            model(hu_to_input(hu[:21]).contiguous(memory_format=layout))
        return time.perf_counter() - started

    load_before = os.getloadavg()[0]
    for name in settings:
        steps(name, 1)
        validation(name)
    step_times = {name: [] for name in settings}
    val_times = {name: [] for name in settings}
    for _ in range(args.repeats):
        for name in settings:
            step_times[name].append(steps(name, 4))
            val_times[name].append(validation(name))
    base = statistics.median(step_times["fp32 contiguous"])
    cells = []
    for name in settings:
        step = statistics.median(step_times[name])
        cells.append(f"{step:.2f} s ({step / base:.2f}x); pass {statistics.median(val_times[name]):.2f} s")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    line = (f"| {when} | {cpu_model()}, {args.threads} threads | {load_before:.2f} | "
            + " | ".join(cells) + " |")
    results = ROOT / "benchmarks" / "results" / "layout.md"
    if not results.exists():
        results.write_text("# DenseNet121 training step by memory layout and precision (`benchmarks/bench_layout.py`)\n\n"
                           "Medians of interleaved repeats, each the mean of 4 steps (batch 16, 160 x 160, ten heads), "
                           "after one untimed step; the ratio is to float32 contiguous on the same machine. Each cell: "
                           "one training step (ratio); one no-grad pass over 21 patches (an early-stopping check).\n\n"
                           "| when | CPU | load before | fp32 contiguous | fp32 channels-last | bf16 channels-last |\n"
                           "| --- | --- | ---: | --- | --- | --- |\n")
    with results.open("a") as out:
        out.write(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
