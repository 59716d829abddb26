"""The on-disk cache of trained base models: state dicts plus a JSON model card beside each.

Files live under ``$RBI_CACHE_DIR`` (default ``~/.cache/robustbench_interp``), in
``<cache>/models/<track>/<name>-<config key>.pt`` and ``.json``. Writes are atomic (a temporary
file in the same folder, then :func:`os.replace`), so a killed run never leaves a half-written file
that a later run would trust; loads use ``torch.load(weights_only=True)`` on a plain state dict.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustbench_interp.errors import MissingResourceError

ENV_CACHE_DIR = "RBI_CACHE_DIR"


def cache_dir() -> Path:
    """``$RBI_CACHE_DIR`` if set, else ``~/.cache/robustbench_interp``."""
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "robustbench_interp"


def model_paths(track: str, name: str, key: str) -> tuple[Path, Path]:
    """``(weights.pt, card.json)`` of a cached model."""
    stem = cache_dir() / "models" / track / f"{name}-{key}"
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_state_dict(path: Path, state_dict: dict[str, Tensor]) -> None:
    """Write a state dict atomically (tensors moved to the CPU)."""
    cpu = {k: v.detach().cpu() for k, v in state_dict.items()}
    _atomic_write(path, lambda f: torch.save(cpu, f), "wb")


def load_state_dict(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Load a state dict safely (``weights_only=True``: tensors and plain containers only)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingResourceError(
            f"weights file {str(path)!r} does not exist; pass the path of a saved state dict "
            "(torch.save(model.state_dict(), path))."
        )
    state = torch.load(path, weights_only=True, map_location=map_location)
    if not isinstance(state, dict):
        raise MissingResourceError(f"{str(path)!r} does not hold a state dict (got {type(state).__name__}).")
    return state


def write_card(path: Path, card: dict[str, Any]) -> None:
    """Write a model card (JSON, numbers kept as numbers) atomically."""
    _atomic_write(path, lambda f: json.dump(card, f, indent=2, sort_keys=True), "w")


def read_card(path: Path) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)
