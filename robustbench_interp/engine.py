"""Runs benchmark cells: manipulate a base model through an interpreter, score it, store the result.

A cell (:class:`~robustbench_interp.config.CellConfig`) is computed at most once: its record, its
manipulated weights and each interpreter's score on it live in the :class:`~robustbench_interp.store.Store`
under the cell's hash, so an interrupted grid resumes where it stopped and a re-run with nothing
changed recomputes nothing. A cell whose interpreter fails is stored as failed, with the reason,
and the grid carries on.

Scoring (SPEC sections 4 and 5): interpreter J scores a manipulated model ``w*`` against its base
``w0`` on the evaluation data: the validation split for passive attacks, held-out composites for
Active. J = the attacking interpreter gives the adaptive score; any other J a transfer score.
"""

from __future__ import annotations

import copy
import hashlib
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from robustbench_interp.attacks import get_attack
from robustbench_interp.attacks.finetune import (
    corresponding_module,
    expected_grid,
    explain_checked,
    manipulate,
)
from robustbench_interp.config import CellConfig
from robustbench_interp.errors import (
    InterpreterError,
    MissingResourceError,
    NotDifferentiableError,
    PluginImportError,
    RBIError,
)
from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.interpreters.base import Interpreter
from robustbench_interp.metrics.accuracy import evaluate_accuracy
from robustbench_interp.metrics.aopc import aopc_curve
from robustbench_interp.metrics.scoring import score_maps
from robustbench_interp.models import load_model, resolve_device
from robustbench_interp.models.base import LoadedModel
from robustbench_interp.store import Store, atomic_save_state_dict, load_state_dict_safe

#: A progress callback: (what, done, total, info) -> None.
Progress = Callable[[str, int, int, dict[str, float]], None]


def _first(dataset: Dataset, n: int | None) -> Dataset:
    size = len(dataset)  # type: ignore[arg-type]
    return dataset if n is None or n >= size else Subset(dataset, range(n))


def stack_dataset(dataset: Dataset, batch_size: int = 256) -> tuple[Tensor, ...]:
    """All items of ``dataset`` stacked into tensors (the evaluation sets are small)."""
    parts: list[list[Tensor]] = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        batch = batch if isinstance(batch, (list, tuple)) else [batch]
        if not parts:
            parts = [[] for _ in batch]
        for store, t in zip(parts, batch):
            store.append(torch.as_tensor(t))
    return tuple(torch.cat(p) for p in parts)


def compute_maps(
    interpreter: Interpreter,
    model: nn.Module,
    layer: nn.Module | None,
    x: Tensor,
    target: Tensor,
    *,
    batch_size: int,
    device: torch.device,
) -> Tensor:
    """Maps of ``interpreter`` for all of ``x`` (on the CPU), checked batch by batch."""
    grid = expected_grid(interpreter, model, layer, x[:1].to(device))
    maps = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        tb = target[start : start + batch_size].to(device)
        h = explain_checked(interpreter, model, xb, tb, layer, create_graph=False, grid=grid)
        maps.append(h.detach().float().cpu())
    return torch.cat(maps)


@dataclass
class _TrackData:
    train: Dataset
    val_x: Tensor
    val_y: Tensor
    accuracy_set: Dataset
    composites_train: dict[tuple[int, int], Dataset] = field(default_factory=dict)
    composites_eval: dict[tuple[int, int], Tensor] = field(default_factory=dict)


