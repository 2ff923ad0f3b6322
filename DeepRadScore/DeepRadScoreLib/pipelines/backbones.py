"""``deepradscore compare-backbones``: train each backbone and write Table 2 for one endpoint.

The protocol, the sets and the decision rule are :mod:`DeepRadScoreLib.evaluation.backbones`';
this trains one Deep-CT network per backbone on the manifest's ``split=train`` rows
(``DeepConfig(folds=1)``: 25 % of them held out for early stopping) and scores it on its
training, validation and test cases.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.evaluation.backbones import BACKBONES, COLUMNS, display_table, set_metrics


def compare_backbones(manifest_path, endpoint: str, output_dir, backbones=BACKBONES, epochs: int = 30,
                      device: str = "auto", features_csv=None, seed: int = 0, n_boot: int = 2000,
                      progress=None, cancel=None) -> pd.DataFrame:
    """Train each backbone on the training rows and write Table 2 (CSV + HTML) atomically."""
    from DeepRadScoreLib.deep.model import check_backbone
    from DeepRadScoreLib.deep.training import DeepConfig, assign_folds, train_deep
    from DeepRadScoreLib.io.manifest import read_manifest
    from DeepRadScoreLib.outputs import atomic_dir
    from DeepRadScoreLib.pipelines.cohort import cohort_patches
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
    train_patches = cohort_patches(cohort, list(train_rows["case_id"].astype(str)), features_csv,
                                   scaled(progress, 0.0, 0.05), cancel)
    test_patches = cohort_patches(cohort, list(test_rows["case_id"].astype(str)), features_csv,
                                  scaled(progress, 0.05, 0.1), cancel)
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
