"""Cohort-level labels of the synthetic cohort: prevalences, exclusive drivers, blanks, the split.

Prevalences are exact quotas (not coin flips), so a small cohort still has its positives; the
train/test split is iterative stratification on every reported positive and on the cohort.
Everything here depends on ``(seed, n_cases)`` only, never on the images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from DeepRadScoreLib import ENDPOINTS


# Target prevalences: the training column of the paper's Table 1 (LVI 32 %, TP53 23 %, PD-L1
# 50 %), with the rare ones raised (paper: KRAS 10 %, ALK 4.2 %, PIK3CA 11 %, ROS1 7 %) and PI,
# T4 and EGFR brought nearer to 30-50 % (paper: 63 %, 24.5 %, 38.5 %): a 160-case demo then has
# 7-8 test positives of each rare endpoint instead of 3-5, whose AUCs moved by 0.1 with one case.
PREVALENCE = {"LVI": 0.32, "PI": 0.5, "T4": 0.3, "EGFR": 0.3, "KRAS": 0.16, "ALK": 0.15,
              "TP53": 0.23, "PIK3CA": 0.2, "ROS1": 0.15, "PDL1": 0.50}
# Driver mutations are mutually exclusive in lung adenocarcinoma; the synthetic cohort keeps that.
DRIVERS = ("EGFR", "KRAS", "ALK", "ROS1")
# "Cohort II" (27.2 % of the paper's patients) has no PD-L1 status, as in the paper.
COHORT_II_FRACTION = 0.272
# Unknown molecular results elsewhere, a few per hundred as in real registries.
RANDOM_BLANK = {"EGFR": 0.04, "KRAS": 0.04, "ALK": 0.04, "TP53": 0.05, "PIK3CA": 0.05, "ROS1": 0.05}
TRAIN_FRACTION = 0.7


@dataclass
class CohortLabels:
    """Planted labels of a cohort: ``truth`` has no blanks, ``known`` says which are reported."""

    truth: dict[str, np.ndarray]
    known: dict[str, np.ndarray]
    cohort: np.ndarray
    split: np.ndarray

    def manifest_value(self, endpoint: str, index: int) -> str:
        return str(int(self.truth[endpoint][index])) if self.known[endpoint][index] else ""


def _quota(p: float, n: int) -> int:
    """Positives for prevalence ``p``: exact, and at least one (and one negative) from 4 cases."""
    k = int(round(p * n))
    return min(max(k, 1), n - 1) if n >= 4 else k


def assign_labels(n_cases: int, seed: int) -> CohortLabels:
    """Labels, blanks, cohorts and the train/test split of a cohort of ``n_cases``.

    Prevalences are exact quotas (not coin flips) so a small cohort still has its positives.

    :param n_cases: cohort size (any, though the split needs a few cases to mean anything).
    :param seed: the cohort's seed; the result depends on ``(seed, n_cases)`` only.
    :returns: :class:`CohortLabels` with ``truth`` (every planted 0/1 label), ``known`` (which
        are reported in the manifest), ``cohort`` ("I"/"II") and ``split`` ("train"/"test").
    """
    rng = np.random.default_rng([seed, 0x1AB])
    n = n_cases
    truth = {e: np.zeros(n, dtype=np.int8) for e in ENDPOINTS}
    order = rng.permutation(n)
    start = 0
    for e in DRIVERS:
        k = _quota(PREVALENCE[e], n)
        truth[e][order[start:start + k]] = 1
        start += k
    cohort = np.array(["I"] * n, dtype=object)
    cohort[rng.permutation(n)[:int(round(COHORT_II_FRACTION * n))]] = "II"
    for e in ENDPOINTS:
        if e not in DRIVERS and e != "PDL1":
            truth[e][rng.permutation(n)[:_quota(PREVALENCE[e], n)]] = 1
    # PD-L1 is planted in both cohorts (the images carry it) but reported for cohort I only, so
    # its quota is met within each cohort.
    for name in ("I", "II"):
        members = np.flatnonzero(cohort == name)
        truth["PDL1"][rng.permutation(members)[:_quota(PREVALENCE["PDL1"], len(members))]] = 1
    known = {e: np.ones(n, dtype=bool) for e in ENDPOINTS}
    known["PDL1"] = cohort == "I"
    for e in ENDPOINTS:
        blanks = rng.permutation(n)[:int(RANDOM_BLANK.get(e, 0.0) * n)]
        known[e][blanks] = False
    # Stratify on every reported positive and on the cohort (so PD-L1 blanks split 7:3 too).
    columns = [known[e] & (truth[e] == 1) for e in ENDPOINTS] + [cohort == "II"]
    split = stratified_split(np.stack(columns, axis=1), TRAIN_FRACTION, rng)
    return CohortLabels(truth=truth, known=known, cohort=cohort, split=split)


def stratified_split(y: np.ndarray, train_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Iterative stratification (Sechidis, Tsoumakas & Vlahavas, ECML 2011) into train/test.

    ``y`` is (n, labels) boolean. The rarest label with cases left is handled first; each of its
    cases goes to the subset that still wants most of that label (ties: the subset that wants
    most cases, then at random). Cases with no positive label fill the subsets' remaining demand.

    :param y: (n, labels) boolean: what to stratify on.
    :param train_fraction: the train share (0.7).
    :param rng: the cohort's label stream (ties and the polishing swaps draw from it).
    :returns: (n,) object array of "train" / "test".
    """
    n = len(y)
    fractions = np.array([train_fraction, 1.0 - train_fraction])
    want_cases = fractions * n
    want_label = fractions[:, None] * y.sum(axis=0)[None, :].astype(float)
    subset = np.full(n, -1)
    left = np.ones(n, dtype=bool)
    while left.any():
        counts = y[left].sum(axis=0)
        labelled = counts > 0
        if labelled.any():
            fewest = np.flatnonzero(labelled & (counts == counts[labelled].min()))
            label = int(rng.choice(fewest))
            cases = np.flatnonzero(left & y[:, label])
        else:
            label = None
            cases = np.flatnonzero(left)
        for case in rng.permutation(cases):
            if label is not None:
                best = np.flatnonzero(want_label[:, label] == want_label[:, label].max())
            else:
                best = np.arange(2)
            if len(best) > 1:
                best = best[want_cases[best] == want_cases[best].max()]
            chosen = int(rng.choice(best))
            subset[case] = chosen
            left[case] = False
            want_cases[chosen] -= 1
            want_label[chosen] -= y[case]
    _balance_by_swaps(y, subset, train_fraction, rng)
    return np.where(subset == 0, "train", "test").astype(object)


