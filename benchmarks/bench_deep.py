"""Deep-CT timings on this machine: one case's deep inference for ten endpoints, Grad-CAM, and
training time per epoch per 100 patches, for the multitask and per-endpoint modes.

    .venv/bin/python benchmarks/bench_deep.py [--threads N] [--repeats R] [--output FILE]

Inference time does not depend on the weights, so untrained networks are timed (built the way
DeepEnsemble.from_saved builds them). Each figure is the median of ``--repeats`` runs after one
warm-up. The machine's load average is written next to the numbers: on a shared CPU the figures
move with whatever else runs.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DeepRadScore"))

from DeepRadScoreLib.deep.model import DeepCT  # noqa: E402
from DeepRadScoreLib.deep.ensemble import DeepConfig, DeepEnsemble, Member, hu_to_input  # noqa: E402
from DeepRadScoreLib.deep.training import augment_hu, masked_multitask_loss  # noqa: E402
from DeepRadScoreLib.outputs import atomic_file  # noqa: E402

ENDPOINTS = ["LVI", "PI", "T4", "EGFR", "KRAS", "ALK", "TP53", "PIK3CA", "ROS1", "PDL1"]


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ensemble(mode: str, folds: int, backbone: str = "densenet121") -> DeepEnsemble:
    torch.manual_seed(0)
    if mode == "multitask":
        members = [Member(f, list(ENDPOINTS), DeepCT(backbone, ENDPOINTS).eval()) for f in range(folds)]
    else:
        members = [Member(f, [e], DeepCT(backbone, [e]).eval()) for e in ENDPOINTS for f in range(folds)]
    config = DeepConfig(backbone=backbone, mode=mode, folds=folds, device="cpu")
    return DeepEnsemble(config, list(ENDPOINTS), members, {"weights": "random"}, {}, {},
                        np.zeros(0, int), torch.device("cpu"))


def train_epoch_seconds(n_endpoints: int, n_patches: int, batch_size: int = 16) -> float:
    """One training epoch (augmentation, forward, masked loss, backward, AdamW) on ``n_patches``."""
    torch.manual_seed(0)
    model = DeepCT("densenet121", ENDPOINTS[:n_endpoints]).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    hu = torch.from_numpy(rng.normal(-700, 200, (n_patches, 160, 160)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 2, (n_patches, n_endpoints)).astype(np.float32))
    weights = torch.ones(n_endpoints, 2)
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for start in range(0, n_patches, batch_size):
        x = hu_to_input(augment_hu(hu[start:start + batch_size], generator))
        _, logits = model(x)
        loss = masked_multitask_loss(logits, labels[start:start + batch_size], weights)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-patches", type=int, default=100)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "deep.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    patch = np.random.default_rng(1).normal(-700, 200, (1, 160, 160)).astype(np.float32)
    load_before = os.getloadavg()

    rows = []
    for mode, folds in (("multitask", 4), ("multitask", 1), ("per-endpoint", 4), ("per-endpoint", 1)):
        deep = ensemble(mode, folds)
        networks = len(deep.members)
        infer = median_seconds(lambda: deep.features(patch), args.repeats)
        cams = median_seconds(lambda: deep.gradcams(patch[0]), max(1, args.repeats // 2))
        rows.append((mode, folds, networks, infer, cams))
        print(f"{mode:12s} K={folds}: {networks:2d} networks, features {infer:.3f} s, "
              f"Grad-CAM (10 endpoints) {cams:.3f} s", flush=True)
        del deep

    train_rows = []
    for label, n_endpoints in (("multitask (10 heads, one network)", 10), ("per-endpoint (one network)", 1)):
        seconds = train_epoch_seconds(n_endpoints, args.train_patches)
        per_100 = seconds * 100.0 / args.train_patches
        train_rows.append((label, per_100))
        print(f"training {label}: {per_100:.1f} s per epoch per 100 patches", flush=True)
    load_after = os.getloadavg()

    lines = [
        "# Deep-CT timings (`benchmarks/bench_deep.py`)",
        "",
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {args.threads} torch thread(s), DenseNet121, 160 x 160 patch, "
        f"k = 10, batch 1 at inference, median of {args.repeats} runs after a warm-up.",
        f"Load average before / after: {load_before[0]:.1f} / {load_after[0]:.1f} "
        "(other work on the same cores inflates every figure).",
        "",
        "## One case, ten endpoints",
        "",
        "| mode | K (cross-fitted networks) | networks run | deep features (s) | Grad-CAM, 10 endpoints (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {m} | {k} | {n} | {t:.3f} | {c:.3f} |" for m, k, n, t, c in rows]
    lines += [
        "",
        "## Training",
        "",
        f"One epoch (augmentation, forward, loss, backward, AdamW; batch 16) on "
        f"{args.train_patches} patches, scaled to 100:",
        "",
        "| network | seconds per epoch per 100 patches |",
        "| --- | --- |",
    ]
    lines += [f"| {label} | {t:.1f} |" for label, t in train_rows]
    lines += [
        "",
        "A full training run costs about epochs x K x (training cases x (K-1)/K / 100) x this figure "
        "per network, plus validation; per-endpoint mode trains ten networks per fold, multitask one.",
        "",
    ]
    with atomic_file(args.output) as tmp:
        tmp.write_text("\n".join(lines))
    print(f"written {args.output}")


if __name__ == "__main__":
    main()
