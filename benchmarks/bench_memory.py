"""Peak memory of one manipulation step per built-in interpreter, against a training step.

Each step runs in a process of its own (``steps.py``: the speed benchmarks' ResNet-18, 64x64,
batch 32, on the CPU), so that the peak of one cannot hide in the high-water mark of another. The
figures go to ``benchmark.extra_info`` and are printed; a step whose figure cannot be measured
(no ``/proc``) is skipped. The benchmark's own time is that of the measuring process, not of the
step. Run deliberately: ``pytest benchmarks/ --benchmark-enable``. The same
script measures an ImageNet-size step on a GPU (its docstring has the command).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from steps import MMAP_ENV

from robustbench_interp.interpreters import get_interpreter, list_interpreters

HERE = Path(__file__).parent


def _measure(interpreter: str | None) -> dict:
    cmd = [sys.executable, str(HERE / "steps.py"), "--repeats", "2"]
    if interpreter is not None:
        cmd += ["--interpreter", interpreter]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env={**os.environ, **MMAP_ENV}, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@functools.cache
def _training_peak() -> dict:
    """The training step's measurement, taken once per session."""
    return _measure(None)


@pytest.mark.parametrize("name", list_interpreters())
def test_manipulation_step_memory(benchmark, name):
    if benchmark.disabled:
        pytest.skip("benchmarking is disabled (--benchmark-disable): no peak to measure")
    try:  # the peak resident set must be resettable here, as in the measuring process
        Path("/proc/self/clear_refs").write_text("5")
    except OSError as exc:
        pytest.skip(f"the peak resident set cannot be reset on this system (/proc/self/clear_refs: {exc})")
    if not get_interpreter(name).differentiable:
        pytest.skip(f"{name} is not differentiable: it has no manipulation step")
    training_peak = _training_peak()
    measured = benchmark.pedantic(_measure, args=(name,), rounds=1, iterations=1)
    ratio = measured["peak_mib"] / training_peak["peak_mib"]
    benchmark.extra_info.update(peak_mib=measured["peak_mib"], training_peak_mib=training_peak["peak_mib"],
                                ratio=ratio, peaks_mib=measured["peaks_mib"])
    print(f"\n{name}: manipulation step peak {measured['peak_mib']:.0f} MiB "
          f"({ratio:.2f} x a training step's {training_peak['peak_mib']:.0f} MiB)")
    # the step holds a training step's activations and weight gradients and the interpreter's graph on top
    assert training_peak["peak_mib"] > 0 and measured["peak_mib"] >= training_peak["peak_mib"], (measured, training_peak)
    assert max(measured["peaks_mib"]) <= 1.1 * min(measured["peaks_mib"]) + 1, f"unstable peaks {measured['peaks_mib']}"
