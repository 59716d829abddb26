"""The results store: atomic writes that survive a kill, resume, corrupt files, failures, scores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from robustbench_interp.config import AttackParams, CellConfig
from robustbench_interp.errors import ConfigError, MissingResourceError
from robustbench_interp.store import (
    Store,
    StoreWarning,
    atomic_save_state_dict,
    load_state_dict_safe,
)


def cell(**overrides) -> CellConfig:
    kwargs = dict(track="tiny", model="vgg", attack="location", interpreter="gradcam",
                  params=AttackParams(lr=1e-4, lam=1.0), seed=0)
    kwargs.update(overrides)
    return CellConfig(**kwargs)


def test_put_and_get_round_trip_numbers_as_numbers(tmp_path):
    store = Store(tmp_path)
    c = cell()
    metrics = {"fsr": torch.tensor(87.5), "curve": torch.tensor([1.0, 0.5]),
               "acc": {"top1": 71, "top5": None}}
    store.put(c, metrics)
    record = Store(tmp_path).get(c.cell_id)
    assert record["status"] == "ok" and record["reason"] is None
    assert record["metrics"] == {"fsr": 87.5, "curve": [1.0, 0.5], "acc": {"top1": 71, "top5": None}}
    assert CellConfig.from_dict(record["config"]) == c
    assert record["version"] == c.version and record["label"] == c.label and record["created"]
    assert (tmp_path / "cells" / f"{c.cell_id}.json").is_file()


def test_metrics_must_be_numbers_not_formatted_strings_nor_nan(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(ConfigError, match="87.5%"):
        store.put(cell(), {"fsr": "87.5%"})
    with pytest.raises(ConfigError, match="store the number"):
        store.put(cell(), {"search": {"curve": [{"fsr": " 12 "}]}})
    with pytest.raises(ValueError, match="finite"):
        store.put(cell(), {"fsr": float("nan")})
    assert store.get(cell().cell_id) is None
    cells = tmp_path / "cells"
    assert not cells.exists() or list(cells.iterdir()) == []
    names = {"chosen": {"surrogate": "softplus"}, "search": {"trials": [{"error": "InterpreterError: nan"}]}}
    assert store.put(cell(seed=9), names).metrics == names  # names and reasons are not numbers
    (cells / f"{cell(seed=9).cell_id}.json").unlink()
    assert not cells.exists() or list(cells.iterdir()) == []  # no record, no temp file left behind


def test_resume_reports_existing_cells_as_done_and_failed_cells_per_policy(tmp_path):
    done, failed, new = cell(seed=1), cell(seed=2), cell(seed=3)
    first_run = Store(tmp_path)
    first_run.put(done, {"fsr": 50.0})
    first_run.put_failed(failed, "InterpreterError: plug-in 'foo' returned NaN")
    second_run = Store(tmp_path)
    assert second_run.has(done.cell_id) and second_run.has(done.cell_id, retry_failed=True)
    assert second_run.has(failed.cell_id)  # a failing plug-in is not recomputed every run ...
    assert not second_run.has(failed.cell_id, retry_failed=True)  # ... unless asked
    assert not second_run.has(new.cell_id)
    (rec,) = second_run.records(status="failed")
    assert rec["cell_id"] == failed.cell_id and "returned NaN" in rec["reason"] and rec["metrics"] == {}
    second_run.put(failed, {"fsr": 10.0})  # a successful retry replaces the failure
    assert second_run.status(failed.cell_id) == "ok"


def test_records_filter_by_config_fields_and_enums(tmp_path):

    store = Store(tmp_path)
    store.put(cell(attack="topk"), {"fsr": 1.0})
    store.put(cell(attack="location"), {"fsr": 2.0})
    store.put(cell(attack="location", model="resnet"), {"fsr": 3.0})
    assert sorted(r["metrics"]["fsr"] for r in store.records(attack="location")) == [2.0, 3.0]
    assert [r["metrics"]["fsr"] for r in store.records(attack="location", model="resnet")] == [3.0]
    store.put(cell(attack="active", classes=(386, 555)), {"fsr": 4.0})
    assert [r["metrics"]["fsr"] for r in store.records(classes=(386, 555))] == [4.0]
    with pytest.raises(ConfigError, match="colour"):
        list(store.records(colour="red"))


def test_corrupt_and_partial_files_are_skipped_with_a_warning(tmp_path):
    store = Store(tmp_path)
    good = cell(seed=1)
    store.put(good, {"fsr": 50.0})
    cells = tmp_path / "cells"
    partial_id = cell(seed=2).cell_id
    full = json.dumps({"cell_id": partial_id, "status": "ok", "config": {}, "metrics": {"fsr": 1.0}})
    (cells / f"{partial_id}.json").write_text(full[: len(full) // 2])  # truncated
    (cells / "0000000000000000.json").write_text('["not", "a", "record"]')
    with pytest.warns(StoreWarning) as caught:
        records = list(store.records())
    assert [r["cell_id"] for r in records] == [good.cell_id]
    assert len(caught) == 2
    with pytest.warns(StoreWarning, match=partial_id):
        assert not store.has(partial_id)  # a partial record is recomputed, not trusted


def test_interrupted_write_keeps_the_previous_record_and_leaves_no_partial_file(tmp_path, monkeypatch):
    store = Store(tmp_path)
    c = cell()
    store.put(c, {"fsr": 1.0})

    def crash(src, dst):
        raise KeyboardInterrupt("killed between fsync and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.put(c, {"fsr": 2.0})
    monkeypatch.undo()
    assert store.get(c.cell_id)["metrics"] == {"fsr": 1.0}
    assert sorted(p.name for p in (tmp_path / "cells").iterdir()) == [f"{c.cell_id}.json"]


WRITER = textwrap.dedent(
    """
    import os, sys
    from robustbench_interp.config import AttackParams, CellConfig
    from robustbench_interp.store import Store

    root, pause_at = sys.argv[1], int(sys.argv[2])
    real_fsync, state = os.fsync, {"i": 0, "paused": False}

    def fsync(fd):
        real_fsync(fd)
        if state["i"] == pause_at and not state["paused"]:  # temp file written, not yet renamed
            state["paused"] = True
            print("paused", flush=True)
            sys.stdin.readline()  # blocks until the parent kills us

    os.fsync = fsync
    store = Store(root)
    while True:
        i = state["i"]
        c = CellConfig(track="tiny", model="vgg", attack="location", interpreter="gradcam",
                       params=AttackParams(lr=1e-4, lam=1.0), seed=i % 2)
        store.put(c, {"i": i, "values": [float(i)] * 50_000})
        print(i, flush=True)
        state["i"] += 1
    """
)


def test_store_survives_sigkill_in_the_middle_of_writes(tmp_path):
    """A writer rewriting large records in a loop is SIGKILLed inside a write (its temp file
    written, not yet renamed); only complete records are read back, the previous ones intact."""
    pause_at = 5  # the 6th put rewrites the record of seed 1, last written by put number 4 (i=3)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(pause_at)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:  # blocks on the writer's progress; no sleeping
            lines.append(line.strip())
            if line.strip() == "paused":
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    assert lines == ["0", "1", "2", "3", "4", "paused"]
    leftovers = [p.name for p in (tmp_path / "cells").iterdir() if not p.name.endswith(".json")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".") and leftovers[0].endswith(".tmp")
    store = Store(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreWarning)  # a partial file read as a record would warn
        records = {r["config"]["seed"]: r for r in store.records()}
    assert {seed: r["metrics"]["i"] for seed, r in records.items()} == {0: 4, 1: 3}
    for record in records.values():
        assert record["metrics"]["values"] == [float(record["metrics"]["i"])] * 50_000
    assert store.has(cell(seed=0).cell_id) and store.has(cell(seed=1).cell_id)


def test_scores_of_a_new_interpreter_never_rewrite_the_others(tmp_path):
    store = Store(tmp_path)
    c = cell()
    store.put(c, {"top1": 70.0})
    store.put_score(c.cell_id, "gradcam", {"fsr": 90.0, "baseline_fsr": 5.0})
    first = store.score_path(c.cell_id, "gradcam")
    before = (first.read_bytes(), first.stat().st_mtime_ns)
    cell_before = store.cell_path(c.cell_id).read_bytes()
    assert not store.has_score(c.cell_id, "lrp_t")
    store.put_score(c.cell_id, "lrp_t", {"fsr": 40.0, "baseline_fsr": 2.0})
    store.put_score_failed(c.cell_id, "my_pkg.methods:Fancy", "ImportError", interpreter_params={"n": 3})
    assert (first.read_bytes(), first.stat().st_mtime_ns) == before
    assert store.cell_path(c.cell_id).read_bytes() == cell_before
    assert store.has_score(c.cell_id, "lrp_t")
    assert store.has_score(c.cell_id, "my_pkg.methods:Fancy", {"n": 3})
    assert not store.has_score(c.cell_id, "my_pkg.methods:Fancy", {"n": 3}, retry_failed=True)
    assert not store.has_score(c.cell_id, "my_pkg.methods:Fancy", {"n": 4})
    df = store.scores_dataframe()
    assert sorted(df["scored_interpreter"]) == ["gradcam", "lrp_t", "my_pkg.methods:Fancy"]
    ok = df[df.status == "ok"].set_index("scored_interpreter")
    assert ok.loc["lrp_t", "fsr"] == 40.0 and ok.loc["gradcam", "attacking_interpreter"] == "gradcam"


def test_to_dataframe_has_one_row_per_record_with_flattened_metrics(tmp_path):
    store = Store(tmp_path)
    store.put(cell(seed=1), {"fsr": 80.0, "acc": {"top1": 70.5}, "seed": 99})
    store.put_failed(cell(seed=2), "boom")
    df = store.to_dataframe().sort_values("seed")
    assert len(df) == 2 and list(df["status"]) == ["ok", "failed"]
    assert df["fsr"].iloc[0] == 80.0 and df["acc.top1"].iloc[0] == 70.5
    assert df["params.lr"].iloc[0] == 1e-4 and df["metrics.seed"].iloc[0] == 99  # collision prefixed
    assert df["fsr"].dtype.kind == "f"


def test_state_dict_round_trip_and_artifact_paths(tmp_path):
    store = Store(tmp_path)
    c = cell()
    sd = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3)}
    path = store.weights_path(c.cell_id)
    assert path == tmp_path / "weights" / f"{c.cell_id}.pt"
    atomic_save_state_dict(path, sd)
    back = load_state_dict_safe(path)
    assert set(back) == {"w", "b"} and torch.equal(back["w"], sd["w"])
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    with pytest.raises(MissingResourceError, match="no weights"):
        load_state_dict_safe(tmp_path / "weights" / "missing.pt")
    Path(tmp_path / "weights" / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MissingResourceError, match="delete"):
        load_state_dict_safe(tmp_path / "weights" / "bad.pt")
    assert store.artifact_path(c.cell_id, "maps.pt").parent.is_dir()
    with pytest.raises(ConfigError):
        store.artifact_path(c.cell_id, "../escape")
    with pytest.raises(ConfigError, match="cell id"):
        store.get("../../etc/passwd")


def test_store_files_follow_the_umask_like_any_file(tmp_path):
    import os
    import stat

    from robustbench_interp.fileio import _FILE_MODE, atomic_write_text

    atomic_write_text(tmp_path / "x.txt", "data")
    plain = tmp_path / "plain.txt"
    plain.write_text("data")
    assert stat.S_IMODE(os.stat(tmp_path / "x.txt").st_mode) == stat.S_IMODE(os.stat(plain).st_mode) == _FILE_MODE
