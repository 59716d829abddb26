"""One training step and one manipulation step, and the peak memory of each.

The steps are those the speed benchmarks time (``bench_attacks.py``): a training step is CE,
backward, Adam step; a manipulation step is the fine-tuning loop's own step (``ManipulationRun``,
advanced one step at a time: :func:`manipulation_run`), CE + the Location penalty through the
interpreter with ``create_graph=True`` (the double backward), backward, Adam step.

Run as a script, it measures the peak memory a step needs beyond what the process holds before it
(model, batch, optimizer state), in a process of its own, and prints one JSON line::

    MALLOC_MMAP_THRESHOLD_=131072 python benchmarks/steps.py --interpreter gradcam
    python benchmarks/steps.py --interpreter lrp_t --model imagenet:resnet50 --size 224 --batch 8 --device cuda

On CUDA the peak is the caching allocator's (``torch.cuda.max_memory_allocated``). On a CPU it is
the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` before the
step) minus its resident set before it. That measures the step's own tensors only if freed
memory goes back to the system: glibc keeps freed blocks for reuse once its mmap threshold has
grown, so the threshold is fixed by ``MALLOC_MMAP_THRESHOLD_=131072`` in the environment of the
process (the benchmark sets it; without it the figure is refused). The step runs once to warm up
(Adam's state, lazy initialisations), then ``--repeats`` times; each figure is reported.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: The glibc setting under which a CPU process's resident set follows its live tensors.
MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, target: torch.Tensor) -> None:
    loss = F.cross_entropy(model(x), target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


#: How a manipulation step's cross-entropy is made: a forward pass of its own; the interpreter's
#: logits, the two terms back-propagated apart; its logits, back-propagated together.
SHARING = ("none", "forward", "joint")


def declared_sharing(interp) -> str:
    """The sharing the package's step uses for ``interp`` (``Interpreter.shares_forward`` and
    ``shares_backward``), one of :data:`SHARING`."""
    if not getattr(interp, "shares_forward", False):
        return "none"
    return "joint" if getattr(interp, "shares_backward", False) else "forward"


def manipulation_run(model0: nn.Module, layer0: nn.Module, interp, x: torch.Tensor, target: torch.Tensor,
                     *, share: str | None = None, steps: int = 1000):
    """The package's fine-tuning loop (``ManipulationRun``: CE + Location penalty through ``interp``,
    lambda 1, Adam at lr 1e-6) on a copy of ``model0`` and the one batch ``(x, target)``, its
    cross-entropy made as ``share`` says (one of :data:`SHARING`, forced on a copy of ``interp``;
    None: as the interpreter declares). It is advanced past the masking check, whose steps measure
    the penalty's gradient apart: each ``run.advance(run.step + 1)`` is then one manipulation step,
    and ``run.shared_steps`` counts those that took the interpreter's logits."""
    from torch.utils.data import TensorDataset

    from robustbench_interp.attacks.finetune import MASKING_CHECK_STEPS, ManipulationRun
    from robustbench_interp.config import AttackParams

    mode = declared_sharing(interp) if share is None else share
    if mode not in SHARING:
        raise ValueError(f"share={share!r}: expected one of {SHARING}")
    interp = copy.copy(interp)
    interp.shares_forward, interp.shares_backward = mode != "none", mode == "joint"
    params = AttackParams(lr=1e-6, lam=1.0, steps=MASKING_CHECK_STEPS + steps, batch_size=len(x))
    run = ManipulationRun(model0, layer0, interp, "location", params, TensorDataset(x, target), device=x.device)
    return run.advance(MASKING_CHECK_STEPS)


def bench_model(classes: int = 10) -> tuple[nn.Module, nn.Module]:
    """torchvision's resnet18 (random weights from the current seed) behind Normalize, and its
    target layer (``layer4[-1]``): the benchmarks' model."""
    import torchvision

    from robustbench_interp.models.base import Normalize

    net = torchvision.models.resnet18(weights=None, num_classes=classes)
    return nn.Sequential(Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), net).eval(), net.layer4[-1]


