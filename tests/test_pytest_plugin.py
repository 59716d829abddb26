"""The pytest plugin as a submitter meets it: options, test ids, conformance failures, FSR report.

The suites run inside ``pytester`` against a randomly initialised tiny model (injected by a conftest)
and two manipulation steps, so these tests check the plumbing, not the attack's strength.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch._dynamo
import torch.fx

import robustbench_interp.conformance
import robustbench_interp.leaderboard
import robustbench_interp.runner

pytest_plugins = ["pytester"]

#: pytester drops the modules first imported inside a run, so the suites' modules are imported here:
#: torch's lazily imported parts cannot be imported twice, and a check added to conformance.CHECKS
#: must be in the dict the plugin reads.
PRELOADED = (torch._dynamo, torch.fx, robustbench_interp.conformance, robustbench_interp.runner,
             robustbench_interp.leaderboard)

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
    _suite(config).bench.resources.add_base(load_model("tiny", "vgg", weights="random"))
"""


@pytest.fixture
def suite_dir(pytester, monkeypatch):
    from robustbench_interp.interpreters import INTERPRETERS

    # the suites run in this process: the conftest's registrations must not outlive the test (the
    # installed plug-ins are loaded first, or they would be lost with the copies for later tests)
    INTERPRETERS.names()
    monkeypatch.setattr(INTERPRETERS, "_entries", dict(INTERPRETERS._entries))
    monkeypatch.setattr(INTERPRETERS, "_origins", dict(INTERPRETERS._origins))
    for name in ("test_conformance.py", "test_robustness.py"):
        shutil.copy(SUITES / name, pytester.path / name)
    pytester.makeconftest(CONFTEST)
    return pytester


def run(pytester, *args):
    store = pytester.path / "store"
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--rbi-store", str(store), "--rbi-models", "vgg",
                                        "--rbi-eval-size", "8", "--rbi-accuracy-size", "64", "--rbi-steps", "2",
                                        "--rbi-seeds", "0", *args)


def test_test_ids_read_like_the_cells(suite_dir):
    result = run(suite_dir, "--collect-only", "-q", "--rbi-interpreter", "gradcam", "--rbi-attacks", "location")
    result.stdout.fnmatch_lines([
        "test_conformance.py::test_conformance[[]gradcam-finite[]]",
        "test_robustness.py::test_adaptive[[]location-tiny-vgg-gradcam[]]",
        "test_robustness.py::test_transfer[[]location-tiny-vgg-lrp_t-to-gradcam[]]",
    ])


def test_an_unknown_interpreter_is_a_usage_error_naming_the_close_names(suite_dir):
    result = run(suite_dir, "--collect-only", "-q", "--rbi-interpreter", "gradcma")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--rbi-interpreter: unknown interpreter 'gradcma'. Did you mean 'gradcam'*"])


def test_conformance_names_the_property_that_failed(suite_dir):
    result = run(suite_dir, "test_conformance.py", "--rbi-interpreter", "plugin_edges",
                 "--rbi-interpreter", "plugin_input", "--tb=line", "-rfs")
    # both ignore the model: they fail target dependence and randomisation; only plugin_edges has the
    # wrong shape; finiteness, determinism, batch independence and spatial variation hold for both;
    # neither declares shares_forward, so that check is skipped for both
    result.assert_outcomes(failed=5, passed=9, skipped=4)
    result.stdout.fnmatch_lines([
        "*'plugin_edges' returned a (63, 64) map; expected (64, 64)*",
        "*'plugin_input' returned the same map for every target class*",
        "*'plugin_input': maps barely change when the top layers are re-initialised*",
        "*transfer cells only*",
    ])
    result.stdout.fnmatch_lines(["FAILED test_conformance.py::test_conformance[[]plugin_edges-shape_and_dtype[]]*"])


@pytest.mark.parametrize("spec", ["corner", "rbi_corner:Corner"])
def test_the_example_attack_plugin_runs_in_the_suites_from_its_entry_point_and_its_path(suite_dir, spec):
    pytest.importorskip("rbi_corner", reason="pip install -e examples/rbi_corner")
    result = run(suite_dir, "test_robustness.py", "--rbi-attacks", spec, "--rbi-interpreter", "gradcam")
    result.assert_outcomes(passed=2)  # the adaptive cell, and the transfer cell from lrp_t's manipulation
    result.stdout.fnmatch_lines([f"*adaptive*tiny-vgg-{spec}-gradcam*ok*"])


