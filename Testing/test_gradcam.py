"""Grad-CAM against the reference implementation (the `grad-cam` package, pytorch_grad_cam)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from DeepRadScoreLib.deep.model import DeepCT
from DeepRadScoreLib.deep.gradcam import gradcam
from DeepRadScoreLib.regions import network_input


class EndpointLogits(torch.nn.Module):
    """What pytorch_grad_cam expects: a model returning (B, classes) logits for one endpoint."""

    def __init__(self, model: DeepCT, endpoint: int):
        super().__init__()
        self.model, self.endpoint = model, endpoint

    def forward(self, x):
        return self.model(x)[1][:, self.endpoint]


def nodule_input() -> torch.Tensor:
    """A soft-tissue nodule off-centre in lung-like noise, as the network sees it."""
    rng = np.random.default_rng(2)
    hu = rng.normal(-820, 50, (1, 160, 160)).astype(np.float32)
    rows, cols = np.mgrid[:160, :160]
    hu[0][(rows - 60) ** 2 + (cols - 95) ** 2 < 18 ** 2] = 40.0
    return torch.from_numpy(network_input(hu))


@pytest.mark.parametrize("backbone", ["densenet121", "resnet50"])
def test_gradcam_agrees_with_the_grad_cam_package(backbone):
    torch.manual_seed(1)
    model = DeepCT(backbone, ["LVI", "EGFR"]).eval()
    x = nodule_input()
    ours = gradcam(model, x, "EGFR")
    reference = GradCAM(model=EndpointLogits(model, 1), target_layers=[model.backbone.target_layer])
    theirs = reference(input_tensor=x, targets=[ClassifierOutputTarget(1)])[0]
    assert ours.shape == theirs.shape == (160, 160)
    assert ours.min() == 0.0 and ours.max() == pytest.approx(1.0)
    assert np.abs(ours - theirs).max() < 1e-5
    # The map is not trivial (a real spatial pattern) and depends on the endpoint asked for.
    assert ours.std() > 0.05
    assert np.abs(ours - gradcam(model, x, "LVI")).max() > 0.05


def test_gradcam_leaves_the_model_untouched_and_gives_no_parameter_gradients():
    torch.manual_seed(0)
    model = DeepCT("densenet121", ["A"])
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gradcam(model, nodule_input(), 0)
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_map_without_evidence_stays_zero():
    torch.manual_seed(0)
    model = DeepCT("densenet121", ["A"]).eval()
    with torch.no_grad():
        model.heads[0].fc2.weight[1].zero_()  # class-1 logit no longer depends on the image
    heat = gradcam(model, nodule_input(), 0)
    assert heat.shape == (160, 160) and np.isfinite(heat).all() and np.count_nonzero(heat) == 0


@pytest.mark.parametrize("backbone", ["densenet121", "resnet50", "inception_v3"])
def test_closed_form_gradcam_equals_autograd(backbone):
    """The ONNX path's Grad-CAM (no autograd): channel weights fc2[1] @ fc1 from the head, the
    map from the activations alone, equal to torch's autograd map for every pooled-by-mean
    backbone (DenseNet121, ResNet: 5 x 5 cells; Inception v3: 3 x 3)."""
    from DeepRadScoreLib.deep.onnx_ensemble import gradcam_map

    torch.manual_seed(3)
    model = DeepCT(backbone, [f"E{i}" for i in range(6)], k=4).eval()
    x = nodule_input()
    with torch.no_grad():
        activations = model.activations(x)[0].numpy()
    maps = 0
    for i, head in enumerate(model.heads):
        weights = (head.fc2.weight[1] @ head.fc1.weight).detach().numpy()
        want = gradcam(model, x, i)
        got = gradcam_map(activations, weights)
        span = float(want.max() - want.min())
        if span == 0:  # no positive evidence for this random head: both maps all zero
            np.testing.assert_array_equal(got, want)
            continue
        maps += 1
        assert np.corrcoef(got.ravel(), want.ravel())[0, 1] >= 0.999
        assert np.abs(got - want).max() <= 1e-4 * span
    assert maps >= 2  # real maps were compared, not only blank ones
