"""Grids of benchmark cells: every attack x base model x attacking interpreter of a track, and the
named grids the benchmark runs (the main job's, the leaderboard's, a submission's, the check's)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from robustbench_interp.attacks import check_attack_names, get_attack
from robustbench_interp.attacks.attacker import schedule_of
from robustbench_interp.attacks.presets import preset, search_space
from robustbench_interp.config import CellConfig
from robustbench_interp.tracks import get_track


def build_grid(
    track: str,
    models: Sequence[str],
    attacks: Iterable[str],
    interpreters: Sequence[str],
    *,
    seeds: Sequence[int] | None = None,
    classes: tuple[int, int] | None = None,
    overrides: dict[str, Any] | None = None,
    interpreter_params: dict[str, dict[str, Any]] | None = None,
    budget: int | None = 0,
) -> list[CellConfig]:
    """One :class:`CellConfig` per (seed, attack, model, interpreter), hyper-parameters from the
    presets, seed-major (every cell of the first seed comes first).

    ``budget``: the attacker's search (SPEC section 9): 0 (the default here) runs each preset
    alone; None uses the track's search and budget (the named grids below); a number of optimizer
    steps replaces the track's budget. A cell whose learning rate, lambda, steps or epochs are
    overridden runs that configuration alone.

    ``seeds`` defaults to (0,) (the named grids below use the track's seeds, tiny: 0, 1, 2).
    ``overrides`` (e.g. ``{"lr": 1e-5}``) apply to every cell; ``interpreter_params`` maps an interpreter spec to its keyword arguments. A
    two-class attack (Active) uses ``classes`` or the track's pair. Unknown track and attack names
    fail before any cell is built.
    """
    spec = get_track(track)
    attacks = check_attack_names(list(attacks))
    seeds = check_seeds(seeds)
    overrides = overrides or {}
    interpreter_params = interpreter_params or {}
    hand_set = bool({"lr", "lam", "steps", "epochs"} & set(overrides))
    cells = []
    for seed in seeds:
        for name in attacks:
            attack = get_attack(name)
            pair = (classes or spec.active_classes) if attack.two_classes else None
            for model in models:
                for interp in interpreters:
                    params, attack_params = preset(spec.name, model, attack, interp, **overrides)
                    space = None if hand_set else search_space(spec.name, model, attack, interp, budget)
                    if space is not None:
                        params = schedule_of(space, params)
                    cells.append(CellConfig(
                        track=spec.name, model=model, attack=name, interpreter=interp, params=params,
                        attack_params=attack_params, interpreter_params=interpreter_params.get(interp, {}),
                        seed=seed, classes=pair, search=space,
                    ))
    return cells


def check_seeds(seeds: Sequence[int] | None) -> tuple[int, ...]:
    """``seeds`` (``(0,)`` when None or empty) as a tuple of distinct non-negative integers."""
    from robustbench_interp.errors import ConfigError

    chosen = tuple(seeds) if seeds else (0,)
    bad = [s for s in chosen if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad or len(set(chosen)) != len(chosen):
        raise ConfigError(f"seeds must be distinct non-negative integers (e.g. 0,1,2), got {list(chosen)}")
    return chosen


def with_controls(cells: Iterable[CellConfig]) -> tuple[CellConfig, ...]:
    """``cells`` with the control of each (:attr:`CellConfig.control`: lambda = 0, no interpreter;
    SPEC section 8) placed just before the first cell that needs it; a control is listed once. A
    searched cell's control follows the configuration its search chooses: the runner computes it
    after the cell (:meth:`Runner.control_of`)."""
    out: dict[str, CellConfig] = {}
    for cell in cells:
        if not cell.is_control and cell.search is None:
            control = cell.control
            out.setdefault(control.cell_id, control)
        out.setdefault(cell.cell_id, cell)
    return tuple(out.values())


# ------------------------------------------------------------------------------ the named grids
#
# Every grid the benchmark runs is defined here, once: the main job's (`rbi run`), the committed
# leaderboard's (`rbi run --grid leaderboard`), a submission's (`pytest suites/`) and the regression
# check's (`rbi check`). Each is a list of cells and the interpreters scored on every cell.

#: The attacker's budget of the named grids when none is given (SPEC section 9; ``--budget``): None
#: searches with the track's budget (tiny: 2000 optimizer steps), the committed leaderboard's; 0 runs
#: each cell's preset alone (the quick job's default).
GRID_BUDGET: int | None = None
#: The main job's attacking interpreters: Grad-CAM, the paper's main one, so that a first run on a
#: 2-core CPU, base model training included, stays within about 15 minutes.
RUN_ATTACKERS = ("gradcam",)
#: Interpreters scored on every manipulated model of the main job (transfer). Integrated gradients
#: (32 steps) and SmoothGrad (10 samples) are left out to keep a first run on 2 cores within 15
#: minutes; `--score-with all` scores every registered interpreter.
RUN_SCORERS = ("gradcam", "lrp_t", "simplegrad_t", "lrp", "simplegrad", "gradient_x_input")
#: The committed leaderboard's grid: every attack x model through every registered differentiable
#: interpreter, each manipulated model scored by every registered interpreter. Two built-ins cost
#: far more per manipulation step than the others (SmoothGrad's 10 noisy copies: about 15x Grad-CAM;
#: integrated gradients' 32 path points: about 50x), so on a 2-core CPU SmoothGrad attacks the tiny
#: ResNet only and integrated gradients is scored by transfer only.
LEADERBOARD_ATTACK_MODELS: dict[str, tuple[str, ...]] = {"smoothgrad": ("resnet",), "integrated_gradients": ()}
#: Built-in interpreters through which models are manipulated for a submission's transfer cells.
SUBMISSION_TRANSFER_ATTACKERS = ("gradcam", "lrp_t")
#: The cells the regression check recomputes (model:attack:attacking interpreter): the tiny ResNet
#: trains fastest, and these two attacks move its maps furthest.
CHECK_CELLS = ("resnet:location:gradcam", "resnet:topk:gradcam")
#: Interpreters scored on each recomputed cell besides the attacking one (one transfer).
CHECK_SCORERS = ("lrp_t",)


@dataclass(frozen=True)
class Grid:
    """A named grid: its cells (the controls included) and the interpreters scored on each (the
    attacking ones first)."""

    name: str
    cells: tuple[CellConfig, ...]
    scorers: tuple[str, ...]

    @property
    def attacked(self) -> tuple[CellConfig, ...]:
        """The cells manipulated through an interpreter (the grid without its controls)."""
        return tuple(c for c in self.cells if not c.is_control)


def differentiable(names: Sequence[str]) -> list[str]:
    """The names among ``names`` whose interpreter can be attacked (a broken plug-in is kept: its
    cells fail with the reason)."""
    from robustbench_interp.interpreters import get_interpreter

    keep = []
    for name in names:
        try:
            if not get_interpreter(name).differentiable:
                continue
        except Exception:  # noqa: BLE001 - a broken plug-in fails its own cells, not the grid
            pass
        keep.append(name)
    return keep


def _scorers(attackers: Sequence[str], scorers: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*attackers, *scorers]))  # the adaptive scores first, no repeats


def _named_grid_kw(track: str, kw: dict[str, Any]) -> dict[str, Any]:
    """``kw`` with ``seeds`` set to the track's seeds unless given, and ``budget`` to
    :data:`GRID_BUDGET` unless given."""
    budget = kw.get("budget")
    return {**kw, "budget": GRID_BUDGET if budget is None else budget,
            "seeds": kw.get("seeds") or get_track(track).seeds}


def main_grid(track: str, models: Sequence[str], attacks: Sequence[str], attackers: Sequence[str] = (),
              scorers: Sequence[str] = (), **kw: Any) -> Grid:
    """The main job: every attack x model through ``attackers`` (default :data:`RUN_ATTACKERS`; "all"
    for every registered differentiable interpreter), scored by ``scorers`` (default
    :data:`RUN_SCORERS`; "all" for every registered interpreter)."""
    from robustbench_interp.interpreters import list_interpreters

    attackers = list(attackers) or list(RUN_ATTACKERS)
    if "all" in attackers:
        attackers = differentiable(list_interpreters())
    scorers = list(scorers) or list(RUN_SCORERS)
    if "all" in scorers:
        scorers = list_interpreters()
    kw = _named_grid_kw(track, kw)
    return Grid("main", with_controls(build_grid(track, models, attacks, attackers, **kw)),
                _scorers(attackers, scorers))


#: The quick start's job (``rbi run``, grid ``quick``): the main job on these models (those the
#: track has; else its first standard model) for these seeds, with the hand-set presets, so that a
#: first run from a fresh clone on a 2-core CPU stays within about 10 minutes. Its numbers are
#: those of the same cells of the main job computed with the presets; the committed leaderboard is
#: the main job (``rbi run --grid main``).
QUICK_MODELS = ("resnet",)
QUICK_SEEDS = (0,)


def quick_models(track: str, models: Sequence[str]) -> list[str]:
    """The quick job's models among ``models`` (the track's standard ones)."""
    return [m for m in models if m in QUICK_MODELS] or list(models[:1])


def quick_grid(track: str, models: Sequence[str], attacks: Sequence[str], attackers: Sequence[str] = (),
               scorers: Sequence[str] = (), **kw: Any) -> Grid:
    """The quick start's job: :func:`main_grid` for :data:`QUICK_SEEDS` (unless ``seeds`` says
    otherwise) with the presets (unless ``budget`` says otherwise); the models are the caller's
    (:func:`quick_models` when none are chosen)."""
    kw = {**kw, "seeds": kw.get("seeds") or QUICK_SEEDS, "budget": 0 if kw.get("budget") is None else kw["budget"]}
    grid = main_grid(track, models, attacks, attackers, scorers, **kw)
    return Grid("quick", grid.cells, grid.scorers)


def leaderboard_grid(track: str, models: Sequence[str], attacks: Sequence[str], scorers: Sequence[str] = (),
                     **kw: Any) -> Grid:
    """The committed leaderboard's grid (:data:`LEADERBOARD_ATTACK_MODELS` says where an attacker
    is left out); every registered interpreter scored unless ``scorers`` says otherwise."""
    from robustbench_interp.interpreters import list_interpreters

    every = list_interpreters()
    kw = _named_grid_kw(track, kw)
    attackers = differentiable([*RUN_ATTACKERS, *(n for n in every if n not in RUN_ATTACKERS)])
    cells = [cell for name in attackers
             for cell in build_grid(track, [m for m in models if m in LEADERBOARD_ATTACK_MODELS.get(name, models)],
                                    attacks, [name], **kw)]
    scorers = every if not scorers or "all" in scorers else list(scorers)
    order = {seed: i for i, seed in enumerate(dict.fromkeys(c.seed for c in cells))}
    cells.sort(key=lambda c: order[c.seed])  # seed-major: the first seed's grid is complete first
    return Grid("leaderboard", with_controls(cells), _scorers(attackers, scorers))


def submission_grid(track: str, models: Sequence[str], attacks: Sequence[str], specs: Sequence[str],
                    **kw: Any) -> tuple[Grid, Grid]:
    """A submission's grids: its adaptive cells (every attack x model through each spec), and the
    transfer cells (the models manipulated through :data:`SUBMISSION_TRANSFER_ATTACKERS`, scored by
    the specs)."""
    kw = _named_grid_kw(track, kw)
    adaptive = Grid("submission", with_controls(build_grid(track, models, attacks, specs, **kw)), tuple(specs))
    transfer = Grid("submission-transfer", tuple(build_grid(track, models, attacks,
                                                            list(SUBMISSION_TRANSFER_ATTACKERS), **kw)), tuple(specs))
    return adaptive, transfer


def parse_cell(text: str) -> tuple[str, str, str]:
    """``"model:attack:interpreter"`` (or ``"model/attack/interpreter"``, whose parts may be
    ``module:attr`` specs) as its three parts: a cell of the regression check."""
    from robustbench_interp.errors import ConfigError

    parts = text.split("/") if "/" in text else text.split(":")
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"a cell to check is model:attack:interpreter (e.g. resnet:location:gradcam), or "
                          f"model/attack/interpreter when a part is a 'module:attr' spec; got {text!r}")
    return parts[0], parts[1], parts[2]


#: The seeds the regression check recomputes (its tolerances come from the committed seeds' spread).
CHECK_SEEDS = (0,)


def check_grid(track: str, cells: Sequence[str] = CHECK_CELLS, scorers: Sequence[str] = CHECK_SCORERS,
               seeds: Sequence[int] | None = None, **kw: Any) -> Grid:
    """The regression check's cells (``model:attack:interpreter`` each, for :data:`CHECK_SEEDS`
    unless ``seeds`` says otherwise) and the interpreters scored on them besides the attacking ones."""
    kw = _named_grid_kw(track, {**kw, "seeds": seeds or CHECK_SEEDS})  # the committed cells' budget
    parsed = [parse_cell(text) for text in cells]
    built = [cell for model, attack, interp in parsed for cell in build_grid(track, [model], [attack], [interp], **kw)]
    return Grid("check", tuple(built), tuple(scorers))
