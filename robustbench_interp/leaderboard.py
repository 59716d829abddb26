"""Store -> leaderboard tables (SPEC section 7). Rendering only: every number comes from the store.

For each track, under ``leaderboard/<track>/``:

- ``fsr.{md,csv}``: rows attack x attacking interpreter, columns model x scored interpreter; each
  cell is the FSR with the baseline FSR beside it (the paper's Tables 1 and 2);
- ``accuracy.{md,csv}``: rows attack x attacking interpreter (the base models first), columns model
  x top-1 / top-5 (the paper's Table 3);
- ``transfer.{md,csv}``: attacking interpreter x scored interpreter, FSR averaged over attacks and
  models (the diagonal is adaptive);
- ``scores.csv``: the same numbers in long form, one row per (model, attack, attacking
  interpreter, scored interpreter), with the cell's accuracy and hyper-parameters;
- ``ranking.{md,csv}``: interpreters by mean adaptive FSR (lower is more robust), with the mean
  baseline FSR, the mean top-1 drop the attacker paid, and the mean transfer FSR; an interpreter
  with no adaptive cell in the store (non-differentiable, or not among the grid's attacking
  interpreters) is ranked after them by its transfer FSR and marked "transfer only".

A manipulation that costs more than :data:`MAX_TOP1_DROP` points of top-1 did not keep the model
(the paper's manipulations cost 0.7-1.9 points): its FSRs are shown, marked with a dagger, but they
count neither in the transfer matrix nor in the ranking, which says how many such cells each
interpreter had.

The source of a leaderboard is a store of records, ``leaderboard/<track>/records/`` (the JSON records
of its cells and scores, without the manipulated weights): :func:`write_leaderboard` is a function of
that store alone, and the tables are never read back. A run adds its cells with :func:`publish`,
which copies each ok cell record and its score records there and removes the record that held the
same place in the grid before (same model, attack, attacking interpreter, its parameters, seed and
classes: an earlier preset or schema), so a run that holds some cells adds to the board rather than
replacing it, and nothing stale stays. Only records of the current
:data:`~robustbench_interp.config.BENCHMARK_VERSION` are shown.

CSV files hold numbers; Markdown files format them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from robustbench_interp.attacks import attack_order
from robustbench_interp.config import BENCHMARK_VERSION
from robustbench_interp.records import CellRecord, ScoreRecord, without_lists
from robustbench_interp.store import Store, atomic_write_text

#: Top-1 points a manipulation may cost and still count as fooling a working model.
MAX_TOP1_DROP = 5.0
DAGGER = "\u2020"


def _attack_key(series: pd.Series) -> pd.Series:
    order = {a: i for i, a in enumerate(attack_order(series.unique()))}
    return series.map(order)


def scores_frame(store: Store, track: str) -> pd.DataFrame:
    """One row per ok score: track, model, attack, attacking and scored interpreter, FSR numbers."""
    df = store.scores_dataframe()
    if df.empty:
        return df
    df = df[(df["status"] == "ok") & (df.get("track") == track) & (df.get("version") == BENCHMARK_VERSION)].copy()
    if df.empty:
        return df
    df["adaptive"] = df["attacking_interpreter"] == df["scored_interpreter"]
    return df


def with_accuracy(scores: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """``scores`` with the cell's ``top1_drop`` and ``kept`` (the drop is at most :data:`MAX_TOP1_DROP`,
    or unknown)."""
    df = scores.copy()
    if df.empty:
        return df
    if "top1_drop" not in df:
        drops = cells.set_index("cell_id")["top1_drop"] if "top1_drop" in cells else pd.Series(dtype=float)
        df["top1_drop"] = df["cell_id"].map(drops)
    df["kept"] = ~(df["top1_drop"] > MAX_TOP1_DROP)
    return df


def cells_frame(store: Store, track: str) -> pd.DataFrame:
    """One row per ok cell record of ``track``."""
    df = store.to_dataframe(track=track, version=BENCHMARK_VERSION)
    if df.empty:
        return df
    return df[df["status"] == "ok"].copy()


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def fsr_table(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numbers, formatted) FSR tables: index (attack, attacking interpreter), columns (model, scored)."""
    if scores.empty:
        return pd.DataFrame(), pd.DataFrame()
    keys = ["attack", "attacking_interpreter", "model", "scored_interpreter"]
    scores = scores.assign(kept=scores["kept"].astype(float)) if "kept" in scores else scores.assign(kept=1.0)
    agg = scores.groupby(keys, sort=False)[["fsr", "baseline_fsr", "kept"]].mean().reset_index()
    agg = agg.sort_values(keys, key=lambda s: _attack_key(s) if s.name == "attack" else s)
    numbers = agg.pivot_table(
        index=["attack", "attacking_interpreter"], columns=["model", "scored_interpreter"],
        values=["fsr", "baseline_fsr"], sort=False,
    )
    fsr = numbers["fsr"]
    base = numbers["baseline_fsr"]
    kept = agg.pivot_table(index=["attack", "attacking_interpreter"], columns=["model", "scored_interpreter"],
                           values="kept", sort=False).reindex(index=fsr.index, columns=fsr.columns)
    text = fsr.copy().astype(object)
    for col in fsr.columns:
        text[col] = [f"{_fmt(a)} ({_fmt(b)}){'' if k == 1 else DAGGER}" if not pd.isna(a) else "-"
                     for a, b, k in zip(fsr[col], base[col], kept[col])]
    return numbers[["fsr", "baseline_fsr"]], text


