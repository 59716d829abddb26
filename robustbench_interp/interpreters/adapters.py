"""Any saliency method as an :class:`Interpreter`, in one line.

Besides a registered name, a ``"package.module:attr"`` path to an Interpreter subclass or factory and
an Interpreter instance, :func:`~robustbench_interp.interpreters.get_interpreter` takes:

- **An explain function** ``f(model, x, target, *, layer=None, create_graph=False) -> Tensor[B, h, w]``,
  by path (``--interpreter my_pkg.my_mod:my_saliency``) or as the object: :func:`wrap_function`. A
  callable is taken for one when its first three parameters are positional without a default; any
  other callable is a factory, called with the hyper-parameters. A function without a ``layer`` or a
  ``create_graph`` parameter is called without it: it then never sees the target layer (it cannot be
  layer-level) or decides alone whether its map keeps a graph.
- **A duck-typed class or object**: one with an ``explain`` method of that signature that does not
  subclass Interpreter. A class is built with the hyper-parameters, an object is used as it is.
- ``"captum:<Method>"`` and ``"zennit:<Composite>"``: :class:`CaptumInterpreter` and
  :class:`ZennitInterpreter`, the optional extras ``pip install robustbench_interp[captum]`` and
  ``[zennit]``.

**Declarations.** A wrapped function or object declares ``layer_level`` (default False),
``differentiable`` (default True) and ``stochastic`` (default False) as attributes
(``f.layer_level = True``; on a class, class attributes) or as keywords of ``get_interpreter``
(``get_interpreter("my_pkg.my_mod:f", layer_level=True)``); a keyword wins. These three keywords are
the wrapper's: a function cannot take hyper-parameters of these names. Every other keyword is a
hyper-parameter: passed to the function at every call (to the class when it is built), recorded in
``params``, and checked against the signature when wrapped, so a typo fails at once with the close
name. On the command line only attributes can declare (``--interpreter`` takes no keywords). A
stochastic function takes a ``seed`` keyword and draws all its noise from it; the benchmark reseeds it
through :meth:`Interpreter.reseeded`, which calls it with the new ``seed`` (a stochastic class is built
again with it; a stochastic object, which cannot be, is refused).

**Why differentiable defaults to True.** A function that detaches its map (``.detach()``,
``torch.no_grad``, a numpy round-trip) gives the manipulation penalty no gradient w.r.t. the weights.
The fine-tuning loop measures that gradient on its first steps (``_MaskingCheck`` in
:mod:`robustbench_interp.attacks.finetune`: a penalty with no graph counts as 0) and raises
:class:`~robustbench_interp.errors.GradientMaskingError`, a
:class:`~robustbench_interp.errors.NotDifferentiableError`, which the runner stores as "not attackable":
the interpreter is then scored by transfer only, never ranked as robust (and ``pytest suites/``'s
differentiable check fails with the reason). That check sees a *missing* gradient, not a *wrong* one:
a map whose graph reaches only some of the weights would be attacked with a wrong gradient and look
robust. So the library adapters declare ``differentiable`` only where their weight gradient was
measured to equal the built-in's (``tests/test_adapters.py``):

- ``captum:Saliency``: simplegrad (Captum's ``abs=True``, then the max over channels). Not differentiable [1].
- ``captum:InputXGradient``: gradient_x_input (sum over channels). Not differentiable [1].
- ``captum:IntegratedGradients``: integrated_gradients with ``method="riemann_middle"`` and
  ``n_steps`` = its ``steps`` (sum over channels; Captum's defaults are 50 Gauss-Legendre steps). Not
  differentiable [1].
- ``captum:GuidedBackprop`` (Springenberg et al. 2015): no built-in; ``|.|`` and the max over channels,
  as simplegrad reduces the gradient. Captum guides ``nn.ReLU`` modules only (a functional ReLU gets its
  plain gradient). Not differentiable [1]. On the tiny ResNet and DenseNet it fails the conformance
  suite's model-randomisation check, as Adebayo et al. 2018 found of guided backprop.
- ``captum:LayerGradCam``: gradcam on the same layer (``relu_attributions=True`` by default here,
  Captum's ``attr_dim_summation`` sums the channels). **Differentiable** [2].
- ``zennit:EpsilonPlus``: lrp (epsilon for linear layers, z+ for convolutions) when given lrp's
  ``epsilon`` and ``zero_params=["bias"]``, on a net whose linear layers have no bias (zennit zeroes
  every bias it is told to, lrp leaves only the convolutions' out of z+), whose BatchNorm scales are
  positive and whose every pooling, addition and concatenation is a module (below).
  ``zennit:EpsilonPlusFlat``, ``zennit:EpsilonAlpha2Beta1``: no built-in. All sum the input relevance
  over channels, as lrp does. Not differentiable [3].

[1] Captum computes these gradients with ``torch.autograd.grad`` without ``create_graph`` and takes no
``grad_kwargs`` for them: the map has no graph, or (input x gradient) one through ``x`` only.
[2] ``LayerGradCam.attribute`` passes ``grad_kwargs`` (Captum >= 0.8) to ``torch.autograd.grad``; with
``create_graph=True`` there, the map's gradient w.r.t. every weight equals gradcam's (to the last bit on
the three test nets); without it, the graph through the activations alone gives a wrong one.
[3] zennit's rules run each layer again with parameters rebuilt from ``param.data``
(``zennit.core.ParamMod``), so the map's graph misses the weights of every layer a rule is applied to:
its gradient w.r.t. a weight is non-zero and finite but wrong (on the test CNN in float64, the
derivative along a random direction of the linear weight is -0.122 by autograd and -0.0171 by central
differences; lrp's agree). The adapter returns a detached map.

Conventions, so that an adapter's map is the built-in's: relevance starts at the target logit ``y_t``
(zennit: ``one_hot * logits``), the model's :class:`~robustbench_interp.models.base.Normalize` passes
relevance through (zennit's ``Pass`` rule, as the built-in lrp does), and channels are reduced as the
corresponding built-in reduces them. zennit's canonizers are not applied: its BatchNorm layers pass
relevance through (zennit's layer map), which is the built-in's fusion into the convolution before
them when their scales are positive. zennit's rules attach to modules, so a functional op
(``F.adaptive_avg_pool2d``, a residual ``x + y``, ``torch.cat``) passes its plain gradient, where lrp
applies its proportional rules: on the test ResNet and DenseNet zennit:EpsilonPlus differs from lrp.
Hyper-parameters are the library's own keywords (Captum's
``attribute``, the zennit composite's constructor), checked by name when the interpreter is built.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustbench_interp.errors import ConfigError, InterpreterError, UnknownNameError
from robustbench_interp.interpreters.base import Interpreter, check_inputs, require_layer
from robustbench_interp.interpreters.hyperparams import unknown_params_error
from robustbench_interp.models.base import Normalize

__all__ = [
    "CAPTUM_METHODS",
    "DECLARATIONS",
    "EXPLAIN_SIGNATURE",
    "ZENNIT_COMPOSITES",
    "CaptumInterpreter",
    "FunctionInterpreter",
    "ZennitInterpreter",
    "is_duck",
    "is_explain_function",
    "is_library_spec",
    "library_interpreter",
    "split_declarations",
    "wrap_function",
    "wrap_object",
]

#: The keywords of ``get_interpreter`` that declare a wrapped function or object (never passed to it).
DECLARATIONS = {"layer_level": False, "differentiable": True, "stochastic": False}
#: The signature an explain function or method is called with.
EXPLAIN_SIGNATURE = "f(model, x, target, *, layer=None, create_graph=False) -> Tensor[B, h, w]"

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


# ------------------------------------------------------------------ explain functions and duck types


def split_declarations(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``params`` as ``(declarations, hyper-parameters)``: the keywords of :data:`DECLARATIONS`, the rest."""
    declared = {k: v for k, v in params.items() if k in DECLARATIONS}
    return declared, {k: v for k, v in params.items() if k not in DECLARATIONS}


