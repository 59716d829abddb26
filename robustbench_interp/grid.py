"""Grids of benchmark cells: every attack x base model x attacking interpreter of a track."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from robustbench_interp.attacks import check_attack_names, get_attack
from robustbench_interp.attacks.presets import preset
from robustbench_interp.config import CellConfig
from robustbench_interp.tracks import get_track


def build_grid(
    track: str,
    models: Sequence[str],
    attacks: Iterable[str],
    interpreters: Sequence[str],
    *,
    seed: int = 0,
    classes: tuple[int, int] | None = None,
    overrides: dict[str, Any] | None = None,
    interpreter_params: dict[str, dict[str, Any]] | None = None,
) -> list[CellConfig]:
    """One :class:`CellConfig` per (attack, model, interpreter), hyper-parameters from the presets.

    ``overrides`` (e.g. ``{"lr": 1e-5}``) apply to every cell; ``interpreter_params`` maps an
    interpreter spec to its keyword arguments. A two-class attack (Active) uses ``classes`` or
    the track's pair. Unknown track and attack names fail before any cell is built.
    """
    spec = get_track(track)
    attacks = check_attack_names(list(attacks))
    overrides = overrides or {}
    interpreter_params = interpreter_params or {}
    cells = []
    for name in attacks:
        attack = get_attack(name)
        pair = (classes or spec.active_classes) if attack.two_classes else None
        for model in models:
            for interp in interpreters:
                params, attack_params = preset(spec.name, model, attack, interp, **overrides)
                cells.append(CellConfig(
                    track=spec.name, model=model, attack=name, interpreter=interp, params=params,
                    attack_params=attack_params, interpreter_params=interpreter_params.get(interp, {}),
                    seed=seed, classes=pair,
                ))
    return cells
