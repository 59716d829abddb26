"""The regression check: recompute a few cells and compare them with the committed leaderboard.

``rbi check`` (and ``.ci/run``) recomputes a small subset of the track's cells (the check grid of
:mod:`robustbench_interp.grid`, seed 0) from scratch, in a fresh store, and compares each recomputed
number with the committed record of the same cell (the same id: the same config) in
``leaderboard/<track>/records/``:

- the base model's top-1 and every baseline FSR must match exactly (up to float noise,
  :data:`EXACT`): the base weights are published with checksums, so they are the same everywhere;
- the manipulated model's top-1 and every FSR (adaptive, and transfer for the scored interpreters
  asked for) must stay within a tolerance derived from the committed seeds (SPEC section 8: "a
  regression check's tolerances come from the measured spread"):

      tolerance = max(SPREAD_FACTOR * std, FLOORS[quantity])

  where std is the sample standard deviation of that number over the committed seeds of the same
  cell (same config but the seed). A recomputation of the same seed on a machine of the same kind
  reproduces the committed numbers exactly: from fresh clones, with torch 2.14.1 and 2.15.0, all
  138 scores of seed 0 of the main job and the check's 12 numbers were equal. The seed spread is
  therefore an upper bound of what float rounding on another machine can do (at worst it turns the
  fine-tuning into another draw), not its size; :data:`SPREAD_FACTOR` = 1 allows one standard
  deviation of it, and the floors (:data:`FLOORS`: 5 FSR points, 1 top-1 point) keep a cell whose
  seeds happened to agree from failing on one image's rounding. Four standard deviations (20.8 FSR
  points on Location through Grad-CAM on the ResNet) let a penalty cut to a tenth pass (-11.3
  points); one (5.2) catches it. With fewer than two
  committed seeds there is no spread: :data:`DEFAULT_TOLERANCES` apply (10 FSR points: more than the
  half-width of the Wilson 95 % interval of any FSR on 256 images; 2 top-1 points). ``--fsr-tolerance``
  and ``--top1-tolerance`` override the derived values. Every report line says which tolerance it
  used and where it came from.
"""

from __future__ import annotations

import json
import math
import statistics
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

#: Percentage points a recomputed number may move when the committed cell has fewer than two seeds.
DEFAULT_TOLERANCES: dict[str, float] = {"fsr": 10.0, "top1": 2.0}
#: The multiple of the committed seeds' standard deviation a recomputed number may move.
SPREAD_FACTOR = 1.0
#: The smallest derived tolerance of each quantity (percentage points).
FLOORS: dict[str, float] = {"fsr": 5.0, "top1": 1.0}
#: The tolerance of the numbers of the published base model (its top-1, the baseline FSRs): float noise.
EXACT = 1e-6
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


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def tolerance(kind: str, seeds: Sequence[Any], given: float | None = None) -> tuple[float, str]:
    """``(tolerance, where it came from)`` of a ``kind`` ("fsr" or "top1") number whose committed
    values over the seeds of its cell are ``seeds``; ``given`` overrides the derived value."""
    if given is not None:
        return float(given), f"given (--{kind}-tolerance)"
    values = _finite(seeds)
    if len(values) < 2:
        return DEFAULT_TOLERANCES[kind], f"default: {len(values)} committed seed, no spread"
    std = statistics.stdev(values)
    derived = SPREAD_FACTOR * std
    if derived >= FLOORS[kind]:
        return derived, f"{SPREAD_FACTOR:g} x std {std:.2f} over {len(values)} seeds"
    return FLOORS[kind], f"floor ({SPREAD_FACTOR:g} x std {std:.2f} over {len(values)} seeds is below it)"


def _line(cell: str, seed: int, quantity: str, committed: Any, recomputed: Any, tol: tuple[float, str]
          ) -> dict[str, Any]:
    missing = committed is None or recomputed is None or any(
        isinstance(v, float) and math.isnan(v) for v in (committed, recomputed)
    )
    delta = None if missing else float(recomputed) - float(committed)
    status = "missing" if missing else ("ok" if abs(delta) <= tol[0] else "MOVED")  # type: ignore[arg-type]
    return {"cell": cell, "seed": seed, "quantity": quantity, "committed": committed, "recomputed": recomputed,
            "delta": delta, "tolerance": tol[0], "tolerance_from": tol[1], "status": status}


def _same_but_seed(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True)


def committed_seeds(committed: Store, cfg: CellConfig) -> list[CellRecord]:
    """The committed ok records of ``cfg``'s cell for every seed (the same config but the seed)."""
    want = _same_but_seed(cfg.to_dict())
    return [r for r in committed.records(track=cfg.track, model=cfg.model, attack=cfg.attack,
                                         interpreter=cfg.interpreter, status="ok")
            if _same_but_seed(r.config) == want]


def _top1(record: CellRecord | None, key: str) -> Any:
    return ((record.metrics.get(key) or {}) if record is not None and record.ok else {}).get("top1")


def _score(committed: Store, cell_id: str, scored: str, key: str) -> Any:
    row = committed.get_score(cell_id, scored)
    return row.metrics.get(key) if row is not None and row.ok else None


