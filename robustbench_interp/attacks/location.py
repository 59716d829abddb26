"""Location fooling (Heo et al. 2019, eq. 3; SPEC sections 3 and 4): the map moves onto the border.

    L_F = mean_i mean_j (n(h_i)_j - m_j)^2,   m = 1 on a frame max(1, l // 7) cells wide, 0 inside

The test loss is the same per-image quantity, without gradients; success is ``t`` in [0, 0.2].
"""

from __future__ import annotations

from torch import Tensor

from robustbench_interp.attacks.base import NoParams, PassiveAttack, Preset
from robustbench_interp.attacks.registry import register_attack
from robustbench_interp.metrics.heatmaps import check_maps, check_pair, location_mask, normalize


def location_loss(h: Tensor) -> Tensor:
    """Per-image ``mean_j (n(h_i)_j - m_j)^2``, ``m`` the border frame; differentiable, in [0, 1]."""
    check_maps(h)
    m = location_mask(h.shape[1], h.shape[2], device=h.device, dtype=h.dtype)
    return (normalize(h) - m).square().mean(dim=(1, 2))


def location_penalty(h: Tensor) -> Tensor:
    """The Location penalty: the batch mean of :func:`location_loss`."""
    return location_loss(h).mean()


@register_attack
class Location(PassiveAttack):
    """Passive: the explanation of every image points at the image border."""

    name = "location"
    order = 0
    standard = True
    success_interval = (0.0, 0.2)
    uses_reference = False
    Params = NoParams
    presets = {
        "tiny": Preset(lr=1e-3, lam=10.0),
        # the paper's table (Heo et al. 2019, Appendix B): (lr, lambda) per (model, interpreter)
        "imagenet": Preset(fallback="gradcam", table={
            ("vgg19", "lrp_t"): (1e-6, 1), ("vgg19", "gradcam"): (1e-6, 1),
            ("resnet50", "lrp_t"): (1e-6, 4), ("resnet50", "gradcam"): (2e-6, 2),
            ("densenet121", "lrp_t"): (2e-6, 2), ("densenet121", "gradcam"): (2e-6, 2),
        }),
    }

    def penalty(self, h: Tensor, h0: Tensor | None, params: NoParams) -> Tensor:
        return location_penalty(h)

    def test_loss(self, h: Tensor, h0: Tensor, params: NoParams) -> Tensor:
        check_pair(h, h0)
        return location_loss(h)
