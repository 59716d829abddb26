"""The layer-wise relevance propagation engine behind ``lrp`` and ``lrp_t``.

LRP (Bach et al. 2015, "On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise
Relevance Propagation"; Montavon et al. 2019, "Layer-Wise Relevance Propagation: An Overview")
redistributes the target logit ``y_t`` from the output to the input, layer by layer, so that each
layer's relevance sums (approximately) to ``y_t``. The composite used here (SPEC section 2):

==========================================  ====================================================
layer / op                                  rule
==========================================  ====================================================
Linear                                      epsilon: ``R_i = a_i w_ij / (z_j + eps sign z_j) R_j``
Conv2d (+ a BatchNorm right after it,       alpha1-beta0 (z+): ``R_i = (a_i w_ij)^+ / sum_i (a_i w_ij)^+ R_j``,
fused into its weights), bias ignored       i.e. ``conv(a+, W+) + conv(a-, W-)`` for signed inputs
max-pooling                                 winner-take-all (the max-pool gradient routes R to the argmax)
avg / adaptive-avg pooling, mean, sum       proportional (z rule, tiny stabiliser)
residual ``a + b`` (and ``a - b``)          proportional: ``R_a = a / (a + b) R``
``torch.cat``                               split by slices
ReLU, Dropout, Identity, Normalize,         pass-through; reshapes and permutations map R
BatchNorm not after a conv, x * constant    through with the same op's vector-Jacobian product
==========================================  ====================================================

A BatchNorm that does not follow a conv (DenseNet's pre-activation BN after a concatenation) passes
relevance through. The alternative, the epsilon rule on the affine map ``z = s a + t``, divides by
the BN output, which is centred on zero by construction: ``s a / z`` explodes (or flips sign)
wherever ``z`` is near 0, and the shift ``t`` swallows relevance. Pass-through keeps conservation;
the conv after the BN + ReLU already applies z+ to the normalised activations.

How it runs: the model is traced once with :mod:`torch.fx` (the trace is cached per model and
rebuilt when its modules change). Each call executes the graph node by node with out-of-place ops
(so in-place ReLUs / ``+=`` do not overwrite stored activations), keeps every node's value, then
walks the nodes in reverse order, each rule handing relevance to its input nodes (a node used
twice receives the sum). Rules are written as explicit tensor ops (conv / transposed conv, scatter)
on the model's current weights, so the result is differentiable w.r.t. the weights when the
pass runs with autograd on (``create_graph=True``); otherwise everything runs under ``no_grad``.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from robustbench_interp.errors import ConfigError, InterpreterError, UnsupportedModelError
from robustbench_interp.models.base import Normalize

_T = TypeVar("_T")

#: Stabiliser of the proportional (z) rules: pooling, additions.
Z_EPS = 1e-6
#: Floor of the z+ denominators (z+ >= 0; where it is 0 every contribution is 0 too).
ZPLUS_FLOOR = 1e-12


# --------------------------------------------------------------------------------------- tracing


class _Tracer(fx.Tracer):
    """fx tracer that keeps :class:`Normalize` whole and records the output node of every module
    call (containers included), so ``lrp_t`` can find e.g. the output of ResNet's ``layer4[-1]``."""

    def __init__(self) -> None:
        super().__init__()
        self.module_outputs: dict[str, fx.Node] = {}

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, Normalize) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        out = super().call_module(m, forward, args, kwargs)
        if isinstance(out, fx.Proxy):
            self.module_outputs[self.path_of_module(m)] = out.node
        return out


@dataclass
class _Trace:
    signature: tuple
    nodes: list[fx.Node]
    module_outputs: dict[str, fx.Node]
    live: set[fx.Node]  # nodes whose value depends on the input
    fused_bn: dict[fx.Node, fx.Node] = field(default_factory=dict)  # conv node -> BN node after it
    nonneg: set[fx.Node] = field(default_factory=set)  # nodes known to be >= 0 (a speed hint only)
    # conv node -> (key, (W+, W-)): split (fused) weights, reused while the tensors are unchanged
    # (``_cached``); only without autograd (with it, the split must stay on the graph of the weights).
    split_weights: dict[fx.Node, tuple[tuple, tuple[Tensor, Tensor]]] = field(default_factory=dict)
    # conv node -> (key, weight): the forward pass's weights in channels-last layout, on the same terms
    forward_weights: dict[fx.Node, tuple[tuple, Tensor]] = field(default_factory=dict)


