"""Speed of the built-in interpreters, as ratios to one forward + backward-to-input pass.

Run deliberately: ``pytest benchmarks/ --benchmark-enable`` (the project's defaults disable
benchmarks; the ratio checks are then skipped). Each interpreter and the reference are timed
interleaved (:func:`robustbench_interp.timing.interleaved_ratio`: pairs of one call each, the order
alternating) and the goal is checked on the median of the per-pair ratios, stored with its
quartiles in ``benchmark.extra_info``. When their spread is too wide (the machine's load changed
during the measurement) the test is skipped with the measured numbers rather than judged.
"""

from __future__ import annotations

import pytest
from conftest import forward_backward, judge

from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.timing import interleaved_ratio

SMOOTHGRAD_N = 10

# name, hyper-parameters, interleaved pairs, upper bound of the median ratio (None: recorded only)
CASES = [
    ("simplegrad", {}, 15, 1.1),
    ("gradcam", {}, 15, 0.6),
    ("lrp", {}, 15, 1.5),
    ("lrp_t", {}, 15, None),
    ("gradient_x_input", {}, 15, None),
    ("simplegrad_t", {}, 15, None),
    ("smoothgrad", {"n_samples": SMOOTHGRAD_N}, 7, 1.1 * SMOOTHGRAD_N),
    ("integrated_gradients", {"steps": 16}, 7, None),
]


@pytest.mark.parametrize("name, params, pairs, bound", CASES, ids=[c[0] for c in CASES])
def test_interpreter_speed(benchmark, bench_setup, name, params, pairs, bound):
    model, layer, x, target = bench_setup
    interp = get_interpreter(name, **params)
    if benchmark.disabled:
        pytest.skip("benchmarks are disabled (run with --benchmark-enable to check the ratios)")

    def candidate():
        return interp.explain(model, x, target, layer=layer)

    ratio = benchmark.pedantic(interleaved_ratio, args=(candidate, lambda: forward_backward(model, x, target)),
                               kwargs={"pairs": pairs}, rounds=1, iterations=1)
    judge(benchmark, ratio, bound, f"{name} / forward+backward", params=params)


def test_smoothgrad_batching(benchmark, bench_setup):
    """SmoothGrad's noisy copies in one pass of ``n * B`` images (``max_batch=n*B``) as a ratio to ``n``
    passes of ``B`` (``max_batch=B``): the same maps, computed batched or not (recorded, no bound;
    a ratio >= 1 means batching does not pay on this machine)."""
    model, layer, x, target = bench_setup
    if benchmark.disabled:
        pytest.skip("benchmarks are disabled (run with --benchmark-enable to check the ratios)")
    batched = get_interpreter("smoothgrad", n_samples=SMOOTHGRAD_N, max_batch=SMOOTHGRAD_N * len(x))
    passes = get_interpreter("smoothgrad", n_samples=SMOOTHGRAD_N, max_batch=len(x))
    ratio = benchmark.pedantic(
        interleaved_ratio,
        args=(lambda: batched.explain(model, x, target, layer=layer), lambda: passes.explain(model, x, target, layer=layer)),
        kwargs={"pairs": 7}, rounds=1, iterations=1)
    judge(benchmark, ratio, None, f"smoothgrad n={SMOOTHGRAD_N}: one pass of {SMOOTHGRAD_N * len(x)} / "
          f"{SMOOTHGRAD_N} passes of {len(x)}")
