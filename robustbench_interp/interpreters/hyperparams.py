"""Declared hyper-parameters of an interpreter: a frozen dataclass per method.

An interpreter names its dataclass in the class attribute ``hyperparams``; the constructor then
accepts exactly its fields (an unknown keyword is a :class:`ConfigError` naming the accepted ones
and the close name), checks each value once, and records the values (defaults included) in
``interpreter.params``::

    @dataclass(frozen=True)
    class MyParams(HyperParams):
        steps: int = 16

        def __post_init__(self) -> None:
            check_int(self, "steps", at_least=1)

    @register_interpreter("my_method")
    class MyMethod(Interpreter):
        hyperparams = MyParams

:class:`HyperParams` itself declares no hyper-parameter: a method without any names it, so that
every keyword is refused.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from robustbench_interp.errors import ConfigError

__all__ = ["HyperParams", "check_int", "check_real", "unknown_params_error"]


@dataclass(frozen=True)
class HyperParams:
    """Base class of the hyper-parameter dataclasses (and the declaration of none at all).

    Subclasses are ``@dataclass(frozen=True)``, give every field a default, and check the values
    in ``__post_init__`` with :func:`check_int` / :func:`check_real`.
    """

    @classmethod
    def build(cls, owner: str, params: Mapping[str, Any]) -> HyperParams:
        """The hyper-parameters of interpreter ``owner`` from keyword arguments ``params``.

        Raises :class:`ConfigError` for an unknown name (with the close one) or a bad value.
        """
        accepted = [f.name for f in fields(cls)]
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise unknown_params_error(owner, unknown, accepted)
        try:
            return cls(**params)
        except ConfigError as exc:
            raise ConfigError(f"interpreter {owner!r}: {exc}") from exc

    def as_dict(self) -> dict[str, Any]:
        """The values by name, in declaration order (``interpreter.params``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def unknown_params_error(owner: str, unknown: Iterable[str], accepted: Iterable[str]) -> ConfigError:
    """The error for keywords ``unknown`` given to interpreter ``owner``, which takes ``accepted``."""
    accepted = sorted(accepted)
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    noun = "hyper-parameter" if len(parts) == 1 else "hyper-parameters"
    takes = f"accepted: {', '.join(accepted)}" if accepted else "it takes no hyper-parameters"
    return ConfigError(f"unknown {noun} {', '.join(parts)} for interpreter {owner!r}; {takes}")


def _default(params: HyperParams, name: str) -> Any:
    return next(f.default for f in fields(params) if f.name == name)


def _refuse(params: HyperParams, name: str, what: str) -> ConfigError:
    value = getattr(params, name)
    return ConfigError(
        f"{name}={value!r} is not {what}; pass {what}, e.g. the default {name}={_default(params, name)!r}"
    )


def check_int(params: HyperParams, name: str, *, at_least: int | None = None) -> None:
    """Check that field ``name`` is an integer (not a bool), ``>= at_least`` when given."""
    value = getattr(params, name)
    what = "an int" if at_least is None else f"an int >= {at_least}"
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not is_int or (at_least is not None and value < at_least):
        raise _refuse(params, name, what)


def check_real(
    params: HyperParams, name: str, *, at_least: float | None = None, above: float | None = None
) -> None:
    """Check that field ``name`` is a finite real number (not a bool), ``>= at_least`` or ``> above``."""
    value = getattr(params, name)
    what = "a finite number" + (f" >= {at_least}" if at_least is not None else "") + (
        f" > {above}" if above is not None else ""
    )
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise _refuse(params, name, what)
    if (at_least is not None and value < at_least) or (above is not None and value <= above):
        raise _refuse(params, name, what)
