"""Speed of the built-in interpreters, as ratios to one forward + backward-to-input pass.

Run deliberately: ``pytest benchmarks/ --benchmark-enable`` (the project's defaults disable
benchmarks; the ratio checks are then skipped). Each interpreter's mean time is divided by the
reference's mean time measured in the same test, just before and just after it (their average),
so a change of machine load between tests does not skew the ratio. The ratio is stored in
``benchmark.extra_info["ratio_to_fwd_bwd"]`` (the bound is checked on it), next to
``ratio_of_min_times``, the ratio of the fastest rounds, which other processes disturb least.
"""

from __future__ import annotations

import pytest

from robustbench_interp.interpreters import get_interpreter

SMOOTHGRAD_N = 10

# name, hyper-parameters, rounds, upper bound of the ratio (None: recorded only)
CASES = [
    ("simplegrad", {}, 8, 1.1),
    ("gradcam", {}, 8, 0.6),
    ("lrp", {}, 8, 1.5),
    ("lrp_t", {}, 8, None),
    ("gradient_x_input", {}, 8, None),
    ("simplegrad_t", {}, 8, None),
    ("smoothgrad", {"n_samples": SMOOTHGRAD_N}, 3, 1.1 * SMOOTHGRAD_N),
    ("integrated_gradients", {"steps": 16}, 3, None),
]


@pytest.mark.parametrize("name, params, rounds, bound", CASES, ids=[c[0] for c in CASES])
def test_interpreter_speed(benchmark, bench_setup, reference_time, name, params, rounds, bound):
    model, layer, x, target = bench_setup
    interp = get_interpreter(name, **params)
    before = reference_time() if not benchmark.disabled else None
    benchmark.pedantic(
        interp.explain, args=(model, x, target), kwargs={"layer": layer}, rounds=rounds, warmup_rounds=1
    )
    if benchmark.disabled:
        pytest.skip("benchmarks are disabled (run with --benchmark-enable to check the ratios)")
    after = reference_time()
    reference = (before[0] + after[0]) / 2
    ratio = benchmark.stats.stats.mean / reference
    benchmark.extra_info.update(
        {
            "ratio_to_fwd_bwd": ratio,
            # min / min is far less sensitive to other processes on a shared machine
            "ratio_of_min_times": benchmark.stats.stats.min / min(before[1], after[1]),
            "reference_mean_s": reference,
            "bound": bound,
            "params": params,
        }
    )
    if bound is not None:
        assert ratio <= bound, f"{name}: {ratio:.2f} x forward+backward, over the bound {bound}"
