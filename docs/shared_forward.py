"""What sharing the forward pass between the cross-entropy term and the interpreter saves.

A manipulation step takes its cross-entropy from the logits of the forward pass the interpreter
makes inside ``explain`` where the interpreter declares ``shares_forward`` (SimpleGrad, its target-
layer variant and gradient x input: the shared step gives the same weights to the last bit,
``tests/test_shared_forward.py``), and computes a forward pass of its own otherwise. This script
times, interleaved on the benchmarks' model and batch (ResNet-18, 64x64, batch 32;
``benchmarks/steps.py``), a training step, the step with a forward pass of its own, and the step
with the shared forward (forced, also for interpreters that do not declare it: for Grad-CAM it
changes the rounding, so it waits for a new benchmark version), and prints each step's median ratio
to a training step (quartiles) and the median ratio of the shared step to the separate one::

    python docs/shared_forward.py gradcam simplegrad gradient_x_input lrp_t

An interpreter whose ``explain`` does not call the model on the batch itself (the LRP engines run
its layers one by one) has nothing to share: its step makes a forward pass of its own.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from steps import bench_model, manipulation_step, training_step

from robustbench_interp.interpreters import get_interpreter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("interpreters", nargs="*", default=["gradcam", "simplegrad", "gradient_x_input", "lrp_t"])
    parser.add_argument("--pairs", type=int, default=9, help="interleaved rounds per interpreter")
    args = parser.parse_args()
    torch.manual_seed(0)
    model0, layer0 = bench_model()
    x, target = torch.rand(32, 3, 64, 64), torch.randint(0, 10, (32,))
    name0 = next(n for n, m in model0.named_modules() if m is layer0)

    def copy_of() -> tuple[nn.Module, nn.Module, torch.optim.Optimizer]:
        model = copy.deepcopy(model0).eval()
        return model, dict(model.named_modules())[name0], torch.optim.Adam(model.parameters(), 1e-4)

    for name in args.interpreters:
        interp = get_interpreter(name)
        (mt, _, ot), (ma, la, oa), (mb, lb, ob) = copy_of(), copy_of(), copy_of()
        training_step(mt, ot, x, target)  # warm-up: Adam's state, lazy initialisations
        manipulation_step(ma, la, interp, oa, x, target, share=False)
        shared = manipulation_step(mb, lb, interp, ob, x, target, share=True)
        separate, joint = [], []
        for _ in range(args.pairs):
            t0 = time.perf_counter()
            training_step(mt, ot, x, target)
            t1 = time.perf_counter()
            manipulation_step(ma, la, interp, oa, x, target, share=False)
            t2 = time.perf_counter()
            manipulation_step(mb, lb, interp, ob, x, target, share=True)
            t3 = time.perf_counter()
            training_step(mt, ot, x, target)
            t4 = time.perf_counter()
            train = (t1 - t0 + t4 - t3) / 2
            separate.append((t2 - t1) / train)
            joint.append((t3 - t2) / train)

        def show(values: list[float]) -> str:
            q = statistics.quantiles(values, n=4)
            return f"{statistics.median(values):.2f} ({q[0]:.2f}-{q[2]:.2f})"

        ratio = statistics.median(b / a for a, b in zip(separate, joint))
        print(f"{name}: x a training step: separate {show(separate)}, shared {show(joint)}"
              f"{'' if shared else ' (not shared: falls back)'}; shared / separate {ratio:.2f}", flush=True)


if __name__ == "__main__":
    main()
