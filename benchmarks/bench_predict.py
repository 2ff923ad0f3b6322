"""Predict timing on ../shared/data/ibsi_ct_phantom: the deep part for all endpoints, and the
whole `deepradscore predict` command.

The bundle is trained here on a small synthetic cohort (a generated feature table + deep-ROI
patches with planted labels for the ten endpoint names, 1 epoch, 1 CV repeat): only its shape
(number of networks, endpoints, k) matters for prediction time, not what it learnt. It means
nothing clinically.

    .venv/bin/python benchmarks/bench_predict.py [--modes multitask per-endpoint] [--deep-folds 4]

Writes benchmarks/results/predict.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
PHANTOM = ROOT.parent / "shared" / "data" / "ibsi_ct_phantom" / "nifti"


def make_cohort(folder: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    from DeepRadScoreLib import ENDPOINTS
    from DeepRadScoreLib.features.radiomics import feature_names

    rng = np.random.default_rng(seed)
    names = feature_names()
    ids = [f"s{i:03d}" for i in range(n)]
    labels = {e: rng.permutation(np.arange(n) % 2).astype(float) for e in ENDPOINTS}
    X = rng.normal(size=(n, len(names)))
    X[:, 0] += 2 * labels["LVI"]
    yy, xx = np.mgrid[:160, :160]
    patches = {}
    for i, case in enumerate(ids):
        patch = rng.normal(-820, 30, size=(160, 160)).astype(np.float32)
        r = 10 + 10 * labels["LVI"][i]
        patch[(yy - 80) ** 2 + (xx - 80) ** 2 <= r * r] += 860
        patches[case] = patch
    folder.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(X, columns=names)
    table.insert(0, "case_id", ids)
    table.to_csv(folder / "features.csv", index=False)
    np.savez(folder / "features.patches.npz", **patches)
    manifest = pd.DataFrame({"case_id": ids, "image": "x.nii.gz", "mask": "x.nii.gz", **labels})
    manifest.to_csv(folder / "manifest.csv", index=False)
    (folder / "SYNTHETIC.json").write_text(json.dumps({"generator": "benchmarks/bench_predict.py"}))
    return folder / "manifest.csv", folder / "features.csv"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", nargs="+", default=["multitask", "per-endpoint"])
    parser.add_argument("--deep-folds", type=int, default=4)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions of the deep part")
    args = parser.parse_args()

    import torch

    from DeepRadScoreLib.model.bundle import Bundle
    from DeepRadScoreLib.cli.main import main as cli
    from DeepRadScoreLib.io.images import load_case
    from DeepRadScoreLib.regions import deep_roi_patch

    case = load_case(PHANTOM / "image.nii.gz", PHANTOM / "mask.nii.gz")
    patch = deep_roi_patch(case.image, case.mask)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest, features = make_cohort(tmp / "cohort", args.cases)
        for mode in args.modes:
            bundle_dir = tmp / f"bundle-{mode}"
            t0 = time.perf_counter()
            status = cli(["train", "--manifest", str(manifest), "-o", str(bundle_dir), "--features",
                          str(features), "--epochs", "1", "--deep-mode", mode, "--deep-folds",
                          str(args.deep_folds), "--cv-repeats", "1", "--workers", "2", "--device", "cpu"])
            assert status == 0
            train_s = time.perf_counter() - t0
            bundle = Bundle.load(bundle_dir, device="cpu")
            bundle.deep.features(patch.hu[None])  # warm-up (allocations, thread pool)
            deep_times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                bundle.deep.features(patch.hu[None])
                deep_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "DeepRadScoreLib.cli.main", "predict", str(bundle_dir),
                                   str(PHANTOM / "image.nii.gz"), str(PHANTOM / "mask.nii.gz"),
                                   "-o", str(tmp / f"result-{mode}.json"), "--device", "cpu"],
                                  capture_output=True, text=True)
            predict_s = time.perf_counter() - t0
            assert done.returncode == 0, done.stderr
            result = json.loads((tmp / f"result-{mode}.json").read_text())
            networks = len(bundle.deep.members)
            rows.append({"mode": mode, "endpoints": len(bundle.endpoints), "networks": networks,
                         "deep_s_median": float(np.median(deep_times)), "deep_s_all": deep_times,
                         "predict_wall_s": predict_s, "predict_stages_s": result["seconds"],
                         "train_s": train_s})
            print(json.dumps(rows[-1], indent=1), flush=True)

    lines = ["# Predict timing (`benchmarks/bench_predict.py`)", "",
             f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
             f"threads, Python {platform.python_version()}, torch {torch.__version__}; "
             f"case: ibsi_ct_phantom (NIfTI). Bundle trained on a {args.cases}-case synthetic "
             f"feature table (no clinical meaning), {args.deep_folds} cross-fitted networks per "
             "endpoint group. Deep part = `DeepEnsemble.features` of the one deep-ROI patch for "
             "all endpoints (median of the timed repeats, after a warm-up). Whole predict = the "
             "`deepradscore predict` command in a fresh process (imports, bundle load, ring, "
             "radiomics, scoring, JSON), no Grad-CAM.", "",
             "| deep mode | endpoints | networks | deep part (s) | whole predict (s) | of which radiomics (s) | bundle load (s) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        stages = r["predict_stages_s"]
        lines.append(f"| {r['mode']} | {r['endpoints']} | {r['networks']} | {r['deep_s_median']:.3f} | "
                     f"{r['predict_wall_s']:.1f} | {stages.get('radiomics', float('nan')):.1f} | "
                     f"{stages.get('load_bundle', float('nan')):.1f} |")
    lines += ["", "Raw: " + json.dumps(rows)]
    out = ROOT / "benchmarks" / "results" / "predict.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
