"""What sharing the forward pass between the cross-entropy term and the interpreter saves.

A manipulation step takes its cross-entropy from the logits of the forward pass the interpreter
makes inside ``explain`` where the interpreter declares ``shares_forward``, and makes a forward
pass of its own otherwise. The two terms are then back-propagated one after the other (the
weights stay the same to the last bit, on a CPU, for any interpreter whose forward pass is the
model's plain one, on a model that uses each weight once per forward pass: Grad-CAM), or together where it also declares ``shares_backward`` (SimpleGrad, its
target-layer variant and gradient x input, whose maps' gradients pass nothing back through the
forward activations); ``tests/test_shared_forward.py`` checks both. This script times,
interleaved on the benchmarks' model and batch (ResNet-18, 64x64, batch 32;
``benchmarks/steps.py``), a training step and the package's manipulation step
(``ManipulationRun``, one step at a time) made each of the three ways
(a forward pass of its own, shared forward, shared forward and backward; the last forced also for
the interpreters that do not declare it, where it would change the weights), and prints each
one's median ratio to a training step (quartiles)::

    python docs/shared_forward.py gradcam simplegrad gradient_x_input simplegrad_t

An interpreter whose ``explain`` does not call the model on the batch itself (the LRP engines run
its layers one by one; SmoothGrad and integrated gradients run it on other images) has nothing
to share: its step makes a forward pass of its own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from steps import SHARING, bench_model, declared_sharing, manipulation_run, trainable_copy, training_step

from robustbench_interp.interpreters import get_interpreter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("interpreters", nargs="*", default=["gradcam", "simplegrad", "gradient_x_input", "simplegrad_t"])
    parser.add_argument("--pairs", type=int, default=9, help="interleaved rounds per interpreter")
    args = parser.parse_args()
    torch.manual_seed(0)
    model0, layer0 = bench_model()
    x, target = torch.rand(32, 3, 64, 64), torch.randint(0, 10, (32,))

    def show(values: list[float]) -> str:
        q = statistics.quantiles(values, n=4)
        return f"{statistics.median(values):.2f} ({q[0]:.2f}-{q[2]:.2f})"

    for name in args.interpreters:
        interp = get_interpreter(name)
        model, _ = trainable_copy(model0, layer0)
        optimizer = torch.optim.Adam(model.parameters(), 1e-6)
        runs = {mode: manipulation_run(model0, layer0, interp, x, target, share=mode, steps=args.pairs + 1)
                for mode in SHARING}
        training_step(model, optimizer, x, target)  # warm-up: Adam's state, lazy initialisations
        for run in runs.values():
            run.advance(run.step + 1)
        ratios: dict[str, list[float]] = {mode: [] for mode in SHARING}
        for _ in range(args.pairs):
            seconds = {}
            t0 = time.perf_counter()
            training_step(model, optimizer, x, target)
            train = time.perf_counter() - t0
            for mode, run in runs.items():
                t = time.perf_counter()
                run.advance(run.step + 1)
                seconds[mode] = time.perf_counter() - t
            t0 = time.perf_counter()
            training_step(model, optimizer, x, target)
            train = (train + time.perf_counter() - t0) / 2
            for mode in SHARING:
                ratios[mode].append(seconds[mode] / train)
        shown = ", ".join(f"{mode} {show(ratios[mode])}"
                          f"{'' if runs[mode].shared_steps or mode == 'none' else ' (nothing to share)'}"
                          for mode in SHARING)
        print(f"{name} (declares {declared_sharing(interp)}): x a training step: {shown}", flush=True)


if __name__ == "__main__":
    main()
