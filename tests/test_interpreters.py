"""The built-in interpreters (SPEC section 2): properties every map must have, and each
gradient method against its formula written out by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_interp.errors import ConfigError
from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.interpreters.smoothgrad import smoothgrad_noise

# The tiny nets (fixtures any_net and make_net) and the batch are in conftest.py.

# Small hyper-parameters keep the generic checks fast; the method-specific tests use the defaults.
BUILTINS = {
    "simplegrad": {},
    "simplegrad_t": {},
    "gradcam": {},
    "lrp": {},
    "lrp_t": {},
    "smoothgrad": {"n_samples": 3},
    "integrated_gradients": {"steps": 8},
    "gradient_x_input": {},
}
LAYER_LEVEL = ["simplegrad_t", "gradcam", "lrp_t"]


def _explain(name, model, layer, x, target, create_graph=False):
    interp = get_interpreter(name, **BUILTINS[name])
    return interp.explain(model, x, target, layer=layer, create_graph=create_graph)


def _layer_grid(model, layer, x):
    out = []
    handle = layer.register_forward_hook(lambda _m, _i, o: out.append(o.shape[-2:]))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return tuple(out[-1])


def _target_logit(model, x, target):
    return model(x).gather(1, target.view(-1, 1)).sum()


# ------------------------------------------------------------------------ properties of every map


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_map_shape_finite_and_batch_independent(name, any_net, batch):
    model, layer, _ = any_net
    x, target = batch
    h = _explain(name, model, layer, x, target)
    grid = _layer_grid(model, layer, x) if name in LAYER_LEVEL else tuple(x.shape[-2:])
    assert h.shape == (x.shape[0], *grid)
    assert torch.isfinite(h).all()
    assert h.abs().sum() > 0
    for i in range(x.shape[0]):
        alone = _explain(name, model, layer, x[i : i + 1], target[i : i + 1])
        torch.testing.assert_close(alone[0], h[i], rtol=1e-3, atol=1e-4 * float(h[i].abs().max()))


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_map_changes_with_target_class(name, any_net, batch):
    model, layer, _ = any_net
    x, target = batch
    h1 = _explain(name, model, layer, x, target)
    h2 = _explain(name, model, layer, x, (target + 1) % 10)
    for i in range(x.shape[0]):
        if name == "gradcam" and not (h1[i].any() and h2[i].any()):
            continue  # relu(...) may legitimately be all zero for one class
        assert not torch.allclose(h1[i], h2[i]), f"image {i}: the map ignores the target class"
    assert not torch.allclose(h1, h2)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_map_differentiable_wrt_last_conv_weights(name, any_net, batch):
    model, layer, last_conv = any_net
    x, target = batch
    h = _explain(name, model, layer, x, target, create_graph=True)
    (grad,) = torch.autograd.grad(h.sum(), last_conv.weight)
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0
    # the differentiable path computes the same map as the fast one, which builds no graph
    fast = _explain(name, model, layer, x, target, create_graph=False)
    assert not fast.requires_grad
    torch.testing.assert_close(fast, h.detach(), rtol=1e-4, atol=1e-5 * float(h.detach().abs().max()))


def _hooks(model):
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in model.modules()
    )


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_no_side_effects(name, any_net, batch):
    model, layer, _ = any_net
    x, target = batch
    x_before = x.clone()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        logits = model(x)
    _explain(name, model, layer, x, target, create_graph=True)
    _explain(name, model, layer, x, target)
    assert torch.equal(x, x_before) and not x.requires_grad
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert not any(m.training for m in model.modules())
    assert _hooks(model) == 0
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():  # the in-place ReLUs and += still compute the same function
        torch.testing.assert_close(model(x), logits)


class _Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_hooks_removed_after_an_exception(name, batch):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), _Boom()).eval()
    with pytest.raises(Exception, match="boom"):
        _explain(name, model, model[1], *batch)
    assert _hooks(model) == 0


@pytest.mark.parametrize("name", LAYER_LEVEL)
def test_layer_level_method_without_layer_is_a_config_error(name, batch, make_net):
    model, _, _ = make_net("cnn")
    with pytest.raises(ConfigError, match="layer"):
        get_interpreter(name).explain(model, *batch)


def test_training_mode_is_kept(batch, make_net):
    model, layer, _ = make_net("cnn")
    model.train()
    for name in BUILTINS:
        _explain(name, model, layer, *batch)
        assert all(m.training for m in model.modules()), name


# --------------------------------------------------------------------------- formulas by hand


def _input_grad(model, x, target):
    xg = x.clone().requires_grad_(True)
    return torch.autograd.grad(_target_logit(model, xg, target), xg)[0]


def _layer_act_and_grad(model, layer, x, target):
    acts = []
    handle = layer.register_forward_hook(lambda _m, _i, o: acts.append(o.clone()) or acts[-1])
    try:
        score = _target_logit(model, x, target)
    finally:
        handle.remove()
    return acts[-1], torch.autograd.grad(score, acts[-1])[0]


def test_simplegrad_and_gradient_x_input_by_hand(batch, make_net):
    model, _, _ = make_net("resnet")
    x, target = batch
    grad = _input_grad(model, x, target)
    torch.testing.assert_close(get_interpreter("simplegrad").explain(model, x, target), grad.abs().amax(1))
    torch.testing.assert_close(get_interpreter("gradient_x_input").explain(model, x, target), (x * grad).sum(1))


def test_gradcam_and_simplegrad_t_by_hand(any_net, batch):
    model, layer, _ = any_net
    x, target = batch
    act, grad = _layer_act_and_grad(model, layer, x, target)
    alpha = grad.mean(dim=(2, 3), keepdim=True)
    expected = torch.relu((alpha * act).sum(1))
    assert expected.abs().sum() > 0
    torch.testing.assert_close(get_interpreter("gradcam").explain(model, x, target, layer=layer), expected.detach())
    torch.testing.assert_close(
        get_interpreter("simplegrad_t").explain(model, x, target, layer=layer), grad.abs().amax(1)
    )


@pytest.mark.parametrize("baseline", [0.0, torch.tensor([1.0, 0.0, 0.5]).view(3, 1, 1)], ids=["black", "colour"])
def test_integrated_gradients_completeness_at_64_steps(baseline, any_net, batch):
    model, _, _ = any_net
    x, target = batch
    h = get_interpreter("integrated_gradients", baseline=baseline, steps=64).explain(model, x, target)
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros_like(x) + baseline)).gather(1, target.view(-1, 1)).squeeze(1)
    assert gap.abs().min() > 1e-2  # a meaningful difference to explain
    torch.testing.assert_close(h.sum(dim=(1, 2)), gap, rtol=0.01, atol=0.0)


def test_integrated_gradients_rejects_a_baseline_of_the_wrong_shape(batch, make_net):
    model, _, _ = make_net("cnn")
    with pytest.raises(ConfigError, match="baseline"):
        get_interpreter("integrated_gradients", baseline=torch.zeros(5, 7)).explain(model, *batch)


def test_smoothgrad_equals_the_mean_of_noisy_gradients_by_hand(batch, make_net):
    model, _, _ = make_net("resnet")
    x, target = batch
    n, seed = 4, 123
    h = get_interpreter("smoothgrad", n_samples=n, seed=seed).explain(model, x, target)
    gen = torch.Generator().manual_seed(seed)
    pattern = torch.randn((n, 1, *x.shape[1:]), generator=gen)
    sigma = 0.15 * (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3)))
    by_hand = torch.stack(
        [_input_grad(model, x + pattern[k] * sigma.view(-1, 1, 1, 1), target).abs().amax(1) for k in range(n)]
    ).mean(0)
    torch.testing.assert_close(h, by_hand)
    torch.testing.assert_close(smoothgrad_noise(x, n, seed, 0.15), pattern * sigma.view(1, -1, 1, 1, 1))


def test_smoothgrad_seed_fixes_the_map(batch, make_net):
    model, _, _ = make_net("cnn")
    x, target = batch
    first = get_interpreter("smoothgrad", n_samples=3, seed=7).explain(model, x, target)
    again = get_interpreter("smoothgrad", n_samples=3, seed=7).explain(model, x, target)
    other = get_interpreter("smoothgrad", n_samples=3, seed=8).explain(model, x, target)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_chunked_batches_give_the_same_maps(batch, make_net):
    model, _, _ = make_net("cnn")
    x, target = batch
    for name, params in [("smoothgrad", {"n_samples": 3}), ("integrated_gradients", {"steps": 4})]:
        whole = get_interpreter(name, **params).explain(model, x, target)
        chunked = get_interpreter(name, max_batch=2, **params).explain(model, x, target)
        torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "name, params", [("smoothgrad", {"n_samples": 0}), ("integrated_gradients", {"steps": 0}), ("lrp", {"epsilon": -1})]
)
def test_bad_hyper_parameters_are_config_errors(name, params):
    with pytest.raises(ConfigError):
        get_interpreter(name, **params)