def _balance_by_swaps(y: np.ndarray, subset: np.ndarray, train_fraction: float,
                      rng: np.random.Generator) -> None:
    """Polish a split in place: swap a train and a test case while that brings every label's
    train count closer to ``train_fraction`` of its positives (sum of squared deviations).

    The greedy pass above cannot always honour ten overlapping labels at once; swaps keep the
    subset sizes. Cases with the same label pattern are interchangeable, so the search runs over
    patterns, which keeps it small for any cohort size.
    """
    # A column of ones makes the train size one more count to match; moving a single case
    # (an empty pattern on the other side) can fix it, swapping keeps it.
    y = np.concatenate([y.astype(int), np.ones((len(y), 1), dtype=int)], axis=1)
    target = train_fraction * y.sum(axis=0)
    empty = np.zeros((1, y.shape[1]), dtype=int)
    for _ in range(10 * len(y)):
        deviation = y[subset == 0].sum(axis=0) - target
        leaving = np.concatenate([empty, np.unique(y[subset == 0], axis=0)])
        joining = np.concatenate([empty, np.unique(y[subset == 1], axis=0)])
        change = joining[None, :, :] - leaving[:, None, :]
        objective = ((deviation + change) ** 2).sum(axis=2)
        a, b = np.unravel_index(np.argmin(objective), objective.shape)
        if objective[a, b] >= (deviation ** 2).sum() - 1e-9:
            return
        if a > 0:
            subset[rng.choice(np.flatnonzero((subset == 0) & (y == leaving[a]).all(axis=1)))] = 1
        if b > 0:
            subset[rng.choice(np.flatnonzero((subset == 1) & (y == joining[b]).all(axis=1)))] = 0

