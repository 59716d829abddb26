"""Center-mass fooling (Heo et al. 2019, eq. 5; SPEC sections 3 and 4): the map's centre moves away.

    L_F = - mean_i || C(n(h(x_i; w))) - C(n(h(x_i; w0))) ||_1      (grid cells)
    t_i = || C(n(h(x_i; w*))) - C(n(h(x_i; w0))) ||_2 / grid diagonal,  success in [0.1, 1]
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustbench_interp.attacks.base import NoParams, PassiveAttack, Preset
from robustbench_interp.attacks.registry import register_attack
from robustbench_interp.metrics.heatmaps import center_of_mass, check_pair, normalize


def center_mass_penalty(h: Tensor, h0: Tensor) -> Tensor:
    """``- mean_i ||C(n(h_i)) - C(n(h0_i))||_1`` in grid coordinates (eq. 5).

    The scale is in grid cells, as in the paper (whose lambdas were tuned on 14x14 and 7x7 grids).
    At ``w == w0`` the distance is 0 and the L1 norm's (sub)gradient there is 0: the first step of
    fine-tuning is driven by the cross-entropy term alone, which moves ``w`` off ``w0``.
    """
    check_pair(h, h0)
    target = center_of_mass(normalize(h0.detach()))
    return -(center_of_mass(normalize(h)) - target).abs().sum(dim=1).mean()


def grid_diagonal(l_h: int, l_w: int) -> float:
    """Length of the grid's diagonal in grid coordinates, ``sqrt((l_h-1)^2 + (l_w-1)^2)``; a 1x1
    grid's is taken as 1 (every centre of mass is the same point there, so the loss is 0)."""
    return math.hypot(l_h - 1, l_w - 1) or 1.0


@torch.no_grad()
def center_mass_test_loss(h: Tensor, h0: Tensor) -> Tensor:
    """``t_i = ||C(n(h_i)) - C(n(h0_i))||_2 / diagonal``, in [0, 1] whatever the resolution."""
    check_pair(h, h0)
    dist = (center_of_mass(normalize(h)) - center_of_mass(normalize(h0))).norm(dim=1)
    return dist / grid_diagonal(h.shape[1], h.shape[2])


@register_attack
class CenterMass(PassiveAttack):
    """Passive: the centre of mass of the explanation moves away from where it was."""

    name = "center_mass"
    order = 2
    standard = True
    success_interval = (0.1, 1.0)
    Params = NoParams
    presets = {
        "tiny": Preset(lr=1e-3, lam=0.1),
        "imagenet": Preset(fallback="gradcam", table={
            ("vgg19", "lrp_t"): (2e-6, 0.25), ("vgg19", "gradcam"): (1e-6, 0.25),
            ("resnet50", "lrp_t"): (6e-7, 0.5), ("resnet50", "gradcam"): (1e-7, 1),
            ("densenet121", "lrp_t"): (5e-7, 0.25), ("densenet121", "gradcam"): (2e-6, 0.25),
        }),
    }

    def penalty(self, h: Tensor, h0: Tensor | None, params: NoParams) -> Tensor:
        assert h0 is not None
        return center_mass_penalty(h, h0)

    def test_loss(self, h: Tensor, h0: Tensor, params: NoParams) -> Tensor:
        return center_mass_test_loss(h, h0)
