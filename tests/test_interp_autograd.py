"""The public autograd helpers (interpreters/autograd.py): the forward hooks of the package leave
nothing behind, whatever happens; gradients against autograd written out by hand; chunking changes
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import robustbench_interp
from robustbench_interp import interpreters
from robustbench_interp.errors import ConfigError, InterpreterError
from robustbench_interp.interpreters import base as interpreters_base
from robustbench_interp.interpreters import capture_output, class_score, input_gradient, layer_gradient


def _hooks(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in model.modules()
    )


class _Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


class _Pair(nn.Module):
    def forward(self, x):
        return x, x


def _net() -> nn.Sequential:
    """conv -> in-place ReLU -> conv -> pool -> linear; the target layer is ``[0]``."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5),
    ).eval()


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    return torch.rand(5, 3, 8, 8, generator=gen), torch.tensor([0, 1, 2, 3, 4])


def test_capture_output_records_the_layers_own_values_before_an_in_place_relu(batch):
    net, (x, _) = _net(), batch
    with torch.no_grad(), capture_output(net[0]) as outputs:
        logits = net(x)
        net(x[:2])
    assert [o.shape[0] for o in outputs] == [5, 2]  # one tensor per call
    with torch.no_grad():
        torch.testing.assert_close(outputs[0], net[0](x))
        torch.testing.assert_close(logits, net(x))  # the model computes the same function
    assert (outputs[0] < 0).any()  # the ReLU after the layer did not overwrite it
    assert _hooks(net) == 0


def test_capture_output_leaves_no_hook_behind_when_the_forward_raises(batch):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), _Boom())
    with pytest.raises(RuntimeError, match="boom"), capture_output(net[0]) as outputs:
        net(batch[0])
    assert len(outputs) == 1 and _hooks(net) == 0


def test_capture_output_refuses_a_layer_that_returns_no_tensor(batch):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), _Pair())
    with pytest.raises(InterpreterError, match="_Pair returned tuple, not a tensor"), capture_output(net[1]):
        net(batch[0])
    assert _hooks(net) == 0


def test_layer_gradient_leaves_no_hook_behind_when_the_forward_raises(batch):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), _Boom())
    with pytest.raises(RuntimeError, match="boom"):
        layer_gradient(net, *batch, net[0])
    assert _hooks(net) == 0


def test_layer_gradient_by_hand(batch):
    net, (x, target) = _net(), batch
    act, grad = layer_gradient(net, x, target, net[0])
    a = net[0](x)
    logits = net[5](net[4](net[3](net[2](torch.relu(a)))))
    (expected,) = torch.autograd.grad(logits[torch.arange(5), target].sum(), a)
    torch.testing.assert_close(act.detach(), a.detach())
    torch.testing.assert_close(grad, expected)
    assert not grad.requires_grad and all(p.grad is None for p in net.parameters())


def test_layer_gradient_names_a_layer_the_model_never_calls(batch):
    net, stray = _net(), nn.Conv2d(3, 4, 3)
    with pytest.raises(InterpreterError, match="not called during the forward pass"):
        layer_gradient(net, *batch, stray)
    assert _hooks(net) == 0 and _hooks(stray) == 0


def test_input_gradient_by_hand_and_in_chunks(batch):
    net, (x, target) = _net(), batch
    xg = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(net(xg)[torch.arange(5), target].sum(), xg)
    whole = input_gradient(net, x, target)
    torch.testing.assert_close(whole, expected)
    for max_batch in (1, 2, 5, 64):
        torch.testing.assert_close(input_gradient(net, x, target, max_batch=max_batch), whole)
    assert not x.requires_grad


def test_input_gradient_with_create_graph_is_differentiable_wrt_the_weights(batch):
    net = _net()
    grad = input_gradient(net, *batch, create_graph=True, max_batch=2)
    (w_grad,) = torch.autograd.grad(grad.square().sum(), net[2].weight)
    assert w_grad.abs().sum() > 0


def test_input_gradient_refuses_a_max_batch_below_one(batch):
    with pytest.raises(ConfigError, match="max_batch=0 is not an int >= 1"):
        input_gradient(_net(), *batch, max_batch=0)


def test_class_score_sums_the_target_logits_and_refuses_other_shapes():
    logits = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert float(class_score(logits, torch.tensor([1, 0]))) == 5.0
    with pytest.raises(InterpreterError, match=r"shape \(2, 2, 1\); expected logits \[B, classes\]"):
        class_score(logits[..., None], torch.tensor([1, 0]))


def test_the_helpers_are_public_and_capture_output_stays_in_base():
    for name in ("capture_output", "class_score", "input_gradient", "layer_gradient", "HyperParams"):
        assert name in interpreters.__all__ and hasattr(interpreters, name)
    assert interpreters_base.capture_output is capture_output


def test_the_forward_hooks_of_the_package_and_the_example_plug_in_are_in_one_module():
    """Every layer output is recorded by capture_output and the step's logits by capture_logits: no
    other module registers a hook of its own."""
    root = Path(robustbench_interp.__file__).parent
    example = root.parent / "examples" / "rbi_gradcampp"
    sources = [*root.rglob("*.py"), *example.rglob("*.py")]
    hooked = sorted(str(p.relative_to(root.parent)) for p in sources if "register_forward_hook" in p.read_text())
    assert hooked == ["robustbench_interp/interpreters/autograd.py"]
