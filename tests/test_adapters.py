"""Any method in one line (robustbench_interp.interpreters.adapters): plain explain functions and
duck-typed objects wrapped into interpreters, and the Captum and zennit adapters against the built-in
each one reproduces, on the tiny nets of conftest.py."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from robustbench_interp.conformance import CHECKS
from robustbench_interp.errors import ConfigError, UnknownNameError
from robustbench_interp.interpreters import get_interpreter, input_gradient, layer_gradient
from robustbench_interp.interpreters.adapters import FunctionInterpreter
from robustbench_interp.models import tiny
from robustbench_interp.models.base import LoadedModel

# ----------------------------------------------------------------------------- explain functions


def saliency(model, x, target, *, layer=None, create_graph=False):
    """simplegrad, written as a plain function."""
    return input_gradient(model, x, target, create_graph).abs().amax(dim=1)


def cam(model, x, target, *, layer=None, create_graph=False, power=1.0):
    """Grad-CAM as a plain layer-level function, with a hyper-parameter."""
    act, grad = layer_gradient(model, x, target, layer, create_graph)
    act = act if create_graph else act.detach()
    return (grad.mean(dim=(2, 3), keepdim=True) * act).sum(dim=1).relu() ** power


cam.layer_level = True


def test_a_plain_function_is_an_interpreter_with_the_defaults(any_net, batch):
    model, layer, _ = any_net
    x, target = batch
    interp = get_interpreter(saliency)
    assert isinstance(interp, FunctionInterpreter)
    assert (interp.name, interp.params) == ("saliency", {})
    assert (interp.layer_level, interp.differentiable, interp.stochastic) == (False, True, False)
    assert interp.reseeded(3) is interp
    expected = get_interpreter("simplegrad").explain(model, x, target)
    torch.testing.assert_close(interp.explain(model, x, target, layer=layer), expected, rtol=0, atol=0)


def test_a_wrapped_function_keeps_the_graph_it_was_asked_for(make_net, batch):
    model, layer, last = make_net("cnn")
    h = get_interpreter(saliency).explain(model, *batch, layer=layer, create_graph=True)
    (grad,) = torch.autograd.grad(h.square().sum(), last.weight)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_function_attributes_declare_it(any_net, batch):
    model, layer, _ = any_net
    x, target = batch
    interp = get_interpreter(cam)
    assert interp.layer_level and interp.differentiable
    torch.testing.assert_close(interp.explain(model, x, target, layer=layer),
                               get_interpreter("gradcam").explain(model, x, target, layer=layer), rtol=0, atol=0)
    with pytest.raises(ConfigError, match="is layer-level and needs the model's target layer"):
        interp.explain(model, x, target)


def test_declaration_keywords_go_to_the_wrapper_and_the_rest_to_the_function(make_net, batch):
    model, layer, _ = make_net("cnn")
    x, target = batch
    interp = get_interpreter(cam, layer_level=True, differentiable=False, power=2.0)
    assert (interp.layer_level, interp.differentiable) == (True, False)
    assert interp.params == {"power": 2.0}
    assert repr(interp) == "FunctionInterpreter('cam', power=2.0)"
    torch.testing.assert_close(interp.explain(model, x, target, layer=layer),
                               cam(model, x, target, layer=layer) ** 2)


def test_a_non_differentiable_function_is_never_asked_for_a_graph(make_net, batch):
    model, _, _ = make_net("cnn")
    asked = []

    def spy(model, x, target, *, layer=None, create_graph=False):
        asked.append(create_graph)
        return x.sum(dim=1)

    get_interpreter(spy, differentiable=False).explain(model, *batch, create_graph=True)
    get_interpreter(spy).explain(model, *batch, create_graph=True)
    assert asked == [False, True]


def test_a_keyword_declaration_wins_over_the_attribute():
    assert get_interpreter(cam, layer_level=False).layer_level is False


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"powr": 2.0}, r"unknown hyper-parameter 'powr' \(did you mean 'power'\?\) for interpreter 'cam'; accepted"),
        ({"differentiable": "yes"}, "differentiable='yes' is not a bool"),
    ],
)
def test_a_bad_keyword_is_a_config_error_at_once(params, message):
    with pytest.raises(ConfigError, match=message):
        get_interpreter(cam, **params)


def test_a_function_without_layer_or_create_graph_is_called_without_them(make_net, batch):
    model, layer, _ = make_net("cnn")
    seen = []

    def bare(model, x, target):
        seen.append(True)
        return x.sum(dim=1)

    h = get_interpreter(bare).explain(model, *batch, layer=layer, create_graph=True)
    assert seen and h.shape == (3, 32, 32)
    with pytest.raises(ConfigError, match="declares layer_level=True but .*bare.* takes no 'layer' keyword"):
        get_interpreter(bare, layer_level=True)


def _two(model, x):
    return x.sum(dim=1)


def _four(model, x, target, extra):
    return x.sum(dim=1)


@pytest.mark.parametrize(("fn", "named"), [(_two, r"'_two'.*_two\(\) missing"), (_four, r"_four\(model, x, target, extra\)")])
def test_a_bad_signature_names_the_function_and_the_expected_one(fn, named):
    with pytest.raises(ConfigError, match=named) as info:
        get_interpreter(fn)
    assert "f(model, x, target, *, layer=None, create_graph=False)" in str(info.value)


def test_a_stochastic_function_is_reseeded_through_its_seed_keyword(make_net, batch):
    model, _, _ = make_net("cnn")
    x, target = batch

    def noisy(model, x, target, *, create_graph=False, seed=0):
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        return saliency(model, x + 0.1 * noise, target, create_graph=create_graph)

    noisy.stochastic = True
    interp = get_interpreter(noisy, seed=1)
    again = interp.reseeded(5)
    assert again.params == {"seed": 5} and interp.params == {"seed": 1} and again.name == "noisy"
    torch.testing.assert_close(again.explain(model, x, target), noisy(model, x, target, seed=5))
    with pytest.raises(ConfigError, match="takes no 'seed' keyword"):
        get_interpreter(saliency, stochastic=True)


def test_a_module_attr_path_to_a_function(tmp_path, monkeypatch, make_net, batch):
    (tmp_path / "rbi_adapt_mod.py").write_text(textwrap.dedent("""
        def edges(model, x, target, *, layer=None, create_graph=False, scale=1.0):
            return scale * (x[..., 1:, :] - x[..., :-1, :]).abs().sum(1)[..., :, :]
        edges.differentiable = False
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "rbi_adapt_mod", raising=False)
    interp = get_interpreter("rbi_adapt_mod:edges", scale=2.0)
    assert (interp.name, interp.params, interp.differentiable) == ("rbi_adapt_mod:edges", {"scale": 2.0}, False)


