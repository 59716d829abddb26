"""Old against new, cell by cell: the hand-tuned preset's FSR and top-1 drop against the attacker's.

    python docs/attacker_vs_preset.py --store STORE --presets DIR

STORE holds searched cells (``rbi run --grid main --budget 2000 --store STORE``); ``--presets`` is a
store of preset cells of the same grid places: the records of the tiny leaderboard as it was
computed with the presets, before the attacker's cells replaced them (``git archive 4389c06
leaderboard/tiny/records | tar -x -C /tmp/presets`` restores them; the default, today's committed
records, holds none, and the script says so). One Markdown row per searched cell: the preset cell's test FSR
and drop, the attacker's, the configuration it chose, and whether the preset run inside the search
reproduced the preset cell's test FSR (it must: the same configuration, seed and steps), and the
two FSRs on the fooling split, where the search chose (the choice is never below the preset there
unless the preset lost more than 2 points of top-1 on it). The summary counts the cells where the
attacker is below the preset on the test split, split by whether the preset cell was kept (a
top-1 drop of at most 2 points): a preset that costs more accuracy is not a result the attacker
has to match; below a kept preset, the fooling-split column says whether the choice was at least
the preset where it was made (the test split then differs by sampling) or not (a defect).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from robustbench_interp.config import MAX_TOP1_DROP
from robustbench_interp.store import Store


def _place(config: dict[str, Any]) -> tuple[Any, ...]:
    return (config["model"], config["attack"], config["interpreter"], config["seed"])


def presets(store: Store) -> dict[tuple[Any, ...], Any]:
    """The preset (unsearched, attacked) cells of ``store`` by grid place."""
    out = {}
    for record in store.records(track="tiny"):
        config = record.config
        if record.status == "ok" and not config.get("search") and "adaptive" in record.metrics:
            out[_place(config)] = record
    return out


def _kept(drop: float | None) -> bool:
    """The leaderboard's rule: kept unless the drop exceeds the budget."""
    return not (drop is not None and drop > MAX_TOP1_DROP)


def _fooling_split(search: dict[str, Any]) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """(FSR, top-1 drop) on the fooling split of the search's final leader and of the preset at the
    same steps."""
    curve = search.get("curve") or []
    final = (curve[-1]["fsr"], curve[-1]["top1_drop"]) if curve else None
    preset = next((t for t in search.get("trials") or [] if t.get("preset")), {})
    last = (preset.get("measured") or [None])[-1]
    return final, ((last["fsr"], last["top1_drop"]) if last else None)


def _mark(drop: float | None) -> str:
    return "" if _kept(drop) else " (not kept)"


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def rows(searched: Store, old: dict[tuple[Any, ...], Any]) -> tuple[list[str], dict[str, int]]:
    """The Markdown rows and the summary counts, against the preset cells ``old`` (:func:`presets`)."""
    lines, counts = [], {"cells": 0, "no_preset": 0, "higher": 0, "equal": 0, "lower_kept": 0,
                         "lower_kept_but_chosen_higher": 0, "lower_preset_not_kept": 0, "not_reproduced": 0,
                         "chosen_below_preset_on_fooling_split": 0}
    found = []
    for record in searched.records(track="tiny"):
        if record.status == "ok" and "search" in record.metrics:
            found.append(record)
    for record in sorted(found, key=lambda r: (r.config["model"], r.config["attack"], r.config["interpreter"],
                                               r.config["seed"])):
        config, metrics = record.config, record.metrics
        counts["cells"] += 1
        preset = old.get(_place(config))
        new_fsr, new_drop = metrics["adaptive"]["fsr"], metrics.get("top1_drop")
        chosen = metrics["chosen"]
        choice = "preset" if chosen["preset"] else f"{chosen['lr']:g} / {chosen['lam']:g} / {chosen['surrogate']}"
        where = f"| {config['model']} | {config['attack']} | {config['interpreter']} | {config['seed']} |"
        fooling, preset_fooling = _fooling_split(metrics["search"])
        chosen_ok = (fooling is not None and preset_fooling is not None
                     and (fooling[0] >= preset_fooling[0] or not _kept(preset_fooling[1])))
        counts["chosen_below_preset_on_fooling_split"] += not chosen_ok
        split = f"{_f(preset_fooling and preset_fooling[0])} -> {_f(fooling and fooling[0])}"
        if preset is None:
            counts["no_preset"] += 1
            lines.append(f"{where} - | - | {_f(new_fsr)} | {_f(new_drop)}{_mark(new_drop)} | {choice} | {split} | "
                         "no preset cell |")
            continue
        old_fsr, old_drop = preset.metrics["adaptive"]["fsr"], preset.metrics.get("top1_drop")
        inside = (metrics["search"].get("preset_report") or {}).get("test_fsr")
        reproduced = inside is not None and abs(inside - old_fsr) < 1e-9
        counts["not_reproduced"] += not reproduced
        if new_fsr > old_fsr:
            counts["higher"] += 1
        elif new_fsr == old_fsr:
            counts["equal"] += 1
        elif _kept(old_drop):
            counts["lower_kept"] += 1
            counts["lower_kept_but_chosen_higher"] += chosen_ok
        else:
            counts["lower_preset_not_kept"] += 1
        lines.append(f"{where} {_f(old_fsr)} | {_f(old_drop)}{_mark(old_drop)} | {_f(new_fsr)} | "
                     f"{_f(new_drop)}{_mark(new_drop)} | {choice} | {split} | "
                     f"{'yes' if reproduced else f'no ({_f(inside)})'} |")
    return lines, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True, help="a store of searched cells")
    parser.add_argument("--presets", default="leaderboard/tiny/records", help="a store of the preset cells")
    args = parser.parse_args(argv)
    old = presets(Store(args.presets))
    if not old:
        print(f"--presets {args.presets}: holds no preset cell (the committed board is the attacker's since it was "
              "recomputed); restore the preset board's records from the history, e.g. git archive 4389c06 "
              "leaderboard/tiny/records | tar -x -C /tmp/presets, and pass --presets /tmp/presets/leaderboard/tiny/records",
              file=sys.stderr)
        return 2
    lines, counts = rows(Store(args.store), old)
    print("| model | attack | interpreter | seed | preset FSR | preset drop | attacker FSR | attacker drop | chosen lr / "
          "lambda / surrogate | fooling split FSR: preset -> chosen | preset reproduced in the search |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    print(f"\n{counts['cells']} searched cells: attacker above the preset in {counts['higher']}, equal in "
          f"{counts['equal']}, below a kept preset in {counts['lower_kept']} (of which "
          f"{counts['lower_kept_but_chosen_higher']} chosen at or above the preset on the fooling split), below a "
          f"preset that was not kept "
          f"(top-1 drop > {MAX_TOP1_DROP:g}) in {counts['lower_preset_not_kept']}; no preset cell for "
          f"{counts['no_preset']}; the preset inside the search differs from the preset cell in "
          f"{counts['not_reproduced']}; the choice is below a kept preset on the fooling split in "
          f"{counts['chosen_below_preset_on_fooling_split']}.")
    return 1 if counts["chosen_below_preset_on_fooling_split"] or counts["not_reproduced"] else 0


if __name__ == "__main__":
    sys.exit(main())
