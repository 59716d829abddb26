"""The Ray executor (robustbench_interp.executors): a small grid computed as tasks of a local Ray
instance gives the same records as a serial run, shares one control without computing it twice,
and a missing Ray or GPU is a clear error before any work."""

from __future__ import annotations

import sys

import pytest

from robustbench_interp.errors import ConfigError
from robustbench_interp.executors import run_on_ray
from robustbench_interp.grid import build_grid
from robustbench_interp.runner import Runner
from robustbench_interp.store import Store

#: Small evaluation sets and short manipulations: the executor is under test, not the numbers.
OPTIONS = {"eval_size": 16, "accuracy_size": 64, "aopc_size": 0}


def _grid():
    cells = build_grid("tiny", ["resnet"], ["location", "center_mass"], ["gradcam"], seeds=[0],
                       overrides={"steps": 6})
    controls = list(dict.fromkeys(c.control for c in cells))  # one fine-tuning shared by both attacks' controls
    return [*cells, *controls]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_a_ray_run_equals_a_serial_run(tmp_path, ray_local):
    cells = _grid()
    serial = Runner(Store(tmp_path / "serial"), **OPTIONS).run_grid(cells, score_with=["gradcam", "simplegrad"])
    seen = []
    on_ray = run_on_ray(cells, store=Store(tmp_path / "ray"), scorers=["gradcam", "simplegrad"], options=OPTIONS,
                        progress=lambda what, done, total, info: seen.append((done, total)))
    assert [r.cell_id for r in on_ray] == [c.cell_id for c in cells] and all(r.ok for r in on_ray)
    for a, b in zip(serial, on_ray):
        assert a.metrics["top1_drop"] == b.metrics["top1_drop"]
    ray_store, serial_store = Store(tmp_path / "ray"), Store(tmp_path / "serial")
    for cell in cells:
        for spec in ("gradcam", "simplegrad"):
            assert ray_store.get_score(cell.cell_id, spec).metrics["fsr"] == \
                serial_store.get_score(cell.cell_id, spec).metrics["fsr"]
    assert seen[0] == (0, len(cells)) and seen[-1] == (len(cells), len(cells))
    # the two controls share one fine-tuning, computed once
    assert sum(1 for r in on_ray if r.metrics.get("weights_shared")) == 1


def test_a_rerun_on_ray_recomputes_nothing(tmp_path, ray_local):
    cells = _grid()[:1]
    store = Store(tmp_path / "ray")
    first = run_on_ray(cells, store=store, options=OPTIONS)
    again = run_on_ray(cells, store=store, options=OPTIONS)
    assert again[0].created == first[0].created


def test_without_ray_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(ConfigError, match=r"pip install 'robustbench_interp\[ray\]'"):
        run_on_ray(_grid()[:1], store=Store(tmp_path / "s"), options=OPTIONS)


def test_cuda_on_a_cluster_without_gpus_is_refused_before_any_work(tmp_path, ray_local):
    with pytest.raises(ConfigError, match="no GPU"):
        run_on_ray(_grid()[:1], store=Store(tmp_path / "s"), options={**OPTIONS, "device": "cuda"})
    assert not list((tmp_path / "s").glob("cells/*.json"))


def test_rbi_run_refuses_an_address_without_the_ray_executor(tmp_path, capsys):
    from robustbench_interp.cli import main

    code = main(["run", "--store", str(tmp_path / "s"), "--leaderboard-dir", str(tmp_path / "lb"),
                 "--address", "10.0.0.1:6379", "--models", "resnet", "--attacks", "location"])
    assert code != 0 and "add --executor ray" in capsys.readouterr().err
    assert not (tmp_path / "s" / "cells").exists()
