"""The ``rbi`` command line: run the benchmark grid, build the leaderboard, list what is registered.

    rbi run                 train or load the tiny base models, run the default grid, write the leaderboard
    rbi leaderboard         rebuild leaderboard/<track>/ from its records (adding a store's cells first)
    rbi check               recompute a few cells and compare them with the committed leaderboard
    rbi verify              recompute a submitted interpreter's leaderboard row and compare it with the committed one
    rbi list                the registered interpreters, attacks, tracks and models
    rbi train               re-train the tiny base models (the published weights) and write their manifest
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustbench_interp.grid import CHECK_CELLS, CHECK_SCORERS, RUN_SCORERS
from robustbench_interp.options import (
    add_options,
    check_attack_names,
    check_interpreter_names,
    overrides,
    selected_attacks,
    selected_budget,
    selected_models,
    selected_seeds,
    split_list,
)
from robustbench_interp.regression import DEFAULT_TOLERANCES, FLOORS, SPREAD_FACTOR

if TYPE_CHECKING:
    from robustbench_interp.store import Store

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rbi", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the benchmark grid and write the leaderboard")
    add_options(run.add_argument)  # the bare names of the plugin's --rbi-* options
    run.add_argument("--score-with", action="append", default=None, metavar="SPEC",
                     help="interpreter scored on every manipulated model (transfer; repeatable; 'all' for every "
                          "registered one; default: " + ", ".join(RUN_SCORERS) + ")")
    run.add_argument("--grid", choices=("quick", "main", "leaderboard"), default="quick",
                     help="quick (default): the main job on one model (tiny: resnet) for seed 0 with the presets, "
                          "about 10 minutes on 2 cores; main: every attack x model through --interpreter (default "
                          "Grad-CAM) for the track's seeds, the committed leaderboard's cells; leaderboard: every "
                          "registered differentiable interpreter attacking")
    run.add_argument("--leaderboard-dir", default=None,
                     help="where <track>/ of the leaderboard goes (default: STORE/leaderboard, beside the results; "
                          "--leaderboard-dir leaderboard rewrites the committed one)")
    run.add_argument("--no-figures", action="store_true", help="skip the heatmap figures")
    run.add_argument("--executor", choices=("serial", "ray"), default="serial",
                     help="serial: compute the cells in this process (default); ray: send each cell to a Ray "
                          "cluster as a task against the shared --store (pip install 'robustbench_interp[ray]')")
    run.add_argument("--address", default=None,
                     help="with --executor ray: the address of a running Ray cluster (default: start a local one)")

    board = sub.add_parser("leaderboard", help="rebuild the leaderboard tables from its records, adding a "
                                               "store's cells first when --store is given")
    add_options(board.add_argument, names=["track", "device", "eval-size", "data-root"])
    board.add_argument("--store", default=None, dest="rbi_store",
                       help="a results store whose ok cells join the leaderboard's records (default: none; the "
                            "tables are rebuilt from the records alone)")
    board.add_argument("--leaderboard-dir", default="leaderboard")
    board.add_argument("--figures", action="store_true",
                       help="also draw the heatmap figures (needs --store with every cell's weights)")

    check = sub.add_parser("check", help="recompute a few cells and compare them with the committed leaderboard "
                                         "(a regression check; exit status 1 when a number moved)")
    add_options(check.add_argument, names=["track", "device", "eval-size", "accuracy-size", "data-root", "seeds"])
    check.add_argument("--leaderboard-dir", default="leaderboard", help="where the committed leaderboard/<track>/ is")
    check.add_argument("--cells", default=None, metavar="MODEL:ATTACK:INTERP,...",
                       help="cells to recompute (default: " + ",".join(CHECK_CELLS) + ")")
    check.add_argument("--score-with", default=None, metavar="I1,I2",
                       help="interpreters scored on each cell beside the attacking one (default: "
                            + ",".join(CHECK_SCORERS) + ")")
    check.add_argument("--fsr-tolerance", type=float, default=None,
                       help="FSR points a recomputed FSR may move (default: derived per number from the committed "
                            f"seeds' spread, max({SPREAD_FACTOR:g} x std, {FLOORS['fsr']:g}); "
                            f"{DEFAULT_TOLERANCES['fsr']:g} with fewer than two seeds)")
    check.add_argument("--top1-tolerance", type=float, default=None,
                       help="top-1 points the manipulated model's accuracy may move (default: derived from the "
                            f"committed seeds' spread, max({SPREAD_FACTOR:g} x std, {FLOORS['top1']:g}); "
                            f"{DEFAULT_TOLERANCES['top1']:g} with fewer than two seeds). The base model's numbers "
                            "must match exactly")
    check.add_argument("--store", default=None, dest="rbi_store",
                       help="where the recomputed cells go (default: a temporary folder, removed afterwards)")

    verify = sub.add_parser("verify", help="recompute a submitted interpreter's leaderboard row (its adaptive "
                                           "cells and its transfer scores) and compare it with the committed numbers")
    add_options(verify.add_argument, names=["track", "device", "eval-size", "accuracy-size", "data-root", "seeds",
                                            "models", "attacks"])
    verify.add_argument("--interpreter", required=True, metavar="SPEC",
                        help="the interpreter whose row is verified (a registered name or a 'package.module:attr' spec)")
    verify.add_argument("--leaderboard-dir", default="leaderboard", help="where the committed leaderboard/<track>/ is")
    verify.add_argument("--store", default=None, dest="rbi_store",
                        help="where the recomputed cells go (default: a temporary folder, removed afterwards)")

    sub.add_parser("list", help="list interpreters, attacks, tracks and models")
    _add_train_parser(sub)
    return parser


def _progress_printer():
    """A progress callback drawing one tqdm bar per manipulation, on stderr."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(what: str, done: int, total: int, info: dict[str, float]) -> None:
        if what == "grid":
            print(f"[rbi] cell {min(done + 1, total)}/{total}" if done < total else f"[rbi] grid done ({total} cells)",
                  file=sys.stderr, flush=True)
            return
        bar = bars.get(what)
        if bar is None:
            bar = bars[what] = tqdm(total=total, desc=what, file=sys.stderr, leave=False, mininterval=1.0)
        bar.update(done - bar.n)
        if info:
            penalty = info.get("penalty")  # None for a control (lambda = 0: no penalty computed)
            shown = {"config": info["config"]} if "config" in info else {}  # the attacker's search
            bar.set_postfix(**shown, ce=f"{info.get('ce', 0):.3f}", pen="-" if penalty is None else f"{penalty:.3f}",
                            refresh=False)
        if done >= total:
            bar.close()
            del bars[what]

    return progress


