"""A cheap proxy for the demo's AUCs on the synthetic cohort: calibrates the planted effect sizes.

Synthesises a cohort (the demo's seed 7 by default), extracts its radiomics features with the
real ``deepradscore extract`` into a scratch folder, and fits quick cross-validated L1-logistic
models per endpoint on five inputs:

* ``tumour``, ``ring``: the tumour's and the 3 mm ring's pyradiomics features;
* ``radiomics``: both (a stand-in for the Radiomics-Score);
* ``patch``: a crude 2D proxy for the Deep-CT: the deep-ROI patch's HU histogram and Fourier
  spectrum around the tumour (what one slice shows; the real network may read more or less);
* ``fused``: radiomics + patch (a stand-in for the fusion);
* ``cnn`` (with ``--cnn``): a small CNN trained from scratch, multitask, on the deep-ROI patches
  (the engine's three HU windows, flips and shifts), out-of-fold over 5 folds: closer to what the
  Deep-CT can learn from about a hundred patches than the spectrum, at a fraction of its cost.
* ``deep`` (with ``--deep``): the real Deep-CT (``deep.training.train_deep``) with the demo's
  settings (DenseNet121, multitask, 4 cross-fitted networks, 8 epochs, the demo's seed) on the
  train split's patches; its out-of-fold network probabilities' AUC. What the demo's Deep-CT
  learns, in about 2 minutes of a quiet 2-core machine, without running the whole demo.

Each AUC is from out-of-fold predictions of a nested CV (the L1 strength is chosen by an inner
3-fold CV on the training folds only), over the whole cohort, so it is an honest estimate of the
proxy, not of the demo's test split. It is a proxy: the demo's numbers come from the real
pipeline (RadScore selection, Deep-CT, fusion classifiers) on a 30 % test split.

    .venv/bin/python benchmarks/calibrate_synth.py --cases 160 --work /tmp/calib [--params FILE]

``--params`` takes a lighter pyradiomics file for quick rounds (e.g. the original image only);
a second run with the same ``--work`` reuses the cohort and the extracted features. Synthetic
data: the numbers say how strong the planted mechanisms are, nothing clinical.
"""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, beside this script)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DeepRadScore"))

logger = logging.getLogger(__name__)

SOURCES = ("tumour", "ring", "radiomics", "patch", "fused")



def patch_descriptors(patch: np.ndarray) -> np.ndarray:
    """HU histogram and ring-binned Fourier power of the patch's central 64 x 64 pixels.

    The histogram sees attenuation (ground glass, density); the spectrum, taken after removing
    a local mean, sees in-plane texture at periods of 2.5-16 pixels and its anisotropy.
    """
    from scipy import ndimage

    c = patch[48:112, 48:112].astype(np.float64)
    hist = np.histogram(np.clip(c, -1000, 999), bins=np.linspace(-1000, 1000, 21))[0] / c.size
    detail = c - ndimage.uniform_filter(c, 9)
    power = np.abs(np.fft.fftshift(np.fft.fft2(detail * np.hanning(64)[:, None] * np.hanning(64)[None]))) ** 2
    fy, fx = np.meshgrid(np.arange(64) - 32, np.arange(64) - 32, indexing="ij")
    radius = np.hypot(fx, fy) / 64.0          # cycles per pixel
    angle = np.mod(np.arctan2(fy, fx), np.pi)
    edges = 1.0 / np.array([16, 10, 8, 6.5, 5.5, 4.5, 3.5, 2.5])
    spectrum, anisotropy = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = (radius >= lo) & (radius < hi)
        spectrum.append(np.log1p(power[band].mean()))
        sectors = [power[band & (angle >= a) & (angle < a + np.pi / 8)].mean() for a in np.arange(8) * np.pi / 8]
        anisotropy.append(max(sectors) / (np.mean(sectors) + 1e-9))
    return np.concatenate([hist, spectrum, anisotropy, [c.mean(), c.std(), detail.std()]])