def trainable_copy(model0: nn.Module, layer0: nn.Module) -> tuple[nn.Module, nn.Module]:
    """A copy of ``model0`` in eval mode and the copy's module that ``layer0`` is in ``model0``."""
    model = copy.deepcopy(model0).eval()
    name = next(n for n, m in model0.named_modules() if m is layer0)
    return model, dict(model.named_modules())[name]


def _proc_status() -> dict[str, float]:
    text = Path("/proc/self/status").read_text()
    return {key: int(re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE).group(1)) / 1024 for key in ("VmRSS", "VmHWM")}


def cpu_peak_mib(step: Callable[[], None]) -> float:
    """The resident memory ``step`` adds at its peak (MiB; see the module doc for the conditions)."""
    before = _proc_status()["VmRSS"]
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    step()
    return _proc_status()["VmHWM"] - before


def cuda_peak_mib(step: Callable[[], None], device: torch.device) -> float:
    """The memory the caching allocator hands ``step`` at its peak, beyond what was allocated before (MiB)."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def build(model_spec: str, size: int, batch: int, device: torch.device, classes: int = 10
          ) -> tuple[nn.Module, nn.Module, torch.Tensor, torch.Tensor]:
    """``(model, target layer, x, target)``: ``bench`` is the speed benchmarks' ResNet-18 (random
    weights, 10 classes); ``TRACK:ARCH`` a registered model with random weights (e.g. ``imagenet:resnet50``)."""
    if model_spec == "bench":
        model, layer = bench_model(classes)
    else:
        from robustbench_interp.models import load_model

        track, _, arch = model_spec.partition(":")
        loaded = load_model(track, arch, weights="random")
        model, layer = loaded.model, loaded.target_layer
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=gen)
    with torch.no_grad():
        n_out = model(x[:1]).shape[1]
    target = torch.randint(0, n_out, (batch,), generator=torch.Generator().manual_seed(1))
    return model.to(device).eval(), layer, x.to(device), target.to(device)


def measure(interpreter: str | None, model_spec: str, size: int, batch: int, device: str, repeats: int
            ) -> dict[str, object]:
    """Peak memory and wall time of one step (a training step when ``interpreter`` is None)."""
    from robustbench_interp.interpreters import get_interpreter

    dev = torch.device(device)
    if dev.type == "cpu" and os.environ.get("MALLOC_MMAP_THRESHOLD_") != MMAP_ENV["MALLOC_MMAP_THRESHOLD_"]:
        raise SystemExit("a CPU peak needs MALLOC_MMAP_THRESHOLD_=131072 in the environment (see the module doc)")
    torch.manual_seed(0)
    model0, layer0, x, target = build(model_spec, size, batch, dev)
    if interpreter is None:
        model, _ = trainable_copy(model0, layer0)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)

        def step() -> None:
            training_step(model, optimizer, x, target)
    else:
        run = manipulation_run(model0, layer0, get_interpreter(interpreter), x, target)

        def step() -> None:
            run.advance(run.step + 1)

    step()  # warm-up: Adam's state, lazy initialisations, the LRP trace
    peaks, seconds = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        peaks.append(cpu_peak_mib(step) if dev.type == "cpu" else cuda_peak_mib(step, dev))
        seconds.append(time.perf_counter() - start)
    return {"step": "training" if interpreter is None else "manipulation", "interpreter": interpreter,
            "model": model_spec, "size": size, "batch": batch, "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "peak_mib": statistics.median(peaks), "peaks_mib": peaks, "seconds": statistics.median(seconds)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interpreter", help="the manipulation step's interpreter (default: a training step)")
    parser.add_argument("--model", default="bench", help="'bench' (ResNet-18) or TRACK:ARCH, e.g. imagenet:resnet50")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: measure at least once, e.g. --repeats 3")
    print(json.dumps(measure(args.interpreter, args.model, args.size, args.batch, args.device, args.repeats)))


if __name__ == "__main__":
    main()
