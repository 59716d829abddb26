"""What a cell of the tiny grid costs on this machine, with the attacker and with the preset alone,
and what the committed grid costs from that (README, "Speed": the grid's cost).

    python docs/grid_cost.py [--models vgg,resnet,densenet] [--attack topk] [--budget 2000]

Per model, one cell (seed 0, through Grad-CAM, its six scorers, with its control: the lambda = 0
fine-tuning, which the grid shares between the attacks of one model) is computed from scratch in
a temporary store twice: searched at ``--budget`` and with the preset alone (``--budget 0``). The base models come from the cache
(training them is not counted). The wall times are printed as one Markdown table. Run it on an
otherwise idle machine: the times are what they are, not ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from robustbench_interp.grid import RUN_SCORERS, main_grid
from robustbench_interp.resources import Resources
from robustbench_interp.runner import Runner
from robustbench_interp.store import Store


def cell_seconds(model: str, attack: str, budget: int, resources: Resources) -> float:
    """Wall seconds of the adaptive cell with its control and scores, computed in a fresh store."""
    grid = main_grid("tiny", [model], [attack], budget=budget, seeds=[0])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        records = Runner(Store(tmp), resources).run_grid(list(grid.cells), score_with=grid.scorers)
        seconds = time.perf_counter() - start
    failed = [r.label for r in records if r.status != "ok"]
    if failed:
        raise SystemExit(f"cells failed: {failed}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="vgg,resnet,densenet")
    parser.add_argument("--attack", default="topk")
    parser.add_argument("--budget", type=int, default=2000)
    args = parser.parse_args()
    resources = Resources()
    print(f"| model | attack | scorers | preset cell (s) | searched cell, budget {args.budget} (s) | ratio |")
    print("|---|---|---|---|---|---|")
    for model in args.models.split(","):
        resources.base("tiny", model)  # loaded (or trained) before the clock starts
        preset = cell_seconds(model, args.attack, 0, resources)
        searched = cell_seconds(model, args.attack, args.budget, resources)
        print(f"| {model} | {args.attack} | {len(RUN_SCORERS)} | {preset:.0f} | {searched:.0f} "
              f"| {searched / preset:.1f} |", flush=True)


if __name__ == "__main__":
    main()
