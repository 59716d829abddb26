"""Simple gradient (Simonyan, Vedaldi, Zisserman 2014, "Deep Inside Convolutional Networks").

``simplegrad``: ``h = max_c |d y_t / d x_c|``, the absolute input gradient of the target logit,
reduced over colour channels by the maximum (as in the paper). ``simplegrad_t``: the same at the
target layer's output, ``h = max_k |d y_t / d A_k|``.

The gradient helpers here are shared by the other gradient-based interpreters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from robustbench_interp.errors import InterpreterError
from robustbench_interp.interpreters import register_interpreter
from robustbench_interp.interpreters.base import Interpreter, check_inputs, require_layer


def class_score(logits: Tensor, target: Tensor) -> Tensor:
    """Sum over the batch of the target-class logits ``y_t``.

    Each image's logit depends on that image only (the model is in eval mode), so the gradient of
    this sum with respect to a batch of inputs is the per-image gradient of ``y_t``.
    """
    if logits.dim() != 2:
        raise InterpreterError(f"the model returned shape {tuple(logits.shape)}; expected logits [B, classes]")
    return logits.gather(1, target.view(-1, 1)).sum()


def input_gradient(model: nn.Module, x: Tensor, target: Tensor, create_graph: bool) -> Tensor:
    """``d y_t / d x`` for every image of the batch (x itself is left untouched)."""
    x_in = x.detach().requires_grad_(True)
    with torch.enable_grad():
        score = class_score(model(x_in), target)
        (grad,) = torch.autograd.grad(score, x_in, create_graph=create_graph)
    return grad


@contextlib.contextmanager
def layer_output(layer: nn.Module) -> Iterator[list[Tensor]]:
    """Record the output ``A`` of ``layer`` while handing the rest of the model a copy of it.

    The copy keeps ``A`` intact when the next module works in place (a ``ReLU(inplace=True)``
    after a convolution), so ``A`` holds the layer's own values and ``d y / d A`` is well defined.
    The hook is removed on exit, whatever happens.
    """
    outputs: list[Tensor] = []

    def hook(module: nn.Module, _inputs: Any, output: Any) -> Tensor:
        if not isinstance(output, Tensor) or output.dim() != 4:
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise InterpreterError(
                f"the target layer {type(module).__name__} returned {shape}; choose a layer whose output "
                "is a single [B, C, h, w] tensor"
            )
        outputs.append(output)
        return output.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()


def layer_gradient(
    model: nn.Module, x: Tensor, target: Tensor, layer: nn.Module, create_graph: bool
) -> tuple[Tensor, Tensor]:
    """The target layer's output ``A`` and ``d y_t / d A``; the gradient stops at ``A``."""
    with torch.enable_grad(), layer_output(layer) as outputs:
        logits = model(x.detach())
    if not outputs:
        raise InterpreterError(
            f"the target layer {type(layer).__name__} was not called during the forward pass; "
            "pass a module of this model"
        )
    act = outputs[-1]
    if not act.requires_grad:
        raise InterpreterError("the target layer's output does not require grad; is the model frozen?")
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(class_score(logits, target), act, create_graph=create_graph)
    return act, grad


@register_interpreter("simplegrad")
class SimpleGrad(Interpreter):
    """``max_c |d y_t / d x_c|`` on the input grid (Simonyan et al. 2014)."""

    def explain(
        self,
        model: nn.Module,
        x: Tensor,
        target: Tensor,
        *,
        layer: nn.Module | None = None,
        create_graph: bool = False,
    ) -> Tensor:
        x, target = check_inputs(x, target)
        return input_gradient(model, x, target, create_graph).abs().amax(dim=1)


@register_interpreter("simplegrad_t")
class SimpleGradT(Interpreter):
    """``max_k |d y_t / d A_k|`` on the grid of the target layer's output ``A``."""

    layer_level = True

    def explain(
        self,
        model: nn.Module,
        x: Tensor,
        target: Tensor,
        *,
        layer: nn.Module | None = None,
        create_graph: bool = False,
    ) -> Tensor:
        layer = require_layer(self, layer)
        x, target = check_inputs(x, target)
        _act, grad = layer_gradient(model, x, target, layer, create_graph)
        return grad.abs().amax(dim=1)


def chunked_input_gradient(
    model: nn.Module, xs: Tensor, target: Tensor, create_graph: bool, max_batch: int
) -> Tensor:
    """:func:`input_gradient` over a large batch, ``max_batch`` images per forward/backward."""
    if xs.shape[0] <= max_batch:
        return input_gradient(model, xs, target, create_graph)
    parts = [
        input_gradient(model, xs[i : i + max_batch], target[i : i + max_batch], create_graph)
        for i in range(0, xs.shape[0], max_batch)
    ]
    return torch.cat(parts)
