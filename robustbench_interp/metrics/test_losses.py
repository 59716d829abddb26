"""Per-image test losses ``t_i`` of the four manipulation attacks (SPEC section 4; Heo, Joo, Moon,
"Fooling Neural Network Interpretations via Adversarial Model Manipulation", NeurIPS 2019, section 4.2).

Every function takes RAW maps ``[B, h, w]`` (as interpreters return them), normalises them with
:func:`~robustbench_interp.metrics.heatmaps.normalize`, and returns a ``[B]`` tensor, computed
without gradients. ``h`` is a map of the manipulated model ``w*``, ``h0`` of the original ``w0``.

The **baseline** (SPEC section 4: "the same rate with w* replaced by w0") is obtained from the same
functions by passing ``w0``'s maps in place of ``w*``'s. :func:`passive_test_loss` /
:func:`baseline_passive_test_loss` and :func:`active_test_loss` / :func:`baseline_active_test_loss`
are the pairs the engine calls, so the two numbers are always computed the same way.
"""

from __future__ import annotations

import math
from enum import Enum

import torch
from torch import Tensor

from robustbench_interp.errors import UnknownNameError
from robustbench_interp.metrics.heatmaps import (
    center_of_mass,
    check_maps,
    check_pair,
    location_mask,
    normalize,
    topk_count,
    topk_mask,
)
from robustbench_interp.metrics.similarity import spearman

PASSIVE_ATTACKS = ("location", "topk", "center_mass")


def location_loss(h: Tensor) -> Tensor:
    """Per-image ``mean_j (n(h_i)_j - m_j)^2``, ``m`` the border frame (Heo et al., eq. 3); differentiable.

    The Location penalty is its batch mean; the Location test loss is it without gradients.
    """
    check_maps(h)
    m = location_mask(h.shape[1], h.shape[2], device=h.device, dtype=h.dtype)
    return (normalize(h) - m).square().mean(dim=(1, 2))


def topk_loss(h: Tensor, h0: Tensor, k: float = 0.1) -> Tensor:
    """Per-image ``mean_{j in P_i} n(h_i)_j``, ``P_i`` the top ``k`` positions of ``n(h0_i)`` (eq. 4);
    differentiable in ``h`` (``h0`` only chooses the positions)."""
    check_pair(h, h0)
    mask = topk_mask(normalize(h0.detach()), k)
    count = topk_count(h.shape[1] * h.shape[2], k)
    return (normalize(h) * mask).sum(dim=(1, 2)) / count


@torch.no_grad()
def location_test_loss(h: Tensor) -> Tensor:
    """Location: ``t_i = mean_j (n(h_i)_j - m_j)^2``, ``m`` the border frame; in [0, 1].

    Success is ``t_i`` in [0, 0.2] (SPEC section 4). Uses ``w*``'s map only.
    """
    return location_loss(h)


@torch.no_grad()
def topk_test_loss(h: Tensor, h0: Tensor, k: float = 0.1) -> Tensor:
    """Top-k: ``t_i = mean_{j in P_i} n(h_i)_j``, ``P_i`` the top ``k`` positions of ``n(h0_i)``; in [0, 1].

    Success is ``t_i`` in [0, 0.3] (SPEC section 4).
    """
    return topk_loss(h, h0, k)


def grid_diagonal(l_h: int, l_w: int) -> float:
    """Length of the grid's diagonal in grid coordinates, ``sqrt((l_h-1)^2 + (l_w-1)^2)``.

    A 1x1 grid has diagonal 0; it is taken as 1 there (every centre of mass is the same point,
    so the distance, and the loss, is 0).
    """
    return math.hypot(l_h - 1, l_w - 1) or 1.0


@torch.no_grad()
def center_mass_test_loss(h: Tensor, h0: Tensor) -> Tensor:
    """Center-mass: ``t_i = ||C(n(h_i)) - C(n(h0_i))||_2 / diagonal``; in [0, 1].

    Grid coordinates and the diagonal are those of the scored map, so the loss does not depend on
    the resolution (SPEC section 4). Success is ``t_i`` in [0.1, 1].
    """
    check_pair(h, h0)
    dist = (center_of_mass(normalize(h)) - center_of_mass(normalize(h0))).norm(dim=1)
    return dist / grid_diagonal(h.shape[1], h.shape[2])


@torch.no_grad()
def active_test_loss(h_c1: Tensor, h_c2: Tensor, h0_c1: Tensor, h0_c2: Tensor) -> tuple[Tensor, Tensor]:
    """Active: ``(s(c1, c2) - s(c1, c1), s(c2, c1) - s(c2, c2))``, each ``[B]`` and in [-2, 2].

    ``s(a, b)`` is Spearman's rank correlation between ``n(h_a(x; w*))`` and ``n(h_b(x; w0))`` over
    grid positions (average ranks for ties; a constant map has correlation 0, see
    :func:`~robustbench_interp.metrics.similarity.spearman`). Success is ``t`` in [0.5, 2] for each
    class separately: 2 when the explanations of ``c1`` and ``c2`` are perfectly swapped (SPEC
    section 4; Heo et al. 2019, section 4.2).
    """
    for a, b in ((h_c1, h_c2), (h_c1, h0_c1), (h_c1, h0_c2)):
        check_pair(a, b)
    n1, n2, n01, n02 = (normalize(m) for m in (h_c1, h_c2, h0_c1, h0_c2))
    t_c1 = spearman(n1, n02) - spearman(n1, n01)
    t_c2 = spearman(n2, n01) - spearman(n2, n02)
    return t_c1, t_c2


def _passive_name(attack: object) -> str:
    name = getattr(attack, "value", attack)
    if name not in PASSIVE_ATTACKS:
        hint = " (the active attack has its own test loss: active_test_loss)" if name == "active" else ""
        raise UnknownNameError(
            f"unknown passive attack {attack!r}{hint}; valid: {', '.join(PASSIVE_ATTACKS)}"
        )
    return str(name)


def passive_test_loss(attack: str | Enum, h: Tensor, h0: Tensor, *, k: float = 0.1) -> Tensor:
    """The test loss ``t[B]`` of a passive ``attack`` ("location", "topk", "center_mass"):
    ``h`` from the manipulated model ``w*``, ``h0`` from the original ``w0``. ``k`` is used by top-k.
    """
    name = _passive_name(attack)
    if name == "location":
        check_pair(h, h0)
        return location_test_loss(h)
    if name == "topk":
        return topk_test_loss(h, h0, k)
    return center_mass_test_loss(h, h0)


def baseline_passive_test_loss(attack: str | Enum, h0: Tensor, *, k: float = 0.1) -> Tensor:
    """The baseline test loss: :func:`passive_test_loss` with ``w*`` replaced by ``w0``.

    Location scores ``h0``; top-k scores ``h0`` against its own top k (the mean of its top values);
    center-mass gives distance 0 (so its baseline FSR is 0 by construction).
    """
    return passive_test_loss(attack, h0, h0, k=k)


def baseline_active_test_loss(h0_c1: Tensor, h0_c2: Tensor) -> tuple[Tensor, Tensor]:
    """The baseline Active test loss: :func:`active_test_loss` with ``w*`` replaced by ``w0``,
    i.e. ``(s0(c1, c2) - 1, s0(c2, c1) - 1)`` for non-constant maps (never a success)."""
    return active_test_loss(h0_c1, h0_c2, h0_c1, h0_c2)
