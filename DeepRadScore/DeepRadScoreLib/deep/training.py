"""Deep-CT training with cross-fitting, and the trained ensemble that later cases run through.

Cross-fitting (K = ``config.folds`` networks, 4 by default): the training cases are split into K
folds stratified on every endpoint's labels; network f trains on the other K-1 folds and is
early-stopped on fold f, which is 25 % of the cases for K = 4 -- the paper's validation share.
Each case's ``oof_features`` come from the one network that never saw it, so classifiers fitted on
them can be cross-validated honestly. ``folds == 1`` is the paper's literal protocol (one random,
stratified 75/25 split): the single network has seen 75 % of the cases, so their features are
in-sample and the summary warns that the deep and fused CV AUCs are then optimistic.

``mode="per-endpoint"`` trains one network per endpoint and fold (the paper); ``"multitask"`` one
shared backbone per fold with one head per endpoint and a loss that ignores unknown labels.

Training details (the paper gives none): AdamW (weight decay 1e-4) at ``config.lr``; cross
entropy weighted by inverse class frequency of the network's training cases; early stopping on
validation AUC (mean over the endpoints a network serves) with ``config.patience``, restoring the
best epoch; augmentation in HU before windowing (see :func:`augment_hu`); seeds fixed for torch,
numpy and Python, data order and augmentation drawn from generators seeded per network so a run
is reproducible on CPU; mixed precision (autocast + GradScaler) on CUDA only.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import random
import time
import warnings
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F

from DeepRadScoreLib.deep.model import BACKBONES, DeepCT, check_backbone, load_backbone_weights
from DeepRadScoreLib.errors import Cancelled, InputError
from DeepRadScoreLib.progress import CancelCheck, ProgressCallback, report, scaled
from DeepRadScoreLib.regions import IMAGENET_MEAN, IMAGENET_STD, PATCH_SIZE, WINDOWS

FORMAT_VERSION = 1
MODES = ("per-endpoint", "multitask")
INFERENCE_BATCH = 32
WEIGHT_DECAY = 1e-4
# Augmentation ranges (drawn uniformly per case and batch).
MAX_ROTATION_DEG = 15.0
MAX_SHIFT_PX = 8.0
HU_SCALE = 0.03        # multiply HU by 1 +- 3 %
HU_OFFSET = 20.0       # add +- 20 HU
HU_NOISE_SD = 10.0     # Gaussian noise, HU


@dataclass
class DeepConfig:
    """Deep-CT settings. ``mode`` defaults to multitask: the paper's per-endpoint networks (ten
    per fold) take ~10x the training time and ~4 s of CPU inference per case for ten endpoints
    and K = 4 (benchmarks/results/deep.md), over the 1 s budget."""

    backbone: str = "densenet121"
    mode: str = "multitask"
    folds: int = 4
    k: int = 10
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-4
    patience: int = 5
    device: str = "auto"
    seed: int = 0
    pretrained: Optional[str] = None
    augment: bool = True

    def check(self) -> "DeepConfig":
        check_backbone(self.backbone)
        if self.mode not in MODES:
            raise InputError(f"unknown deep mode '{self.mode}': choose per-endpoint or multitask")
        for name, minimum in (("folds", 1), ("k", 1), ("epochs", 1), ("batch_size", 2), ("patience", 1)):
            if int(getattr(self, name)) < minimum:
                raise InputError(f"deep {name} must be at least {minimum}, got {getattr(self, name)}")
        if not self.lr > 0:
            raise InputError(f"deep learning rate must be positive, got {self.lr}")
        resolve_device(self.device)
        return self


def resolve_device(name: str) -> torch.device:
    """``auto`` = CUDA when available, else CPU; asking for CUDA without one is an input error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device '{name}' asked for, but torch sees no CUDA GPU here")
        return torch.device(name)
    raise InputError(f"unknown device '{name}': choose auto, cpu or cuda")


# ---------------------------------------------------------------------------------------------
# Input, augmentation and loss


