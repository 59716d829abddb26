"""Store -> leaderboard tables (SPEC sections 7 and 8). Rendering only: every number comes from the store.

How every number is made (SPEC section 8, "honest scoring"):

- **Rows and seeds.** A *row* is one (model, attack, attacking interpreter, scored interpreter). Each
  adaptive cell is manipulated with several seeds; a row holds one score per seed (``scores.csv``
  keeps them, one line each) and the tables show their mean, their spread (sample std over the seeds,
  and min-max) and the number of seeds; the per-seed values are the ``fsr.seed<k>`` columns of
  ``detail.csv``.
- **Interval.** A row's interval runs from the lowest per-seed Wilson 95 % lower bound to the highest
  per-seed upper bound, so it covers both the sampling of the scored images and the spread over
  seeds. Active rows give it for c1 and c2 separately (their mean has none).
- **Control and fooling.** Each attacked cell names its control (``metrics["control_cell"]``: the same
  fine-tuning with lambda = 0 and the same seed); the *control FSR* of a score is the scored
  interpreter's FSR on that control. Per seed, *fooling* = FSR - max(baseline FSR, that seed's control
  FSR); a row's fooling is its mean over the seeds. Every aggregate (ranking, transfer matrix) uses
  fooling. A row with a seed that has no control score cannot say how much is fooling: it is marked
  (``*``) and left out of the aggregates.
- **Informative.** A row whose mean baseline FSR or mean control FSR is >= :data:`UNINFORMATIVE_FSR`
  (50 %) cannot show fooling (for Active: that of the mean, of c1 or of c2): it is marked (``‡``) and
  left out of every aggregate.
- **Kept.** A manipulation (one seed) whose top-1 drop against the base model exceeds
  :data:`MAX_TOP1_DROP` (2 points) did not keep the model; a row is kept when every one of its seeds
  is (a drop that was not recorded counts as kept). A row not kept is marked (``†``) and left out of
  the aggregates. The accuracy table shows each attack's control, whose top-1 change shows that
  fine-tuning alone keeps the base model's accuracy (a change beyond :data:`CONTROL_TOP1_CHANGE`,
  0.5 points, is marked ``°``: the base was not converged).
- **Degenerate.** An interpreter whose maps of a base model are constant over positions (the mean
  ``baseline_constant_rate`` of its scores on that model, every attack, seed and control included,
  is >= :data:`DEGENERATE_RATE` %) is *degenerate on* that model: its rows there are marked (``§``)
  and left out of the aggregates, so it is never ranked as robust there (``degenerate.{md,csv}``).
- **Not attackable.** An interpreter whose adaptive cells are all ``not_attackable`` (its penalty has
  no gradient with respect to the weights, or it declares itself non-differentiable) is listed
  "not attackable adaptively (gradient masked / non-differentiable)", after the adaptively ranked
  ones, by its transfer fooling: never as robust.
- **Budget parity.** Every attacking interpreter gets the same attack (SPEC section 8): the board's
  *budget* is the attacker's search budget (optimizer steps, SPEC section 9; 0 for a preset or a
  hand-set configuration) that most of its attacked cells ran with (the larger on a tie). A row
  whose attacked cells ran with another budget (say a submission computed with ``--budget 0``
  beside searched cells: a weaker attacker, which would rank its interpreter as more robust) is
  marked (``#``) and left out of the aggregates.
- **Equal coverage.** A *slot* is a (model, attack); an interpreter covers a slot when its adaptive
  row there is informative, kept, not degenerate and has its controls. Interpreters are taken in
  order of how many slots they cover (then by name); each joins the ranked group when the slots
  common to the group and itself still number at least :data:`MIN_COVERAGE` (half) of the largest
  coverage. The group is ranked by mean fooling over exactly those common slots (the number used
  and the raw mean FSR over the same slots are shown); the others are ranked apart, under "partial
  coverage", each on its own slots. With one attacking interpreter the group is that interpreter,
  over its own slots.

Files, under ``leaderboard/<track>/`` (CSV files hold numbers; Markdown files format them):

- ``fsr.{md,csv}``: rows attack x attacking interpreter, columns model x scored interpreter; in the
  Markdown, one table per model, each entry "mean FSR ± std (baseline, control)" with the markers;
- ``detail.{md,csv}``: one line per row with everything above (seeds, per-seed FSRs, std, min-max,
  interval, baseline, control, fooling, top-1 drop, empty- and constant-map rates of the original
  and the manipulated model, Active c1 and c2 with their intervals, the flags);
- ``scores.csv``: one line per score and seed (the controls' scores included) with its cell's
  accuracy, hyper-parameters and control;
- ``accuracy.{md,csv}``: rows attack x attacking interpreter (the base models first, then each attack's
  control), columns model x top-1 / top-5 (means over seeds) / largest top-1 drop;
- ``transfer.{md,csv}``: attacking interpreter x scored interpreter, mean fooling over the rows that
  count (the diagonal is adaptive), with their mean FSR and their number;
- ``degenerate.{md,csv}``: the base model's empty- and constant-map rates of every interpreter on
  every model;
- ``ranking.{md,csv}``: the ranking, by section;
- ``index.html``: all of it as one static page (:mod:`robustbench_interp.page`): the ranking, the FSR and
  accuracy tables sortable and filterable, the transfer matrix as a heatmap, and the figures found in
  the folder.

The source of a leaderboard is a store of records, ``leaderboard/<track>/records/`` (the JSON records
of its cells and scores, without the manipulated weights): :func:`write_leaderboard` is a function of
that store alone, and the tables are never read back. A run adds its cells with :func:`publish`,
which copies each ok (or not attackable) cell record, its control and their score records there and
removes the record that held the same place in the grid before (same model, attack, attacking
interpreter, its parameters, seed and classes; for a control, its fine-tuning parameters too: an
earlier preset or schema), so a run that holds some cells adds to the board rather than replacing
it, and nothing stale stays (a control that no cell names any more goes too). Only records of the
current :data:`~robustbench_interp.config.BENCHMARK_VERSION` are shown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from robustbench_interp.attacks import attack_order
from robustbench_interp.attacks.attacker import LOOSE_TOP1_DROP
from robustbench_interp.config import BENCHMARK_VERSION, CONTROL, MAX_TOP1_DROP
from robustbench_interp.records import (
    STATUS_NOT_ATTACKABLE,
    STATUS_OK,
    CellRecord,
    ScoreRecord,
    without_lists,
)
from robustbench_interp.store import Store, atomic_write_text

#: Top-1 points a manipulation may cost and still count as fooling a working model (SPEC section 8;
#: the paper's manipulations cost 0.7-1.9 points): :data:`robustbench_interp.config.MAX_TOP1_DROP`,
#: within which the attacker also chooses its configuration.
#: Top-1 points a control (lambda = 0) may move before the table says the base was not converged.
CONTROL_TOP1_CHANGE = 0.5
#: A baseline or control FSR (%) from which a row cannot show fooling.
UNINFORMATIVE_FSR = 50.0
#: Percent of a base model's maps that are constant from which an interpreter is degenerate there.
DEGENERATE_RATE = 50.0
#: The share of the largest slot coverage the ranked group must keep in common.
MIN_COVERAGE = 0.5

DAGGER = "\u2020"          # not kept: a seed's top-1 drop exceeds MAX_TOP1_DROP
UNINFORMATIVE = "\u2021"   # baseline or control FSR >= UNINFORMATIVE_FSR
DEGENERATE = "\u00a7"      # the scored interpreter is degenerate on this model
NO_CONTROL = "*"           # a seed without its control score
OTHER_BUDGET = "#"         # attacked with another search budget than the board's
CONTROL_MOVED = "\u00b0"   # a control moved top-1 by more than CONTROL_TOP1_CHANGE

#: Why an adaptive row is left out of the aggregates: the ranking's ``left_out_<reason>`` counts.
LEFT_OUT_REASONS = ("uninformative", "not_kept", "degenerate", "no_control", "other_budget")

#: The columns that identify a row; a row's seeds are aggregated.
KEYS = ["model", "attack", "attacking_interpreter", "scored_interpreter"]
#: The groups of a two-class attack (Active), each scored on its own.
GROUPS = ("c1", "c2")
_PREFIXES = ("", *(f"{g}." for g in GROUPS))

#: Ranking sections, in order.
RANKED = "equal coverage"
PARTIAL = "partial coverage"
NOT_ATTACKABLE = "not attackable adaptively (gradient masked / non-differentiable)"
LEFT_OUT = "every adaptive row left out"
TRANSFER_ONLY = "transfer only"
SECTIONS = (RANKED, PARTIAL, NOT_ATTACKABLE, LEFT_OUT, TRANSFER_ONLY)


# ------------------------------------------------------------------------------------ frames


def _attack_key(series: pd.Series) -> pd.Series:
    order = {a: i for i, a in enumerate(attack_order(series.unique()))}
    return series.map(order)


def _sort(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.sort_values(keys, key=lambda s: _attack_key(s) if s.name == "attack" else s).reset_index(drop=True)


def _num(df: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` as floats (NaN where missing or absent)."""
    if name not in df:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[name], errors="coerce").astype(float)


