"""Simple gradient (Simonyan, Vedaldi, Zisserman 2014, "Deep Inside Convolutional Networks").

``simplegrad``: ``h = max_c |d y_t / d x_c|``, the absolute input gradient of the target logit,
reduced over colour channels by the maximum (as in the paper). ``simplegrad_t``: the same at the
target layer's output, ``h = max_k |d y_t / d A_k|``.

The gradient helpers are in :mod:`robustbench_interp.interpreters.autograd`.
"""

from __future__ import annotations

from torch import Tensor, nn

from robustbench_interp.interpreters import register_interpreter
from robustbench_interp.interpreters.autograd import input_gradient, layer_gradient
from robustbench_interp.interpreters.base import Interpreter, check_inputs, require_layer
from robustbench_interp.interpreters.hyperparams import HyperParams


@register_interpreter("simplegrad")
class SimpleGrad(Interpreter):
    """``max_c |d y_t / d x_c|`` on the input grid (Simonyan et al. 2014). No hyper-parameters."""

    hyperparams = HyperParams
    shares_forward = True
    shares_backward = True

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
    """``max_k |d y_t / d A_k|`` on the grid of the target layer's output ``A``. No hyper-parameters."""

    layer_level = True
    hyperparams = HyperParams
    shares_forward = True
    shares_backward = True

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
