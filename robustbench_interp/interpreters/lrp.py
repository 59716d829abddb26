"""LRP-composite (Bach et al. 2015; Montavon et al. 2019; Kohlbrenner et al. 2020, "Towards Best
Practice in Explaining Neural Network Decisions with LRP"), as used by Heo et al. 2019.

``lrp``: the input relevance summed over colour channels. ``lrp_t``: the relevance at the target
layer's output summed over its channels. The rules and the engine are in
:mod:`robustbench_interp.interpreters._lrp_engine`.
"""

from __future__ import annotations

from torch import Tensor, nn

from robustbench_interp.errors import ConfigError
from robustbench_interp.interpreters import register_interpreter
from robustbench_interp.interpreters._lrp_engine import relevance
from robustbench_interp.interpreters.base import Interpreter, check_inputs, require_layer


class _LRPBase(Interpreter):
    def __init__(self, epsilon: float = 0.01, **params) -> None:
        if float(epsilon) < 0:
            raise ConfigError(f"{type(self).__name__} epsilon must be >= 0, got {epsilon}")
        super().__init__(epsilon=epsilon, **params)


@register_interpreter("lrp")
class LRP(_LRPBase):
    """Input relevance of LRP-composite (epsilon for Linear, z+ for Conv2d), summed over channels."""

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
        rel = relevance(model, x, target, epsilon=float(self.params["epsilon"]), create_graph=create_graph)
        return rel.sum(dim=1)


@register_interpreter("lrp_t")
class LRPT(_LRPBase):
    """LRP-composite relevance at the target layer's output, summed over its channels."""

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
        rel = relevance(
            model, x, target, layer=layer, epsilon=float(self.params["epsilon"]), create_graph=create_graph
        )
        if rel.dim() != 4:
            raise ConfigError(
                f"lrp_t needs a target layer with a [B, C, h, w] output; {type(layer).__name__} gives "
                f"{tuple(rel.shape)}"
            )
        return rel.sum(dim=1)
