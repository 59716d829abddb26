"""The leaderboard as one static HTML page, ``leaderboard/<track>/index.html`` (rendering only).

:func:`write_page` draws the frames :func:`~robustbench_interp.leaderboard.write_leaderboard` builds
(the same ones behind ``ranking.md``, ``detail.csv``, ``accuracy.csv``, ``transfer.csv`` and
``search.csv``) into a page that needs nothing but a browser: the CSS and the script are inline, no
file is fetched from elsewhere, and the figures are the PNG files next to it, referenced by relative
path, so the page opens from disk (``file://``) as well as from any static host.

In reading order: how to read it, the ranking, the FSR and accuracy tables (one row per entry,
sortable by a click on a column header and filtered by a text box and select boxes), the transfer
matrix as a heatmap, the attacker's FSR-versus-budget figures and search table, and the galleries
of heatmaps before and after the manipulation (``fig_<attack>.png`` or ``fig_<attack>_<model>.png``,
found on disk). A section without data says so in one line.

Everything the page shows comes from records, which are data: every text is HTML-escaped, no data
is placed in the script (the rows are rendered as HTML; the script only sorts and hides them), and
the page's Content-Security-Policy runs that one script (by its hash) and loads images from its own
folder only.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from robustbench_interp.attacks import attack_order, safe_name
from robustbench_interp.config import CONTROL
from robustbench_interp.leaderboard import (
    CONTROL_MOVED,
    CONTROL_TOP1_CHANGE,
    DAGGER,
    DEGENERATE,
    LEFT_OUT_REASONS,
    MAX_TOP1_DROP,
    NO_CONTROL,
    OTHER_BUDGET,
    PARTIAL,
    RANKED,
    SECTIONS,
    UNINFORMATIVE,
    UNINFORMATIVE_FSR,
    drop_mark,
    row_marks,
)
from robustbench_interp.store import atomic_write_text

#: The page's file name inside a track's leaderboard folder.
PAGE = "index.html"
#: The fooling (FSR points) at which the transfer heatmap reaches its full colour.
HEAT_SCALE = 100.0
#: The Markdown tables the page links to, in its order, with what each holds.
TABLES = (
    ("ranking", "the ranking, by section"),
    ("fsr", "FSR per model, attack and interpreter (the paper's Tables 1 and 2)"),
    ("detail", "every row with its seeds, spread, interval and map rates"),
    ("accuracy", "top-1 / top-5 of the base, control and manipulated models"),
    ("transfer", "the transfer matrix"),
    ("degenerate", "the base models' empty- and constant-map rates"),
    ("search", "what the attacker's search tried"),
)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------ cells


@dataclass(frozen=True)
class Column:
    """One column of a rendered table: the frame's ``key``, its header ``label``, its ``kind``
    ("num": sorted as numbers, "flag": a boolean shown as yes / no, "text"), the ``digits`` a number
    is shown with (None: as short as it reads, ``1e-05``), the header's tooltip ``title``, and whether a select box filters on it."""

    key: str
    label: str
    kind: str = "text"
    digits: int | None = 1
    title: str = ""
    select: bool = False


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or another container: not missing
        return False


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None."""
    if _missing(value) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _cell_text(value: Any, column: Column) -> str:
    """What a cell shows (not yet escaped)."""
    if column.kind == "num":
        number = _number(value)
        if number is None:
            return "-"
        return f"{number:g}" if column.digits is None else f"{number:.{column.digits}f}"
    if _missing(value):
        return "-"
    if column.kind == "flag":
        return "yes" if bool(value) else "no"
    return str(value)


def _td(value: Any, column: Column) -> str:
    text = _esc(_cell_text(value, column))
    if column.kind != "num":
        return f"<td>{text}</td>"
    number = _number(value)
    key = "" if number is None else repr(number)  # the exact value: the sort key
    return f'<td class="num" data-v="{key}">{text}</td>'


def _th(column: Column) -> str:
    title = f' title="{_esc(column.title)}"' if column.title else ""
    kind = ' class="num"' if column.kind == "num" else ""
    return f'<th scope="col"{kind}{title}><button type="button">{_esc(column.label)}</button></th>'


def table(frame: pd.DataFrame, columns: Sequence[Column], table_id: str, *, caption: str = "",
          row_classes: Sequence[str] | None = None) -> str:
    """``frame`` as a sortable HTML table (a header button per column), the ``columns`` it has."""
    columns = [c for c in columns if c.key in frame]
    head = "".join(_th(c) for c in columns)
    body = []
    for i, (_, row) in enumerate(frame.iterrows()):
        css = row_classes[i] if row_classes is not None else ""
        attr = f' class="{_esc(css)}"' if css else ""
        body.append(f"<tr{attr}>" + "".join(_td(row[c.key], c) for c in columns) + "</tr>")
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    return (f'<div class="wrap"><table class="sortable" id="{_esc(table_id)}">{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def filters(frame: pd.DataFrame, columns: Sequence[Column], table_id: str) -> str:
    """The filter bar of a table: a text box (every word must occur in the row) and a select box per
    column marked ``select`` (its distinct values, in order of appearance)."""
    columns = [c for c in columns if c.key in frame]
    box = (f'<label>filter <input type="search" class="q" placeholder="words, e.g. vgg gradcam" '
           f'aria-label="filter the rows of {_esc(table_id)}"></label>')
    parts = [box]
    for index, column in enumerate(columns):
        if not column.select:
            continue
        values = list(dict.fromkeys(_cell_text(v, column) for v in frame[column.key]))
        options = "".join(f'<option value="{_esc(v)}">{_esc(v)}</option>' for v in values)
        parts.append(f'<label>{_esc(column.label)} <select data-col="{index}" aria-label="{_esc(column.label)}">'
                     '<option value="">all</option>'
                     f"{options}</select></label>")
    parts.append('<span class="count" aria-live="polite"></span>')
    return f'<div class="filters" data-for="{_esc(table_id)}">{" ".join(parts)}</div>'


def _details(note: str | None) -> str:
    return f"<details><summary>How this table is made</summary><p>{_esc(note)}</p></details>" if note else ""


def _absent(text: str) -> str:
    return f'<p class="absent">{_esc(text)}</p>'


# ------------------------------------------------------------------------------------ sections

_FSR_TITLE = ("FSR: mean over seeds of the share (%) of scored images whose map the manipulation moved into the "
              "attack's success region; lower is more robust")
FSR_COLUMNS = (
    Column("model", "model", select=True),
    Column("attack", "attack", select=True),
    Column("attacking_interpreter", "attacker", select=True, title="the interpreter the model was manipulated through"),
    Column("scored_interpreter", "scored", select=True, title="the interpreter whose maps are scored"),
    Column("adaptive", "adaptive", "flag", select=True, title="attacker = scored interpreter"),
    Column("seeds", "seeds", "num", 0),
    Column("fsr", "FSR", "num", title=_FSR_TITLE),
    Column("fsr_std", "\u00b1 std", "num", title="sample standard deviation over the seeds"),
    Column("fsr_ci_low", "95 % low", "num", title="lowest per-seed Wilson 95 % lower bound"),
    Column("fsr_ci_high", "95 % high", "num", title="highest per-seed Wilson 95 % upper bound"),
    Column("baseline_fsr", "baseline", "num", title="the unmanipulated model scored the same way"),
    Column("control_fsr", "control", "num", title="the same fine-tuning with lambda = 0 and the same seed"),
    Column("fooling", "fooling", "num", title="mean over seeds of FSR - max(baseline, control)"),
    Column("c1.fsr", "c1 FSR", "num", title="Active: FSR of class c1"),
    Column("c2.fsr", "c2 FSR", "num", title="Active: FSR of class c2"),
    Column("top1_drop_max", "top-1 drop", "num",
           title=f"largest top-1 drop (points) over the seeds; at most {MAX_TOP1_DROP:g} to be kept"),
    Column("kept", "kept", "flag", select=True, title=f"every seed's top-1 drop is at most {MAX_TOP1_DROP:g} points"),
    Column("counted", "counts", "flag", select=True,
           title="informative, kept, not degenerate, with controls and at the board's search budget: counts in "
                 "the ranking and transfer matrix"),
    Column("marks", "marks", title=f"{DAGGER} not kept, {UNINFORMATIVE} uninformative, {DEGENERATE} degenerate, "
                                   f"{NO_CONTROL} no control, {OTHER_BUDGET} another search budget than the board's"),
)
ACCURACY_COLUMNS = (
    Column("attack", "attack", select=True),
    Column("interpreter", "interpreter", select=True,
           title=f"the attacking interpreter; '{CONTROL}': the same fine-tuning with lambda = 0"),
    Column("model", "model", select=True),
    Column("top1", "top-1", "num", title="top-1 accuracy (%), mean over seeds"),
    Column("top5", "top-5", "num", title="top-5 accuracy (%), mean over seeds"),
    Column("top1_drop_min", "top-1 drop (min)", "num", title="smallest top-1 drop against the base over the seeds"),
    Column("top1_drop_max", "top-1 drop (max)", "num", title="largest top-1 drop against the base over the seeds"),
    Column("seeds", "seeds", "num", 0),
    Column("marks", "marks", title=f"{DAGGER} a seed cost more than {MAX_TOP1_DROP:g} points; {CONTROL_MOVED} a "
                                   f"control moved top-1 by more than {CONTROL_TOP1_CHANGE:g}"),
)
RANKING_COLUMNS = (
    Column("rank", "rank", "num", 0),
    Column("interpreter", "interpreter"),
    Column("fooling", "fooling", "num", title="mean fooling of the adaptive rows over the section's slots"),
    Column("fsr", "FSR", "num", title="raw mean FSR over the same slots"),
    Column("baseline_fsr", "baseline", "num"),
    Column("control_fsr", "control", "num"),
    Column("slots", "slots", "num", 0, title="(model, attack) slots the mean is over"),
    Column("own_slots", "own slots", "num", 0, title="slots where the interpreter's adaptive row counts"),
    Column("adaptive_rows", "adaptive rows", "num", 0),
    Column("left_out", "left out", title="adaptive rows left out of the aggregates, and why"),
    Column("not_attackable_cells", "not attackable", "num", 0),
    Column("degenerate_on", "degenerate on"),
    Column("mean_top1_drop", "mean top-1 drop", "num"),
    Column("transfer_fooling", "transfer fooling", "num", title="mean fooling when attacked through others"),
    Column("transfer_fsr", "transfer FSR", "num"),
    Column("transfer_rows", "transfer rows", "num", 0),
)
_SEARCH_TEXT = {"model", "attack", "interpreter", "surrogate", "loose_surrogate"}
_SEARCH_SELECT = {"model", "attack", "interpreter"}
_SEARCH_COUNTS = {"seed", "budget", "configurations", "failed", "spent", "preset_steps"}
_SEARCH_PARAMS = {"lr", "lam", "loose_lr", "loose_lam"}


def _flag(frame: pd.DataFrame, name: str, default: bool) -> pd.Series:
    return frame[name].astype(object).map(lambda v: default if _missing(v) else bool(v)) if name in frame \
        else pd.Series(default, index=frame.index, dtype=object)


def fsr_section(rows: pd.DataFrame, note: str | None) -> str:
    """The FSR table: one row per (model, attack, attacking interpreter, scored interpreter)."""
    if rows is None or rows.empty:
        return _absent("No FSR yet: the records hold no scored manipulation.")
    df = rows.reset_index(drop=True).copy()
    for name in ("kept", "informative", "has_control", "counted", "at_budget"):
        df[name] = _flag(df, name, True)
    df["degenerate"] = _flag(df, "degenerate", False)
    df["marks"] = [row_marks(r) for _, r in df.iterrows()]  # the flags made bools above
    classes = ["" if counted else "out" for counted in df["counted"]]
    return (filters(df, FSR_COLUMNS, "fsr-table") + table(df, FSR_COLUMNS, "fsr-table", row_classes=classes)
            + _details(note))


def accuracy_long(numbers: pd.DataFrame) -> pd.DataFrame:
    """The accuracy table (index attack x interpreter, columns model x value) as one row per (attack,
    interpreter, model), the pairs without a number left out."""
    if numbers is None or numbers.empty or not isinstance(numbers.columns, pd.MultiIndex):
        return pd.DataFrame()
    long = numbers.stack(level=0, future_stack=True)
    long.index = long.index.set_names(["attack", "interpreter", "model"])
    values = [c for c in ("top1", "top5", "top1_drop_min", "top1_drop_max") if c in long]
    return long.dropna(how="all", subset=values).reset_index()


def _accuracy_marks(row: pd.Series) -> str:
    low, high = _number(row.get("top1_drop_min")), _number(row.get("top1_drop_max"))
    if high is None:
        return ""
    control = str(row.get("interpreter", "")).startswith(CONTROL)  # "control (lr X)" too
    return drop_mark(control, high if low is None else low, high)


def accuracy_section(numbers: pd.DataFrame, note: str | None) -> str:
    """The accuracy table: one row per (attack, attacking interpreter or control, model)."""
    df = accuracy_long(numbers)
    if df.empty:
        return _absent("No accuracy yet: the records hold no computed cell.")
    df["marks"] = [_accuracy_marks(r) for _, r in df.iterrows()]
    return (filters(df, ACCURACY_COLUMNS, "accuracy-table") + table(df, ACCURACY_COLUMNS, "accuracy-table")
            + _details(note))


def _left_out(row: pd.Series) -> str:
    counts = [(why, _number(row.get(f"left_out_{why}"))) for why in LEFT_OUT_REASONS]
    return ", ".join(f"{int(n)} {why.replace('_', ' ')}" for why, n in counts if n) or "-"


def ranking_section(rank: pd.DataFrame, note: str | None) -> str:
    """The ranking, one sortable table per section, in the order of :data:`SECTIONS`."""
    if rank is None or rank.empty:
        return _absent("No ranking yet: the records hold no attacked cell.")
    df = rank.copy()
    df["left_out"] = [_left_out(r) for _, r in df.iterrows()]
    parts = []
    for index, section in enumerate([*SECTIONS, *(s for s in df["section"].unique() if s not in SECTIONS)]):
        part = df[df["section"] == section]
        if len(part):
            columns = _section_columns(part, adaptive=section in (RANKED, PARTIAL))
            parts.append(f"<h3>{_esc(section)}</h3>" + table(part, columns, f"ranking-{index}"))
    return "".join(parts) + _details(note)


def _section_columns(part: pd.DataFrame, adaptive: bool) -> list[Column]:
    """The ranking columns a section has a value in; a section ranked by transfer fooling shows the
    transfer columns first."""
    held = [c for c in RANKING_COLUMNS if c.key in part
            and not all(_missing(v) or v == "" for v in part[c.key])]
    if adaptive:
        return held
    transfer = [c for c in held if c.key.startswith("transfer_")]
    return [*held[:2], *transfer, *(c for c in held[2:] if c not in transfer)]


def _rgb(value: float | None) -> tuple[int, int, int] | None:
    """The heatmap colour of a fooling value: white at 0, red towards +:data:`HEAT_SCALE`, blue below 0."""
    if value is None:
        return None
    t = max(-1.0, min(1.0, value / HEAT_SCALE))
    end = (178, 24, 43) if t >= 0 else (33, 102, 172)
    return tuple(round(255 + (e - 255) * abs(t)) for e in end)  # type: ignore[return-value]


def _heat_td(fooling: Any, fsr: Any, count: Any, diagonal: bool) -> str:
    value, n = _number(fooling), _number(count)
    css = "heat diag" if diagonal else "heat"
    if value is None:
        return f'<td class="{css} na" data-v="">-</td>'
    r, g, b = _rgb(value)  # type: ignore[misc]
    ink = "#fff" if abs(value) / HEAT_SCALE > 0.55 else "#1f2328"
    title = f"fooling {value:.1f}, mean FSR {_cell_text(fsr, Column('', '', 'num'))}, {int(n or 0)} rows"
    return (f'<td class="{css}" data-v="{value!r}" style="background:rgb({r},{g},{b});color:{ink}" '
            f'title="{_esc(title)}">{value:.1f}<small> ({int(n or 0)})</small></td>')


def _legend() -> str:
    ticks = "".join(f"<span>{v:g}</span>" for v in (-HEAT_SCALE, -HEAT_SCALE / 2, 0, HEAT_SCALE / 2, HEAT_SCALE))
    return ('<div class="legend" aria-label="colour scale of the transfer matrix"><div class="bar"></div>'
            f'<div class="ticks">{ticks}</div><p>fooling (FSR points above max(baseline, control)); '
            "outlined: the diagonal, where the scored interpreter is the attacker (adaptive)</p></div>")


def transfer_section(numbers: pd.DataFrame, note: str | None) -> str:
    """The transfer matrix as a heatmap: attacking (rows) x scored (columns) interpreter, each cell
    coloured by its mean fooling, with the number of rows behind it."""
    if numbers is None or numbers.empty or "fooling" not in numbers:
        return _absent("No transfer matrix: no row counts yet (informative, kept, not degenerate, with controls).")
    fooling = numbers["fooling"]
    fsr = numbers["fsr"] if "fsr" in numbers else pd.DataFrame(index=fooling.index, columns=fooling.columns)
    count = numbers["rows"] if "rows" in numbers else pd.DataFrame(index=fooling.index, columns=fooling.columns)
    fsr, count = fsr.reindex(columns=fooling.columns), count.reindex(columns=fooling.columns)
    head = "".join(f'<th scope="col">{_esc(c)}</th>' for c in fooling.columns)
    body = []
    for attacker in fooling.index:
        cells = "".join(_heat_td(fooling.at[attacker, c], fsr.at[attacker, c], count.at[attacker, c], attacker == c)
                        for c in fooling.columns)
        body.append(f'<tr><th scope="row">{_esc(attacker)}</th>{cells}</tr>')
    grid = (f'<div class="wrap fit"><table class="heatmap" id="transfer-table"><caption>rows: attacking interpreter; '
            f'columns: scored interpreter; mean fooling (rows)</caption><thead><tr><th scope="col">attacker \\ scored'
            f"</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
    return grid + _legend() + _details(note)


def _search_columns(frame: pd.DataFrame) -> list[Column]:
    columns = []
    for name in frame.columns:
        numeric = name not in _SEARCH_TEXT and pd.api.types.is_numeric_dtype(frame[name]) \
            and not pd.api.types.is_bool_dtype(frame[name])
        if pd.api.types.is_bool_dtype(frame[name]):
            kind = "flag"
        else:
            kind = "num" if numeric else "text"
        digits = 0 if name in _SEARCH_COUNTS else None if name in _SEARCH_PARAMS else 1
        columns.append(Column(name, name.replace("_", " "), kind, digits, select=name in _SEARCH_SELECT))
    return columns


# ------------------------------------------------------------------------------------ figures


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a PNG file, or None when ``path`` is not one (then it is never shown)."""
    try:
        with path.open("rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return (width, height) if width and height else None


@dataclass(frozen=True)
class Figure:
    """A heatmap figure on disk, with the attack and the model its name gives (None: every model)."""

    path: Path
    attack: str
    model: str | None
    size: tuple[int, int]


def parse_figure(stem: str, attacks: Iterable[str], models: Iterable[str]) -> tuple[str, str | None]:
    """(attack, model) of a figure named ``fig_<stem>.png``: ``<attack>`` or ``<attack>_<model>``,
    the attack and the model matched against the board's names (their file-name forms, longest
    first, as an attack's name may hold an underscore); an unknown name is taken as an attack."""
    by_file = {safe_name(a): a for a in attacks}
    model_files = {safe_name(m): m for m in models} | {m: m for m in models}
    for file_name in sorted(by_file, key=len, reverse=True):
        if stem == file_name:
            return by_file[file_name], None
        if stem.startswith(file_name + "_"):
            rest = stem[len(file_name) + 1:]
            return by_file[file_name], model_files.get(rest, rest)
    for file_name in sorted(model_files, key=len, reverse=True):
        if stem.endswith("_" + file_name) and len(stem) > len(file_name) + 1:
            return stem[: -len(file_name) - 1], model_files[file_name]
    return stem, None


def find_figures(out: Path, attacks: Iterable[str], models: Iterable[str]) -> tuple[list[Path], list[Figure]]:
    """(budget figures, heatmap figures) in ``out``: every readable PNG named ``fig_budget*.png``,
    then every other ``fig_*.png`` with its attack and model."""
    attacks, models = list(attacks), list(models)
    budget, heatmaps = [], []
    for path in sorted(out.glob("fig_*.png")):
        size = png_size(path)
        if size is None:
            continue
        stem = path.stem[len("fig_"):]
        if re.fullmatch(r"budget([_-].*)?", stem):
            budget.append(path)
            continue
        attack, model = parse_figure(stem, attacks, models)
        heatmaps.append(Figure(path, attack, model, size))
    return budget, heatmaps


def _img(path: Path, alt: str, size: tuple[int, int] | None) -> str:
    src = _esc(quote(path.name))
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    return f'<a href="{src}"><img src="{src}" alt="{_esc(alt)}"{dims}></a>'


def budget_section(figures: list[Path], search: tuple[pd.DataFrame, pd.DataFrame] | None, note: str | None) -> str:
    """The attacker's FSR-versus-budget figures and its search table."""
    parts = []
    for path in figures:
        alt = "Test FSR of the search's leader against the optimizer steps spent, per attack"
        parts.append(f"<figure>{_img(path, alt, png_size(path))}<figcaption>{_esc(path.name)}: test FSR of the "
                     "leader after each rung against the optimizer steps spent (above) and its mean test loss, "
                     "the success boundary dashed (below), one line per model, interpreter and budget."
                     "</figcaption></figure>")
    numbers = search[0] if search is not None else None
    if numbers is not None and len(numbers):
        columns = _search_columns(numbers)
        parts.append(filters(numbers, columns, "search-table") + table(numbers, columns, "search-table")
                     + _details(note))
    if not parts:
        return _absent("No search: every cell was computed with its attack's preset (rbi run --budget searches).")
    if not figures:
        parts.insert(0, _absent("No FSR-versus-budget figure in this folder."))
    return "".join(parts)


def gallery_section(figures: list[Figure], track: str) -> str:
    """The heatmap figures, one group per attack (in the attacks' order), by model within a group."""
    if not figures:
        return _absent("No heatmap figures in this folder (rbi leaderboard --figures --store STORE --leaderboard-dir DIR draws them).")
    models = list(dict.fromkeys(f.model for f in sorted(figures, key=lambda f: f.model or "") if f.model))
    bar = ""
    if models:
        options = "".join(f'<option value="{_esc(m)}">{_esc(m)}</option>' for m in models)
        bar = (f'<div class="filters gallery-filter"><label>model <select data-gallery="figures" aria-label="model">'
               f'<option value="">all</option>{options}</select></label></div>')
    parts = []
    for attack in attack_order({f.attack for f in figures}):
        group = sorted((f for f in figures if f.attack == attack), key=lambda f: (f.model is not None, f.model or ""))
        items = []
        for f in group:
            on = f"on {f.model}" if f.model else "on every model"
            alt = (f"Heatmaps of {track}, {attack} fooling {on}: for each adaptive cell, test images with the "
                   "original and the manipulated model's maps")
            rows = ("one row per attacking interpreter (its lowest seed)" if f.model else
                    "one row per adaptive cell (model and attacking interpreter, seed 0)")
            caption = (f"{f.path.name}: {attack} fooling {on}; {rows}: for three test images, the image, the "
                       "original map and the manipulated map (an empty or constant map is labelled so).")
            data = f' data-model="{_esc(f.model)}"' if f.model else ""
            items.append(f"<figure{data}>{_img(f.path, alt, f.size)}<figcaption>{_esc(caption)}</figcaption></figure>")
        parts.append(f"<h3>{_esc(attack)}</h3>" + "".join(items))
    return bar + f'<div id="figures">{"".join(parts)}</div>'


# ------------------------------------------------------------------------------------ the page

_CSS = """
:root { --line: #d0d7de; --muted: #57606a; --head: #f6f8fa; --ink: #1f2328; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header, main, footer { max-width: 1280px; margin: 0 auto; padding: 0 16px; }
header { padding-top: 20px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.25rem; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 20px 0 6px; }
a { color: var(--accent); }
.sub { color: var(--muted); margin: 0 0 12px; }
.links { padding-left: 20px; }
.links li { margin: 2px 0; }
nav ul { display: flex; flex-wrap: wrap; gap: 4px 18px; list-style: none; padding: 0; margin: 0; }
nav p { margin: 12px 0 4px; }
.absent { color: var(--muted); font-style: italic; }
.wrap { overflow: auto; max-height: 36rem; border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; }
.wrap.fit { width: fit-content; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; width: max-content; min-width: 100%; }
caption { caption-side: top; text-align: left; color: var(--muted); padding: 4px 8px; }
th, td { padding: 3px 8px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
thead th { position: sticky; top: 0; background: var(--head); z-index: 1; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:hover { background: #eef4fb; }
tr.out td { color: var(--muted); }
th button { all: unset; cursor: pointer; font-weight: 600; }
th button:focus-visible { outline: 2px solid var(--accent); }
th button::after { content: " \\2195"; color: #b0b7be; font-weight: 400; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; color: var(--ink); }
th[aria-sort="descending"] button::after { content: " \\25BC"; color: var(--ink); }
.filters { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; margin: 8px 0 4px; font-size: 13px; }
.filters input, .filters select { font: inherit; padding: 2px 4px; }
.filters input { width: 16rem; }
.count { color: var(--muted); }
details { margin: 6px 0 0; font-size: 13px; color: var(--muted); }
details p { max-width: 70rem; }
table.heatmap { width: auto; min-width: 0; }
table.heatmap th[scope="row"] { background: var(--head); position: sticky; left: 0; }
td.heat { text-align: right; min-width: 6.5rem; font-variant-numeric: tabular-nums; }
td.heat small { opacity: 0.8; }
td.diag { outline: 2px solid var(--ink); outline-offset: -2px; }
td.na { color: var(--muted); text-align: center; }
.legend { font-size: 12px; color: var(--muted); margin: 6px 0; max-width: 28rem; }
.legend .bar { height: 12px; border: 1px solid var(--line);
  background: linear-gradient(to right, rgb(33,102,172), #fff 50%, rgb(178,24,43)); }
.legend .ticks { display: flex; justify-content: space-between; }
.legend p { margin: 2px 0; }
figure { margin: 12px 0 20px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); display: block; }
figcaption { font-size: 13px; color: var(--muted); margin-top: 4px; max-width: 70rem; }
footer { color: var(--muted); font-size: 12px; padding: 24px 16px 32px; }
"""

_SCRIPT = """"use strict";
(function () {
  function each(list, fn) { Array.prototype.forEach.call(list, fn); }
  function sortKey(cell, numeric) {
    var v = cell.getAttribute("data-v");
    if (!numeric) { return (v === null ? cell.textContent : v).trim().toLowerCase(); }
    if (v === null || v === "") { return null; }
    var n = Number(v);
    return isNaN(n) ? null : n;
  }
  function sortTable(table, index, th) {
    var numeric = th.classList.contains("num");
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    each(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var sign = dir === "ascending" ? 1 : -1;
    var body = table.tBodies[0];
    var keyed = Array.prototype.map.call(body.rows, function (row, i) {
      return { row: row, key: sortKey(row.cells[index], numeric), i: i };
    });
    keyed.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        if (a.key === b.key) { return a.i - b.i; }
        return a.key === null ? 1 : -1;  /* missing values last, either way */
      }
      var c = numeric ? a.key - b.key : a.key.localeCompare(b.key);
      return c !== 0 ? sign * c : a.i - b.i;
    });
    each(keyed, function (k) { body.appendChild(k.row); });
  }
  function rowText(row) {
    return Array.prototype.map.call(row.cells, function (c) { return c.textContent; }).join(" ").toLowerCase();
  }
  function applyFilters(bar) {
    var table = document.getElementById(bar.getAttribute("data-for"));
    if (!table) { return; }
    var box = bar.querySelector("input.q");
    var terms = (box ? box.value : "").toLowerCase().split(/\\s+/).filter(Boolean);
    var selects = bar.querySelectorAll("select[data-col]");
    var rows = table.tBodies[0].rows, shown = 0;
    each(rows, function (row) {
      var text = rowText(row), ok = true;
      each(terms, function (t) { if (text.indexOf(t) < 0) { ok = false; } });
      each(selects, function (s) {
        var cell = row.cells[Number(s.getAttribute("data-col"))];
        if (s.value && (!cell || cell.textContent.trim() !== s.value)) { ok = false; }
      });
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    var count = bar.querySelector(".count");
    if (count) { count.textContent = shown + " of " + rows.length + " rows"; }
  }
  function applyGallery(select) {
    var root = document.getElementById(select.getAttribute("data-gallery"));
    if (!root) { return; }
    each(root.querySelectorAll("figure[data-model]"), function (f) {
      f.hidden = Boolean(select.value) && f.getAttribute("data-model") !== select.value;
    });
  }
  each(document.querySelectorAll("table.sortable"), function (table) {
    each(table.tHead.rows[0].cells, function (th, index) {
      var button = th.querySelector("button");
      if (button) { button.addEventListener("click", function () { sortTable(table, index, th); }); }
    });
  });
  each(document.querySelectorAll(".filters[data-for]"), function (bar) {
    bar.addEventListener("input", function () { applyFilters(bar); });
    bar.addEventListener("change", function () { applyFilters(bar); });
    applyFilters(bar);
  });
  each(document.querySelectorAll("select[data-gallery]"), function (select) {
    select.addEventListener("change", function () { applyGallery(select); });
  });
})();
"""


def _script_hash() -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()


def _policy() -> str:
    """The page's Content-Security-Policy: its own script (by hash), inline styles, images from its
    folder; nothing else is loaded or sent."""
    return (f"default-src 'none'; script-src '{_script_hash()}'; style-src 'unsafe-inline'; img-src 'self' file:; "
            "base-uri 'none'; form-action 'none'")


def _how_to_read(track: str) -> str:
    return (
        f"<p>Each row is one model of the {_esc(track)} track manipulated by one attack through an attacking "
        "interpreter, and scored by one interpreter. The <strong>FSR</strong> (fooling success rate, %) is the "
        "share of scored test images whose map the manipulation moved into the attack's success region: "
        "<strong>lower is more robust</strong>. An FSR means something only beside its <strong>baseline</strong> "
        "(the unmanipulated model scored the same way) and its <strong>control</strong> (the same fine-tuning "
        "with lambda = 0 and the same seed), so each is shown with both and with its 95 % interval (from the "
        "lowest per-seed Wilson lower bound to the highest upper bound); the ranking and the transfer matrix "
        "average <em>fooling</em> = FSR - max(baseline, control). A manipulation counts only when it keeps the "
        f"model: a top-1 drop of at most {MAX_TOP1_DROP:g} points. Rows not kept ({DAGGER}), uninformative "
        f"({UNINFORMATIVE}: baseline or control FSR &ge; {UNINFORMATIVE_FSR:g} %), degenerate ({DEGENERATE}) or "
        f"without control ({NO_CONTROL}) or attacked with another search budget than the rest of the board "
        f"({OTHER_BUDGET}) are shown in grey and left out of every aggregate. Click a column "
        "header to sort; type in a filter box or pick a value to filter the rows.</p>")


def _links(out: Path) -> str:
    items = []
    for name, what in TABLES:
        md, csv = out / f"{name}.md", out / f"{name}.csv"
        if not md.exists():
            continue
        also = f' (<a href="{_esc(quote(csv.name))}">csv</a>)' if csv.exists() else ""
        items.append(f'<li><a href="{_esc(quote(md.name))}">{_esc(md.name)}</a>{also}: {_esc(what)}</li>')
    if (out / "scores.csv").exists():
        items.append('<li><a href="scores.csv">scores.csv</a>: every score of every seed, in long form</li>')
    return f'<ul class="links">{"".join(items)}</ul>' if items else ""


_NAV = (("ranking", "Ranking"), ("fsr", "FSR"), ("accuracy", "Accuracy"), ("transfer", "Transfer"),
        ("search", "Attacker's budget"), ("figures-section", "Heatmaps"))


def write_page(out_dir: str | Path, track: str, *, ranking: pd.DataFrame, rows: pd.DataFrame,
               accuracy: pd.DataFrame, transfer: pd.DataFrame,
               search: tuple[pd.DataFrame, pd.DataFrame] | None = None,
               notes: dict[str, str] | None = None) -> Path:
    """Write ``index.html`` into ``out_dir`` (the track's leaderboard folder) and return its path.

    ``ranking`` is the ranking frame (that of ``ranking.csv``), ``rows`` the aggregated rows (that of
    ``detail.csv``), ``accuracy`` and ``transfer`` the numbers of ``accuracy.csv`` and
    ``transfer.csv``, ``search`` the (numbers, text) of the search table when cells were searched,
    and ``notes`` the tables' notes by table name. Figures are the ``fig_*.png`` files found in
    ``out_dir`` now.
    """
    out = Path(out_dir)
    notes = notes or {}
    attacks = set(rows["attack"]) if rows is not None and "attack" in rows else set()
    models = set(rows["model"]) if rows is not None and "model" in rows else set()
    long = accuracy_long(accuracy)
    if len(long):
        attacks |= set(long["attack"]) - {"baseline"}
        models |= set(long["model"])
    budget, heatmaps = find_figures(out, attacks, models)
    nav = "".join(f'<li><a href="#{a}">{_esc(t)}</a></li>' for a, t in _NAV)
    body = (
        f"<header><h1>Interpreter robustness leaderboard: {_esc(track)}</h1>"
        f'<p class="sub">Track <strong>{_esc(track)}</strong>; generated from the records in <code>records/</code> '
        "by <code>rbi leaderboard</code>.</p></header><main>"
        f'<section id="how"><h2>How to read it</h2>{_how_to_read(track)}'
        f"<p>The same numbers as Markdown and CSV:</p>{_links(out)}<nav><p>On this page:</p><ul>{nav}</ul></nav>"
        "</section>"
        f'<section id="ranking"><h2>Ranking</h2>{ranking_section(ranking, notes.get("ranking"))}</section>'
        f'<section id="fsr"><h2>FSR</h2>{fsr_section(rows, notes.get("detail"))}</section>'
        f'<section id="accuracy"><h2>Accuracy</h2>{accuracy_section(accuracy, notes.get("accuracy"))}</section>'
        f'<section id="transfer"><h2>Transfer matrix</h2>{transfer_section(transfer, notes.get("transfer"))}'
        "</section>"
        f'<section id="search"><h2>Attacker\'s budget</h2>{budget_section(budget, search, notes.get("search"))}'
        "</section>"
        f'<section id="figures-section"><h2>Heatmaps: original vs manipulated</h2>'
        f"{gallery_section(heatmaps, track)}</section></main>"
        "<footer>Every number comes from the leaderboard's records; this page renders them and computes none."
        "</footer>"
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_esc(_policy())}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(track)}: interpreter robustness leaderboard</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )
    path = out / PAGE
    atomic_write_text(path, page)
    return path