def run_cells(args: argparse.Namespace, track: str, models: list[str], attacks: list[str]) -> tuple[list, list[str]]:
    """The cells of ``rbi run`` and the interpreters scored on each: the main grid (Grad-CAM attacks,
    or the ``--interpreter`` selection, 'all': every registered one), or ``--grid leaderboard``."""
    from robustbench_interp.errors import ConfigError
    from robustbench_interp.grid import leaderboard_grid, main_grid, quick_grid

    kw = dict(seeds=selected_seeds(args.rbi_seeds), budget=selected_budget(args.rbi_budget),
              overrides=overrides(args.rbi_lr, args.rbi_lam, args.rbi_steps, args.rbi_cooldown))
    if args.grid == "leaderboard":
        if args.rbi_interpreter:
            raise ConfigError("--grid leaderboard chooses the attacking interpreters itself (every registered one); "
                              f"drop --interpreter {' '.join(args.rbi_interpreter)}, or use the default grid")
        grid = leaderboard_grid(track, models, attacks, args.score_with or (), **kw)
    else:
        build = quick_grid if args.grid == "quick" else main_grid
        grid = build(track, models, attacks, args.rbi_interpreter, args.score_with or (), **kw)
    check_interpreter_names(list(grid.scorers))
    return list(grid.cells), list(grid.scorers)


