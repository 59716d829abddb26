"""The runner: a cell's lifecycle against the store (manipulate, score, record; resume; fail alone).

A cell (:class:`~robustbench_interp.config.CellConfig`) is computed at most once: its record, its
manipulated weights and each interpreter's score on it live in the :class:`~robustbench_interp.store.Store`
under the cell's hash, so an interrupted grid resumes where it stopped and a re-run with nothing
changed recomputes nothing. A cell whose interpreter fails is stored as failed, with the reason,
and the grid carries on.

Scoring (SPEC sections 4 and 5): interpreter J scores a manipulated model ``w*`` against its base
``w0`` on the evaluation data of the attack (:meth:`Resources.eval_sets`), with the pure functions
of :mod:`robustbench_interp.metrics`. J = the attacking interpreter gives the adaptive score; any
other J a transfer score. The inputs (models, data, reference maps) come from
:class:`~robustbench_interp.resources.Resources`.

A control cell (:attr:`CellConfig.is_control`: lambda = 0, no interpreter; SPEC section 8) is plain
fine-tuning with its cells' schedule and seed; its weights depend on neither the attack nor an
interpreter, so the controls of one (model, schedule, seed) share one manipulation. The scorers'
FSRs on it are the control FSRs. An attacked cell whose penalty has no gradient with respect to the
weights (gradient masking, :class:`~robustbench_interp.errors.GradientMaskingError`), or whose
interpreter declares itself non-differentiable, is recorded as not attackable adaptively: its
interpreter is ranked by transfer only.

A cell with a search (:attr:`CellConfig.search`; SPEC section 9) is computed by the attacker
(:mod:`robustbench_interp.attacks.attacker`): its configurations are measured on the track's fooling
split (:meth:`Resources.selection_sets`), the winner's weights are the cell's, and what was tried is
in the record (``search``, ``chosen``). Its control is the chosen configuration with lambda = 0
(:meth:`Runner.control_of`), computed and scored right after the cell.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from torch import nn

from robustbench_interp.attacks import ATTACKS, get_attack
from robustbench_interp.attacks.attacker import ATTACKER_VERSION, SearchResult, planned_minibatches, search
from robustbench_interp.attacks.finetune import ManipulationRun, ReferenceCache
from robustbench_interp.claims import Claims
from robustbench_interp.config import AttackParams, CellConfig
from robustbench_interp.errors import (
    AttackError,
    InterpreterError,
    IsolationError,
    MissingResourceError,
    NotDifferentiableError,
    PluginImportError,
    RBIError,
)
from robustbench_interp.interpreters import INTERPRETERS, get_interpreter
from robustbench_interp.interpreters.base import Interpreter
from robustbench_interp.metrics.aopc import aopc_before_after
from robustbench_interp.metrics.scoring import score_maps
from robustbench_interp.records import CellRecord, ScoreRecord, without_lists
from robustbench_interp.registry import code_version, import_object
from robustbench_interp.resources import EvalSet, Resources
from robustbench_interp.store import Store, atomic_save_state_dict, load_state_dict_safe

#: The inputs of a record written before records kept them: the built-ins, the default sizes.
_LEGACY_INPUTS = {"interpreter_code": "builtin", "attack_code": "builtin", "eval_size": 256, "accuracy_size": None,
                  "aopc_size": 64}

#: A progress callback: (what, done, total, info) -> None.
Progress = Callable[[str, int, int, dict[str, float]], None]


class Runner:
    """Computes cells and scores into a :class:`Store`; the inputs come from ``resources`` (built
    from the keyword arguments when not given: see :class:`Resources`). ``aopc_size`` images get
    AOPC curves (0 turns AOPC off); ``retry_failed`` (default) recomputes cells stored as failed, so a
    fixed plug-in or a corrected input is computed rather than answered with the old reason."""

    def __init__(
        self,
        store: Store,
        resources: Resources | None = None,
        *,
        aopc_size: int = 64,
        retry_failed: bool = True,
        progress: Progress | None = None,
        log: Callable[[str], None] | None = None,
        **resource_options: Any,
    ) -> None:
        self.store = store
        self.resources = resources if resources is not None else Resources(**resource_options)
        self.aopc_size = aopc_size
        self.retry_failed = retry_failed
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self._codes: dict[str, str] = {}

    # ---- what the store holds

    def _code(self, spec: str, registry: Any) -> str:
        """The code version of an interpreter or attack spec (cached; "unimportable" for a broken one)."""
        if spec not in self._codes:
            from robustbench_interp.interpreters.adapters import is_library_spec

            try:
                if is_library_spec(spec):  # an adapter of this package over an installed library's method
                    self._codes[spec] = _library_version(spec.partition(":")[0])
                else:
                    found = import_object(spec) if ":" in spec else registry.get(spec)
                    self._codes[spec] = code_version(found)
            except RBIError:
                self._codes[spec] = "unimportable"
        return self._codes[spec]

    def cell_inputs(self, cfg: CellConfig) -> dict[str, Any]:
        """What a cell's result depends on besides its config: the code of a plug-in interpreter or
        attack, the evaluation sizes, and for a searched cell the attacker's version and its fooling
        split's sizes. A stored cell whose inputs differ is recomputed."""
        res = self.resources
        interpreter_code = "none" if cfg.is_control else self._code(cfg.interpreter, INTERPRETERS)
        inputs = {"interpreter_code": interpreter_code, "attack_code": self._code(cfg.attack, ATTACKS),
                  "eval_size": res.eval_size, "accuracy_size": res.accuracy_size, "aopc_size": self.aopc_size}
        if cfg.search is not None:  # the attacker's fooling split, and the attacker itself
            inputs.update(select_size=res.select_size, select_accuracy_size=res.select_accuracy_size,
                          attacker=ATTACKER_VERSION)
        return inputs

    def score_inputs(self, cfg: CellConfig, spec: str) -> dict[str, Any]:
        """What one interpreter's score on a manipulated model depends on besides the cell's id."""
        return {"interpreter_code": self._code(spec, INTERPRETERS), "attack_code": self._code(cfg.attack, ATTACKS),
                "eval_size": self.resources.eval_size, "base": self.resources.fingerprint(cfg.track, cfg.model)}

    def is_done(self, cfg: CellConfig) -> bool:
        """Whether the store's record of ``cfg`` can be reused: ok (or failed, when failed cells are
        kept), computed from the same base weights and the same inputs (:meth:`cell_inputs`); a stale
        record's scores are dropped, and it is recomputed, saying what changed."""
        record = self.store.get(cfg.cell_id)
        if record is None:
            return False
        stored = record.inputs if record.inputs is not None else _LEGACY_INPUTS  # written before inputs existed
        changed = sorted(k for k, v in self.cell_inputs(cfg).items() if stored.get(k, "unknown") != v)
        if record.ok and record.base_fingerprint != self.resources.fingerprint(cfg.track, cfg.model):
            changed.insert(0, "the base model's weights")
        if not changed:
            return record.status != "failed" or not self.retry_failed
        self.log(f"cell {cfg.label}: {', '.join(changed)} changed since it was computed; recomputing")
        self.store.drop_scores(cfg.cell_id)
        return False

    def _score_is_current(self, cfg: CellConfig, spec: str, params: dict[str, Any]) -> ScoreRecord | None:
        """The stored score of ``spec`` on ``cfg`` when it can be reused (same inputs; failed ones only
        when failed cells are kept)."""
        stored = self.store.get_score(cfg.cell_id, spec, params)
        if stored is None or stored.inputs != self.score_inputs(cfg, spec):
            return None
        return stored if stored.ok or not self.retry_failed else None

    @staticmethod
    def weights_key(cfg: CellConfig) -> str:
        """The id under which the store keeps a cell's manipulated weights: the cell's own, or, for a
        control, one shared by the controls of the same base model, schedule and seed (with lambda = 0
        neither the attack nor an interpreter changes the weights)."""
        if not cfg.is_control:
            return cfg.cell_id
        ident = {"track": cfg.track, "model": cfg.model, "params": cfg.params.to_dict(), "seed": cfg.seed,
                 "version": cfg.version}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]

    def manipulated(self, cfg: CellConfig) -> nn.Module:
        """The manipulated model of a computed cell, from the store's weights."""
        base = self.resources.base(cfg.track, cfg.model)
        path = self.store.weights_path(self.weights_key(cfg))
        if not path.exists():
            raise MissingResourceError(f"no manipulated weights for cell {cfg.label} ({cfg.cell_id}) at {path}; "
                                       "compute the cell first (rbi run, or Runner.run_cell)")
        model = copy.deepcopy(base.model)
        model.load_state_dict(load_state_dict_safe(path, map_location=self.resources.device))
        return model.eval()

    # ---- computing

    def _verify_base(self, cfg: CellConfig, spec: str) -> None:
        problem = self.resources.verify_base(cfg.track, cfg.model)
        if problem is not None:
            raise IsolationError(f"interpreter {spec!r} left {problem}; an interpreter must not modify the model")

    def _manipulate(self, cfg: CellConfig, interpreter: Interpreter | None) -> tuple[nn.Module, dict[str, Any]]:
        """Fine-tune the cell's base model (through ``interpreter``; None for a control, whose
        weights are shared: see :meth:`weights_key`), with the attacker's search when the cell has
        one, and save the weights."""
        path = self.store.weights_path(self.weights_key(cfg))
        if cfg.is_control:  # its fine-tuning is shared by the controls of one model, schedule and seed
            claims, key = Claims(self.store.root), f"weights-{self.weights_key(cfg)}"
            while not path.exists() and not claims.acquire(key):  # another runner is fine-tuning it: wait
                time.sleep(0.5)
            if path.exists():
                if claims.mine(key):
                    claims.release(key)
                return self.manipulated(cfg), {"weights_shared": True}
            with claims.beating(key):  # released once the weights are saved
                return self._fine_tune(cfg, interpreter, path)
        return self._fine_tune(cfg, interpreter, path)

    def _fine_tune(self, cfg: CellConfig, interpreter: Interpreter | None, path: Any
                   ) -> tuple[nn.Module, dict[str, Any]]:
        """The fine-tuning of :meth:`_manipulate`, its weights saved at ``path``."""
        base = self.resources.base(cfg.track, cfg.model)
        cache = ReferenceCache() if cfg.search is not None else None  # the search's runs share the reference maps

        def start(params: AttackParams, progress: Callable[..., None] | None = None) -> ManipulationRun:
            def report(step: int, total: int, losses: dict[str, float]) -> None:
                if self.progress is not None:
                    self.progress(cfg.label, step, total, losses)

            return ManipulationRun(
                base.model, base.target_layer, interpreter, get_attack(cfg.attack), params,
                self.resources.data(cfg.track).train, self.resources.fooling_data(cfg),
                attack_params=dict(cfg.attack_params), classes=cfg.classes, seed=cfg.seed,
                device=self.resources.device, progress=progress or report, reference_cache=cache,
            )

        found: dict[str, Any] = {}
        if cfg.search is not None and interpreter is not None:
            outcome = self._search(cfg, interpreter, start)
            result, found = outcome.manipulation, {"search": outcome.summary(), "chosen": {
                "lr": outcome.winner.params.lr, "lam": outcome.winner.params.lam,
                "surrogate": outcome.winner.params.surrogate, "preset": outcome.winner.preset}}
        else:
            result = start(cfg.params).advance().result()
        atomic_save_state_dict(path, result.model.state_dict())
        last = result.history[-1] if result.history else {}
        summary = {
            "manipulation_seconds": result.seconds,
            "steps": len(result.history),
            "final_ce": last.get("ce"),
            "final_penalty": last.get("penalty"),
            "first_penalty": result.history[0]["penalty"] if result.history else None,
            "penalty_grad_norms": list(getattr(result, "penalty_grad_norms", []) or []),
            **found,
        }
        return result.model, summary

    def _search(self, cfg: CellConfig, interpreter: Interpreter, start: Callable[..., ManipulationRun]) -> SearchResult:
        """The attacker's search of a cell (SPEC section 9): configurations measured on the fooling
        split with the attacking interpreter (its selection noise); the leader of each rung is also
        scored on the test split for the FSR-versus-budget curve (reported, never used to choose)."""
        from robustbench_interp.interpreters.noise import selection_interpreter

        res = self.resources
        selector = selection_interpreter(get_interpreter(cfg.interpreter, **dict(cfg.interpreter_params)))
        scorer = self.scorer(cfg.interpreter, cfg.interpreter_params)
        sets = res.selection_sets(cfg)
        before = res.selection_accuracy(cfg.track, cfg.model)

        def evaluate(model: nn.Module) -> dict[str, float]:
            scores = self.score(cfg, selector, model, sets=sets)
            after = res.selection_accuracy(cfg.track, cfg.model, model)
            distance = scores.get("mean_distance")
            return {"fsr": scores["fsr"], "top1_drop": float(before["top1"]) - float(after["top1"]),
                    "empty_rate": scores["empty_rate"], "loss": scores.get("mean_test_loss"),
                    "progress": None if distance is None else -distance}

        def report(model: nn.Module) -> dict[str, Any]:
            scores = self.score(cfg, scorer, model)
            return {"test_fsr": scores["fsr"], "test_loss": scores.get("mean_test_loss")}

        # one progress bar for the whole search: minibatches of every configuration against the plan
        planned = planned_minibatches(cfg.search, cfg.params)
        done_by: dict[int, int] = {}

        def labelled(params: AttackParams) -> ManipulationRun:
            key, tag = len(done_by), f"lr={params.lr:g} lam={params.lam:g} {params.surrogate}"
            done_by[key] = 0

            def progress(step: int, total: int, losses: dict[str, float]) -> None:
                done_by[key] = step
                if self.progress is not None:
                    self.progress(f"{cfg.label} [search]", min(sum(done_by.values()), planned - 1), planned,
                                  {**losses, "config": tag})

            return start(params, progress)

        try:
            return search(cfg.params, cfg.search, labelled, evaluate, report=report, log=self.log)
        finally:
            if self.progress is not None:
                self.progress(f"{cfg.label} [search]", planned, planned, {})

    def control_of(self, cfg: CellConfig) -> CellConfig | None:
        """The control of an attacked cell: :attr:`CellConfig.control`, or for a searched cell the
        control of the configuration its search chose (None until the cell is computed)."""
        if cfg.is_control:
            return None
        if cfg.search is None:
            return cfg.control
        record = self.store.get(cfg.cell_id)
        return None if record is None or not record.ok else _chosen_control(cfg, record.metrics.get("chosen"))

    def score(self, cfg: CellConfig, interpreter: Interpreter, model: nn.Module,
              sets: list[EvalSet] | None = None) -> dict[str, Any]:
        """Score ``interpreter`` on manipulated ``model`` of cell ``cfg`` against the base model, on
        the cell's evaluation sets or on ``sets`` (the attacker's fooling split)."""
        attack = get_attack(cfg.attack)
        shared = self.weights_key(cfg) if cfg.is_control else None
        sets = self.resources.eval_sets(cfg) if sets is None else sets
        pairs = self.resources.maps_before_after(cfg, interpreter, model, weights_key=shared, sets=sets)
        labels = None if attack.two_classes else sets[0][2]
        try:
            return score_maps(attack, tuple(p[1] for p in pairs), tuple(p[0] for p in pairs),
                              attack.make_params(dict(cfg.attack_params)), labels=labels)
        except RBIError:
            raise
        except Exception as exc:  # a plug-in attack's test loss failed: the score fails, not the run
            raise AttackError(f"the test loss of attack {cfg.attack!r} raised {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def scorer(spec: str, params: Any = ()) -> Interpreter:
        """Interpreter ``spec`` as it scores: a stochastic one draws its noise from the scoring seed,
        which no manipulation step ever uses (SPEC section 8)."""
        from robustbench_interp.interpreters.noise import scoring_interpreter

        return scoring_interpreter(get_interpreter(spec, **dict(params)))

    def aopc(self, cfg: CellConfig, interpreter: Interpreter, model: nn.Module) -> dict[str, Any]:
        """AOPC of w0 with its maps and of w* with its own and with w0's maps (passive attacks)."""
        if self.aopc_size <= 0 or get_attack(cfg.attack).two_classes:
            return {}
        device = self.resources.device
        (_key, x, y), = self.resources.eval_sets(cfg)
        n = min(self.aopc_size, len(x))
        ((h0, h),) = self.resources.maps_before_after(cfg, interpreter, model, limit=n)
        base = self.resources.base(cfg.track, cfg.model)
        return aopc_before_after(base.model, model, x[:n].to(device), y[:n].to(device), h0, h, seed=cfg.seed)

    # ---- cells

    def run_cell(self, cfg: CellConfig) -> CellRecord:
        """Compute cell ``cfg`` (unless the store has it) and return its record."""
        if self.is_done(cfg):
            return self.store.get(cfg.cell_id)  # type: ignore[return-value]
        res = self.resources
        adaptive = None
        try:
            interpreter = None
            if not cfg.is_control:
                interpreter = get_interpreter(cfg.interpreter, **dict(cfg.interpreter_params))
                if not interpreter.differentiable:
                    raise NotDifferentiableError(
                        f"interpreter {cfg.interpreter!r} declares itself non-differentiable: it gets transfer "
                        "cells only (scored on models manipulated through other interpreters)"
                    )
            before = res.accuracy(cfg.track, cfg.model)
            started = time.perf_counter()
            model, summary = self._manipulate(cfg, interpreter)
            after = res.accuracy(cfg.track, cfg.model, model)
            metrics = {
                **summary,
                "accuracy_before": before,
                "accuracy_after": after,
                "top1_drop": _drop(before, after, "top1"),
                "top5_drop": _drop(before, after, "top5"),
            }
            if interpreter is not None:
                scorer = self.scorer(cfg.interpreter, cfg.interpreter_params)
                adaptive = self.score(cfg, scorer, model)
                self._verify_base(cfg, cfg.interpreter)
                metrics.update(adaptive=without_lists(adaptive), aopc=self.aopc(cfg, scorer, model))
            metrics["wall_seconds"] = time.perf_counter() - started
            metrics["environment"] = environment(res.device)
        except NotDifferentiableError as exc:  # declared, or found by the gradient-masking check
            self.log(f"cell {cfg.label}: not attackable adaptively: {exc}")
            return self.store.put_not_attackable(
                cfg, f"{type(exc).__name__}: {exc}", {"penalty_grad_norms": list(getattr(exc, "norms", []))},
                base_fingerprint=res.fingerprint(cfg.track, cfg.model), inputs=self.cell_inputs(cfg))
        except (InterpreterError, AttackError, PluginImportError) as exc:
            self.log(f"cell {cfg.label} failed: {exc}")
            return self.store.put_failed(cfg, f"{type(exc).__name__}: {exc}", inputs=self.cell_inputs(cfg))
        control = _chosen_control(cfg, metrics.get("chosen"))
        record = self.store.put(cfg, metrics, base_fingerprint=res.fingerprint(cfg.track, cfg.model),
                                inputs=self.cell_inputs(cfg), control=control)
        if adaptive is not None:
            self.store.put_score(cfg.cell_id, cfg.interpreter, adaptive, interpreter_params=cfg.interpreter_params,
                                 inputs=self.score_inputs(cfg, cfg.interpreter))
        return record

    def score_cell(self, cfg: CellConfig, spec: str, params: dict[str, Any] | None = None) -> ScoreRecord | None:
        """Score interpreter ``spec`` on the manipulated model of ``cfg`` (a transfer cell when
        ``spec`` is not the attacking interpreter). Failures are stored with their reason."""
        params = params or {}
        record = self.store.get(cfg.cell_id)
        if record is None or not record.ok:
            return None
        current = self._score_is_current(cfg, spec, params)
        if current is not None:
            return current
        inputs = self.score_inputs(cfg, spec)
        try:
            interpreter = self.scorer(spec, params)
            scores = self.score(cfg, interpreter, self.manipulated(cfg))
            self._verify_base(cfg, spec)
        except (InterpreterError, AttackError, PluginImportError) as exc:
            return self.store.put_score_failed(cfg.cell_id, spec, f"{type(exc).__name__}: {exc}",
                                               interpreter_params=params, inputs=inputs)
        return self.store.put_score(cfg.cell_id, spec, scores, interpreter_params=params, inputs=inputs)

    def run_grid(
        self, cells: Sequence[CellConfig], *, score_with: Iterable[str] = (), keep_going: bool = True,
        poll_seconds: float = 0.5,
    ) -> list[CellRecord]:
        """Run ``cells`` in order (skipping those in the store), then score every ``score_with``
        interpreter on each manipulated model (transfer). Returns the cell records.

        Each cell is claimed first (:mod:`robustbench_interp.claims`), so runners sharing the store
        never compute a cell twice: a cell another live runner holds is left to it and taken up again
        once it is stored (or its owner died), after this runner's other cells."""
        claims = Claims(self.store.root)
        scorers = list(score_with)
        done: dict[str, CellRecord] = {}
        pending = list(dict.fromkeys(cells))
        while pending:
            held_elsewhere = []
            for cfg in pending:
                if self.progress is not None:
                    self.progress("grid", len(done), len(cells), {})
                if not claims.acquire(cfg.cell_id):
                    held_elsewhere.append(cfg)
                    continue
                with claims.beating(cfg.cell_id):  # heartbeats through every phase; released after
                    done[cfg.cell_id] = self._run_and_score(cfg, scorers, keep_going)
            if len(held_elsewhere) == len(pending):
                time.sleep(poll_seconds)  # every cell left is another runner's: wait for them
            pending = held_elsewhere
        if self.progress is not None:
            self.progress("grid", len(cells), len(cells), {})
        return [done[cfg.cell_id] for cfg in cells]

    def _run_and_score(self, cfg: CellConfig, scorers: list[str], keep_going: bool) -> CellRecord:
        try:
            record = self.run_cell(cfg)
        except RBIError as exc:  # a documented error: its message says what is wrong and how to fix it
            if not keep_going:
                raise
            self.log(f"cell {cfg.label} failed: {type(exc).__name__}: {exc}")
            record = self.store.put_failed(cfg, f"{type(exc).__name__}: {exc}", inputs=self.cell_inputs(cfg))
        for spec in scorers:
            self.score_cell(cfg, spec)
        if cfg.search is not None and record.ok:  # its control follows the configuration chosen
            control = self.control_of(cfg)
            claims = Claims(self.store.root)
            if control is not None and claims.acquire(control.cell_id):  # else another runner computes it
                with claims.beating(control.cell_id):
                    self._run_and_score(control, scorers, keep_going)
        return record


def _chosen_control(cfg: CellConfig, chosen: dict[str, Any] | None) -> CellConfig | None:
    """The control of searched cell ``cfg`` from the configuration its search chose (a record's ``chosen``)."""
    if not chosen:
        return None
    return cfg.control_for(replace(cfg.params, lr=float(chosen["lr"]), lam=float(chosen["lam"]),
                                   surrogate=str(chosen["surrogate"])))


def environment(device: Any) -> dict[str, Any]:
    """What computed a cell besides its config and code: torch's version, the device and, on a CPU,
    torch's thread count. Recorded, never part of the id: the same seed gives the same numbers
    on the same machine, but a different thread count splits a CPU's reductions differently (1
    and 2 threads give different weights after 55 manipulation steps of the tiny ResNet:
    docs/thread_rounding.py), so two
    machines agree within the regression check's tolerances, not to the last bit."""
    import torch

    dev = torch.device(device)
    out: dict[str, Any] = {"torch": torch.__version__, "device": dev.type}
    if dev.type == "cuda":
        out["device_name"] = torch.cuda.get_device_name(dev)
    else:
        out["threads"] = torch.get_num_threads()
    return out


def _drop(before: dict[str, Any], after: dict[str, Any], key: str) -> float | None:
    if before.get(key) is None or after.get(key) is None:
        return None
    return float(before[key]) - float(after[key])


def _library_version(library: str) -> str:
    """``"<library>==<version>"`` of an installed library (an adapter's maps change with it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{library}=={version(library)}"
    except PackageNotFoundError:
        return "unimportable"