# ------------------------------------------------------------------------------------ duck types


class DuckCAM:
    """Grad-CAM with an explain method, not an Interpreter."""

    layer_level = True

    def __init__(self, power=1.0):
        self.power = power

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        return cam(model, x, target, layer=layer, create_graph=create_graph, power=self.power)


class NoisyDuck:
    stochastic = True

    def __init__(self, seed=0):
        self.seed = seed

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        return torch.rand(x.shape[0], *x.shape[2:], generator=torch.Generator().manual_seed(self.seed))


def test_a_duck_typed_class_is_built_with_the_params(make_net, batch):
    model, layer, _ = make_net("cnn")
    x, target = batch
    interp = get_interpreter(DuckCAM, power=2.0)
    assert (interp.name, interp.params, interp.layer_level) == ("DuckCAM", {"power": 2.0}, True)
    torch.testing.assert_close(interp.explain(model, x, target, layer=layer),
                               cam(model, x, target, layer=layer, power=2.0))
    assert get_interpreter(DuckCAM, layer_level=False).layer_level is False


def test_a_duck_typed_instance_is_used_as_it_is(make_net, batch):
    model, layer, _ = make_net("cnn")
    interp = get_interpreter(DuckCAM(power=3.0))
    assert (interp.name, interp.params, interp.layer_level) == ("DuckCAM", {}, True)
    torch.testing.assert_close(interp.explain(model, *batch, layer=layer), cam(model, *batch, layer=layer, power=3.0))
    with pytest.raises(ConfigError, match=r"hyper-parameters \['power'\] cannot be applied to the already built"):
        get_interpreter(DuckCAM(), power=2.0)


def test_a_stochastic_duck_is_reseeded_by_building_its_class_again(make_net, batch):
    model, _, _ = make_net("cnn")
    interp = get_interpreter(NoisyDuck, seed=1).reseeded(4)
    assert interp.params == {"seed": 4}
    torch.testing.assert_close(interp.explain(model, *batch), NoisyDuck(seed=4).explain(model, *batch))
    with pytest.raises(ConfigError, match="pass its class rather than an instance"):
        get_interpreter(NoisyDuck())


# ------------------------------------------------------------------------ conformance, end to end


