"""The interface of a track (SPEC section 6): everything about one benchmark setting in one object.

A track declares its datasets and Active composites, its base models and how to load them, its
classes and input size, the Active class pair, the schedule of a manipulation (steps or epochs,
batch size, learning-rate cooldown), the per-interpreter learning rates that differ from an
attack's preset, and the adversarial-training radius of its ``-adv`` models. An attack's preset on
a track (:class:`~robustbench_interp.attacks.Preset`: lr, lambda, the attack's own parameters)
lives in the attack's file, or, for a track added after the attack, in the track's ``presets``:
the attack's own entry wins.

Add a track: subclass :class:`Track` in one file, fill in the class attributes and the three
methods, and register it (:func:`~robustbench_interp.tracks.register_track`, or an entry point of
the group ``robustbench_interp.tracks``).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from robustbench_interp.attacks.base import Preset
    from robustbench_interp.config import SearchSpace

ADV_SUFFIX = "-adv"


@dataclass(frozen=True)
class Schedule:
    """How long a manipulation runs on a track: ``steps`` optimizer steps (when set) or ``epochs``
    passes over the training split, ``batch_size`` images a step, the learning rate decaying to 0
    over the last ``cooldown`` fraction of the steps (0 keeps it constant, as in the paper)."""

    steps: int | None = None
    epochs: int = 1
    batch_size: int = 8
    cooldown: float = 0.0


class Track(abc.ABC):
    """Base class of the benchmark's tracks."""

    #: Registered name (``--track``).
    name: ClassVar[str] = ""
    #: One line for ``rbi list``.
    description: ClassVar[str] = ""
    #: Where the track sits in listings (tiny first).
    order: ClassVar[int] = 100
    num_classes: ClassVar[int]
    #: (height, width) of the input images.
    input_size: ClassVar[tuple[int, int]]
    #: The (c1, c2) classes of the Active attack.
    active_classes: ClassVar[tuple[int, int]]
    #: The manipulation schedule every attack's preset uses on this track.
    schedule: ClassVar[Schedule] = Schedule()
    #: Attack name -> its preset on this track, for attacks whose own file has none for it.
    presets: ClassVar[Mapping[str, Preset]] = {}
    #: Attacking interpreter -> learning rate that replaces the attack's preset on this track.
    interpreter_lr: ClassVar[Mapping[str, float]] = {}
    #: L-inf radius (inputs in [0, 1]) of free adversarial training kept while manipulating ``-adv`` models.
    adv_eps: ClassVar[float]
    #: Replays m of each minibatch in that adversarial training (Shafahi et al. 2019).
    adv_replays: ClassVar[int] = 4
    #: The seeds every adaptive cell is manipulated with (SPEC section 8: at least 3 on tiny); the
    #: leaderboard reports their mean, spread and per-seed values.
    seeds: ClassVar[tuple[int, ...]] = (0,)
    #: The dataset splits.
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    #: The split a cell is scored and its accuracy measured on: never one that hyper-parameters were
    #: chosen on (SPEC section 4).
    eval_split: ClassVar[str] = "test"
    #: The part of the Active composites a two-class attack is scored on.
    eval_composites: ClassVar[str] = "test"
    #: The attacker's search on this track (SPEC section 9; :mod:`robustbench_interp.attacks.attacker`):
    #: the space around each attack's preset and the budget of optimizer steps per cell. None: the
    #: presets alone.
    search: ClassVar[SearchSpace | None] = None
    #: The split the attacker measures its configurations on (FSR and top-1 drop), and the part of
    #: the composites for two-class attacks: never the scored images. When it is the scored split
    #: too, the attacker takes its images from the end and the scorer from the start, disjoint.
    select_split: ClassVar[str] = "val"
    select_composites: ClassVar[str] = "heldout"

    @abc.abstractmethod
    def architectures(self) -> list[str]:
        """The base architectures; each also exists adversarially trained as ``<name>-adv``."""

    @abc.abstractmethod
    def dataset(self, split: str, root: str | os.PathLike | None = None) -> Dataset:
        """Items ``(x [3,H,W] float in [0,1], y int)`` of ``split``."""

    @abc.abstractmethod
    def composites(self, c1: int, c2: int, part: str, root: str | os.PathLike | None = None) -> Dataset:
        """Active composites ``(x, c1_mask, c2_mask)``; ``part`` is "train", "heldout" or "test"."""

    @abc.abstractmethod
    def build_model(self, arch: str, adv: bool, *, weights: Any, config: Any, progress: bool
                    ) -> tuple[nn.Module, str]:
        """The model of ``arch`` (adversarially trained when ``adv``) in eval mode on the CPU, and
        the qualified name of its target layer."""

    def models(self) -> list[str]:
        """Every base model: the architectures and their ``-adv`` versions, sorted."""
        names = self.architectures()
        return sorted(names + [n + ADV_SUFFIX for n in names])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
