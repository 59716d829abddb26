"""Every built-in interpreter on the paper's architectures (torchvision VGG19, ResNet50, DenseNet121;
random weights, no download), at a small input so the test stays cheap on a CPU."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.models.base import Normalize

ARCHS = {
    "vgg19": (torchvision.models.vgg19, lambda net: net.features[33]),
    "resnet50": (torchvision.models.resnet50, lambda net: net.layer4[-1]),
    "densenet121": (torchvision.models.densenet121, lambda net: net.features.denseblock4.denselayer16),
}
PARAMS = {"smoothgrad": {"n_samples": 2}, "integrated_gradients": {"steps": 4}}
NAMES = ["simplegrad", "simplegrad_t", "gradcam", "lrp", "lrp_t", "smoothgrad", "integrated_gradients",
         "gradient_x_input"]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_builtin_on_the_paper_architectures(arch, record_property):
    ctor, pick_layer = ARCHS[arch]
    torch.manual_seed(0)
    net = ctor(weights=None)
    model = nn.Sequential(Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), net).eval()
    layer = pick_layer(net)
    x, target = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)), torch.tensor([3, 500])
    grid = []
    handle = layer.register_forward_hook(lambda _m, _i, o: grid.append(tuple(o.shape[-2:])))
    with torch.no_grad():
        y = model(x).gather(1, target.view(-1, 1)).squeeze(1)
    handle.remove()
    for name in NAMES:
        h = get_interpreter(name, **PARAMS.get(name, {})).explain(model, x, target, layer=layer)
        expected = grid[0] if name in ("simplegrad_t", "gradcam", "lrp_t") else (64, 64)
        assert h.shape == (2, *expected), name
        assert torch.isfinite(h).all(), name
        assert h.abs().sum() > 0 or name == "gradcam", name
        if name == "lrp":
            ratio = h.sum(dim=(1, 2)) / y
            record_property("lrp_conservation_ratio", ratio.tolist())
            # only leaks: epsilon (random-init logits are small next to 0.01) and biases
            assert ((ratio > 0.5) & (ratio < 1.05)).all(), ratio