def _store_for_writing(path: str, option: str = "--store") -> Store:
    """The store at ``path``, created if needed; a path that cannot hold one is an error before any work."""
    import tempfile

    from robustbench_interp.errors import ConfigError
    from robustbench_interp.store import Store

    if not path or not path.strip():
        raise ConfigError(f"{option} is empty; give the folder where results go")
    root = Path(path)
    for folder in (root, *root.parents):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{option} {path!r}: {str(folder)!r} is a file, not a folder; give a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise ConfigError(f"{option} {path!r} cannot hold results: {exc.strerror or exc}; give a writable folder"
                          ) from None
    return Store(root)


def _store_for_reading(path: str) -> Store:
    """The store at ``path``, which must exist and be a folder (nothing is created)."""
    from robustbench_interp.errors import ConfigError
    from robustbench_interp.store import Store

    root = Path(path)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise ConfigError(f"--store {path!r} {what}; give the folder a run wrote its results to (rbi run --store)")
    return Store(root)


def _figures(bench, board, track: str, out: Path, trusted: Sequence[str] = (), *, force: bool = False
             ) -> dict[str, Path]:
    """Draw the figures of every cell of the leaderboard ``board`` when the run's store holds all of
    their weights; otherwise keep the figures as they are, and say so. Figures newer than every
    one of those weights are kept too (a re-run with nothing changed draws nothing) unless
    ``force``. Only registered interpreters and attacks and the ``trusted`` specs (of this command
    line) are built."""
    from robustbench_interp.config import CellConfig
    from robustbench_interp.figures import draw_figures, figure_path

    try:
        cells = [CellConfig.from_dict(r.config) for r in board.records(track=track, status="ok")]
    except Exception as exc:  # noqa: BLE001 - a record naming an attack that is not installed: no figures, tables still
        print(f"[rbi] figures not drawn: a record of {out} cannot be read as a cell here ({exc})", file=sys.stderr)
        return {}
    cells = [c for c in cells if not c.is_control]  # a control has no adaptive map to draw
    lacking = [c for c in cells if not bench.store.weights_path(bench.weights_key(c)).exists()]
    if lacking:
        print(f"[rbi] {len(lacking)} of the {len(cells)} cells of {out} have no manipulated weights in "
              f"{bench.store.root}: the figures are left as they are (rbi run --grid leaderboard redraws them)",
              file=sys.stderr, flush=True)
        return {}
    newest = max((bench.store.weights_path(bench.weights_key(c)).stat().st_mtime for c in cells), default=0.0)
    figures = {figure_path(out, c.attack, c.model) for c in cells}
    if not force and all(p.exists() and p.stat().st_mtime >= newest for p in figures):
        print(f"[rbi] the figures of {out} are newer than every manipulated model they show: kept "
              "(rbi leaderboard --figures --store STORE redraws them)", file=sys.stderr, flush=True)
        return {}
    return draw_figures(bench, cells, trusted, out)


def _probe(cells: list, scorers: list[str], track: str, model: str, device: str
           ) -> tuple[list, list[str], list[tuple[str, str]]]:
    """Run every plug-in interpreter of the grid once on a tiny batch through a random ``model`` of
    ``track`` on ``device`` (:mod:`robustbench_interp.probe`) before any work, and say at once which
    fail and why. The cells that cannot run are not computed (a control only when no other cell
    needs it) and count as failed: every cell of a refused interpreter, the adaptive cells of one
    that fails only with ``create_graph``; the rest of the grid carries on. Returns the cells and
    scorers left, and ``(label, reason)`` of each cell refused."""
    from robustbench_interp.probe import probe_interpreters

    attacked = [c for c in cells if not c.is_control]
    attackers = {c.interpreter for c in attacked}
    specs = [*((c.interpreter, dict(c.interpreter_params)) for c in attacked), *((s, {}) for s in scorers)]
    probe = probe_interpreters(specs, attacking=attackers, track=track, model=model, device=device)
    for line in probe.lines():
        print(f"[rbi] {line}", file=sys.stderr, flush=True)
    blocked = {**probe.not_attackable, **probe.refused}
    if not blocked:
        return cells, scorers, []
    print(f"[rbi] (probed in {probe.seconds:.1f} s, before any work)", file=sys.stderr, flush=True)
    kept = [c for c in attacked if c.interpreter not in blocked]
    needed = {c.control.cell_id for c in kept if c.search is None}  # a searched cell's control comes after it
    cells = [c for c in cells if (c.cell_id in needed if c.is_control else c.interpreter not in blocked)]
    refused = [(c.label, blocked[c.interpreter]) for c in attacked if c.interpreter in blocked]
    refused += [(f"scoring with {s}", probe.refused[s]) for s in scorers if s in probe.refused and s not in attackers]
    return cells, [s for s in scorers if s not in probe.refused], refused


