"""LRP-composite (Bach et al. 2015; Montavon et al. 2019; Kohlbrenner et al. 2020, "Towards Best
Practice in Explaining Neural Network Decisions with LRP"), as used by Heo et al. 2019.

``lrp``: the input relevance summed over colour channels. ``lrp_t``: the relevance at the target
layer's output summed over its channels. The rules and the engine are in
:mod:`robustbench_interp.interpreters._lrp_engine`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from robustbench_interp.errors import ConfigError
from robustbench_interp.interpreters import register_interpreter
from robustbench_interp.interpreters._lrp_engine import relevance
from robustbench_interp.interpreters.base import Interpreter, check_inputs, require_layer
from robustbench_interp.interpreters.hyperparams import HyperParams, check_real


@dataclass(frozen=True)
class LRPParams(HyperParams):
    """LRP's hyper-parameter: ``epsilon`` of the epsilon rule (> 0: it stabilises ``z + eps sign z``,
    which divides by 0 at ``epsilon=0``)."""

    epsilon: float = 0.01

    def __post_init__(self) -> None:
        check_real(self, "epsilon", above=0)


class _LRPBase(Interpreter):
    hyperparams = LRPParams


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
