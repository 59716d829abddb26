"""The Fooling Success Rate (Heo et al., NeurIPS 2019, eq. 6; SPEC section 4) and its error bar.

    FSR = 100 * (1/|V|) * sum_i 1[t_i in R_F]

``R_F`` is a closed interval per attack (each attack's ``success_interval``). Always report the
baseline FSR beside it: the same rate computed on the test losses with ``w*`` replaced by ``w0``;
:func:`fsr_summary` computes both together. Every function takes the interval as a ``(lo, hi)``
pair or as an object that declares ``success_interval`` (an attack).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from robustbench_interp.errors import ConfigError

#: A success interval: a ``(lo, hi)`` pair, or an attack declaring ``success_interval``.
Interval = Any


def _interval(interval: Any) -> tuple[float, float]:
    interval = getattr(interval, "success_interval", interval)
    try:
        lo, hi = interval
    except (TypeError, ValueError):
        raise ConfigError(
            f"a success interval is a (lo, hi) pair or an attack declaring one, got {interval!r}"
        ) from None
    if not lo <= hi:
        raise ConfigError(f"a success interval needs lo <= hi, got ({lo}, {hi})")
    return float(lo), float(hi)


def successes(t: Tensor | Sequence[float], interval: Interval, degenerate: Tensor | None = None) -> Tensor:
    """Boolean ``[N]``: which test losses lie in the closed interval (or the attack's).

    A NaN test loss is never a success, nor is the test loss of a map flagged in ``degenerate``
    (boolean ``[N]``: an empty or constant map is conspicuous, not fooled; SPEC section 8). The
    bounds are compared in the dtype of ``t`` (float32 test losses against ``float32(0.2)``), so a
    test loss equal to a bound counts as inside.
    """
    lo, hi = _interval(interval)
    t = torch.as_tensor(t).detach().reshape(-1)
    if not t.is_floating_point():
        t = t.double()
    hit = (t >= lo) & (t <= hi)
    if degenerate is not None:
        degenerate = torch.as_tensor(degenerate).reshape(-1).to(hit.device)
        if degenerate.numel() != hit.numel():
            raise ConfigError(f"need one degenerate flag per test loss, got {degenerate.numel()} and {hit.numel()}")
        hit = hit & ~degenerate
    return hit


def distances(t: Tensor | Sequence[float], t0: Tensor | Sequence[float], interval: Interval,
              degenerate: Tensor | None = None) -> Tensor:
    """Float ``[N]``: how far each test loss lies from the success interval (0 inside it).

    A map flagged in ``degenerate`` (empty or constant), or with a NaN test loss, keeps the distance
    of its baseline test loss ``t0``: blanking a map is not progress towards fooling, as it is no
    success (SPEC section 8). The attacker ranks configurations by the mean (:func:`fsr_summary`'s
    ``mean_distance``) where their FSRs tie.
    """
    lo, hi = _interval(interval)
    t = torch.as_tensor(t).detach().reshape(-1).double()
    t0 = torch.as_tensor(t0).detach().reshape(-1).double()

    def gap(v: Tensor) -> Tensor:
        return (lo - v).clamp(min=0) + (v - hi).clamp(min=0)

    d, d0 = gap(t), gap(t0)
    keep = torch.isfinite(d)
    if degenerate is not None:
        keep = keep & ~torch.as_tensor(degenerate).reshape(-1).to(keep.device)
    return torch.where(keep, d, d0)


def fooling_success_rate(t: Tensor | Sequence[float], interval: Interval) -> float:
    """``100 * mean(t_i in [lo, hi])``, the bounds included (Heo et al. 2019, eq. 6).

    ``interval`` is a ``(lo, hi)`` pair or an attack (its ``success_interval`` is used).
    """
    hit = successes(t, interval)
    if hit.numel() == 0:
        raise ConfigError("the FSR of zero test losses is undefined; evaluate at least one image")
    return 100.0 * float(hit.double().mean())


def fsr_confidence_interval(successes: int, n: int, *, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for an FSR, in percent: ``(low, high)``; 95% for the default ``z``.

    Wilson (1927) rather than the normal approximation, because FSRs are often near 0% or 100% and
    computed on a few hundred images, where the normal interval leaves [0, 100] or collapses to a
    point. Researchers get an error bar: two FSRs whose intervals overlap widely are not different.
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ConfigError(f"need 0 <= successes <= n and n > 0, got successes={successes}, n={n}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def fsr_by_class(
    t: Tensor | Sequence[float], labels: Tensor | Sequence[int], interval: Interval, degenerate: Tensor | None = None
) -> dict[str, float]:
    """FSR (percent) of the images of each class, keyed by the class index as a string.

    A manipulation rarely fools every class alike: a class whose map loses every positive value on
    the penalty's target region gets no gradient from the penalty (the normalisation's ReLU) and
    stays unfooled. The per-class rates show it.
    """
    hit = successes(t, interval, degenerate)
    labels = torch.as_tensor(labels).reshape(-1)
    if labels.numel() != hit.numel():
        raise ConfigError(f"need one label per test loss, got {labels.numel()} labels and {hit.numel()} losses")
    return {str(int(c)): 100.0 * float(hit[labels == c].double().mean()) for c in torch.unique(labels)}


def fsr_summary(t: Tensor, t0: Tensor, interval: Interval, degenerate: Tensor | None = None,
                degenerate0: Tensor | None = None) -> dict[str, Any]:
    """FSR and baseline FSR with their Wilson 95% intervals, as plain numbers for the store.

    ``t`` are the test losses of ``w*`` against ``w0``, ``t0`` those with ``w*`` replaced by ``w0``;
    ``degenerate`` / ``degenerate0`` flag the maps of ``w*`` / ``w0`` that are empty or constant
    (never successes). Returns ``{"fsr", "fsr_ci", "baseline_fsr", "baseline_fsr_ci", "n",
    "successes", "baseline_successes", "mean_test_loss", "mean_distance"}`` (intervals as ``[low,
    high]`` lists; the means over finite values, None when there are none; the distance as
    :func:`distances` gives it).
    """
    hit, hit0 = successes(t, interval, degenerate), successes(t0, interval, degenerate0)
    n = int(hit.numel())
    if n == 0 or int(hit0.numel()) != n:
        raise ConfigError(
            f"need the same non-zero number of test losses for w* and w0, got {n} and {hit0.numel()}"
        )
    s, s0 = int(hit.sum()), int(hit0.sum())
    return {
        "fsr": 100.0 * s / n,
        "fsr_ci": list(fsr_confidence_interval(s, n)),
        "baseline_fsr": 100.0 * s0 / n,
        "baseline_fsr_ci": list(fsr_confidence_interval(s0, n)),
        "n": n,
        "successes": s,
        "baseline_successes": s0,
        "mean_test_loss": _finite_mean(torch.as_tensor(t)),
        "mean_distance": _finite_mean(distances(t, t0, interval, degenerate)),
    }


def _finite_mean(v: Tensor) -> float | None:
    """The mean of the finite values (None when there are none: a store holds no NaN)."""
    v = v.detach().reshape(-1).double()
    v = v[torch.isfinite(v)]
    return float(v.mean()) if v.numel() else None
