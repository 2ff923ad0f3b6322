"""Training side: each trained Deep-CT network as an ONNX graph, checked against torch.

A bundle carries its networks twice: ``deep.safetensors`` (the weights torch trains and reads)
and one ``.onnx`` file per network, which prediction runs through ONNX Runtime without
importing torch (:mod:`DeepRadScoreLib.deep.onnx_ensemble`). Each graph takes deep-ROI patches
in HU, ``patch_hu`` ``(N, 160, 160)`` float32 (the HU -> 3-channel windowing is inside the
graph, the same :func:`~DeepRadScoreLib.deep.ensemble.hu_to_input` torch applies), and gives

- ``features`` ``(N, E, k)``: each head's deep features,
- ``probabilities`` ``(N, E)``: each head's softmax probability of class 1,
- ``activations`` ``(N, C, h, w)``: the last convolutional block (Grad-CAM's target layer).

Grad-CAM needs no gradient graph: for backbones whose pooling is a plain spatial mean
(DenseNet121, ResNet, Inception v3) the class-1 logit is linear in the activations, so its
gradient is the constant ``(fc2.weight[1] @ fc1.weight) / (h w)`` for every cell, and the map is
computed from ``activations`` with the head's weights. VGG19's pooling goes through its fc6/fc7
layers and ReLUs, whose gradient depends on the input: its networks are not exported, and such a
bundle is run through torch.

Every exported graph is run once through ONNX Runtime on check patches and compared with torch's
forward pass; a difference beyond :data:`CHECK_TOLERANCE` (relative to the output's size) means
no ONNX files for the bundle at all (logged), so prediction never mixes the two paths.
"""
from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from DeepRadScoreLib.deep.ensemble import DeepEnsemble, hu_to_input
from DeepRadScoreLib.deep.onnx_ensemble import (INPUT_NAME, LINEAR_POOL_BACKBONES, OPSET,
                                                OUTPUT_NAMES, network_file)
from DeepRadScoreLib.regions import PATCH_SIZE

logger = logging.getLogger(__name__)

# float32 through another kernel library: measured differences are ~1e-7 of an output's size;
# 1e-5 leaves room for other CPUs and still catches any graph that computes something else.
CHECK_TOLERANCE = 1e-5


class _Exported(nn.Module):
    """HU patches -> (features, class-1 probabilities, last conv block activations)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, patch_hu: torch.Tensor):
        activations = self.model.activations(hu_to_input(patch_hu))
        features, logits = self.model.from_activations(activations)
        return features, torch.softmax(logits, dim=-1)[..., 1], activations


def check_patches(n: int = 3, seed: int = 0) -> np.ndarray:
    """HU patches like the deep-ROI's (lung, a soft-tissue disc, some bone) to check a graph on."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:PATCH_SIZE, :PATCH_SIZE]
    patches = rng.normal(-800, 80, size=(n, PATCH_SIZE, PATCH_SIZE)).astype(np.float32)
    for i in range(n):
        cy, cx, r = rng.uniform(50, 110), rng.uniform(50, 110), rng.uniform(8, 35)
        patches[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] += 850 + 50 * i
        patches[i][:, :6] = 700  # a rib
    return patches


def export_networks(deep: DeepEnsemble, folder: Path) -> list[dict]:
    """Write each network of ``deep`` as ``folder / network_file(prefix)``, checked.

    :returns: one entry ``{"prefix", "file", "opset"}`` per network (what bundle.json's
        ``deep_onnx`` lists), or ``[]`` when the backbone cannot be exported or any graph
        fails its check (then no file is left behind).
    """
    backbone = deep.config.backbone
    if backbone not in LINEAR_POOL_BACKBONES:
        logger.warning("%s networks are not exported to ONNX (their Grad-CAM needs autograd): "
                       "this bundle predicts through torch", backbone)
        return []
    import onnxruntime as ort

    patches = check_patches()
    entries, written = [], []
    try:
        for member in deep.members:
            name = network_file(member.prefix)
            model = member.model
            if next(model.parameters()).device.type != "cpu":
                model = copy.deepcopy(model).to("cpu")
            # eval() on the wrapper too: export() restores the wrapper's mode afterwards, and a
            # wrapper left in training mode would put the network's BatchNorm back into it.
            wrapper = _Exported(model).eval()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
                torch.onnx.export(wrapper, (torch.from_numpy(patches[:1]),), str(folder / name),
                                  input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                                  dynamic_axes={n: {0: "batch"} for n in (INPUT_NAME, *OUTPUT_NAMES)},
                                  opset_version=OPSET, dynamo=False)
            written.append(folder / name)
            session = ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])
            got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: patches})
            with torch.no_grad():
                want = [t.numpy() for t in wrapper(torch.from_numpy(patches))]
            for output, a, b in zip(OUTPUT_NAMES, got, want):
                scale = max(1.0, float(np.abs(b).max()))
                if a.shape != b.shape or not np.abs(a - b).max() <= CHECK_TOLERANCE * scale:
                    raise ValueError(f"{name}: ONNX Runtime's {output} differ from torch's")
            entries.append({"prefix": member.prefix, "file": name, "opset": OPSET})
    except Exception as err:  # any exporter or runtime failure: the bundle keeps the torch path
        logger.warning("Deep-CT networks not exported to ONNX (%s: %s): this bundle predicts "
                       "through torch", type(err).__name__, err)
        for file in written:
            file.unlink(missing_ok=True)
        return []
    return entries


__all__ = ["CHECK_TOLERANCE", "check_patches", "export_networks"]
