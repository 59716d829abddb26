"""The attacker: a budgeted search per cell, never weaker than the hand-tuned preset (SPEC section 9).

One preset per attack, tuned on one interpreter, says little about the others: an interpreter that
"resists" it may only resist that learning rate and lambda. So per (base model, attack,
interpreter, seed) the attacker searches a fixed space (:class:`~robustbench_interp.config.SearchSpace`)
with a fixed budget of optimizer steps, the same for every interpreter:

- **The space.** The preset's learning rate times each ``lr_factor``, its lambda times each
  ``lam_factor``, each penalty surrogate (:mod:`robustbench_interp.attacks.surrogates`: the paper's
  ReLU normalisation, or a softplus that passes gradient where a map is negative). The preset is
  one of the configurations.
- **Successive halving** (Jamieson & Talwalkar 2016; Li et al. 2018, "Hyperband"). Rung ``k`` of
  ``R`` runs the configurations still in the race up to ``full / eta**(R-1-k)`` minibatches, then
  keeps the best ``ceil(n / eta**(k+1))``. A configuration carries on from where it stopped (a
  :class:`~robustbench_interp.attacks.finetune.ManipulationRun`): its learning-rate schedule is
  that of the full length, so a finalist's trajectory is exactly that of one run of ``full``
  minibatches. The full length is what the budget leaves: ``budget / (cost factor * replays)``
  (:func:`full_length`); on tiny the default budget gives the preset's own 500 steps.
- **The preset is never dropped.** When it is not among the best of a rung it takes the last place
  kept (or joins the leader when a rung keeps one), so it reaches the final rung, where it runs exactly as the preset cell always ran: the
  configuration chosen is at least as good as the preset on the fooling split.
- **Selection.** A configuration is measured on the track's held-out fooling split, never the
  scored test split (:meth:`Resources.selection_sets`): FSR of the attacking interpreter (its noise
  from a seed neither the attack nor scoring uses) and top-1 drop against the base model. The
  order: configurations whose top-1 drop is at most ``MAX_TOP1_DROP`` first, by FSR, then by how
  close their test losses came to the success interval (the mean distance, an empty or constant
  map counted at its baseline's: early in a search no image may have crossed the threshold yet,
  and the FSR ties at 0), then by smaller drop; then the others by smaller drop.
  The best finalist within ``LOOSE_TOP1_DROP`` points is reported too (never scored), so that a
  low FSR set by the accuracy budget is seen as such. The winner is the first of the final rung. A rung
  that ends before the learning rate cools down (on a schedule with a cooldown) admits
  ``EARLY_TOP1_FACTOR`` times the drop: the cooldown gives accuracy back. That is a bet (on the
  ResNet, Center-mass through LRP, it did not pay), so such a rung also keeps the best
  configuration within the strict bound, in the place of the last one kept (never the leader's or
  the preset's).
- **Failures.** A configuration whose loss diverges (a too large learning rate or lambda), or whose
  penalty has no gradient under its surrogate (gradient masking), drops out with its reason; only
  when every configuration fails does the cell fail, as not attackable when every one of them
  was masked.
- **Budget.** Rung lengths are rounded up to whole steps, so a search may spend a few steps more
  than its budget (tiny: 2003 of 2000); ``spent`` records what it did spend.

Everything tried is recorded (:meth:`SearchResult.summary`): each configuration's measurement at
each rung, and the curve of the leader after each rung against the optimizer steps spent so far,
from which the leaderboard draws FSR versus budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from torch import nn

from robustbench_interp.attacks.finetune import Manipulation, ManipulationRun
from robustbench_interp.config import MAX_TOP1_DROP, AttackParams, SearchSpace
from robustbench_interp.errors import ConfigError, GradientMaskingError, InterpreterError

#: A measurement of a model on the fooling split: ``{"fsr": percent, "top1_drop": points}``.
Evaluate = Callable[[nn.Module], dict[str, float]]
#: Starts the manipulation of one configuration.
Start = Callable[[AttackParams], ManipulationRun]


@dataclass(frozen=True)
class Rung:
    """One rung of successive halving: the configurations run up to ``steps`` minibatches, then
    ``keep`` of them go on."""

    steps: int
    keep: int


def plan(space: SearchSpace, full: int, n: int) -> list[Rung]:
    """The rungs of a search of ``n`` configurations of ``space`` with finalists of ``full`` minibatches."""
    r, eta = space.rungs, space.eta
    return [Rung(steps=max(1, math.ceil(full / eta ** (r - 1 - k))), keep=max(1, math.ceil(n / eta ** (k + 1))))
            for k in range(r)]


def cost_factor(space: SearchSpace, n: int) -> Fraction:
    """The optimizer steps of a search of ``n`` configurations in units of its full length (exact,
    before rounding): the configurations in the race at each rung times the rung's new steps."""
    r, eta = space.rungs, space.eta
    total, alive, before = Fraction(0), n, Fraction(0)
    for k in range(r):
        length = Fraction(1, eta ** (r - 1 - k))
        total += alive * (length - before)
        alive, before = max(1, math.ceil(n / eta ** (k + 1))), length
    return total


