"""Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks").

With ``A`` the target layer's output ``[B, K, h, w]``:
``alpha_k = mean_{ij} d y_t / d A_kij`` and ``h = relu(sum_k alpha_k A_k)`` on the layer's grid.
The gradient is taken only down to ``A``, never to the input.
"""

from __future__ import annotations

from torch import Tensor, nn

from robustbench_interp.interpreters import register_interpreter
from robustbench_interp.interpreters.autograd import layer_gradient
from robustbench_interp.interpreters.base import Interpreter, check_inputs, require_layer
from robustbench_interp.interpreters.hyperparams import HyperParams


@register_interpreter("gradcam")
class GradCAM(Interpreter):
    """``relu(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of ``d y_t / d A_k``.

    No hyper-parameters.
    """

    layer_level = True
    hyperparams = HyperParams
    shares_forward = True  # its forward pass is the model's own; the backward passes stay apart

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
        alpha = grad.mean(dim=(2, 3), keepdim=True)
        if not create_graph:
            act = act.detach()
        return (alpha * act).sum(dim=1).relu()
