"""Run the attacker's search on chosen tiny-track cells at chosen budgets; print what it found and
draw the FSR-versus-budget figure.

The table and figure of the README's "What the budget changes" come from it:

    python docs/attacker_study.py --store /tmp/attacker_study --budgets 2000 \\
        vgg:location:gradcam resnet:location:simplegrad resnet:center_mass:simplegrad \\
        resnet:location:lrp resnet:center_mass:lrp \\
        resnet:location:gradient_x_input resnet:center_mass:gradient_x_input \\
        resnet:location:lrp_t resnet:center_mass:lrp_t
    python docs/attacker_study.py --store /tmp/attacker_study --budgets 8000 \\
        vgg:location:gradcam resnet:location:simplegrad --figure docs/attacker_budget.png

Each argument is ``model:attack:interpreter``; each cell is searched at every budget (seed 0 by
default), scored by its own interpreter, with its control. The store keeps what was computed: a
second call with the same cells recomputes nothing and adds the cells it lacks. The table lists the
searches of the named cells and seeds in the store (every search of those seeds when no cell is
named); the figure covers every search in the store.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

from robustbench_interp.grid import build_grid
from robustbench_interp.leaderboard import search_frames
from robustbench_interp.resources import Resources
from robustbench_interp.runner import Runner
from robustbench_interp.store import Store


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def _losses(metrics: dict[str, Any], key: str) -> list[float]:
    """The test losses of a score (of both classes for a two-class attack)."""
    if key in metrics:
        return list(metrics[key])
    return [v for group in ("c1", "c2") for v in (metrics.get(group) or {}).get(key, [])]


def table(store: Store, cells: set[tuple[str, str, str]] | None = None, seeds: set[int] | None = None) -> str:
    """One Markdown row per searched cell of ``store`` (of ``cells``, model / attack / interpreter,
    and ``seeds`` where given)."""
    rows = []
    for record in store.records(track="tiny"):
        metrics, config = record.metrics, record.config
        if "search" not in metrics:
            continue
        if cells and (config["model"], config["attack"], config["interpreter"]) not in cells:
            continue
        if seeds and config["seed"] not in seeds:
            continue
        score = store.get_score(record.cell_id, config["interpreter"])
        control = store.get_score(record.control_cell, config["interpreter"]) if record.control_cell else None
        scored = score.metrics if score is not None else {}
        chosen, loose = metrics["chosen"], metrics["search"].get("loose") or {}
        rows.append((
            f"{config['model']} / {config['attack']} / {config['interpreter']}", config["search"]["budget"],
            f"{chosen['lr']:g} / {chosen['lam']:g} / {chosen['surrogate']}" + (" (preset)" if chosen["preset"] else ""),
            f"{metrics['adaptive']['fsr']:.1f}", f"{control.metrics['fsr']:.1f}" if control is not None else "-",
            f"{_mean(_losses(scored, 'baseline_test_losses')):.3f} -> {_mean(_losses(scored, 'test_losses')):.3f}",
            f"{metrics['top1_drop']:.1f}",
            f"{loose['test_fsr']:.1f} at {loose['top1_drop']:.1f}" if "test_fsr" in loose else "-",
            f"{metrics['search']['preset_report'].get('test_fsr', math.nan):.1f}", f"{metrics['wall_seconds']:.0f}",
        ))
    head = ("| model / attack / interpreter | budget | chosen lr / lambda / surrogate | test FSR | control FSR "
            "| test loss: base -> manipulated | top-1 drop | within 5 points: test FSR at fooling-split drop "
            "| preset configuration's FSR | s |")
    lines = [head, "|" + "---|" * 10]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in sorted(rows)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cells", nargs="*", help="model:attack:interpreter")
    parser.add_argument("--store", required=True, help="the study's store (kept: a rerun recomputes nothing)")
    parser.add_argument("--budgets", default="2000", help="comma-separated search budgets (optimizer steps)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--figure", help="draw the FSR-versus-budget figure of every search in the store here")
    args = parser.parse_args()
    store = Store(args.store)
    runner = Runner(store, Resources())
    seeds = [int(s) for s in args.seeds.split(",")]
    for spec in args.cells:
        model, attack, interpreter = spec.split(":")
        for budget in (int(b) for b in args.budgets.split(",")):
            for cell in build_grid("tiny", [model], [attack], [interpreter], seeds=seeds, budget=budget):
                start = time.perf_counter()
                record = runner.run_grid([cell], score_with=[interpreter])[0]
                print(f"{cell.label} seed {cell.seed} budget {budget}: {record.status} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    named = {tuple(spec.split(":")) for spec in args.cells}
    print(table(store, named or None, set(seeds)))
    if args.figure:
        from robustbench_interp.figures import draw_budget

        draw_budget(search_frames(store, "tiny")[1], args.figure)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