def compare_cell(
    committed: Store,
    cfg: CellConfig,
    record: CellRecord,
    scores: dict[str, ScoreRecord | None],
    tolerances: dict[str, float | None] | None = None,
) -> list[dict[str, Any]]:
    """Report lines comparing one recomputed cell (its record and scores) with the committed rows;
    ``tolerances`` ("fsr", "top1") override the ones derived from the committed seeds."""
    given = {"fsr": None, "top1": None, **(tolerances or {})}
    label = f"{cfg.model}/{cfg.attack}/{cfg.interpreter}"
    exact = (EXACT, "exact (published base weights)")
    if not record.ok:
        return [_line(label, cfg.seed, f"cell ({record.reason or 'failed'})", None, None, (0.0, "-"))]
    metrics = record.metrics
    old = committed.get(cfg.cell_id)
    seeds = committed_seeds(committed, cfg)
    lines = [
        _line(label, cfg.seed, "top1 before", _top1(old, "accuracy_before"), metrics["accuracy_before"]["top1"],
              exact),
        _line(label, cfg.seed, "top1 after", _top1(old, "accuracy_after"), metrics["accuracy_after"]["top1"],
              tolerance("top1", [_top1(r, "accuracy_after") for r in seeds], given["top1"])),
    ]
    for scored, score in scores.items():
        kind = "adaptive" if scored == cfg.interpreter else "transfer"
        new = score.metrics if score is not None and score.ok else {}
        spread = [_score(committed, r.cell_id, scored, "fsr") for r in seeds]
        lines.append(_line(label, cfg.seed, f"FSR {scored} ({kind})", _score(committed, cfg.cell_id, scored, "fsr"),
                           new.get("fsr"), tolerance("fsr", spread, given["fsr"])))
        lines.append(_line(label, cfg.seed, f"baseline FSR {scored}",
                           _score(committed, cfg.cell_id, scored, "baseline_fsr"), new.get("baseline_fsr"), exact))
    return lines


def compare_control(
    committed: Store,
    cfg: CellConfig,
    record: CellRecord,
    scores: dict[str, ScoreRecord | None],
    tolerances: dict[str, float | None] | None = None,
) -> list[dict[str, Any]]:
    """Report lines comparing the recomputed control of attacked cell ``cfg`` (its ``record`` and
    ``scores``) with the committed cell's own control (``control_cell`` of its record: for a searched
    cell the control of the configuration its search chose, whichever the recomputation chose). The
    tolerances come from the spread of the controls of the committed seeds, as for the cell."""
    given = {"fsr": None, "top1": None, **(tolerances or {})}
    label = f"{cfg.model}/{cfg.attack}/{cfg.interpreter}"
    if not record.ok:
        return [_line(label, cfg.seed, f"control ({record.reason or 'failed'})", None, None, (0.0, "-"))]
    old = committed.get(cfg.cell_id)
    old_control = old.control_cell if old is not None else None
    controls = [r.control_cell for r in committed_seeds(committed, cfg) if r.control_cell]
    lines = [_line(label, cfg.seed, "control top1 after",
                   _top1(committed.get(old_control), "accuracy_after") if old_control else None,
                   record.metrics["accuracy_after"]["top1"],
                   tolerance("top1", [_top1(committed.get(c), "accuracy_after") for c in controls], given["top1"]))]
    for scored, score in scores.items():
        new = score.metrics if score is not None and score.ok else {}
        lines.append(_line(label, cfg.seed, f"control FSR {scored}",
                           _score(committed, old_control, scored, "fsr") if old_control else None, new.get("fsr"),
                           tolerance("fsr", [_score(committed, c, scored, "fsr") for c in controls], given["fsr"])))
    return lines


def check_cells(
    bench: Any,
    cells: Sequence[CellConfig],
    committed: Store,
    *,
    scorers: Sequence[str] = DEFAULT_SCORERS,
    tolerances: dict[str, float | None] | None = None,
) -> pd.DataFrame:
    """Recompute ``cells`` with ``bench`` (a :class:`~robustbench_interp.runner.Runner` on a fresh
    store), score the attacking interpreter and ``scorers`` on each, recompute its control (lambda =
    0, the same schedule and seed) and score it the same way, and return the report: one line per
    compared number with its tolerance, where the tolerance came from, and its status ("ok",
    "MOVED", or "missing" when either side has none). ``tolerances`` ("fsr", "top1"; None: derived)
    override the tolerances derived from the committed seeds. The control is checked because the
    leaderboard's fooling subtracts its FSR: a control that moved would move every fooling."""
    lines: list[dict[str, Any]] = []
    for cfg in cells:
        record = bench.run_cell(cfg)
        names = list(dict.fromkeys([cfg.interpreter, *scorers]))
        scores = {name: bench.score_cell(cfg, name) for name in names}
        lines.extend(compare_cell(committed, cfg, record, scores, tolerances))
        control = bench.control_of(cfg) if record.ok else None
        if control is not None:
            control_record = bench.run_cell(control)
            control_scores = {name: bench.score_cell(control, name) for name in names} if control_record.ok else {}
            lines.extend(compare_control(committed, cfg, control_record, control_scores, tolerances))
    return pd.DataFrame(lines)


def passed(report: pd.DataFrame) -> bool:
    """True when every compared number is within its tolerance (and none is missing)."""
    return bool(len(report)) and bool((report["status"] == "ok").all())


__all__ = [
    "DEFAULT_CELLS",
    "DEFAULT_SCORERS",
    "DEFAULT_TOLERANCES",
    "EXACT",
    "FLOORS",
    "SPREAD_FACTOR",
    "CellSpec",
    "check_cells",
    "committed_records",
    "committed_seeds",
    "compare_cell",
    "compare_control",
    "passed",
    "tolerance",
]