_CACHE: weakref.WeakKeyDictionary[nn.Module, _Trace] = weakref.WeakKeyDictionary()


def _signature(model: nn.Module) -> tuple:
    """What the trace depends on: the module tree and the train/eval flags baked into it."""
    return tuple((name, id(m), type(m), m.training) for name, m in model.named_modules())


def get_trace(model: nn.Module) -> _Trace:
    """The cached fx trace of ``model``, rebuilt when its modules or train/eval flags changed."""
    sig = _signature(model)
    cached = _CACHE.get(model)
    if cached is not None and cached.signature == sig:
        return cached
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx raises many types (TraceError, TypeError, ...) on dynamic code
        raise UnsupportedModelError(
            f"LRP needs a torch.fx-traceable model; tracing {type(model).__name__} failed with "
            f"{type(exc).__name__}: {exc}. Remove data-dependent control flow from forward(), or use a "
            "gradient-based interpreter."
        ) from exc
    nodes = list(graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if not placeholders:
        raise UnsupportedModelError(f"{type(model).__name__}.forward takes no input tensor")
    live = {placeholders[0]}
    for node in nodes:
        if node.op != "placeholder" and any(a in live for a in node.all_input_nodes):
            live.add(node)
    trace = _Trace(sig, nodes, dict(tracer.module_outputs), live)
    for node in nodes:
        if node.op == "call_module" and isinstance(model.get_submodule(node.target), nn.BatchNorm2d):
            src = node.args[0]
            if (
                isinstance(src, fx.Node)
                and src.op == "call_module"
                and isinstance(model.get_submodule(src.target), nn.Conv2d)
                and len(src.users) == 1
            ):
                trace.fused_bn[src] = node
    trace.nonneg = _nonneg_nodes(model, nodes)
    _CACHE[model] = trace
    return trace


_RELU_MODULES = (nn.ReLU, nn.ReLU6)
_KEEP_SIGN_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten,
                      nn.Dropout, nn.Identity)
_RELU_FUNCS = {F.relu, torch.relu, torch.relu_, F.relu_, F.relu6, "relu", "relu_"}
_KEEP_SIGN_FUNCS = {torch.flatten, torch.cat, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.dropout,
                    operator.add, operator.iadd, "view", "reshape", "flatten", "contiguous"}


def _nonneg_nodes(model: nn.Module, nodes: list[fx.Node]) -> set[fx.Node]:
    """Nodes whose values are >= 0 by construction: ReLU outputs and sign-keeping ops of them."""
    nonneg: set[fx.Node] = set()
    for node in nodes:
        if node.op == "call_module":
            mod = model.get_submodule(node.target)
            relu, keep = isinstance(mod, _RELU_MODULES), isinstance(mod, _KEEP_SIGN_MODULES)
        elif node.op in ("call_function", "call_method"):
            relu, keep = node.target in _RELU_FUNCS, node.target in _KEEP_SIGN_FUNCS
        else:
            continue
        inputs = node.all_input_nodes
        if relu or (keep and inputs and all(n in nonneg for n in inputs)):
            nonneg.add(node)
    return nonneg


def target_node(model: nn.Module, trace: _Trace, layer: nn.Module) -> fx.Node:
    """The graph node holding the output of ``layer`` (a leaf or a container module)."""
    name = next((n for n, m in model.named_modules() if m is layer), None)
    if name is None:
        raise ConfigError(
            f"the target layer {type(layer).__name__} is not a submodule of {type(model).__name__}; "
            "pass a module of this model (load_model(...).target_layer)"
        )
    node = trace.module_outputs.get(name)
    if node is None:
        raise InterpreterError(
            f"the target layer {name!r} ({type(layer).__name__}) is never called in the traced forward "
            "pass, or returns something other than one tensor"
        )
    return node


# ------------------------------------------------------------------------------------- forward

_OUT_OF_PLACE: dict[Any, Any] = {
    operator.iadd: operator.add,
    operator.isub: operator.sub,
    operator.imul: operator.mul,
    operator.itruediv: operator.truediv,
    torch.relu_: torch.relu,
    F.relu_: F.relu,
}