def test_robustness_cells_report_fsr_and_fail_only_when_not_computed(suite_dir):
    result = run(suite_dir, "test_robustness.py", "--rbi-attacks", "location",
                 "--rbi-interpreter", "gradcam", "--rbi-interpreter", "plugin_edges", "-rs")
    # adaptive gradcam and transfer lrp_t -> gradcam pass; plugin_edges is not differentiable (skipped)
    # and its wrong-shaped maps fail both of its transfer cells, and only those
    result.assert_outcomes(passed=2, failed=2, skipped=1, deselected=0)
    result.stdout.fnmatch_lines([
        "*test_transfer[[]location-tiny-vgg-gradcam-to-plugin_edges[]]*",
        "*robustbench_interp: fooling success rates*",
        "*adaptive*tiny-vgg-location-gradcam*ok*",
    ])
    assert (suite_dir.path / "store" / "cells").is_dir()


def test_a_plug_in_that_raises_fails_its_tests_at_once_with_the_reason(suite_dir, monkeypatch):
    from robustbench_interp.resources import Resources

    suite_dir.makepyfile(rbi_raises_mod="""
from robustbench_interp import Interpreter


class Raises(Interpreter):
    def explain(self, model, x, target, *, layer=None, create_graph=False):
        raise RuntimeError("forgot to return the map")
""")
    suite_dir.syspathinsert()
    base = Resources.base
    monkeypatch.setattr(Resources, "base", lambda *a, **k: pytest.fail("a base model was loaded") or base(*a, **k))
    result = run(suite_dir, "--rbi-attacks", "location", "--rbi-interpreter", "rbi_raises_mod:Raises", "-x")
    result.assert_outcomes(errors=1)  # the first test's fixture, stopped by -x before anything else ran
    result.stdout.fnmatch_lines([
        "rbi: interpreter rbi_raises_mod:Raises fails on a tiny batch: *forgot to return the map*",
        "*interpreter rbi_raises_mod:Raises fails on a tiny batch (before any model is trained)*",
    ])


def test_the_suites_spread_over_xdist_workers_share_the_store_and_report_once(suite_dir):
    """``pytest suites/ -n 2``: the cells spread over two worker processes against one store; the
    controller prints the FSR table and writes the leaderboard once, with the numbers of a serial run."""
    pytest.importorskip("xdist")
    args = ["test_robustness.py", "--rbi-attacks", "location,topk", "--rbi-interpreter", "gradcam", "-p",
            "no:cacheprovider", "--rbi-models", "vgg", "--rbi-eval-size", "8", "--rbi-accuracy-size", "64",
            "--rbi-steps", "2", "--rbi-seeds", "0"]
    boards = {}
    for name, extra in (("parallel", ["-n", "2"]), ("serial", [])):
        store, board = suite_dir.path / f"store-{name}", suite_dir.path / f"board-{name}"
        result = suite_dir.runpytest_subprocess(*args, *extra, "--rbi-store", str(store), "--rbi-leaderboard",
                                                str(board))
        result.assert_outcomes(passed=4)  # two adaptive cells, two transfer cells (lrp_t's manipulations)
        assert result.stdout.str().count("robustbench_interp: fooling success rates") == 1
        result.stdout.fnmatch_lines(["*adaptive*tiny-vgg-location-gradcam*ok*", "*leaderboard written*"])
        boards[name] = (board / "tiny" / "scores.csv").read_text()
    assert boards["parallel"] == boards["serial"]


def test_max_fsr_turns_the_goal_into_a_gate(suite_dir):
    result = run(suite_dir, "test_robustness.py", "--rbi-attacks", "location", "--rbi-interpreter", "gradcam",
                 "-k", "not transfer", "--rbi-max-fsr", "-1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*> --rbi-max-fsr -1.0%*"])


def test_leaderboard_option_writes_the_tables(suite_dir):
    out = suite_dir.path / "board"
    result = run(suite_dir, "test_robustness.py", "--rbi-attacks", "topk", "--rbi-interpreter", "gradcam",
                 "-k", "not transfer", "--rbi-leaderboard", str(out))
    result.assert_outcomes(passed=1)
    assert "gradcam" in (out / "tiny" / "fsr.md").read_text()


def test_options_are_in_one_group(pytester):
    result = pytester.runpytest_inprocess("--help")
    text = result.stdout.str()
    section = text[text.index("robustbench_interp benchmark"):]
    for flag in ("--rbi-interpreter=SPEC", "--rbi-track", "--rbi-models", "--rbi-attacks", "--rbi-device",
                 "--rbi-store", "--rbi-max-fsr"):
        assert flag in section, flag


