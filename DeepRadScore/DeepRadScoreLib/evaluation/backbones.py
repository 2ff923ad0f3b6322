"""``deepradscore compare-backbones``: the paper's Table 2 for one endpoint.

Each backbone (ResNet50, ResNet101, DenseNet121, VGG19, Inception v3) is fine-tuned as a Deep-CT
network on the manifest's ``split=train`` rows with the paper's protocol: one network, 25 % of
the training cases held out for early stopping (``DeepConfig(folds=1)``). Its own softmax output
is then scored on three sets, as in Table 2: the 75 % it trained on ("training"), the 25 % that
chose its epoch ("validation") and the ``split=test`` rows ("test").

The class decision is the network's own (probability of class 1 >= 0.5, the argmax of its
softmax; the loss is class-weighted, so 0.5 is the balanced cut): nothing is tuned on any of the
three sets. AUC CIs are DeLong's, the other metrics' CIs a stratified bootstrap. All backbones
see the same cases, split and seed; only the network differs. Training and validation numbers
are optimistic by construction (the network saw those cases); only the test row compares fairly.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from DeepRadScoreLib.evaluation.delong import delong_auc_ci
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.evaluation.metrics import bootstrap_metric_cis, threshold_metrics

logger = logging.getLogger(__name__)

BACKBONES = ("resnet50", "resnet101", "densenet121", "vgg19", "inception_v3")
SETS = ("training", "validation", "test")
TABLE_METRICS = ("accuracy", "sensitivity", "specificity", "ppv", "npv")
DECISION_THRESHOLD = 0.5
COLUMNS = ["backbone", "set", "n", "n_pos", "auc", "auc_ci_low", "auc_ci_high",
           *[f"{m}{suffix}" for m in TABLE_METRICS for suffix in ("", "_ci_low", "_ci_high")],
           "weights", "best_epoch", "train_seconds"]


def set_metrics(y: np.ndarray, probability: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """One row of Table 2: AUC (DeLong CI) and the threshold metrics (bootstrap CIs)."""
    row = {"n": int(len(y)), "n_pos": int(y.sum())}
    if 0 < y.sum() < len(y):
        ci = delong_auc_ci(y, probability)
        row.update(auc=ci.auc, auc_ci_low=ci.ci_low, auc_ci_high=ci.ci_high)
    else:
        row.update(auc=np.nan, auc_ci_low=np.nan, auc_ci_high=np.nan)
    point = threshold_metrics(y, probability, DECISION_THRESHOLD)
    cis = bootstrap_metric_cis(y, probability, DECISION_THRESHOLD, n_boot=n_boot, seed=seed)
    for name in TABLE_METRICS:
        row[name] = point[name]
        row[f"{name}_ci_low"], row[f"{name}_ci_high"] = cis[name]
    return row


def _patches(cohort, rows: pd.DataFrame, features_csv, progress, cancel) -> np.ndarray:
    """Deep-ROI patches of ``rows``: from the feature table's patches file, else from the CTs."""
    case_ids = list(rows["case_id"].astype(str))
    if features_csv is not None:
        from DeepRadScoreLib.features.extraction import read_feature_table

        return read_feature_table(features_csv, case_ids)[1]
    from DeepRadScoreLib.io.images import load_case
    from DeepRadScoreLib.progress import report
    from DeepRadScoreLib.regions import deep_roi_patch

    patches = []
    for i, case in enumerate(cohort.cases(case_ids)):
        report(progress, i / len(case_ids), f"deep-ROI patch {i + 1}/{len(case_ids)}", cancel)
        loaded = load_case(case.image, case.mask, label=case.label, roi_name=case.roi_name)
        patches.append(deep_roi_patch(loaded.image, loaded.mask).hu)
    return np.stack(patches).astype(np.float32)


