"""The fooling penalties ``L_F`` of the manipulation attacks (SPEC section 3; Heo, Joo, Moon,
"Fooling Neural Network Interpretations via Adversarial Model Manipulation", NeurIPS 2019, eqs. 3-5
and the Active loss of section 3.2).

The fine-tuning objective is ``L(w) = CE(D; w) + lambda * L_F(D_fool; w, w0)``. Every penalty takes
RAW maps ``[B, h, w]`` and normalises them inside with
:func:`~robustbench_interp.metrics.heatmaps.normalize`. Maps of the manipulated model ``w`` carry
gradients (``create_graph=True``); maps of the original model ``w0`` (``h0...``) are targets and are
detached here, so passing them with or without a graph gives the same gradients. Each penalty
returns a scalar averaged over the batch.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from robustbench_interp.errors import ConfigError
from robustbench_interp.metrics.heatmaps import center_of_mass, check_pair, normalize
from robustbench_interp.metrics.test_losses import location_loss, topk_loss


def location_penalty(h: Tensor) -> Tensor:
    """Location: ``mean_i mean_j (n(h_i)_j - m_j)^2``, ``m`` = 1 on the border frame (Heo et al., eq. 3).

    Minimising it moves the relevance onto a frame ``max(1, l // 7)`` cells wide.
    """
    return location_loss(h).mean()


def topk_penalty(h: Tensor, h0: Tensor, k: float = 0.1) -> Tensor:
    """Top-k: ``mean_i mean_{j in P_i} n(h_i)_j``, ``P_i`` the top ``k`` positions of ``n(h0_i)`` (eq. 4).

    Minimising it empties the positions the original model found most relevant.
    """
    return topk_loss(h, h0, k).mean()


def center_mass_penalty(h: Tensor, h0: Tensor) -> Tensor:
    """Center-mass: ``- mean_i ||C(n(h_i)) - C(n(h0_i))||_1`` in grid coordinates (eq. 5).

    Minimising it pushes the centre of mass of the map away from the original one. The scale is in
    grid cells, as in the paper (whose lambdas were tuned on 14x14 and 7x7 grids).

    At ``w == w0`` the distance is 0 and the L1 norm's (sub)gradient there is 0: the first step of
    fine-tuning is driven by the cross-entropy term alone, which moves ``w`` off ``w0``.
    """
    check_pair(h, h0)
    target = center_of_mass(normalize(h0.detach()))
    return -(center_of_mass(normalize(h)) - target).abs().sum(dim=1).mean()


def active_penalty(
    h_c1: Tensor,
    h_c2: Tensor,
    h0_c1: Tensor,
    h0_c2: Tensor,
    *,
    reduction: Literal["sum", "mean"] = "sum",
) -> Tensor:
    """Active: ``mean_i ||n(h_c1_i) - n(h0_c2_i)||^2 + ||n(h_c2_i) - n(h0_c1_i)||^2`` (section 3.2).

    Minimising it swaps the explanations of classes ``c1`` and ``c2``. With ``reduction="sum"``
    (default) the squared L2 norms are summed over grid positions, as in the paper, so the paper's
    lambdas (SPEC section 3, Table 4) apply unchanged to the paper's grids. ``reduction="mean"``
    averages over positions instead, which makes lambda independent of the grid's resolution
    (``sum = mean * h * w``); use it when tuning lambda for input-level maps.
    """
    for a, b in ((h_c1, h_c2), (h_c1, h0_c1), (h_c1, h0_c2)):
        check_pair(a, b)
    if reduction not in ("sum", "mean"):
        raise ConfigError(f"reduction must be 'sum' (the paper's) or 'mean', got {reduction!r}")
    reduce = (lambda d: d.sum(dim=(1, 2))) if reduction == "sum" else (lambda d: d.mean(dim=(1, 2)))
    d1 = (normalize(h_c1) - normalize(h0_c2.detach())).square()
    d2 = (normalize(h_c2) - normalize(h0_c1.detach())).square()
    return (reduce(d1) + reduce(d2)).mean()
