"""Whether torch's CPU thread count changes a manipulation's numbers, and what it does to its speed.

    python docs/thread_rounding.py 1; python docs/thread_rounding.py 2

Each run fine-tunes the tiny ResNet for 50 steps of Location through Grad-CAM (its preset, seed 0)
on the given number of threads, and prints the milliseconds per step of the last 45 and a hash of
the weights: equal hashes mean bit-identical weights. (README, "The regression check".)
"""

from __future__ import annotations

import hashlib
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)

from robustbench_interp.attacks.finetune import ManipulationRun
from robustbench_interp.attacks.registry import get_attack
from robustbench_interp.grid import main_grid
from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.resources import Resources

cfg = next(c for c in main_grid("tiny", ["resnet"], ["location"], budget=0).cells if not c.is_control and c.seed == 0)
resources = Resources()
base = resources.base("tiny", "resnet")
run = ManipulationRun(base.model, base.target_layer, get_interpreter("gradcam"), get_attack("location"), cfg.params,
                      resources.data("tiny").train, None, seed=0)
run.advance(5)
start = time.perf_counter()
run.advance(50)
ms = (time.perf_counter() - start) / 45 * 1e3
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in run.model.parameters())).hexdigest()[:16]
print(f"threads {torch.get_num_threads()}: {ms:.1f} ms per step, weights {digest}")