def hu_to_input(hu: torch.Tensor) -> torch.Tensor:
    """``regions.network_input`` in torch: HU ``(B, H, W)`` -> ``(B, 3, H, W)`` on hu's device."""
    channels = []
    for c, (_, centre, width) in enumerate(WINDOWS):
        windowed = ((hu - (centre - width / 2.0)) / width).clamp(0.0, 1.0)
        channels.append((windowed - float(IMAGENET_MEAN[c])) / float(IMAGENET_STD[c]))
    return torch.stack(channels, dim=1)


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
    """(fold of each case, [(train indices, validation indices)] per network)."""
    if folds == 1:
        groups = assign_folds(labels, 4, seed)
        validation = np.flatnonzero(groups == 0)
        return np.zeros(len(labels), dtype=int), [(np.flatnonzero(groups != 0), validation)]
    groups = assign_folds(labels, folds, seed)
    return groups, [(np.flatnonzero(groups != f), np.flatnonzero(groups == f)) for f in range(folds)]


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
# The ensemble


@dataclass
class _Member:
    """One trained network: its cross-fitting fold and the endpoints its heads serve."""

    fold: int
    endpoints: list[str]
    model: DeepCT

    @property
    def prefix(self) -> str:
        tag = "shared" if len(self.endpoints) > 1 else f"endpoint.{self.endpoints[0]}"
        return f"fold{self.fold}.{tag}."