def scores_frame(store: Store, track: str) -> pd.DataFrame:
    """One row per ok score of ``track`` (the controls' included): model, attack, attacking and scored
    interpreter, seed, FSR numbers; ``adaptive`` and ``control`` say what kind of score it is."""
    df = store.scores_dataframe()
    if df.empty:
        return df
    df = df[(df["status"] == "ok") & (df.get("track") == track) & (df.get("version") == BENCHMARK_VERSION)].copy()
    if df.empty:
        return df
    df["control"] = df["attacking_interpreter"] == CONTROL
    df["adaptive"] = df["attacking_interpreter"] == df["scored_interpreter"]
    if "seed" not in df:
        df["seed"] = 0
    return df


def cells_frame(store: Store, track: str, statuses: Iterable[str] = (STATUS_OK,)) -> pd.DataFrame:
    """One row per cell record of ``track`` with one of ``statuses`` (default: ok)."""
    df = store.to_dataframe(track=track, version=BENCHMARK_VERSION)
    if df.empty:
        return df
    return df[df["status"].isin(list(statuses))].copy()


def with_accuracy(scores: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """``scores`` with the cell's ``top1_drop``, ``control_cell`` and ``kept`` (the seed's drop is at
    most :data:`MAX_TOP1_DROP`, or unknown)."""
    df = scores.copy()
    if df.empty:
        return df
    ok = cells[cells["status"] == STATUS_OK] if "status" in cells else cells
    by_id = ok.set_index("cell_id") if "cell_id" in ok else pd.DataFrame()
    if "control_cell" not in by_id and "metrics.control_cell" in by_id:  # records that kept it in metrics
        by_id = by_id.rename(columns={"metrics.control_cell": "control_cell"})
    for name in ("top1_drop", "control_cell"):
        if name not in df:
            df[name] = df["cell_id"].map(by_id[name]) if name in by_id else np.nan
    df["kept"] = ~(_num(df, "top1_drop") > MAX_TOP1_DROP)
    return df


def _split_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """``fsr_ci`` and ``baseline_fsr_ci`` (stored as [low, high], also of c1 and c2) as two columns each."""
    for prefix in _PREFIXES:
        for name in ("fsr_ci", "baseline_fsr_ci"):
            if f"{prefix}{name}" in df:
                for i, side in enumerate(("low", "high")):
                    df[f"{prefix}{name}_{side}"] = df[f"{prefix}{name}"].map(
                        lambda v, i=i: float(v[i]) if isinstance(v, (list, tuple)) and len(v) == 2 else np.nan)
    return df


def seed_rows(scores: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per score and seed, with its control FSR (the scored interpreter's FSR on the cell's
    control, for the mean and for c1 and c2) and its fooling, FSR - max(baseline, control); the
    controls' own scores are included (``control`` True, no control FSR)."""
    if scores.empty:
        return pd.DataFrame()
    df = _split_intervals(with_accuracy(scores, cells))
    controls = df[df["control"]].drop_duplicates(["cell_id", "scored_interpreter"]).set_index(
        ["cell_id", "scored_interpreter"])
    key = pd.MultiIndex.from_arrays([df["control_cell"], df["scored_interpreter"]])
    for prefix in _PREFIXES:
        if f"{prefix}fsr" not in df:
            continue
        found = controls[f"{prefix}fsr"].reindex(key).to_numpy(dtype=float) if len(controls) else np.nan
        df[f"{prefix}control_fsr"] = np.where(df["control"], np.nan, found)
        best = np.maximum(_num(df, f"{prefix}baseline_fsr"), _num(df, f"{prefix}control_fsr"))
        df[f"{prefix}fooling"] = _num(df, f"{prefix}fsr") - best
    return df


def degenerate_maps(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per (model, scored interpreter): the mean empty- and constant-map rates of the base model's
    maps over every score (attacks, seeds and controls), and whether it is degenerate there."""
    cols = ["model", "scored_interpreter", "baseline_empty_rate", "baseline_constant_rate", "scores", "degenerate"]
    if seeds.empty:
        return pd.DataFrame(columns=cols)
    df = seeds.assign(baseline_empty_rate=_num(seeds, "baseline_empty_rate"),
                      baseline_constant_rate=_num(seeds, "baseline_constant_rate"))
    out = df.groupby(["model", "scored_interpreter"]).agg(
        baseline_empty_rate=("baseline_empty_rate", "mean"), baseline_constant_rate=("baseline_constant_rate", "mean"),
        scores=("fsr", "size")).reset_index()
    out["degenerate"] = out["baseline_constant_rate"] >= DEGENERATE_RATE
    return out[cols]


def _group_numbers(g: pd.DataFrame, prefix: str) -> dict[str, Any]:
    """The numbers of one row's seeds for the mean (``prefix`` "") or one Active group ("c1.")."""
    fsr = _num(g, f"{prefix}fsr")
    if fsr.isna().all():
        return {}
    row = {
        f"{prefix}fsr": fsr.mean(),
        f"{prefix}fsr_std": fsr.std(ddof=1) if len(fsr) > 1 else np.nan,
        f"{prefix}fsr_min": fsr.min(),
        f"{prefix}fsr_max": fsr.max(),
        f"{prefix}fsr_ci_low": _num(g, f"{prefix}fsr_ci_low").min(),
        f"{prefix}fsr_ci_high": _num(g, f"{prefix}fsr_ci_high").max(),
        f"{prefix}baseline_fsr": _num(g, f"{prefix}baseline_fsr").mean(),
        f"{prefix}control_fsr": _num(g, f"{prefix}control_fsr").mean(),
        f"{prefix}fooling": _num(g, f"{prefix}fooling").mean(),
        f"{prefix}empty_rate": _num(g, f"{prefix}empty_rate").mean(),
        f"{prefix}constant_rate": _num(g, f"{prefix}constant_rate").mean(),
        f"{prefix}baseline_empty_rate": _num(g, f"{prefix}baseline_empty_rate").mean(),
        f"{prefix}baseline_constant_rate": _num(g, f"{prefix}baseline_constant_rate").mean(),
    }
    for seed, value, control in zip(g["seed"], fsr, _num(g, f"{prefix}control_fsr")):
        row[f"{prefix}fsr.seed{seed}"] = value
        row[f"{prefix}control_fsr.seed{seed}"] = control
    return row


def aggregate(seeds: pd.DataFrame, degenerate: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (model, attack, attacking interpreter, scored interpreter) of the attacked cells,
    over its seeds, with the flags of the module docstring: ``informative``, ``kept``,
    ``has_control``, ``degenerate`` and ``counted`` (all four: the row counts in the aggregates)."""
    if seeds.empty:
        return pd.DataFrame()
    attacked = seeds[~seeds["control"]]
    if attacked.empty:
        return pd.DataFrame()
    rows = []
    for key, g in attacked.groupby(KEYS, sort=False):
        g = g.sort_values("seed")
        drops = _num(g, "top1_drop")
        row: dict[str, Any] = {**dict(zip(KEYS, key)), "adaptive": key[2] == key[3], "seeds": len(g),
                               "top1_drop": drops.mean(), "top1_drop_max": drops.max(),
                               "kept_seeds": int(g["kept"].sum()), "kept": bool(g["kept"].all()),
                               "has_control": bool(_num(g, "control_fsr").notna().all()),
                               "budgets": tuple(sorted(set(cell_budgets(g))))}
        for prefix in _PREFIXES:
            row.update(_group_numbers(g, prefix))
        rows.append(row)
    df = pd.DataFrame(rows)
    high = pd.Series(False, index=df.index)
    for prefix in _PREFIXES:
        for name in ("baseline_fsr", "control_fsr"):
            high |= _num(df, f"{prefix}{name}") >= UNINFORMATIVE_FSR
    df["informative"] = ~high
    flagged = set()
    if degenerate is not None and len(degenerate):
        flagged = {(m, s) for m, s, d in zip(degenerate["model"], degenerate["scored_interpreter"],
                                             degenerate["degenerate"]) if d}
    df["degenerate"] = [(m, s) in flagged for m, s in zip(df["model"], df["scored_interpreter"])]
    board = board_budget(attacked)
    df["at_budget"] = [budgets == (board,) for budgets in df["budgets"]]
    df["budgets"] = [",".join(str(b) for b in budgets) for budgets in df["budgets"]]
    df["counted"] = df["informative"] & df["kept"] & df["has_control"] & ~df["degenerate"] & df["at_budget"]
    first = [*KEYS, "adaptive", "seeds", "counted", "informative", "kept", "degenerate", "has_control", "at_budget"]
    return _sort(df[first + [c for c in df.columns if c not in first]], KEYS)


def cell_budgets(seeds: pd.DataFrame) -> list[int]:
    """The attacker's search budget of each score row's cell (0: a preset or a hand-set configuration)."""
    return [int(b) for b in _num(seeds, "search.budget").fillna(0)]


def board_budget(attacked: pd.DataFrame) -> int:
    """The search budget that most of the attacked cells ran with (the larger on a tie): the budget
    every row must share to count (budget parity, SPEC section 8)."""
    cells = attacked.drop_duplicates("cell_id") if "cell_id" in attacked else attacked
    counts = pd.Series(cell_budgets(cells), dtype=int).value_counts()
    return int(max(counts.index, key=lambda b: (counts[b], b))) if len(counts) else 0


def row_marks(row: Any) -> str:
    """The marks of an aggregated row (its ``kept``, ``informative``, ``degenerate``, ``has_control``
    and ``at_budget`` flags): the legend of the module docstring."""
    return "".join(mark for flag, mark in ((not row.kept, DAGGER), (not row.informative, UNINFORMATIVE),
                                           (row.degenerate, DEGENERATE), (not row.has_control, NO_CONTROL),
                                           (not row.at_budget, OTHER_BUDGET)) if flag)


# ------------------------------------------------------------------------------------ tables


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _entry(row: Any) -> str:
    """"mean ± std (baseline, control)" and the row's markers."""
    if pd.isna(row.fsr):
        return "-"
    spread = "" if pd.isna(row.fsr_std) else f"\u00b1{row.fsr_std:.1f}"
    return f"{row.fsr:.1f}{spread} ({_fmt(row.baseline_fsr)}, {_fmt(row.control_fsr)}){row_marks(row)}"


#: The numbers of ``fsr.csv`` for each (model, scored interpreter).
FSR_VALUES = ["fsr", "fsr_std", "fsr_min", "fsr_max", "fsr_ci_low", "fsr_ci_high", "baseline_fsr", "control_fsr",
              "fooling", "seeds", "counted"]


def fsr_table(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numbers, formatted) FSR tables of the aggregated ``rows``: index (attack, attacking
    interpreter), columns (model, scored interpreter); numbers has one column block per
    :data:`FSR_VALUES`."""
    if rows.empty:
        return pd.DataFrame(), pd.DataFrame()
    rows = rows.assign(counted=rows["counted"].astype(float), text=[_entry(r) for r in rows.itertuples()])
    index, columns = ["attack", "attacking_interpreter"], ["model", "scored_interpreter"]
    values = [v for v in FSR_VALUES if v in rows]
    numbers = _pivot(rows, index, columns, values)
    text = rows.pivot(index=index, columns=columns, values="text").reindex(
        index=numbers.index, columns=numbers[values[0]].columns).astype(object).fillna("-")
    return numbers, text


def _pivot(df: pd.DataFrame, index: list[str], columns: list[str] | str, values: list[str]) -> pd.DataFrame:
    """``df`` pivoted with one block of columns per value, in the order of ``values``, and the rows and
    columns in the order they first appear in ``df`` (only the pairs that occur)."""
    numbers = df.pivot_table(index=index, columns=columns, values=values, sort=False, dropna=False)
    rows = pd.MultiIndex.from_frame(df[index].drop_duplicates())
    cols = df[columns if isinstance(columns, list) else [columns]].drop_duplicates()
    cols = pd.MultiIndex.from_frame(cols) if isinstance(columns, list) else pd.Index(cols[columns])
    full = pd.MultiIndex.from_tuples([(v, *(c if isinstance(c, tuple) else (c,))) for v in values for c in cols])
    return numbers.reindex(index=rows, columns=full)


def _interval(row: pd.Series, prefix: str = "") -> str:
    value = row.get(f"{prefix}fsr", np.nan)
    if pd.isna(value):
        return ""
    low, high = row.get(f"{prefix}fsr_ci_low", np.nan), row.get(f"{prefix}fsr_ci_high", np.nan)
    return f"{value:.1f} [{_fmt(low)}, {_fmt(high)}]"


def detail_table(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numbers, formatted): one line per row with its seeds, spread, interval, baseline, control,
    fooling, accuracy cost, empty- and constant-map rates, Active groups and markers."""
    if rows.empty:
        return pd.DataFrame(), pd.DataFrame()
    lines = []
    for _, r in rows.iterrows():
        line = {"model": r["model"], "attack": r["attack"], "attacker": r["attacking_interpreter"],
                "scored": r["scored_interpreter"], "seeds": r["seeds"],
                "FSR \u00b1 std": f"{_fmt(r['fsr'])} \u00b1 {_fmt(r['fsr_std'])}",
                "[min, max]": f"[{_fmt(r['fsr_min'])}, {_fmt(r['fsr_max'])}]",
                "interval": f"[{_fmt(r.get('fsr_ci_low'))}, {_fmt(r.get('fsr_ci_high'))}]",
                "baseline": _fmt(r["baseline_fsr"]), "control": _fmt(r.get("control_fsr")),
                "fooling": _fmt(r.get("fooling")), "top-1 drop (max)": _fmt(r.get("top1_drop_max")),
                "empty % w0 > w*": f"{_fmt(r.get('baseline_empty_rate'))} > {_fmt(r.get('empty_rate'))}",
                "constant % w0 > w*": f"{_fmt(r.get('baseline_constant_rate'))} > {_fmt(r.get('constant_rate'))}"}
        for group in GROUPS:
            if f"{group}.fsr" in rows:
                line[f"{group} FSR [interval]"] = _interval(r, f"{group}.")
        line["marks"] = row_marks(r)
        lines.append(line)
    return rows, pd.DataFrame(lines)


def accuracy_table(cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numbers, formatted): rows ("baseline", "-") then, per attack, its control and each attacking
    interpreter; columns model x (top1, top5: means over seeds; top1_drop_max; seeds)."""
    if cells.empty:
        return pd.DataFrame(), pd.DataFrame()
    rows = []
    for model, group in cells.groupby("model", sort=True):
        rows.append({"attack": "baseline", "interpreter": "-", "model": model, "seed": None, "control": False,
                     "top1": _num(group, "accuracy_before.top1").mean(),
                     "top5": _num(group, "accuracy_before.top5").mean(), "top1_drop": np.nan})
    # the controls of searched cells follow the learning rate each search chose: apart when they differ
    is_control = cells["interpreter"] == CONTROL
    searched = set(cells.loc[_num(cells, "chosen.lr").notna(), "attack"]) if "chosen.lr" in cells else set()
    controls = cells[is_control & cells["attack"].isin(searched)]
    lrs = _num(controls, "params.lr").groupby(controls["attack"]).nunique() if len(controls) else pd.Series()
    for (_, row), control in zip(cells.iterrows(), is_control):
        interpreter = row["interpreter"]
        if control and lrs.get(row["attack"], 0) > 1:
            interpreter = f"{CONTROL} (lr {float(row['params.lr']):g})"
        rows.append({"attack": row["attack"], "interpreter": interpreter, "model": row["model"], "control": control,
                     "seed": row.get("seed"), "top1": row.get("accuracy_after.top1"),
                     "top5": row.get("accuracy_after.top5"), "top1_drop": row.get("top1_drop")})
    df = pd.DataFrame(rows)
    for name in ("top1", "top5", "top1_drop"):
        df[name] = pd.to_numeric(df[name], errors="coerce")
    df["control"] = df["control"].astype(bool)
    agg = df.groupby(["attack", "interpreter", "model"], sort=False).agg(
        top1=("top1", "mean"), top5=("top5", "mean"), top1_drop_min=("top1_drop", "min"),
        top1_drop_max=("top1_drop", "max"), seeds=("seed", "count"), control=("control", "first")).reset_index()
    control_labels = set(agg.loc[agg["control"], "interpreter"])
    attacks = attack_order(a for a in agg["attack"].unique() if a != "baseline")
    order = {**{a: i for i, a in enumerate(attacks)}, "baseline": -1}
    agg = agg.assign(_order=agg["attack"].map(order), _attacked=~agg["control"])
    agg = agg.sort_values(["_order", "_attacked", "interpreter", "model"]).drop(columns=["_order", "_attacked",
                                                                                       "control"])
    values = ["top1", "top5", "top1_drop_min", "top1_drop_max", "seeds"]
    numbers = _pivot(agg, ["attack", "interpreter"], "model", values)
    models = sorted(agg["model"].unique())
    numbers = numbers.swaplevel(0, 1, axis=1).reindex(columns=[(m, v) for m in models for v in values])
    text = pd.DataFrame(index=numbers.index)
    for model in numbers.columns.unique(level=0):
        block = numbers[model]
        text[(model, "top1")] = block["top1"].map(_fmt)
        text[(model, "top5")] = block["top5"].map(_fmt)
        text[(model, "top-1 drop (max)")] = [_drop_text(ix[1] in control_labels, lo, hi) for ix, lo, hi in
                                            zip(block.index, block["top1_drop_min"], block["top1_drop_max"])]
    text.columns = pd.MultiIndex.from_tuples(text.columns)
    return numbers, text


def drop_mark(control: bool, low: float, high: float) -> str:
    """The accuracy table's mark of a top-1 drop from ``low`` to ``high`` over the seeds: a control
    that moved top-1 by more than CONTROL_TOP1_CHANGE either way, a manipulation that cost more than
    MAX_TOP1_DROP; "" otherwise (and for no drop)."""
    if pd.isna(high):
        return ""
    if control:
        return CONTROL_MOVED if max(abs(low), abs(high)) > CONTROL_TOP1_CHANGE else ""
    return DAGGER if high > MAX_TOP1_DROP else ""


def _drop_text(control: bool, low: float, high: float) -> str:
    return "-" if pd.isna(high) else f"{_fmt(high)}{drop_mark(control, low, high)}"


def transfer_matrix(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numbers, formatted): mean fooling of scored (columns) on models manipulated through attacking
    (rows), over the counted rows (every attack and model); numbers has the blocks ``fooling``,
    ``fsr`` (their mean FSR) and ``rows`` (how many)."""
    if rows.empty or not rows["counted"].any():
        return pd.DataFrame(), pd.DataFrame()
    counted = rows[rows["counted"]]
    table = counted.pivot_table(index="attacking_interpreter", columns="scored_interpreter",
                                values=["fooling", "fsr"], aggfunc="mean")
    count = counted.pivot_table(index="attacking_interpreter", columns="scored_interpreter", values="fooling",
                                aggfunc="size")
    count.columns = pd.MultiIndex.from_product([["rows"], count.columns])
    numbers = pd.concat([table[["fooling"]], table[["fsr"]], count], axis=1)
    fooling, n = numbers["fooling"], numbers["rows"].reindex(columns=numbers["fooling"].columns)
    text = fooling.copy().astype(object)
    for col in fooling.columns:
        text[col] = [f"{_fmt(f)} ({int(k)})" if not pd.isna(f) else "-" for f, k in zip(fooling[col], n[col])]
    return numbers, text


def degenerate_table(degenerate: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numbers, formatted): per interpreter (rows) and model (columns), the base model's constant-map
    rate (empty-map rate in parentheses), marked when it makes the interpreter degenerate there."""
    if degenerate.empty:
        return pd.DataFrame(), pd.DataFrame()
    text = degenerate.assign(text=[
        f"{_fmt(c)} ({_fmt(e)}){' ' + DEGENERATE + ' degenerate' if d else ''}"
        for c, e, d in zip(degenerate["baseline_constant_rate"], degenerate["baseline_empty_rate"],
                           degenerate["degenerate"])])
    text = text.pivot(index="scored_interpreter", columns="model", values="text").fillna("-")
    text.index.name = "interpreter"
    return degenerate.reset_index(drop=True), text


# ------------------------------------------------------------------------------------ ranking


def coverage(rows: pd.DataFrame) -> tuple[list[str], list[tuple[str, str]], dict[str, set[tuple[str, str]]]]:
    """(ranked group, its common slots, every interpreter's own slots): the equal-coverage rule of the
    module docstring. A slot is a (model, attack) where the interpreter's adaptive row is counted."""
    own: dict[str, set[tuple[str, str]]] = {}
    if not rows.empty:
        adaptive = rows[rows["adaptive"] & rows["counted"]]
        for name, g in adaptive.groupby("scored_interpreter"):
            own[str(name)] = set(zip(g["model"], g["attack"]))
    order = sorted(own, key=lambda n: (-len(own[n]), n))
    group: list[str] = []
    common: set[tuple[str, str]] = set()
    if order:
        need = MIN_COVERAGE * len(own[order[0]])
        for name in order:
            joined = own[name] if not group else common & own[name]
            if len(joined) >= need:
                group.append(name)
                common = joined
    slots = sorted(common, key=lambda s: (attack_order({a for _, a in common}).index(s[1]), s[0]))
    return group, slots, own


def _means(rows: pd.DataFrame) -> dict[str, float]:
    return {name: float(_num(rows, name).mean()) if len(rows) else np.nan
            for name in ("fooling", "fsr", "baseline_fsr", "control_fsr")}


def _ranking(rows: pd.DataFrame, cells: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The ranking frame and the common slots of its equal-coverage section."""
    status = cells["status"] if "status" in cells else pd.Series(STATUS_OK, index=cells.index)
    attacked = cells[cells.get("interpreter", pd.Series(dtype=object)) != CONTROL] if len(cells) else cells
    names = set(rows["scored_interpreter"]) if len(rows) else set()
    names |= set(attacked["interpreter"]) if len(attacked) else set()
    if not names:
        return pd.DataFrame(), []
    group, slots, own = coverage(rows)
    lines = []
    for name in sorted(names):
        mine = rows[rows["scored_interpreter"] == name] if len(rows) else rows
        adaptive = mine[mine["adaptive"]] if len(mine) else mine
        transfer = mine[~mine["adaptive"] & mine["counted"]] if len(mine) else mine
        own_cells = attacked[attacked["interpreter"] == name] if len(attacked) else attacked
        blocked = own_cells[status.reindex(own_cells.index) == STATUS_NOT_ATTACKABLE]
        ok_cells = own_cells[status.reindex(own_cells.index) == STATUS_OK]
        if name in group:
            section, used = RANKED, slots
        elif name in own:
            section, used = PARTIAL, sorted(own[name])
        elif len(ok_cells) == 0 and len(blocked):
            section, used = NOT_ATTACKABLE, []
        elif len(adaptive):
            section, used = LEFT_OUT, []
        else:
            section, used = TRANSFER_ONLY, []
        chosen = adaptive[[(m, a) in set(used) for m, a in zip(adaptive["model"], adaptive["attack"])]] \
            if len(adaptive) else adaptive
        chosen = chosen[chosen["counted"]] if len(chosen) else chosen
        means, tmeans = _means(chosen), _means(transfer)
        degenerate_on = sorted(set(mine[mine["degenerate"]]["model"])) if len(mine) else []
        lines.append({
            "section": section, "interpreter": name, **means, "slots": len(used),
            "own_slots": len(own.get(name, ())), "adaptive_rows": len(adaptive),
            "left_out_uninformative": int((~adaptive["informative"]).sum()) if len(adaptive) else 0,
            "left_out_not_kept": int((~adaptive["kept"]).sum()) if len(adaptive) else 0,
            "left_out_degenerate": int(adaptive["degenerate"].sum()) if len(adaptive) else 0,
            "left_out_no_control": int((~adaptive["has_control"]).sum()) if len(adaptive) else 0,
            "left_out_other_budget": int((~adaptive["at_budget"]).sum()) if len(adaptive) else 0,
            "not_attackable_cells": len(blocked),
            "degenerate_on": ",".join(degenerate_on),
            "mean_top1_drop": _num(ok_cells, "top1_drop").mean() if len(ok_cells) else np.nan,
            "transfer_fooling": tmeans["fooling"], "transfer_fsr": tmeans["fsr"], "transfer_rows": len(transfer),
        })
    df = pd.DataFrame(lines)
    df["_section"] = df["section"].map({s: i for i, s in enumerate(SECTIONS)})
    adaptive_sections = df["section"].isin([RANKED, PARTIAL])
    df["_key"] = np.where(adaptive_sections, df["fooling"], df["transfer_fooling"])
    df["_key2"] = np.where(adaptive_sections, df["fsr"], df["transfer_fsr"])
    df = df.sort_values(["_section", "_key", "_key2", "interpreter"], na_position="last")
    df = df.drop(columns=["_section", "_key", "_key2"]).reset_index(drop=True)
    df.insert(1, "rank", df.groupby("section", sort=False).cumcount() + 1)
    return df, slots


def ranking(scores: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Interpreters by section (:data:`SECTIONS`) and, within one, by mean fooling (adaptive sections)
    or mean transfer fooling (the others), ascending: lower is more robust; numbers only.
    ``scores`` is :func:`scores_frame`, ``cells`` the cell records (those not attackable included,
    for that section)."""
    seeds = seed_rows(scores, cells)
    rows = aggregate(seeds, degenerate_maps(seeds))
    return _ranking(rows, cells)[0]


# ------------------------------------------------------------------------------------ writing

#: The columns of ``scores.csv`` (those a store lacks are left out).
SCORE_COLUMNS = [
    "model", "attack", "attacking_interpreter", "scored_interpreter", "seed", "adaptive", "control", "fsr",
    "fsr_ci_low", "fsr_ci_high", "baseline_fsr", "baseline_fsr_ci_low", "baseline_fsr_ci_high", "control_fsr",
    "fooling", "n", "successes", "empty_rate", "constant_rate", "baseline_empty_rate", "baseline_constant_rate",
    *(f"{g}.{name}" for g in GROUPS for name in ("fsr", "fsr_ci_low", "fsr_ci_high", "baseline_fsr", "control_fsr",
                                                "fooling", "n", "empty_rate", "constant_rate",
                                                "baseline_empty_rate", "baseline_constant_rate")),
    "spearman", "topk_intersection", "accuracy_before.top1", "accuracy_after.top1", "accuracy_before.top5",
    "accuracy_after.top5", "top1_drop", "kept", "lr", "lam", "surrogate", "steps", "cell_id", "control_cell",
]
_CELL_COLUMNS = ["accuracy_before.top1", "accuracy_after.top1", "accuracy_before.top5", "accuracy_after.top5"]


def scores_long(seeds: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per score and seed (:func:`seed_rows`) with its cell's accuracy and hyper-parameters
    (of a searched cell, those its attacker chose), sorted (numbers only)."""
    if seeds.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    df = seeds.copy()
    for key in ("lr", "lam", "surrogate", "steps"):  # params.surrogate is stored only when it is not relu
        if f"params.{key}" in df:
            df[key] = df[f"params.{key}"]
    if not cells.empty:
        chosen = [f"chosen.{k}" for k in ("lr", "lam", "surrogate")]
        keep = ["cell_id", *(c for c in [*_CELL_COLUMNS, *chosen] if c in cells and c not in df)]
        df = df.merge(cells[keep], on="cell_id", how="left")
        for key in ("lr", "lam", "surrogate"):
            if f"chosen.{key}" in df:
                df[key] = df[f"chosen.{key}"].where(df[f"chosen.{key}"].notna(), df.get(key))
    if "control" in df:  # the paper's penalty unless a search chose another surrogate; a control has none
        surrogate = df["surrogate"] if "surrogate" in df else pd.Series(np.nan, index=df.index, dtype=object)
        df["surrogate"] = surrogate.where(surrogate.notna(), "relu").where(~df["control"].astype(bool), None)
    df = df[[c for c in SCORE_COLUMNS if c in df]]
    return _sort(df, ["attack", "model", "attacking_interpreter", "scored_interpreter", "seed"])


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    flat = frame.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [" / ".join(map(str, c)) for c in flat.columns]
    return flat.reset_index() if not isinstance(flat.index, pd.RangeIndex) else flat


def _markdown(title: str, frame: pd.DataFrame | dict[str, pd.DataFrame], note: str) -> str:
    """A Markdown page: the title, the note, then the table (or one table per heading of a dict)."""
    parts = frame if isinstance(frame, dict) else {"": frame}
    if all(part.empty for part in parts.values()):
        return f"# {title}\n\nNo results yet.\n"
    body = []
    for heading, part in parts.items():
        if part.empty:
            continue
        table = tabulate(_flat(part), headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
        body.append(f"## {heading}\n\n{table}\n" if heading else f"{table}\n")
    return f"# {title}\n\n{note}\n\n" + "\n".join(body)


def _by_model(text: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The formatted FSR table as one table per model (columns: the scored interpreters), without
    the rows of attacking interpreters that have no cell on that model."""
    if text.empty:
        return {}
    parts = {str(model): text[model] for model in text.columns.unique(level=0)}
    return {model: part[~(part == "-").all(axis=1)] for model, part in parts.items()}


_MARKS_NOTE = (f"Markers: {DAGGER} not kept (a seed's manipulation cost more than {MAX_TOP1_DROP:g} points of "
               f"top-1); {UNINFORMATIVE} uninformative (mean baseline or control FSR >= {UNINFORMATIVE_FSR:g} %, "
               f"of the mean or of an Active class); {DEGENERATE} the scored interpreter is degenerate on this model "
               f"(>= {DEGENERATE_RATE:g} % of its base-model maps constant); {NO_CONTROL} a seed has no control "
               f"score; {OTHER_BUDGET} attacked with another search budget than the board's (budget parity). "
               "Marked rows are shown and left out of every aggregate (ranking, transfer matrix).")
_SEEDS_NOTE = ("Each row is the mean over the seeds of its cell (std: sample standard deviation over the seeds); "
               "its interval runs from the lowest per-seed Wilson 95 % lower bound to the highest per-seed upper "
               "bound, so it covers both the sampling of the scored images and the seed spread. Control: the scored "
               "interpreter's FSR on the same fine-tuning with lambda = 0 and the same seed. Fooling: the mean over "
               "seeds of FSR - max(baseline, that seed's control).")


def _notes(track: str, slots: list[tuple[str, str]], ranked: pd.DataFrame) -> dict[str, str]:
    where = ", ".join(f"{m}/{a}" for m, a in slots) or "none"
    group = list(ranked[ranked["section"] == RANKED]["interpreter"]) if len(ranked) else []
    single = (f" With one interpreter ranked ({group[0]}), the ranking covers its own slots only."
              if len(group) == 1 else "")
    return {
        "fsr": (f"FSR (%) on the {track} track, mean \u00b1 std over seeds, (baseline, control) FSR in "
                "parentheses; rows: attack and attacking interpreter; one table per model, columns: scored "
                f"interpreter. Lower is more robust. {_SEEDS_NOTE} {_MARKS_NOTE} fsr.csv holds the numbers "
                "(also min, max, interval, fooling, seeds); detail.csv the per-seed values."),
        "detail": (f"Every row of the FSR table on the {track} track with how it is made. {_SEEDS_NOTE} "
                   "Empty / constant %: the share of the base model's (w0) and the manipulated model's (w*) maps "
                   "that are all zero / constant over positions (never successes). Active rows give the FSR of "
                   f"classes c1 and c2 with their intervals. {_MARKS_NOTE}"),
        "accuracy": ("Top-1 / top-5 accuracy (%) of the base models and of each manipulated model (mean over seeds), "
                     "and the largest top-1 drop against the base over the seeds. 'control' rows: the same "
                     "fine-tuning with lambda = 0, showing what fine-tuning alone costs (SPEC: within "
                     f"\u00b1{CONTROL_TOP1_CHANGE:g} points; {CONTROL_MOVED}: moved more). {DAGGER}: a seed cost more "
                     f"than {MAX_TOP1_DROP:g} points, so that manipulation is not kept."),
        "transfer": ("Mean fooling (FSR above max(baseline, control), %) of the scored interpreter (columns) on models "
                     "manipulated through the attacking interpreter (rows), over attacks and models, with the number "
                     "of rows in parentheses; the diagonal is adaptive. Only rows that are informative, kept, not "
                     "degenerate and with their controls count; transfer.csv holds the fooling, mean FSR and count."),
        "degenerate": (f"Constant-map rate (%) of each interpreter's maps of each base model (empty-map rate in "
                       f"parentheses), mean over its scores. {DEGENERATE} degenerate: >= {DEGENERATE_RATE:g} % "
                       "constant; its rows on that model are never ranked as robust."),
        "ranking": (
            "Interpreters by mean fooling (FSR above max(baseline, control)) of their adaptive rows; lower is "
            "more robust. A slot is a (model, attack) where the interpreter's adaptive row counts (informative, "
            "kept, not degenerate, with controls, attacked with the board's search budget). Interpreters are "
            "taken by decreasing number of slots; each joins the ranked group when the slots common to the group "
            "still number at least "
            f"{MIN_COVERAGE:g} x the largest coverage. The group ('{RANKED}') is ranked over exactly those "
            f"{len(slots)} common slot{'' if len(slots) == 1 else 's'} ({where}); fsr is the raw mean FSR over the same slots.{single} Others "
            f"with counted adaptive rows are ranked under '{PARTIAL}' over their own slots (not comparable with "
            f"the group). Then: '{NOT_ATTACKABLE}' (every adaptive cell not attackable: never robust), "
            f"'{LEFT_OUT}' (no adaptive row counts), '{TRANSFER_ONLY}' (never attacked through itself), each by "
            "mean transfer fooling. 'left out' counts the adaptive rows left out and why (ranking.csv: "
            "left_out_*); degenerate_on lists the models where the interpreter's base maps are constant."),
    }


def _ranking_text(rank: pd.DataFrame) -> dict[str, pd.DataFrame]:
    if rank.empty:
        return {}
    text = rank.copy()
    for col in ("fooling", "fsr", "baseline_fsr", "control_fsr", "mean_top1_drop", "transfer_fooling",
                "transfer_fsr"):
        text[col] = text[col].map(_fmt)
    text["left out"] = [", ".join(f"{int(n)} {why.replace('_', ' ')}" for why, n in zip(LEFT_OUT_REASONS, counts)
                                  if n) or "-"
                        for counts in zip(*(rank[f"left_out_{why}"] for why in LEFT_OUT_REASONS))]
    text = text[["section", "rank", "interpreter", "fooling", "fsr", "baseline_fsr", "control_fsr", "slots",
                 "own_slots", "adaptive_rows", "left out", "not_attackable_cells", "degenerate_on", "mean_top1_drop",
                 "transfer_fooling", "transfer_fsr", "transfer_rows"]]
    return {section: text[text["section"] == section].drop(columns="section")
            for section in SECTIONS if (text["section"] == section).any()}


# ------------------------------------------------------------------------------ the attacker's search

#: A search is one cell: its slot and its budget (a store may hold searches of one slot at several budgets).
_SEARCH_KEYS = ["model", "attack", "interpreter", "seed", "budget"]
#: A point of the attacker's curve: the leader after a rung, on the fooling split (fsr, top1_drop, its
#: mean test loss) and on the test split (test_fsr, test_loss).
_CURVE_COLUMNS = ("rung", "steps", "spent", "fsr", "top1_drop", "loss", "test_fsr", "test_loss", "lr", "lam",
                  "surrogate")


def search_frames(store: Store, track: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the attacker tried (SPEC section 9), from the searched cells' records: one row per cell
    (the configuration chosen, its FSR and top-1 drop on the fooling split against the preset's,
    its FSR on the test split) and one row per rung of each (the curve: optimizer steps spent so
    far, the leader's fooling-split FSR, drop and mean test loss, and its test FSR and mean test
    loss: the loss shows maps moving where the FSR has not yet counted them)."""
    cells, points = [], []
    for record in store.records(track=track, version=BENCHMARK_VERSION, status=STATUS_OK):
        found = record.metrics.get("search")
        if not isinstance(found, dict):
            continue
        key = {k: record.config.get(k) for k in _SEARCH_KEYS if k != "budget"}
        key["budget"] = (record.config.get("search") or {}).get("budget")  # the search's, not a config key
        chosen, trials = record.metrics.get("chosen") or {}, found.get("trials") or []
        curve = found.get("curve") or []
        preset = next((t for t in trials if t.get("preset")), {})
        preset_last = (preset.get("measured") or [{}])[-1]
        final = curve[-1] if curve else {}
        cells.append({
            **key, "lr": chosen.get("lr"), "lam": chosen.get("lam"), "surrogate": chosen.get("surrogate"),
            "preset_chosen": bool(chosen.get("preset")), "select_fsr": final.get("fsr"),
            "select_top1_drop": final.get("top1_drop"), "preset_select_fsr": preset_last.get("fsr"),
            "preset_select_top1_drop": preset_last.get("top1_drop"),
            "preset_steps": preset_last.get("steps"), "test_fsr": (record.metrics.get("adaptive") or {}).get("fsr"),
            "test_loss": final.get("test_loss"),
            "preset_test_fsr": (found.get("preset_report") or {}).get("test_fsr"),
            "top1_drop": record.metrics.get("top1_drop"), "configurations": len(trials),
            "failed": sum(1 for t in trials if t.get("error")), "spent": found.get("spent"),
            **_loose(found.get("loose") or {}),
        })
        points.extend({**key, **{k: p.get(k) for k in _CURVE_COLUMNS}} for p in curve)
    cell_df = pd.DataFrame(cells, columns=[*_SEARCH_KEYS, "lr", "lam", "surrogate", "preset_chosen", "select_fsr",
                                           "select_top1_drop", "preset_select_fsr", "preset_select_top1_drop",
                                           "preset_steps", "test_fsr", "test_loss", "preset_test_fsr", "top1_drop",
                                           "configurations", "failed", "spent", *_LOOSE_COLUMNS])
    curve_df = pd.DataFrame(points, columns=[*_SEARCH_KEYS, *_CURVE_COLUMNS])
    return (_sort(cell_df, ["attack", "model", "interpreter", "seed", "budget"]),
            _sort(curve_df, [*_SEARCH_KEYS, "rung"]))


_LOOSE_COLUMNS = ["loose_lr", "loose_lam", "loose_surrogate", "loose_select_fsr", "loose_select_top1_drop",
                  "loose_test_fsr"]


def _loose(point: dict[str, Any]) -> dict[str, Any]:
    """The search's best finalist within the looser top-1 budget, as search-table columns."""
    return {"loose_lr": point.get("lr"), "loose_lam": point.get("lam"), "loose_surrogate": point.get("surrogate"),
            "loose_select_fsr": point.get("fsr"),
            "loose_select_top1_drop": point.get("top1_drop"), "loose_test_fsr": point.get("test_fsr")}


def rank_stability(curve: pd.DataFrame) -> dict[str, Any]:
    """How the interpreters' order changes between half and full budget: per interpreter, the mean
    test FSR of the leader at the rung of half the finalists' steps and at the final rung, over the
    (model, attack, seed, search budget) slots every interpreter has; Kendall's tau between the two
    orders (None with fewer than two interpreters)."""
    from scipy.stats import kendalltau

    if curve.empty:
        return {"tau": None, "interpreters": 0, "slots": 0, "half": {}, "full": {}}
    # a search without a budget (a schedule counted in epochs) is a slot of its own, never a NaN key
    df = curve.assign(test_fsr=_num(curve, "test_fsr"), steps=_num(curve, "steps"),
                      budget=_num(curve, "budget").fillna(-1))
    full_steps = df.groupby(_SEARCH_KEYS)["steps"].transform("max")
    half = df[df["steps"] == np.ceil(full_steps / 2)]
    full = df[df["steps"] == full_steps]
    slots = ["model", "attack", "seed", "budget"]
    common = None
    for _name, g in full.groupby("interpreter"):
        these = set(map(tuple, g[slots].to_numpy().tolist()))
        common = these if common is None else common & these
    common = common or set()

    def means(part: pd.DataFrame) -> dict[str, float]:
        inside = part.loc[np.array([tuple(r) in common for r in part[slots].to_numpy().tolist()], dtype=bool)]
        return {str(k): float(v) for k, v in inside.groupby("interpreter")["test_fsr"].mean().items()}

    at_half, at_full = means(half), means(full)
    names = sorted(set(at_half) & set(at_full))
    tau = None
    if len(names) >= 2:
        value = kendalltau([at_half[n] for n in names], [at_full[n] for n in names]).statistic
        tau = None if value is None or not math.isfinite(value) else float(value)
    return {"tau": tau, "interpreters": len(names), "slots": len(common), "half": at_half, "full": at_full}


def _pair(a: Any, b: Any) -> str:
    """``"a / b"`` of two numbers (one decimal), "-" for a missing one."""
    return f"{_fmt(a)} / {_fmt(b)}"


def _config(lr: Any, lam: Any, surrogate: Any) -> str:
    """``"lr / lambda / surrogate"`` of a configuration; "-" when there is none."""
    if not isinstance(lr, (int, float)) or not math.isfinite(lr):
        return "-"
    return f"{lr:g} / {lam:g}" + (f" / {surrogate}" if isinstance(surrogate, str) else "")


def search_table(cells: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The per-cell search table: the numbers, and the text as one table per model with paired
    columns (the preset beside the attacker's choice, the FSR beside its top-1 drop)."""
    if cells.empty:
        return cells, {}
    text = pd.DataFrame({
        "attack": cells["attack"], "interpreter": cells["interpreter"], "seed": cells["seed"],
        "budget": cells["budget"].map(lambda v: "-" if pd.isna(v) else f"{int(v)}"),
        "chosen lr / lambda / surrogate": [
            "preset" if preset else _config(lr, lam, sur)
            for preset, lr, lam, sur in zip(cells["preset_chosen"], cells["lr"], cells["lam"], cells["surrogate"])],
        "fooling split FSR / drop": [_pair(a, b) for a, b in zip(cells["select_fsr"], cells["select_top1_drop"])],
        "preset there": [_pair(a, b) for a, b in zip(cells["preset_select_fsr"], cells["preset_select_top1_drop"])],
        "test FSR / drop": [_pair(a, b) for a, b in zip(cells["test_fsr"], cells["top1_drop"])],
        "preset test FSR": cells["preset_test_fsr"].map(_fmt),
        "test loss": cells["test_loss"].map(lambda v: f"{v:.3f}" if isinstance(v, float) and math.isfinite(v) else "-"),
        "within 5 points: config, FSR / drop (test FSR)": [
            "-" if _config(lr, lam, sur) == "-" else f"{_config(lr, lam, sur)}, {_pair(fsr, drop)} ({_fmt(test)})"
            for lr, lam, sur, fsr, drop, test in zip(cells["loose_lr"], cells["loose_lam"], cells["loose_surrogate"],
                                                     cells["loose_select_fsr"], cells["loose_select_top1_drop"],
                                                     cells["loose_test_fsr"])],
        "configs (failed)": [f"{n} ({f})" for n, f in zip(cells["configurations"], cells["failed"])],
        "steps": cells["spent"].map(lambda v: "-" if pd.isna(v) else f"{int(v)}"),
    })
    return cells, {str(model): text[cells["model"] == model].reset_index(drop=True)
                   for model in dict.fromkeys(cells["model"])}


def _search_note(stability: dict[str, Any]) -> str:
    tau = stability["tau"]
    if tau is None:
        stable = (f"Rank stability between half and full budget: not defined with {stability['interpreters']} "
                  "interpreter(s) searched on common slots.")
    else:
        stable = (f"Rank stability: Kendall's tau between the interpreters' order by mean test FSR at half the "
                  f"finalists' steps and at the full budget is {tau:.2f} ({stability['interpreters']} interpreters, "
                  f"{stability['slots']} common (model, attack, seed) slots); 1 means the budget does not change "
                  "the ranking.")
    return ("What the attacker tried per searched cell (SPEC section 9), one table per model: the configuration it "
            "chose (learning rate / lambda / penalty surrogate; 'preset' when the hand-tuned one won), its FSR and "
            "top-1 drop on the fooling split (never scored) beside the preset's at the same steps ('preset there'), "
            "its FSR and top-1 drop on the test split (the cell's score) beside the preset's test FSR (what the "
            "hand-tuned preset alone scores), the mean test loss (how far the maps moved, where the FSR counts only "
            f"those past the threshold), the best finalist within {LOOSE_TOP1_DROP:g} points of top-1 (reported, "
            "never scored; a low FSR beside a high one there is set by the 2-point accuracy budget, not by the "
            "interpreter), the configurations tried and how many diverged, and the optimizer steps spent. "
            f"{stable} search.csv holds the numbers (loose_*: the finalist within {LOOSE_TOP1_DROP:g} points), "
            "budget.csv the curve (the leader after each rung); fig_budget.png draws it.")


def write_leaderboard(store: Store, track: str, out_dir: str | Path) -> dict[str, Path]:
    """Write the track's tables (Markdown + CSV) and their page (``index.html``,
    :mod:`robustbench_interp.page`) under ``out_dir`` from ``store`` alone; returns the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells = cells_frame(store, track, (STATUS_OK, STATUS_NOT_ATTACKABLE))
    ok_cells = cells[cells["status"] == STATUS_OK] if len(cells) else cells
    seeds = seed_rows(scores_frame(store, track), ok_cells)
    degenerate = degenerate_maps(seeds)
    rows = aggregate(seeds, degenerate)
    rank, slots = _ranking(rows, cells) if len(rows) or len(cells) else (pd.DataFrame(), [])
    fsr_n, fsr_t = fsr_table(rows)
    detail_n, detail_t = detail_table(rows)
    notes = _notes(track, slots, rank)
    tables: dict[str, tuple[pd.DataFrame, Any]] = {
        "fsr": (fsr_n, _by_model(fsr_t)),
        "detail": (detail_n, detail_t),
        "accuracy": accuracy_table(ok_cells),
        "transfer": transfer_matrix(rows),
        "degenerate": degenerate_table(degenerate),
        "ranking": (rank, _ranking_text(rank)),
    }
    searched, curve = search_frames(store, track)
    if len(searched):
        tables["search"] = search_table(searched)
        notes["search"] = _search_note(rank_stability(curve))
    written: dict[str, Path] = {"scores.csv": out / "scores.csv"}
    atomic_write_text(written["scores.csv"], scores_long(seeds, ok_cells).to_csv(index=False))
    if len(curve):
        from robustbench_interp.figures import draw_budget

        written["budget.csv"] = out / "budget.csv"
        atomic_write_text(written["budget.csv"], curve.to_csv(index=False))
        figure = draw_budget(curve, out / "fig_budget.png")
        if figure is not None:
            written["fig_budget.png"] = figure
    for name, (numbers, text) in tables.items():
        csv_path, md_path = out / f"{name}.csv", out / f"{name}.md"
        atomic_write_text(csv_path, numbers.to_csv(index=not isinstance(numbers.index, pd.RangeIndex)))
        atomic_write_text(md_path, _markdown(f"{track}: {name}", text, notes[name]))
        written[f"{name}.csv"], written[f"{name}.md"] = csv_path, md_path
    from robustbench_interp.page import PAGE, write_page  # the page renders this module's frames

    written[PAGE] = write_page(out, track, ranking=rank, rows=rows, accuracy=tables["accuracy"][0],
                               transfer=tables["transfer"][0], search=tables.get("search"), notes=notes)
    return written


# ------------------------------------------------------------------------------------ publishing

#: The folder of a leaderboard that holds its records (a store without weights).
RECORDS = "records"
#: The statuses of the cells a leaderboard shows (a not-attackable cell has no scores but says so).
PUBLISHED = (STATUS_OK, STATUS_NOT_ATTACKABLE)


def records_store(out_dir: str | Path) -> Store:
    """The store of records behind the leaderboard in ``out_dir`` (``<out_dir>/records``)."""
    return Store(Path(out_dir) / RECORDS)


def _is_control(record: CellRecord) -> bool:
    return record.config.get("interpreter") == CONTROL


def _slot(record: CellRecord) -> tuple[Any, ...]:
    """Where a cell sits in a grid, whatever its hyper-parameters and schema version. A control's
    place includes its fine-tuning parameters: the cells of one (model, attack, seed) may have
    controls of different schedules (an interpreter's own learning rate), each the control of its own."""
    c = record.config
    params = sorted((c.get("interpreter_params") or {}).items())
    slot = (c.get("track"), c.get("model"), c.get("attack"), c.get("interpreter"), repr(params), c.get("seed"),
            repr(c.get("classes")))
    return (*slot, repr(sorted((c.get("params") or {}).items()))) if _is_control(record) else slot


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


def _remove(board: Store, record: CellRecord) -> None:
    board.drop_scores(record.cell_id)
    board.cell_path(record.cell_id).unlink(missing_ok=True)


def _control_of(record: CellRecord) -> str | None:
    control = getattr(record, "control_cell", None) or record.metrics.get("control_cell")
    return control if isinstance(control, str) else None


def publish(source: Store, board: Store, track: str, cell_ids: set[str] | None = None) -> int:
    """Copy the ok and not-attackable cells of ``track`` of the current version in ``source`` (those in
    ``cell_ids`` when given; one per grid place), the control each names (whatever ``cell_ids`` says),
    and their ok scores into the leaderboard's records ``board``; every record of ``board`` in the
    same grid place with another id is removed with its scores, and so is every control that no cell
    of ``board`` names any more. Returns the number of cells published, controls included."""
    every = {r.cell_id: r for r in source.records(track=track, version=BENCHMARK_VERSION) if r.status in PUBLISHED}
    attacked = [r for r in every.values() if not _is_control(r) and (cell_ids is None or r.cell_id in cell_ids)]
    chosen = _chosen(attacked, cell_ids)
    named = {_control_of(r) for r in chosen.values()}
    named |= {_control_of(r) for r in board.records(track=track) if not _is_control(r)
              and chosen.get(_slot(r)) is None and (cell_ids is None or r.cell_id in cell_ids)}
    controls = [every[i] for i in named if i in every and every[i].ok]
    chosen.update(_chosen(controls, None))
    for sizes in {evaluation_sizes(r) for r in chosen.values()}:
        check_sizes(board, track, sizes)
    for old in board.records(track=track):
        new = chosen.get(_slot(old))
        if new is not None and new.cell_id != old.cell_id:
            _remove(board, old)
    for record in chosen.values():
        board.write(record)
        for score in source.scores(record.cell_id):
            if score.ok:
                board.write(_summary(score))
    held = list(board.records(track=track))
    used = {_control_of(r) for r in held if not _is_control(r)}
    for record in held:
        if _is_control(record) and record.cell_id not in used:
            _remove(board, record)
    return len(chosen)