def accuracy_table(cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numbers, formatted): rows ("baseline", "-") then (attack, interpreter); columns model x top1/top5."""
    if cells.empty:
        return pd.DataFrame(), pd.DataFrame()
    rows = []
    for model, group in cells.groupby("model", sort=True):
        first = group.iloc[0]
        rows.append({"attack": "baseline", "interpreter": "-", "model": model,
                     "top1": first.get("accuracy_before.top1"), "top5": first.get("accuracy_before.top5")})
    for _, row in cells.iterrows():
        rows.append({"attack": row["attack"], "interpreter": row["interpreter"], "model": row["model"],
                     "top1": row.get("accuracy_after.top1"), "top5": row.get("accuracy_after.top5")})
    df = pd.DataFrame(rows)
    attacks = attack_order(a for a in df["attack"].unique() if a != "baseline")
    order = {**{a: i for i, a in enumerate(attacks)}, "baseline": -1}
    df["_order"] = df["attack"].map(order)
    df = df.sort_values(["_order", "interpreter", "model"]).drop(columns="_order")
    numbers = df.pivot_table(index=["attack", "interpreter"], columns="model", values=["top1", "top5"], sort=False)
    numbers = numbers.swaplevel(0, 1, axis=1).sort_index(axis=1, level=0, sort_remaining=False)
    return numbers, numbers.map(_fmt)


def transfer_matrix(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numbers, formatted): mean FSR of scored (columns) on models manipulated through attacking (rows)."""
    if scores.empty:
        return pd.DataFrame(), pd.DataFrame()
    if "kept" in scores:
        scores = scores[scores["kept"]]
    m = scores.pivot_table(index="attacking_interpreter", columns="scored_interpreter", values="fsr", aggfunc="mean")
    return m, m.map(_fmt)


def _mode(kept_adaptive: int, broken_adaptive: int) -> str:
    if kept_adaptive:
        return "adaptive"
    # never attacked through itself, or every such attack broke the model
    return "adaptive attacks broke the model" if broken_adaptive else "transfer only"


