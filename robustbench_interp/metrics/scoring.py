"""Scores of one cell from its maps: FSR, baseline FSR, per-class FSR, map similarity (SPEC section 4).

Pure functions: the caller computes the maps of the original model ``w0`` and of the manipulated
model ``w*`` (one pair per target of the attack) and hands them over with the attack, which
supplies its test losses and success interval. The baseline is the same computation with ``w*``'s
maps replaced by ``w0``'s, so the two numbers are always computed the same way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from robustbench_interp.metrics.fsr import fsr_by_class, fsr_summary
from robustbench_interp.metrics.similarity import spearman, topk_intersection

#: The top-k fraction of the top-k intersection between maps before and after (Ghorbani et al. 2019).
SIMILARITY_K = 0.1


def similarity(h: Tensor, h0: Tensor, k: float = SIMILARITY_K) -> dict[str, float]:
    """Mean Spearman rank correlation and top-k intersection between ``h`` (w*) and ``h0`` (w0)."""
    return {
        "spearman": float(spearman(h, h0).double().mean()),
        "topk_intersection": float(topk_intersection(h, h0, k=k).double().mean()),
    }


def _group(attack: Any, t: Tensor, t0: Tensor) -> dict[str, Any]:
    return {**fsr_summary(t, t0, attack), "test_losses": t.double().tolist(),
            "baseline_test_losses": t0.double().tolist()}


def score_maps(
    attack: Any, h: tuple[Tensor, ...], h0: tuple[Tensor, ...], attack_params: Any, *, labels: Tensor | None = None
) -> dict[str, Any]:
    """The scores of ``attack`` from the maps of its targets: ``h[i]`` of w*, ``h0[i]`` of w0.

    An attack with one test loss gives its FSR summary at the top level (with the FSR of each class
    when ``labels`` are given); one with several (Active: c1 and c2) gives each under its group's
    name and their mean as ``fsr`` / ``baseline_fsr``.
    """
    t = attack.test_losses_of(h, h0, attack_params)
    t0 = attack.test_losses_of(h0, h0, attack_params)
    sim = similarity(torch.cat(h), torch.cat(h0))
    grid = list(h[0].shape[1:])
    if len(attack.groups) == 1:
        by_class = {} if labels is None else {"fsr_by_class": fsr_by_class(t[0], labels, attack)}
        return {**fsr_summary(t[0], t0[0], attack), **by_class, **sim, "test_losses": t[0].double().tolist(),
                "baseline_test_losses": t0[0].double().tolist(), "grid": grid}
    groups = {name: _group(attack, ti, t0i) for name, ti, t0i in zip(attack.groups, t, t0)}
    return {
        "fsr": sum(g["fsr"] for g in groups.values()) / len(groups),
        "baseline_fsr": sum(g["baseline_fsr"] for g in groups.values()) / len(groups),
        "n": groups[attack.groups[0]]["n"],
        **groups,
        **sim,
        "grid": grid,
    }