def compare_backbones(manifest_path, endpoint: str, output_dir, backbones=BACKBONES, epochs: int = 30,
                      device: str = "auto", features_csv=None, seed: int = 0, n_boot: int = 2000,
                      progress=None, cancel=None) -> pd.DataFrame:
    """Train each backbone on the training rows and write Table 2 (CSV + HTML) atomically."""
    from DeepRadScoreLib.deep.model import check_backbone
    from DeepRadScoreLib.deep.training import DeepConfig, assign_folds, train_deep
    from DeepRadScoreLib.io.manifest import read_manifest
    from DeepRadScoreLib.outputs import atomic_dir
    from DeepRadScoreLib.progress import report, scaled
    from DeepRadScoreLib.evaluation.report import ReportContent, ReportTable, write_report
    from DeepRadScoreLib.io.manifest import SYNTHETIC_MARKER

    manifest_path = Path(manifest_path)
    backbones = [check_backbone(b) for b in backbones]
    cohort = read_manifest(manifest_path, [endpoint])
    table = cohort.table
    if endpoint not in table.columns:
        raise InputError(f"{manifest_path}: no column {endpoint}")
    if "split" not in table.columns:
        raise InputError(f"{manifest_path}: Table 2 needs a split column with train and test rows")
    split = table["split"].astype(str).str.strip().str.lower()
    label = pd.to_numeric(table[endpoint], errors="coerce")
    train_rows = table[(split == "train") & label.notna()]
    test_rows = table[(split == "test") & label.notna()]
    if train_rows.empty or test_rows.empty:
        raise InputError(f"{manifest_path}: {endpoint} needs labelled split=train and split=test rows "
                         f"(found {len(train_rows)} and {len(test_rows)})")
    y_train = pd.to_numeric(train_rows[endpoint]).to_numpy(dtype=int)
    y_test = pd.to_numeric(test_rows[endpoint]).to_numpy(dtype=int)

    report(progress, 0.0, "deep-ROI patches", cancel)
    train_patches = _patches(cohort, train_rows, features_csv, scaled(progress, 0.0, 0.05), cancel)
    test_patches = _patches(cohort, test_rows, features_csv, scaled(progress, 0.05, 0.1), cancel)
    # The 25 % validation share exactly as train_deep draws it for folds=1 (same labels, same seed).
    validation = assign_folds(y_train[:, None].astype(float), 4, seed) == 0

    rows = []
    for b, backbone in enumerate(backbones):
        part = scaled(progress, 0.1 + 0.9 * b / len(backbones), 0.1 + 0.9 * (b + 1) / len(backbones))
        report(part, 0.0, f"{backbone}: training", cancel)
        started = time.perf_counter()
        config = DeepConfig(backbone=backbone, folds=1, epochs=epochs, device=device, seed=seed)
        ensemble = train_deep(train_patches, {endpoint: y_train.astype(float)}, config,
                              progress=scaled(part, 0.0, 0.95), cancel=cancel)
        seconds = time.perf_counter() - started
        record = ensemble.summary["endpoints"][endpoint][0]
        if record["n_val"] != int(validation.sum()):
            raise RuntimeError(f"validation split mismatch: train_deep used {record['n_val']} cases, "
                               f"expected {int(validation.sum())}")
        p_train = ensemble.probabilities(train_patches)[endpoint][0]
        p_test = ensemble.probabilities(test_patches)[endpoint][0]
        sets = {"training": (y_train[~validation], p_train[~validation]),
                "validation": (y_train[validation], p_train[validation]),
                "test": (y_test, p_test)}
        for name, (y, p) in sets.items():
            rows.append({"backbone": backbone, "set": name, **set_metrics(y, p, n_boot, seed),
                         "weights": ensemble.provenance.get("weights", "unknown"),
                         "best_epoch": record["best_epoch"], "train_seconds": round(seconds, 1)})
        report(part, 1.0, f"{backbone}: test AUC {rows[-1]['auc']:.3f}", cancel)
    result = pd.DataFrame(rows, columns=COLUMNS)

    synthetic = (manifest_path.parent / SYNTHETIC_MARKER).exists()
    with atomic_dir(output_dir) as tmp:
        result.to_csv(tmp / "table2.csv", index=False)
        write_report(ReportContent(
            title=f"Deep-CT backbones on {endpoint} (Table 2)", synthetic=synthetic,
            subtitle=f"{len(y_train)} training cases ({int(validation.sum())} of them for validation), "
                     f"{len(y_test)} test cases",
            provenance={"Manifest": str(manifest_path.resolve()), "Endpoint": endpoint,
                        "Epochs (max)": str(epochs), "Seed": str(seed),
                        "ImageNet weights": ", ".join(sorted(set(result.weights)))},
            notes=["Training and validation rows are optimistic: the network was fitted on the training "
                   "cases and its epoch chosen on the validation cases. Compare backbones on the test rows."],
            blocks=[ReportTable("Performance of each backbone's own softmax output", display_table(result),
                                "AUC with DeLong 95 % CI; accuracy, sensitivity, specificity, PPV and NPV (%) "
                                "at probability 0.5 with stratified bootstrap 95 % CIs.")]),
            tmp / "table2.html")
    report(progress, 1.0, "done", None)
    return result


def display_table(result: pd.DataFrame) -> pd.DataFrame:
    """Table 2 as in the paper: value over [CI] in one cell, percentages for the rates."""
    def cell(row, name, scale, digits):
        value, lo, hi = row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"]
        if pd.isna(value):
            return "–"
        return f"{scale * value:.{digits}f} [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"

    out = pd.DataFrame({"backbone": result.backbone, "set": result.set,
                        "n (pos)": [f"{n} ({p})" for n, p in zip(result.n, result.n_pos)]})
    out["AUC"] = [cell(r, "auc", 1, 3) for _, r in result.iterrows()]
    for name, title in zip(TABLE_METRICS, ("Accuracy %", "Sensitivity %", "Specificity %", "PPV %", "NPV %")):
        out[title] = [cell(r, name, 100, 1) for _, r in result.iterrows()]
    return out
