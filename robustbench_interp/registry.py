"""One generic name -> factory registry, used for interpreters, attacks and tracks.

A registry fails helpfully: a duplicate name is an error, and an unknown name says which registered
names are close. Installed packages add entries through an entry-point group, loaded lazily the
first time the registry is listed or queried, so importing the package has no side effect beyond
registering the built-ins. The built-ins of a kind are the modules of its package
(:func:`import_builtins`), so adding one is adding its file.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from robustbench_interp.errors import ConfigError, DuplicateNameError, PluginImportError, UnknownNameError

T = TypeVar("T")


def import_object(spec: str) -> object:
    """Import ``"package.module:attr"`` (``attr`` may be dotted) and return the attribute.

    Raises :class:`PluginImportError` saying whether the spec, the module or the attribute failed;
    whatever the module raises while it is imported (a ``SyntaxError``, a ``RuntimeError``) becomes
    that error too, so a broken plug-in fails its own cells and not the run.
    """
    check_spec(spec)
    module_name, _, attr_path = spec.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginImportError(
            f"could not import module {module_name!r} of {spec!r}: {exc}. Is the package installed "
            "in this environment (pip install -e <path>) and on sys.path?"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - the plug-in's own code failed while being imported
        raise PluginImportError(
            f"importing module {module_name!r} of {spec!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise PluginImportError(
                f"module {module_name!r} was imported but has no attribute {attr_path!r} "
                f"(failed at {part!r}) in {spec!r}."
            ) from exc
    return obj


_SPEC = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def check_spec(spec: str) -> str:
    """``spec`` if it is an absolute ``"package.module:attr"`` import path; a :class:`PluginImportError`
    naming the expected form otherwise (a relative ``".mod:X"``, spaces, an empty part)."""
    if not isinstance(spec, str) or not _SPEC.match(spec):
        raise PluginImportError(
            f"{spec!r} is not of the form 'package.module:attr' (an absolute import path, e.g. "
            "'my_pkg.methods:MyInterpreter'); give a registered name or such a path."
        )
    return spec


def import_builtins(package: str, path: Iterable[str], infrastructure: Iterable[str]) -> list[str]:
    """Import every module of ``package`` (at ``path``) but its ``infrastructure`` modules and the
    private ones (``_name``), so that each built-in registers itself; returns their names, sorted."""
    skip = set(infrastructure)
    names = sorted(m.name for m in pkgutil.iter_modules(list(path)) if m.name not in skip and not m.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names


def code_version(obj: object) -> str:
    """The version of the code behind ``obj`` (a class, function or instance): ``"builtin"`` for this
    package's own code (its changes are :data:`~robustbench_interp.config.BENCHMARK_VERSION`'s), else
    a hash of the source of the top-level package or module it comes from, so an edited plug-in,
    installed or not, is a different plug-in."""
    import functools
    import hashlib
    import inspect
    import sys
    from pathlib import Path

    while isinstance(obj, functools.partial) or hasattr(obj, "__wrapped__"):  # the code behind a wrapper
        obj = obj.func if isinstance(obj, functools.partial) else obj.__wrapped__
    module = inspect.getmodule(obj if isinstance(obj, type) or callable(obj) else type(obj))
    name = getattr(module, "__name__", "")
    if name == "robustbench_interp" or name.startswith("robustbench_interp."):
        return "builtin"
    top = sys.modules.get(name.split(".")[0]) if name else None
    roots = [Path(p) for p in getattr(top, "__path__", [])]
    if not roots:
        source = getattr(top or module, "__file__", None)
        if not source:  # defined in __main__ of `python -c` or a notebook: no file to version
            return "unknown"
        roots = [Path(source)]
    try:
        files = sorted(f for root in roots for f in ([root] if root.is_file() else root.rglob("*.py")) if f.is_file())
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    except OSError:
        return "unknown"
    return f"sha256:{digest.hexdigest()[:16]}" if files else "unknown"


def untrusted_specs(specs: Iterable[str], registries: Iterable[Registry], trusted: Iterable[str] = ()) -> list[str]:
    """The ``specs`` that may not be built from stored data: neither registered (a built-in or an
    installed plug-in) nor ``trusted`` (given on this command line). A record names code as data;
    importing a ``module:attr`` it names would run whatever that module runs."""
    allowed = set(trusted)
    registries = list(registries)
    return [s for s in specs if s not in allowed and (":" in s or not any(s in r for r in registries))]


class Registry(Generic[T]):
    """A mapping of names to factories (classes or callables that build an object).

    ``kind`` names what is registered, for messages ("interpreter", "attack", ...).
    ``group`` is the entry-point group through which installed packages add entries.
    """

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._broken: dict[str, str] = {}  # entry points that failed to load: name -> reason
        self._entry_points_loaded = group is None

    def add(self, name: str, factory: T, *, origin: str = "built-in") -> T:
        """Register ``factory`` under ``name``; a name registered twice is an error."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise DuplicateNameError(
                f"{self.kind} {name!r} is already registered (by {self._origins[name]}); "
                f"choose another name or unregister the first one."
            )
        self._entries[name] = factory
        self._origins[name] = origin
        return factory

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`: ``@registry.register("name")``."""

        def decorator(factory: T) -> T:
            origin = getattr(factory, "__module__", "user code")
            return self.add(name, factory, origin=origin)

        return decorator

    def remove(self, name: str) -> None:
        """Unregister ``name`` (mainly for tests and interactive sessions)."""
        self.get(name)
        del self._entries[name]
        del self._origins[name]

    def get(self, name: str) -> T:
        """Return the factory registered as ``name``; an unknown name lists the closest ones."""
        self._load_entry_points()
        try:
            return self._entries[name]
        except KeyError:
            pass
        if name in self._broken:
            raise PluginImportError(self._broken[name])
        close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}.{hint} Registered: {', '.join(self.names()) or 'none'}."
        )

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by an fnmatch ``pattern`` (e.g. ``"lrp*"``)."""
        self._load_entry_points()
        names = sorted({*self._entries, *self._broken})
        return fnmatch.filter(names, pattern) if pattern else names

    def origin(self, name: str) -> str:
        """Where ``name`` was registered from ("built-in", a module, or an entry point)."""
        self.get(name)
        return self._origins[name]

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries or name in self._broken

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        assert self.group is not None
        for ep in metadata.entry_points(group=self.group):
            if ep.name in self._entries:
                raise DuplicateNameError(
                    f"entry point {ep.name!r} ({ep.value}) of group {self.group!r} clashes with the "
                    f"{self.kind} already registered by {self._origins[ep.name]}; rename it."
                )
            try:
                factory = ep.load()
            except Exception as exc:
                # A broken plug-in stays listed and fails its own cells (on get), not the run.
                self._broken[ep.name] = (
                    f"could not load {self.kind} plug-in {ep.name!r} = {ep.value!r} "
                    f"(entry-point group {self.group!r}): {type(exc).__name__}: {exc}"
                )
                continue
            self.add(ep.name, factory, origin=f"entry point {ep.value}")
