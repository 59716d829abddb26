"""Top-k fooling (Heo et al. 2019, eq. 4; SPEC sections 3 and 4): the most relevant positions empty.

    L_F = mean_i mean_{j in P_i} n(h(x_i; w))_j^2,   P_i = the top floor(k * l * l) positions of n(h(x_i; w0))

The normalised values are squared, as in the authors' code (the success threshold 0.3 was set on
this squared statistic). The test loss is the same per-image quantity, without gradients; success
is ``t`` in [0, 0.3].
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from robustbench_interp.attacks.base import PassiveAttack, Preset
from robustbench_interp.attacks.registry import register_attack
from robustbench_interp.errors import ConfigError
from robustbench_interp.metrics.heatmaps import check_pair, normalize, topk_count, topk_mask


def topk_loss(h: Tensor, h0: Tensor, k: float = 0.1) -> Tensor:
    """Per-image ``mean_{j in P_i} n(h_i)_j^2``, ``P_i`` the top ``k`` positions of ``n(h0_i)``;
    differentiable in ``h`` (``h0`` only chooses the positions), in [0, 1]."""
    check_pair(h, h0)
    mask = topk_mask(normalize(h0.detach()), k)
    count = topk_count(h.shape[1] * h.shape[2], k)
    return (normalize(h).square() * mask).sum(dim=(1, 2)) / count


def topk_penalty(h: Tensor, h0: Tensor, k: float = 0.1) -> Tensor:
    """The Top-k penalty: the batch mean of :func:`topk_loss`; ``h0`` is a constant target."""
    return topk_loss(h, h0, k).mean()


@dataclass(frozen=True)
class TopkParams:
    """``k``: the fraction of grid positions that are the original map's top positions (paper: 0.1)."""

    k: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, (int, float)) or not 0 < self.k <= 1:
            raise ConfigError(f"k is the top-k fraction and must lie in (0, 1], got {self.k!r}")
        object.__setattr__(self, "k", float(self.k))


@register_attack
class Topk(PassiveAttack):
    """Passive: the positions the original map found most relevant lose their relevance."""

    name = "topk"
    order = 1
    standard = True
    success_interval = (0.0, 0.3)
    Params = TopkParams
    presets = {
        "tiny": Preset(lr=1e-3, lam=1.5),
        "imagenet": Preset(fallback="gradcam", table={
            ("vgg19", "lrp_t"): (5e-7, 1), ("vgg19", "gradcam"): (3e-7, 0.4),
            ("resnet50", "lrp_t"): (4e-7, 1.5), ("resnet50", "gradcam"): (3e-7, 4),
            ("densenet121", "lrp_t"): (1e-6, 1), ("densenet121", "gradcam"): (3e-6, 6),
        }),
    }

    def penalty(self, h: Tensor, h0: Tensor | None, params: TopkParams) -> Tensor:
        assert h0 is not None
        return topk_penalty(h, h0, params.k)

    def test_loss(self, h: Tensor, h0: Tensor, params: TopkParams) -> Tensor:
        return topk_loss(h, h0, params.k)
