"""DenseNet121 (Huang et al., CVPR 2017) without importing torchvision.

Why a module of our own: importing ``torchvision.models`` pulls in ``torchvision.ops`` and with
it ``torch._dynamo``, about 1 s of CPU in every ``predict`` process (profiled), for one
network class. This is the same network: module names and tensor shapes are torchvision's, so
torchvision's ImageNet checkpoints and every bundle trained before load unchanged; modules are
built in torchvision's order and initialised as it does (Kaiming-normal convolutions, BatchNorm
1/0, zero Linear bias), so a seeded random initialisation draws the same numbers
(``Testing/test_deep_model.py`` compares both state_dicts and outputs bit for bit).

The other backbones (ResNet, VGG, Inception) still come from torchvision, imported only when one
of them is asked for.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


GROWTH_RATE = 32
BOTTLENECK_WIDTH = 4          # 1x1 bottleneck channels = 4 x growth rate
BLOCK_LAYERS = (6, 12, 24, 16)  # DenseNet121
STEM_CHANNELS = 64


class _DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (bottleneck) then BN-ReLU-3x3 conv: ``GROWTH_RATE`` new channels."""

    def __init__(self, in_channels: int):
        super().__init__()
        width = BOTTLENECK_WIDTH * GROWTH_RATE
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, GROWTH_RATE, kernel_size=3, stride=1, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class _DenseBlock(nn.ModuleDict):
    """Each layer sees the concatenation of the block's input and every earlier layer's output."""

    def __init__(self, n_layers: int, in_channels: int):
        super().__init__()
        for i in range(n_layers):
            self.add_module(f"denselayer{i + 1}", _DenseLayer(in_channels + i * GROWTH_RATE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    """BN-ReLU-1x1 conv halving the channels, then 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet121(nn.Module):
    """``features`` (stem, 4 dense blocks, 3 transitions, final BatchNorm ``norm5``) and a
    1000-class ``classifier`` that the caller replaces; ``classifier.in_features`` is 1024.

    As in torchvision, the last ReLU and the pooling are not part of ``features``: the caller
    applies them (``deep.model.Backbone`` does, with a ReLU module Grad-CAM can hook).
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, STEM_CHANNELS, kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(STEM_CHANNELS)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]))
        channels = STEM_CHANNELS
        for i, n_layers in enumerate(BLOCK_LAYERS):
            self.features.add_module(f"denseblock{i + 1}", _DenseBlock(n_layers, channels))
            channels += n_layers * GROWTH_RATE
            if i != len(BLOCK_LAYERS) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        # Built even though the caller replaces it: its default initialisation draws from the
        # RNG, and drawing exactly what torchvision draws keeps seeded runs identical.
        self.classifier = nn.Linear(channels, num_classes)
        if self.classifier.weight.is_meta:
            # Built to take saved weights (deep.ensemble): nothing to initialise, and torch's
            # normal_ on meta tensors goes through its reference decompositions, which import
            # torch._dynamo (1.3 s per predict, measured).
            return
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
            elif isinstance(module, nn.Linear):
                nn.init.constant_(module.bias, 0)