def _fetch_attr(model: nn.Module, target: str) -> Any:
    obj: Any = model
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _call_module(mod: nn.Module, args: tuple, kwargs: dict) -> Any:
    if isinstance(mod, nn.ReLU):
        return F.relu(args[0])
    if getattr(mod, "inplace", False) and args and isinstance(args[0], Tensor):
        return mod(args[0].clone(), *args[1:], **kwargs)
    return mod(*args, **kwargs)


def run_forward(model: nn.Module, trace: _Trace, x: Tensor) -> tuple[dict[fx.Node, Any], dict[fx.Node, Tensor]]:
    """Execute the traced graph on ``x`` with out-of-place ops.

    Returns every node's value, and the argmax indices of every max-pooling module (for the
    winner-take-all rule).
    """
    env: dict[fx.Node, Any] = {}
    argmax: dict[fx.Node, Tensor] = {}
    first = True
    for node in trace.nodes:
        args = fx.node.map_arg(node.args, env.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, env.__getitem__)
        if node.op == "placeholder":
            if first:
                env[node], first = x, False
            elif node.args:
                env[node] = node.args[0]  # the argument's default value
            else:
                raise UnsupportedModelError(
                    f"{type(model).__name__}.forward needs argument {node.target!r} besides the image"
                )
        elif node.op == "get_attr":
            env[node] = _fetch_attr(model, node.target)
        elif node.op == "call_module":
            mod = model.get_submodule(node.target)
            if type(mod) is nn.MaxPool2d and not kwargs and len(args) == 1:
                env[node], argmax[node] = F.max_pool2d(args[0], return_indices=True, **_pool_opts(mod))
            elif (type(mod) is nn.Conv2d and not kwargs and len(args) == 1 and not torch.is_grad_enabled()
                  and not _has_hooks(mod)):
                env[node] = mod._conv_forward(args[0], _forward_weight(trace, node, mod.weight), mod.bias)
            else:
                env[node] = _call_module(mod, args, kwargs)
        elif node.op == "call_function":
            fn = _OUT_OF_PLACE.get(node.target, node.target)
            if kwargs.get("inplace"):
                kwargs = {**kwargs, "inplace": False}
            env[node] = fn(*args, **kwargs)
        elif node.op == "call_method":
            name = node.target
            if name.endswith("_") and not name.startswith("_") and hasattr(torch.Tensor, name[:-1]):
                name = name[:-1]
            env[node] = getattr(args[0], name)(*args[1:], **kwargs)
        elif node.op == "output":
            env[node] = args[0]
    return env, argmax


def _has_hooks(mod: nn.Module) -> bool:
    """Whether a call of ``mod`` runs hooks (its own or global ones: pruning and the hook-based
    weight and spectral norms recompute ``weight`` in a pre-hook), so it must be called as a module."""
    from torch.nn.modules import module as _module

    return bool(mod._forward_pre_hooks or mod._forward_hooks or _module._global_forward_pre_hooks
                or _module._global_forward_hooks)


def _tensor_key(t: Tensor) -> tuple:
    """What identifies a tensor's current values for a cache: the version counter follows in-place
    ops, the storage, device and dtype follow ``.data`` swaps (``model.to``, ``.half()``), which
    keep the version. (An in-place op on ``.data`` itself is not seen.)"""
    return (t._version, t.data_ptr(), t.device, t.dtype)


def _cached(cache: dict[fx.Node, Any], node: fx.Node, tensors: Sequence[Tensor], extra: tuple,
            build: Callable[[], _T]) -> _T:
    """``build()``, kept in ``cache`` under ``node`` while ``tensors`` are the same tensors with the
    same values (:func:`_tensor_key`) and ``extra`` is unchanged. The entry holds the memory it was
    keyed on (an alias of each tensor's data), so that memory cannot be freed and handed to new
    values at the same address while the entry stands: a ``.data`` swap always changes the key."""
    key = tuple(_tensor_key(t) for t in tensors) + extra
    found = cache.get(node)
    if found is not None and found[0][1] == key and all(ref() is t for ref, t in zip(found[0][0], tensors)):
        return found[1]
    value = build()
    held = tuple(t.detach() for t in tensors)
    cache[node] = ((tuple(weakref.ref(t) for t in tensors), key, held), value)
    return value


def _forward_weight(trace: _Trace, node: fx.Node, weight: Tensor) -> Tensor:
    """``weight`` in channels-last layout, as the activations are (``_prepare_input``), cached
    (:func:`_cached`): a convolution would reorder it at every call."""
    return _cached(trace.forward_weights, node, (weight,), (),
                   lambda: weight.contiguous(memory_format=torch.channels_last))


