"""A store shared by several processes, and killed ones: no cell is computed twice, none is lost.

The workers run a small grid on a randomly initialised tiny VGG with two manipulation steps (the
bookkeeping is under test, not the attack), each in its own process, and log every manipulation
they start, so the tests can count them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import sys
from pathlib import Path

import pytest

from robustbench_interp.claims import Claims

WORKER = r"""
import os, signal, sys
from robustbench_interp.grid import build_grid
from robustbench_interp.models import load_model
from robustbench_interp.runner import Runner
from robustbench_interp.store import Store

store_root, log_path, kill = sys.argv[1], sys.argv[2], sys.argv[3:]  # kill: [] | step N S | replace K
manipulations, replaces = [], []

def die_if(point):
    if kill and point == (kill[0], *map(int, kill[1:])):
        os.kill(os.getpid(), signal.SIGKILL)

def progress(what, done, total, info):
    if what != "grid":
        die_if(("step", len(manipulations), done))

runner = Runner(Store(store_root), eval_size=8, accuracy_size=32, aopc_size=0, batch_size=16, log=lambda m: None,
                progress=progress)
runner.resources.add_base(load_model("tiny", "vgg", weights="random"))
original, real_replace = runner._manipulate, os.replace

def logged(cfg, interpreter):
    manipulations.append(cfg.cell_id)
    with open(log_path, "a") as f:
        f.write(cfg.cell_id + "\n")
    return original(cfg, interpreter)

def replace(src, dst):  # an atomic write's last move
    replaces.append(dst)
    die_if(("replace", len(replaces)))
    return real_replace(src, dst)

runner._manipulate, os.replace = logged, replace
cells = build_grid("tiny", ["vgg"], ["location", "active"], ["gradcam", "simplegrad"],
                   overrides={"steps": 2, "batch_size": 8})
records = runner.run_grid(cells, poll_seconds=0.1)
assert all(r.ok for r in records), [r.reason for r in records]
print(len(records))
"""


def start(store: Path, log: Path, *kill: object) -> subprocess.Popen:
    """A worker on ``store``; ``kill`` = ("step", n, s): it kills itself (SIGKILL) at step s of its n-th
    manipulation; ("replace", k): in its k-th atomic write, just before the final move."""
    return subprocess.Popen([sys.executable, "-c", WORKER, str(store), str(log), *map(str, kill)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(worker: subprocess.Popen) -> tuple[str, str]:
    """The worker's output once it ends; a worker still running after ten minutes is killed."""
    try:
        return worker.communicate(timeout=600)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()


def numbers(store: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted((store / "cells").glob("*.json")):
        r = json.loads(path.read_text())
        m = r["metrics"]
        out[r["cell_id"]] = (r["status"], m["adaptive"]["fsr"], m["accuracy_after"]["top1"], m["top1_drop"])
    return out


def test_two_processes_on_one_store_finish_the_grid_with_no_cell_computed_twice(tmp_path):
    store, log = tmp_path / "store", tmp_path / "manipulations.log"
    workers = [start(store, log), start(store, log)]
    outs = [finish(w) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["4", "4"]  # both return every cell
    started = log.read_text().split()
    assert len(started) == len(set(started)) == 4  # each cell manipulated once, by one of them
    assert not list((store / "claims").glob("*.claim"))  # every claim released


def test_a_grid_killed_again_and_again_finishes_with_every_cell_once_and_the_same_numbers(tmp_path):
    reference = tmp_path / "reference"
    worker = start(reference, tmp_path / "reference.log")
    assert finish(worker)[0].strip() == "4"
    store, log = tmp_path / "store", tmp_path / "killed.log"
    rng = random.Random(0)
    kills = [("step", rng.randint(1, 2), rng.randint(1, 2)), ("replace", rng.randint(1, 4)),
             ("step", rng.randint(1, 2), 2), ("replace", rng.randint(1, 4))]
    for kill in kills:  # at random points inside the grid: mid-manipulation, or in the middle of a write
        worker = start(store, log, *kill)
        finish(worker)
        assert worker.returncode == -signal.SIGKILL, kill
    stored_by_killed_runs = len(numbers(store))
    started_before = log.read_text().split() if log.exists() else []
    worker = start(store, log)
    out, err = finish(worker)
    assert worker.returncode == 0 and out.strip() == "4", err[-2000:]
    # the kills fell inside the grid: some cells were stored before them, some manipulations cut short
    assert 0 < stored_by_killed_runs < 4 and len(started_before) > stored_by_killed_runs
    assert numbers(store) == numbers(reference)  # every cell once, each with the uninterrupted numbers
    assert not list((store / "claims").glob("*.claim"))


def test_a_live_owners_claim_is_respected_and_a_dead_owners_is_taken_over(tmp_path):
    claims = Claims(tmp_path)
    assert claims.acquire("abc") and not claims.acquire("abc")  # held by this (live) process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = {**claims.owner("abc"), "pid": int(dead.stdout)}  # a process that has exited
    claims.path("abc").write_text(json.dumps(owner))
    assert claims.is_stale("abc") and claims.acquire("abc")
    assert claims.owner("abc")["pid"] == os.getpid()
    claims.release("abc")
    assert claims.owner("abc") is None and claims.acquire("abc")


@pytest.fixture(autouse=True)
def _no_cuda_noise(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


def _plant(claims: Claims, key: str, **owner: object) -> None:
    claims.folder.mkdir(parents=True, exist_ok=True)
    claims.path(key).write_text(json.dumps(owner))


def test_a_claim_of_this_pid_from_an_earlier_life_or_a_malformed_one_is_taken_over(tmp_path):
    import socket

    claims = Claims(tmp_path)
    _plant(claims, "reused", host=socket.gethostname(), pid=os.getpid(), token="an-earlier-process")
    assert claims.is_stale("reused") and claims.acquire("reused") and claims.mine("reused")
    _plant(claims, "bad", host="h", pid="x", token=3)
    old = time.time() - 60
    os.utime(claims.path("bad"), (old, old))
    assert claims.owner("bad") is None and claims.is_stale("bad") and claims.acquire("bad")
    _plant(claims, "silent", host="another-host", pid=1, token="t")
    os.utime(claims.path("silent"), (0, 0))  # no heartbeat for decades
    assert claims.acquire("silent")


def test_release_never_deletes_another_owners_claim(tmp_path):
    claims = Claims(tmp_path)
    _plant(claims, "k", host="another-host", pid=1, token="theirs")
    claims.release("k")
    assert claims.owner("k")["token"] == "theirs"


def test_of_two_takers_of_a_dead_claim_only_one_wins(tmp_path, monkeypatch):
    """B judges the claim dead; before B renames it, A takes it over; B must then leave A's claim."""
    claims = Claims(tmp_path)
    _plant(claims, "k", host="another-host", pid=1, token="dead")
    os.utime(claims.path("k"), (0, 0))
    real_is_stale = Claims.is_stale

    def a_takes_over_meanwhile(self, key):
        stale = real_is_stale(self, key)
        claims.path(key).unlink()  # A: renamed the dead claim away ...
        _plant(claims, key, host="host-a", pid=2, token="A")  # ... and claimed afresh
        return stale

    monkeypatch.setattr(Claims, "is_stale", a_takes_over_meanwhile)
    assert not claims.acquire("k")  # B
    assert claims.owner("k")["token"] == "A"
