"""Gradient x input (Shrikumar et al. 2016; Ancona et al. 2018, "Towards better understanding of
gradient-based attribution methods"): ``h = sum_c x_c * d y_t / d x_c``.
"""

from __future__ import annotations

from torch import Tensor, nn

from robustbench_interp.interpreters import register_interpreter
from robustbench_interp.interpreters.autograd import input_gradient
from robustbench_interp.interpreters.base import Interpreter, check_inputs
from robustbench_interp.interpreters.hyperparams import HyperParams


@register_interpreter("gradient_x_input")
class GradientXInput(Interpreter):
    """``sum_c x_c * d y_t / d x_c`` on the input grid. No hyper-parameters."""

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
        grad = input_gradient(model, x, target, create_graph)
        return (x.detach() * grad).sum(dim=1)
