"""The regression check: recompute a few cells and compare them with the committed leaderboard.

``rbi check`` (and ``.ci/run``) recomputes a small subset of the track's cells (the check grid of
:mod:`robustbench_interp.grid`) from scratch, in a fresh store, and compares each recomputed number
with the committed record of the same cell (the same id: the same config) in
``leaderboard/<track>/records/``:

- every FSR (adaptive, and transfer for the scored interpreters asked for) within
  :data:`DEFAULT_TOLERANCES` ``["fsr"]`` percentage points;
- the manipulated model's top-1 accuracy and the base model's top-1 within ``["top1"]`` points.

On the machine that produced the leaderboard the same seed gives the same numbers (the training and
the manipulation are deterministic), so any difference there is a change of behaviour. On another
CPU, float rounding may move a few images across a success boundary and shift the fine-tuning a
little; the tolerances leave room for that and for nothing larger. 10 FSR points is more than the
half-width of the Wilson 95 % interval of any FSR on the 256 images a cell scores (at most 6.1
points, at 50 %), so a move beyond it is unlikely to be sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_interp.config import CellConfig
from robustbench_interp.errors import MissingResourceError
from robustbench_interp.grid import CHECK_CELLS, CHECK_SCORERS, parse_cell
from robustbench_interp.records import CellRecord, ScoreRecord
from robustbench_interp.store import Store

#: Percentage points a recomputed number may move before the check fails.
DEFAULT_TOLERANCES: dict[str, float] = {"fsr": 10.0, "top1": 2.0}
#: The cells ``rbi check`` recomputes by default and the interpreters scored on them (the check grid).
DEFAULT_CELLS = CHECK_CELLS
DEFAULT_SCORERS = CHECK_SCORERS


@dataclass(frozen=True)
class CellSpec:
    """One cell to recompute: base model, attack and attacking interpreter."""

    model: str
    attack: str
    interpreter: str

    @classmethod
    def parse(cls, text: str) -> CellSpec:
        return cls(*parse_cell(text))


def committed_records(leaderboard_dir: str | Path, track: str) -> Store:
    """The store of records behind the committed leaderboard of ``track``; a missing one says how to
    make one."""
    from robustbench_interp.leaderboard import records_store

    store = records_store(Path(leaderboard_dir) / track)
    if not any(True for _ in store.records(track=track, status="ok")):
        raise MissingResourceError(
            f"no committed leaderboard records at {store.root}; generate them with `rbi run --track {track}` "
            "(it writes the records beside the tables) before checking against them"
        )
    return store


def _line(cell: str, quantity: str, committed: Any, recomputed: Any, tolerance: float) -> dict[str, Any]:
    missing = committed is None or recomputed is None or any(
        isinstance(v, float) and math.isnan(v) for v in (committed, recomputed)
    )
    delta = None if missing else float(recomputed) - float(committed)
    status = "missing" if missing else ("ok" if abs(delta) <= tolerance else "MOVED")  # type: ignore[arg-type]
    return {"cell": cell, "quantity": quantity, "committed": committed, "recomputed": recomputed,
            "delta": delta, "tolerance": tolerance, "status": status}


def compare_cell(
    committed: Store,
    cfg: CellConfig,
    record: CellRecord,
    scores: dict[str, ScoreRecord | None],
    tolerances: dict[str, float],
) -> list[dict[str, Any]]:
    """Report lines comparing one recomputed cell (its record and scores) with the committed rows."""
    label = f"{cfg.model}/{cfg.attack}/{cfg.interpreter}"
    if not record.ok:
        return [_line(label, f"cell ({record.reason or 'failed'})", None, None, 0.0)]
    metrics = record.metrics
    cell = committed.get(cfg.cell_id)
    old = cell.metrics if cell is not None and cell.ok else {}
    lines = [
        _line(label, "top1 before", (old.get("accuracy_before") or {}).get("top1"),
              metrics["accuracy_before"]["top1"], tolerances["top1"]),
        _line(label, "top1 after", (old.get("accuracy_after") or {}).get("top1"),
              metrics["accuracy_after"]["top1"], tolerances["top1"]),
    ]
    for scored, score in scores.items():
        row = committed.get_score(cfg.cell_id, scored)
        kind = "adaptive" if scored == cfg.interpreter else "transfer"
        value = None if score is None or not score.ok else score.metrics["fsr"]
        lines.append(_line(label, f"FSR {scored} ({kind})", row.metrics.get("fsr") if row and row.ok else None,
                           value, tolerances["fsr"]))
    return lines


def check_cells(
    bench: Any,
    cells: Sequence[CellConfig],
    committed: Store,
    *,
    scorers: Sequence[str] = DEFAULT_SCORERS,
    tolerances: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Recompute ``cells`` with ``bench`` (a :class:`~robustbench_interp.runner.Runner` on a fresh
    store), score the attacking interpreter and ``scorers`` on each, and return the report: one line
    per compared number with its status ("ok", "MOVED", or "missing" when either side has none)."""
    tolerances = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    lines: list[dict[str, Any]] = []
    for cfg in cells:
        record = bench.run_cell(cfg)
        names = list(dict.fromkeys([cfg.interpreter, *scorers]))
        scores = {name: bench.score_cell(cfg, name) for name in names}
        lines.extend(compare_cell(committed, cfg, record, scores, tolerances))
    return pd.DataFrame(lines)


def passed(report: pd.DataFrame) -> bool:
    """True when every compared number is within its tolerance (and none is missing)."""
    return bool(len(report)) and bool((report["status"] == "ok").all())


__all__ = [
    "DEFAULT_CELLS",
    "DEFAULT_SCORERS",
    "DEFAULT_TOLERANCES",
    "CellSpec",
    "check_cells",
    "committed_records",
    "compare_cell",
    "passed",
]
