"""The resources of a benchmark run, loaded once and shared: base models, evaluation data, composites,
base accuracies and the base models' reference maps.

:class:`Resources` holds no results (those live in the :class:`~robustbench_interp.store.Store`) and
computes no score (those are pure functions in :mod:`robustbench_interp.metrics`); it answers
"what are the inputs of cell X": the base model and its fingerprint, the evaluation data of an
attack, and the maps of an interpreter before and after a manipulation. The runner, the figures,
the regression check and the pytest plugin all ask it through these public methods.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from robustbench_interp.attacks import get_attack
from robustbench_interp.attacks.finetune import corresponding_module, expected_grid, explain_checked
from robustbench_interp.config import CellConfig
from robustbench_interp.errors import ConfigError
from robustbench_interp.interpreters.base import Interpreter
from robustbench_interp.metrics.accuracy import evaluate_accuracy
from robustbench_interp.models import load_model, resolve_device
from robustbench_interp.models.base import LoadedModel

#: How many map sets of shared weights (controls) are kept (oldest dropped first).
_SHARED_MAPS = 64

#: An evaluation set of a cell: (key, images, target classes).
EvalSet = tuple[str, Tensor, Tensor]


def first(dataset: Dataset, n: int | None) -> Dataset:
    """The first ``n`` items of ``dataset`` (all when None or more than it holds)."""
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
class TrackData:
    """The data of a track that cells share: the training split, the scored images and labels (of
    the track's ``eval_split``), the accuracy set, and the composites of two-class attacks (by
    class pair)."""

    train: Dataset
    eval_x: Tensor
    eval_y: Tensor
    accuracy_set: Dataset
    composites_train: dict[tuple[int, int], Dataset] = field(default_factory=dict)
    composites_eval: dict[tuple[int, int], Tensor] = field(default_factory=dict)
    select: tuple[Tensor, Tensor, Dataset] | None = None
    composites_select: dict[tuple[int, int], Tensor] = field(default_factory=dict)


def _two_class_sets(x: Tensor, classes: tuple[int, int], part: str) -> list[EvalSet]:
    """The evaluation sets of a two-class attack on composites ``x``: c1's, then c2's."""
    c1, c2 = classes
    return [(f"active-{c1}-{c2}-{part}{name}", x, torch.full((len(x),), c, dtype=torch.long))
            for name, c in (("c1", c1), ("c2", c2))]


def _state_hash(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _size(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{name} must be an integer >= 1 (or None for all), got {value!r}")
    return value


class Resources:
    """Base models, data and reference maps of a run, each loaded or computed once.

    ``eval_size`` images of the track's evaluation split (tiny: "test"; and of its scored composites)
    are scored; ``accuracy_size`` images of it measure accuracy (None: all); ``batch_size`` images go through
    an interpreter at once. The attacker measures its configurations on ``select_size`` images of
    the track's selection split (and of its selection composites) and their top-1 on
    ``select_accuracy_size`` images of it (:meth:`selection_sets`).
    """

    def __init__(
        self,
        *,
        device: str | torch.device = "cpu",
        eval_size: int | None = 256,
        accuracy_size: int | None = None,
        batch_size: int = 64,
        data_root: str | None = None,
        select_size: int = 128,
        select_accuracy_size: int = 1000,
    ) -> None:
        self.device = resolve_device(device)
        self.select_size = _size("select_size", select_size)
        self.select_accuracy_size = _size("select_accuracy_size", select_accuracy_size)
        self.eval_size = _size("eval_size", eval_size)
        self.accuracy_size = _size("accuracy_size", accuracy_size)
        self.batch_size = _size("batch_size", batch_size)
        self.data_root = data_root
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._data: dict[str, TrackData] = {}
        self._accuracy: dict[tuple[str, ...], dict[str, Any]] = {}
        self._maps0: dict[tuple[Any, ...], Tensor] = {}
        self._fingerprints: dict[tuple[str, str], str] = {}
        self._pristine: dict[tuple[str, str], nn.Module] = {}
        self._shared_maps: dict[tuple[Any, ...], Tensor] = {}

    # ---- base models

    def add_base(self, loaded: LoadedModel) -> None:
        """Use ``loaded`` as the base model ``(loaded.track, loaded.name)`` (bring your own model)."""
        self._models[(loaded.track, loaded.name)] = loaded
        self._pristine[(loaded.track, loaded.name)] = copy.deepcopy(loaded.model)

    def base(self, track: str, model: str) -> LoadedModel:
        """The base model ``model`` of ``track`` (trained or loaded on first use)."""
        key = (track, model)
        if key not in self._models:
            self.add_base(load_model(track, model, device=str(self.device)))
        return self._models[key]

    def fingerprint(self, track: str, model: str) -> str:
        """A hash of the base model's weights: a cell computed from other weights is stale."""
        key = (track, model)
        if key not in self._fingerprints:
            self._fingerprints[key] = _state_hash(self.base(track, model).model)
        return self._fingerprints[key]

    def verify_base(self, track: str, model: str) -> str | None:
        """Check that the shared base model is as it was loaded (weights, buffers, modules); if it is
        not, put the loaded one back and say so (an interpreter changed it in place: its cell fails)."""
        key = (track, model)
        if key not in self._models:
            return None
        loaded = self._models[key]
        if _state_hash(loaded.model) == self.fingerprint(track, model):
            return None
        fresh = copy.deepcopy(self._pristine[key])
        self._models[key] = dataclasses.replace(loaded, model=fresh, target_layer=(
            fresh.get_submodule(loaded.target_layer_name) if loaded.target_layer_name
            else corresponding_module(loaded.model, fresh, loaded.target_layer)))
        self._maps0 = {k: v for k, v in self._maps0.items() if k[:2] != key}
        return f"the base model {track}/{model}'s weights, buffers or modules changed in place (restored)"

    def accuracy(self, track: str, model_name: str, model: nn.Module | None = None) -> dict[str, Any]:
        """Top-1 / top-5 accuracy (percent) of a base model (cached) or of ``model``."""
        return self._accuracy_on((track, model_name), self.data(track).accuracy_set, track, model_name, model)

    def _accuracy_on(self, key: tuple[str, ...], dataset: Dataset, track: str, model_name: str,
                     model: nn.Module | None) -> dict[str, Any]:
        """Top-1 / top-5 on ``dataset`` of ``model``, or of the base model (cached under ``key``)."""
        if model is None and key in self._accuracy:
            return self._accuracy[key]
        net = model if model is not None else self.base(track, model_name).model
        acc = evaluate_accuracy(net, dataset, device=self.device, batch_size=self.batch_size)
        if model is None:
            self._accuracy[key] = acc
        return acc

    # ---- data

    def data(self, track: str) -> TrackData:
        """The track's shared data (generated or read once)."""
        if track not in self._data:
            from robustbench_interp.data import get_dataset
            from robustbench_interp.tracks import get_track

            scored = get_dataset(track, get_track(track).eval_split, root=self.data_root)
            eval_x, eval_y = stack_dataset(first(scored, self.eval_size))[:2]
            self._data[track] = TrackData(
                train=get_dataset(track, "train", root=self.data_root),
                eval_x=eval_x,
                eval_y=eval_y.long(),
                accuracy_set=first(scored, self.accuracy_size),
            )
        return self._data[track]

    def composites(self, track: str, classes: tuple[int, int], part: str) -> Any:
        """The composites of a class pair: the "train" dataset, or the stacked images scored (``part``
        "eval": the track's ``eval_composites``)."""
        from robustbench_interp.data import get_composites
        from robustbench_interp.tracks import get_track

        data = self.data(track)
        if part == "train":
            if classes not in data.composites_train:
                data.composites_train[classes] = get_composites(track, *classes, "train", root=self.data_root)
            return data.composites_train[classes]
        if classes not in data.composites_eval:
            scored = get_composites(track, *classes, get_track(track).eval_composites, root=self.data_root)
            data.composites_eval[classes] = stack_dataset(first(scored, self.eval_size))[0]
        return data.composites_eval[classes]

    def fooling_data(self, cfg: CellConfig) -> Dataset | None:
        """The data of the attack's penalty when it is not the training split (two-class attacks)."""
        return self.composites(cfg.track, cfg.classes, "train") if get_attack(cfg.attack).two_classes else None

    def eval_sets(self, cfg: CellConfig) -> list[EvalSet]:
        """The evaluation data of a cell as ``(key, x, target)``, one per target of the attack: the
        images of the track's evaluation split with their labels, or the scored composites with c1,
        then c2."""
        if not get_attack(cfg.attack).two_classes:
            data = self.data(cfg.track)
            return [("eval", data.eval_x, data.eval_y)]
        return _two_class_sets(self.composites(cfg.track, cfg.classes, "eval"), cfg.classes, "")

    # ---- the attacker's fooling split (SPEC section 9)

    def _disjoint(self, track: str, dataset: Dataset, n: int, scored_split: bool, what: str) -> Dataset:
        """The first ``n`` items of ``dataset``, or, when it is the scored split too, the last ``n``
        (checked disjoint from the scored start)."""
        size = len(dataset)  # type: ignore[arg-type]
        n = min(n, size)
        if not scored_split:
            return first(dataset, n)
        scored = size if self.eval_size is None or self.accuracy_size is None else min(
            max(self.eval_size, self.accuracy_size), size)  # the scored images and the accuracy set
        if scored + n > size:
            raise ConfigError(
                f"the {track} track selects configurations on its scored {what} ({size} items): {scored} are scored "
                f"and {n} would be selected on, which overlap; lower eval_size or select_size"
            )
        return Subset(dataset, range(size - n, size))

    def _selection(self, track: str) -> tuple[Tensor, Tensor, Dataset]:
        from robustbench_interp.data import get_dataset
        from robustbench_interp.tracks import get_track

        data = self.data(track)
        if data.select is None:
            spec = get_track(track)
            dataset = get_dataset(track, spec.select_split, root=self.data_root)
            same = spec.select_split == spec.eval_split
            x, y = stack_dataset(self._disjoint(track, dataset, self.select_size, same, "split"))[:2]
            accuracy = self._disjoint(track, dataset, max(self.select_size, self.select_accuracy_size), same, "split")
            data.select = (x, y.long(), accuracy)
        return data.select

    def selection_sets(self, cfg: CellConfig) -> list[EvalSet]:
        """The attacker's fooling split of a cell, as :meth:`eval_sets` gives the scored one: images
        of the track's ``select_split`` with their labels, or composites of its ``select_composites``
        with c1, then c2. Never an image that is scored."""
        from robustbench_interp.data import get_composites
        from robustbench_interp.tracks import get_track

        if not get_attack(cfg.attack).two_classes:
            x, y, _ = self._selection(cfg.track)
            return [("select", x, y)]
        data, spec, classes = self.data(cfg.track), get_track(cfg.track), cfg.classes
        if classes not in data.composites_select:
            part = spec.select_composites
            dataset = get_composites(cfg.track, *classes, part, root=self.data_root)
            chosen = self._disjoint(cfg.track, dataset, self.select_size, part == spec.eval_composites, "composites")
            data.composites_select[classes] = stack_dataset(chosen)[0]
        return _two_class_sets(data.composites_select[classes], classes, "select-")

    def selection_accuracy(self, track: str, model_name: str, model: nn.Module | None = None) -> dict[str, Any]:
        """Top-1 / top-5 (percent) on the attacker's accuracy images of the fooling split, of a base
        model (cached) or of ``model``."""
        return self._accuracy_on((track, model_name, "select"), self._selection(track)[2], track, model_name, model)

    # ---- maps

    def reference_maps(self, cfg: CellConfig, interpreter: Interpreter, key: str, x: Tensor, t: Tensor) -> Tensor:
        """Maps of the base model of ``cfg`` for one evaluation set (computed once per interpreter)."""
        base = self.base(cfg.track, cfg.model)
        cache_key = (cfg.track, cfg.model, interpreter.name, repr(interpreter), key)
        if cache_key not in self._maps0:
            self._maps0[cache_key] = compute_maps(
                interpreter, base.model, base.target_layer, x, t, batch_size=self.batch_size, device=self.device
            )
        return self._maps0[cache_key]

    def maps_before_after(
        self, cfg: CellConfig, interpreter: Interpreter, model: nn.Module, limit: int | None = None,
        *, weights_key: str | None = None, sets: list[EvalSet] | None = None,
    ) -> list[tuple[Tensor, Tensor]]:
        """``(h0, h)`` per evaluation set of ``cfg`` (or per set of ``sets``, e.g. the
        :meth:`selection_sets`): maps of the base model (cached) and of the
        manipulated ``model``, for the first ``limit`` images (all when None). ``weights_key`` names
        ``model``'s weights when several cells share them (the controls of one model and seed): its
        maps are then computed once for all of them."""
        base = self.base(cfg.track, cfg.model)
        layer = corresponding_module(base.model, model, base.target_layer)
        pairs = []
        for key, x, t in (self.eval_sets(cfg) if sets is None else sets):
            h0 = self.reference_maps(cfg, interpreter, key, x, t)[:limit]
            shared = None if weights_key is None else (weights_key, interpreter.name, repr(interpreter), key, limit)
            h = self._shared_maps.get(shared) if shared is not None else None
            if h is None:
                h = compute_maps(interpreter, model, layer, x[:limit], t[:limit], batch_size=self.batch_size,
                                 device=self.device)
                if shared is not None:
                    self._shared_maps[shared] = h
                    while len(self._shared_maps) > _SHARED_MAPS:
                        self._shared_maps.pop(next(iter(self._shared_maps)))
            pairs.append((h0, h))
        return pairs
