"""The interface of a manipulation attack: everything about an attack in one registered object.

An attack (SPEC section 3) is a fooling penalty ``L_F`` minimised in ``CE + lambda * L_F``, a
per-image test loss with its success interval (SPEC section 4), its own hyper-parameters and its
presets per track. Built-ins live one per file (``location.py``, ``topk.py``, ``center_mass.py``,
``active.py``); a plug-in is one class too. There are two shapes:

- :class:`PassiveAttack`: the maps of the true class of ordinary images (Location, Top-k,
  Center-mass). ``penalty(h, h0, params)`` and ``test_loss(h, h0, params)``, with ``h`` the maps
  of the model being manipulated and ``h0`` those of the original model, both RAW ``[B, h, w]``.
- :class:`TwoClassAttack`: the maps of two classes ``c1``, ``c2`` on composite images that hold
  both (Active). ``penalty(h1, h2, h01, h02, params)`` and ``test_loss(...) -> (t1, t2)``.

The fine-tuning loop, the scorer, the grid and the leaderboard talk to every attack through the
same three methods (:meth:`Attack.targets`, :meth:`Attack.penalty_of`, :meth:`Attack.test_losses_of`),
so no code outside an attack's own file names it. ``Params`` is a frozen dataclass of the attack's
own hyper-parameters (``k`` for Top-k, the reduction for Active); its fields are part of a cell's
identity. ``presets`` maps a track name to a :class:`Preset` (the learning rate and lambda of the
fine-tuning, and values of ``Params``).

Write an attack::

    from robustbench_interp.attacks import PassiveAttack, Preset

    class Corner(PassiveAttack):
        name = "corner"
        success_interval = (0.0, 0.2)
        presets = {"tiny": Preset(lr=1e-3, lam=10.0)}

        def penalty(self, h, h0, params):
            return corner_loss(h).mean()

        def test_loss(self, h, h0, params):
            return corner_loss(h).detach()

and register it with ``register_attack`` (in your package), an entry point of the group
``robustbench_interp.attacks``, or give it as ``--attacks my_pkg.attacks:Corner``.
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from robustbench_interp.errors import ConfigError


@dataclass(frozen=True)
class NoParams:
    """The hyper-parameters of an attack that has none of its own."""


@dataclass(frozen=True)
class Preset:
    """The fine-tuning hyper-parameters of an attack on one track.

    ``lr`` and ``lam`` apply to every (model, attacking interpreter); ``table`` gives
    ``(lr, lam)`` for particular ``(model, interpreter)`` pairs (the paper's table on ImageNet),
    and ``fallback`` names the interpreter whose row other interpreters of a tabled model use.
    ``params`` sets fields of the attack's ``Params`` on this track.
    """

    lr: float | None = None
    lam: float | None = None
    table: Mapping[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    fallback: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def lookup(self, model: str, interpreter: str) -> tuple[float, float] | None:
        """``(lr, lam)`` of ``model`` attacked through ``interpreter``, or None when none is set."""
        for key in ((model, interpreter), (model, self.fallback)):
            if key in self.table:
                lr, lam = self.table[key]
                return float(lr), float(lam)
        if self.lr is None or self.lam is None:
            return None
        return self.lr, self.lam

    def models(self) -> list[str]:
        """The models of the table (empty when the preset applies to every model)."""
        return sorted({m for m, _ in self.table})


class Attack(abc.ABC):
    """Base class of every manipulation attack (use :class:`PassiveAttack` or :class:`TwoClassAttack`)."""

    #: Registered name; also the attack's column in the leaderboard.
    name: ClassVar[str] = ""
    #: The closed success interval R_F of each of the attack's test losses (SPEC section 4).
    success_interval: ClassVar[tuple[float, float]]
    #: True when the attack needs two classes (c1, c2) and composite images holding both.
    two_classes: ClassVar[bool] = False
    #: Names of the attack's test losses (one FSR each): ``("",)`` for one, ``("c1", "c2")`` for Active.
    groups: ClassVar[tuple[str, ...]] = ("",)
    #: False when the penalty needs no maps of the original model (saves one explanation per step).
    uses_reference: ClassVar[bool] = True
    #: The attack's own hyper-parameters, a frozen dataclass.
    Params: ClassVar[type] = NoParams
    #: Track name -> the attack's preset there.
    presets: ClassVar[Mapping[str, Preset]] = {}
    #: Where the attack sits in tables (the paper's order for the built-ins; plug-ins after them).
    order: ClassVar[int] = 100
    #: True for the benchmark's fixed attacks, run by default; a plug-in attack runs when named.
    standard: ClassVar[bool] = False

    # ---- hyper-parameters

    def make_params(self, values: Mapping[str, Any] | None = None) -> Any:
        """``Params`` from ``values`` (defaults for the rest); an unknown name is a :class:`ConfigError`
        naming the accepted ones."""
        values = dict(values or {})
        accepted = [f.name for f in dataclasses.fields(self.Params)]
        unknown = sorted(set(values) - set(accepted))
        if unknown:
            close = [m for u in unknown for m in difflib.get_close_matches(u, accepted, n=1)]
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ConfigError(
                f"attack {self.name!r} has no hyper-parameter {', '.join(map(repr, unknown))}.{hint} "
                f"Accepted: {', '.join(accepted) or 'none'}."
            )
        try:
            return self.Params(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad hyper-parameters {values} for attack {self.name!r}: {exc}") from exc

    def params_dict(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The attack's hyper-parameters, defaults filled in, as a plain dict (a cell's identity)."""
        return dataclasses.asdict(self.make_params(values))

    # ---- the protocol the fine-tuning loop and the scorer use

    @abc.abstractmethod
    def targets(self, y: Tensor, classes: tuple[int, int] | None) -> tuple[Tensor, ...]:
        """The classes whose maps the penalty and the test losses compare, one ``[B]`` tensor each."""

    @abc.abstractmethod
    def penalty_of(self, h: tuple[Tensor, ...], h0: tuple[Tensor, ...] | None, params: Any) -> Tensor:
        """The scalar penalty from the maps of :meth:`targets` (``h0`` None when not ``uses_reference``)."""

    @abc.abstractmethod
    def test_losses_of(self, h: tuple[Tensor, ...], h0: tuple[Tensor, ...], params: Any) -> tuple[Tensor, ...]:
        """One ``[B]`` test loss per name in :attr:`groups`, computed without gradients."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class PassiveAttack(Attack):
    """An attack on the maps of the true class: the explanation becomes uninformative."""

    @abc.abstractmethod
    def penalty(self, h: Tensor, h0: Tensor | None, params: Any) -> Tensor:
        """Scalar ``L_F`` from the manipulated model's maps ``h`` (with a graph) and the original
        model's ``h0`` (a constant target; None when ``uses_reference`` is False)."""

    @abc.abstractmethod
    def test_loss(self, h: Tensor, h0: Tensor, params: Any) -> Tensor:
        """Per-image test loss ``t[B]`` of the manipulated model's maps ``h`` against ``h0``."""

    def targets(self, y: Tensor, classes: tuple[int, int] | None) -> tuple[Tensor, ...]:
        return (y,)

    def penalty_of(self, h: tuple[Tensor, ...], h0: tuple[Tensor, ...] | None, params: Any) -> Tensor:
        return self.penalty(h[0], None if h0 is None else h0[0], params)

    def test_losses_of(self, h: tuple[Tensor, ...], h0: tuple[Tensor, ...], params: Any) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return (self.test_loss(h[0], h0[0], params),)


class TwoClassAttack(Attack):
    """An attack on the maps of two classes ``c1``, ``c2`` of composite images: the explanation
    becomes false (Active fooling swaps them)."""

    two_classes = True
    groups = ("c1", "c2")

    @abc.abstractmethod
    def penalty(self, h1: Tensor, h2: Tensor, h01: Tensor, h02: Tensor, params: Any) -> Tensor:
        """Scalar ``L_F`` from the maps of c1 and c2 of the manipulated (``h1``, ``h2``) and the
        original (``h01``, ``h02``) model."""

    @abc.abstractmethod
    def test_loss(self, h1: Tensor, h2: Tensor, h01: Tensor, h02: Tensor, params: Any) -> tuple[Tensor, Tensor]:
        """Per-image test losses ``(t_c1[B], t_c2[B])``."""

    def targets(self, y: Tensor, classes: tuple[int, int] | None) -> tuple[Tensor, ...]:
        if classes is None:
            raise ConfigError(f"attack {self.name!r} needs two classes: classes=(c1, c2)")
        return tuple(torch.full_like(y, c) for c in classes)

    def penalty_of(self, h: tuple[Tensor, ...], h0: tuple[Tensor, ...] | None, params: Any) -> Tensor:
        if h0 is None:
            raise ConfigError(f"attack {self.name!r} compares with the original model: set uses_reference")
        return self.penalty(h[0], h[1], h0[0], h0[1], params)

    def test_losses_of(self, h: tuple[Tensor, ...], h0: tuple[Tensor, ...], params: Any) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return tuple(self.test_loss(h[0], h[1], h0[0], h0[1], params))


def check_attack(attack: object, spec: str) -> Attack:
    """``attack`` as an :class:`Attack` instance (a subclass is instantiated), or a :class:`ConfigError`
    saying what a plug-in attack must be."""
    from robustbench_interp.errors import PluginImportError

    if isinstance(attack, type) and issubclass(attack, Attack):
        try:
            attack = attack()
        except Exception as exc:  # a plug-in's own constructor
            raise PluginImportError(f"attack {spec!r} could not be built: {type(exc).__name__}: {exc}") from exc
    if not isinstance(attack, Attack):
        raise PluginImportError(
            f"{spec!r} is a {type(attack).__name__}; an attack must be a subclass (or an instance) of "
            "robustbench_interp.attacks.PassiveAttack or TwoClassAttack"
        )
    if not isinstance(attack.name, str) or not attack.name:
        raise PluginImportError(f"attack {spec!r} has no name; set the class attribute name = '...'")
    interval = getattr(attack, "success_interval", None)
    if not (isinstance(interval, tuple) and len(interval) == 2 and interval[0] <= interval[1]):
        raise PluginImportError(f"attack {spec!r} must declare success_interval = (lo, hi), got {interval!r}")
    if not dataclasses.is_dataclass(attack.Params):
        raise PluginImportError(f"attack {spec!r}: Params must be a frozen dataclass, got {attack.Params!r}")
    return attack