def cmd_run(args: argparse.Namespace) -> int:
    from robustbench_interp.leaderboard import check_sizes, publish, records_store, write_leaderboard
    from robustbench_interp.runner import Runner

    started = time.perf_counter()
    track = args.rbi_track
    models = selected_models(track, args.rbi_models)
    if args.grid == "quick" and not args.rbi_models:
        from robustbench_interp.grid import quick_models

        models = quick_models(track, models)
    attacks = selected_attacks(args.rbi_attacks)
    check_attack_names(attacks)
    cells, scorers = run_cells(args, track, models, attacks)
    if args.executor == "ray":  # before any work: Ray must be there
        from robustbench_interp.executors import import_ray

        import_ray()
    elif args.address is not None:
        from robustbench_interp.errors import ConfigError

        raise ConfigError(f"--address {args.address} is the address of a Ray cluster; add --executor ray, or drop it")
    cells, scorers, refused = _probe(cells, scorers, track, models[0], args.rbi_device)
    if refused and not any(not c.is_control for c in cells):
        for label, _reason in refused:
            print(f"[rbi] failed: {label} (its interpreter fails on a tiny batch; reason above)", file=sys.stderr)
        print("[rbi] nothing left to compute: fix the interpreter and run again", file=sys.stderr)
        return 1
    attackers = list(dict.fromkeys(c.interpreter for c in cells))
    store = _store_for_writing(args.rbi_store)
    bench = Runner(store, device=args.rbi_device, eval_size=args.rbi_eval_size,
                   accuracy_size=args.rbi_accuracy_size, data_root=args.rbi_data_root,
                   retry_failed=not args.rbi_keep_failed, progress=_progress_printer())
    out = Path(args.leaderboard_dir or Path(args.rbi_store) / "leaderboard") / track
    board = records_store(_store_for_writing(str(out), option="--leaderboard-dir").root)
    check_sizes(board, track, (args.rbi_eval_size, args.rbi_accuracy_size))  # before any work
    todo = sum(not store.has(c.cell_id, retry_failed=not args.rbi_keep_failed) for c in cells)
    print(f"[rbi] grid {args.grid}, track {track}: {len(cells)} cells ({todo} to compute), models {models}, attacks "
          f"{attacks}, attacking interpreters {attackers}; scoring {len(scorers)} interpreters; store {store.root}; "
          f"leaderboard {out}", file=sys.stderr, flush=True)
    for name in models:
        bench.resources.base(track, name)  # trains (first run) or loads the base model, showing progress
    if args.executor == "ray":
        from robustbench_interp.executors import run_on_ray

        options = {"device": args.rbi_device, "eval_size": args.rbi_eval_size, "accuracy_size": args.rbi_accuracy_size,
                   "data_root": args.rbi_data_root, "retry_failed": not args.rbi_keep_failed}
        records = run_on_ray(cells, store=store, scorers=scorers, options=options, address=args.address,
                             progress=_progress_printer())
    else:
        records = bench.run_grid(cells, score_with=scorers)
    publish(store, board, track, {c.cell_id for c in cells})
    if not args.no_figures:  # before the tables: the page (index.html) shows the figures on disk
        _figures(bench, board, track, out, trusted=[*scorers, *attacks])
    write_leaderboard(board, track, out)
    failed = [(r.label, r.reason) for r in records if not r.ok] + refused
    ranking = out / "ranking.md"
    if ranking.exists():
        print(ranking.read_text())
    print(f"[rbi] {len(records) + len(refused)} cells ({len(failed)} failed) in {time.perf_counter() - started:.0f} s; "
          f"leaderboard in {out}/", file=sys.stderr)
    if args.grid == "quick":
        budgets = sorted({c.search.budget for c in cells if c.search is not None})
        attack = f"searched at budget {', '.join(map(str, budgets))}" if budgets else "the hand-set presets"
        print(f"[rbi] the quick job: models {models}, seeds {sorted({c.seed for c in cells})}, {attack}; "
              "the committed leaderboard (leaderboard/) is the main job, every model and seed, each cell searched "
              "by the attacker: rbi run --grid main --leaderboard-dir leaderboard", file=sys.stderr)
    for label, reason in failed:
        print(f"[rbi] failed: {label}: {reason}", file=sys.stderr)
    if failed:
        print(f"[rbi] {len(failed)} cells failed (their reasons above; the others are kept); they are retried on the "
              "next run", file=sys.stderr)
    return 1 if failed else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from robustbench_interp.errors import ConfigError
    from robustbench_interp.leaderboard import publish, records_store, write_leaderboard
    from robustbench_interp.runner import Runner
    from robustbench_interp.tracks import get_track

    track = get_track(args.rbi_track).name
    out = Path(args.leaderboard_dir) / track
    if args.figures and not args.rbi_store:
        raise ConfigError("--figures needs --store, the store that holds the manipulated weights")
    board = records_store(out)
    source = _store_for_reading(args.rbi_store) if args.rbi_store else None
    if source is not None and not publish(source, board, track):
        raise ConfigError(f"--store {args.rbi_store!r} holds no computed cell of track {track!r}; nothing to add "
                          f"(the tables in {out} are left as they are)")
    if not any(True for _ in board.records(track=track, status="ok")):
        raise ConfigError(f"{board.root} holds no records of track {track!r}: there is no leaderboard to build "
                          "(rbi run writes the records)")
    written = {}
    if args.figures:  # before the tables: the page (index.html) shows the figures on disk
        bench = Runner(source, device=args.rbi_device, eval_size=args.rbi_eval_size, data_root=args.rbi_data_root)
        written.update(_figures(bench, board, track, out, force=True))
    written.update(write_leaderboard(board, track, out))
    for path in written.values():
        print(path)
    return 0


