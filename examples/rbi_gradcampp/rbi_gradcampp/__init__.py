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

``A`` and ``g`` come from the benchmark's public helper
:func:`robustbench_interp.interpreters.layer_gradient` (it records the layer's output with the one
forward hook of the package and removes it whatever happens). Everything is built with
``torch.autograd.grad``; with ``create_graph=True`` nothing on the path is detached, so the map is
differentiable with respect to the model's weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustbench_interp import Interpreter
from robustbench_interp.interpreters import HyperParams, layer_gradient
from robustbench_interp.interpreters.base import check_inputs, require_layer

__all__ = ["GradCAMPlusPlus", "gradcampp_from_gradient"]
__version__ = "0.1.0"


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
    """Grad-CAM++: ``relu(sum_k w_k A_k)`` with ``w_k = sum_ij alpha_kij relu(d y_c / d A_kij)``.

    No hyper-parameters: ``hyperparams = HyperParams`` declares none, so any keyword is refused.
    """

    name = "gradcampp"
    layer_level = True
    differentiable = True
    hyperparams = HyperParams
    # the forward pass inside layer_gradient is the model's own, on the batch as given: a manipulation
    # step may take its cross-entropy from it (the conformance suite checks the weights stay the same)
    shares_forward = True

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
        act, grad = layer_gradient(model, x, target, layer, create_graph)
        with torch.enable_grad():
            if not create_graph:
                act = act.detach()
            return gradcampp_from_gradient(act, grad)
