"""Fail fast: a plug-in's own mistakes are found on a tiny batch before any model is trained."""

from __future__ import annotations

import sys

import pytest

from robustbench_interp.cli import main
from robustbench_interp.probe import is_builtin, probe_interpreter, probe_interpreters

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


def test_a_working_plug_in_passes(plugin):
    assert probe_interpreter(f"{plugin}:Good", attacking=True) is None
    assert probe_interpreter(f"{plugin}:Strict", {"alpha": 2.0}) is None


@pytest.mark.parametrize("attr, params, expected", [
    ("Raises", {}, "raised ValueError: no such layer 'features.29'; explain must return"),
    ("Short", {}, "returned a (63, 64) map; expected (64, 64)"),
    ("Strict", {}, "alpha"),  # the constructor's missing keyword
    ("Missing", {}, "Missing"),
])
def test_a_broken_plug_in_gets_its_reason(plugin, attr, params, expected):
    reason = probe_interpreter(f"{plugin}:{attr}", params)
    assert reason is not None and expected in reason, reason


def test_the_map_checks_can_be_left_to_the_conformance_suite(plugin):
    assert probe_interpreter(f"{plugin}:Short", check_maps=False) is None
    assert probe_interpreter(f"{plugin}:Raises", check_maps=False) is not None


def test_probing_is_fast_and_probes_each_spec_once(plugin, monkeypatch):
    from robustbench_interp import probe

    calls = []
    real = probe.probe_interpreter
    monkeypatch.setattr(probe, "probe_interpreter", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    specs = [(f"{plugin}:Good", {}), ("gradcam", {}), (f"{plugin}:Raises", {}), (f"{plugin}:Good", {})]
    failures, seconds = probe_interpreters(specs, attacking=[f"{plugin}:Good"])
    assert calls == [f"{plugin}:Good", f"{plugin}:Raises"] and list(failures) == [f"{plugin}:Raises"]


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
