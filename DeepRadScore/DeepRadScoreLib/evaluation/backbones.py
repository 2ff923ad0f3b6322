"""The paper's Table 2 for one endpoint: its rows' metrics and its display
(``deepradscore compare-backbones`` is :mod:`DeepRadScoreLib.pipelines.backbones`).

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

import numpy as np
import pandas as pd

from DeepRadScoreLib.evaluation.delong import delong_auc_ci
from DeepRadScoreLib.evaluation.metrics import bootstrap_metric_cis, threshold_metrics


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
