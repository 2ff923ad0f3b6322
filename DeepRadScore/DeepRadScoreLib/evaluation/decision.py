"""Decision curve analysis (Vickers & Elkin, Med Decis Making 2006).

At a threshold probability ``pt`` a clinician treats a case when its predicted probability is at
least ``pt``; choosing ``pt`` says how many false positives one true positive is worth
(``pt / (1 - pt)``). The net benefit of that rule on ``n`` cases is

    NB(pt) = TP / n - FP / n * pt / (1 - pt),

in units of true positives per case. The two reference strategies: *treat none* (NB = 0) and
*treat all* (``prevalence - (1 - prevalence) pt / (1 - pt)``). A model is clinically useful at
the thresholds where its curve lies above both.
"""
from __future__ import annotations


import numpy as np


THRESHOLDS = np.round(np.arange(1, 100) / 100, 2)  # 0.01 ... 0.99
CURVE_COLUMNS = ["endpoint", "model", "threshold", "net_benefit", "net_benefit_treat_all",
                 "net_benefit_treat_none"]


def net_benefit(y, p, thresholds=THRESHOLDS) -> np.ndarray:
    """Net benefit of "treat when p >= pt" at each threshold (vectorised over thresholds)."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=float)
    t = np.asarray(thresholds, dtype=float)
    if not y.size:
        return np.full(t.shape, np.nan)
    called = p[None, :] >= t[:, None]
    tp = (called & y[None, :]).sum(axis=1)
    fp = (called & ~y[None, :]).sum(axis=1)
    return tp / y.size - fp / y.size * t / (1 - t)


def net_benefit_treat_all(y, thresholds=THRESHOLDS) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    t = np.asarray(thresholds, dtype=float)
    if not y.size:
        return np.full(t.shape, np.nan)
    prevalence = y.mean()
    return prevalence - (1 - prevalence) * t / (1 - t)


def useful_range(y, p, thresholds=THRESHOLDS) -> tuple[float, float] | None:
    """The smallest and largest threshold at which the model beats both treat-all and treat-none
    (``None`` if it never does); the thresholds in between need not all be useful."""
    t = np.asarray(thresholds, dtype=float)
    model = net_benefit(y, p, t)
    better = (model > np.maximum(net_benefit_treat_all(y, t), 0.0) + 1e-12)
    if not better.any():
        return None
    return float(t[better].min()), float(t[better].max())
