"""Grad-CAM (Selvaraju et al. 2017) on a Deep-CT network's last convolutional block.

For DenseNet121 the block is ``features`` (ending in its final BatchNorm) followed by the ReLU that
torchvision applies in ``forward``; :class:`DeepRadScoreLib.deep.model.Backbone` makes that ReLU a separate,
non-in-place module, because an in-place ReLU on the tensor whose gradient Grad-CAM reads gives
different maps on CPU and GPU. Other backbones use their last block's output (ResNet ``layer4``,
VGG ``features``, Inception ``Mixed_7c``).

The map: channel weights = spatial mean of d(class-1 logit of the endpoint's head)/d(activation);
map = ReLU(sum of weight x activation); bilinear upsampling (half-pixel centres) to the input size;
min-max scaled to 0..1 (a map without variation, e.g. all zero, comes back all zero). This is the
``grad-cam`` package's GradCAM with ``ClassifierOutputTarget(1)``. The activation map is coarse:
DenseNet121 and ResNet downsample 32-fold, so a 160 x 160 patch leaves 5 x 5 cells of 32 x 32
pixels (Inception v3: 3 x 3), and the heatmap can only say which part of the patch mattered.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from DeepRadScoreLib.deep.model import DeepCT


def gradcam(model: DeepCT, x: torch.Tensor, endpoint: int | str = 0) -> np.ndarray:
    """Grad-CAM of class 1 of ``endpoint`` (index or name) for one input ``x`` ((1,) 3, H, W).

    Returns an (H, W) float32 array in 0..1. The model is put in eval mode (BatchNorm statistics
    and dropout fixed); its parameters are not changed and receive no gradients.
    """
    return gradcam_endpoints(model, x, [endpoint])[0]


def gradcam_endpoints(model: DeepCT, x: torch.Tensor, endpoints: Sequence[int | str]) -> list[np.ndarray]:
    """Grad-CAM maps for several endpoints of one network from a single backbone pass.

    The class score depends on the activations only through pooling and the endpoint's head, so
    the backbone runs once without a graph and only the heads are differentiated.
    """
    return gradcam_and_outputs(model, x, endpoints)[0]


def gradcam_and_outputs(model: DeepCT, x: torch.Tensor, endpoints: Sequence[int | str]
                        ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """:func:`gradcam_endpoints` and, from the same backbone pass, the network's outputs for
    ``x``: ``(maps, features (1, E, k), class-1 probabilities (1, E))``, float32, the values
    ``model(x)`` gives (its forward is ``from_activations(activations(x))`` too). One case's
    prediction needs both; a second backbone pass for the features cost as much again.
    """
    indices = [model.endpoints.index(e) if isinstance(e, str) else int(e) for e in endpoints]
    if x.dim() == 3:
        x = x.unsqueeze(0)
    model.eval()
    x = x.to(next(model.parameters()).device, torch.float32)
    with torch.no_grad():
        activations = model.activations(x)
    activations.requires_grad_(True)
    with torch.enable_grad():
        features, logits = model.from_activations(activations)
        gradients = [torch.autograd.grad(logits[0, i, 1], activations, retain_graph=True)[0]
                     for i in indices]
    maps = [_cam(activations.detach(), g, x.shape[-2:]) for g in gradients]
    with torch.no_grad():
        probabilities = torch.softmax(logits.detach().float(), dim=-1)[..., 1]
    return maps, features.detach().float().cpu().numpy(), probabilities.cpu().numpy()


def _cam(activations: torch.Tensor, gradients: torch.Tensor, size) -> np.ndarray:
    with torch.no_grad():
        weights = gradients.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * activations).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)[0, 0]
        cam = cam - cam.min()
        top = cam.max()
        cam = cam / top if top > 0 else torch.zeros_like(cam)
    return cam.cpu().numpy().astype(np.float32)
