"""Deep-CT training: cross-fitted networks, their early stopping, and the out-of-fold features.

Cross-fitting (K = ``config.folds`` networks, 4 by default): the training cases are split into K
folds stratified on every endpoint's labels. Network f produces the ``oof_features`` of fold f,
and fold f's labels take no part in making it: network f is fitted on the other K-1 folds and
early-stopped on an *inner* validation split of those same K-1 folds (1 of 4 stratified groups of
them, stratified per endpoint on the network's own, masked labels; the other 3 groups are fitted
on). Why inner early stopping and not fold f: choosing the epoch that does best on fold f's
labels and then calling fold f's features "out-of-fold" leaks those labels into them -- on an
endpoint independent of the image the deep model's chosen CV AUC was 0.613 against a held-out
test AUC of 0.427, and is 0.559 against 0.525 with the inner split (3 seeds, 90 training cases,
benchmarks/results/deep_null.md; what is left above 0.5 is the best-of-seven classifier choice,
which the nested CV in ``model.classifiers`` reports honestly). Why not a fixed epoch count: a count fixed in advance is
wrong for some cohorts (too few epochs underfit, too many overfit a small cohort), and choosing it
honestly would need a nested training run per fold; the inner split costs nothing extra (it
replaces the validation pass on fold f, and fitting on fewer cases makes each epoch cheaper).
The price is that each network fits on 3/4 of (K-1)/K of the cases (56 % for K = 4).

``folds == 1`` is the paper's literal protocol (one random, stratified 75/25 split, stopped on
the 25 %): the single network has seen, or was stopped on, every case, so its features are
in-sample and the summary warns that the deep and fused CV AUCs are then optimistic.

``mode="per-endpoint"`` trains one network per endpoint and fold (the paper); ``"multitask"`` one
shared backbone per fold with one head per endpoint and a loss that ignores unknown labels.

Training details (the paper gives none): AdamW (weight decay 1e-4) at ``config.lr``; cross
entropy weighted by inverse class frequency of the network's fitting cases; early stopping on
the inner validation AUC (mean over the endpoints a network serves) with ``config.patience``,
restoring the best epoch; BatchNorm running statistics recomputed each epoch as the mean over
its batches (see :func:`_train_network`); augmentation in HU before windowing (see :func:`augment_hu`); seeds
fixed for torch, numpy and Python, data order and augmentation drawn from generators seeded per
network; mixed precision (autocast + GradScaler) on CUDA only. The same seed gives the same
networks on the same machine and CPU code path only (see :mod:`DeepRadScoreLib.deep.ensemble`).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import random
import time
import warnings
from typing import Callable, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F

from DeepRadScoreLib.deep.ensemble import (FINE_TUNE_LR, MODES, SCRATCH_LR, DeepConfig, DeepEnsemble, Member,
                                           forward_batches, hu_to_input, patches_tensor, resolve_device,
                                           resolve_precision)
from DeepRadScoreLib.deep.model import BACKBONES, DeepCT, load_backbone_weights
from DeepRadScoreLib.errors import Cancelled, InputError
from DeepRadScoreLib.progress import CancelCheck, ProgressCallback, report, scaled

logger = logging.getLogger(__name__)

WEIGHT_DECAY = 1e-4
# A network's early-stopping set is 1 of INNER_GROUPS stratified groups of its own training
# cases: 25 %, the paper's validation share.
INNER_GROUPS = 4
# Augmentation ranges (drawn uniformly per case and batch).
MAX_ROTATION_DEG = 15.0
MAX_SHIFT_PX = 8.0
HU_SCALE = 0.03        # multiply HU by 1 +- 3 %
HU_OFFSET = 20.0       # add +- 20 HU
HU_NOISE_SD = 10.0     # Gaussian noise, HU


# ---------------------------------------------------------------------------------------------
# Augmentation and loss


def augment_hu(hu: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random rotation (+-15 deg), left-right flip, shift (+-8 px), HU scale/offset and noise.

    Applied to HU before windowing so the intensity jitter acts like scanner variation rather
    than on the normalised channels; pixels moved in from outside the patch are air (-1000 HU).
    Random numbers come from ``generator`` (CPU) so a seed fixes them on any device.
    """
    b, h, w = hu.shape
    u = torch.rand(b, 6, generator=generator)
    angle = (u[:, 0] * 2 - 1) * math.radians(MAX_ROTATION_DEG)
    flip = torch.where(u[:, 1] < 0.5, -1.0, 1.0)
    shift_x = (u[:, 2] * 2 - 1) * MAX_SHIFT_PX * 2.0 / w
    shift_y = (u[:, 3] * 2 - 1) * MAX_SHIFT_PX * 2.0 / h
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * flip, -sin, shift_x], 1),
                         torch.stack([sin * flip, cos, shift_y], 1)], 1).to(hu.device, hu.dtype)
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
    moved = F.grid_sample((hu + 1000.0).unsqueeze(1), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False).squeeze(1) - 1000.0
    scale = (1.0 + (u[:, 4] * 2 - 1) * HU_SCALE).to(hu.device, hu.dtype).view(b, 1, 1)
    offset = ((u[:, 5] * 2 - 1) * HU_OFFSET).to(hu.device, hu.dtype).view(b, 1, 1)
    noise = torch.randn(b, h, w, generator=generator).to(hu.device, hu.dtype) * HU_NOISE_SD
    return moved * scale + offset + noise


