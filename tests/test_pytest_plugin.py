"""The pytest plugin as a submitter meets it: options, test ids, conformance failures, FSR report.

The suites run inside ``pytester`` against a randomly initialised tiny model (injected by a conftest)
and two manipulation steps, so these tests check the plumbing, not the attack's strength.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch._dynamo  # noqa: F401  (pytester drops modules first imported inside a run; torch's
import torch.fx  # noqa: F401        lazily imported parts cannot be imported twice, so import them here)

import robustbench_interp.engine  # noqa: F401
import robustbench_interp.leaderboard  # noqa: F401

pytest_plugins = ["pytester"]

SUITES = Path(__file__).resolve().parents[1] / "suites"

CONFTEST = """
import torch
from robustbench_interp import Interpreter, register_interpreter
from robustbench_interp.models import load_model
from robustbench_interp.pytest_plugin import _suite


@register_interpreter("plugin_edges")
class Edges(Interpreter):
    differentiable = False

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        return (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().sum(1)  # one row short: the wrong shape


@register_interpreter("plugin_input")
class InputOnly(Interpreter):
    differentiable = False

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        return x.mean(1)


def pytest_configure(config):
    _suite(config).bench.add_base(load_model("tiny", "vgg", weights="random"))
"""


@pytest.fixture
def suite_dir(pytester, monkeypatch):
    from robustbench_interp.interpreters import INTERPRETERS

    # the suites run in this process: the conftest's registrations must not outlive the test
    monkeypatch.setattr(INTERPRETERS, "_entries", dict(INTERPRETERS._entries))
    monkeypatch.setattr(INTERPRETERS, "_origins", dict(INTERPRETERS._origins))
    for name in ("test_conformance.py", "test_robustness.py"):
        shutil.copy(SUITES / name, pytester.path / name)
    pytester.makeconftest(CONFTEST)
    return pytester


def run(pytester, *args):
    store = pytester.path / "store"
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--store", str(store), "--models", "vgg",
                                        "--eval-size", "8", "--accuracy-size", "64", "--steps", "2", *args)


def test_test_ids_read_like_the_cells(suite_dir):
    result = run(suite_dir, "--collect-only", "-q", "--interpreter", "gradcam", "--attacks", "location")
    result.stdout.fnmatch_lines([
        "test_conformance.py::test_finite[[]gradcam[]]",
        "test_robustness.py::test_location[[]tiny-vgg-gradcam[]]",
        "test_robustness.py::test_location_transfer[[]tiny-vgg-lrp_t-to-gradcam[]]",
    ])


def test_an_unknown_interpreter_is_a_usage_error_naming_the_close_names(suite_dir):
    result = run(suite_dir, "--collect-only", "-q", "--interpreter", "gradcma")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--interpreter: unknown interpreter 'gradcma'. Did you mean 'gradcam'*"])


def test_conformance_names_the_property_that_failed(suite_dir):
    result = run(suite_dir, "test_conformance.py", "--interpreter", "plugin_edges", "--interpreter", "plugin_input",
                 "--tb=line", "-rfs")
    # both ignore the model: they fail target dependence and randomisation; only plugin_edges has the
    # wrong shape; finiteness, determinism, batch independence and spatial variation hold for both
    result.assert_outcomes(failed=5, passed=9, skipped=2)
    result.stdout.fnmatch_lines([
        "*'plugin_edges' returned a (63, 64) map; expected (64, 64)*",
        "*'plugin_input' returned the same map for every target class*",
        "*'plugin_input': maps barely change when the top layers are re-initialised*",
        "*transfer cells only*",
    ])
    result.stdout.fnmatch_lines(["FAILED test_conformance.py::test_shape_and_dtype[[]plugin_edges[]]*"])


def test_robustness_cells_report_fsr_and_fail_only_when_not_computed(suite_dir):
    result = run(suite_dir, "test_robustness.py", "--attacks", "location",
                 "--interpreter", "gradcam", "--interpreter", "plugin_edges", "-rs")
    # adaptive gradcam and transfer lrp_t -> gradcam pass; plugin_edges is not differentiable (skipped)
    # and its wrong-shaped maps fail both of its transfer cells, and only those
    result.assert_outcomes(passed=2, failed=2, skipped=1, deselected=6)
    result.stdout.fnmatch_lines([
        "*test_location_transfer[[]tiny-vgg-gradcam-to-plugin_edges[]]*",
        "*robustbench_interp: fooling success rates*",
        "*adaptive*tiny-vgg-location-gradcam*ok*",
    ])
    assert (suite_dir.path / "store" / "cells").is_dir()


def test_max_fsr_turns_the_goal_into_a_gate(suite_dir):
    result = run(suite_dir, "test_robustness.py", "--attacks", "location", "--interpreter", "gradcam",
                 "-k", "not transfer", "--max-fsr", "-1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*> --max-fsr -1.0%*"])


def test_leaderboard_option_writes_the_tables(suite_dir):
    out = suite_dir.path / "board"
    result = run(suite_dir, "test_robustness.py", "--attacks", "topk", "--interpreter", "gradcam",
                 "-k", "not transfer", "--rbi-leaderboard", str(out))
    result.assert_outcomes(passed=1)
    assert "gradcam" in (out / "tiny" / "fsr.md").read_text()


def test_options_are_in_one_group(pytester):
    result = pytester.runpytest_inprocess("--help")
    text = result.stdout.str()
    section = text[text.index("robustbench_interp benchmark"):]
    for flag in ("--interpreter=SPEC", "--track", "--models", "--attacks", "--device", "--store", "--max-fsr"):
        assert flag in section, flag