def _pool_opts(mod: nn.MaxPool2d) -> dict[str, Any]:
    return dict(kernel_size=mod.kernel_size, stride=mod.stride, padding=mod.padding,
                dilation=mod.dilation, ceil_mode=mod.ceil_mode)


# ----------------------------------------------------------------------------------- rule helpers


def _stabilise(z: Tensor, eps: float) -> Tensor:
    """``z + eps * sign(z)`` with ``sign(0) = 1``."""
    if torch.is_grad_enabled():
        return z + torch.where(z >= 0, eps, -eps)
    return z.abs().add_(eps).copysign_(z)  # same values (sign(+0) = 1) in 3 cheap in-place passes


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast result back to an operand's ``shape``."""
    if t.shape == shape:
        return t
    lead = t.dim() - len(shape)
    t = t.sum(dim=tuple(range(lead))) if lead > 0 else t
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and t.shape[i] != 1)
    return t.sum(dim=dims, keepdim=True) if dims else t


def _vjp(fn: Callable[[Tensor], Tensor], like: Tensor, grad_out: Tensor, create_graph: bool) -> Tensor:
    """``J^T grad_out`` of a *linear* ``fn`` (pooling, slicing, permuting), evaluated at zeros."""
    with torch.enable_grad():
        leaf = torch.zeros_like(like, requires_grad=True)
        (g,) = torch.autograd.grad(fn(leaf), leaf, grad_out, create_graph=create_graph)
    return g


def _conv_padding(conv: nn.Conv2d) -> tuple[int, int]:
    if conv.padding_mode != "zeros":
        raise UnsupportedModelError(
            f"LRP supports zero-padded convolutions only; {conv} uses padding_mode={conv.padding_mode!r}"
        )
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":
        total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
        if any(t % 2 for t in total):
            raise UnsupportedModelError(f"LRP cannot handle asymmetric 'same' padding of {conv}")
        return (total[0] // 2, total[1] // 2)
    return tuple(conv.padding)  # type: ignore[return-value]


def _split_weight(w: Tensor) -> tuple[Tensor, Tensor]:
    return w.clamp(min=0), w.clamp(max=0)


def _conv_input_grad(conv: nn.Conv2d, s: Tensor, w: Tensor, a: Tensor, pad: tuple[int, int]) -> Tensor:
    """``J^T s`` of ``a -> conv2d(a, w)``: a transposed convolution."""
    if not torch.is_grad_enabled():  # the backward kernel autograd itself uses (no weight reorder)
        return torch.ops.aten.convolution_backward(
            s, a, w, None, conv.stride, pad, conv.dilation, False, [0, 0], conv.groups, [True, False, False]
        )[0]
    out_pad = [
        a.shape[2 + i]
        - ((s.shape[2 + i] - 1) * conv.stride[i] - 2 * pad[i] + conv.dilation[i] * (conv.kernel_size[i] - 1) + 1)
        for i in range(2)
    ]
    return F.conv_transpose2d(
        s, w, stride=conv.stride, padding=pad, output_padding=out_pad, groups=conv.groups, dilation=conv.dilation
    )


def _conv_zplus(
    conv: nn.Conv2d, a: Tensor, r: Tensor, weights: tuple[Tensor, Tensor], nonneg: bool
) -> Tensor:
    """alpha1-beta0 through ``conv`` with its (BN-fused) weights split as ``(W+, W-)``.

    ``nonneg`` says ``a >= 0`` is known (a ReLU output), which saves the negative half.
    """
    w_pos, w_neg = weights
    pad = _conv_padding(conv)
    opts = dict(stride=conv.stride, padding=pad, dilation=conv.dilation, groups=conv.groups)
    signed = not nonneg and bool(a.amin() < 0)
    a_pos = a.clamp(min=0) if signed else a
    z = F.conv2d(a_pos, w_pos, **opts)
    if signed:
        a_neg = a.clamp(max=0)
        z = z + F.conv2d(a_neg, w_neg, **opts)
    grad_mode = torch.is_grad_enabled()
    s = r / (z.clamp(min=ZPLUS_FLOOR) if grad_mode else z.clamp_(min=ZPLUS_FLOOR))
    back = _conv_input_grad(conv, s, w_pos, a, pad)
    rel = a_pos * back if grad_mode else back.mul_(a_pos)
    if signed:
        rel = rel + a_neg * _conv_input_grad(conv, s, w_neg, a, pad)
    return rel


def _bn_scale(bn: nn.BatchNorm2d, conv_out: Tensor) -> Tensor:
    """Per-channel factor ``gamma / sqrt(var + eps)`` a BN multiplies its input by."""
    if bn.training or bn.running_var is None:
        var = conv_out.var(dim=(0, 2, 3), unbiased=False)
    else:
        var = bn.running_var
    scale = torch.rsqrt(var + bn.eps)
    return scale if bn.weight is None else bn.weight * scale


def _linear_eps(a: Tensor, weight: Tensor, z: Tensor, r: Tensor, eps: float) -> Tensor:
    """Epsilon rule through ``z = a W^T + b``; ``z`` is the layer's output from the forward pass."""
    return a * ((r / _stabilise(z, eps)) @ weight)


def _proportional(a: Tensor, fn: Callable[[Tensor], Tensor], z: Tensor, r: Tensor, create_graph: bool) -> Tensor:
    """z rule through a linear, weight-free op ``z = fn(a)`` (average pooling, mean, sum)."""
    return a * _vjp(fn, a, r / _stabilise(z, Z_EPS), create_graph)


def _winner_take_all(a: Tensor, r: Tensor, idx: Tensor) -> Tensor:
    """Route each pooled cell's relevance to its argmax ``idx`` (what the max-pool gradient does)."""
    flat = torch.zeros(a.shape[0], a.shape[1], a.shape[2] * a.shape[3], dtype=r.dtype, device=r.device)
    return flat.scatter_add(2, idx.flatten(2), r.flatten(2)).view_as(a)


# --------------------------------------------------------------------------------------- rules

_PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Dropout, nn.Dropout2d, nn.AlphaDropout, nn.Identity, Normalize,
    nn.BatchNorm1d, nn.BatchNorm2d,
)
_RESHAPE_MODULES = (nn.Flatten, nn.Unflatten)