def masked_multitask_loss(logits: torch.Tensor, labels: torch.Tensor,
                          class_weights: torch.Tensor) -> Optional[torch.Tensor]:
    """Class-weighted cross entropy over the known labels only, averaged over endpoints.

    ``logits`` (B, E, 2), ``labels`` (B, E) float with NaN = unknown, ``class_weights`` (E, 2).
    Each endpoint's term is the weighted mean over its known labels in the batch; the loss is the
    mean of those terms over endpoints with at least one known label, so a rare endpoint is not
    drowned by common ones. Unknown labels take no part (zero gradient). None if the batch has no
    known label at all.
    """
    known = ~torch.isnan(labels)
    terms = []
    for e in range(labels.shape[1]):
        rows = known[:, e]
        if rows.any():
            terms.append(F.cross_entropy(logits[rows, e].float(), labels[rows, e].long(),
                                         weight=class_weights[e]))
    return torch.stack(terms).mean() if terms else None


def _class_weights(labels: np.ndarray) -> np.ndarray:
    """Inverse class frequency per endpoint, (E, 2); n / (2 n_c) like scikit-learn's 'balanced'."""
    weights = np.ones((labels.shape[1], 2), dtype=np.float32)
    for e in range(labels.shape[1]):
        y = labels[:, e][~np.isnan(labels[:, e])]
        for c in (0, 1):
            n_c = int((y == c).sum())
            weights[e, c] = len(y) / (2.0 * n_c) if n_c else 1.0
    return weights


def _auc(y: np.ndarray, score: np.ndarray) -> Optional[float]:
    from sklearn.metrics import roc_auc_score
    known = ~np.isnan(y)
    y, score = y[known], score[known]
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, score))


# ---------------------------------------------------------------------------------------------
# Folds


def assign_folds(labels: np.ndarray, n_groups: int, seed: int) -> np.ndarray:
    """Split cases into ``n_groups`` folds, stratified on every endpoint at once.

    Greedy iterative stratification: endpoints are taken from the rarest class up; each case that
    has that class and no fold yet goes to the fold that still lacks most of it (ties: the smaller
    fold, then at random), so every fold gets its share of every endpoint's positives and
    negatives; cases with no label are spread last to even the fold sizes.
    """
    n, n_endpoints = labels.shape
    rng = np.random.default_rng(seed)
    folds = np.full(n, -1, dtype=int)
    sizes = np.zeros(n_groups, dtype=int)
    classes = []
    for e in range(n_endpoints):
        for c in (1.0, 0.0):
            members = np.flatnonzero(labels[:, e] == c)
            if len(members):
                classes.append((len(members), e, c, members))
    classes.sort(key=lambda item: item[0])
    for total, e, c, members in classes:
        counts = np.array([(labels[folds == f, e] == c).sum() for f in range(n_groups)], dtype=float)
        for i in rng.permutation(members):
            if folds[i] >= 0:
                continue
            deficit = total / n_groups - counts
            candidates = np.flatnonzero(deficit == deficit.max())
            candidates = candidates[sizes[candidates] == sizes[candidates].min()]
            f = int(rng.choice(candidates))
            folds[i] = f
            counts[f] += 1
            sizes[f] += 1
    for i in rng.permutation(np.flatnonzero(folds < 0)):
        candidates = np.flatnonzero(sizes == sizes.min())
        f = int(rng.choice(candidates))
        folds[i] = f
        sizes[f] += 1
    return folds