def _loaded(arch: str) -> LoadedModel:
    torch.manual_seed(0)
    model = tiny.build(arch).eval()
    return LoadedModel(track="tiny", name=arch, model=model, target_layer=model.get_submodule(model.target_layer_name),
                       num_classes=10, input_size=(64, 64))


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("spec", ["a plain function", "captum:LayerGradCam"])
def test_wrapped_and_adapted_methods_pass_the_conformance_checks(spec, check):
    if spec.startswith("captum"):
        pytest.importorskip("captum")
    x, y = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3])
    CHECKS[check](get_interpreter(cam if spec == "a plain function" else spec), _loaded("vgg"), x, y)


# ------------------------------------------------------------------------------ library adapters


def test_a_missing_library_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(ConfigError, match=r"pip install robustbench_interp\[captum\]"):
        get_interpreter("captum:Saliency")
    monkeypatch.setitem(sys.modules, "zennit.composites", None)
    with pytest.raises(ConfigError, match=r"pip install robustbench_interp\[zennit\]"):
        get_interpreter("zennit:EpsilonPlus")


def test_an_unknown_library_method_lists_the_adapted_ones():
    with pytest.raises(UnknownNameError, match=r"unknown captum method 'Salency'\. Did you mean 'Saliency'\?"):
        get_interpreter("captum:Salency")
    with pytest.raises(UnknownNameError, match="zennit:EpsilonPlus, zennit:EpsilonPlusFlat"):
        get_interpreter("zennit:attr.EpsilonPlus")


def _same(a, b):
    """Equal up to float rounding, relative to the larger map's scale."""
    scale = max(float(a.abs().max()), float(b.abs().max()))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * scale)


# adapter spec and params, the built-in it reproduces and its params
CAPTUM_VS_BUILTIN = {
    "Saliency": ({}, "simplegrad", {}),
    "InputXGradient": ({}, "gradient_x_input", {}),
    "IntegratedGradients": ({"n_steps": 8, "method": "riemann_middle"}, "integrated_gradients", {"steps": 8}),
    "LayerGradCam": ({}, "gradcam", {}),
}


@pytest.mark.parametrize("method", sorted(CAPTUM_VS_BUILTIN))
def test_captum_adapter_equals_its_builtin(method, any_net, batch):
    pytest.importorskip("captum")
    model, layer, _ = any_net
    params, builtin, builtin_params = CAPTUM_VS_BUILTIN[method]
    interp = get_interpreter(f"captum:{method}", **params)
    assert interp.name == f"captum:{method}"
    assert interp.layer_level == get_interpreter(builtin).layer_level
    _same(interp.explain(model, *batch, layer=layer), get_interpreter(builtin, **builtin_params).explain(model, *batch, layer=layer))