class Benchmark:
    """Computes cells and scores into a :class:`Store`, caching base models, data and reference maps.

    ``eval_size`` images of the validation split (and of the held-out composites) are scored;
    ``accuracy_size`` images of it measure accuracy (None: all). ``aopc_size`` images get AOPC
    curves (0 turns AOPC off).
    """

    def __init__(
        self,
        store: Store,
        *,
        device: str | torch.device = "cpu",
        eval_size: int | None = 256,
        accuracy_size: int | None = None,
        aopc_size: int = 64,
        batch_size: int = 64,
        data_root: str | None = None,
        retry_failed: bool = False,
        progress: Progress | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.device = resolve_device(device)
        self.eval_size, self.accuracy_size, self.aopc_size = eval_size, accuracy_size, aopc_size
        self.batch_size = batch_size
        self.data_root = data_root
        self.retry_failed = retry_failed
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._data: dict[str, _TrackData] = {}
        self._accuracy: dict[tuple[str, str], dict[str, Any]] = {}
        self._maps0: dict[tuple[Any, ...], Tensor] = {}
        self._fingerprints: dict[tuple[str, str], str] = {}

    # ---- inputs

    def add_base(self, loaded: LoadedModel) -> None:
        """Use ``loaded`` as the base model ``(loaded.track, loaded.name)`` (bring your own model)."""
        self._models[(loaded.track, loaded.name)] = loaded

    def base(self, track: str, model: str) -> LoadedModel:
        key = (track, model)
        if key not in self._models:
            self._models[key] = load_model(track, model, device=str(self.device))
        return self._models[key]

    def fingerprint(self, track: str, model: str) -> str:
        """A hash of the base model's weights: a cell computed from other weights is stale."""
        key = (track, model)
        if key not in self._fingerprints:
            digest = hashlib.sha256()
            for name, tensor in sorted(self.base(track, model).model.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprints[key] = digest.hexdigest()[:16]
        return self._fingerprints[key]

    def _is_done(self, cfg: CellConfig) -> bool:
        """Whether the store's record of ``cfg`` can be reused: ok (or failed, unless retrying) and
        computed from the same base weights; a stale record's scores are dropped."""
        if not self.store.has(cfg.cell_id, retry_failed=self.retry_failed):
            return False
        record = self.store.get(cfg.cell_id) or {}
        stored = record.get("base_fingerprint")
        if record.get("status") != "ok" or stored == self.fingerprint(cfg.track, cfg.model):
            return True
        self.log(f"cell {cfg.label}: the base model's weights changed since it was computed; recomputing")
        self.store.drop_scores(cfg.cell_id)
        return False

    def data(self, track: str) -> _TrackData:
        if track not in self._data:
            from robustbench_interp.data import get_dataset

            val = get_dataset(track, "val", root=self.data_root)
            val_x, val_y = stack_dataset(_first(val, self.eval_size))[:2]
            self._data[track] = _TrackData(
                train=get_dataset(track, "train", root=self.data_root),
                val_x=val_x,
                val_y=val_y.long(),
                accuracy_set=_first(val, self.accuracy_size),
            )
        return self._data[track]

    def composites(self, track: str, classes: tuple[int, int], part: str) -> Any:
        from robustbench_interp.data import get_composites

        data = self.data(track)
        if part == "train":
            if classes not in data.composites_train:
                data.composites_train[classes] = get_composites(track, *classes, "train", root=self.data_root)
            return data.composites_train[classes]
        if classes not in data.composites_eval:
            heldout = get_composites(track, *classes, "heldout", root=self.data_root)
            data.composites_eval[classes] = stack_dataset(_first(heldout, self.eval_size))[0]
        return data.composites_eval[classes]

    def accuracy(self, track: str, model_name: str, model: nn.Module | None = None) -> dict[str, Any]:
        """Top-1 / top-5 accuracy (percent) of a base model (cached) or of ``model``."""
        if model is None and (track, model_name) in self._accuracy:
            return self._accuracy[(track, model_name)]
        net = model if model is not None else self.base(track, model_name).model
        acc = evaluate_accuracy(
            net, self.data(track).accuracy_set, device=self.device, batch_size=self.batch_size
        )
        if model is None:
            self._accuracy[(track, model_name)] = acc
        return acc

    # ---- manipulation

    def manipulated(self, cfg: CellConfig) -> nn.Module:
        """The manipulated model of ``cfg``: from the store's weights cache, else computed and cached."""
        base = self.base(cfg.track, cfg.model)
        path = self.store.weights_path(cfg.cell_id)
        if path.exists():
            model = copy.deepcopy(base.model)
            model.load_state_dict(load_state_dict_safe(path, map_location=self.device))
            return model.eval()
        raise MissingResourceError(f"no manipulated weights for cell {cfg.label} ({cfg.cell_id}) at {path}; "
                                   "compute the cell first (rbi run, or Benchmark.run_cell)")

    def _manipulate(self, cfg: CellConfig, interpreter: Interpreter) -> tuple[nn.Module, dict[str, Any]]:
        base = self.base(cfg.track, cfg.model)
        data = self.data(cfg.track)
        attack = get_attack(cfg.attack)
        fool = self.composites(cfg.track, cfg.classes, "train") if attack.two_classes else None

        def report(step: int, total: int, losses: dict[str, float]) -> None:
            if self.progress is not None:
                self.progress(cfg.label, step, total, losses)

        result = manipulate(
            base.model,
            base.target_layer,
            interpreter,
            attack,
            cfg.params,
            data.train,
            fool,
            attack_params=dict(cfg.attack_params),
            classes=cfg.classes,
            seed=cfg.seed,
            device=self.device,
            progress=report,
        )
        atomic_save_state_dict(self.store.weights_path(cfg.cell_id), result.model.state_dict())
        last = result.history[-1] if result.history else {}
        summary = {
            "manipulation_seconds": result.seconds,
            "steps": len(result.history),
            "final_ce": last.get("ce"),
            "final_penalty": last.get("penalty"),
            "first_penalty": result.history[0]["penalty"] if result.history else None,
        }
        return result.model, summary

    # ---- scoring

    def eval_sets(self, cfg: CellConfig) -> list[tuple[str, Tensor, Tensor]]:
        """The evaluation data of a cell as ``(key, x, target)``: the validation images with their
        labels (passive attacks), or the held-out composites with c1, then c2 (two-class attacks)."""
        if not get_attack(cfg.attack).two_classes:
            data = self.data(cfg.track)
            return [("val", data.val_x, data.val_y)]
        x = self.composites(cfg.track, cfg.classes, "heldout")
        c1, c2 = cfg.classes
        return [(f"active-{c1}-{c2}-{name}", x, torch.full((len(x),), c, dtype=torch.long))
                for name, c in (("c1", c1), ("c2", c2))]

    def _reference_maps(self, cfg: CellConfig, interpreter: Interpreter, key: str, x: Tensor, t: Tensor) -> Tensor:
        base = self.base(cfg.track, cfg.model)
        cache_key = (cfg.track, cfg.model, interpreter.name, repr(interpreter), key)
        if cache_key not in self._maps0:
            self._maps0[cache_key] = compute_maps(
                interpreter, base.model, base.target_layer, x, t, batch_size=self.batch_size, device=self.device
            )
        return self._maps0[cache_key]

    def maps_before_after(
        self, cfg: CellConfig, interpreter: Interpreter, model: nn.Module, limit: int | None = None
    ) -> list[tuple[Tensor, Tensor]]:
        """``(h0, h)`` per evaluation set of ``cfg``: maps of the base model (cached) and of the
        manipulated ``model``, for the first ``limit`` images (all when None)."""
        base = self.base(cfg.track, cfg.model)
        layer = corresponding_module(base.model, model, base.target_layer)
        pairs = []
        for key, x, t in self.eval_sets(cfg):
            h0 = self._reference_maps(cfg, interpreter, key, x, t)[:limit]
            h = compute_maps(interpreter, model, layer, x[:limit], t[:limit], batch_size=self.batch_size,
                             device=self.device)
            pairs.append((h0, h))
        return pairs

    def score(self, cfg: CellConfig, interpreter: Interpreter, model: nn.Module) -> dict[str, Any]:
        """Score ``interpreter`` on manipulated ``model`` of cell ``cfg`` against the base model."""
        attack = get_attack(cfg.attack)
        pairs = self.maps_before_after(cfg, interpreter, model)
        h0 = tuple(p[0] for p in pairs)
        h = tuple(p[1] for p in pairs)
        labels = None if attack.two_classes else self.eval_sets(cfg)[0][2]
        return score_maps(attack, h, h0, attack.make_params(dict(cfg.attack_params)), labels=labels)

    def _aopc(self, cfg: CellConfig, interpreter: Interpreter, model: nn.Module) -> dict[str, Any]:
        """AOPC (most relevant first) of w0 with its maps and of w* with its own and with w0's maps."""
        if self.aopc_size <= 0 or get_attack(cfg.attack).two_classes:
            return {}
        base = self.base(cfg.track, cfg.model)
        (_key, x, y), = self.eval_sets(cfg)
        n = min(self.aopc_size, len(x))
        x, y = x[:n].to(self.device), y[:n].to(self.device)
        ((h0, h),) = self.maps_before_after(cfg, interpreter, model, limit=n)
        size = x.shape[-1]
        patch = max(1, size // 8)
        out: dict[str, Any] = {}
        for name, net, maps in (("w0_h0", base.model, h0), ("wstar_hstar", model, h), ("wstar_h0", model, h0)):
            gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
            curve, value = aopc_curve(net, x, y, maps.to(self.device), steps=16, patch=patch, generator=gen)
            out[name] = {"aopc": value, "curve": curve.double().tolist()}
        return out

    # ---- cells

    def run_cell(self, cfg: CellConfig) -> dict[str, Any]:
        """Compute cell ``cfg`` (unless the store has it) and return its record."""
        if self._is_done(cfg):
            return self.store.get(cfg.cell_id)  # type: ignore[return-value]
        try:
            interpreter = get_interpreter(cfg.interpreter, **dict(cfg.interpreter_params))
            if not interpreter.differentiable:
                raise NotDifferentiableError(
                    f"interpreter {cfg.interpreter!r} declares itself non-differentiable: it gets transfer "
                    "cells only (scored on models manipulated through other interpreters)"
                )
            track, name = cfg.track, cfg.model
            before = self.accuracy(track, name)
            started = time.perf_counter()
            model, summary = self._manipulate(cfg, interpreter)
            after = self.accuracy(track, name, model)
            adaptive = self.score(cfg, interpreter, model)
            metrics = {
                **summary,
                "accuracy_before": before,
                "accuracy_after": after,
                "top1_drop": _drop(before, after, "top1"),
                "top5_drop": _drop(before, after, "top5"),
                "adaptive": _without_lists(adaptive),
                "aopc": self._aopc(cfg, interpreter, model),
                "wall_seconds": time.perf_counter() - started,
            }
        except (InterpreterError, PluginImportError) as exc:
            self.log(f"cell {cfg.label} failed: {exc}")
            return self.store.put_failed(cfg, f"{type(exc).__name__}: {exc}")
        record = self.store.put(cfg, metrics, base_fingerprint=self.fingerprint(cfg.track, cfg.model))
        self.store.put_score(cfg.cell_id, cfg.interpreter, adaptive, interpreter_params=cfg.interpreter_params)
        return record

    def score_cell(self, cfg: CellConfig, spec: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Score interpreter ``spec`` on the manipulated model of ``cfg`` (a transfer cell when
        ``spec`` is not the attacking interpreter). Failures are stored with their reason."""
        params = params or {}
        record = self.store.get(cfg.cell_id)
        if record is None or record["status"] != "ok":
            return None
        if self.store.has_score(cfg.cell_id, spec, params, retry_failed=self.retry_failed):
            return self.store.get_score(cfg.cell_id, spec, params)
        try:
            interpreter = get_interpreter(spec, **params)
            model = self.manipulated(cfg)
            scores = self.score(cfg, interpreter, model)
        except (InterpreterError, PluginImportError) as exc:
            return self.store.put_score_failed(cfg.cell_id, spec, f"{type(exc).__name__}: {exc}",
                                               interpreter_params=params)
        return self.store.put_score(cfg.cell_id, spec, scores, interpreter_params=params)

    def run_grid(
        self, cells: Sequence[CellConfig], *, score_with: Iterable[str] = (), keep_going: bool = True
    ) -> list[dict[str, Any]]:
        """Run ``cells`` in order (skipping those in the store), then score every ``score_with``
        interpreter on each manipulated model (transfer). Returns the cell records."""
        records = []
        scorers = list(score_with)
        for i, cfg in enumerate(cells, 1):
            if self.progress is not None:
                self.progress("grid", i - 1, len(cells), {})
            try:
                record = self.run_cell(cfg)
            except RBIError as exc:  # a documented error: its message says what is wrong and how to fix it
                if not keep_going:
                    raise
                self.log(f"cell {cfg.label} failed: {type(exc).__name__}: {exc}")
                record = self.store.put_failed(cfg, f"{type(exc).__name__}: {exc}")
            records.append(record)
            for spec in scorers:
                self.score_cell(cfg, spec)
        if self.progress is not None:
            self.progress("grid", len(cells), len(cells), {})
        return records


def _drop(before: dict[str, Any], after: dict[str, Any], key: str) -> float | None:
    if before.get(key) is None or after.get(key) is None:
        return None
    return float(before[key]) - float(after[key])


def _without_lists(scores: dict[str, Any]) -> dict[str, Any]:
    """The summary of a score record (per-image losses stay in the score file only)."""
    out: dict[str, Any] = {}
    for key, value in scores.items():
        if isinstance(value, dict):
            out[key] = _without_lists(value)
        elif not (isinstance(value, list) and len(value) > 2):
            out[key] = value
    return out
