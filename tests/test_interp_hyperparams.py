"""Declared hyper-parameters (interpreters/hyperparams.py): every built-in refuses an unknown keyword
with the close name and a bad value with the fix, at construction; defaults are recorded as before;
plug-ins that declare nothing keep working, and a plug-in's own TypeError becomes the same error."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

import robustbench_interp as rbi
from robustbench_interp.errors import ConfigError
from robustbench_interp.interpreters import (
    INTERPRETERS,
    HyperParams,
    check_int,
    check_real,
    get_interpreter,
    register_interpreter,
)

#: The hyper-parameters each built-in accepts.
ACCEPTED = {
    "gradcam": [],
    "gradient_x_input": [],
    "integrated_gradients": ["baseline", "max_batch", "steps"],
    "lrp": ["epsilon"],
    "lrp_t": ["epsilon"],
    "simplegrad": [],
    "simplegrad_t": [],
    "smoothgrad": ["max_batch", "n_samples", "noise_level", "seed"],
}

#: repr and params of each built-in built with no keyword: what cell records held before the
#: declarations (key order included).
DEFAULTS = {
    "gradcam": ("GradCAM()", {}),
    "gradient_x_input": ("GradientXInput()", {}),
    "integrated_gradients": (
        "IntegratedGradients(baseline=0.0, max_batch=128, steps=32)",
        {"steps": 32, "baseline": 0.0, "max_batch": 128},
    ),
    "lrp": ("LRP(epsilon=0.01)", {"epsilon": 0.01}),
    "lrp_t": ("LRPT(epsilon=0.01)", {"epsilon": 0.01}),
    "simplegrad": ("SimpleGrad()", {}),
    "simplegrad_t": ("SimpleGradT()", {}),
    "smoothgrad": (
        "SmoothGrad(max_batch=128, n_samples=10, noise_level=0.15, seed=0)",
        {"n_samples": 10, "noise_level": 0.15, "seed": 0, "max_batch": 128},
    ),
}


def _typo(name: str) -> str:
    return name[:-1] if name.endswith("s") else name + "s"


def test_the_tables_cover_every_built_in():
    built_in = {n for n in INTERPRETERS.names() if INTERPRETERS.origin(n).startswith("robustbench_interp.")}
    assert built_in == set(ACCEPTED) == set(DEFAULTS)


@pytest.mark.parametrize("name", sorted(name for name, accepted in ACCEPTED.items() if accepted))
def test_a_mistyped_keyword_names_the_close_one_and_the_accepted_ones(name):
    for param in ACCEPTED[name]:
        with pytest.raises(ConfigError) as info:
            get_interpreter(name, **{_typo(param): 1})
        message = str(info.value)
        assert f"unknown hyper-parameter {_typo(param)!r} (did you mean {param!r}?)" in message
        assert f"interpreter {name!r}" in message
        assert f"accepted: {', '.join(ACCEPTED[name])}" in message


@pytest.mark.parametrize("name", sorted(name for name, accepted in ACCEPTED.items() if not accepted))
def test_a_method_without_hyper_parameters_refuses_every_keyword(name):
    with pytest.raises(ConfigError, match=f"unknown hyper-parameter 'n_samples' for interpreter '{name}'; "
                                          "it takes no hyper-parameters"):
        get_interpreter(name, n_samples=3)


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_the_class_itself_is_strict_too(name):
    cls = type(get_interpreter(name))
    with pytest.raises(ConfigError, match="unknown hyper-parameter 'n_sample'"):
        cls(n_sample=50)


@pytest.mark.parametrize(
    "name, key, value",
    [
        ("smoothgrad", "n_samples", 0),
        ("smoothgrad", "n_samples", 2.5),
        ("smoothgrad", "n_samples", True),
        ("smoothgrad", "n_samples", "10"),
        ("smoothgrad", "noise_level", -0.1),
        ("smoothgrad", "noise_level", math.nan),
        ("smoothgrad", "seed", 1.5),
        ("smoothgrad", "max_batch", 0),
        ("integrated_gradients", "steps", 0),
        ("integrated_gradients", "max_batch", -3),
        ("integrated_gradients", "baseline", "black"),
        ("integrated_gradients", "baseline", math.inf),
        ("lrp", "epsilon", 0),
        ("lrp", "epsilon", -1),
        ("lrp_t", "epsilon", "0.01"),
    ],
)
def test_a_bad_value_is_refused_at_construction_with_the_fix(name, key, value):
    with pytest.raises(ConfigError) as info:
        get_interpreter(name, **{key: value})
    message = str(info.value)
    assert message.startswith(f"interpreter {name!r}: {key}={value!r} is not ")
    assert f"e.g. the default {key}=" in message


def test_a_non_finite_baseline_tensor_is_refused():
    with pytest.raises(ConfigError, match="baseline=tensor"):
        get_interpreter("integrated_gradients", baseline=torch.tensor([0.0, math.nan, 0.0]).view(3, 1, 1))


@pytest.mark.parametrize(
    "name, params",
    [
        ("smoothgrad", {"n_samples": 1, "noise_level": 0, "seed": -5, "max_batch": 1}),
        ("integrated_gradients", {"steps": 1, "baseline": ((0.5,), (0.25,), (1,))}),
        ("integrated_gradients", {"baseline": torch.tensor([1.0, 0.0, 0.5]).view(3, 1, 1)}),
        ("lrp", {"epsilon": 1}),
    ],
)
def test_values_at_the_edges_are_accepted_and_recorded_as_given(name, params):
    interp = get_interpreter(name, **params)
    for key, value in params.items():
        assert interp.params[key] is value


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_the_defaults_are_recorded_as_before(name):
    interp = get_interpreter(name)
    expected_repr, expected_params = DEFAULTS[name]
    assert repr(interp) == expected_repr
    assert interp.params == expected_params
    assert list(interp.params) == list(expected_params)


# ------------------------------------------------------------------------------------- plug-ins


@pytest.fixture
def temporary_registry(monkeypatch):
    monkeypatch.setattr(INTERPRETERS, "_entries", dict(INTERPRETERS._entries))
    monkeypatch.setattr(INTERPRETERS, "_origins", dict(INTERPRETERS._origins))


class _Sum(rbi.Interpreter):
    def explain(self, model, x, target, *, layer=None, create_graph=False):
        return x.sum(1)


def test_a_plug_in_that_declares_nothing_keeps_any_keyword(temporary_registry):
    @register_interpreter("legacy_method")
    class Legacy(_Sum):
        def __init__(self, **params):
            super().__init__(**params)

    assert get_interpreter("legacy_method", anything=1, n_sample=2).params == {"anything": 1, "n_sample": 2}


def test_a_plug_ins_type_error_for_an_unknown_keyword_is_a_config_error(temporary_registry):
    @register_interpreter("explicit_method")
    class Explicit(_Sum):
        def __init__(self, *, alpha: float = 1.0, beta: int = 2) -> None:
            super().__init__(alpha=alpha, beta=beta)

    assert get_interpreter("explicit_method", alpha=0.5).params == {"alpha": 0.5, "beta": 2}
    with pytest.raises(ConfigError) as info:
        get_interpreter("explicit_method", alpah=0.5)
    assert str(info.value) == (
        "unknown hyper-parameter 'alpah' (did you mean 'alpha'?) for interpreter 'explicit_method'; "
        "accepted: alpha, beta"
    )
    assert isinstance(info.value.__cause__, TypeError)


def test_a_plug_ins_other_type_error_is_reported_as_it_was(temporary_registry):
    def factory(weights):
        return _Sum(weights=weights)

    register_interpreter("needs_weights")(factory)
    with pytest.raises(ConfigError, match=r"could not build interpreter 'needs_weights' with params \{\}"):
        get_interpreter("needs_weights")


@dataclass(frozen=True)
class _WindowParams(HyperParams):
    window: int = 3
    scale: float = 1.0

    def __post_init__(self) -> None:
        check_int(self, "window", at_least=1)
        check_real(self, "scale", above=0)


def test_a_plug_in_declares_its_own_dataclass(temporary_registry):
    @register_interpreter("window_method")
    class Window(_Sum):
        hyperparams = _WindowParams

    assert repr(get_interpreter("window_method")) == "Window(scale=1.0, window=3)"
    assert get_interpreter("window_method", window=5).params == {"window": 5, "scale": 1.0}
    with pytest.raises(ConfigError, match=r"'windows' \(did you mean 'window'\?\)"):
        get_interpreter("window_method", windows=5)
    with pytest.raises(ConfigError, match=r"^interpreter 'window_method': scale=0 is not a finite number > 0"):
        get_interpreter("window_method", scale=0)