def is_explain_function(obj: object) -> bool:
    """True for a callable that is not a class and whose first three parameters are positional
    without a default (``model, x, target``); such a callable is wrapped, any other is a factory."""
    if isinstance(obj, type) or not callable(obj):
        return False
    try:
        parameters = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return False
    required = [p for p in parameters[:3] if p.kind in _POSITIONAL and p.default is inspect.Parameter.empty]
    return len(required) == 3


def is_duck(obj: object) -> bool:
    """True for a class or object with a callable ``explain`` that is not an :class:`Interpreter`."""
    if isinstance(obj, Interpreter) or (isinstance(obj, type) and issubclass(obj, Interpreter)):
        return False
    return callable(getattr(obj, "explain", None))


def _declaration(name: str, obj: object, declared: Mapping[str, Any]) -> dict[str, bool]:
    """The three declarations of ``obj``: a keyword, else ``obj``'s attribute, else the default."""
    out = {}
    for key, default in DECLARATIONS.items():
        value = declared.get(key, getattr(obj, key, default))
        if not isinstance(value, bool):
            raise ConfigError(f"interpreter {name!r}: {key}={value!r} is not a bool; declare {key}=True or False")
        out[key] = value
    return out


@dataclass(frozen=True)
class _Call:
    """How a wrapped explain callable is called: which of ``layer``/``create_graph`` it takes."""

    takes_layer: bool = True
    takes_create_graph: bool = True


