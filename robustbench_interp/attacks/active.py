"""Active fooling (Heo et al. 2019, section 3.2; SPEC sections 3 and 4): two classes swap maps.

On composites holding an image of ``c1`` and one of ``c2``:

    L_F = mean_i ||n(h_c1(x_i; w)) - n(h_c2(x_i; w0))||^2 + ||n(h_c2(x_i; w)) - n(h_c1(x_i; w0))||^2
    t_c1 = s(c1, c2) - s(c1, c1),  t_c2 = s(c2, c1) - s(c2, c2),  success in [0.5, 2] for each

``s(a, b)`` is Spearman's rank correlation between ``n(h_a(x; w*))`` and ``n(h_b(x; w0))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from robustbench_interp.attacks.base import Preset, TwoClassAttack
from robustbench_interp.attacks.registry import register_attack
from robustbench_interp.errors import ConfigError
from robustbench_interp.metrics.heatmaps import check_pair, normalize
from robustbench_interp.metrics.similarity import spearman

REDUCTIONS = ("sum", "mean")


def active_penalty(h_c1: Tensor, h_c2: Tensor, h0_c1: Tensor, h0_c2: Tensor, *, reduction: str = "sum") -> Tensor:
    """``mean_i ||n(h_c1_i) - n(h0_c2_i)||^2 + ||n(h_c2_i) - n(h0_c1_i)||^2``.

    With ``reduction="sum"`` (default) the squared norms are summed over grid positions, as in the
    paper, so the paper's lambdas apply to the paper's grids; ``"mean"`` averages over positions,
    which makes lambda independent of the grid's resolution (``sum = mean * h * w``).
    """
    for a, b in ((h_c1, h_c2), (h_c1, h0_c1), (h_c1, h0_c2)):
        check_pair(a, b)
    if reduction not in REDUCTIONS:
        raise ConfigError(f"reduction must be 'sum' (the paper's) or 'mean', got {reduction!r}")
    dims = (1, 2)
    d1 = (normalize(h_c1) - normalize(h0_c2.detach())).square()
    d2 = (normalize(h_c2) - normalize(h0_c1.detach())).square()
    if reduction == "sum":
        return (d1.sum(dim=dims) + d2.sum(dim=dims)).mean()
    return (d1.mean(dim=dims) + d2.mean(dim=dims)).mean()


@torch.no_grad()
def active_test_loss(h_c1: Tensor, h_c2: Tensor, h0_c1: Tensor, h0_c2: Tensor) -> tuple[Tensor, Tensor]:
    """``(s(c1, c2) - s(c1, c1), s(c2, c1) - s(c2, c2))``, each ``[B]`` in [-2, 2]; 2 when the
    explanations of ``c1`` and ``c2`` are perfectly swapped. A constant map has correlation 0."""
    for a, b in ((h_c1, h_c2), (h_c1, h0_c1), (h_c1, h0_c2)):
        check_pair(a, b)
    n1, n2, n01, n02 = (normalize(m) for m in (h_c1, h_c2, h0_c1, h0_c2))
    return spearman(n1, n02) - spearman(n1, n01), spearman(n2, n01) - spearman(n2, n02)


@dataclass(frozen=True)
class ActiveParams:
    """``reduction``: how the penalty reduces over grid positions, "sum" (the paper's, so its lambdas
    apply) or "mean" (lambda independent of the grid size)."""

    reduction: str = "sum"

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise ConfigError(f"reduction must be 'sum' (the paper's) or 'mean', got {self.reduction!r}")


@register_attack
class Active(TwoClassAttack):
    """Active: the explanations of two classes are swapped (the explanation lies)."""

    name = "active"
    order = 3
    standard = True
    success_interval = (0.5, 2.0)
    Params = ActiveParams
    presets = {
        # a mean over grid positions, so that one lambda fits the tiny models' 8x8 and 16x16 grids
        "tiny": Preset(lr=1e-3, lam=32.0, params={"reduction": "mean"}),
        "imagenet": Preset(fallback="gradcam", table={
            ("vgg19", "lrp_t"): (2e-6, 2), ("vgg19", "gradcam"): (2e-6, 2),
            ("resnet50", "lrp_t"): (3e-6, 2), ("resnet50", "gradcam"): (1e-6, 2),
            ("densenet121", "lrp_t"): (4e-6, 15), ("densenet121", "gradcam"): (6e-6, 15),
        }),
    }

    def penalty(self, h1: Tensor, h2: Tensor, h01: Tensor, h02: Tensor, params: ActiveParams) -> Tensor:
        return active_penalty(h1, h2, h01, h02, reduction=params.reduction)

    def test_loss(self, h1: Tensor, h2: Tensor, h01: Tensor, h02: Tensor, params: ActiveParams
                  ) -> tuple[Tensor, Tensor]:
        return active_test_loss(h1, h2, h01, h02)
