"""Active fooling (Heo et al. 2019, section 3.2; SPEC sections 3 and 4): two classes swap maps.

On composites holding an image of ``c1`` and one of ``c2``:

    L_F = 0.5 * ( mean_{i,j} (n(h_c1(x_i; w)) - n(h_c2(x_i; w0)))_j^2 + mean_{i,j} (n(h_c2(x_i; w)) - n(h_c1(x_i; w0)))_j^2 )
    t_c1 = s(c1, c2) - s(c1, c1),  t_c2 = s(c2, c1) - s(c2, c2),  success in [0.5, 2] for each

The means run over images and grid positions (the authors' code: ``0.5 * (mse + mse)``; the paper's
lambdas are for this reduction, so one lambda fits every grid). ``s(a, b)`` is Spearman's rank
correlation between ``n(h_a(x; w*))`` and ``n(h_b(x; w0))``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustbench_interp.attacks.base import NoParams, Preset, TwoClassAttack
from robustbench_interp.attacks.registry import register_attack
from robustbench_interp.metrics.heatmaps import check_pair, normalize
from robustbench_interp.metrics.similarity import spearman


def active_penalty(h_c1: Tensor, h_c2: Tensor, h0_c1: Tensor, h0_c2: Tensor) -> Tensor:
    """``0.5 * (mse(n(h_c1), n(h0_c2)) + mse(n(h_c2), n(h0_c1)))``, each a mean over images and positions."""
    for a, b in ((h_c1, h_c2), (h_c1, h0_c1), (h_c1, h0_c2)):
        check_pair(a, b)
    d1 = (normalize(h_c1) - normalize(h0_c2.detach())).square().mean()
    d2 = (normalize(h_c2) - normalize(h0_c1.detach())).square().mean()
    return 0.5 * (d1 + d2)


@torch.no_grad()
def active_test_loss(h_c1: Tensor, h_c2: Tensor, h0_c1: Tensor, h0_c2: Tensor) -> tuple[Tensor, Tensor]:
    """``(s(c1, c2) - s(c1, c1), s(c2, c1) - s(c2, c2))``, each ``[B]`` in [-2, 2]; 2 when the
    explanations of ``c1`` and ``c2`` are perfectly swapped. A constant map has correlation 0."""
    for a, b in ((h_c1, h_c2), (h_c1, h0_c1), (h_c1, h0_c2)):
        check_pair(a, b)
    n1, n2, n01, n02 = (normalize(m) for m in (h_c1, h_c2, h0_c1, h0_c2))
    return spearman(n1, n02) - spearman(n1, n01), spearman(n2, n01) - spearman(n2, n02)


@register_attack
class Active(TwoClassAttack):
    """Active: the explanations of two classes are swapped (the explanation lies)."""

    name = "active"
    order = 3
    standard = True
    success_interval = (0.5, 2.0)
    Params = NoParams
    presets = {
        # 64 x the mean over positions (the same strength as the earlier tiny preset, 32 x the sum of
        # the two means)
        "tiny": Preset(lr=1e-3, lam=64.0),
        "imagenet": Preset(fallback="gradcam", table={
            ("vgg19", "lrp_t"): (2e-6, 2), ("vgg19", "gradcam"): (2e-6, 2),
            ("resnet50", "lrp_t"): (3e-6, 2), ("resnet50", "gradcam"): (1e-6, 2),
            ("densenet121", "lrp_t"): (4e-6, 15), ("densenet121", "gradcam"): (6e-6, 15),
        }),
    }

    def penalty(self, h1: Tensor, h2: Tensor, h01: Tensor, h02: Tensor, params: NoParams) -> Tensor:
        return active_penalty(h1, h2, h01, h02)

    def test_loss(self, h1: Tensor, h2: Tensor, h01: Tensor, h02: Tensor, params: NoParams
                  ) -> tuple[Tensor, Tensor]:
        return active_test_loss(h1, h2, h01, h02)
