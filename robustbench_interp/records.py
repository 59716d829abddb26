"""The two records of the store, with one schema each: a cell and a score.

A :class:`CellRecord` is what one manipulation cell produced (its config, status, metrics and the
fingerprint of the base weights); a :class:`ScoreRecord` is one interpreter's scores on one
manipulated model (adaptive when it is the attacking interpreter, transfer otherwise). The runner
writes them, and the leaderboard, the regression check and the suites read them; the JSON files
of the store are their :meth:`to_dict` forms. Reading checks the schema and imports nothing: a
record is data.

Records are read-only mappings too (``record["status"]`` is ``record.status``), so scripts that
treated the store's records as dicts keep working.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from robustbench_interp.errors import ConfigError

STATUS_OK = "ok"
STATUS_FAILED = "failed"
#: A cell whose penalty has no gradient with respect to the weights (gradient masking, or an
#: interpreter declared non-differentiable): it cannot be attacked adaptively, so its interpreter is
#: ranked by transfer only, never as robust (SPEC section 8). Computed, so not retried.
STATUS_NOT_ATTACKABLE = "not_attackable"
STATUSES = (STATUS_OK, STATUS_FAILED, STATUS_NOT_ATTACKABLE)


def without_lists(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``metrics`` without its per-image lists (any list longer than two, at any depth): the summary a
    cell record and a leaderboard's records keep, while the per-image losses stay in the store's
    score files. Intervals (``[low, high]``) are kept."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            out[key] = without_lists(value)
        elif not (isinstance(value, list) and len(value) > 2):
            out[key] = value
    return out


class _Record(Mapping):
    """Shared behaviour: a mapping view of the fields, the JSON form, and a checked constructor."""

    _required: ClassVar[tuple[str, ...]] = ()
    _types: ClassVar[dict[str, type | tuple[type, ...]]] = {}

    def __post_init__(self) -> None:
        for name, kind in self._types.items():
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise ConfigError(f"{type(self).__name__}.{name} must be {kind}, got {value!r}")
        if self.status not in STATUSES:  # type: ignore[attr-defined]
            raise ConfigError(f"status must be one of {STATUSES}, got {self.status!r}")  # type: ignore[attr-defined]

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        """The record as stored (plain JSON values)."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: Any) -> Any:
        """The record of a stored dict; a :class:`ConfigError` names what is missing or unknown."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a {cls.__name__} is a JSON object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        missing = [k for k in cls._required if k not in data]
        if missing:
            raise ConfigError(f"not a complete {cls.__name__}: missing {missing}")
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"not a {cls.__name__}: unknown field(s) {unknown}; known: {sorted(names)}")
        return cls(**data)

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)  # the Mapping protocol
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> list[str]:
        return [f.name for f in fields(self)]  # type: ignore[arg-type]


@dataclass(frozen=True, eq=True)
class CellRecord(_Record):
    """One manipulation cell: ``config`` is :meth:`CellConfig.to_dict`; ``metrics`` numbers only
    (accuracy before and after, the top-1 drop, the adaptive score's summary, AOPC, timings);
    ``reason`` says why a failed cell failed; ``base_fingerprint`` hashes the base weights used;
    ``inputs`` is everything else its result depends on that its config does not say (the code
    version of a plug-in interpreter or attack, the evaluation sizes): a stored cell is reused only
    when they are today's;
    ``provenance`` says where a record not written by the runner came from (None when it was);
    ``control_cell`` is the id of the cell's control (the same fine-tuning with lambda = 0: SPEC
    section 8), None for a control itself and for records written before controls existed."""

    cell_id: str
    status: str
    config: dict[str, Any]
    label: str = ""
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    base_fingerprint: str | None = None
    created: str = ""
    version: str = ""
    provenance: str | None = None
    inputs: dict[str, Any] | None = None
    control_cell: str | None = None

    _required: ClassVar[tuple[str, ...]] = ("cell_id", "status", "config")
    _types: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "cell_id": str, "status": str, "config": dict, "label": str, "reason": (str, type(None)),
        "metrics": dict, "base_fingerprint": (str, type(None)), "created": str, "version": str,
        "provenance": (str, type(None)), "inputs": (dict, type(None)), "control_cell": (str, type(None)),
    }

    __hash__ = None  # type: ignore[assignment]  (holds dicts)


@dataclass(frozen=True, eq=True)
class ScoreRecord(_Record):
    """One interpreter's scores on one manipulated model (cell ``cell_id``): FSR with its interval,
    baseline FSR, similarity, per-class FSR, per-image test losses (``metrics``)."""

    cell_id: str
    interpreter: str
    status: str
    interpreter_params: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    version: str = ""
    provenance: str | None = None
    inputs: dict[str, Any] | None = None

    _required: ClassVar[tuple[str, ...]] = ("cell_id", "interpreter", "status")
    _types: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "cell_id": str, "interpreter": str, "status": str, "interpreter_params": dict,
        "reason": (str, type(None)), "metrics": dict, "created": str, "version": str,
        "provenance": (str, type(None)), "inputs": (dict, type(None)),
    }

    __hash__ = None  # type: ignore[assignment]
