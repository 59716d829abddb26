"""What sharing the forward pass between the cross-entropy term and the interpreter would save.

A manipulation step today computes the cross-entropy on a forward pass of its own, beside the one
the interpreter makes inside ``explain`` (``attacks/finetune.py``). Where the interpreter runs the
whole model once on the batch itself, the cross-entropy could use that forward's logits: the same
loss, one forward and its backward fewer, different rounding. This script times, interleaved on
the benchmarks' model and batch (ResNet-18, 64x64, batch 32; ``benchmarks/steps.py``), a training
step, the manipulation step as it is, and the step with the shared forward, and prints each
manipulation step's median ratio to a training step (quartiles) and the median ratio of the shared
step to the separate one::

    python docs/shared_forward.py gradcam simplegrad gradient_x_input lrp_t

The shared step takes the logits from a forward hook on the model; an interpreter whose
``explain`` does not call the model on the batch itself (the LRP engines run its layers one by
one) falls back to a forward of its own, as today.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from steps import bench_model, manipulation_step, training_step

from robustbench_interp.attacks.location import location_penalty
from robustbench_interp.interpreters import get_interpreter


def shared_step(model: nn.Module, layer: nn.Module, interp, optimizer: torch.optim.Optimizer,
                x: torch.Tensor, target: torch.Tensor) -> bool:
    """One manipulation step whose cross-entropy reuses the interpreter's forward on ``x`` when
    there was exactly one, on ``x``'s own memory and with a graph; returns whether it was shared."""
    seen: list[torch.Tensor] = []

    def keep(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if inputs and inputs[0].data_ptr() == x.data_ptr() and inputs[0].shape == x.shape:
            seen.append(output)

    hook = model.register_forward_hook(keep)
    try:
        h = interp.explain(model, x, target, layer=layer, create_graph=True)
    finally:
        hook.remove()
    shared = len(seen) == 1 and seen[0].requires_grad
    logits = seen[0] if shared else model(x)
    loss = F.cross_entropy(logits, target) + location_penalty(h)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return shared


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
        manipulation_step(ma, la, interp, oa, x, target)
        shared = shared_step(mb, lb, interp, ob, x, target)
        separate, joint = [], []
        for _ in range(args.pairs):
            t0 = time.perf_counter()
            training_step(mt, ot, x, target)
            t1 = time.perf_counter()
            manipulation_step(ma, la, interp, oa, x, target)
            t2 = time.perf_counter()
            shared_step(mb, lb, interp, ob, x, target)
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
