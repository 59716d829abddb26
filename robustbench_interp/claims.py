"""Claims: several processes (later, several machines) share one store and never compute a cell twice.

Before computing a cell, a runner claims it: it creates ``claims/<cell_id>.claim`` in the store with
``O_CREAT | O_EXCL`` (atomic on POSIX and on NFS v3+), holding its owner (host, pid and a token
unique to the process). A second runner that finds the claim leaves the cell to its owner and comes
back to it later; the owner deletes its own claim (never another's) when the cell and its scores are
stored. While it holds a claim, the owner touches the file every :data:`BEAT_SECONDS` from a
background thread (a heartbeat), through every phase of the work.

A claim whose owner died is taken over: one that is unreadable or malformed, whose process no longer
exists on this host (or is another process that reused the pid, or this one after a restart), or whose
heartbeat is older than :data:`STALE_AFTER` seconds. The taker renames the claim away, checks that it
renamed the very claim it judged dead (if not, it puts it back and leaves the cell), and claims afresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

#: Seconds between two heartbeats of a held claim.
BEAT_SECONDS = 20.0
#: Seconds without a heartbeat after which a claim is taken over (whatever its host).
STALE_AFTER = 300.0
#: Seconds a claim file may stay unreadable (being written) before it counts as dead.
_GRACE = 5.0
#: This process's token: two claims with the same pid but another token are not this process's.
TOKEN = uuid.uuid4().hex


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": TOKEN, "since": time.time()}


def _valid(owner: Any) -> bool:
    return (isinstance(owner, dict) and isinstance(owner.get("pid"), int) and owner["pid"] > 0
            and isinstance(owner.get("token"), str) and isinstance(owner.get("host"), str))


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
        """Claim ``key``; False when a live owner holds it. A dead owner's claim is taken over."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._create(key):
            return True
        dead = self._read(self.path(key))
        if not self.is_stale(key):
            return False
        taken = self.path(key).with_suffix(f".taken-{TOKEN}")
        try:
            os.rename(self.path(key), taken)
        except FileNotFoundError:
            return self._create(key)  # released meanwhile
        if self._read(taken) != dead:  # another taker got there first: that was its fresh claim
            with suppress(FileExistsError, FileNotFoundError):
                os.link(taken, self.path(key))
            with suppress(FileNotFoundError):
                taken.unlink()
            return False
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

    @staticmethod
    def _read(path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def owner(self, key: str) -> dict[str, Any] | None:
        """The owner recorded in the claim of ``key`` (None when unclaimed, unreadable or malformed)."""
        owner = self._read(self.path(key))
        return owner if _valid(owner) else None

    def mine(self, key: str) -> bool:
        """Whether this process holds the claim of ``key``."""
        owner = self.owner(key)
        return owner is not None and owner["token"] == TOKEN

    def is_stale(self, key: str) -> bool:
        """Whether the claim of ``key`` belongs to an owner that is gone (see the module docstring)."""
        owner = self.owner(key)
        try:
            beat = self.path(key).stat().st_mtime
        except FileNotFoundError:
            return True
        if time.time() - beat > STALE_AFTER:
            return True
        if owner is None:  # unreadable or malformed: dead, once it is past being written
            return time.time() - beat > _GRACE
        if owner["host"] != socket.gethostname():
            return False  # alive as long as it beats
        if owner["pid"] == os.getpid():
            return owner["token"] != TOKEN  # an earlier life of this pid, not this process
        return not _alive(owner["pid"])

    def heartbeat(self, key: str) -> None:
        """Show that the owner of ``key`` is still at work."""
        with suppress(FileNotFoundError):
            os.utime(self.path(key))

    def release(self, key: str) -> None:
        """Give ``key`` up, if this process holds it (never another owner's claim)."""
        if self.mine(key):
            with suppress(FileNotFoundError):
                self.path(key).unlink()

    @contextlib.contextmanager
    def beating(self, key: str, every: float = BEAT_SECONDS) -> Iterator[None]:
        """Heartbeat the claim of ``key`` from a background thread while the block runs, then release it."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every):
                self.heartbeat(key)

        thread = threading.Thread(target=beat, name=f"rbi-claim-{key}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.release(key)
