#!/usr/bin/env python3
"""Deep-CT training time in float32 and in bf16 autocast on this CPU, side by side.

Trains the same DenseNet121 (2 folds, 2 epochs, 96 planted 160 x 160 patches, batch 16, 2 torch
threads) in each precision twice, alternating, and prints the wall time and the held-out AUC
of each run with the CPU model and the load average. ``auto`` picks bf16 on CPUs with AMX or
AVX-512 BF16 (deep.ensemble.resolve_precision); this measures what that choice is worth where it is made.
Usage: .venv/bin/python benchmarks/bench_precision.py
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "DeepRadScore"), str(ROOT / "Testing")]

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, beside this script)




def main() -> None:
    import torch

    from DeepRadScoreLib.deep.ensemble import DeepConfig, resolve_precision
    from DeepRadScoreLib.deep.training import train_deep
    from test_deep_model import planted_patches

    torch.set_num_threads(2)
    hu, y = planted_patches(96, seed=0)
    print(f"CPU: {cpu_model()}; auto picks {resolve_precision('auto', torch.device('cpu'))}; "
          f"load before {os.getloadavg()[0]:.2f}")
    for precision in ("fp32", "bf16", "fp32", "bf16"):
        config = DeepConfig(folds=2, epochs=2, batch_size=16, device="cpu", seed=0, precision=precision)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            ensemble = train_deep(hu, {"A": y}, config)
        print(f"{precision}: {time.perf_counter() - start:.1f} s, held-out AUC "
              f"{ensemble.summary['oof_auc']['A']:.3f}", flush=True)
    print(f"load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