_PASS_FUNCS = {F.relu, torch.relu, torch.relu_, F.relu_, F.relu6, F.leaky_relu, F.dropout, torch.dropout,
               F.dropout2d, torch.clone, operator.neg, torch.neg}
_PASS_METHODS = {"relu", "clone", "contiguous", "neg", "float", "to", "type_as", "detach"}
_RESHAPE_FUNCS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze}
_RESHAPE_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as", "reshape_as"}
_REARRANGE_FUNCS = {operator.getitem, torch.permute, torch.transpose}
_REARRANGE_METHODS = {"permute", "transpose", "expand", "expand_as", "__getitem__", "t"}
_ADD = {operator.add, operator.iadd, torch.add, "add"}
_SUB = {operator.sub, operator.isub, torch.sub, "sub"}
_SCALE = {operator.mul, operator.imul, torch.mul, "mul", operator.truediv, operator.itruediv, torch.div, "div"}
_CAT = {torch.cat, torch.concat, torch.concatenate}
_AVG_FUNCS = {F.avg_pool2d, F.adaptive_avg_pool2d, torch.mean, torch.sum, "mean", "sum"}
_MAXPOOL_FUNCS = {F.max_pool2d, torch.max_pool2d}


def _describe(node: fx.Node, model: nn.Module) -> str:
    if node.op == "call_module":
        return f"module {type(model.get_submodule(node.target)).__name__} ({node.target})"
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", repr(node.target))
    kind = "method" if node.op == "call_method" else "function"
    return f"{kind} {target!r}"


def _unsupported(node: fx.Node, model: nn.Module, why: str = "") -> UnsupportedModelError:
    return UnsupportedModelError(
        f"LRP has no rule for {_describe(node, model)} at graph node {node.name!r}{why}. Supported: Conv2d, "
        "Linear, BatchNorm, ReLU, Dropout, Identity, Normalize, max / avg / adaptive-avg pooling, residual "
        "+, torch.cat, flatten / view / reshape; use a gradient-based interpreter for this model."
    )


