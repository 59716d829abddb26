"""Speed as a ratio to a reference, measured so that a shared, noisy machine cannot fake it.

A candidate (an interpreter's ``explain``, a manipulation step) and its reference (a forward and
backward pass, a training step) timed in separate blocks see different machine loads: another
process that runs during one block and not the other can halve or double their ratio. So they are
timed **interleaved**: pairs of one reference call and one candidate call, back to back, the order
alternating from pair to pair (so a steady drift in load favours neither), and the result is the
**median of the per-pair ratios** with its interquartile range. A burst of load spoils the pairs
it falls in and moves the median little; a load that comes and goes throughout widens the
interquartile range, and :attr:`Ratio.trusted` then says the ratio cannot be trusted
(:data:`MAX_RELATIVE_SPREAD`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from robustbench_interp.errors import ConfigError

#: The widest interquartile range of the per-pair ratios, relative to their median, of a ratio to
#: trust: wider, and the machine's load changed too much during the measurement to judge a goal.
MAX_RELATIVE_SPREAD = 0.25


@dataclass(frozen=True)
class Ratio:
    """The median of per-pair time ratios (candidate / reference), their quartiles, and the median
    times of each side (seconds)."""

    median: float
    low: float
    high: float
    pairs: int
    candidate_seconds: float
    reference_seconds: float

    @property
    def spread(self) -> float:
        """The interquartile range of the per-pair ratios relative to their median."""
        return (self.high - self.low) / self.median if self.median > 0 else float("inf")

    @property
    def trusted(self) -> bool:
        """Whether the spread is narrow enough to judge the ratio against a goal."""
        return self.spread <= MAX_RELATIVE_SPREAD

    def to_dict(self) -> dict[str, float | int | bool]:
        return {"ratio_median": self.median, "ratio_q1": self.low, "ratio_q3": self.high, "pairs": self.pairs,
                "relative_spread": self.spread, "trusted": self.trusted,
                "candidate_median_s": self.candidate_seconds, "reference_median_s": self.reference_seconds}

    def describe(self) -> str:
        verdict = "" if self.trusted else (f"; spread {self.spread:.0%} > {MAX_RELATIVE_SPREAD:.0%}: the machine's "
                                           "load changed during the measurement, do not judge this ratio")
        return (f"{self.median:.2f} (quartiles {self.low:.2f}-{self.high:.2f} over {self.pairs} pairs; "
                f"{self.candidate_seconds * 1e3:.1f} ms against {self.reference_seconds * 1e3:.1f} ms){verdict}")


def interleaved_ratio(
    candidate: Callable[[], object],
    reference: Callable[[], object],
    *,
    pairs: int = 9,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> Ratio:
    """Time ``candidate`` against ``reference`` in ``pairs`` interleaved pairs (after ``warmup``
    calls of each) and return the median ratio with its quartiles; see the module docstring."""
    if pairs < 1 or warmup < 0:
        raise ConfigError(f"need pairs >= 1 and warmup >= 0, got pairs={pairs}, warmup={warmup}")

    def timed(fn: Callable[[], object]) -> float:
        start = clock()
        fn()
        return clock() - start

    for _ in range(warmup):
        reference()
        candidate()
    ratios, cand, ref = [], [], []
    for i in range(pairs):
        if i % 2 == 0:
            r, c = timed(reference), timed(candidate)
        else:
            c, r = timed(candidate), timed(reference)
        if r <= 0:
            raise ConfigError("the reference took no measurable time; give it more work per call")
        ratios.append(c / r)
        cand.append(c)
        ref.append(r)
    if pairs >= 4:
        q1, _q2, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    else:
        q1, q3 = min(ratios), max(ratios)
    return Ratio(median=statistics.median(ratios), low=q1, high=q3, pairs=pairs,
                 candidate_seconds=statistics.median(cand), reference_seconds=statistics.median(ref))


__all__ = ["MAX_RELATIVE_SPREAD", "Ratio", "interleaved_ratio"]
