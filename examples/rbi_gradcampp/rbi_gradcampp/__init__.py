"""Grad-CAM++ (Chattopadhay, Sarkar, Howlader, Balasubramanian, WACV 2018,
"Grad-CAM++: Generalized Gradient-Based Visual Explanations for Deep Convolutional Networks").

An example plug-in for robustbench_interp: an :class:`~robustbench_interp.Interpreter` subclass,
registered through the entry point ``gradcampp`` of the group ``robustbench_interp.interpreters``
(see this package's ``pyproject.toml``); no import of this module is needed to use it.

With ``A`` the target layer's output ``[B, K, h, w]``, ``y_c`` the target-class logit and
``g = d y_c / d A``, the paper's closed form under the exponential-of-score assumption
(``Y_c = exp(y_c)``, so second and third derivatives are powers of ``g``) is::

    alpha_kij = g_kij^2 / (2 g_kij^2 + sum_ab A_kab g_kij^3)     (0 where the denominator is 0)
    w_k       = sum_ij alpha_kij * relu(g_kij)
    map       = relu(sum_k w_k A_k)                                -> [B, h, w] on the layer's grid

Everything is built with ``torch.autograd.grad``; with ``create_graph=True`` nothing on the path is
detached, so the map is differentiable with respect to the model's weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from robustbench_interp import Interpreter, InterpreterError
from robustbench_interp.interpreters.base import check_inputs, require_layer

__all__ = ["GradCAMPlusPlus", "gradcampp_from_gradient"]
__version__ = "0.1.0"


@contextlib.contextmanager
def _record_output(layer: nn.Module) -> Iterator[list[Tensor]]:
    """Record the output ``A`` of ``layer``; the rest of the model gets a copy of it.

    The copy keeps ``A`` intact when the next module works in place (``ReLU(inplace=True)``).
    The hook is removed on exit, whatever happens, so no hook is left behind.
    """
    outputs: list[Tensor] = []

    def hook(module: nn.Module, _inputs: Any, output: Any) -> Tensor:
        if not isinstance(output, Tensor) or output.dim() != 4:
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise InterpreterError(
                f"gradcampp: the target layer {type(module).__name__} returned {shape}; choose a layer "
                "whose output is a single [B, C, h, w] tensor"
            )
        outputs.append(output)
        return output.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den``, 0 where ``den == 0``, with finite gradients everywhere.

    The denominator is replaced by 1 where it is 0 *before* dividing, so the unused branch of
    ``torch.where`` never holds an inf/NaN whose gradient would leak into the backward pass.
    """
    zero = den == 0
    return torch.where(zero, torch.zeros_like(num), num / torch.where(zero, torch.ones_like(den), den))


def gradcampp_from_gradient(act: Tensor, grad: Tensor) -> Tensor:
    """The Grad-CAM++ map ``[B, h, w]`` from the layer output ``A`` and ``g = d y_c / d A`` ([B,K,h,w])."""
    g2 = grad * grad
    g3 = g2 * grad
    den = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g3
    alpha = _safe_div(g2, den)
    weights = (alpha * grad.relu()).sum(dim=(2, 3), keepdim=True)  # [B, K, 1, 1]
    return (weights * act).sum(dim=1).relu()


class GradCAMPlusPlus(Interpreter):
    """Grad-CAM++: ``relu(sum_k w_k A_k)`` with ``w_k = sum_ij alpha_kij relu(d y_c / d A_kij)``."""

    name = "gradcampp"
    layer_level = True
    differentiable = True

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
        with torch.enable_grad(), _record_output(layer) as outputs:
            logits = model(x.detach())
        if not outputs:
            raise InterpreterError(
                f"gradcampp: the target layer {type(layer).__name__} was not called during the forward "
                "pass; pass a module of this model"
            )
        act = outputs[-1]
        if not act.requires_grad:
            raise InterpreterError(
                "gradcampp: the target layer's output does not require grad; is the model frozen?"
            )
        if logits.dim() != 2:
            raise InterpreterError(
                f"gradcampp: the model returned shape {tuple(logits.shape)}; expected [B, classes]"
            )
        with torch.enable_grad():
            # Summing the target logits over the batch gives each image's own gradient (eval mode:
            # image i's logit depends on image i only).
            score = logits.gather(1, target.view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(score, act, create_graph=create_graph)
            if not create_graph:
                act = act.detach()
            return gradcampp_from_gradient(act, grad)