def _forward_batches(model: DeepCT, hu: torch.Tensor, device: torch.device,
                     batch_size: int = INFERENCE_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, E, k) and class-1 probabilities (n, E) in eval mode, float32."""
    model.eval()
    features, probs = [], []
    with torch.no_grad():
        for start in range(0, len(hu), batch_size):
            f, logits = model(hu_to_input(hu[start:start + batch_size].to(device)))
            features.append(f.float().cpu().numpy())
            probs.append(torch.softmax(logits.float(), dim=-1)[..., 1].cpu().numpy())
    return np.concatenate(features), np.concatenate(probs)


def _patches_tensor(patches_hu) -> torch.Tensor:
    patches = np.asarray(patches_hu, dtype=np.float32)
    if patches.ndim == 2:
        patches = patches[None]
    if patches.ndim != 3 or patches.shape[1:] != (PATCH_SIZE, PATCH_SIZE):
        raise InputError(f"deep-ROI patches must be (N, {PATCH_SIZE}, {PATCH_SIZE}) HU arrays, "
                         f"got shape {patches.shape}")
    if not np.isfinite(patches).all():
        raise InputError("deep-ROI patches contain NaN or infinite values")
    return torch.from_numpy(patches)


class DeepEnsemble:
    """The K (per-endpoint: K x E) trained Deep-CT networks of one training run."""

    def __init__(self, config: DeepConfig, endpoints: list[str], members: list[_Member],
                 provenance: dict, summary: dict, oof_features: dict, folds_of_case: np.ndarray,
                 device: torch.device, oof_probabilities: Optional[dict] = None):
        self.config = config
        self.endpoints = list(endpoints)
        self.members = members
        self.provenance = provenance
        self.summary = summary
        self.oof_features = oof_features
        # The networks' own class-1 probabilities, cross-fitted like oof_features: {endpoint: (N,)}.
        self.oof_probabilities = oof_probabilities or {}
        self.folds_of_case = folds_of_case
        self.device = device

    @property
    def n_networks(self) -> int:
        return max(m.fold for m in self.members) + 1

    def _members_for(self, endpoint: str) -> list[_Member]:
        if endpoint not in self.endpoints:
            raise InputError(f"endpoint {endpoint} has no Deep-CT network "
                             f"(trained: {', '.join(self.endpoints)})")
        return [m for m in self.members if endpoint in m.endpoints]

    def features(self, patches_hu) -> dict[str, np.ndarray]:
        """``{endpoint: (folds, N, k)}`` deep features of every fold's network, batched.

        A multitask network gives all endpoints from one forward pass per batch.
        """
        return self.features_and_probabilities(patches_hu)[0]

    def probabilities(self, patches_hu) -> dict[str, np.ndarray]:
        """``{endpoint: (folds, N)}`` the networks' own softmax probability of class 1."""
        return self.features_and_probabilities(patches_hu)[1]

    def features_and_probabilities(self, patches_hu) -> tuple[dict, dict]:
        """Both of the above from the same single pass per network."""
        hu = _patches_tensor(patches_hu)
        features = {e: np.zeros((self.n_networks, len(hu), self.config.k), dtype=np.float32)
                    for e in self.endpoints}
        probabilities = {e: np.zeros((self.n_networks, len(hu)), dtype=np.float32)
                         for e in self.endpoints}
        for member in self.members:
            f, p = _forward_batches(member.model, hu, self.device)
            for j, endpoint in enumerate(member.endpoints):
                features[endpoint][member.fold] = f[:, j]
                probabilities[endpoint][member.fold] = p[:, j]
        return features, probabilities

    def gradcam(self, patch_hu, endpoint: str) -> np.ndarray:
        """Grad-CAM of ``endpoint``'s class 1 for one patch, (160, 160) in 0..1, mean over folds."""
        return self.gradcams(patch_hu, [endpoint])[endpoint]

    def gradcams(self, patch_hu, endpoints: Optional[list[str]] = None) -> dict[str, np.ndarray]:
        """:meth:`gradcam` for several endpoints, one backbone pass per network (not per endpoint)."""
        from DeepRadScoreLib.deep.gradcam import gradcam_endpoints

        endpoints = list(self.endpoints if endpoints is None else endpoints)
        for endpoint in endpoints:
            self._members_for(endpoint)
        x = hu_to_input(_patches_tensor(patch_hu)[:1]).to(self.device)
        maps = {e: [] for e in endpoints}
        for member in self.members:
            wanted = [e for e in endpoints if e in member.endpoints]
            if wanted:
                for e, heat in zip(wanted, gradcam_endpoints(member.model, x, wanted)):
                    maps[e].append(heat)
        return {e: np.mean(m, axis=0).astype(np.float32) for e, m in maps.items()}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every network's weights, flat and prefixed ``fold<f>.<shared|endpoint.NAME>.``."""
        tensors = {}
        for member in self.members:
            for name, tensor in member.model.state_dict().items():
                tensors[member.prefix + name] = tensor.detach().to("cpu").contiguous().clone()
        return tensors

    def to_json(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "config": dataclasses.asdict(self.config),
            "endpoints": self.endpoints,
            "provenance": self.provenance,
            "summary": self.summary,
            "members": [{"fold": m.fold, "endpoints": m.endpoints, "prefix": m.prefix}
                        for m in self.members],
            "folds_of_case": self.folds_of_case.tolist(),
            "oof_features": {e: v.tolist() for e, v in self.oof_features.items()},
            "oof_probabilities": {e: v.tolist() for e, v in self.oof_probabilities.items()},
        }

    @classmethod
    def from_saved(cls, json_dict: Mapping, tensors: Mapping[str, torch.Tensor],
                   device: str = "auto") -> "DeepEnsemble":
        """Rebuild from :meth:`to_json` + :meth:`state_tensors`; builds bare networks, never downloads."""
        if json_dict.get("format_version") != FORMAT_VERSION:
            raise InputError(f"Deep-CT format version {json_dict.get('format_version')!r} is not "
                             f"{FORMAT_VERSION}: made by another DeepRadScore version")
        try:
            config = DeepConfig(**json_dict["config"])
            config.device = device
            config.check()
            torch_device = resolve_device(device)
            members = []
            # Building a network draws random initial weights; keep the caller's RNG untouched.
            with torch.random.fork_rng(devices=[]):
                for entry in json_dict["members"]:
                    model = DeepCT(config.backbone, entry["endpoints"], config.k)
                    prefix = entry["prefix"]
                    expected = model.state_dict()
                    state = {name: tensors[prefix + name] for name in expected
                             if prefix + name in tensors}
                    missing = [name for name in expected if name not in state]
                    if missing:
                        raise InputError(f"Deep-CT weights: {len(missing)} tensors of {prefix[:-1]} "
                                         f"missing (e.g. {missing[0]})")
                    for name, tensor in state.items():
                        if tuple(tensor.shape) != tuple(expected[name].shape):
                            raise InputError(f"Deep-CT weights: {prefix}{name} has shape "
                                             f"{tuple(tensor.shape)}, expected {tuple(expected[name].shape)}")
                    model.load_state_dict(state, strict=True)
                    members.append(_Member(int(entry["fold"]), list(entry["endpoints"]),
                                           model.to(torch_device).eval()))
            oof = {e: np.asarray(v, dtype=np.float32).reshape(-1, config.k)
                   for e, v in json_dict["oof_features"].items()}
            oof_probabilities = {e: np.asarray(v, dtype=np.float32)
                                 for e, v in json_dict.get("oof_probabilities", {}).items()}
            return cls(config, list(json_dict["endpoints"]), members, dict(json_dict["provenance"]),
                       dict(json_dict["summary"]), oof, np.asarray(json_dict["folds_of_case"], dtype=int),
                       torch_device, oof_probabilities)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"Deep-CT description is malformed ({type(exc).__name__}: {exc})") from None


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

    ``labels`` (N, E) holds the model's endpoints' labels (NaN = unknown). The best epoch's weights
    are restored before returning.
    """
    _seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if amp else None
    model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=WEIGHT_DECAY)
    weights = torch.from_numpy(_class_weights(labels[train_idx])).to(device)
    y_all = torch.from_numpy(labels.astype(np.float32))
    best = {"criterion": -math.inf, "epoch": 0, "state": None, "aucs": None}
    started = time.perf_counter()
    epochs_run = 0
    for epoch in range(config.epochs):
        model.train()
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
            x = hu_to_input(x.to(device))
            y = y_all[batch].to(device)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
                _, logits = model(x)
            loss = masked_multitask_loss(logits, y, weights)
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
        _, probs = _forward_batches(model, hu[val_idx], device)
        aucs = [_auc(labels[val_idx, e], probs[:, e]) for e in range(labels.shape[1])]
        defined = [a for a in aucs if a is not None]
        if defined:
            criterion = float(np.mean(defined))
        else:  # a validation fold without both classes: fall back to the validation loss
            with torch.no_grad():
                _, logits = model(hu_to_input(hu[val_idx].to(device)))
                val_loss = masked_multitask_loss(logits, y_all[val_idx].to(device), weights)
            criterion = -float(val_loss) if val_loss is not None else -math.inf
        if criterion > best["criterion"] or best["state"] is None:
            best = {"criterion": criterion, "epoch": epoch + 1, "aucs": aucs,
                    "state": {n: t.detach().to("cpu", copy=True) for n, t in model.state_dict().items()}}
        shown = f"{criterion:.3f}" if defined else "n/a"
        report(progress, epochs_run / config.epochs,
               f"Deep-CT {label}: epoch {epoch + 1}/{config.epochs}, validation AUC {shown}", cancel)
        if epoch + 1 - best["epoch"] >= config.patience:
            break
    model.load_state_dict(best["state"])
    model.eval()
    return {"best_epoch": best["epoch"], "epochs_run": epochs_run, "val_aucs": best["aucs"],
            "seconds": time.perf_counter() - started}


def train_deep(patches_hu, labels: Mapping[str, np.ndarray], config: Optional[DeepConfig] = None,
               progress: Optional[ProgressCallback] = None,
               cancel: Optional[CancelCheck] = None) -> DeepEnsemble:
    """Train the Deep-CT networks on (N, 160, 160) HU patches; labels {endpoint: (N,) 0/1/NaN}.

    Raises :class:`InputError` for bad shapes or an endpoint without enough labels of each class
    (the caller skips such endpoints first), :class:`Cancelled` when ``cancel()`` turns true.
    """
    config = (config or DeepConfig()).check()
    device = resolve_device(config.device)
    hu = _patches_tensor(patches_hu)
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

    # Every network of a group starts from these weights (same seed): only its data differ.
    templates, provenance = [], None
    for group in groups:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            template = DeepCT(config.backbone, group, config.k)
        if provenance is None:
            provenance = load_backbone_weights(template, config.pretrained, progress)
            backbone_state = copy.deepcopy(template.backbone.state_dict())
        else:
            template.backbone.load_state_dict(backbone_state)
        templates.append(template)

    saved_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    members, records = [], []
    started = time.perf_counter()
    try:
        for g, (group, template) in enumerate(zip(groups, templates)):
            columns = [endpoints.index(e) for e in group]
            group_labels = label_matrix[:, columns]
            for fold, (train_idx, val_idx) in enumerate(splits):
                labelled = ~np.isnan(group_labels).all(axis=1)
                train_i, val_i = train_idx[labelled[train_idx]], val_idx[labelled[val_idx]]
                model = copy.deepcopy(template)
                n = g * len(splits) + fold
                name = (f"fold {fold + 1}/{len(splits)}" +
                        ("" if config.mode == "multitask" else f", {group[0]}"))
                record = _train_network(model, hu, group_labels, train_i, val_i, config, device,
                                        seed=config.seed + 1000 * fold + g, label=name,
                                        progress=scaled(progress, n / total, (n + 1) / total),
                                        cancel=cancel)
                members.append(_Member(fold, list(group), model))
                records.append((group, fold, train_i, val_i, record, group_labels))
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved_cudnn

    ensemble = DeepEnsemble(config, endpoints, members, provenance, {}, {}, folds_of_case, device)
    all_features, all_probabilities = ensemble.features_and_probabilities(hu.numpy())
    cases = np.arange(len(hu))
    ensemble.oof_features = {e: all_features[e][folds_of_case, cases] for e in endpoints}
    ensemble.oof_probabilities = {e: all_probabilities[e][folds_of_case, cases] for e in endpoints}
    ensemble.summary = _summary(config, device, endpoints, records, provenance,
                                time.perf_counter() - started)
    report(progress, 1.0, "Deep-CT: done", None)
    return ensemble


def _summary(config, device, endpoints, records, provenance, seconds) -> dict:
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
            per_endpoint[e].append({
                "fold": fold, "best_epoch": record["best_epoch"], "epochs_run": record["epochs_run"],
                "val_auc": record["val_aucs"][j] if record["val_aucs"] else None,
                "seconds": round(record["seconds"], 3),
                "n_train": int((~np.isnan(y_train)).sum()), "n_train_pos": int((y_train == 1).sum()),
                "n_val": int((~np.isnan(y_val)).sum()), "n_val_pos": int((y_val == 1).sum()),
            })
    mean_auc = {}
    for e, rows in per_endpoint.items():
        values = [r["val_auc"] for r in rows if r["val_auc"] is not None]
        mean_auc[e] = float(np.mean(values)) if values else None
    for message in warnings_list:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    if provenance.get("weights") == "random":  # load_backbone_weights has already warned
        warnings_list.append("Deep-CT backbone started from random weights (no ImageNet weights found)")
    return {"backbone": config.backbone, "mode": config.mode, "folds": config.folds,
            "device": device.type, "mixed_precision": device.type == "cuda",
            "seconds": round(seconds, 3), "warnings": warnings_list,
            "val_auc_mean": mean_auc, "endpoints": per_endpoint}


__all__ = ["BACKBONES", "DeepConfig", "DeepEnsemble", "train_deep", "assign_folds",
           "masked_multitask_loss", "augment_hu", "hu_to_input", "resolve_device"]
