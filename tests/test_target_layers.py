"""The target layers are the input of the last block (SPEC section 3), so layer-level maps say something.

At the output of the last block only global pooling and a linear head follow: the gradient there is
the same at every position, SimpleGrad_T's map is constant and LRP_T's equals Grad-CAM's before its
ReLU. These tests check that on every tiny model a conv block with a non-linearity lies between the
target layer and the head, that SimpleGrad_T's maps vary over positions, and that LRP_T and Grad-CAM
give different maps.
"""

from __future__ import annotations

import pytest
import torch

from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.metrics.heatmaps import constant_maps, normalize
from robustbench_interp.models import load_model
from robustbench_interp.models import tiny as tiny_models


def _after_target(name: str) -> list[str]:
    """Names of the modules that run after the target layer in a forward pass."""
    net = tiny_models.build(name).eval()
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda _m, _i, _o, n=n: order.append(n))
             for n, m in net.named_modules() if n and not list(m.children())]
    with torch.no_grad():
        net(torch.rand(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    target = net.target_layer_name
    leaves = [n for n in order if n == target or n.startswith(target + ".")]
    return order[order.index(leaves[-1]) + 1:]


@pytest.mark.parametrize("name", ["vgg", "resnet", "densenet"])
def test_a_conv_and_a_relu_follow_the_target_layer_before_the_head(name):
    after = _after_target(name)
    net = tiny_models.build(name)
    kinds = [type(net.get_submodule(n)).__name__ for n in after]
    assert "Conv2d" in kinds and "ReLU" in kinds, (name, kinds)


@pytest.fixture(scope="module")
def batch():
    from robustbench_interp.data.tiny import tiny_split

    data = tiny_split("test", 16)
    return data.images, data.labels


@pytest.mark.parametrize("name", ["vgg", "resnet", "densenet"])
def test_simplegrad_t_maps_vary_over_positions_on_every_published_model(name, batch):
    loaded = load_model("tiny", name, progress=False)
    x, y = batch
    h = get_interpreter("simplegrad_t").explain(loaded.model, x, y, layer=loaded.target_layer)
    assert constant_maps(h).double().mean() < 0.1


def test_lrp_t_and_grad_cam_differ_on_the_resnet(batch):
    loaded = load_model("tiny", "resnet", progress=False)
    x, y = batch
    maps = {n: normalize(get_interpreter(n).explain(loaded.model, x, y, layer=loaded.target_layer))
            for n in ("gradcam", "lrp_t")}
    assert (maps["gradcam"] - maps["lrp_t"]).abs().amax(dim=(1, 2)).min() > 0.05
