"""The interpreter registry and the built-in interpreters (SPEC section 2).

Installed packages add interpreters through the entry-point group ``robustbench_interp.interpreters``
(an entry point names an :class:`Interpreter` subclass or a factory returning one).

What an interpreter (a plug-in's included) builds on, public here:

- :class:`HyperParams`, :func:`check_int`, :func:`check_real`
  (:mod:`~robustbench_interp.interpreters.hyperparams`): declare the method's hyper-parameters as
  a frozen dataclass named in ``Interpreter.hyperparams``; unknown keywords and bad values are then
  a :class:`~robustbench_interp.errors.ConfigError` at construction.
- :func:`capture_output`, :func:`class_score`, :func:`input_gradient`, :func:`layer_gradient`
  (:mod:`~robustbench_interp.interpreters.autograd`): record a layer's output during a forward pass
  (no hook left behind), the summed target logits, ``d y_t / d x`` in chunks of ``max_batch``
  images, and the target layer's output ``A`` with ``d y_t / d A``.

Any method in one line (:mod:`~robustbench_interp.interpreters.adapters`): :func:`get_interpreter` also
wraps a plain explain function, a duck-typed class or object with an ``explain`` method, and the
``"captum:<Method>"`` / ``"zennit:<Composite>"`` adapters.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from robustbench_interp.errors import ConfigError, PluginImportError, RBIError
from robustbench_interp.interpreters.adapters import (
    EXPLAIN_SIGNATURE,
    is_duck,
    is_explain_function,
    is_library_spec,
    library_interpreter,
    split_declarations,
    wrap_function,
    wrap_object,
)
from robustbench_interp.interpreters.autograd import (
    capture_output,
    class_score,
    input_gradient,
    layer_gradient,
)
from robustbench_interp.interpreters.base import Interpreter
from robustbench_interp.interpreters.hyperparams import (
    HyperParams,
    check_int,
    check_real,
    unknown_params_error,
)
from robustbench_interp.registry import Registry, import_builtins, import_object

__all__ = [
    "ENTRY_POINT_GROUP",
    "INTERPRETERS",
    "HyperParams",
    "Interpreter",
    "capture_output",
    "check_int",
    "check_real",
    "class_score",
    "get_interpreter",
    "input_gradient",
    "layer_gradient",
    "list_interpreters",
    "register_interpreter",
]

ENTRY_POINT_GROUP = "robustbench_interp.interpreters"
INTERPRETERS: Registry[Callable[..., Interpreter]] = Registry("interpreter", ENTRY_POINT_GROUP)

F = TypeVar("F", bound=Callable[..., Interpreter])


def register_interpreter(name: str) -> Callable[[F], F]:
    """Class decorator (or factory decorator) that registers an interpreter under ``name``.

    >>> @register_interpreter("my_method")
    ... class MyMethod(Interpreter):
    ...     def explain(self, model, x, target, *, layer=None, create_graph=False): ...
    """

    def decorator(factory: F) -> F:
        if isinstance(factory, type) and issubclass(factory, Interpreter) and not factory.__dict__.get("name"):
            factory.name = name  # type: ignore[misc]
        return INTERPRETERS.register(name)(factory)

    return decorator


def list_interpreters(pattern: str | None = None) -> list[str]:
    """Sorted names of the built-in and installed interpreters, optionally fnmatch-filtered."""
    return INTERPRETERS.names(pattern)


def get_interpreter(spec: object, **params: Any) -> Interpreter:
    """Build an interpreter from ``spec`` and its keyword arguments ``params``.

    ``spec`` is a registered name, a ``"package.module:attr"`` import path or the object itself: an
    :class:`Interpreter` subclass or a factory returning one (built with ``params``, the method's
    hyper-parameters), an explain function ``f(model, x, target, *, layer=None, create_graph=False)``
    or a duck-typed class or object with such an ``explain`` method (wrapped; ``layer_level``,
    ``differentiable`` and ``stochastic`` in ``params`` are then declarations, the rest
    hyper-parameters: see :mod:`~robustbench_interp.interpreters.adapters`), or ``"captum:<Method>"`` /
    ``"zennit:<Composite>"``. An :class:`Interpreter` instance is returned as it is.
    """
    if isinstance(spec, Interpreter):
        if params:
            raise ConfigError(f"params {sorted(params)} cannot be applied to an already built {spec!r}")
        return spec
    if isinstance(spec, str) and spec:
        if is_library_spec(spec):
            return library_interpreter(spec, **params)
        found = import_object(spec) if ":" in spec else INTERPRETERS.get(spec)
        return _build(spec, found, params)
    if callable(spec) or is_duck(spec):
        return _build(getattr(spec, "__name__", None) or type(spec).__name__, spec, params)
    raise ConfigError(f"an interpreter spec must be a name, 'module:attr', an Interpreter, an explain function or "
                      f"an object with an explain method, got {spec!r}")


def _build(label: str, found: object, params: dict[str, Any]) -> Interpreter:
    """The interpreter behind ``found`` (what ``label`` resolved to), built with ``params``."""
    if isinstance(found, Interpreter):
        interp = get_interpreter(found, **params)
    elif is_duck(found) and not isinstance(found, type):
        return wrap_object(found, label, params)
    elif is_explain_function(found):
        return wrap_function(found, label, params)  # type: ignore[arg-type]
    elif not callable(found):
        raise PluginImportError(f"{label!r} resolves to {type(found).__name__}, not a class, factory or explain "
                                "function")
    else:
        declared, hyper = split_declarations(params) if is_duck(found) else ({}, params)
        interp = _construct(label, found, hyper)
        if is_duck(interp):
            return wrap_object(interp, label, declared, built_with=hyper,
                               rebuild=lambda seed: _build(label, found, {**params, "seed": seed}))
    if not isinstance(interp, Interpreter):
        raise PluginImportError(
            f"{label!r} built a {type(interp).__name__}; an interpreter must subclass "
            "robustbench_interp.Interpreter (and implement explain), have an explain method, or be a "
            f"function {EXPLAIN_SIGNATURE}"
        )
    if not interp.name:
        interp.name = label  # type: ignore[misc]
    return interp


def _construct(spec: str, factory: Callable[..., Any], params: dict[str, Any]) -> object:
    """``factory(**params)``; its failures as the benchmark's errors."""
    try:
        return factory(**params)
    except TypeError as exc:
        raise _construction_error(spec, factory, params, exc) from exc
    except RBIError:
        raise
    except Exception as exc:  # noqa: BLE001 - the plug-in's own constructor failed: its cells fail
        raise PluginImportError(f"building interpreter {spec!r} raised {type(exc).__name__}: {exc}") from exc


def _keywords(factory: Callable[..., Any]) -> list[str] | None:
    """The keyword arguments ``factory`` accepts; ``None`` when it takes ``**kwargs`` or cannot tell."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in named]


def _construction_error(
    spec: str, factory: Callable[..., Any], params: dict[str, Any], exc: TypeError
) -> ConfigError:
    """A factory's TypeError as a ConfigError; for unknown keywords, the accepted and the close names."""
    accepted = _keywords(factory)
    unknown = sorted(set(params) - set(accepted)) if accepted is not None else []
    if unknown:
        return unknown_params_error(spec, unknown, accepted or [])
    hint = "" if isinstance(factory, type) else (
        f" (a function is called as a factory, with the hyper-parameters only, unless its first three parameters "
        f"are positional without a default: {EXPLAIN_SIGNATURE})"
    )
    return ConfigError(f"could not build interpreter {spec!r} with params {params}: {exc}{hint}")


#: The built-in interpreters' modules: every module of this package but the shared ones (one method per
#: module, each registering itself on import; adding a built-in is adding its file).
BUILTIN_MODULES = import_builtins(
    __name__, __path__, infrastructure=("base", "autograd", "hyperparams", "adapters")
)
