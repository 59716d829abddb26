"""Fail fast: a plug-in's own mistakes are found on a tiny batch before any model is trained."""

from __future__ import annotations

import sys

import pytest
import torch

from robustbench_interp.cli import main
from robustbench_interp.probe import is_builtin, probe_interpreter, probe_interpreters, probe_model

PLUGIN = '''
import torch
from robustbench_interp import Interpreter


class Good(Interpreter):
    def explain(self, model, x, target, *, layer=None, create_graph=False):
        return x.mean(1)


class Raises(Interpreter):
    def explain(self, model, x, target, *, layer=None, create_graph=False):
        raise ValueError("no such layer 'features.29'")


class Short(Interpreter):
    def explain(self, model, x, target, *, layer=None, create_graph=False):
        return x.mean(1)[:, 1:, :]


class NeedsGraph(Interpreter):
    def explain(self, model, x, target, *, layer=None, create_graph=False):
        if create_graph:
            raise RuntimeError("no double backward here")
        return x.mean(1)


class Float64(Interpreter):
    def explain(self, model, x, target, *, layer=None, create_graph=False):
        torch.set_default_dtype(torch.float64)
        return x.mean(1)


class ResNetOnly(Interpreter):
    def explain(self, model, x, target, *, layer=None, create_graph=False):
        model.layer3  # a method written for the ResNet: the probe must use the run's model
        return x.mean(1)


class Strict(Interpreter):
    def __init__(self, *, alpha):
        super().__init__(alpha=alpha)

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        return x.mean(1) * self.params["alpha"]
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "rbi_probe_mod.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "rbi_probe_mod"
    sys.modules.pop("rbi_probe_mod", None)


def test_built_ins_are_not_probed_and_plug_ins_are():
    assert is_builtin("gradcam") and is_builtin("lrp_t")
    assert not is_builtin("rbi_corner_missing:X") and not is_builtin("gradcampp")  # an installed plug-in


@pytest.fixture(scope="module")
def vgg():
    return probe_model("tiny", "vgg")


def test_a_working_plug_in_passes(plugin, vgg):
    assert probe_interpreter(f"{plugin}:Good", loaded=vgg, graph=True) is None
    assert probe_interpreter(f"{plugin}:Strict", {"alpha": 2.0}, loaded=vgg) is None


def test_the_probe_runs_on_the_runs_model_and_in_the_usual_isolation(plugin, vgg):
    assert "layer3" in probe_interpreter(f"{plugin}:ResNetOnly", loaded=vgg)
    assert probe_interpreter(f"{plugin}:ResNetOnly", loaded=probe_model("tiny", "resnet")) is None
    reason = probe_interpreter(f"{plugin}:Float64", loaded=vgg)
    assert reason is not None and "float64" in reason.lower()
    assert torch.get_default_dtype() == torch.float32  # put back


@pytest.mark.parametrize("attr, params, expected", [
    ("Raises", {}, "raised ValueError: no such layer 'features.29'; explain must return"),
    ("Short", {}, "returned a (63, 64) map; expected (64, 64)"),
    ("Strict", {}, "alpha"),  # the constructor's missing keyword
    ("Missing", {}, "Missing"),
])
def test_a_broken_plug_in_gets_its_reason(plugin, vgg, attr, params, expected):
    reason = probe_interpreter(f"{plugin}:{attr}", params, loaded=vgg)
    assert reason is not None and expected in reason, reason


def test_the_map_checks_can_be_left_to_the_conformance_suite(plugin, vgg):
    assert probe_interpreter(f"{plugin}:Short", loaded=vgg, check_maps=False) is None
    assert probe_interpreter(f"{plugin}:Raises", loaded=vgg, check_maps=False) is not None


def test_each_spec_is_probed_once_and_with_the_graph_only_when_it_attacks(plugin, monkeypatch):
    from robustbench_interp import probe

    calls = []
    real = probe._run
    monkeypatch.setattr(probe, "_run", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    specs = [(f"{plugin}:Good", {}), ("gradcam", {}), (f"{plugin}:Raises", {}), (f"{plugin}:Good", {})]
    specs.append((f"{plugin}:NeedsGraph", {}))
    result = probe_interpreters(specs, attacking=[f"{plugin}:Good", f"{plugin}:NeedsGraph"])
    # Good twice (without, then with the graph: it attacks), Raises once, NeedsGraph twice
    assert calls == [f"{plugin}:Good"] * 2 + [f"{plugin}:Raises"] + [f"{plugin}:NeedsGraph"] * 2
    assert list(result.refused) == [f"{plugin}:Raises"]
    assert list(result.not_attackable) == [f"{plugin}:NeedsGraph"] and "double backward" in result.not_attackable[
        f"{plugin}:NeedsGraph"]


def test_rbi_run_refuses_a_broken_plug_in_before_loading_any_model(plugin, tmp_path, monkeypatch, capsys):
    from robustbench_interp.resources import Resources

    def no_base(*args, **kwargs):
        raise AssertionError("a base model was loaded for a grid whose only attacker is broken")

    monkeypatch.setattr(Resources, "base", no_base)
    code = main(["run", "--interpreter", f"{plugin}:Raises", "--models", "resnet", "--attacks", "location",
                 "--score-with", "gradcam", "--no-figures", "--store", str(tmp_path / "s"),
                 "--leaderboard-dir", str(tmp_path / "lb")])
    err = capsys.readouterr().err
    assert code == 1  # and no base model was loaded (no_base): nothing but the probe ran
    assert err.splitlines()[0].startswith(f"[rbi] interpreter {plugin}:Raises fails on a tiny batch")
    assert "no such layer" in err and f"failed: tiny-resnet-location-{plugin}:Raises" in err and "fix the" in err
    assert not list((tmp_path / "s").glob("cells/*.json"))  # nothing computed, not even its control


def test_a_plug_in_that_fails_only_with_the_graph_keeps_its_transfer_scores(plugin, tmp_path, capsys,
                                                                            random_resnet_cache):
    code = main(["run", "--grid", "main", "--interpreter", f"{plugin}:NeedsGraph", "--interpreter", "gradcam",
                 "--models", "resnet", "--attacks", "location", "--seeds", "0", "--steps", "2", "--eval-size", "8",
                 "--accuracy-size", "32", "--score-with", "gradcam", "--no-figures",
                 "--store", str(tmp_path / "s"), "--leaderboard-dir", str(tmp_path / "lb")])
    err = capsys.readouterr().err
    assert code == 1 and f"{plugin}:NeedsGraph fails with create_graph=True" in err
    assert f"failed: tiny-resnet-location-{plugin}:NeedsGraph" in err
    scores = (tmp_path / "lb" / "tiny" / "scores.csv").read_text()
    assert f"resnet,location,gradcam,{plugin}:NeedsGraph,0" in scores  # scored on Grad-CAM's manipulation
