"""The attack registry: built-ins, installed plug-ins (entry-point group ``robustbench_interp.attacks``)
and ``"package.module:attr"`` specs, all looked up the same way."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

from robustbench_interp.attacks.base import Attack, check_attack
from robustbench_interp.errors import ConfigError, PluginImportError
from robustbench_interp.registry import Registry, check_spec, import_object

ENTRY_POINT_GROUP = "robustbench_interp.attacks"
ATTACKS: Registry[object] = Registry("attack", ENTRY_POINT_GROUP)

A = TypeVar("A", bound=object)


def register_attack(attack: A) -> A:
    """Register an :class:`Attack` subclass (or instance) under its ``name``; usable as a decorator."""
    name = getattr(attack, "name", "")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{attack!r} has no name; set the class attribute name = '...'")
    ATTACKS.register(name)(check_attack(attack, name))
    return attack


def get_attack(spec: str | Attack) -> Attack:
    """The attack of a registered name, of a ``"package.module:attr"`` spec, or ``spec`` itself.

    An unknown name is an :class:`~robustbench_interp.errors.UnknownNameError` naming the close ones.
    """
    if isinstance(spec, Attack):
        return spec
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"an attack is a registered name or 'module:attr', got {spec!r}")
    found = import_object(spec) if ":" in spec else ATTACKS.get(spec)
    return check_attack(found, spec)


def list_attacks(pattern: str | None = None) -> list[str]:
    """The registered attacks in table order (the paper's for the built-ins), optionally fnmatch-filtered."""
    return attack_order(ATTACKS.names(pattern))


def standard_attacks() -> list[str]:
    """The benchmark's fixed attacks (the paper's four), in table order: what runs by default."""
    def standard(name: str) -> bool:
        try:
            return bool(getattr(ATTACKS.get(name), "standard", False))
        except PluginImportError:  # a broken plug-in is never one of the benchmark's attacks
            return False

    return [name for name in list_attacks() if standard(name)]


def check_attack_names(specs: list[str]) -> list[str]:
    """Fail at once on an attack name that is not registered (a typo), naming the close ones, or on a
    spec that is not an absolute 'module:attr' path. (A spec is imported when its grid is built: its
    presets and shape decide its cells, so an attack plug-in that cannot be imported stops the
    grid before any work, with the reason.)"""
    for spec in specs:
        if ":" in spec:
            check_spec(spec)
        elif spec not in ATTACKS:
            ATTACKS.get(spec)  # raises UnknownNameError with the close names
    return specs


def attack_order(names: Iterable[str]) -> list[str]:
    """``names`` (registered names or specs) in table order: the built-ins in the paper's order,
    then the others by name; each once."""

    def key(name: str) -> tuple[int, str]:
        if ":" not in name and name in ATTACKS:
            try:
                return get_attack(name).order, name
            except Exception:  # noqa: BLE001 - a broken plug-in sorts last
                pass
        return 1_000_000, name

    return sorted(dict.fromkeys(names), key=key)


def safe_name(attack: str) -> str:
    """A file-name form of an attack's name or spec (``pkg.mod:corner`` -> ``pkg.mod-corner``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", attack)
