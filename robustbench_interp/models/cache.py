"""The on-disk cache of trained base models: state dicts plus a JSON model card beside each.

Files live under ``$RBI_CACHE_DIR`` (default ``~/.cache/robustbench_interp``), in
``<cache>/models/<track>/<name>-<config key>.pt`` and ``.json``. Writes are atomic (a temporary
file in the same folder, then :func:`os.replace`), so a killed run never leaves a half-written file
that a later run would trust; loads use ``torch.load(weights_only=True)`` on a plain state dict.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustbench_interp.fileio import atomic_save_state_dict, atomic_write_json, load_state_dict_safe

ENV_CACHE_DIR = "RBI_CACHE_DIR"


def cache_dir() -> Path:
    """``$RBI_CACHE_DIR`` if set, else ``~/.cache/robustbench_interp``."""
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "robustbench_interp"


def model_paths(track: str, name: str, key: str) -> tuple[Path, Path]:
    """``(weights.pt, card.json)`` of a cached model."""
    stem = cache_dir() / "models" / track / f"{name}-{key}"
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def save_state_dict(path: Path, state_dict: dict[str, Tensor]) -> None:
    """Write a state dict atomically (tensors moved to the CPU)."""
    atomic_save_state_dict(path, state_dict)


def load_state_dict(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Load a state dict safely (``weights_only=True``: tensors and plain containers only)."""
    return load_state_dict_safe(
        path, map_location, hint="pass the path of a saved state dict (torch.save(model.state_dict(), path))"
    )


def write_card(path: Path, card: dict[str, Any]) -> None:
    """Write a model card (JSON, numbers kept as numbers) atomically."""
    atomic_write_json(path, card)


def read_card(path: Path) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)