def cnn_oof_auc(patches: np.ndarray, labels: np.ndarray, seed: int, epochs: int = 25,
                folds: int = 5) -> list[float]:
    """Out-of-fold AUC per label column of a small multitask CNN (NaN labels = unknown)."""
    import torch
    from sklearn.metrics import roc_auc_score
    from torch import nn

    from DeepRadScoreLib.regions import network_input

    torch.manual_seed(seed)
    x = torch.from_numpy(np.stack([network_input(p[24:136, 24:136]) for p in patches])).float()
    y = torch.from_numpy(labels).float()
    known = ~torch.isnan(y)
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(np.arange(len(x)) % folds)
    scores = np.zeros(labels.shape)
    for f in range(folds):
        train = np.flatnonzero(fold_of != f)
        test = np.flatnonzero(fold_of == f)
        net = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(64, labels.shape[1]))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
        yk = y[train]
        pos = torch.nansum(yk, 0)
        neg = (~torch.isnan(yk)).sum(0) - pos
        pos_weight = (neg / pos.clamp(min=1)).clamp(max=10)
        for _ in range(epochs):
            net.train()
            for batch in np.array_split(rng.permutation(train), max(1, len(train) // 16)):
                xb = x[batch]
                if rng.random() < 0.5:
                    xb = xb.flip(3)
                xb = torch.roll(xb, shifts=(int(rng.integers(-8, 9)), int(rng.integers(-8, 9))), dims=(2, 3))
                logits = net(xb)
                mask = known[batch]
                target = torch.nan_to_num(y[batch])
                loss = nn.functional.binary_cross_entropy_with_logits(
                    logits, target, pos_weight=pos_weight, reduction="none")[mask].mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            scores[test] = net(x[test]).numpy()
    aucs = []
    for e in range(labels.shape[1]):
        k = ~np.isnan(labels[:, e])
        yy = labels[k, e].astype(int)
        aucs.append(float(roc_auc_score(yy, scores[k, e])) if 0 < yy.sum() < len(yy) else float("nan"))
    return aucs


def deep_oof_auc(patches: np.ndarray, labels: np.ndarray, train: np.ndarray, seed: int) -> list[float]:
    """Out-of-fold AUC per label column of the real Deep-CT with the demo's settings, trained on
    the ``train`` rows (NaN labels = unknown); NaN where a column cannot be trained."""
    from sklearn.metrics import roc_auc_score

    from DeepRadScoreLib.deep.ensemble import DeepConfig
    from DeepRadScoreLib.deep.training import train_deep

    y = labels[train]
    usable = [c for c in range(y.shape[1]) if min(np.nansum(y[:, c] == 1), np.nansum(y[:, c] == 0)) >= 5]
    config = DeepConfig(epochs=8, mode="multitask", folds=4, seed=seed)
    ensemble = train_deep(patches[train], {str(c): y[:, c] for c in usable}, config)
    aucs = [float("nan")] * y.shape[1]
    for c in usable:
        known = ~np.isnan(y[:, c])
        aucs[c] = float(roc_auc_score(y[known, c].astype(int),
                                      np.asarray(ensemble.oof_probabilities[str(c)])[known]))
    return aucs


def cv_auc(X: np.ndarray, y: np.ndarray, seed: int, repeats: int) -> float:
    """Mean over repeats of the out-of-fold AUC of an L1-logistic chosen by inner CV."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = int(min(5, np.bincount(y).min()))
    if folds < 2:
        return float("nan")
    aucs = []
    for r in range(repeats):
        oof = np.zeros(len(y))
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed + r).split(X, y):
            inner = int(min(3, np.bincount(y[train]).min()))
            model = make_pipeline(StandardScaler(), LogisticRegressionCV(
                Cs=[0.02, 0.05, 0.15, 0.5], penalty="l1", solver="liblinear", cv=max(inner, 2),
                scoring="roc_auc", class_weight="balanced", max_iter=500))
            model.fit(X[train], y[train])
            oof[test] = model.decision_function(X[test])
        aucs.append(roc_auc_score(y, oof))
    return float(np.mean(aucs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=160)
    parser.add_argument("--seed", type=int, default=7, help="cohort seed (the demo's is 7)")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (e.g. under /tmp)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--params", default=None, help="pyradiomics parameter file for extract")
    parser.add_argument("--repeats", type=int, default=2, help="CV repeats per AUC")
    parser.add_argument("--cnn", action="store_true", help="also train the small CNN on the patches")
    parser.add_argument("--deep", action="store_true",
                        help="also train the real Deep-CT with the demo's settings (train split)")
    parser.add_argument("--skip-linear", action="store_true", help="only the CNN / Deep-CT columns")
    args = parser.parse_args(argv)
    # scikit-learn's deprecation notices about LogisticRegressionCV's arguments, once per fit.
    warnings.filterwarnings("ignore", category=FutureWarning)

    import pandas as pd
    from sklearn.feature_selection import VarianceThreshold

    from DeepRadScoreLib import ENDPOINTS
    from DeepRadScoreLib.features.extraction import read_feature_table
    from DeepRadScoreLib.synthetic.cohort import GENERATOR_VERSION, synthesise_cohort

    started = time.perf_counter()
    cohort = args.work / f"cohort-v{GENERATOR_VERSION}-s{args.seed}-n{args.cases}"
    manifest = synthesise_cohort(cohort, args.cases, args.seed, workers=args.workers)
    tag = Path(args.params).stem if args.params else "default"
    features = args.work / f"features-{cohort.name}-{tag}" / "features.csv"
    synth_s = time.perf_counter() - started
    command = [str(Path(sys.executable).parent / "deepradscore"), "extract", "--manifest", str(manifest),
               "-o", str(features), "--workers", str(args.workers)]
    if args.params:
        command += ["--params", args.params]
    if not features.exists():
        # pyradiomics' messages go to a log file, not the terminal.
        with open(args.work / "extract.log", "a") as log:
            subprocess.run(command, check=True, stdout=log, stderr=log)
    extract_s = time.perf_counter() - started - synth_s

    raw = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    ids = list(raw["case_id"])
    X, patches = read_feature_table(features, ids)
    truth = pd.read_csv(cohort / "synthetic_truth.csv", dtype={"case_id": str}).set_index("case_id").loc[ids]
    groups = {
        "tumour": [c for c in X.columns if c.startswith("tumor_")],
        "ring": [c for c in X.columns if c.startswith("peritumoral_")],
    }
    groups["radiomics"] = groups["tumour"] + groups["ring"]
    P = np.stack([patch_descriptors(p) for p in patches])
    inputs = {}
    for name in ("tumour", "ring", "radiomics"):
        values = np.nan_to_num(X[groups[name]].to_numpy(dtype=float))
        inputs[name] = VarianceThreshold().fit_transform(values)
    inputs["patch"] = P
    inputs["fused"] = np.concatenate([inputs["radiomics"], P], axis=1)

    cnn, deep = {}, {}
    label_matrix = np.stack([pd.to_numeric(raw[e], errors="coerce").to_numpy(dtype=float)
                             for e in ENDPOINTS], axis=1)
    if args.cnn:
        cnn = dict(zip(ENDPOINTS, cnn_oof_auc(np.asarray(patches), label_matrix, seed=args.seed)))
    if args.deep:
        train = (raw["split"] == "train").to_numpy() if "split" in raw else np.ones(len(raw), bool)
        deep = dict(zip(ENDPOINTS, deep_oof_auc(np.asarray(patches), label_matrix, train, seed=args.seed)))
    rows = []
    for e in ENDPOINTS:
        known = raw[e].to_numpy() != ""
        y = raw[e].to_numpy()[known].astype(int)
        row = {"endpoint": e, "n": int(known.sum()), "positives": int(y.sum())}
        if "expressed" in truth.columns:
            shown = truth["expressed"].fillna("").astype(str).to_numpy()[known]
            row["shows volume"] = int(sum(f"{e}:volume" in s for s in shown))
            row["shows slice"] = int(sum(f"{e}:" in s and "slice" in s.split(f"{e}:")[1].split(";")[0]
                                         for s in shown))
        for name in () if args.skip_linear else SOURCES:
            row[name] = round(cv_auc(inputs[name][known], y, seed=args.seed, repeats=args.repeats), 3)
        if cnn:
            row["cnn"] = round(cnn[e], 3)
        if deep:
            row["deep (train OOF)"] = round(deep[e], 3)
        rows.append(row)
        print(row, flush=True)
    result = pd.DataFrame(rows)
    print(f"\ngenerator version {GENERATOR_VERSION}, seed {args.seed}, {args.cases} cases, params {tag}; "
          f"CPU {cpu_model()}; synth {synth_s:.0f} s, extract {extract_s:.0f} s, "
          f"total {time.perf_counter() - started:.0f} s")
    print(result.to_markdown(index=False) if _has_tabulate() else result.to_string(index=False))
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