class _Propagator:
    """Applies the rules of one LRP pass (see the module doc) node by node."""

    def __init__(
        self, model: nn.Module, trace: _Trace, env: dict, argmax: dict, epsilon: float, create_graph: bool
    ) -> None:
        self.model, self.trace, self.env, self.argmax = model, trace, env, argmax
        self.epsilon, self.create_graph = epsilon, create_graph

    def __call__(self, node: fx.Node, r: Tensor) -> list[tuple[Any, Tensor]]:
        """Relevance handed to each input of ``node`` given the relevance ``r`` of its output."""
        if node.op == "call_module":
            return self._module(node, self.model.get_submodule(node.target), r)
        if node.op in ("call_function", "call_method"):
            return self._function(node, r)
        raise _unsupported(node, self.model)

    def _module(self, node: fx.Node, mod: nn.Module, r: Tensor) -> list[tuple[Any, Tensor]]:
        src = node.args[0]
        a = self.env[src]
        if isinstance(mod, nn.Conv2d):
            return [(src, _conv_zplus(mod, a, r, self._conv_weights(node, mod), src in self.trace.nonneg))]
        if isinstance(mod, nn.Linear):
            return [(src, _linear_eps(a, mod.weight, self.env[node], r, self.epsilon))]
        if isinstance(mod, _PASS_MODULES):
            return [(src, r)]
        if isinstance(mod, _RESHAPE_MODULES):
            return [(src, r.reshape(a.shape))]
        if isinstance(mod, nn.MaxPool2d):
            idx = self.argmax.get(node)
            if idx is None:
                idx = F.max_pool2d(a, return_indices=True, **_pool_opts(mod))[1]
            return [(src, _winner_take_all(a, r, idx))]
        if isinstance(mod, nn.AdaptiveMaxPool2d):
            return [(src, _winner_take_all(a, r, F.adaptive_max_pool2d(a, mod.output_size, True)[1]))]
        if isinstance(mod, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return [(src, _proportional(a, mod, self.env[node], r, self.create_graph))]
        raise _unsupported(node, self.model)

    def _conv_weights(self, node: fx.Node, conv: nn.Conv2d) -> tuple[Tensor, Tensor]:
        """``(W+, W-)`` of ``conv``, with the BN after it (if any) fused into ``W``."""
        bn_node = self.trace.fused_bn.get(node)
        bn = None if bn_node is None else self.model.get_submodule(bn_node.target)
        def fused() -> Tensor:
            w = conv.weight
            return w if bn is None else w * _bn_scale(bn, self.env[node]).view(-1, 1, 1, 1)

        if torch.is_grad_enabled() or (bn is not None and (bn.training or bn.running_var is None)):
            return _split_weight(fused())
        tensors = [conv.weight] + ([] if bn is None else [t for t in (bn.weight, bn.running_var) if t is not None])
        # kept in the activations' channels-last layout (``_prepare_input``): the convolutions would
        # otherwise reorder the weights at every call (the same values; about 15 % of an LRP pass)
        return _cached(self.trace.split_weights, node, tensors, (bn.eps,) if bn is not None else (),
                       lambda: tuple(t.contiguous(memory_format=torch.channels_last) for t in _split_weight(fused())))

    def _function(self, node: fx.Node, r: Tensor) -> list[tuple[Any, Tensor]]:
        op = node.target
        if isinstance(op, str) and op.endswith("_") and not op.startswith("_"):
            op = op[:-1]
        args, kwargs, env = node.args, node.kwargs, self.env
        if op in _ADD or op in _SUB:
            return self._sum(node, r, negate_second=op in _SUB)
        if op in _SCALE:
            return self._scale(node, r, divide=op in {operator.truediv, operator.itruediv, torch.div, "div"})
        if op in _CAT:
            return self._cat(node, r)
        src = args[0]
        a = env[src]
        if not isinstance(a, Tensor):
            raise _unsupported(node, self.model, f" (its input is a {type(a).__name__}, not a tensor)")
        if op in _PASS_FUNCS or op in _PASS_METHODS:
            return [(src, r)]
        if op in _RESHAPE_FUNCS or op in _RESHAPE_METHODS:
            return [(src, r.reshape(a.shape))]
        rest = fx.node.map_arg(args[1:], env.__getitem__)
        kw = fx.node.map_arg(kwargs, env.__getitem__)
        if isinstance(op, str):
            def fn(t: Tensor) -> Tensor:
                return getattr(t, op)(*rest, **kw)
        else:
            def fn(t: Tensor) -> Tensor:
                return op(t, *rest, **kw)
        if op in _REARRANGE_FUNCS or op in _REARRANGE_METHODS:
            return [(src, _vjp(fn, a, r, self.create_graph))]
        if op in _AVG_FUNCS:
            return [(src, _proportional(a, fn, env[node], r, self.create_graph))]
        if op in _MAXPOOL_FUNCS:
            idx = F.max_pool2d(a, *rest, **{**kw, "return_indices": True})[1]
            return [(src, _winner_take_all(a, r, idx))]
        if op is F.linear:
            return [(src, _linear_eps(a, rest[0], env[node], r, self.epsilon))]
        raise _unsupported(node, self.model)

    def _sum(self, node: fx.Node, r: Tensor, negate_second: bool) -> list[tuple[Any, Tensor]]:
        """Proportional split of ``a + b`` (``a - b``, ``torch.add(a, b, alpha=k)``) among its terms."""
        s = r / _stabilise(self.env[node], Z_EPS)
        alpha = node.kwargs.get("alpha", 1)
        out = []
        for i, arg in enumerate(node.args[:2]):
            if arg in self.trace.live:
                term = self.env[arg]
                if i == 1:
                    term = term * (-alpha if negate_second else alpha)
                out.append((arg, _sum_to(term * s, self.env[arg].shape)))
        return out

    def _scale(self, node: fx.Node, r: Tensor, divide: bool) -> list[tuple[Any, Tensor]]:
        """``a * c`` or ``a / c`` with a constant ``c``: all relevance goes to ``a``."""
        live = [(i, a) for i, a in enumerate(node.args[:2]) if a in self.trace.live]
        if len(live) != 1 or (divide and live[0][0] != 0):
            raise _unsupported(node, self.model, " (a product of two input-dependent tensors)")
        arg = live[0][1]
        return [(arg, _sum_to(r, self.env[arg].shape))]

    def _cat(self, node: fx.Node, r: Tensor) -> list[tuple[Any, Tensor]]:
        tensors = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        sizes = [self.env[t].shape[dim] if isinstance(t, fx.Node) else t.shape[dim] for t in tensors]
        return [(t, piece) for t, piece in zip(tensors, r.split(sizes, dim=dim)) if t in self.trace.live]


# ------------------------------------------------------------------------------------ entry point


def _initial_relevance(logits: Any, target: Tensor) -> Tensor:
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise InterpreterError(f"LRP expects the model to return logits [B, classes], got {shape}")
    idx = target.view(-1, 1)
    return torch.zeros_like(logits).scatter(1, idx, logits.gather(1, idx))


def relevance(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    layer: nn.Module | None = None,
    epsilon: float = 0.01,
    create_graph: bool = False,
) -> Tensor:
    """LRP-composite relevance ``[B, C, H, W]`` of the input, or of ``layer``'s output if given.

    The relevance starts as ``y_t`` (the one-hot target times the logits) at the output. With
    ``create_graph=True`` the result is differentiable w.r.t. the model's parameters.
    """
    trace = get_trace(model)
    stop = target_node(model, trace, layer) if layer is not None else None
    grad_mode = torch.enable_grad() if create_graph else torch.no_grad()
    with grad_mode:
        env, argmax = run_forward(model, trace, _prepare_input(x))
        out_node = trace.nodes[-1]
        rel: dict[fx.Node, Tensor] = {}
        start = out_node.args[0]
        if not isinstance(start, fx.Node):
            raise InterpreterError("LRP expects the model to return a single logits tensor")
        rel[start] = _initial_relevance(env[out_node], target)
        rule = _Propagator(model, trace, env, argmax, epsilon, create_graph)
        for node in reversed(trace.nodes):
            if node is stop:
                break
            if node.op == "placeholder":
                continue
            r = rel.pop(node, None)
            if r is None:
                continue
            for arg, contribution in rule(node, r):
                if isinstance(arg, fx.Node) and arg in trace.live:
                    rel[arg] = rel[arg] + contribution if arg in rel else contribution
        end = stop if stop is not None else next(n for n in trace.nodes if n.op == "placeholder")
        result = rel.get(end)
        if result is None:  # no relevance reached it (the layer is off the path to the output)
            result = torch.zeros_like(env[end])
    return result


def _prepare_input(x: Tensor) -> Tensor:
    """``x`` detached, in channels-last layout: the convolutions that follow (the model's, then the
    z+ rule's and the transposed ones) keep that layout and run markedly faster on oneDNN (CPU) and
    cuDNN; the values are unchanged."""
    return x.detach().contiguous(memory_format=torch.channels_last)
