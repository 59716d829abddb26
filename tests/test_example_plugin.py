"""The example plug-in ``examples/rbi_gradcampp`` (Grad-CAM++ registered through an entry point):
discovery through the entry-point group, the map against the paper's closed form written out by
hand, differentiability, no hooks left behind, and the benchmark's conformance checks.

Needs the package installed: ``pip install -e examples/rbi_gradcampp``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import robustbench_interp
from robustbench_interp.conformance import CHECKS
from robustbench_interp.errors import ConfigError, InterpreterError
from robustbench_interp.interpreters import INTERPRETERS, get_interpreter, layer_gradient
from robustbench_interp.models import load_model

rbi_gradcampp = pytest.importorskip(
    "rbi_gradcampp",
    reason="the example plug-in is not installed; run `pip install -e examples/rbi_gradcampp`",
)


class _SmallCNN(nn.Module):
    """[B,3,32,32] -> 10 logits. The target layer ``conv2`` is followed by an in-place ReLU (the
    interpreter must keep the layer's own output) and by ``conv3``, the last convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = torch.relu(self.conv3(x)).mean(dim=(2, 3))
        return self.fc(x)


@pytest.fixture
def net():
    torch.manual_seed(0)
    return _SmallCNN().eval()


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 32, 32, generator=gen), torch.tensor([0, 3, 7])


def _all_hooks(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
    )


def _by_hand(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018, exponential-of-score closed form), written out."""
    acts: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, o: acts.append(o) or o.clone())
    try:
        logits = model(x)
    finally:
        handle.remove()
    A = acts[0]
    (g,) = torch.autograd.grad(logits[torch.arange(len(x)), target].sum(), A)
    A = A.detach()
    den = 2 * g**2 + A.sum(dim=(2, 3), keepdim=True) * g**3
    alpha = torch.zeros_like(g)
    nz = den != 0
    alpha[nz] = g[nz] ** 2 / den[nz]
    w = (alpha * torch.relu(g)).sum(dim=(2, 3), keepdim=True)
    return torch.relu((w * A).sum(dim=1))


def test_registered_through_the_entry_point():
    assert "gradcampp" in robustbench_interp.list_interpreters()
    origin = INTERPRETERS.origin("gradcampp")
    assert "entry point" in origin and "rbi_gradcampp:GradCAMPlusPlus" in origin, origin
    interp = get_interpreter("gradcampp")
    assert isinstance(interp, rbi_gradcampp.GradCAMPlusPlus)
    assert isinstance(interp, robustbench_interp.Interpreter)
    assert interp.layer_level is True and interp.differentiable is True
    assert interp.name == "gradcampp"


def test_map_equals_the_formula_by_hand(net, batch):
    x, target = batch
    h = get_interpreter("gradcampp").explain(net, x, target, layer=net.conv2)
    expected = _by_hand(net, net.conv2, x, target)
    assert h.shape == (3, 16, 16) and not h.requires_grad
    assert expected.abs().sum() > 0
    torch.testing.assert_close(h, expected)


def test_differentiable_wrt_last_conv_weights(net, batch):
    x, target = batch
    h = get_interpreter("gradcampp").explain(net, x, target, layer=net.conv2, create_graph=True)
    assert h.requires_grad
    torch.testing.assert_close(h.detach(), _by_hand(net, net.conv2, x, target))
    g_last, g_layer = torch.autograd.grad(h.square().sum(), [net.conv3.weight, net.conv2.weight])
    assert torch.isfinite(g_last).all() and g_last.abs().sum() > 0
    assert torch.isfinite(g_layer).all() and g_layer.abs().sum() > 0


def test_no_hooks_left_behind(net, batch):
    x, target = batch
    interp = get_interpreter("gradcampp")
    before = _all_hooks(net)
    interp.explain(net, x, target, layer=net.conv2)
    interp.explain(net, x, target, layer=net.conv2, create_graph=True)
    assert _all_hooks(net) == before == 0
    # A layer the forward pass never calls: a clear error, and still no hook left on it.
    stray = nn.Conv2d(8, 16, 3)
    with pytest.raises(InterpreterError, match="not called"):
        interp.explain(net, x, target, layer=stray)
    assert _all_hooks(stray) == 0 and _all_hooks(net) == 0


def test_built_on_the_public_helpers(net, batch):
    """The plug-in holds the formula only: A and d y_c / d A come from the benchmark's layer_gradient."""
    x, target = batch
    assert rbi_gradcampp.layer_gradient is layer_gradient
    act, grad = layer_gradient(net, x, target, net.conv2)
    h = rbi_gradcampp.gradcampp_from_gradient(act.detach(), grad)
    torch.testing.assert_close(h, _by_hand(net, net.conv2, x, target))
    torch.testing.assert_close(get_interpreter("gradcampp").explain(net, x, target, layer=net.conv2), h)
    assert _all_hooks(net) == 0


def test_declares_no_hyper_parameters():
    assert get_interpreter("gradcampp").params == {}
    with pytest.raises(ConfigError, match="unknown hyper-parameter 'alpha' for interpreter 'gradcampp'; it takes no"):
        get_interpreter("gradcampp", alpha=1.0)


def test_differs_from_gradcam(net, batch):
    x, target = batch
    h = get_interpreter("gradcampp").explain(net, x, target, layer=net.conv2)
    h_cam = get_interpreter("gradcam").explain(net, x, target, layer=net.conv2)
    assert h.shape == h_cam.shape
    assert not torch.allclose(h, h_cam, rtol=1e-3, atol=1e-6)


@pytest.fixture(scope="module")
def tiny_vgg():
    torch.manual_seed(0)
    return load_model("tiny", "vgg", weights="random")


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_conformance(check, tiny_vgg):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 3, 64, 64, generator=gen), torch.tensor([0, 1, 2, 3])
    CHECKS[check](get_interpreter("gradcampp"), tiny_vgg, x, y)
