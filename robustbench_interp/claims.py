"""Claims: several processes (later, several machines) share one store and never compute a cell twice.

Before computing a cell, a runner claims it: it creates ``claims/<cell_id>.claim`` in the store with
``O_CREAT | O_EXCL`` (atomic on POSIX and on NFS v3+), holding the owner (host, pid) and the time. A
second runner that finds the claim leaves the cell to its owner and comes back to it later; the
owner deletes the claim when the cell (and its scores) are stored. The owner touches the file while
it works (a heartbeat), so a claim whose owner died is recognised: on the same host, its process no
longer exists; elsewhere, its heartbeat is older than :data:`STALE_AFTER` seconds. Such a claim is
taken over: it is renamed away (only one taker's rename succeeds) and claimed afresh.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import suppress
from pathlib import Path

#: Seconds without a heartbeat after which a claim of another host is taken over.
STALE_AFTER = 600.0


def _owner() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class Claims:
    """The claims of one store (``root/claims``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.folder = Path(root) / "claims"

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.claim"

    def acquire(self, key: str) -> bool:
        """Claim ``key``; False when another live owner holds it. A dead owner's claim is taken over."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._create(key):
            return True
        if not self.is_stale(key):
            return False
        taken = self.path(key).with_suffix(f".stale-{os.getpid()}")
        try:
            os.rename(self.path(key), taken)  # only one taker's rename succeeds
        except FileNotFoundError:
            return self._create(key)  # released meanwhile
        with suppress(FileNotFoundError):
            taken.unlink()
        return self._create(key)

    def _create(self, key: str) -> bool:
        try:
            fd = os.open(self.path(key), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(_owner(), f)
        return True

    def owner(self, key: str) -> dict[str, object] | None:
        """The owner recorded in the claim of ``key`` (None when unclaimed or unreadable)."""
        try:
            return json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None

    def is_stale(self, key: str) -> bool:
        """Whether the claim of ``key`` belongs to an owner that died (or is being written: not stale)."""
        owner = self.owner(key)
        try:
            beat = self.path(key).stat().st_mtime
        except FileNotFoundError:
            return True
        if owner is None:  # a claim is written right after it is created: give it a moment
            return time.time() - beat > 5.0
        if owner.get("host") == socket.gethostname():
            return not _alive(int(owner.get("pid", -1)))
        return time.time() - beat > STALE_AFTER

    def heartbeat(self, key: str) -> None:
        """Show that the owner of ``key`` is still at work."""
        with suppress(FileNotFoundError):
            os.utime(self.path(key))

    def release(self, key: str) -> None:
        """Give ``key`` up (its result is stored, or its owner gave up)."""
        with suppress(FileNotFoundError):
            self.path(key).unlink()