def _splits(labels: np.ndarray, folds: int, seed: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """(fold of each case, [(fitting indices, early-stopping indices)] per network).

    For ``folds >= 2`` both index sets of network f lie outside fold f: the early-stopping set is
    an inner, stratified split of the other folds, so fold f's labels never reach network f.
    """
    if folds == 1:
        groups = assign_folds(labels, INNER_GROUPS, seed)
        validation = np.flatnonzero(groups == 0)
        return np.zeros(len(labels), dtype=int), [(np.flatnonzero(groups != 0), validation)]
    groups = assign_folds(labels, folds, seed)
    splits = []
    for f in range(folds):
        outside = np.flatnonzero(groups != f)
        # A seed of its own per fold, so the inner splits of different networks are independent.
        inner = assign_folds(labels[outside], INNER_GROUPS, seed + 1_000_003 * (f + 1))
        splits.append((outside[inner != 0], outside[inner == 0]))
    return groups, splits


def _check_labels(labels: np.ndarray, endpoints: list[str], folds: int) -> None:
    need = max(folds, 2)
    for e, name in enumerate(endpoints):
        y = labels[:, e]
        pos, neg = int((y == 1).sum()), int((y == 0).sum())
        if pos + neg + int(np.isnan(y).sum()) != len(y):
            raise InputError(f"endpoint {name}: deep labels must be 0, 1 or blank")
        if pos < need or neg < need:
            raise InputError(f"endpoint {name}: {pos} positive and {neg} negative labelled cases; "
                             f"Deep-CT with {folds} fold(s) needs at least {need} of each")



# ---------------------------------------------------------------------------------------------
# Training


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _train_network(model: DeepCT, hu: torch.Tensor, labels: np.ndarray, train_idx: np.ndarray,
                   val_idx: np.ndarray, config: DeepConfig, device: torch.device, seed: int,
                   progress, cancel, label: str) -> dict:
    """Train ``model`` in place on ``train_idx``, early-stopped on ``val_idx``; returns its record.

    ``labels`` (N, E) holds the model's endpoints' labels (NaN = unknown). ``val_idx`` is the
    network's early-stopping set; it must hold no case whose out-of-fold output the network will
    give (see :func:`_splits`). The best epoch's weights are restored before returning.
    """
    _seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    precision = resolve_precision(config.precision, device)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    # fp16 needs its gradients scaled against underflow; bf16 has float32's range.
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    # Convolutions on a CPU are fastest with channels-last tensors (oneDNN's kernels): one
    # DenseNet121 step (batch 16) took 0.86x the contiguous time in float32 and 0.45x with bf16
    # autocast on an AMD EPYC with AVX-512 BF16 (benchmarks/bench_layout.py, results/layout.md).
    layout = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    model.to(device)
    model.to(memory_format=layout)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=WEIGHT_DECAY)
    weights = torch.from_numpy(_class_weights(labels[train_idx])).to(device)
    y_all = torch.from_numpy(labels.astype(np.float32))
    best = {"criterion": -math.inf, "epoch": 0, "state": None, "aucs": None}
    started = time.perf_counter()
    epochs_run = 0
    for epoch in range(config.epochs):
        model.train()
        # BatchNorm's running statistics become the plain mean over this epoch's batches (momentum
        # None), not an exponential average with momentum 0.1: a network here takes tens of steps,
        # not thousands, and with 0.1 the eval-mode statistics still carried much of their start
        # (a random-weight backbone's 0 and 1). On a planted disc that training separated, such
        # networks gave held-out AUCs from 0.2 to 1.0 depending on the seed; with the epoch's
        # mean, 1.0 for every seed tried. It costs nothing (no extra pass over the data).
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        order = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
        batches = [order[s:s + config.batch_size] for s in range(0, len(order), config.batch_size)]
        if len(batches) > 1 and len(batches[-1]) == 1:
            batches.pop()  # a one-case batch gives BatchNorm a meaningless batch statistic
        for batch in batches:
            if cancel is not None and cancel():
                raise Cancelled("Deep-CT training cancelled")
            x = hu[batch]
            if config.augment:
                x = augment_hu(x, generator)
            x = hu_to_input(x.to(device)).contiguous(memory_format=layout)
            y = y_all[batch].to(device)
            with torch.autocast(device_type=device.type, dtype=autocast_dtype or torch.float32,
                                enabled=autocast_dtype is not None):
                _, logits = model(x)
            loss = masked_multitask_loss(logits.float(), y, weights)
            if loss is None:
                continue
            optimiser.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimiser)
                scaler.update()
            else:
                loss.backward()
                optimiser.step()
        epochs_run = epoch + 1
        # Early stopping reads the validation AUC in the training precision and layout (a rank
        # statistic of 21-ish cases); the features a network gives out are float32 (forward_batches).
        _, probs = forward_batches(model, hu[val_idx], device, autocast_dtype=autocast_dtype,
                                   memory_format=layout)
        aucs = [_auc(labels[val_idx, e], probs[:, e]) for e in range(labels.shape[1])]
        defined = [a for a in aucs if a is not None]
        if defined:
            criterion = float(np.mean(defined))
        else:  # an early-stopping set without both classes: fall back to its loss
            with torch.no_grad():
                _, logits = model(hu_to_input(hu[val_idx].to(device)))
                val_loss = masked_multitask_loss(logits, y_all[val_idx].to(device), weights)
            criterion = -float(val_loss) if val_loss is not None else -math.inf
        if criterion > best["criterion"] or best["state"] is None:
            best = {"criterion": criterion, "epoch": epoch + 1, "aucs": aucs,
                    "state": {n: t.detach().to("cpu", copy=True).contiguous() for n, t in model.state_dict().items()}}
        shown = f"{criterion:.3f}" if defined else "n/a"
        report(progress, epochs_run / config.epochs,
               f"Deep-CT {label}: epoch {epoch + 1}/{config.epochs}, validation AUC {shown}", cancel)
        if epoch + 1 - best["epoch"] >= config.patience:
            break
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.to(memory_format=torch.contiguous_format)  # what the saved weights and the export expect
    model.load_state_dict(best["state"])
    model.eval()
    return {"best_epoch": best["epoch"], "epochs_run": epochs_run, "val_aucs": best["aucs"],
            "seconds": time.perf_counter() - started}


