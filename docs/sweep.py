"""Sweep the hyper-parameters of tiny-track cells and print one Markdown table row per cell.

Each row is one cell of the runner (``Runner.run_cell``) with the given overrides, computed in a
temporary store, scored on 256 validation images (held-out composites for Active) with accuracy on
the 1000 validation images: the same numbers the leaderboard reports. The rows of docs/presets.md
come from it, e.g.

    python docs/sweep.py --models resnet,densenet,vgg --attacks location \\
        --grid "lr=1e-3,lam=10,steps=500,cooldown=0.4" "lr=3e-4,lam=10,steps=500,cooldown=0"

``--grid`` takes one or more ``key=value,...`` override sets (keys of ``AttackParams``).
"""

from __future__ import annotations

import argparse
import tempfile

from robustbench_interp.data import tiny
from robustbench_interp.grid import build_grid
from robustbench_interp.runner import Runner
from robustbench_interp.store import Store


def parse_overrides(text: str) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for item in text.split(","):
        key, value = item.split("=")
        out[key.strip()] = int(value) if key.strip() in ("steps", "batch_size", "epochs") else float(value)
    return out


def unfooled_classes(scores: dict) -> str:
    """Names of the classes with FSR 0 (passive attacks), or '-'."""
    by_class = scores.get("fsr_by_class") or {}
    names = [tiny.CLASSES[int(c)] for c, fsr in sorted(by_class.items(), key=lambda kv: int(kv[0])) if fsr == 0]
    return ", ".join(names) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet")
    parser.add_argument("--attacks", default="location")
    parser.add_argument("--interpreter", default="gradcam")
    parser.add_argument("--grid", nargs="+", required=True, metavar="KEY=VALUE,...")
    args = parser.parse_args()
    bench = Runner(Store(tempfile.mkdtemp(prefix="rbi-sweep-")), eval_size=256, aopc_size=0)
    print("| model | attack | interpreter | overrides | FSR % (baseline) | top-1 before -> after | classes at FSR 0 |")
    print("|---|---|---|---|---|---|---|")
    for text in args.grid:
        for cell in build_grid("tiny", args.models.split(","), args.attacks.split(","), [args.interpreter],
                               overrides=parse_overrides(text)):
            m = bench.run_cell(cell).metrics
            a = m["adaptive"]
            print(f"| {cell.model} | {cell.attack} | {cell.interpreter} | {text} | {a['fsr']:.1f} "
                  f"({a['baseline_fsr']:.1f}) | {m['accuracy_before']['top1']:.1f} -> "
                  f"{m['accuracy_after']['top1']:.1f} | {unfooled_classes(a)} |", flush=True)


if __name__ == "__main__":
    main()
