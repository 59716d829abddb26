"""Speed of one manipulation step, as a ratio to a plain training step (CE only) on the same batch.

A manipulation step is the fine-tuning loop's step: CE + lambda * Location penalty through the
interpreter with ``create_graph=True`` (the double-backward pass), backward, Adam step. The
reference is CE, backward, Adam step, timed interleaved with it (pairs of one step each, the
order alternating; the goal is checked on the median ratio, a measurement too noisy to judge is
skipped with its numbers). Run deliberately: ``pytest benchmarks/ --benchmark-enable``.
"""

from __future__ import annotations

import pytest
import torch
from conftest import judge
from steps import manipulation_step, trainable_copy, training_step

from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.timing import interleaved_ratio

# name, upper bound of the ratio (None: recorded only)
CASES = [("gradcam", 3.0), ("simplegrad", 3.0), ("lrp_t", None)]


@pytest.mark.parametrize("name, bound", CASES, ids=[c[0] for c in CASES])
def test_manipulation_step_speed(benchmark, bench_setup, name, bound):
    model0, layer0, x, target = bench_setup
    model, layer = trainable_copy(model0, layer0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    interp = get_interpreter(name)
    if benchmark.disabled:
        pytest.skip("benchmarking is disabled (--benchmark-disable): no ratio to check")
    ratio = benchmark.pedantic(
        interleaved_ratio,
        args=(lambda: manipulation_step(model, layer, interp, optimizer, x, target),
              lambda: training_step(model, optimizer, x, target)),
        kwargs={"pairs": 9}, rounds=1, iterations=1)
    judge(benchmark, ratio, bound, f"{name}: manipulation step / training step")


@pytest.mark.parametrize("name", ["gradcam", "simplegrad"])
def test_shared_reference_maps_speed(benchmark, bench_setup, name):
    """One Top-k manipulation step whose original-model maps come from a search's warm
    ReferenceCache, as a ratio to the same step computing them (recorded, no bound)."""
    from torch.utils.data import TensorDataset

    from robustbench_interp.attacks.finetune import ManipulationRun, ReferenceCache
    from robustbench_interp.config import AttackParams

    model0, layer0, x, target = bench_setup
    if benchmark.disabled:
        pytest.skip("benchmarking is disabled (--benchmark-disable): no ratio to check")
    data, interp, steps = TensorDataset(x, target), get_interpreter(name), 12
    params = [AttackParams(lr=lr, lam=1.0, steps=steps, batch_size=len(x)) for lr in (1e-6, 2e-6)]
    cache = ReferenceCache()
    ManipulationRun(model0, layer0, interp, "topk", params[0], data, reference_cache=cache).advance()  # a first config
    shared = ManipulationRun(model0, layer0, interp, "topk", params[1], data, reference_cache=cache)
    alone = ManipulationRun(model0, layer0, interp, "topk", params[1], data)
    ratio = benchmark.pedantic(
        interleaved_ratio,
        args=(lambda: shared.advance(shared.step + 1), lambda: alone.advance(alone.step + 1)),
        kwargs={"pairs": steps - 1, "warmup": 0}, rounds=1, iterations=1)
    assert cache.hits == steps - 1  # every timed step of the shared run was served by the cache
    judge(benchmark, ratio, None, f"{name}: Top-k step with shared reference maps / computing them")
