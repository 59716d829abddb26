"""Atomic file writes and safe weight loading, shared by the model cache and the results store.

Every file is written to a temporary file in the same directory, flushed and fsync'ed, then moved
over its final name with ``os.replace`` (atomic on POSIX and Windows): a process killed mid-write
leaves at worst a hidden ``.*.tmp`` file and the previous version intact. Weights are loaded with
``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary objects.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from robustbench_interp.errors import ConfigError, MissingResourceError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Files are created with the mode ``open()`` would give them: 0666 less the process's umask.
_FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[Any]:
    """Yield a binary file object; on success its content replaces ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _FILE_MODE)  # mkstemp's 0600 would hide results from the group the umask allows
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable too (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file, fsync, ``os.replace``).

    Non-finite floats are refused (JSON has no NaN): a :class:`ConfigError` names the problem.
    """
    try:
        text = json.dumps(data, indent=1, sort_keys=True, allow_nan=False)
    except ValueError as exc:
        raise ConfigError(f"cannot store {path}: {exc}; metrics must be finite numbers") from exc
    with _atomic_target(Path(path)) as f:
        f.write(text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, e.g. a figure."""
    with _atomic_target(Path(path)) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, e.g. a leaderboard table."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_state_dict(path: str | os.PathLike[str], state_dict: Mapping[str, Any]) -> None:
    """``torch.save`` a state_dict to ``path`` atomically (temp file in the same folder, ``os.replace``)."""
    import torch

    cpu = {k: v.detach().cpu() if hasattr(v, "detach") else v for k, v in state_dict.items()}
    with _atomic_target(Path(path)) as f:
        torch.save(cpu, f)


def load_state_dict_safe(path: str | os.PathLike[str], map_location: Any = "cpu", *,
                         hint: str = "recompute the cell that writes it") -> dict[str, Any]:
    """Load a state_dict saved by :func:`atomic_save_state_dict` with ``torch.load(weights_only=True)``.

    Raises :class:`MissingResourceError` when the file is missing or unreadable (delete it and
    recompute the cell).
    """
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingResourceError(f"no weights file at {path}; {hint}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises various errors on truncated, foreign or unsafe files
        raise MissingResourceError(
            f"could not load weights {path}: {type(exc).__name__}: {exc}; delete the file and recompute"
        ) from exc
    if not isinstance(state, dict):
        raise MissingResourceError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state
