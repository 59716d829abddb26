"""Speed of one manipulation step, as a ratio to a plain training step (CE only) on the same batch.

A manipulation step is the fine-tuning loop's own step (``ManipulationRun``, advanced one step at a
time on one batch): CE + lambda * Location penalty through the interpreter with
``create_graph=True`` (the double-backward pass), backward, Adam step; the cross-entropy takes the
interpreter's logits where it shares its forward pass (``Interpreter.shares_forward``, and its
backward pass with ``shares_backward``). The
reference is CE, backward, Adam step, timed interleaved with it (pairs of one step each, the
order alternating; the goal is checked on the median ratio, a measurement too noisy to judge is
skipped with its numbers). Run deliberately: ``pytest benchmarks/ --benchmark-enable``.
"""

from __future__ import annotations

import pytest
import torch
from conftest import judge
from steps import declared_sharing, manipulation_run, trainable_copy, training_step

from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.timing import interleaved_ratio

# name, upper bound of the ratio (None: recorded only)
CASES = [("gradcam", 3.0), ("simplegrad", 3.0), ("gradient_x_input", 3.0), ("lrp_t", None)]


@pytest.mark.parametrize("name, bound", CASES, ids=[c[0] for c in CASES])
def test_manipulation_step_speed(benchmark, bench_setup, name, bound):
    model0, layer0, x, target = bench_setup
    model, _ = trainable_copy(model0, layer0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    interp, pairs = get_interpreter(name), 9
    if benchmark.disabled:
        pytest.skip("benchmarking is disabled (--benchmark-disable): no ratio to check")
    run = manipulation_run(model0, layer0, interp, x, target, steps=2 * pairs + 4)
    ratio = benchmark.pedantic(
        interleaved_ratio,
        args=(lambda: run.advance(run.step + 1), lambda: training_step(model, optimizer, x, target)),
        kwargs={"pairs": pairs}, rounds=1, iterations=1)
    how = {"none": "a forward pass of its own", "forward": "shared forward",
           "joint": "shared forward and backward"}[declared_sharing(interp) if run.shared_steps else "none"]
    judge(benchmark, ratio, bound, f"{name}: manipulation step ({how}) / training step")


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


def test_seeds_batched_speed(benchmark):
    """Three seeds' training steps of the tiny ResNet as one batched computation
    (``torch.func.stack_module_state`` + ``vmap``), as a ratio to the three steps in a row
    (recorded, no bound: on a 2-core CPU it does not pay, so the grid runs seeds one by one)."""
    import copy

    import torch.nn.functional as F
    from torch.func import functional_call, stack_module_state, vmap

    from robustbench_interp.models import load_model

    if benchmark.disabled:
        pytest.skip("benchmarking is disabled (--benchmark-disable): no ratio to check")
    k, base = 3, load_model("tiny", "resnet", weights="random").model.eval()
    models = [copy.deepcopy(base) for _ in range(k)]
    x = torch.rand(k, 64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (k, 64), generator=torch.Generator().manual_seed(1))
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-4) for m in models]
    params, buffers = stack_module_state(models)
    params = {name: p.detach().requires_grad_(True) for name, p in params.items()}
    batched_optimizer = torch.optim.Adam(list(params.values()), lr=1e-4)
    skeleton = copy.deepcopy(base).to("meta")

    def one_loss(p, b, xi, yi):
        return F.cross_entropy(functional_call(skeleton, (p, b), (xi,)), yi)

    def batched():
        loss = vmap(one_loss)(params, buffers, x, y).sum()
        batched_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        batched_optimizer.step()

    def in_a_row():
        for model, optimizer, xi, yi in zip(models, optimizers, x, y):
            training_step(model, optimizer, xi, yi)

    ratio = benchmark.pedantic(interleaved_ratio, args=(batched, in_a_row), kwargs={"pairs": 9},
                               rounds=1, iterations=1)
    judge(benchmark, ratio, None, "three seeds' training steps batched with vmap / in a row")