def full_length(space: SearchSpace, schedule_steps: int, n: int, replays: int = 1) -> int:
    """The finalists' minibatches for ``n`` configurations: ``budget / (cost factor * replays)``;
    the schedule's own length when the space has no budget (a track whose schedule counts epochs)."""
    if space.budget is None:
        return schedule_steps
    factor = cost_factor(space, n)
    full = int(Fraction(space.budget) / (factor * replays))
    if full < 1:
        raise ConfigError(f"a search budget of {space.budget} optimizer steps is too small for {n} "
                          f"configurations (cost factor {float(factor):g}, {replays} replays); raise it")
    return full


def planned_minibatches(space: SearchSpace, preset: AttackParams) -> int:
    """The minibatches a search of ``space`` around ``preset`` runs when no configuration diverges
    (what a progress bar counts; times the replays, the optimizer steps it spends)."""
    n = len(configurations(space, preset))
    total, alive, before = 0, n, 0
    for rung in plan(space, preset.steps or 1, n):
        total += alive * (rung.steps - before)
        alive, before = rung.keep, rung.steps
    return total


def configurations(space: SearchSpace, preset: AttackParams) -> list[AttackParams]:
    """The configurations of ``space`` for a cell with ``preset``, the preset itself first."""
    out = [preset]
    for lr, lam, surrogate in space.grid_values(preset.lr, preset.lam):
        params = replace(preset, lr=lr, lam=lam, surrogate=surrogate)
        if params not in out:
            out.append(params)
    return out


#: The version of the search's behaviour (what it tries, in what order, what it keeps): part of a
#: searched cell's inputs (:meth:`Runner.cell_inputs`), so a stored search made by an older attacker
#: is recomputed, never replayed as the current one's. Raise it with every change of behaviour.
ATTACKER_VERSION = 2

#: A looser top-1 budget under which the search also names its best finalist (reported beside the
#: cell's score, never scored): an FSR of 0 within 2 points next to a high one within 5 says the
#: number is set by the accuracy budget, not by the interpreter.
LOOSE_TOP1_DROP = 5.0

#: Before the learning rate cools down, a configuration's top-1 drop is larger than it will be at the
#: end (on the tiny VGG, Location through Grad-CAM: 4.8 points at 250 of 500 steps, 2.7 at the end),
#: so a rung that ends before the cooldown starts admits drops up to this factor times the budget.
EARLY_TOP1_FACTOR = 2.5