def _check_call(name: str, fn: Callable[..., Any], hyper: Mapping[str, Any], declared: Mapping[str, bool],
                *, seeded: bool) -> _Call:
    """Check at wrap time that ``fn`` can be called as :data:`EXPLAIN_SIGNATURE` with ``hyper``
    (and, when ``seeded`` and stochastic, with a ``seed`` keyword)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return _Call()  # a builtin without a signature: call it with every keyword
    parameters = sig.parameters
    any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())

    def takes(key: str) -> bool:
        return any_keyword or (key in parameters and parameters[key].kind in _NAMED)

    call = _Call(takes("layer"), takes("create_graph"))
    expected = f"expected {EXPLAIN_SIGNATURE}"
    if not any_keyword:
        keywords = [p.name for p in list(parameters.values())[3:] if p.kind in _NAMED]
        unknown = sorted(set(hyper) - set(keywords))
        if unknown:
            accepted = [k for k in keywords if k not in ("layer", "create_graph")]
            raise unknown_params_error(name, unknown, accepted)
    if declared["layer_level"] and not call.takes_layer:
        raise ConfigError(f"interpreter {name!r} declares layer_level=True but {_qualname(fn)}{sig} takes no "
                          f"'layer' keyword, so it never sees the target layer; {expected}")
    if declared["stochastic"] and seeded and not takes("seed"):
        raise ConfigError(f"interpreter {name!r} declares stochastic=True but {_qualname(fn)}{sig} takes no "
                          "'seed' keyword; take seed=0 and draw all noise from a torch.Generator seeded by it")
    layer_kw = {"layer": None} if call.takes_layer else {}
    graph_kw = {"create_graph": False} if call.takes_create_graph else {}
    try:
        sig.bind(None, None, None, **layer_kw, **graph_kw, **hyper)
    except TypeError as exc:
        raise ConfigError(f"interpreter {name!r}: {_qualname(fn)}{sig} cannot be called as "
                          f"f(model, x, target, ...) with hyper-parameters {dict(hyper)} ({exc}); {expected}") from exc
    return call


def _qualname(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


class _Adapter(Interpreter):
    """What the adapters share: a repr that shows the spec."""

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{type(self).__name__}({self.name!r}{args})"


class FunctionInterpreter(_Adapter):
    """An explain function, or a duck-typed object's ``explain``, as an :class:`Interpreter`.

    Built by :func:`wrap_function` and :func:`wrap_object`; ``params`` are the hyper-parameters (passed
    to the function at every call, or those the duck-typed class was built with).
    """

    def __init__(self, fn: Callable[..., Tensor], *, name: str, declared: Mapping[str, bool], call: _Call,
                 params: Mapping[str, Any], passed: Mapping[str, Any],
                 rebuild: Callable[[int], Interpreter] | None = None) -> None:
        super().__init__(**params)
        self.name = name  # type: ignore[misc]
        self.layer_level = declared["layer_level"]  # type: ignore[misc]
        self.differentiable = declared["differentiable"]  # type: ignore[misc]
        self.stochastic = declared["stochastic"]  # type: ignore[misc]
        self._fn, self._call, self._passed, self._rebuild = fn, call, dict(passed), rebuild

    def explain(self, model: nn.Module, x: Tensor, target: Tensor, *, layer: nn.Module | None = None,
                create_graph: bool = False) -> Tensor:
        x, target = check_inputs(x, target)
        keywords: dict[str, Any] = dict(self._passed)
        if self._call.takes_layer:
            keywords["layer"] = require_layer(self, layer) if self.layer_level else layer
        if self._call.takes_create_graph:
            keywords["create_graph"] = create_graph and self.differentiable
        return self._fn(model, x, target, **keywords)

    def reseeded(self, seed: int) -> Interpreter:
        if not self.stochastic:
            return self
        if self._rebuild is None:
            raise InterpreterError(f"interpreter {self.name!r} is a stochastic object that cannot be built again "
                                   "with a new seed; pass its class (built with seed=...) instead of an instance")
        return self._rebuild(int(seed))


def wrap_function(fn: Callable[..., Tensor], name: str, params: Mapping[str, Any]) -> FunctionInterpreter:
    """The explain function ``fn`` as an interpreter named ``name``; ``params`` are its declarations
    (:data:`DECLARATIONS`) and hyper-parameters. A function that cannot be called as
    :data:`EXPLAIN_SIGNATURE` with them is a :class:`ConfigError` naming it and that signature."""
    declared, hyper = split_declarations(params)
    declaration = _declaration(name, fn, declared)
    call = _check_call(name, fn, hyper, declaration, seeded=True)
    return FunctionInterpreter(fn, name=name, declared=declaration, call=call, params=hyper, passed=hyper,
                               rebuild=lambda seed: wrap_function(fn, name, {**params, "seed": seed}))


def wrap_object(obj: object, name: str, params: Mapping[str, Any], *, built_with: Mapping[str, Any] | None = None,
                rebuild: Callable[[int], Interpreter] | None = None) -> FunctionInterpreter:
    """The duck-typed object ``obj`` (an ``explain`` method, no Interpreter) as an interpreter.

    ``params`` may hold only declarations: an object is already built (``get_interpreter`` builds a
    duck-typed *class* with the hyper-parameters, then passes them here as ``built_with``, recorded in
    ``params``, and ``rebuild`` to build it again with another seed).
    """
    declared, hyper = split_declarations(params)
    if hyper:
        raise ConfigError(f"hyper-parameters {sorted(hyper)} cannot be applied to the already built object "
                          f"{name!r}; pass its class, or build it with them")
    declaration = _declaration(name, obj, declared)
    if declaration["stochastic"] and rebuild is None:
        raise ConfigError(f"interpreter {name!r} is a stochastic object: the benchmark reseeds it by building it "
                          "again with seed=..., so pass its class rather than an instance")
    explain = obj.explain  # type: ignore[attr-defined]
    call = _check_call(name, explain, {}, declaration, seeded=False)
    return FunctionInterpreter(explain, name=name, declared=declaration, call=call, params=built_with or {},
                               passed={}, rebuild=rebuild)


# --------------------------------------------------------------------------------- library adapters


def _import(library: str, module: str, spec: str) -> ModuleType:
    """Import ``module`` of the optional ``library``; a missing one says which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"interpreter {spec!r} needs {library}, which could not be imported ({exc}); install it "
                          f"with: pip install robustbench_interp[{library}]") from exc