def train_deep(patches_hu, labels: Mapping[str, np.ndarray], config: Optional[DeepConfig] = None,
               progress: Optional[ProgressCallback] = None, cancel: Optional[CancelCheck] = None,
               network: Optional[Callable[[list[str]], torch.nn.Module]] = None) -> DeepEnsemble:
    """Train the cross-fitted Deep-CT networks and compute every training case's out-of-fold output.

    Parameters:
        patches_hu: (N, 160, 160) deep-ROI patches in HU (``regions.deep_roi_patch``).
        labels: ``{endpoint: (N,) array of 0, 1 or NaN (unknown)}``; the endpoints' order is kept.
        config: the settings (:class:`DeepConfig`; default ``DeepConfig()``), checked here.
        progress: ``progress(fraction, message)``, called per epoch of every network.
        cancel: polled before every batch; when it returns true training stops.
        network: builds the untrained network for a list of endpoints. Default: a
            :class:`DeepCT` of ``config.backbone`` with ``k`` features per head and the
            backbone's ImageNet weights when available. Another builder must follow DeepCT's
            ``forward`` contract (``(features (B, E, k), logits (B, E, 2))``); its ensemble can
            be used in memory but not saved as a bundle (``from_saved`` rebuilds DeepCT).

    Returns:
        A :class:`DeepEnsemble` with K (per-endpoint: K x E) networks, ``oof_features``
        ``{endpoint: (N, k)}`` and ``oof_probabilities`` ``{endpoint: (N,)}`` (case i from the
        network of its fold, which neither fitted on nor stopped on case i when K >= 2),
        ``folds_of_case`` and ``summary`` (per network: fitting / early-stopping / held-out case
        counts, best epoch, early-stopping AUC ``val_auc``, held-out AUC ``heldout_auc``).

    Raises:
        InputError: bad shapes, NaN patches, bad settings, or an endpoint without enough labels
            of each class (the caller skips such endpoints first).
        Cancelled: when ``cancel()`` turns true.
    """
    config = (config or DeepConfig()).check()
    device = resolve_device(config.device)
    hu = patches_tensor(patches_hu)
    endpoints = list(labels)
    if not endpoints:
        raise InputError("Deep-CT needs at least one endpoint")
    label_matrix = np.stack([np.asarray(labels[e], dtype=np.float64).reshape(-1) for e in endpoints], 1)
    if label_matrix.shape[0] != len(hu):
        raise InputError(f"{len(hu)} deep-ROI patches but {label_matrix.shape[0]} labels per endpoint")
    _check_labels(label_matrix, endpoints, config.folds)

    folds_of_case, splits = _splits(label_matrix, config.folds, config.seed)
    groups = [endpoints] if config.mode == "multitask" else [[e] for e in endpoints]
    total = len(groups) * len(splits)
    report(progress, 0.0, f"Deep-CT: {total} network(s), {config.backbone}, {device.type}", cancel)
    templates, provenance = _templates(groups, config, network, progress)
    if config.lr is None:  # fine-tune ImageNet weights gently; train random ones at a higher rate
        random_start = provenance.get("weights") in ("random", "custom")
        config = dataclasses.replace(config, lr=SCRATCH_LR if random_start else FINE_TUNE_LR)

    saved_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    members, records = [], []
    started = time.perf_counter()
    try:
        for g, (group, template) in enumerate(zip(groups, templates)):
            columns = [endpoints.index(e) for e in group]
            group_labels = label_matrix[:, columns]
            labelled = ~np.isnan(group_labels).all(axis=1)
            for fold, (train_idx, val_idx) in enumerate(splits):
                train_i, val_i = train_idx[labelled[train_idx]], val_idx[labelled[val_idx]]
                model = copy.deepcopy(template)
                n = g * len(splits) + fold
                name = (f"fold {fold + 1}/{len(splits)}" +
                        ("" if config.mode == "multitask" else f", {group[0]}"))
                record = _train_network(model, hu, group_labels, train_i, val_i, config, device,
                                        seed=config.seed + 1000 * fold + g, label=name,
                                        progress=scaled(progress, n / total, (n + 1) / total),
                                        cancel=cancel)
                members.append(Member(fold, list(group), model))
                records.append((group, fold, train_i, val_i, record, group_labels))
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved_cudnn

    ensemble = DeepEnsemble(config, endpoints, members, provenance, {}, {}, folds_of_case, device)
    ensemble.oof_features, ensemble.oof_probabilities = _out_of_fold(ensemble, hu)
    ensemble.summary = _summary(config, device, endpoints, records, provenance, label_matrix,
                                folds_of_case, ensemble.oof_probabilities,
                                time.perf_counter() - started)
    logger.info("Deep-CT: %d network(s) trained in %.1f s", len(members), time.perf_counter() - started)
    report(progress, 1.0, "Deep-CT: done", None)
    return ensemble


