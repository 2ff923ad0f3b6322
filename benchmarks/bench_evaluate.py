"""Time ``evaluate`` on a 150-case test set, feature extraction excluded.

    .venv/bin/python benchmarks/bench_evaluate.py [--test-cases 150] [--mode multitask]
        [--folds 4] [--endpoints 10] [--work DIR] [--output benchmarks/results/evaluate.md]

A generated cohort (feature table + 160 x 160 patches, planted signal) and a real bundle trained
on its training rows with the real training code (1 epoch: the weights' quality does not change
the evaluation's cost) are built once into ``--work`` and reused. What is timed is
``evaluation.evaluate_bundle`` with ``features_csv`` given: scoring (RadScores, K Deep-CT networks,
classifiers), DeLong, metrics, Table 1, the figures, SHAP for every endpoint and Grad-CAM, and
the HTML report. The feature table has 100 columns instead of 1702: the RadScores are linear, so
their cost at evaluation does not depend on it. The load average is written next to the numbers.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DeepRadScore"))

from DeepRadScoreLib import ENDPOINTS  # noqa: E402
from DeepRadScoreLib.outputs import atomic_file  # noqa: E402


def build_cohort(folder: Path, n_train: int, n_test: int, endpoints: list[str], seed: int = 0) -> None:
    """manifest.csv (one tiny CT every row points to), features.csv, features.patches.npz."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ct = sitk.GetImageFromArray(rng.normal(-800, 50, (8, 16, 16)).astype(np.float32))
    mask = sitk.GetImageFromArray(np.pad(np.ones((4, 8, 8), np.uint8), ((2, 2), (4, 4), (4, 4))))
    sitk.WriteImage(ct, str(folder / "ct.nii.gz"))
    sitk.WriteImage(mask, str(folder / "mask.nii.gz"))
    n = n_train + n_test
    case_ids = [f"case{i:04d}" for i in range(n)]
    labels = {e: (rng.random(n) < 0.35).astype(int) for e in endpoints}
    table = pd.DataFrame({"case_id": case_ids, "image": "ct.nii.gz", "mask": "mask.nii.gz",
                          "split": ["train"] * n_train + ["test"] * n_test,
                          "age": np.round(rng.normal(63, 9, n)), "sex": rng.choice(["F", "M"], n), **labels})
    table.to_csv(folder / "manifest.csv", index=False)
    X = rng.normal(size=(n, 100))
    patches = rng.normal(-800, 60, size=(n, 160, 160)).astype(np.float32)
    yy, xx = np.mgrid[:160, :160]
    for j, e in enumerate(endpoints):
        X[:, 2 * j:2 * j + 2] += 1.2 * labels[e][:, None]  # planted in two feature columns
        ring = np.abs(np.hypot(yy - 80, xx - 80) - (10 + 5 * j)) < 2
        patches[labels[e] == 1] += 300 * ring  # and in one ring of the patch
    names = [f"tumor_original_firstorder_F{j}" for j in range(50)] + \
            [f"peritumoral_original_firstorder_F{j}" for j in range(50)]
    pd.DataFrame(X, columns=names, index=pd.Index(case_ids, name="case_id")).to_csv(folder / "features.csv")
    np.savez(folder / "features.patches.npz", **dict(zip(case_ids, patches)))
    # evaluate compares a table's extraction settings with the bundle's: record the defaults.
    from DeepRadScoreLib.features.settings import ExtractionSettings, settings_path, write_settings

    write_settings(settings_path(folder / "features.csv"), ExtractionSettings.current())


def build_bundle(folder: Path, mode: str, folds: int, endpoints: list[str]) -> Path:
    from DeepRadScoreLib.deep.ensemble import DeepConfig
    from DeepRadScoreLib.features.extraction import read_feature_table
    from DeepRadScoreLib.pipelines.train import fit_bundle

    bundle_dir = folder / f"bundle-{mode}-{folds}"
    if (bundle_dir / "bundle.json").exists():
        return bundle_dir
    table = pd.read_csv(folder / "manifest.csv")
    train = table[table.split == "train"]
    features, patches = read_feature_table(folder / "features.csv", list(train.case_id))
    labels = pd.DataFrame({e: train[e].to_numpy(float) for e in endpoints}, index=features.index)
    config = DeepConfig(mode=mode, folds=folds, epochs=1, device="cpu", patience=1)
    started = time.perf_counter()
    bundle = fit_bundle(features, patches, labels, config, cv_repeats=1, seed=0,
                        data={"synthetic": True, "manifest": str(folder / "manifest.csv"),
                              "n_training_cases": len(train)})
    bundle.save(bundle_dir)
    print(f"bundle trained in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return bundle_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test-cases", type=int, default=150)
    parser.add_argument("--train-cases", type=int, default=60)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--mode", default="multitask", choices=["multitask", "per-endpoint"])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--work", default="/tmp/deepradscore-bench-evaluate")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "evaluate.md"))
    args = parser.parse_args()

    from DeepRadScoreLib.pipelines.evaluate import evaluate_bundle

    endpoints = list(ENDPOINTS[:args.endpoints])
    work = Path(args.work) / f"{args.train_cases}-{args.test_cases}-{args.endpoints}"
    if not (work / "features.patches.npz").exists():
        build_cohort(work, args.train_cases, args.test_cases, endpoints)
    bundle_dir = build_bundle(work, args.mode, args.folds, endpoints)

    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    result = evaluate_bundle(bundle_dir, work / "manifest.csv", work / f"report-{args.mode}",
                             features_csv=work / "features.csv", device="cpu")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    load_after = os.getloadavg()

    fusion = result.metrics[result.metrics.model == "fusion"]
    networks = args.folds * (1 if args.mode == "multitask" else len(endpoints))
    lines = [
        f"## evaluate: {args.test_cases} test cases, {len(endpoints)} endpoints, Deep-CT {args.mode} "
        f"({networks} DenseNet121 networks)",
        "",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average before/after: "
        f"{load_before[0]:.1f} / {load_after[0]:.1f}",
        f"- command: `.venv/bin/python benchmarks/bench_evaluate.py --test-cases {args.test_cases} "
        f"--mode {args.mode} --folds {args.folds} --endpoints {args.endpoints}`",
        f"- **wall time {wall:.1f} s** (CPU time of the process {cpu:.1f} s); feature extraction excluded",
        "- by step (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()),
        f"- fusion test AUCs (planted signal, 1-epoch bundle): "
        + ", ".join(f"{r.endpoint} {r.auc:.2f}" for r in fusion.itertuples()),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    output = Path(args.output)
    previous = output.read_text() if output.exists() else "# evaluate benchmark\n\n"
    with atomic_file(output) as tmp:
        tmp.write_text(previous + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