def selection_key(measured: dict[str, Any], allowed: float = MAX_TOP1_DROP) -> tuple[int, float, float, float]:
    """Sorts configurations best first (ascending): those whose top-1 drop is within ``allowed`` by
    FSR, then by ``progress`` (minus the mean distance of the test losses to the success interval,
    degenerate maps at their baseline's: it separates configurations that no image has yet carried
    past the threshold, as at the first rungs; missing or NaN counts as none), then by smaller
    drop; then the rest by drop."""
    drop, fsr, progress = measured["top1_drop"], measured["fsr"], measured.get("progress")
    if progress is None or not math.isfinite(progress):
        progress = -math.inf
    if drop <= allowed:
        return (0, -fsr, -progress, drop)
    return (1, drop, -fsr, -progress)


@dataclass
class Trial:
    """One configuration of a search: its parameters, its run while it is in the race, and its
    measurement at each rung it reached."""

    params: AttackParams
    preset: bool
    run: ManipulationRun | None = None
    measured: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"lr": self.params.lr, "lam": self.params.lam, "surrogate": self.params.surrogate,
                "preset": self.preset, "measured": list(self.measured), "error": self.error}


@dataclass
class SearchResult:
    """The outcome of a search: the winning trial's manipulation, every trial, the rungs, and the
    leader's curve (one point per rung: optimizer steps spent so far, the leader's configuration
    and measurement, and any ``report`` of it)."""

    winner: Trial
    manipulation: Manipulation
    trials: list[Trial]
    rungs: list[Rung]
    curve: list[dict[str, Any]]
    spent: int
    preset_report: dict[str, Any] = field(default_factory=dict)
    loose: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What was tried, as JSON-ready data (a cell record's ``search``); ``preset_report`` is the
        ``report`` of the preset's finalist (e.g. its test FSR: what the hand-tuned preset alone
        would have scored); ``loose`` the finalist chosen under :data:`LOOSE_TOP1_DROP` (its
        configuration, fooling-split measurement and report)."""
        return {"rungs": [{"steps": r.steps, "keep": r.keep} for r in self.rungs], "spent": self.spent,
                "winner": {k: v for k, v in self.winner.describe().items() if k != "measured"},
                "trials": [t.describe() for t in self.trials], "curve": self.curve,
                "preset_report": self.preset_report, "loose": self.loose}


def search(
    preset: AttackParams,
    space: SearchSpace,
    start: Start,
    evaluate: Evaluate,
    *,
    report: Callable[[nn.Module], dict[str, Any]] | None = None,
    log: Callable[[str], None] | None = None,
) -> SearchResult:
    """Successive halving over ``space`` around ``preset`` (whose ``steps`` is the finalists'
    length): ``start(params)`` begins a configuration's manipulation, ``evaluate(model)`` measures
    it on the fooling split, ``report(model)``, when given, adds to the leader's point on the curve
    (e.g. its score on the test split: reported, never used to choose)."""
    full = preset.steps
    if full is None:
        raise ConfigError("the attacker searches step-counted schedules: give the preset's steps")
    replays = preset.replays if preset.adv else 1
    configs = configurations(space, preset)
    rungs = plan(space, full, len(configs))
    trials = [Trial(params=p, preset=i == 0) for i, p in enumerate(configs)]
    alive, spent, curve = list(trials), 0, []
    errors: list[InterpreterError] = []
    for k, rung in enumerate(rungs):
        for trial in alive:
            before = trial.run.step if trial.run is not None else 0
            try:
                if trial.run is None:
                    trial.run = start(trial.params)
                trial.run.advance(rung.steps)
                trial.measured.append({"rung": k, "steps": trial.run.step, **evaluate(trial.run.model)})
            except InterpreterError as exc:  # diverged, masked under this surrogate, or a plug-in failed on it
                errors.append(exc)
                trial.error = f"{type(exc).__name__}: {exc}"
                if log is not None:
                    log(f"configuration lr={trial.params.lr:g} lam={trial.params.lam:g} "
                        f"{trial.params.surrogate} dropped: {exc}")
            finally:
                if trial.run is not None:
                    spent += (trial.run.step - before) * replays
                if trial.error is not None:
                    trial.run = None
        running = [t for t in alive if t.error is None]
        if not running:  # masking everywhere: not attackable; otherwise the first reason
            masked = [e for e in errors if isinstance(e, GradientMaskingError)]
            if errors and len(masked) == len(errors):
                raise masked[0]
            raise errors[0] if errors else InterpreterError("no configuration ran")
        early = preset.cooldown > 0 and rung.steps < full * (1 - preset.cooldown) and k < len(rungs) - 1
        allowed = MAX_TOP1_DROP * (EARLY_TOP1_FACTOR if early else 1.0)
        ranked = sorted(running, key=lambda t: selection_key(t.measured[-1], allowed))
        kept = ranked[: rung.keep] if k < len(rungs) - 1 else ranked  # the final rung keeps its finalists
        preset_trial = trials[0]
        if preset_trial in running and preset_trial not in kept:  # the preset always reaches the final rung
            if len(kept) >= 2:
                kept[-1] = preset_trial
            else:
                kept.append(preset_trial)
        if allowed > MAX_TOP1_DROP:  # the larger allowance bets on the cooldown: hedge with the best admissible one
            best = min(running, key=lambda t: selection_key(t.measured[-1]))
            room = [i for i, t in enumerate(kept) if t is not preset_trial and t is not ranked[0]]
            if best.measured[-1]["top1_drop"] <= MAX_TOP1_DROP and best not in kept and room:
                kept[room[-1]] = best
        for trial in running:
            if trial not in kept:
                trial.run = None  # out of the race: free its model
        leader = ranked[0]
        point = {"rung": k, "steps": rung.steps, "spent": spent, "lr": leader.params.lr, "lam": leader.params.lam,
                 "surrogate": leader.params.surrogate, **leader.measured[-1]}
        if report is not None and leader.run is not None:
            point.update(report(leader.run.model))
        curve.append(point)
        alive = kept
    winner = leader  # the first of the final rung, which keeps every finalist and its run
    preset_run = trials[0].run  # the preset always reaches the final rung (unless it diverged)
    preset_report = report(preset_run.model) if report is not None and preset_run is not None else {}
    loose = min(alive, key=lambda t: selection_key(t.measured[-1], LOOSE_TOP1_DROP))
    loose_point: dict[str, Any] = {}
    if loose.measured[-1]["top1_drop"] <= LOOSE_TOP1_DROP:  # none when every finalist costs more
        loose_point = {"lr": loose.params.lr, "lam": loose.params.lam, "surrogate": loose.params.surrogate,
                       "preset": loose.preset, **loose.measured[-1]}
        if report is not None and loose.run is not None:  # the winner's and the preset's are known already
            known = ({k: v for k, v in curve[-1].items() if k.startswith("test_")} if loose is winner
                     else preset_report if loose is trials[0] else None)
            loose_point.update(report(loose.run.model) if known is None else known)
    return SearchResult(winner=winner, manipulation=winner.run.result(), trials=trials, rungs=rungs,
                        curve=curve, spent=spent, preset_report=preset_report, loose=loose_point)


def schedule_of(space: SearchSpace, preset: AttackParams) -> AttackParams:
    """``preset`` with the finalists' length that ``space``'s budget leaves (its cooldown over that length)."""
    if preset.steps is None:
        return preset
    replays = preset.replays if preset.adv else 1
    return replace(preset, steps=full_length(space, preset.steps, len(configurations(space, preset)), replays))


__all__ = ["ATTACKER_VERSION", "EARLY_TOP1_FACTOR", "LOOSE_TOP1_DROP", "Evaluate", "Rung", "SearchResult", "Start", "Trial", "configurations", "cost_factor",
           "full_length", "plan", "planned_minibatches", "schedule_of", "search", "selection_key"]