def test_help_shows_no_unprefixed_option_of_ours(pytester):
    """The plugin is loaded into every pytest run of the environment, so its options carry the
    --rbi- prefix: bare names (--device, --seed, --store, --lr) belong to other plugins and conftests."""
    from robustbench_interp.options import OPTIONS, SUITE_OPTIONS

    result = pytester.runpytest_subprocess("--help")  # a fresh interpreter, in a folder outside the repo
    assert result.ret == 0
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if line.startswith("robustbench_interp benchmark"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    flags = {line.split()[0].split("=")[0] for line in lines[start + 1 : end] if line.startswith("  -")}
    assert flags == {f"--rbi-{name}" for name, _ in [*OPTIONS, *SUITE_OPTIONS]}


def test_a_bare_option_name_is_not_ours(pytester):
    result = pytester.runpytest_inprocess("--device", "cpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unrecognized arguments: --device*"])


def test_an_unknown_attack_is_a_usage_error_naming_the_attacks(suite_dir):
    from robustbench_interp.attacks import ATTACKS

    result = run(suite_dir, "--collect-only", "-q", "--rbi-attacks", "location,locaton")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = f"Registered: {', '.join(ATTACKS.names())}."
    result.stderr.fnmatch_lines([f"*--rbi-attacks: unknown attack 'locaton'. Did you mean 'location'? {expected}*"])


def collected(result) -> list[str]:
    return [line for line in result.stdout.lines if "::" in line]


def collect_robustness(suite_dir, *args) -> list[str]:
    return collected(run(suite_dir, "test_robustness.py", "--collect-only", "-q", "--rbi-interpreter", "gradcam",
                         *args))


def test_robustness_tests_are_generated_for_every_attack(suite_dir):
    from robustbench_interp.options import selected_attacks

    ids = collect_robustness(suite_dir)
    # one model, one interpreter: one adaptive cell and one transfer cell (lrp_t -> gradcam) per attack
    assert len(ids) == 2 * len(selected_attacks(None))
    for attack in selected_attacks(None):
        assert f"test_robustness.py::test_adaptive[{attack}-tiny-vgg-gradcam]" in ids
        assert f"test_robustness.py::test_transfer[{attack}-tiny-vgg-lrp_t-to-gradcam]" in ids


def test_robustness_tests_are_generated_for_the_selected_attacks_only(suite_dir):
    result = run(suite_dir, "test_robustness.py", "--collect-only", "-q", "--rbi-interpreter", "gradcam",
                 "--rbi-attacks", "topk,active")
    assert [line.split("[")[1].split("-")[0] for line in collected(result)] == ["topk", "active", "topk", "active"]
    assert "deselected" not in result.stdout.str()


def test_k_with_an_attack_name_selects_that_attack(suite_dir):
    assert collect_robustness(suite_dir, "-k", "location") == [
        "test_robustness.py::test_adaptive[location-tiny-vgg-gradcam]",
        "test_robustness.py::test_transfer[location-tiny-vgg-lrp_t-to-gradcam]",
    ]


def check_never_holds(interp, lm, x, y):
    from robustbench_interp.conformance import ConformanceError

    raise ConformanceError(f"{interp.name!r} never has this property")


def test_conformance_tests_are_generated_from_the_checks(suite_dir, monkeypatch):
    from robustbench_interp import conformance

    monkeypatch.setitem(conformance.CHECKS, "never_holds", check_never_holds)  # adding a check: one edit
    ids = collected(run(suite_dir, "test_conformance.py", "--collect-only", "-q", "--rbi-interpreter", "gradcam"))
    assert ids == [f"test_conformance.py::test_conformance[gradcam-{name}]" for name in conformance.CHECKS]


def test_an_added_check_runs_as_its_own_test(suite_dir, monkeypatch):
    from robustbench_interp import conformance

    monkeypatch.setitem(conformance.CHECKS, "never_holds", check_never_holds)
    result = run(suite_dir, "test_conformance.py", "--rbi-interpreter", "gradcam", "-k", "never_holds", "--tb=line")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*'gradcam' never has this property*"])


def test_a_nan_map_fails_the_finite_check_once_and_leaves_the_rest_not_checkable(suite_dir):
    suite_dir.makepyfile(nanmod="""
import torch
from robustbench_interp import Interpreter

class NaNMap(Interpreter):
    differentiable = False

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        return torch.full(x.shape[:1] + x.shape[2:], float("nan"))
""")
    suite_dir.syspathinsert()
    result = run(suite_dir, "test_conformance.py", "--rbi-interpreter", "nanmod:NaNMap", "-rfs")
    result.assert_outcomes(failed=1, passed=1, skipped=7)  # shape passes, finite fails, the rest cannot be judged
    result.stdout.fnmatch_lines(["FAILED *test_conformance[[]nanmod:NaNMap-finite[]]*", "*not checkable*"])


def test_an_unknown_track_is_a_usage_error_not_a_traceback(suite_dir):
    result = run(suite_dir, "--collect-only", "-q", "--rbi-track", "tinyy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rbi-track: unknown track 'tinyy'. Did you mean 'tiny'?*"])
