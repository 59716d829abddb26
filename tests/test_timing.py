"""Speed ratios measured interleaved (robustbench_interp.timing): a load that comes and goes cannot
fake a ratio, and a measurement too noisy to judge says so. A fake clock makes every case exact."""

from __future__ import annotations

import pytest

from robustbench_interp.errors import ConfigError
from robustbench_interp.timing import MAX_RELATIVE_SPREAD, interleaved_ratio


class FakeMachine:
    """A clock and two jobs: the candidate costs ``ratio`` times the reference's ``base`` seconds,
    both scaled by the load of the call's index (``load(i)``, 1 when quiet)."""

    def __init__(self, ratio, load=lambda i: 1.0, base=0.01):
        self.now, self.calls, self.ratio, self.load, self.base = 0.0, 0, ratio, load, base
        self.order: list[str] = []

    def clock(self):
        return self.now

    def _run(self, cost, name):
        self.now += cost * self.load(self.calls)
        self.calls += 1
        self.order.append(name)

    def reference(self):
        self._run(self.base, "R")

    def candidate(self):
        self._run(self.base * self.ratio, "C")


def test_a_quiet_machine_gives_the_true_ratio_trusted():
    m = FakeMachine(ratio=1.8)
    r = interleaved_ratio(m.candidate, m.reference, pairs=9, clock=m.clock)
    assert r.median == pytest.approx(1.8) and r.spread == pytest.approx(0.0) and r.trusted
    assert r.reference_seconds == pytest.approx(0.01) and r.candidate_seconds == pytest.approx(0.018)


def test_pairs_alternate_their_order_after_the_warmup():
    m = FakeMachine(ratio=2.0)
    interleaved_ratio(m.candidate, m.reference, pairs=4, warmup=1, clock=m.clock)
    assert "".join(m.order) == "RC" + "RC" + "CR" + "RC" + "CR"


def test_a_burst_of_load_moves_the_median_little():
    """Another process doubles the cost of everything for a few calls: timed in separate blocks,
    the reference or the candidate alone would pay for it; interleaved, two pairs are spoilt."""
    burst = {6, 7, 8}  # the calls of the second and third pair after the warmup (one of each, in part)
    m = FakeMachine(ratio=1.5, load=lambda i: 2.0 if i in burst else 1.0)
    r = interleaved_ratio(m.candidate, m.reference, pairs=11, clock=m.clock)
    assert r.median == pytest.approx(1.5) and r.trusted


def test_a_load_that_comes_and_goes_is_reported_untrusted():
    m = FakeMachine(ratio=1.0, load=lambda i: 3.0 if i % 2 and (i // 2) % 2 == 0 else 1.0)  # every other pair
    r = interleaved_ratio(m.candidate, m.reference, pairs=12, clock=m.clock)
    assert r.spread > MAX_RELATIVE_SPREAD and not r.trusted
    assert "do not judge this ratio" in r.describe()
    assert r.to_dict()["trusted"] is False


def test_bad_arguments_are_refused():
    m = FakeMachine(ratio=1.0)
    with pytest.raises(ConfigError, match="pairs >= 1"):
        interleaved_ratio(m.candidate, m.reference, pairs=0, clock=m.clock)
    free = FakeMachine(ratio=1.0, base=0.0)
    with pytest.raises(ConfigError, match="no measurable time"):
        interleaved_ratio(free.candidate, free.reference, pairs=3, clock=free.clock)
