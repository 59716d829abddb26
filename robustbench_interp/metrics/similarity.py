"""Similarity of two heatmaps (Ghorbani, Abid, Zou, "Interpretation of Neural Networks is Fragile",
AAAI 2019): Spearman's rank correlation and top-k intersection, per image.

Both functions compare the values they are given position by position over the flattened grid; the
benchmark passes the raw maps of ``w*`` and ``w0`` for the similarity columns of SPEC section 4, and
the normalised maps inside the Active test loss (:mod:`robustbench_interp.attacks.active`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustbench_interp.errors import ConfigError
from robustbench_interp.metrics.heatmaps import check_maps, topk_count, topk_mask


def _flatten_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    check_maps(a, "a")
    check_maps(b, "b")
    if a.shape != b.shape:
        raise ConfigError(
            f"maps to compare must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}; "
            "score maps of the same interpreter on the same grid"
        )
    return a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)


def rankdata(x: Tensor) -> Tensor:
    """Ranks ``1..N`` of each row of ``x[B, N]``, ties given their average rank (float64).

    The semantics of ``scipy.stats.rankdata(method="average")``, vectorised over the batch.
    """
    b, n = x.shape
    values, order = torch.sort(x.detach(), dim=1, stable=True)
    new_group = torch.ones_like(values, dtype=torch.bool)
    new_group[:, 1:] = values[:, 1:] != values[:, :-1]
    group = new_group.long().cumsum(dim=1) - 1 + torch.arange(b, device=x.device)[:, None] * n
    pos = torch.arange(n, device=x.device).expand(b, n)
    flat_group, flat_pos = group.reshape(-1), pos.reshape(-1)
    first = torch.full((b * n,), n, dtype=torch.long, device=x.device)
    first = first.scatter_reduce(0, flat_group, flat_pos, reduce="amin")
    last = torch.zeros(b * n, dtype=torch.long, device=x.device)
    last = last.scatter_reduce(0, flat_group, flat_pos, reduce="amax")
    avg = (first[flat_group] + last[flat_group]).double().reshape(b, n) / 2 + 1
    ranks = torch.empty_like(avg)
    ranks.scatter_(1, order, avg)
    return ranks


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of the rows of ``a[B, N]`` and ``b[B, N]``; a constant row gives 0."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    denom = (a.square().sum(dim=1) * b.square().sum(dim=1)).sqrt()
    defined = denom > 0
    corr = (a * b).sum(dim=1) / torch.where(defined, denom, torch.ones_like(denom))
    return torch.where(defined, corr, torch.zeros_like(corr)).clamp(-1.0, 1.0)


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation between ``a[i]`` and ``b[i]`` over grid positions, ``[B]``.

    Ties get average ranks (as ``scipy.stats.spearmanr``). The correlation of a constant map is
    undefined (its ranks have zero variance); it is defined here as 0, "no rank agreement", so
    that an empty map neither counts as similar nor produces NaN (Ghorbani et al. 2019, section 3;
    Heo et al. 2019, section 4.2). Not differentiable (ranks); returns float64 on ``a``'s device.
    """
    fa, fb = _flatten_pair(a, b)
    return pearson(rankdata(fa), rankdata(fb))


def topk_intersection(a: Tensor, b: Tensor, k: float = 0.1) -> Tensor:
    """Fraction of the top ``k`` positions of ``a[i]`` that are also top ``k`` of ``b[i]``, ``[B]``.

    ``|topk(a) ∩ topk(b)| / ceil(k * h * w)``, in [0, 1] (Ghorbani et al. 2019, section 3).
    Ties are broken as in :func:`~robustbench_interp.metrics.heatmaps.topk_mask`.
    """
    _flatten_pair(a, b)
    count = topk_count(a.shape[1] * a.shape[2], k)
    both = topk_mask(a, k) & topk_mask(b, k)
    return both.sum(dim=(1, 2)).double() / count
