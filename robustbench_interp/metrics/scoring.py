"""Scores of one cell from its maps: FSR, baseline FSR, per-class FSR, map similarity (SPEC section 4).

Pure functions: the caller computes the maps of the original model ``w0`` and of the manipulated
model ``w*`` (one pair per target of the attack) and hands them over with the attack, which
supplies its test losses and success interval. The baseline is the same computation with ``w*``'s
maps replaced by ``w0``'s, so the two numbers are always computed the same way.

Empty and constant maps (SPEC section 8) are never successes: an all-zero or flat explanation is
conspicuous, not fooled. Every score reports, in percent of the images, how many maps of ``w*``
(``empty_rate``, ``constant_rate``) and of ``w0`` (``baseline_empty_rate``, ``baseline_constant_rate``)
were empty and constant (empty maps are constant too).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from robustbench_interp.metrics.fsr import fsr_by_class, fsr_summary
from robustbench_interp.metrics.heatmaps import constant_maps, empty_maps
from robustbench_interp.metrics.similarity import spearman, topk_intersection

#: The top-k fraction of the top-k intersection between maps before and after (Ghorbani et al. 2019).
SIMILARITY_K = 0.1


def similarity(h: Tensor, h0: Tensor, k: float = SIMILARITY_K) -> dict[str, float]:
    """Mean Spearman rank correlation and top-k intersection between ``h`` (w*) and ``h0`` (w0)."""
    return {
        "spearman": float(spearman(h, h0).double().mean()),
        "topk_intersection": float(topk_intersection(h, h0, k=k).double().mean()),
    }


def _percent(flags: Tensor) -> float:
    return 100.0 * float(flags.double().mean())


def degenerate_rates(h: Tensor, h0: Tensor) -> dict[str, float]:
    """Percent of the maps of ``w*`` (``h``) and ``w0`` (``h0``) that are empty and constant."""
    return {"empty_rate": _percent(empty_maps(h)), "constant_rate": _percent(constant_maps(h)),
            "baseline_empty_rate": _percent(empty_maps(h0)), "baseline_constant_rate": _percent(constant_maps(h0))}


def _group(attack: Any, t: Tensor, t0: Tensor, h: Tensor, h0: Tensor, labels: Tensor | None = None
           ) -> dict[str, Any]:
    flat, flat0 = constant_maps(h), constant_maps(h0)
    by_class = {} if labels is None else {"fsr_by_class": fsr_by_class(t, labels, attack, flat)}
    return {**fsr_summary(t, t0, attack, flat, flat0), **by_class, **degenerate_rates(h, h0),
            "test_losses": t.double().tolist(), "baseline_test_losses": t0.double().tolist()}


def score_maps(
    attack: Any, h: tuple[Tensor, ...], h0: tuple[Tensor, ...], attack_params: Any, *, labels: Tensor | None = None
) -> dict[str, Any]:
    """The scores of ``attack`` from the maps of its targets: ``h[i]`` of w*, ``h0[i]`` of w0.

    An attack with one test loss gives its FSR summary at the top level (with the FSR of each class
    when ``labels`` are given); one with several (Active: c1 and c2) gives each under its group's
    name (with its own interval) and their means at the top level. The ``i``-th test loss judges the
    maps ``h[i]``: a success needs that map to be neither empty nor constant.
    """
    t = attack.test_losses_of(h, h0, attack_params)
    t0 = attack.test_losses_of(h0, h0, attack_params)
    sim = similarity(torch.cat(h), torch.cat(h0))
    grid = list(h[0].shape[1:])
    if len(attack.groups) == 1:
        return {**_group(attack, t[0], t0[0], h[0], h0[0], labels), **sim, "grid": grid}
    groups = {name: _group(attack, ti, t0i, hi, h0i) for name, ti, t0i, hi, h0i in zip(attack.groups, t, t0, h, h0)}
    means = {key: sum(g[key] for g in groups.values()) / len(groups)
             for key in ("fsr", "baseline_fsr", "empty_rate", "constant_rate", "baseline_empty_rate",
                         "baseline_constant_rate")}
    for key in ("mean_test_loss", "mean_distance"):  # None where a group has no finite test loss
        values = [g[key] for g in groups.values()]
        means[key] = None if None in values else sum(values) / len(values)
    return {**means, "n": groups[attack.groups[0]]["n"], **groups, **sim, "grid": grid}