def test_captum_layer_gradcam_is_differentiable_with_gradcams_weight_gradient(any_net, batch):
    pytest.importorskip("captum")
    model, layer, _ = any_net
    interp = get_interpreter("captum:LayerGradCam")
    assert interp.differentiable
    h = interp.explain(model, *batch, layer=layer, create_graph=True)
    ref = get_interpreter("gradcam").explain(model, *batch, layer=layer, create_graph=True)
    r = torch.randn(ref.shape, generator=torch.Generator().manual_seed(0))
    params = list(model.parameters())
    grads = torch.autograd.grad((h * r).sum(), params, allow_unused=True)
    expected = torch.autograd.grad((ref * r).sum(), params, allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
    for g, e in zip(grads, expected):
        assert (g is None) == (e is None)
        if e is not None:
            _same(g, e)


@pytest.mark.parametrize("method", ["GuidedBackprop", "InputXGradient", "IntegratedGradients", "Saliency"])
def test_the_other_captum_adapters_are_not_differentiable(method, make_net, batch):
    pytest.importorskip("captum")
    model, layer, _ = make_net("cnn")
    interp = get_interpreter(f"captum:{method}")
    assert not interp.differentiable
    assert not interp.explain(model, *batch, layer=layer, create_graph=True).requires_grad


def test_captum_guided_backprop_by_hand():
    """z = W1 x, a = relu(z), y = W2 a: guided backprop passes d y_t / d a through the ReLU only where
    both z > 0 and the gradient is > 0 (Springenberg et al. 2015); reduced as simplegrad reduces."""
    pytest.importorskip("captum")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x, target = torch.rand(2, 3, 4, 4), torch.tensor([0, 2])
    w1, w2 = model[1].weight, model[3].weight
    z = model[1](x.flatten(1))
    guided = w2[target].clamp(min=0) * (z > 0)
    expected = (guided @ w1).view(2, 3, 4, 4).abs().amax(dim=1)
    _same(get_interpreter("captum:GuidedBackprop").explain(model, x, target), expected.detach())


def _cnn_without_linear_bias():
    """The test CNN with its linear layer's bias zeroed (zero_params zeroes every bias in zennit)."""
    from conftest import make_cnn

    model, layer, last = make_cnn()
    with torch.no_grad():
        model[-1].bias.zero_()
    return model, layer, last


def test_zennit_epsilon_plus_equals_the_builtin_lrp(batch):
    """The built-in lrp is zennit's EpsilonPlus (epsilon for linear layers, z+ for convolutions) with
    the convolutions' biases left out of z+ (zero_params=["bias"]); the CNN's BN scales are > 0."""
    pytest.importorskip("zennit")
    model, layer, _ = _cnn_without_linear_bias()
    interp = get_interpreter("zennit:EpsilonPlus", epsilon=0.01, zero_params=["bias"])
    _same(interp.explain(model, *batch, layer=layer), get_interpreter("lrp", epsilon=0.01).explain(model, *batch))


@pytest.mark.parametrize("composite", ["EpsilonAlpha2Beta1", "EpsilonPlus", "EpsilonPlusFlat"])
def test_zennit_adapters_are_maps_and_not_differentiable(composite, any_net, batch):
    pytest.importorskip("zennit")
    model, layer, _ = any_net
    interp = get_interpreter(f"zennit:{composite}")
    assert not interp.differentiable
    h = interp.explain(model, *batch, layer=layer, create_graph=True)
    assert h.shape == (3, 32, 32) and torch.isfinite(h).all() and h.abs().amax() > 0
    assert not h.requires_grad


def test_zennit_weight_gradient_is_wrong_so_the_adapter_declares_none():
    """Why zennit:* is not differentiable: with create_graph=True, zennit's map has a non-zero, finite
    gradient w.r.t. a weight, but not the map's derivative (its rules rebuild each layer's parameters
    from param.data). Measured against central differences in float64 along a random direction; the
    built-in lrp's gradient passes the same test. If this fails, zennit now differentiates through its
    rules: check it and let the adapter declare differentiable=True."""
    pytest.importorskip("zennit")
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlus
    from zennit.rules import Pass

    from robustbench_interp.models.base import Normalize

    model, _, _ = _cnn_without_linear_bias()
    model = model.double()
    gen = torch.Generator().manual_seed(0)
    x, target = torch.rand(3, 3, 32, 32, generator=gen, dtype=torch.float64), torch.tensor([1, 4, 7])
    r = torch.randn(3, 32, 32, generator=gen, dtype=torch.float64)
    weight = model[-1].weight
    direction = torch.randn(weight.shape, generator=gen, dtype=torch.float64)

    def zennit_map(create_graph=False):
        composite = EpsilonPlus(epsilon=0.01, zero_params=["bias"], layer_map=[(Normalize, Pass())])
        with Gradient(model, composite, create_graph=create_graph) as attributor:
            _, rel = attributor(x, lambda out: torch.eye(10, dtype=out.dtype)[target] * out)
        return (rel.sum(1) * r).sum()

    def lrp_map(create_graph=False):
        return (get_interpreter("lrp", epsilon=0.01).explain(model, x, target, create_graph=create_graph) * r).sum()

    def central_difference(f, eps=1e-6):
        w0 = weight.detach().clone()
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                weight.copy_(w0 + sign * eps * direction)
            values.append(float(f()))
        with torch.no_grad():
            weight.copy_(w0)
        return (values[0] - values[1]) / (2 * eps)

    for f, right in [(lrp_map, True), (zennit_map, False)]:
        (grad,) = torch.autograd.grad(f(create_graph=True), weight)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
        autograd, numeric = float((grad * direction).sum()), central_difference(f)
        assert (abs(autograd - numeric) <= 1e-4 * abs(numeric)) == right, (f.__name__, autograd, numeric)


def test_a_library_adapters_code_version_is_the_librarys_version(tmp_path):
    pytest.importorskip("captum")
    from importlib.metadata import version

    from robustbench_interp.interpreters import INTERPRETERS
    from robustbench_interp.runner import Runner
    from robustbench_interp.store import Store

    runner = Runner(Store(tmp_path))
    assert runner._code("captum:Saliency", INTERPRETERS) == f"captum=={version('captum')}"