def _recompute_and_compare(args: argparse.Namespace, what: str, cells: list, committed: Store, scorers: list[str],
                           tolerances: dict[str, float | None]) -> int:
    """Recompute ``cells`` in ``--store`` (default: a temporary folder, removed afterwards), compare
    them with the ``committed`` records (:func:`robustbench_interp.regression.check_cells`), print the
    report and return the exit status (0: every number within its tolerance). Shared by ``rbi
    check`` and ``rbi verify`` (``what`` names the command in its messages)."""
    import shutil
    import tempfile

    from tabulate import tabulate

    from robustbench_interp.regression import check_cells, passed
    from robustbench_interp.runner import Runner
    from robustbench_interp.store import Store

    root = _store_for_writing(args.rbi_store).root if args.rbi_store else Path(tempfile.mkdtemp(prefix="rbi-check-"))
    try:
        bench = Runner(Store(root), device=args.rbi_device, eval_size=args.rbi_eval_size,
                       accuracy_size=args.rbi_accuracy_size, data_root=args.rbi_data_root,
                       progress=_progress_printer())
        print(f"[rbi] {what}: recomputing {len(cells)} cells of track {args.rbi_track} in {root} and comparing them "
              f"with the records in {committed.root}", file=sys.stderr, flush=True)
        report = check_cells(bench, cells, committed, scorers=scorers, tolerances=tolerances)
    finally:
        if not args.rbi_store:
            shutil.rmtree(root, ignore_errors=True)
    print(tabulate(report, headers="keys", tablefmt="github", showindex=False, floatfmt=".2f", missingval="-"))
    if passed(report):
        print(f"[rbi] {what} passed: {len(report)} numbers within tolerance", file=sys.stderr)
        return 0
    moved = report[report["status"] != "ok"]
    print(f"[rbi] {what} FAILED: {len(moved)} of {len(report)} numbers moved or are missing:", file=sys.stderr)
    print(tabulate(moved, headers="keys", tablefmt="github", showindex=False, floatfmt=".2f", missingval="-"),
          file=sys.stderr)
    return 1


