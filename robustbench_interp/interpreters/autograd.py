"""The autograd helpers every gradient-based interpreter shares, public so a plug-in need not copy them.

- :func:`capture_output`: record a layer's output during forward passes.
- :func:`class_score`: the summed target-class logits ``sum_b y_{t_b}``, whose gradient is each
  image's own ``d y_t / d x``.
- :func:`input_gradient`: ``d y_t / d x`` for a batch, in chunks of ``max_batch`` images if asked.
- :func:`layer_gradient`: the target layer's output ``A`` and ``d y_t / d A``.

:func:`capture_logits` records the model's output on one batch and :func:`shared_logits` picks
the logits to share; they are the manipulation step's (which takes its cross-entropy from them
where the interpreter allows:
:attr:`~robustbench_interp.interpreters.base.Interpreter.shares_forward`), not an interpreter's.
It and :func:`capture_output` are the package's forward hooks; each is removed on exit, whatever
happens.

Every gradient is taken with ``torch.autograd.grad`` (no ``.grad`` is written on the model's
parameters); with ``create_graph=True`` the result is differentiable with respect to the weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from robustbench_interp.errors import ConfigError, InterpreterError

__all__ = ["capture_output", "class_score", "input_gradient", "layer_gradient"]


@contextlib.contextmanager
def capture_output(layer: nn.Module) -> Iterator[list[Tensor]]:
    """Record the output ``A`` of ``layer`` during the forward passes inside the block.

    Yields a list that receives one tensor per call of ``layer``. The rest of the model is handed a
    copy of ``A``, so ``A`` keeps the layer's own values when the next module works in place (a
    ``ReLU(inplace=True)`` after a convolution) and ``d y / d A`` is well defined. The hook is
    removed on exit, whatever happens, so no hook is left behind.

    >>> with capture_output(model.layer4) as outputs:
    ...     logits = model(x)
    >>> act = outputs[-1]
    """
    outputs: list[Tensor] = []

    def hook(module: nn.Module, _inputs: Any, output: Any) -> Tensor:
        if not isinstance(output, Tensor):
            raise InterpreterError(
                f"the target layer {type(module).__name__} returned {type(output).__name__}, not a tensor; "
                "choose a layer whose output is a single [B, C, h, w] tensor"
            )
        outputs.append(output)
        return output.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()


@contextlib.contextmanager
def capture_logits(model: nn.Module, x: Tensor) -> Iterator[list[Tensor]]:
    """Record the model's outputs on the batch ``x`` itself during the forward passes inside the block.

    Yields a list that receives the output of every call of ``model`` whose input is ``x`` or a
    view of the whole of it (the same memory and shape, as ``x.detach()`` is); calls on other
    inputs (a chunk, a noisy copy, another batch) are not recorded. The output is not copied.
    """
    outputs: list[Tensor] = []
    pointer, shape = x.data_ptr(), x.shape

    def hook(_module: nn.Module, inputs: Any, output: Any) -> None:
        first = inputs[0] if inputs else None
        if isinstance(first, Tensor) and isinstance(output, Tensor) and first.data_ptr() == pointer \
                and first.shape == shape:
            outputs.append(output)

    handle = model.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()


def shared_logits(outputs: list[Tensor]) -> Tensor | None:
    """The logits a step may take its cross-entropy from, of those :func:`capture_logits` recorded:
    the one output, when there was exactly one and it carries a graph; else None (the step then
    makes a forward pass of its own)."""
    return outputs[0] if len(outputs) == 1 and outputs[0].requires_grad else None


def class_score(logits: Tensor, target: Tensor) -> Tensor:
    """Sum over the batch of the target-class logits ``y_t``.

    Each image's logit depends on that image only (the model is in eval mode), so the gradient of
    this sum with respect to a batch of inputs is the per-image gradient of ``y_t``.
    """
    if logits.dim() != 2:
        raise InterpreterError(
            f"the model returned shape {tuple(logits.shape)}; expected logits [B, classes]"
        )
    return logits.gather(1, target.view(-1, 1)).sum()


def _input_gradient(model: nn.Module, x: Tensor, target: Tensor, create_graph: bool) -> Tensor:
    x_in = x.detach().requires_grad_(True)
    with torch.enable_grad():
        score = class_score(model(x_in), target)
        (grad,) = torch.autograd.grad(score, x_in, create_graph=create_graph)
    return grad


def input_gradient(
    model: nn.Module, x: Tensor, target: Tensor, create_graph: bool = False, *, max_batch: int | None = None
) -> Tensor:
    """``d y_t / d x`` for every image of the batch ``x[B, C, H, W]`` (``x`` itself is left untouched).

    With ``max_batch`` the batch is cut into chunks of at most that many images, one
    forward/backward each (SmoothGrad's noisy copies, integrated gradients' path points).
    """
    if max_batch is not None and max_batch < 1:
        raise ConfigError(
            f"max_batch={max_batch!r} is not an int >= 1; pass the images per forward/backward, e.g. 128"
        )
    if max_batch is None or x.shape[0] <= max_batch:
        return _input_gradient(model, x, target, create_graph)
    parts = [
        _input_gradient(model, x[i : i + max_batch], target[i : i + max_batch], create_graph)
        for i in range(0, x.shape[0], max_batch)
    ]
    return torch.cat(parts)


def layer_gradient(
    model: nn.Module, x: Tensor, target: Tensor, layer: nn.Module, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    """The target layer's output ``A[B, C, h, w]`` and ``d y_t / d A``; the gradient stops at ``A``.

    ``A`` is returned attached to the graph; detach it when no differentiable map is wanted.
    """
    with torch.enable_grad(), capture_output(layer) as outputs:
        logits = model(x.detach())
    if not outputs:
        raise InterpreterError(
            f"the target layer {type(layer).__name__} was not called during the forward pass; "
            "pass a module of this model"
        )
    act = outputs[-1]
    if act.dim() != 4:
        raise InterpreterError(
            f"the target layer {type(layer).__name__} returned {tuple(act.shape)}; choose a layer whose "
            "output is a single [B, C, h, w] tensor"
        )
    if not act.requires_grad:
        raise InterpreterError("the target layer's output does not require grad; is the model frozen?")
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(class_score(logits, target), act, create_graph=create_graph)
    return act, grad
