"""Deep-CT networks: an ImageNet backbone, then two Xavier-initialised FC layers per endpoint.

The paper replaces DenseNet121's 1000-node classifier by "2 FC layers with Xavier-initialized
weights" and takes "the output of the penultimate FC layer" as the deep network features. Here
each endpoint's head is ``fc1: pooled -> k`` (the k deep features, taken straight from the linear
layer) and ``fc2: k -> 2`` with dropout on the features during training only. There is no
activation between them on purpose: the network's logit is then an exact linear function of the
deep features, so a classifier on the features can represent everything the network itself used,
and no feature can "die" (a ReLU bottleneck of k = 10 units can leave a feature constant zero,
which breaks correlations and SHAP downstream). Dropout makes fc2 spread the evidence over several
features instead of one.

"Pooled features" means whatever the backbone fed its own 1000-class layer: DenseNet121 1024,
ResNet50/101 2048, Inception v3 2048, VGG19 4096 (VGG keeps its fc6/fc7 and only the last layer
is replaced, the same reading of "the classifier replaced"). One :class:`DeepCT` has one backbone
and one head per endpoint: per-endpoint mode builds it with one endpoint, multitask with all.

ImageNet weights are never downloaded (this must work offline): they are read from torchvision's
cache (``$TORCH_HOME/hub/checkpoints`` or ``~/.cache/torch/hub/checkpoints``, under torchvision's
own file names) or from a file the user names; otherwise the backbone starts from random weights
with a loud warning, and the provenance says so.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.filehash import sha256_file
from DeepRadScoreLib.progress import ProgressCallback, report


BACKBONES = ("densenet121", "resnet50", "resnet101", "vgg19", "inception_v3")
DEFAULT_K = 10
HEAD_DROPOUT = 0.25

# The layer each torchvision model uses to produce its 1000 ImageNet classes: we replace it, so
# its weights in a checkpoint are expected and ignored. Inception's auxiliary classifier is off.
_REPLACED_PREFIXES = {
    "densenet121": ("classifier.",),
    "resnet50": ("fc.",),
    "resnet101": ("fc.",),
    "vgg19": ("classifier.6.",),
    "inception_v3": ("fc.", "AuxLogits."),
}
# torchvision's weight enums (they name its cache files), looked up only when a cache is searched:
# importing torchvision costs about 1 s of CPU that predicting with DenseNet121 does not need.
_WEIGHT_ENUMS = {
    "densenet121": "DenseNet121_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
    "vgg19": "VGG19_Weights",
    "inception_v3": "Inception_V3_Weights",
}
# torchvision's DenseNet checkpoints still use the old key names "norm.1", "conv.2", ...
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def check_backbone(name: str) -> str:
    if name not in BACKBONES:
        raise InputError(f"unknown backbone '{name}': choose one of {', '.join(BACKBONES)}")
    return name


class Backbone(nn.Module):
    """A torchvision model minus its 1000-class layer, split into conv activations and pooling.

    ``self.net`` keeps torchvision's module names, so its state_dict keys are torchvision's (minus
    the replaced layer) and ImageNet checkpoints load directly. ``activations(x)`` returns the last
    convolutional block's output (what Grad-CAM looks at, module ``target_layer``); ``pool(a)``
    turns it into the pooled feature vector of size ``out_features``.
    """

    def __init__(self, name: str):
        super().__init__()
        self.name = check_backbone(name)
        if name == "densenet121":
            # Our own DenseNet121 (torchvision's names and initialisation, without its import).
            from DeepRadScoreLib.deep.densenet import DenseNet121

            net = DenseNet121()
            self.out_features = net.classifier.in_features
            net.classifier = nn.Identity()
            # torchvision applies F.relu(inplace=True) after `features` inside forward(); an
            # in-place op on the hooked tensor makes Grad-CAM's gradients device dependent, so the
            # ReLU is a module of its own here, not in place, and is the Grad-CAM target.
            self.final_relu = nn.ReLU(inplace=False)
        elif name in ("resnet50", "resnet101"):
            import torchvision.models as tvm

            net = getattr(tvm, name)(weights=None)
            self.out_features = net.fc.in_features
            net.fc = nn.Identity()
        elif name == "vgg19":
            import torchvision.models as tvm

            net = tvm.vgg19(weights=None)
            self.out_features = net.classifier[6].in_features
            net.classifier[6] = nn.Identity()
        else:
            # transform_input converts our ImageNet-normalised input into the [-1, 1] scaling the
            # Google Inception weights expect (what torchvision does when it loads them); it is a
            # fixed affine map, so it is kept on for random initialisation too.
            import torchvision.models as tvm

            net = tvm.inception_v3(weights=None, aux_logits=False, init_weights=True,
                                   transform_input=True)
            self.out_features = net.fc.in_features
            net.fc = nn.Identity()
        self.net = net

    @property
    def target_layer(self) -> nn.Module:
        """The module whose output is the last convolutional block's activation map."""
        if self.name == "densenet121":
            return self.final_relu
        if self.name in ("resnet50", "resnet101"):
            return self.net.layer4
        if self.name == "vgg19":
            return self.net.features
        return self.net.Mixed_7c

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        if self.name == "densenet121":
            return self.final_relu(net.features(x))
        if self.name in ("resnet50", "resnet101"):
            x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
            return net.layer4(net.layer3(net.layer2(net.layer1(x))))
        if self.name == "vgg19":
            return net.features(x)
        x = net._transform_input(x)
        for block in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                      "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
                      "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(net, block)(x)
        return x

    def pool(self, a: torch.Tensor) -> torch.Tensor:
        net = self.net
        if self.name == "densenet121":
            return torch.flatten(F.adaptive_avg_pool2d(a, 1), 1)
        if self.name in ("resnet50", "resnet101"):
            return torch.flatten(net.avgpool(a), 1)
        if self.name == "vgg19":
            return net.classifier(torch.flatten(net.avgpool(a), 1))
        return torch.flatten(net.dropout(net.avgpool(a)), 1)