def cmd_check(args: argparse.Namespace) -> int:
    from robustbench_interp.errors import ConfigError
    from robustbench_interp.grid import check_grid
    from robustbench_interp.regression import committed_records

    track = args.rbi_track
    committed = committed_records(args.leaderboard_dir, track)
    cells = CHECK_CELLS if args.cells is None else split_list(args.cells)
    if not cells:
        raise ConfigError(f"--cells {args.cells!r} names no cell; give model:attack:interpreter,... or leave it out")
    scorers = CHECK_SCORERS if args.score_with is None else split_list(args.score_with) or []
    grid = check_grid(track, cells, scorers, seeds=selected_seeds(args.rbi_seeds))
    check_interpreter_names([*(c.interpreter for c in grid.cells), *grid.scorers])
    return _recompute_and_compare(args, "check", list(grid.cells), committed, list(grid.scorers),
                                  {"fsr": args.fsr_tolerance, "top1": args.top1_tolerance})


def verify_cells(committed: Store, track: str, spec: str, seeds: Sequence[int], models: Sequence[str] | None,
                 attacks: Sequence[str] | None) -> list:
    """The committed cells of ``spec``'s leaderboard row for ``seeds``: those it attacked, and those
    manipulated through another interpreter that it is scored on (transfer); controls left out.
    Records are data: a cell whose attacker is neither registered nor ``spec`` is not rebuilt."""
    from robustbench_interp.attacks import ATTACKS
    from robustbench_interp.config import CellConfig
    from robustbench_interp.interpreters import INTERPRETERS
    from robustbench_interp.registry import untrusted_specs

    cells = []
    for record in committed.records(track=track, status="ok"):
        try:
            cfg = CellConfig.from_dict(record.config)
        except Exception:  # noqa: BLE001, S112 - a record of an attack not installed here is no part of this row
            continue
        if cfg.is_control or cfg.seed not in seeds or (models and cfg.model not in models) \
                or (attacks and cfg.attack not in attacks):
            continue
        score = committed.get_score(cfg.cell_id, spec)
        if cfg.interpreter != spec and (score is None or not score.ok):
            continue
        if untrusted_specs([cfg.interpreter, cfg.attack], [INTERPRETERS, ATTACKS], [spec]):
            continue
        cells.append(cfg)
    return sorted(cells, key=lambda c: (c.model, c.attack, c.interpreter != spec, c.interpreter, c.seed))


def cmd_verify(args: argparse.Namespace) -> int:
    from robustbench_interp.errors import ConfigError
    from robustbench_interp.grid import CHECK_SEEDS
    from robustbench_interp.regression import committed_records

    track = args.rbi_track
    spec = args.interpreter
    check_interpreter_names([spec])
    committed = committed_records(args.leaderboard_dir, track)
    seeds = selected_seeds(args.rbi_seeds) or list(CHECK_SEEDS)
    cells = verify_cells(committed, track, spec, seeds, split_list(args.rbi_models), split_list(args.rbi_attacks))
    if not cells:
        raise ConfigError(f"{committed.root} holds no row of interpreter {spec!r} for seeds {seeds} (neither a cell it "
                          "attacked nor a score of it): nothing to verify; publish its cells first (rbi run "
                          f"--interpreter {spec} --leaderboard-dir ...)")
    from robustbench_interp.probe import probe_interpreters

    attacked = any(c.interpreter == spec for c in cells)
    probe = probe_interpreters([(spec, {})], attacking=[spec] if attacked else [], track=track,
                               model=cells[0].model, device=args.rbi_device)
    reason = probe.refused.get(spec) or probe.not_attackable.get(spec)
    if reason:
        raise ConfigError(f"interpreter {spec} fails on a tiny batch: {reason}")
    return _recompute_and_compare(args, f"verify {spec}", cells, committed, [spec], {})