def _lookup(library: str, method: str, table: Mapping[str, Any]) -> Any:
    """``table[method]``; an unknown method lists the adapted ones and the closest."""
    if method in table:
        return table[method]
    close = difflib.get_close_matches(method, table, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(f"unknown {library} method {method!r}.{hint} Adapted: "
                           f"{', '.join(f'{library}:{m}' for m in sorted(table))}.")


def _keywords(fn: Callable[..., Any], reserved: set[str]) -> list[str]:
    """The keyword parameters of ``fn`` a user may set: its named parameters but ``reserved``."""
    return [p.name for p in inspect.signature(fn).parameters.values() if p.kind in _NAMED and p.name not in reserved]


def _check_keywords(spec: str, given: Mapping[str, Any], accepted: list[str]) -> None:
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise unknown_params_error(spec, unknown, accepted)


def _max(attr: Tensor) -> Tensor:
    return attr.amax(dim=1)


def _abs_max(attr: Tensor) -> Tensor:
    return attr.abs().amax(dim=1)


def _sum(attr: Tensor) -> Tensor:
    return attr.sum(dim=1)


@dataclass(frozen=True)
class _CaptumMethod:
    """One Captum method: how its ``[B, C, h, w]`` attribution is reduced, and what it declares.

    ``defaults``: ``attribute`` keywords whose default differs from Captum's (recorded in ``params``).
    ``graph``: it passes ``grad_kwargs`` to ``torch.autograd.grad``, so ``create_graph`` reaches it.
    """

    reduce: Callable[[Tensor], Tensor]
    layer_level: bool = False
    graph: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)


