"""Grids of benchmark cells: every attack x base model x attacking interpreter of a track."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from robustbench_interp.attacks.presets import preset
from robustbench_interp.config import Attack, CellConfig, Track, as_enum
from robustbench_interp.data import DEFAULT_ACTIVE_CLASSES


def build_grid(
    track: Track | str,
    models: Sequence[str],
    attacks: Iterable[Attack | str],
    interpreters: Sequence[str],
    *,
    seed: int = 0,
    classes: tuple[int, int] | None = None,
    overrides: dict[str, Any] | None = None,
    interpreter_params: dict[str, dict[str, Any]] | None = None,
) -> list[CellConfig]:
    """One :class:`CellConfig` per (attack, model, interpreter), hyper-parameters from the presets.

    ``overrides`` (e.g. ``{"lr": 1e-5}``) apply to every cell; ``interpreter_params`` maps an
    interpreter spec to its keyword arguments. The Active attack uses ``classes`` or the track's
    default pair.
    """
    track = as_enum(Track, track)
    overrides = overrides or {}
    interpreter_params = interpreter_params or {}
    cells = []
    for attack in (as_enum(Attack, a) for a in attacks):
        pair = (classes or DEFAULT_ACTIVE_CLASSES[track.value]) if attack is Attack.ACTIVE else None
        for model in models:
            for spec in interpreters:
                cells.append(
                    CellConfig(
                        track=track,
                        model=model,
                        attack=attack,
                        interpreter=spec,
                        params=preset(track, model, attack, spec, **overrides),
                        interpreter_params=interpreter_params.get(spec, {}),
                        seed=seed,
                        classes=pair,
                    )
                )
    return cells