def _templates(groups: list[list[str]], config: DeepConfig, network, progress) -> tuple[list, dict]:
    """The initial network of each endpoint group, and the backbone weights' provenance.

    Every network of a group starts from its template (same seed): only its data differ.
    """
    templates, provenance = [], None
    for group in groups:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            template = (DeepCT(config.backbone, group, config.k) if network is None
                        else network(list(group)))
        if network is not None:
            provenance = {"weights": "custom", "source": "a network built by the caller",
                          "backbone": type(template).__name__}
        elif provenance is None:
            provenance = load_backbone_weights(template, config.pretrained, progress)
            backbone_state = copy.deepcopy(template.backbone.state_dict())
        else:
            template.backbone.load_state_dict(backbone_state)
        templates.append(template)
    return templates, provenance


def _out_of_fold(ensemble: DeepEnsemble, hu: torch.Tensor) -> tuple[dict, dict]:
    """Each case's features and class-1 probability from the network of its own fold only.

    One pass of each network over its own fold's cases (not over all N), a K-fold saving over
    running the whole ensemble; eval-mode outputs do not depend on the batch's other cases.
    """
    n, k = len(hu), ensemble.config.k
    features = {e: np.zeros((n, k), dtype=np.float32) for e in ensemble.endpoints}
    probabilities = {e: np.zeros(n, dtype=np.float32) for e in ensemble.endpoints}
    for member in ensemble.members:
        cases = np.flatnonzero(ensemble.folds_of_case == member.fold)
        f, p = forward_batches(member.model, hu[cases], ensemble.device)
        for j, endpoint in enumerate(member.endpoints):
            features[endpoint][cases] = f[:, j]
            probabilities[endpoint][cases] = p[:, j]
    return features, probabilities