CAPTUM_METHODS: dict[str, _CaptumMethod] = {
    # Captum's abs=True takes |d y_t / d x|; the max over channels is simplegrad's reduction.
    "Saliency": _CaptumMethod(_max),
    "InputXGradient": _CaptumMethod(_sum),
    "IntegratedGradients": _CaptumMethod(_sum),
    # a modified gradient, reduced as simplegrad reduces the gradient
    "GuidedBackprop": _CaptumMethod(_abs_max),
    # relu_attributions=True: Grad-CAM's ReLU (Selvaraju et al. 2017), Captum's default leaves it out
    "LayerGradCam": _CaptumMethod(_sum, layer_level=True, graph=True, defaults={"relu_attributions": True}),
}
#: ``attribute`` keywords the adapter sets itself.
_CAPTUM_RESERVED = {"self", "inputs", "target", "additional_forward_args", "return_convergence_delta",
                    "grad_kwargs", "attribute_to_layer_input", "attr_dim_summation"}


class CaptumInterpreter(_Adapter):
    """``"captum:<Method>"``: a Captum attribution method (Kokhlikyan et al. 2020, "Captum: A unified
    and generic model interpretability library for PyTorch") as an interpreter.

    The hyper-parameters are the keywords of the method's ``attribute`` (``n_steps``, ``method``,
    ``baselines``, ``internal_batch_size``, ``abs``, ``relu_attributions``...). The module doc says
    how each method's channels are reduced and which are differentiable.
    """

    def __init__(self, method: str, /, **params: Any) -> None:
        spec = f"captum:{method}"
        entry = _lookup("captum", method, CAPTUM_METHODS)
        self._cls = getattr(_import("captum", "captum.attr", spec), method)
        accepted = _keywords(self._cls.attribute, _CAPTUM_RESERVED)
        _check_keywords(spec, params, accepted)
        if entry.graph and "grad_kwargs" not in inspect.signature(self._cls.attribute).parameters:
            raise ConfigError(f"interpreter {spec!r} needs Captum >= 0.8 (grad_kwargs); "
                              "pip install -U robustbench_interp[captum]")
        super().__init__(**{**entry.defaults, **params})
        self.name = spec  # type: ignore[misc]
        self.layer_level = entry.layer_level  # type: ignore[misc]
        self.differentiable = entry.graph  # type: ignore[misc]
        self._entry = entry

    def explain(self, model: nn.Module, x: Tensor, target: Tensor, *, layer: nn.Module | None = None,
                create_graph: bool = False) -> Tensor:
        x, target = check_inputs(x, target)
        keywords = dict(self.params)
        if self._entry.layer_level:
            method = self._cls(model, require_layer(self, layer))
        else:
            method = self._cls(model)
        if self._entry.graph:
            keywords["grad_kwargs"] = {"create_graph": create_graph}
        inputs = x.detach().requires_grad_(True)  # Captum warns on an input that does not require grad
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
            attr = method.attribute(inputs, target=target, **keywords)
        h = self._entry.reduce(attr)
        return h if self.differentiable and create_graph else h.detach()