def ranking(scores: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Interpreters by mean adaptive FSR (ascending: lower is more robust); numbers only."""
    if scores.empty:
        return pd.DataFrame()
    rows = []
    if "kept" not in scores:
        scores = scores.assign(kept=True)
    for name, group in scores.groupby("scored_interpreter"):
        broken = int((group["adaptive"] & ~group["kept"]).sum())
        adaptive = group[group["adaptive"] & group["kept"]]
        transfer = group[~group["adaptive"] & group["kept"]]
        drops = cells[cells["interpreter"] == name]["top1_drop"] if not cells.empty else pd.Series(dtype=float)
        rows.append({
            "interpreter": name,
            "adaptive_fsr": adaptive["fsr"].mean() if len(adaptive) else float("nan"),
            "adaptive_baseline_fsr": adaptive["baseline_fsr"].mean() if len(adaptive) else float("nan"),
            "adaptive_cells": len(adaptive),
            "adaptive_cells_over_drop": broken,
            "mean_top1_drop": drops.mean() if len(drops) else float("nan"),
            "transfer_fsr": transfer["fsr"].mean() if len(transfer) else float("nan"),
            "transfer_cells": len(transfer),
            "mode": _mode(len(adaptive), broken),
        })
    df = pd.DataFrame(rows)
    df["_key"] = df["adaptive_fsr"].fillna(df["transfer_fsr"])
    df = df.sort_values(["mode", "_key", "interpreter"]).drop(columns="_key").reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    return df


#: The columns of ``scores.csv`` (those a store lacks are left out).
SCORE_COLUMNS = [
    "model", "attack", "attacking_interpreter", "scored_interpreter", "adaptive", "fsr", "fsr_ci_low",
    "fsr_ci_high", "baseline_fsr", "n", "spearman", "topk_intersection", "accuracy_before.top1",
    "accuracy_after.top1", "accuracy_before.top5", "accuracy_after.top5", "top1_drop", "kept", "lr", "lam",
    "steps", "cell_id",
]
_CELL_COLUMNS = ["model", "attack", "accuracy_before.top1", "accuracy_after.top1", "accuracy_before.top5",
                 "accuracy_after.top5", "top1_drop"]


def scores_long(scores: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per score with its cell's accuracy and hyper-parameters, sorted (numbers only)."""
    if scores.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    df = scores.copy()
    if "fsr_ci" in df:  # the Wilson interval, stored as [low, high]
        for i, name in enumerate(("fsr_ci_low", "fsr_ci_high")):
            df[name] = df["fsr_ci"].map(lambda v, i=i: v[i] if isinstance(v, list) else float("nan"))
    for key in ("lr", "lam", "steps"):
        if f"params.{key}" in df:
            df[key] = df[f"params.{key}"]
    if not cells.empty:
        keep = ["cell_id", *(c for c in _CELL_COLUMNS[2:] if c in cells and c not in df)]
        df = df.merge(cells[keep], on="cell_id", how="left")
    df = df[[c for c in SCORE_COLUMNS if c in df]]
    keys = ["attack", "model", "attacking_interpreter", "scored_interpreter"]
    return df.sort_values(keys, key=lambda s: _attack_key(s) if s.name == "attack" else s).reset_index(drop=True)


def _markdown(title: str, frame: pd.DataFrame, note: str) -> str:
    if frame.empty:
        return f"# {title}\n\nNo results yet.\n"
    flat = frame.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [" / ".join(map(str, c)) for c in flat.columns]
    flat = flat.reset_index() if not isinstance(flat.index, pd.RangeIndex) else flat
    return f"# {title}\n\n{note}\n\n{tabulate(flat, headers='keys', tablefmt='github', showindex=False)}\n"


def write_leaderboard(store: Store, track: str, out_dir: str | Path) -> dict[str, Path]:
    """Write the track's tables (Markdown + CSV) under ``out_dir`` from ``store`` alone; returns the
    written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells, scores = cells_frame(store, track), scores_frame(store, track)
    scores = with_accuracy(scores, cells)
    fsr_n, fsr_t = fsr_table(scores)
    acc_n, acc_t = accuracy_table(cells)
    tr_n, tr_t = transfer_matrix(scores)
    rank = ranking(scores, cells)
    rank_t = rank.copy()
    for col in ("adaptive_fsr", "adaptive_baseline_fsr", "mean_top1_drop", "transfer_fsr"):
        if col in rank_t:
            rank_t[col] = rank_t[col].map(_fmt)
    tables = {
        "fsr": (fsr_n, fsr_t, f"FSR (%) on the {track} track, baseline FSR in parentheses; rows: attack and "
                "attacking interpreter, columns: model and scored interpreter. Lower is more robust. "
                f"{DAGGER}: the manipulation cost more than {MAX_TOP1_DROP:g} points of top-1, so the model was "
                "not kept; not counted in the transfer matrix or the ranking."),
        "accuracy": (acc_n, acc_t, "Top-1 / top-5 accuracy (%) of the base models and of each manipulated model."),
        "transfer": (tr_n, tr_t, "Mean FSR (%) of the scored interpreter (columns) on models manipulated through "
                     "the attacking interpreter (rows), over attacks and models; the diagonal is adaptive. "
                     f"Manipulations that cost more than {MAX_TOP1_DROP:g} points of top-1 are left out."),
        "ranking": (rank, rank_t, "Interpreters ranked by mean adaptive FSR (lower is more robust); those "
                    "with no adaptive cell in this grid follow, ranked by transfer FSR. Means leave out the "
                    f"manipulations that cost more than {MAX_TOP1_DROP:g} points of top-1 "
                    "(adaptive_cells_over_drop counts them); mean_top1_drop is over all of them."),
    }
    written: dict[str, Path] = {"scores.csv": out / "scores.csv"}
    atomic_write_text(written["scores.csv"], scores_long(scores, cells).to_csv(index=False))
    for name, (numbers, text, note) in tables.items():
        csv_path, md_path = out / f"{name}.csv", out / f"{name}.md"
        atomic_write_text(csv_path, numbers.to_csv())
        atomic_write_text(md_path, _markdown(f"{track}: {name}", text, note))
        written[f"{name}.csv"], written[f"{name}.md"] = csv_path, md_path
    return written


#: The folder of a leaderboard that holds its records (a store without weights).
RECORDS = "records"


def records_store(out_dir: str | Path) -> Store:
    """The store of records behind the leaderboard in ``out_dir`` (``<out_dir>/records``)."""
    return Store(Path(out_dir) / RECORDS)


def _slot(record: CellRecord) -> tuple[Any, ...]:
    """Where a cell sits in a grid, whatever its hyper-parameters and schema version."""
    c = record.config
    params = sorted((c.get("interpreter_params") or {}).items())
    return (c.get("track"), c.get("model"), c.get("attack"), c.get("interpreter"), repr(params), c.get("seed"),
            repr(c.get("classes")))


def _summary(record: ScoreRecord) -> ScoreRecord:
    """A score record without its per-image lists (the leaderboard's records keep the numbers)."""
    return ScoreRecord(**{**record.to_dict(), "metrics": without_lists(record.metrics)})


def _chosen(records: list[CellRecord], cell_ids: set[str] | None) -> dict[tuple[Any, ...], CellRecord]:
    """One record per grid place: among several (other hyper-parameters of the same place), those
    of ``cell_ids`` first, then the newest (then the larger id, so the choice never depends on order)."""
    chosen: dict[tuple[Any, ...], CellRecord] = {}
    for record in records:
        slot, held = _slot(record), chosen.get(_slot(record))
        key = (cell_ids is None or record.cell_id in cell_ids, record.created, record.cell_id)
        if held is None or key > (cell_ids is None or held.cell_id in cell_ids, held.created, held.cell_id):
            chosen[slot] = record
    return chosen


#: The evaluation sizes of records that do not say theirs (those imported from the first leaderboard):
#: 256 validation images scored, accuracy on all of them.
DEFAULT_SIZES = {"eval_size": 256, "accuracy_size": None}


def evaluation_sizes(record: CellRecord) -> tuple[Any, Any]:
    """``(eval_size, accuracy_size)`` a cell was computed with."""
    inputs = record.inputs or DEFAULT_SIZES
    return inputs.get("eval_size"), inputs.get("accuracy_size")


def check_sizes(board: Store, track: str, sizes: tuple[Any, Any]) -> None:
    """Refuse to add cells computed with other evaluation sizes than the board's: one table never mixes
    FSRs of 256 images with FSRs of 32."""
    from robustbench_interp.errors import ConfigError

    held = {evaluation_sizes(r) for r in board.records(track=track)} - {sizes}
    if held:
        (eval_size, accuracy_size), = sorted(held, key=repr)[:1]
        raise ConfigError(
            f"the leaderboard in {board.root.parent} holds cells scored on {eval_size} images (accuracy on "
            f"{accuracy_size or 'all'}); these use --eval-size {sizes[0]} (--accuracy-size {sizes[1] or 'all'}). "
            "Publish them into another --leaderboard-dir, or run with the leaderboard's sizes"
        )


def publish(source: Store, board: Store, track: str, cell_ids: set[str] | None = None) -> int:
    """Copy the ok cells of ``track`` of the current version in ``source`` (those in ``cell_ids``
    when given; one per grid place) and their ok scores into the leaderboard's records ``board``;
    every record of ``board`` in the same grid place with another id is removed with its scores.
    Returns the number of cells published."""
    records = [r for r in source.records(track=track, status="ok", version=BENCHMARK_VERSION)
               if cell_ids is None or r.cell_id in cell_ids]
    chosen = _chosen(records, cell_ids)
    for sizes in {evaluation_sizes(r) for r in chosen.values()}:
        check_sizes(board, track, sizes)
    for old in board.records(track=track):
        new = chosen.get(_slot(old))
        if new is not None and new.cell_id != old.cell_id:
            board.drop_scores(old.cell_id)
            board.cell_path(old.cell_id).unlink(missing_ok=True)
    for record in chosen.values():
        board.write(record)
        for score in source.scores(record.cell_id):
            if score.ok:
                board.write(_summary(score))
    return len(chosen)