def _print_entries(title: str, names: Sequence[str], build: Callable[[str], Any], describe: Callable[[Any], str],
                   origin: Callable[[str], str]) -> None:
    """One line per registered name: what it is and where it comes from; a broken plug-in is listed
    with its reason."""
    print(f"{title}:")
    for name in names:
        try:
            entry = build(name)
        except Exception as exc:  # noqa: BLE001 - a broken plug-in is listed, not fatal
            print(f"  {name:24s} BROKEN: {exc}")
            continue
        print(f"  {name:24s} {describe(entry)} {origin(name)}")


def cmd_list(_args: argparse.Namespace) -> int:
    from robustbench_interp import get_interpreter, list_interpreters
    from robustbench_interp.attacks import ATTACKS, get_attack, list_attacks
    from robustbench_interp.interpreters import INTERPRETERS
    from robustbench_interp.models import list_models, list_tracks
    from robustbench_interp.tracks import get_track

    def interpreter(interp: Any) -> str:
        kind = "layer" if interp.layer_level else "input"
        return f"{kind:6s} {'differentiable' if interp.differentiable else 'transfer only':15s}"

    def attack(a: Any) -> str:
        default = "standard" if a.standard else "plug-in, run when named"
        return f"{'two-class' if a.two_classes else 'passive':9s} R_F={list(a.success_interval)} {default};"

    _print_entries("interpreters", list_interpreters(), get_interpreter, interpreter, INTERPRETERS.origin)
    _print_entries("attacks", list_attacks(), get_attack, attack, ATTACKS.origin)
    print("tracks:")
    for track in list_tracks():
        print(f"  {track:24s} models {', '.join(list_models(track))}; {get_track(track).description}")
    return 0


def _add_train_parser(sub: Any) -> None:
    train = sub.add_parser("train", help="re-train the tiny base models with the published configs and write "
                                         "their manifest (default: re-create the published weights)")
    train.add_argument("--track", default="tiny", choices=("tiny",),
                       help="the track whose base models are trained (only tiny trains its own; default: tiny)")
    train.add_argument("--models", nargs="+", default=None, metavar="NAME",
                       help="the models to train (default: all six, vgg resnet densenet and their -adv versions)")
    train.add_argument("--out", default=None, metavar="DIR",
                       help="the folder for <name>.pt and manifest.json (default: the package's published weights, "
                            "robustbench_interp/weights/tiny)")


def cmd_train(args: argparse.Namespace) -> int:
    from robustbench_interp.errors import MissingResourceError
    from robustbench_interp.models import published

    try:
        reference = published.read_manifest()["models"]  # read before the published folder is rewritten
    except MissingResourceError:
        reference = {}
    out = Path(args.out) if args.out else published.weights_dir()

    def pct(entry: dict[str, Any] | None, key: str) -> str:
        return f"{100 * entry[key]:5.1f}%" if entry and key in entry else "    -"

    def report(name: str, entry: dict[str, Any]) -> None:
        ref = reference.get(name)
        pgd = (f", PGD {pct(entry, 'test_pgd_top1')} (published {pct(ref, 'test_pgd_top1')})"
               if "test_pgd_top1" in entry else "")
        print(f"tiny/{name:13s} val {pct(entry, 'val_top1')} (published {pct(ref, 'val_top1')}), test "
              f"{pct(entry, 'test_top1')} (published {pct(ref, 'test_top1')}){pgd}, trained in "
              f"{entry['train_seconds']:.0f} s -> {out / entry['file']}", flush=True)

    published.train_published(args.models, out, progress=True, report=report)
    print(f"manifest: {out / published.MANIFEST}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from robustbench_interp.errors import RBIError

    args = build_parser().parse_args(argv)
    commands = {"run": cmd_run, "leaderboard": cmd_leaderboard, "check": cmd_check, "verify": cmd_verify,
                "list": cmd_list, "train": cmd_train}
    try:
        return commands[args.command](args)
    except RBIError as exc:
        print(f"rbi: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        store = getattr(args, "rbi_store", None)
        kept = f"every cell finished so far is kept in {store!r}; " if store else ""
        print(f"\nrbi: interrupted; {kept}run the same command again to resume where it stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