class FeatureHead(nn.Module):
    """``fc1`` pooled -> k deep features, ``fc2`` k -> 2 logits; Xavier weights, zero biases."""

    def __init__(self, in_features: int, k: int = DEFAULT_K, dropout: float = HEAD_DROPOUT):
        super().__init__()
        self.fc1 = nn.Linear(in_features, k)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(k, 2)
        if self.fc1.weight.is_meta:  # built to take saved weights: see deep/densenet.py
            return
        for layer in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.fc1(pooled)
        return features, self.fc2(self.dropout(features))


class DeepCT(nn.Module):
    """One backbone and one :class:`FeatureHead` per endpoint (in ``endpoints`` order).

    ``forward(x)`` with ``x`` = ``regions.network_input`` batches ``(B, 3, H, W)`` returns
    ``(features (B, E, k), logits (B, E, 2))``: one pass through the backbone serves every head.
    """

    def __init__(self, backbone: str = "densenet121", endpoints: Sequence[str] = ("endpoint",),
                 k: int = DEFAULT_K, dropout: float = HEAD_DROPOUT):
        super().__init__()
        if k < 1:
            raise InputError(f"the number of deep features k must be at least 1, got {k}")
        self.endpoints = list(endpoints)
        self.k = k
        self.backbone = Backbone(backbone)
        self.heads = nn.ModuleList(FeatureHead(self.backbone.out_features, k, dropout)
                                   for _ in self.endpoints)

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.activations(x)

    def from_activations(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.backbone.pool(a)
        outputs = [head(pooled) for head in self.heads]
        return (torch.stack([f for f, _ in outputs], dim=1),
                torch.stack([logit for _, logit in outputs], dim=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_activations(self.activations(x))


def _torch_cache_dir() -> Path:
    # torch.hub.get_dir() honours $TORCH_HOME (and XDG_CACHE_HOME) and never downloads anything.
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_imagenet_file(backbone: str) -> Optional[Path]:
    """torchvision's own ImageNet checkpoint for ``backbone`` if it is in the local cache."""
    import torchvision.models as tvm

    folder = _torch_cache_dir()
    for weights in getattr(tvm, _WEIGHT_ENUMS[check_backbone(backbone)]):
        candidate = folder / os.path.basename(weights.url)
        if candidate.is_file():
            return candidate
    return None


def _read_state_dict(path: Path) -> dict:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            # weights_only: a checkpoint can never run code when it is read.
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: pretrained weights file not found") from None
    except Exception as exc:  # torch/safetensors raise many types for a corrupt file
        raise InputError(f"{path}: not a readable state_dict file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: expected a state_dict (a mapping of names to tensors)")
    return state


def _backbone_state(state: dict, backbone: Backbone, path: Path) -> dict:
    """Map a checkpoint's keys onto ``backbone.net``; InputError on any mismatch."""
    renamed = {}
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if backbone.name == "densenet121":
            match = _OLD_DENSENET_KEY.match(key)
            if match:
                key = match.group(1) + match.group(2)
        if key.startswith(_REPLACED_PREFIXES[backbone.name]):
            continue
        renamed[key] = value
    expected = backbone.net.state_dict()
    # Checkpoints older than torch 0.4.1 (torchvision's DenseNet121 among them) lack BatchNorm's
    # step counter; it is unused when momentum is set, so it starts at zero as torch itself does.
    for key in set(expected) - set(renamed):
        if key.endswith("num_batches_tracked"):
            renamed[key] = torch.zeros_like(expected[key])
    missing = sorted(set(expected) - set(renamed))
    unexpected = sorted(set(renamed) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise InputError(f"{path}: not a {backbone.name} state_dict: keys {'; '.join(parts)}")
    for key, value in renamed.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise InputError(f"{path}: tensor {key} has shape {tuple(value.shape)}, "
                             f"{backbone.name} needs {tuple(expected[key].shape)}")
    return renamed


def load_backbone_weights(model: DeepCT, pretrained: str | Path | None = None,
                          progress: Optional[ProgressCallback] = None) -> dict:
    """Put ImageNet weights into ``model``'s backbone if we have them; return the provenance.

    ``pretrained`` names a state_dict file (``.pth``/``.pt`` read with ``weights_only=True``, or
    ``.safetensors``) of the backbone, with or without its 1000-class layer; without it the
    torchvision cache is searched. Returns ``{"weights": "imagenet", "source": ..., "sha256": ...}``
    or, when nothing is found, warns loudly and returns ``{"weights": "random", ...}``.
    """
    backbone = model.backbone
    path = Path(pretrained) if pretrained is not None else cached_imagenet_file(backbone.name)
    if path is None:
        message = (f"no ImageNet weights for {backbone.name} (looked in {_torch_cache_dir()} and no "
                   f"--pretrained file): the backbone starts from RANDOM weights, so Deep-CT is "
                   f"much weaker than the paper's ImageNet-pretrained network")
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        report(progress, 0.0, "WARNING: " + message)
        return {"weights": "random", "source": "random initialisation (no ImageNet weights found)",
                "backbone": backbone.name}
    state = _backbone_state(_read_state_dict(path), backbone, path)
    backbone.net.load_state_dict(state, strict=True)
    origin = "file" if pretrained is not None else "torchvision cache"
    return {"weights": "imagenet", "source": f"{origin}: {path}", "sha256": sha256_file(path),
            "backbone": backbone.name}