def _summary(config, device, endpoints, records, provenance, label_matrix, folds_of_case,
             oof_probabilities, seconds) -> dict:
    warnings_list = []
    if config.folds == 1:
        warnings_list.append(
            "folds=1 (the paper's single 75/25 split): the deep features of the 75 % training "
            "cases are in-sample, so the cross-validated AUCs of the deep and fused models are "
            "optimistic; use folds >= 2 for honest CV AUCs")
    per_endpoint = {e: [] for e in endpoints}
    for group, fold, train_i, val_i, record, group_labels in records:
        for j, e in enumerate(group):
            y_train, y_val = group_labels[train_i, j], group_labels[val_i, j]
            y_all = label_matrix[:, endpoints.index(e)]
            # Fold f's cases are held out of network f only when there are K >= 2 folds.
            held = (folds_of_case == fold) if config.folds > 1 else np.zeros(len(y_all), bool)
            y_held = y_all[held]
            heldout_auc = _auc(y_held, oof_probabilities[e][held]) if held.any() else None
            per_endpoint[e].append({
                "fold": fold, "best_epoch": record["best_epoch"], "epochs_run": record["epochs_run"],
                "val_auc": record["val_aucs"][j] if record["val_aucs"] else None,
                "heldout_auc": heldout_auc,
                "seconds": round(record["seconds"], 3),
                "n_train": int((~np.isnan(y_train)).sum()), "n_train_pos": int((y_train == 1).sum()),
                "n_val": int((~np.isnan(y_val)).sum()), "n_val_pos": int((y_val == 1).sum()),
                "n_heldout": int((~np.isnan(y_held)).sum()), "n_heldout_pos": int((y_held == 1).sum()),
            })
    mean_auc, oof_auc = {}, {}
    for e, rows in per_endpoint.items():
        values = [r["val_auc"] for r in rows if r["val_auc"] is not None]
        mean_auc[e] = float(np.mean(values)) if values else None
        oof_auc[e] = (_auc(label_matrix[:, endpoints.index(e)], oof_probabilities[e])
                      if config.folds > 1 else None)
    for message in warnings_list:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    if provenance.get("weights") == "random":  # load_backbone_weights has already warned
        warnings_list.append("Deep-CT backbone started from random weights (no ImageNet weights found)")
    return {"backbone": config.backbone, "mode": config.mode, "folds": config.folds,
            "device": device.type, "precision": resolve_precision(config.precision, device),
            "mixed_precision": resolve_precision(config.precision, device) != "fp32",
            "early_stopping": "inner split of the other folds" if config.folds > 1 else "the 25 % split",
            "seconds": round(seconds, 3), "warnings": warnings_list,
            "val_auc_mean": mean_auc, "oof_auc": oof_auc, "endpoints": per_endpoint}


# DeepConfig, DeepEnsemble, hu_to_input and resolve_device live in deep.ensemble (prediction
# needs them without this module); they stay importable from here for training callers.
__all__ = ["BACKBONES", "DeepConfig", "DeepEnsemble", "INNER_GROUPS", "MODES", "train_deep",
           "assign_folds", "masked_multitask_loss", "augment_hu", "hu_to_input", "resolve_device"]
