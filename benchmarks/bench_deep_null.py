"""Deep-CT on a null endpoint: is the cross-validated AUC honest? Before and after the leak fix.

    .venv/bin/python benchmarks/bench_deep_null.py [--seeds 0 1] [--code current|before|both]
        [--before 4fcdf4c] [--n-train 90] [--n-test 60] [--epochs 8] [--threads 1] [--output FILE]

The patches hold a lesion of random size, place and density; the label is drawn independently of
them, so every honest AUC is 0.5 up to chance. For each seed, Deep-CT (DenseNet121, multitask,
K = 4 cross-fitted networks, the demo's 8 epochs and patience 5) trains on ``--n-train`` cases,
then the deep model's classifier is chosen the way ``train`` chooses it (the seven candidates of
``model.classifiers``, stratified 5-fold CV x 3 repeats on the out-of-fold deep features, the
best mean AUC wins) and scored on ``--n-test`` held-out cases (deep features averaged over the K
networks, as ``model.scoring`` does). Reported per run: the networks' own AUC on their held-out
fold, the chosen classifier's CV AUC (max of seven), the mean CV AUC over the seven, the same two
with the classifier's CV folds aligned to the deep folds, and the held-out test AUC.

``--code before`` runs ``deep/training.py`` as committed at ``--before`` (4fcdf4c, the last commit
that early-stopped network f on fold f: the leak), ``current`` the working tree's (early-stopped
on an inner split of the other folds).
Synthetic data: the numbers are about the estimator, nothing clinical.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DeepRadScore"))


def null_cohort(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hu = rng.normal(-800, 60, (n, 160, 160)).astype(np.float32)
    rows, cols = np.mgrid[:160, :160]
    for i in range(n):
        cy, cx = rng.integers(50, 110, 2)
        hu[i][(rows - cy) ** 2 + (cols - cx) ** 2 < rng.uniform(8, 24) ** 2] = rng.uniform(-400, 150)
    return hu, rng.permutation(np.arange(n) % 2).astype(float)


def training_module(code: str, before: str):
    if code == "current":
        from DeepRadScoreLib.deep import training
        return training
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{before}:DeepRadScore/DeepRadScoreLib/deep/training.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "training_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("training_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["training_before"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def classifier_cv(X: np.ndarray, y: np.ndarray, splits) -> dict[str, float]:
    from DeepRadScoreLib.model.classifiers import CANDIDATES, fit_classifier, positive_probability
    from sklearn.metrics import roc_auc_score

    result = {}
    for name in CANDIDATES:
        aucs = [roc_auc_score(y[test], positive_probability(fit_classifier(name, X[train], y[train]), X[test]))
                for train, test in splits]
        result[name] = float(np.mean(aucs))
    return result


def one_run(module, seed: int, n_train: int, n_test: int, epochs: int) -> dict:
    from DeepRadScoreLib.model.classifiers import fit_classifier, positive_probability
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import RepeatedStratifiedKFold

    hu, y = null_cohort(n_train + n_test, 1000 + seed)
    y_train, y_test = y[:n_train], y[n_train:]
    config = module.DeepConfig(folds=4, epochs=epochs, mode="multitask", device="cpu", seed=seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # random weights without an ImageNet file
        ensemble = module.train_deep(hu[:n_train], {"NULL": y_train}, config)
    seconds = time.perf_counter() - started
    X = ensemble.oof_features["NULL"].astype(float)
    folds = ensemble.folds_of_case
    network = [roc_auc_score(y_train[folds == f], ensemble.oof_probabilities["NULL"][folds == f])
               for f in range(4)]
    random_splits = list(RepeatedStratifiedKFold(n_splits=5, n_repeats=3, random_state=seed).split(X, y_train))
    aligned_splits = [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(4)]
    cv = classifier_cv(X, y_train, random_splits)
    aligned = classifier_cv(X, y_train, aligned_splits)
    chosen = max(cv, key=cv.get)
    test_features = ensemble.features(hu[n_train:])["NULL"].mean(axis=0).astype(float)
    model = fit_classifier(chosen, X, y_train)
    test_auc = roc_auc_score(y_test, positive_probability(model, test_features))
    return {"seed": seed, "network_heldout_auc": float(np.mean(network)), "chosen": chosen,
            "chosen_cv_auc": cv[chosen], "mean_cv_auc": float(np.mean(list(cv.values()))),
            "aligned_chosen_cv_auc": max(aligned.values()),
            "aligned_mean_cv_auc": float(np.mean(list(aligned.values()))),
            "test_auc": float(test_auc), "train_seconds": seconds}


COLUMNS = ["network_heldout_auc", "chosen_cv_auc", "mean_cv_auc", "aligned_chosen_cv_auc",
           "aligned_mean_cv_auc", "test_auc", "train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--code", choices=("current", "before", "both"), default="both")
    parser.add_argument("--before", default="4fcdf4c", help="the commit with the leaky training")
    parser.add_argument("--n-train", type=int, default=90)
    parser.add_argument("--n-test", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    codes = ["before", "current"] if args.code == "both" else [args.code]
    lines = ["# Deep-CT on a null endpoint (`benchmarks/bench_deep_null.py`)", "",
             f"CPU: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{args.threads} thread(s); {args.n_train} training + {args.n_test} test cases, "
             f"DenseNet121 multitask, K = 4, {args.epochs} epochs; seeds {args.seeds}.", "",
             "| code | seed | " + " | ".join(COLUMNS) + " |", "| --- " * (len(COLUMNS) + 2) + "|"]
    # Seeds outside, code inside: an interrupted run still has both codes on the same seeds.
    modules = {code: training_module(code, args.before) for code in codes}
    runs = {code: [] for code in codes}
    for seed in args.seeds:
        for code in codes:
            run = one_run(modules[code], seed, args.n_train, args.n_test, args.epochs)
            runs[code].append(run)
            row = f"| {code} | {seed} | " + " | ".join(f"{run[c]:.3f}" for c in COLUMNS) + " |"
            lines.append(row)
            print(row, flush=True)
    summary = {code: {c: (np.mean([r[c] for r in rs]), np.std([r[c] for r in rs])) for c in COLUMNS}
               for code, rs in runs.items()}
    lines += ["", "Mean (SD over seeds):", ""]
    for code, values in summary.items():
        lines.append(f"- {code}: " + ", ".join(f"{c} {m:.3f} ({s:.3f})" for c, (m, s) in values.items()))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output is not None:
        from DeepRadScoreLib.outputs import atomic_file

        with atomic_file(args.output) as tmp:
            Path(tmp).write_text(text)


if __name__ == "__main__":
    main()
