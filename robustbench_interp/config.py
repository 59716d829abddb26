"""Configs are data: one benchmark cell as a frozen dataclass.

A :class:`CellConfig` is one manipulation run (SPEC sections 3 and 5): a base model of a track,
fine-tuned with an attack through an interpreter, with its hyper-parameters and seed. Its
:attr:`CellConfig.cell_id`, a hash of the whole config including :data:`BENCHMARK_VERSION`, is the
cell's identity in the store: change anything, and it is a different cell.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from typing import Any

from robustbench_interp.errors import ConfigError

#: Version of the benchmark's computation (losses, test losses, training loop, data) and of a cell's
#: schema. Bump it when a change makes earlier results incomparable or unreadable: it is part of
#: every cell's hash, so old records are no longer found and cells are recomputed, while the old
#: files stay on disk (the leaderboard reads the current version's records only). Version 2: an
#: attack's own hyper-parameters (Top-k's k, Active's reduction) moved from ``params`` to
#: ``attack_params``; no number changed. Version 3 (honest scoring, SPEC section 8): target layers at
#: the input of the last block, Top-k on squared values, Active's 0.5 * (mse + mse), empty and
#: constant maps never successes, scoring on the test split, control cells, published base weights.
BENCHMARK_VERSION = "3"

#: The attacking "interpreter" of a control cell: the same fine-tuning with lambda = 0 (SPEC
#: section 8), so no interpreter is involved; the scorers' FSR on it is the control FSR.
CONTROL = "control"


#: The names of :data:`robustbench_interp.attacks.surrogates.SURROGATES` (kept here: configs import no torch code).
_SURROGATE_NAMES = ("relu", "softplus")


def _number(name: str, value: Any, *, integer: bool = False) -> Any:
    ok_types = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types) or not math.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    return int(value) if integer else float(value)


@dataclass(frozen=True)
class AttackParams:
    """Hyper-parameters of the fine-tuning loop (SPEC section 3).

    ``lr``: Adam learning rate. ``lam``: the penalty weight lambda. ``epochs``: passes over the
    training split; ``steps``, when set, is the number of minibatches instead (each replayed
    ``replays`` times under adversarial training: ``steps * replays`` optimizer steps). ``batch_size``: images
    per step (the paper: 8).
    Adversarial training (Shafahi et al. 2019, "free" AT kept during the manipulation): ``adv``
    turns it on, ``eps`` is the L-inf radius on [0, 1] inputs, ``replays`` the number m of replays
    of each minibatch. ``cooldown``: the fraction of the steps at the end over which the learning rate decays linearly
    to 0 (0, the paper's, keeps it constant); a cooldown lets the accuracy settle after a large
    learning rate. An attack's own hyper-parameters (Top-k's ``k``, Active's reduction) are not
    here: they are the attack's ``Params`` (:attr:`CellConfig.attack_params`). ``surrogate``: the
    transform of the maps the penalty sees (:mod:`robustbench_interp.attacks.surrogates`; the
    paper's ``relu`` changes nothing); the test loss never changes. Floats are stored as floats so that ``lr=1`` and ``lr=1.0`` hash alike.
    """

    lr: float
    lam: float
    epochs: int = 1
    steps: int | None = None
    batch_size: int = 8
    adv: bool = False
    eps: float = 0.0
    replays: int = 1
    cooldown: float = 0.0
    surrogate: str = "relu"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("lr", "lam", "eps", "cooldown"):
            set_(self, name, _number(name, getattr(self, name)))
        for name in ("epochs", "batch_size", "replays"):
            set_(self, name, _number(name, getattr(self, name), integer=True))
        if self.steps is not None:
            set_(self, "steps", _number("steps", self.steps, integer=True))
        if not isinstance(self.adv, bool):
            raise ConfigError(f"adv must be True or False, got {self.adv!r}")
        checks = [
            (self.lr > 0, f"lr must be > 0, got {self.lr!r} (the paper uses 1e-7 .. 6e-6 on ImageNet)"),
            (self.lam >= 0, f"lam (lambda) must be >= 0, got {self.lam!r}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs!r}"),
            (self.steps is None or self.steps >= 1, f"steps must be >= 1 or None, got {self.steps!r}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size!r}"),
            (self.eps >= 0, f"eps must be >= 0, got {self.eps!r}"),
            (self.replays >= 1, f"replays must be >= 1, got {self.replays!r}"),
            (not self.adv or self.eps > 0, f"adversarial training (adv=True) needs eps > 0, got {self.eps}"),
            (0 <= self.cooldown < 1, f"cooldown is a fraction of the steps in [0, 1), got {self.cooldown!r}"),
            (self.surrogate in _SURROGATE_NAMES,
             f"surrogate must be one of {', '.join(_SURROGATE_NAMES)}, got {self.surrogate!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict; ``surrogate`` only when it is not the paper's ``relu``, so that the
        ids of cells computed before the field existed stay valid."""
        data = asdict(self)
        if data["surrogate"] == "relu":
            del data["surrogate"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttackParams:
        return cls(**_known(cls, data))


#: The largest top-1 drop (points) at which a manipulation still counts as keeping the model: the
#: attacker selects among configurations within it (SPEC section 9) and the leaderboard marks a
#: cell that exceeds it as not kept.
MAX_TOP1_DROP = 2.0


def _round(x: float) -> float:
    """``x`` to 12 significant digits, so that 1e-3 * 0.1 is the 1e-4 a preset writes."""
    return float(f"{x:.12g}")


@dataclass(frozen=True)
class SearchSpace:
    """The attacker's search (SPEC section 9; :mod:`robustbench_interp.attacks.attacker`).

    ``budget``: the optimizer steps one cell's search spends in all (replays of ``-adv`` cells
    counted), the same for every interpreter; None on a track whose schedule counts epochs means
    the length of the schedule times the plan's cost factor. The configurations are the preset's
    learning rate times each of ``lr_factors``, its lambda times each of ``lam_factors``, with each
    penalty surrogate of ``surrogates``, around ``center``: the attack's (lr, lambda) on the track
    before any per-interpreter learning rate, so that every interpreter gets the same learning
    rates (the grid sets it; the preset's own values when None). The cell's own preset is always
    one of the configurations. Successive halving over ``rungs`` rungs keeps the best ``1 / eta`` at each; the finalists
    run the full length, ``budget / cost factor``.
    """

    budget: int | None = None
    lr_factors: tuple[float, ...] = (1.0,)
    lam_factors: tuple[float, ...] = (1.0,)
    surrogates: tuple[str, ...] = ("relu",)
    rungs: int = 1
    eta: int = 2
    center: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.center is not None:
            lr, lam = (_number("center", v) for v in self.center)
            if lr <= 0 or lam < 0:
                raise ConfigError(f"the search's center is (lr > 0, lambda >= 0), got {self.center!r}")
            set_(self, "center", (lr, lam))
        if self.budget is not None:
            set_(self, "budget", _number("budget", self.budget, integer=True))
            if self.budget < 1:
                raise ConfigError(f"the search budget is a number of optimizer steps >= 1, got {self.budget}")
        for name in ("lr_factors", "lam_factors"):
            values = tuple(_number(name, v) for v in getattr(self, name))
            if not values or any(v <= 0 for v in values) or len(set(values)) != len(values):
                raise ConfigError(f"{name} must be distinct positive numbers, got {list(getattr(self, name))}")
            set_(self, name, values)
        surrogates = tuple(self.surrogates)
        if not surrogates or any(s not in _SURROGATE_NAMES for s in surrogates) or len(set(surrogates)) != len(surrogates):
            raise ConfigError(f"surrogates must be distinct names among {', '.join(_SURROGATE_NAMES)}, got {list(surrogates)}")
        set_(self, "surrogates", surrogates)
        set_(self, "rungs", _number("rungs", self.rungs, integer=True))
        set_(self, "eta", _number("eta", self.eta, integer=True))
        if self.rungs < 1 or self.eta < 2:
            raise ConfigError(f"successive halving needs rungs >= 1 and eta >= 2, got rungs={self.rungs}, eta={self.eta}")

    def grid_values(self, preset_lr: float, preset_lam: float) -> list[tuple[float, float, str]]:
        """The (lr, lambda, surrogate) of the space's configurations around :attr:`center` (or the preset's)."""
        lr0, lam0 = self.center if self.center is not None else (preset_lr, preset_lam)
        return [(_round(lr0 * f), _round(lam0 * g), s)
                for f in self.lr_factors for g in self.lam_factors for s in self.surrogates]

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "lr_factors": list(self.lr_factors), "lam_factors": list(self.lam_factors),
                "surrogates": list(self.surrogates), "rungs": self.rungs, "eta": self.eta,
                "center": None if self.center is None else list(self.center)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        data = _known(cls, data)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; valid: {sorted(names)}")
    return dict(data)


_SCALARS = (str, int, float, bool, type(None))


def _param_value(key: str, value: Any, what: str = "interpreter") -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_param_value(key, v, what) for v in value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{what} parameter {key!r} must be finite, got {value!r}")
    if isinstance(value, Enum):
        return value.value
    if not isinstance(value, _SCALARS):
        raise ConfigError(
            f"{what} parameter {key!r} has a {type(value).__name__} value {value!r}; "
            "use JSON scalars (str, int, float, bool, None) or lists of them"
        )
    return value


def normalize_interpreter_params(params: Any, what: str = "interpreter") -> tuple[tuple[str, Any], ...]:
    """A dict or pairs of keyword arguments (of an interpreter, or of an attack with
    ``what="attack"``) as a sorted, hashable tuple of pairs."""
    items = params.items() if isinstance(params, dict) else params
    try:
        pairs = [(str(k), _param_value(str(k), v, what)) for k, v in items]
    except (TypeError, ValueError):
        raise ConfigError(f"{what}_params must be a dict or (key, value) pairs, got {params!r}") from None
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{what}_params has a repeated key: {sorted(keys)}")
    return tuple(sorted(pairs))


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple) else value


def _two_classes(attack: str) -> bool | None:
    """Whether a registered attack needs two classes; None for a ``module:attr`` spec, which is not
    imported here (a config read from a store imports nothing; its cells check it when they run)."""
    if ":" in attack:
        return None
    from robustbench_interp.attacks import get_attack

    return get_attack(attack).two_classes


def _attack_params(attack: str, params: Any) -> tuple[tuple[str, Any], ...]:
    """The attack's own hyper-parameters, validated and with defaults filled in for a registered attack."""
    pairs = normalize_interpreter_params(params, what="attack")
    if ":" in attack:
        return pairs
    from robustbench_interp.attacks import get_attack

    return normalize_interpreter_params(get_attack(attack).params_dict(dict(pairs)), what="attack")


@dataclass(frozen=True)
class CellConfig:
    """One manipulation cell: fine-tune ``model`` of ``track`` with ``attack`` through ``interpreter``.

    ``track`` is a registered track's name; ``model`` the base model's name (e.g. "vgg",
    "vgg-adv"); ``attack`` a registered attack's name or a "package.module:attr" spec;
    ``interpreter`` the attacking interpreter's spec string (a registered name or
    "package.module:attr"); ``interpreter_params`` and ``attack_params`` keyword arguments as
    sorted tuples of pairs (dicts are accepted and converted; a registered attack's parameters are
    validated and completed with its defaults); ``classes`` = (c1, c2) for a two-class attack
    (Active: required there, forbidden otherwise); ``version`` the benchmark computation version.
    Unknown track and attack names fail here, naming the close ones.
    """

    track: str
    model: str
    attack: str
    interpreter: str
    params: AttackParams
    interpreter_params: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    classes: tuple[int, int] | None = None
    attack_params: tuple[tuple[str, Any], ...] = ()
    version: str = field(default=BENCHMARK_VERSION)
    search: SearchSpace | None = None

    def __post_init__(self) -> None:
        from robustbench_interp.tracks import get_track

        set_ = object.__setattr__
        for name in ("track", "model", "attack", "interpreter", "version"):
            value = getattr(self, name)
            value = getattr(value, "name", value) if name in ("track", "attack") else value
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
            set_(self, name, value)
        get_track(self.track)
        if isinstance(self.params, dict):
            set_(self, "params", AttackParams.from_dict(self.params))
        if not isinstance(self.params, AttackParams):
            raise ConfigError(f"params must be AttackParams (or its dict), got {type(self.params).__name__}")
        set_(self, "interpreter_params", normalize_interpreter_params(self.interpreter_params))
        set_(self, "attack_params", _attack_params(self.attack, self.attack_params))
        set_(self, "seed", _number("seed", self.seed, integer=True))
        set_(self, "classes", self._check_classes())
        if isinstance(self.search, dict):
            set_(self, "search", SearchSpace.from_dict(self.search))
        if self.search is not None and not isinstance(self.search, SearchSpace):
            raise ConfigError(f"search must be a SearchSpace (or its dict) or None, got {type(self.search).__name__}")
        if self.is_control and self.search is not None:
            raise ConfigError("a control cell is not searched: it repeats the winning configuration of its cell "
                              "with lambda = 0 (CellConfig.control_for)")
        if self.is_control and (self.params.lam != 0 or self.interpreter_params):
            raise ConfigError(f"a control cell ({CONTROL!r}) fine-tunes with lambda = 0 and no interpreter; got "
                              f"lam={self.params.lam}, interpreter_params={dict(self.interpreter_params)}")

    @property
    def is_control(self) -> bool:
        """Whether this is a control cell (:data:`CONTROL`)."""
        return self.interpreter == CONTROL

    def _check_classes(self) -> tuple[int, int] | None:
        two = _two_classes(self.attack)
        if self.classes is None and two is not True:
            return None
        if two is False:
            raise ConfigError(
                f"classes={self.classes!r} is only for the active attack (or another two-class one), not "
                f"{self.attack!r}; leave it None"
            )
        if self.classes is None or len(self.classes) != 2:
            raise ConfigError(
                f"the {self.attack} attack needs classes=(c1, c2), got {self.classes!r} "
                "(ImageNet: (386, 555), African elephant and fire truck)"
            )
        c1, c2 = (_number("classes", c, integer=True) for c in self.classes)
        if c1 < 0 or c2 < 0 or c1 == c2:
            raise ConfigError(f"classes must be two different non-negative class indices, got {(c1, c2)}")
        return c1, c2

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: enums as their values, interpreter_params as a dict (sorted keys)."""
        return {
            "track": self.track,
            "model": self.model,
            "attack": self.attack,
            "attack_params": {k: _jsonable(v) for k, v in self.attack_params},
            "interpreter": self.interpreter,
            "interpreter_params": {k: _jsonable(v) for k, v in self.interpreter_params},
            "params": self.params.to_dict(),
            "seed": self.seed,
            "classes": list(self.classes) if self.classes is not None else None,
            "version": self.version,
            **({} if self.search is None else {"search": self.search.to_dict()}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellConfig:
        """Inverse of :meth:`to_dict`: ``CellConfig.from_dict(c.to_dict()) == c``."""
        data = _known(cls, data)
        if isinstance(data.get("classes"), list):
            data["classes"] = tuple(data["classes"])
        return cls(**data)

    def canonical_json(self) -> str:
        """The config as canonical JSON (sorted keys, no spaces): the input of :attr:`cell_id`."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    @property
    def cell_id(self) -> str:
        """First 16 hex characters of the SHA-256 of :meth:`canonical_json`; stable across processes."""
        return hashlib.sha256(self.canonical_json().encode("ascii")).hexdigest()[:16]

    @property
    def control(self) -> CellConfig:
        """The control of this cell: the same model, attack, data, schedule, learning rate and seed,
        with lambda = 0 and no interpreter (cells that differ only in their interpreter or lambda
        share it). A searched cell's control follows the configuration its search chose
        (:meth:`control_for`; the runner knows it once the cell is computed)."""
        if self.search is not None:
            raise ConfigError(f"cell {self.label} is searched: its control repeats the configuration the search "
                              "chose, with lambda = 0 (CellConfig.control_for(chosen params); "
                              "Runner.control_of(cell) once the cell is computed)")
        return self.control_for(self.params)

    def control_for(self, params: AttackParams) -> CellConfig:
        """The control of this cell manipulated with ``params``: their schedule and learning rate,
        lambda = 0, the paper's penalty (no surrogate: there is no penalty), no interpreter, no search."""
        return replace(self, interpreter=CONTROL, interpreter_params=(), search=None,
                       params=replace(params, lam=0.0, surrogate="relu"))

    @property
    def label(self) -> str:
        """Human-readable name, e.g. ``"tiny-vgg-location-gradcam"`` (not unique; the id is)."""
        parts = [self.track, self.model, self.attack, self.interpreter]
        if self.classes is not None:
            parts.append(f"{self.classes[0]}v{self.classes[1]}")
        return "-".join(parts)