#: The zennit composites adapted (each with the Gradient attributor).
ZENNIT_COMPOSITES = ("EpsilonAlpha2Beta1", "EpsilonPlus", "EpsilonPlusFlat")
#: Composite keywords the adapter sets itself (or leaves out: canonizers, see the module doc).
_ZENNIT_RESERVED = {"self", "layer_map", "canonizers"}


class ZennitInterpreter(_Adapter):
    """``"zennit:<Composite>"``: LRP with a zennit composite and its Gradient attributor (Anders et al.
    2021, "Software for Dataset-wide XAI: From Local Explanations to Global Insights with Zennit,
    CoRelAy, and ViRelAy"), the input relevance summed over colour channels.

    The hyper-parameters are the composite's keywords (``epsilon``, ``stabilizer``, ``zero_params``;
    zennit's defaults). Not differentiable (module doc, note [3]).

    Each image is explained alone. LRP divides by small pre-activations ``z``, which amplifies the
    float rounding by which convolution kernels differ from one batch size to another: in a batch of
    eight, an image's map moved by up to 5e-4 of its largest value on the tiny DenseNet, above the
    conformance checks' tolerance (1e-4), so its map would depend on the other images of the batch.
    """

    differentiable = False

    def __init__(self, composite: str, /, **params: Any) -> None:
        spec = f"zennit:{composite}"
        _lookup("zennit", composite, dict.fromkeys(ZENNIT_COMPOSITES))
        self._cls = getattr(_import("zennit", "zennit.composites", spec), composite)
        self._attribution = _import("zennit", "zennit.attribution", spec)
        self._pass = _import("zennit", "zennit.rules", spec).Pass
        _check_keywords(spec, params, _keywords(self._cls, _ZENNIT_RESERVED))
        super().__init__(**params)
        self.name = spec  # type: ignore[misc]

    def explain(self, model: nn.Module, x: Tensor, target: Tensor, *, layer: nn.Module | None = None,
                create_graph: bool = False) -> Tensor:
        x, target = check_inputs(x, target)
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}
        composite = self._cls(layer_map=[(Normalize, self._pass())], **params)

        maps = []
        with torch.enable_grad(), self._attribution.Gradient(model, composite) as attributor:
            for i in range(x.shape[0]):  # each image alone: see the class doc
                def start_at_logit(logits: Tensor, t: Tensor = target[i : i + 1]) -> Tensor:
                    return F.one_hot(t, logits.shape[1]).to(logits.dtype) * logits  # y_t at the target, 0 elsewhere

                _logits, relevance = attributor(x[i : i + 1].detach(), start_at_logit)
                maps.append(relevance.sum(dim=1).detach())
        return torch.cat(maps)


_LIBRARIES: dict[str, type[Interpreter]] = {"captum": CaptumInterpreter, "zennit": ZennitInterpreter}


def is_library_spec(spec: str) -> bool:
    """True for ``"captum:..."`` and ``"zennit:..."`` (never import paths: neither package has its
    methods at the top level)."""
    return spec.partition(":")[0] in _LIBRARIES and ":" in spec


def library_interpreter(spec: str, **params: Any) -> Interpreter:
    """The adapter of ``spec`` (``"captum:Saliency"``, ``"zennit:EpsilonPlus"``...) built with ``params``."""
    library, _, method = spec.partition(":")
    return _LIBRARIES[library](method, **params)
