"""The trained Deep-CT ensemble: settings, the HU -> network input mapping, inference, Grad-CAM
and the serialisation to and from flat tensors + JSON.

This is everything prediction needs from Deep-CT, and it imports nothing of the training code
(:mod:`DeepRadScoreLib.deep.training`): loading a bundle and scoring a case run only this module,
:mod:`~DeepRadScoreLib.deep.model` and :mod:`~DeepRadScoreLib.deep.gradcam`.

An ensemble holds K networks (per-endpoint mode: K per endpoint), network f being the one
trained without fold f of the training cases. ``oof_features``/``oof_probabilities`` hold, for
each training case, the output of the network that never saw that case's label (see the
training module for how the folds and early stopping keep that promise). A new case goes through
all K networks; the caller decides how to combine them (the bundle averages).

Reproducibility: the same seed gives the same weights and numbers on the same machine and CPU
code path (same torch build, same instruction set picked by oneDNN/MKL, one thread count).
Across CPU vendors or instruction sets (AVX2 vs AVX-512) float results differ in the last bits
and training amplifies that, so results agree only statistically there.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np
import torch

from DeepRadScoreLib.deep.model import DeepCT, check_backbone
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.regions import IMAGENET_MEAN, IMAGENET_STD, WINDOWS


FORMAT_VERSION = 1
MODES = ("per-endpoint", "multitask")
INFERENCE_BATCH = 32
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


# The learning rate when none is given (the paper gives none). 1e-4, a usual fine-tuning rate, for ImageNet weights;
# from random weights the demo's ~30 AdamW steps (8 epochs of 64 cases) at 1e-4 barely moved the
# network: its deep-slice signs stayed at test AUC 0.16-0.60 (demo, seed 7), 0.58-0.85 at 1e-3.
FINE_TUNE_LR = 1e-4
SCRATCH_LR = 1e-3


@dataclass
class DeepConfig:
    """Deep-CT settings, stored in bundle.json and read back by :meth:`DeepEnsemble.from_saved`.

    ``backbone`` one of ``deep.model.BACKBONES``; ``mode`` ``"multitask"`` (one network per fold,
    a head per endpoint; the default: the paper's per-endpoint networks, ten per fold, take ~10x
    the training time and ~4 s of CPU inference per case for ten endpoints and K = 4,
    benchmarks/results/deep.md, over the 1 s budget) or ``"per-endpoint"``; ``folds`` K, the
    cross-fitted networks (1 = the paper's single 75/25 split); ``k`` deep features per endpoint;
    ``epochs`` the most epochs, ``patience`` epochs without a better early-stopping AUC before
    stopping; ``batch_size``, ``lr`` (AdamW; ``None`` = :data:`FINE_TUNE_LR` when the backbone
    starts from ImageNet weights, :data:`SCRATCH_LR` when it starts from random weights); ``device`` ``auto``/``cpu``/``cuda[:i]``; ``seed``;
    ``pretrained`` a backbone state_dict file (else torchvision's cache, else random weights);
    ``augment`` the HU augmentation while training; ``precision`` of the training steps
    (:data:`PRECISIONS`; ``auto``: see :func:`resolve_precision`). Inference, the out-of-fold
    features included, is always float32, so what training scored is what prediction computes.
    """

    backbone: str = "densenet121"
    mode: str = "multitask"
    folds: int = 4
    k: int = 10
    epochs: int = 30
    batch_size: int = 16
    lr: Optional[float] = None
    patience: int = 5
    device: str = "auto"
    seed: int = 0
    pretrained: Optional[str] = None
    augment: bool = True
    precision: str = "auto"

    def check(self) -> "DeepConfig":
        """Return self; raise :class:`InputError` for any setting out of range."""
        check_backbone(self.backbone)
        if self.mode not in MODES:
            raise InputError(f"unknown deep mode '{self.mode}': choose per-endpoint or multitask")
        for name, minimum in (("folds", 1), ("k", 1), ("epochs", 1), ("batch_size", 2), ("patience", 1)):
            if int(getattr(self, name)) < minimum:
                raise InputError(f"deep {name} must be at least {minimum}, got {getattr(self, name)}")
        if self.lr is not None and not self.lr > 0:
            raise InputError(f"deep learning rate must be positive, got {self.lr}")
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision '{self.precision}': choose one of {', '.join(PRECISIONS)}")
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


def resolve_precision(precision: str, device: torch.device, flags: frozenset[str] | None = None) -> str:
    """The training steps' precision: ``fp32``, ``bf16`` or ``fp16`` (autocast).

    ``auto``: fp16 with a gradient scaler on CUDA; on a CPU, bf16 where it has bf16 arithmetic
    (``amx_bf16`` tiles or ``avx512_bf16``: the same DenseNet121 training took 0.63x the float32
    time on an Intel Xeon with AMX and 0.59x on an AMD EPYC with AVX-512 BF16,
    benchmarks/results/precision.md), float32 elsewhere (AVX2, plain AVX-512: bf16 would be
    emulated), so the choice follows the CPU and the bundle records it.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    from DeepRadScoreLib.resources import cpu_flags

    return "bf16" if BF16_FLAGS & (cpu_flags() if flags is None else flags) else "fp32"


# CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic, which oneDNN's bf16 kernels use.
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def hu_to_input(hu: torch.Tensor) -> torch.Tensor:
    """``regions.network_input`` in torch: HU ``(B, H, W)`` -> ``(B, 3, H, W)`` on hu's device."""
    channels = []
    for c, (_, centre, width) in enumerate(WINDOWS):
        windowed = ((hu - (centre - width / 2.0)) / width).clamp(0.0, 1.0)
        channels.append((windowed - float(IMAGENET_MEAN[c])) / float(IMAGENET_STD[c]))
    return torch.stack(channels, dim=1)


@dataclass
class Member:
    """One trained network: its cross-fitting fold and the endpoints its heads serve."""

    fold: int
    endpoints: list[str]
    model: DeepCT

    @property
    def prefix(self) -> str:
        tag = "shared" if len(self.endpoints) > 1 else f"endpoint.{self.endpoints[0]}"
        return f"fold{self.fold}.{tag}."


def forward_batches(model: DeepCT, hu: torch.Tensor, device: torch.device,
                    batch_size: int = INFERENCE_BATCH, autocast_dtype: Optional[torch.dtype] = None,
                    memory_format: torch.memory_format = torch.contiguous_format
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, E, k) and class-1 probabilities (n, E) in eval mode, returned as float32.

    ``autocast_dtype`` / ``memory_format``: only training's early-stopping passes set them, to run
    in the precision and layout the network is being trained in (bf16 channels-last took 0.27 s
    for 21 patches against 0.6 s in float32 on an AMD EPYC with AVX-512 BF16); the out-of-fold
    features, prediction and the ONNX export keep the float32 default.
    """
    model.eval()
    features, probs = [], []
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=autocast_dtype or torch.float32,
                                         enabled=autocast_dtype is not None):
        for start in range(0, len(hu), batch_size):
            x = hu_to_input(hu[start:start + batch_size].to(device)).contiguous(memory_format=memory_format)
            f, logits = model(x)
            features.append(f.float().cpu().numpy())
            probs.append(torch.softmax(logits.float(), dim=-1)[..., 1].cpu().numpy())
    return np.concatenate(features), np.concatenate(probs)


def patches_tensor(patches_hu) -> torch.Tensor:
    """(N, 160, 160) or one (160, 160) HU array -> float32 tensor; InputError on shape or NaN
    (the one check both runtimes apply, :func:`~DeepRadScoreLib.deep.onnx_ensemble.check_patches`)."""
    from DeepRadScoreLib.deep.onnx_ensemble import check_patches

    return torch.from_numpy(check_patches(patches_hu))


class DeepEnsemble:
    """The K (per-endpoint: K x E) trained Deep-CT networks of one training run.

    Built by ``deep.training.train_deep`` or :meth:`from_saved`. Attributes: ``config``,
    ``endpoints``, ``members`` (one :class:`Member` per network), ``provenance`` of the backbone
    weights, ``summary`` of the training run, ``oof_features`` ``{endpoint: (N, k)}`` and
    ``oof_probabilities`` ``{endpoint: (N,)}`` of the N training cases (each from the network that
    held the case out), ``folds_of_case`` ``(N,)``, ``device``.
    """

    def __init__(self, config: DeepConfig, endpoints: list[str], members: list[Member],
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
        # Why torch runs this ensemble at prediction, when a loaded bundle says (no ONNX graphs).
        self.note = ""

    @property
    def runtime(self) -> dict:
        """What runs the networks (for result.json): torch, its version and device."""
        out = {"engine": "torch", "version": torch.__version__.split("+")[0], "device": str(self.device)}
        if self.note:
            out["note"] = self.note
        return out

    @property
    def n_networks(self) -> int:
        return max(m.fold for m in self.members) + 1

    def _members_for(self, endpoint: str) -> list[Member]:
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
        """Deep features and class-1 probabilities of every network, one pass per network.

        :param patches_hu: (N, 160, 160) or one (160, 160) deep-ROI patch in HU.
        :returns: ``({endpoint: (folds, N, k)}, {endpoint: (folds, N)})``, float32; row f is
            network f's output. :class:`InputError` for a wrong shape or NaN values.
        """
        hu = patches_tensor(patches_hu)
        features = {e: np.zeros((self.n_networks, len(hu), self.config.k), dtype=np.float32)
                    for e in self.endpoints}
        probabilities = {e: np.zeros((self.n_networks, len(hu)), dtype=np.float32)
                         for e in self.endpoints}
        for member in self.members:
            f, p = forward_batches(member.model, hu, self.device)
            for j, endpoint in enumerate(member.endpoints):
                features[endpoint][member.fold] = f[:, j]
                probabilities[endpoint][member.fold] = p[:, j]
        return features, probabilities

    def gradcam(self, patch_hu, endpoint: str) -> np.ndarray:
        """Grad-CAM of ``endpoint``'s class 1 for one patch, (160, 160) in 0..1, mean over folds."""
        return self.gradcams(patch_hu, [endpoint])[endpoint]

    def features_and_gradcams(self, patch_hu, endpoints: list[str]) -> tuple[dict, dict]:
        """:meth:`features` and :meth:`gradcams` of one patch from one backbone pass per network
        (a prediction needs both; two passes cost twice the Deep-CT's time).

        :param patch_hu: one (160, 160) deep-ROI patch in HU (of a batch, the first is used).
        :param endpoints: the endpoints whose maps are wanted (an unknown one is an InputError).
        :returns: ``({endpoint: (folds, 1, k)}, {endpoint: (160, 160) in 0..1})``.
        """
        from DeepRadScoreLib.deep.gradcam import gradcam_and_outputs

        endpoints = list(endpoints)
        for endpoint in endpoints:
            self._members_for(endpoint)
        x = hu_to_input(patches_tensor(patch_hu)[:1]).to(self.device)
        features = {e: np.zeros((self.n_networks, 1, self.config.k), dtype=np.float32)
                    for e in self.endpoints}
        maps = {e: [] for e in endpoints}
        for member in self.members:
            wanted = [e for e in endpoints if e in member.endpoints]
            heats, f, _ = gradcam_and_outputs(member.model, x, wanted)
            for j, endpoint in enumerate(member.endpoints):
                features[endpoint][member.fold] = f[:, j]
            for e, heat in zip(wanted, heats):
                maps[e].append(heat)
        return features, {e: np.mean(m, axis=0).astype(np.float32) for e, m in maps.items()}

    def gradcams(self, patch_hu, endpoints: Optional[list[str]] = None) -> dict[str, np.ndarray]:
        """:meth:`gradcam` for several endpoints, one backbone pass per network (not per endpoint).

        :param patch_hu: one (160, 160) deep-ROI patch in HU (of a batch, the first is used).
        :param endpoints: the endpoints wanted (default: all); an unknown one is an InputError.
        :returns: ``{endpoint: (160, 160) float32 in 0..1}``, the mean of the networks' maps.
        """
        from DeepRadScoreLib.deep.gradcam import gradcam_endpoints

        endpoints = list(self.endpoints if endpoints is None else endpoints)
        for endpoint in endpoints:
            self._members_for(endpoint)
        x = hu_to_input(patches_tensor(patch_hu)[:1]).to(self.device)
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
        """Everything but the weights, JSON-ready; :meth:`from_saved` reads it back."""
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
        """Rebuild from :meth:`to_json` + :meth:`state_tensors`; builds bare networks, never downloads.

        :param json_dict: what :meth:`to_json` returned (as read back from bundle.json).
        :param tensors: what :meth:`state_tensors` returned (as read from deep.safetensors).
        :param device: where the networks run (``auto``, ``cpu``, ``cuda[:i]``).
        :returns: the ensemble, networks in eval mode; :class:`InputError` for another format
            version, missing or misshapen tensors, or a malformed description.
        """
        if json_dict.get("format_version") != FORMAT_VERSION:
            raise InputError(f"Deep-CT format version {json_dict.get('format_version')!r} is not "
                             f"{FORMAT_VERSION}: made by another DeepRadScore version")
        try:
            config = DeepConfig(**json_dict["config"])
            config.device = device
            config.check()
            torch_device = resolve_device(device)
            members = []
            # The networks are built on the meta device (shapes only: no memory, no random
            # initialisation, 0.4 s less per predict) and take the saved tensors as they are
            # (load_state_dict(assign=True)). fork_rng: no draw can reach the caller's RNG.
            with torch.random.fork_rng(devices=[]):
                for entry in json_dict["members"]:
                    with torch.device("meta"):
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
                    model.load_state_dict(state, strict=True, assign=True)
                    members.append(Member(int(entry["fold"]), list(entry["endpoints"]),
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


__all__ = ["DeepConfig", "DeepEnsemble", "Member", "MODES", "FORMAT_VERSION", "PRECISIONS", "forward_batches",
           "resolve_precision",
           "hu_to_input", "patches_tensor", "resolve_device"]
