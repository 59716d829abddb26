"""The runner's bookkeeping: cells are stored, resumed, never recomputed; failures stay in their cell.

These tests use a randomly initialised tiny model and two manipulation steps: they check what the
runner records and when it computes, not the attack's strength (see the slow tests and the
leaderboard for that).
"""

from __future__ import annotations

import math

import pytest
import torch

from robustbench_interp import Interpreter
from robustbench_interp.attacks import finetune, get_attack, list_attacks
from robustbench_interp.grid import build_grid
from robustbench_interp.interpreters import INTERPRETERS, register_interpreter
from robustbench_interp.metrics.scoring import score_maps
from robustbench_interp.runner import Runner
from robustbench_interp.store import Store

QUICK = {"steps": 2, "batch_size": 8}


@pytest.fixture(scope="module")
def random_vgg():
    from robustbench_interp.models import load_model

    return load_model("tiny", "vgg", weights="random")


def make_bench(root, model, **kw) -> Runner:
    b = Runner(Store(root), eval_size=16, accuracy_size=64, aopc_size=8, batch_size=16, log=lambda _m: None, **kw)
    b.resources.add_base(model)
    return b


@pytest.fixture
def bench(tmp_path, random_vgg):
    return make_bench(tmp_path / "store", random_vgg)


@pytest.fixture
def temporary_registry(monkeypatch):
    monkeypatch.setattr(INTERPRETERS, "_entries", dict(INTERPRETERS._entries))
    monkeypatch.setattr(INTERPRETERS, "_origins", dict(INTERPRETERS._origins))


def cells(attacks=("location",), interpreters=("gradcam",), **overrides):
    return build_grid("tiny", ["vgg"], attacks, interpreters, overrides={**QUICK, **overrides})


def count_manipulations(monkeypatch) -> list[str]:
    """The attacks of the manipulations the runner starts (one per configuration a search tries)."""
    calls: list[str] = []

    class Counting(finetune.ManipulationRun):
        def __init__(self, *args, **kwargs):
            calls.append(args[3].name)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr("robustbench_interp.runner.ManipulationRun", Counting)
    return calls


def test_a_cell_is_stored_with_its_metrics_and_weights(bench):
    (cfg,) = cells()
    record = bench.run_cell(cfg)
    assert record["status"] == "ok"
    m = record["metrics"]
    assert set(m["accuracy_before"]) >= {"top1", "top5"}
    assert m["top1_drop"] == pytest.approx(m["accuracy_before"]["top1"] - m["accuracy_after"]["top1"])
    assert m["steps"] == 2 and m["manipulation_seconds"] > 0
    assert 0 <= m["adaptive"]["fsr"] <= 100 and m["adaptive"]["n"] == 16
    score = bench.store.get_score(cfg.cell_id, "gradcam")
    assert len(score["metrics"]["test_losses"]) == 16
    labels = bench.resources.data("tiny").eval_y
    by_class = m["adaptive"]["fsr_by_class"]
    assert set(by_class) == {str(int(c)) for c in labels.unique()}
    counts = {c: int((labels == int(c)).sum()) for c in by_class}  # the class rates add up to the FSR
    assert sum(by_class[c] * counts[c] for c in by_class) / 16 == pytest.approx(m["adaptive"]["fsr"])
    assert bench.store.weights_path(cfg.cell_id).exists()
    assert set(m["aopc"]) == {"w0_h0", "wstar_hstar", "wstar_h0"}
    # what computed it: another thread count rounds a CPU's reductions differently
    assert m["environment"] == {"torch": torch.__version__, "device": "cpu", "threads": torch.get_num_threads()}


def test_a_rerun_with_nothing_changed_recomputes_nothing(tmp_path, random_vgg, monkeypatch):
    grid = cells(attacks=("location", "topk"))
    calls = count_manipulations(monkeypatch)
    make_bench(tmp_path, random_vgg).run_grid(grid, score_with=["gradcam", "simplegrad"])
    assert calls == ["location", "topk"]
    scores_before = {p: p.stat().st_mtime_ns for p in (tmp_path / "scores").rglob("*.json")}
    make_bench(tmp_path, random_vgg).run_grid(grid, score_with=["gradcam", "simplegrad"])
    assert calls == ["location", "topk"]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "scores").rglob("*.json")} == scores_before


def test_an_interrupted_grid_resumes_where_it_stopped(tmp_path, random_vgg, monkeypatch):
    grid = cells(attacks=("location", "topk", "center_mass"))
    calls = count_manipulations(monkeypatch)
    original = Runner.run_cell

    def interrupted(self, cfg):
        if cfg.attack == "topk":
            raise KeyboardInterrupt
        return original(self, cfg)

    monkeypatch.setattr(Runner, "run_cell", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_bench(tmp_path, random_vgg).run_grid(grid)
    monkeypatch.setattr(Runner, "run_cell", original)
    records = make_bench(tmp_path, random_vgg).run_grid(grid)
    assert calls == ["location", "topk", "center_mass"]  # location was not recomputed
    assert [r["status"] for r in records] == ["ok", "ok", "ok"]


def test_manipulated_weights_are_reused_for_new_interpreters(bench, monkeypatch):
    (cfg,) = cells()
    bench.run_cell(cfg)
    calls = count_manipulations(monkeypatch)
    record = bench.score_cell(cfg, "simplegrad_t")
    assert record["status"] == "ok" and calls == []


def test_the_same_seed_gives_the_same_numbers(tmp_path, random_vgg):
    (cfg,) = cells(attacks=("topk",))
    a = make_bench(tmp_path / "a", random_vgg).run_cell(cfg)["metrics"]
    b = make_bench(tmp_path / "b", random_vgg).run_cell(cfg)["metrics"]
    for key in ("adaptive", "accuracy_after", "final_ce", "final_penalty"):
        assert a[key] == b[key], key


class _Broken(Interpreter):
    """A plug-in that fails in one of the ways a submission can."""

    mode = "raise"

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        out = (model(x)[:, :1, None] * torch.ones(1, 1, x.shape[-1])).expand(-1, x.shape[-2], -1)
        if self.mode == "raise":
            raise RuntimeError("plug-in bug")
        if self.mode == "nan":
            return out * float("nan")
        return out[:, :3]  # wrong shape


@pytest.mark.parametrize("mode, reason", [("raise", "plug-in bug"), ("nan", "NaN"), ("shape", "expected (64, 64)")])
def test_a_failing_plugin_fails_its_own_cell_and_the_grid_carries_on(bench, temporary_registry, mode, reason):
    register_interpreter("broken")(type("BrokenPlugin", (_Broken,), {"mode": mode}))
    grid = cells(interpreters=("broken", "gradcam"))
    records = bench.run_grid(grid, score_with=["broken"])
    assert [r["status"] for r in records] == ["failed", "ok"]
    assert reason in records[0]["reason"]
    transfer = bench.store.get_score(grid[1].cell_id, "broken")
    assert transfer["status"] == "failed" and reason in transfer["reason"]


def test_an_unknown_interpreter_fails_its_cell_with_the_close_names(bench):
    records = bench.run_grid(cells(interpreters=("gradcamm",)))
    assert records[0]["status"] == "failed"
    assert "Did you mean 'gradcam'" in records[0]["reason"]


class EdgeDetector(Interpreter):
    """Does not look at the model at all: a Sobel edge map of the input."""

    differentiable = False

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        g = x.mean(1, keepdim=True)
        kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3)
        gx = torch.nn.functional.conv2d(g, kx, padding=1)
        gy = torch.nn.functional.conv2d(g, kx.transpose(2, 3), padding=1)
        return (gx.square() + gy.square()).sqrt()[:, 0]


@pytest.mark.parametrize("attack", list_attacks())
def test_a_model_independent_interpreter_scores_its_baseline_fsr(bench, temporary_registry, attack):
    """FSR measures manipulation, not noise: maps that ignore the model cannot be fooled."""
    register_interpreter("edges")(EdgeDetector)
    (cfg,) = cells(attacks=(attack,), lam=50.0)
    bench.run_cell(cfg)
    score = bench.score_cell(cfg, "edges")["metrics"]
    assert score["fsr"] == score["baseline_fsr"]
    assert score["spearman"] == pytest.approx(1.0)


def test_a_non_differentiable_interpreter_gets_no_adaptive_cell(bench, temporary_registry):
    register_interpreter("edges")(EdgeDetector)
    (record,) = bench.run_grid(cells(interpreters=("edges",)))
    assert record["status"] == "not_attackable" and "transfer cells only" in record["reason"]


def test_score_passive_counts_the_mask_itself_as_fooled():
    from robustbench_interp.metrics.heatmaps import location_mask

    mask = location_mask(8, 8).expand(4, 8, 8)
    inside = 1 - mask
    scores = score_maps(get_attack("location"), (mask,), (inside,), None)
    assert scores["fsr"] == 100.0 and scores["baseline_fsr"] == 0.0


def test_score_active_of_swapped_maps_is_a_full_success():
    g = torch.Generator().manual_seed(0)
    h1, h2 = torch.rand(5, 8, 8, generator=g), torch.rand(5, 8, 8, generator=g)
    swapped = score_maps(get_attack("active"), (h2, h1), (h1, h2), None)
    assert swapped["fsr"] == 100.0 and swapped["baseline_fsr"] == 0.0


def test_a_cell_computed_from_other_base_weights_is_recomputed(tmp_path, random_vgg, monkeypatch):
    from robustbench_interp.models import load_model

    grid = cells()
    calls = count_manipulations(monkeypatch)
    first = make_bench(tmp_path, random_vgg)
    first.run_grid(grid, score_with=["simplegrad"])
    other = load_model("tiny", "vgg", weights="random")
    with torch.no_grad():
        next(other.model.parameters()).add_(0.01)
    second = make_bench(tmp_path, other)
    assert second.resources.fingerprint("tiny", "vgg") != first.resources.fingerprint("tiny", "vgg")
    record = second.run_grid(grid)[0]
    assert calls == ["location", "location"]
    assert record["base_fingerprint"] == second.resources.fingerprint("tiny", "vgg")
    assert second.store.get_score(grid[0].cell_id, "simplegrad") is None  # stale transfer score dropped


def test_an_adv_base_model_keeps_free_adversarial_training_while_manipulated(tmp_path, random_vgg, monkeypatch):
    import dataclasses

    from robustbench_interp.models.adversarial import FreePerturbation

    adv_base = dataclasses.replace(random_vgg, name="vgg-adv")
    bench = make_bench(tmp_path, adv_base)
    (cfg,) = build_grid("tiny", ["vgg-adv"], ["location"], ["gradcam"], overrides=QUICK)
    assert cfg.params.adv and cfg.params.eps > 0 and cfg.params.replays > 1
    steps: list[float] = []
    original = FreePerturbation.step

    def recording(self, grad=None):
        original(self, grad)
        steps.append(float(self.delta.abs().max()))

    monkeypatch.setattr(FreePerturbation, "step", recording)
    record = bench.run_cell(cfg)
    assert record["status"] == "ok"
    assert len(steps) == cfg.params.steps * cfg.params.replays  # every replay of every batch
    assert 0 < max(steps) <= cfg.params.eps + 1e-6  # the perturbation moves, within the eps ball


@pytest.mark.parametrize("option", ["eval_size", "accuracy_size", "batch_size"])
def test_sizes_below_one_are_refused_at_the_door_naming_the_option(option):
    from robustbench_interp.errors import ConfigError
    from robustbench_interp.resources import Resources

    with pytest.raises(ConfigError, match=f"{option} must be an integer >= 1"):
        Resources(**{option: 0})


def test_a_failed_cell_is_retried_by_default_so_a_fixed_plugin_is_computed(bench, temporary_registry):
    register_interpreter("flaky")(type("FlakyPlugin", (_Broken,), {"mode": "raise"}))
    (cfg,) = cells(interpreters=("flaky",))
    assert not bench.run_cell(cfg).ok
    INTERPRETERS.remove("flaky")

    class Fixed(Interpreter):
        layer_level = True

        def explain(self, model, x, target, *, layer=None, create_graph=False):
            return get_interpreter_for_tests("gradcam").explain(model, x, target, layer=layer,
                                                                create_graph=create_graph)

    register_interpreter("flaky")(Fixed)
    record = bench.run_cell(cfg)  # the old reason is not replayed: the cell is computed again
    assert record.ok
    keeping = make_bench(bench.store.root, bench.resources.base("tiny", "vgg"), retry_failed=False)
    assert keeping.run_cell(cfg) == bench.store.get(cfg.cell_id)


class _RaisingOnBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        return t.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward bug")


class _BrokenBackward(Interpreter):
    layer_level = True

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        h = get_interpreter_for_tests("gradcam").explain(model, x, target, layer=layer, create_graph=create_graph)
        return _RaisingOnBackward.apply(h)


def get_interpreter_for_tests(name):
    from robustbench_interp.interpreters import get_interpreter

    return get_interpreter(name)


def test_a_plugin_whose_backward_pass_raises_fails_its_own_cell(bench, temporary_registry):
    register_interpreter("badgrad")(_BrokenBackward)
    records = bench.run_grid(cells(interpreters=("badgrad", "gradcam")))
    assert [r.status for r in records] == ["failed", "ok"]
    assert "backward pass" in records[0].reason and "backward bug" in records[0].reason


@pytest.mark.parametrize("source, reason", [
    ("raise RuntimeError('import bug')", "RuntimeError: import bug"),
    ("def broken(:\n    pass", "SyntaxError"),
])
def test_a_plugin_module_that_fails_on_import_fails_its_own_cell(bench, tmp_path, monkeypatch, source, reason):
    (tmp_path / "rbi_badplugin_mod.py").write_text(source + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    records = bench.run_grid(cells(interpreters=("rbi_badplugin_mod:X", "gradcam")))
    assert [r.status for r in records] == ["failed", "ok"] and reason in records[0].reason


def test_a_relative_spec_and_a_raising_constructor_fail_their_own_cells(bench, tmp_path, monkeypatch):
    (tmp_path / "rbi_ctor_mod.py").write_text(
        "from robustbench_interp import Interpreter\n"
        "class X(Interpreter):\n"
        "    def __init__(self):\n        raise ValueError('no GPU here')\n"
        "    def explain(self, model, x, target, *, layer=None, create_graph=False):\n        return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    records = bench.run_grid(cells(interpreters=(".evil:X", "rbi_ctor_mod:X", "gradcam")))
    assert [r.status for r in records] == ["failed", "failed", "ok"]
    assert "absolute import path" in records[0].reason and "no GPU here" in records[1].reason


def test_a_cell_is_recomputed_when_the_evaluation_sizes_change_and_reused_when_not(tmp_path, random_vgg, monkeypatch):
    (cfg,) = cells()
    first = make_bench(tmp_path, random_vgg)
    first.run_cell(cfg)
    calls = count_manipulations(monkeypatch)
    assert make_bench(tmp_path, random_vgg).run_cell(cfg).metrics["adaptive"]["n"] == 16 and calls == []
    logs: list[str] = []
    smaller = Runner(Store(tmp_path), eval_size=8, accuracy_size=64, aopc_size=8, batch_size=16, log=logs.append)
    smaller.resources.add_base(random_vgg)
    record = smaller.run_cell(cfg)
    assert calls == ["location"] and record.metrics["adaptive"]["n"] == 8  # never n=16 scores replayed as n=8
    assert any("eval_size" in line for line in logs)


def test_an_edited_plugin_is_a_different_plugin(tmp_path, random_vgg, monkeypatch):
    import importlib
    import sys

    source = ("from robustbench_interp.interpreters import get_interpreter\n"
              "class Mine(get_interpreter('gradcam').__class__):\n    pass  # {}\n")
    (tmp_path / "rbi_edited_mod.py").write_text(source.format("v1"))
    monkeypatch.syspath_prepend(str(tmp_path))
    (cfg,) = cells(interpreters=("rbi_edited_mod:Mine",))
    assert make_bench(tmp_path / "s", random_vgg).run_cell(cfg).ok
    calls = count_manipulations(monkeypatch)
    make_bench(tmp_path / "s", random_vgg).run_cell(cfg)
    assert calls == []  # nothing changed: reused
    (tmp_path / "rbi_edited_mod.py").write_text(source.format("v2, fixed"))
    sys.modules.pop("rbi_edited_mod", None)
    importlib.invalidate_caches()
    make_bench(tmp_path / "s", random_vgg).run_cell(cfg)
    assert calls == ["location"]  # its code changed: computed again


class _Leaky(Interpreter):
    """Grad-CAM's map, but it leaves something behind (``leak``)."""

    layer_level = True
    leak = "hook"

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        h = get_interpreter_for_tests("gradcam").explain(model, x, target, layer=layer, create_graph=create_graph)
        if self.leak == "hook":
            layer.register_forward_hook(lambda *a: None)
        elif self.leak == "train":
            model.train()
        elif self.leak == "dtype":
            torch.set_default_dtype(torch.float64)
        return h


@pytest.mark.parametrize("leak, said", [("hook", "forward hooks"), ("train", "train/eval mode"),
                                         ("dtype", "default dtype")])
def test_a_plugin_that_leaves_the_model_changed_fails_alone_and_the_model_is_restored(bench, temporary_registry,
                                                                                      leak, said):
    register_interpreter("leaky")(type("LeakyPlugin", (_Leaky,), {"leak": leak}))
    records = bench.run_grid(cells(interpreters=("leaky", "gradcam")))
    assert [r.status for r in records] == ["failed", "ok"]  # the well-behaved one is not its victim
    assert "IsolationError" in records[0].reason and said in records[0].reason
    model = bench.resources.base("tiny", "vgg").model
    assert not model.training and torch.get_default_dtype() == torch.float32
    assert not any(m._forward_hooks for m in model.modules())


class _Tamper(Interpreter):
    """Grad-CAM's map, but it changes the model: a weight through ``.data``, or a BatchNorm buffer."""

    layer_level = True
    how = "data"

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        h = get_interpreter_for_tests("gradcam").explain(model, x, target, layer=layer, create_graph=create_graph)
        with torch.no_grad():
            if self.how == "data":
                next(model.parameters()).data.mul_(2)
            else:
                next(b for b in model.buffers() if b.is_floating_point()).add_(1)
        return h


@pytest.mark.parametrize("how", ["data", "buffer"])
def test_a_plugin_that_changes_the_base_model_in_place_fails_and_the_model_is_put_back(bench, temporary_registry, how):
    before = bench.resources.fingerprint("tiny", "vgg")
    register_interpreter("tamper")(type("TamperPlugin", (_Tamper,), {"how": how}))
    records = bench.run_grid(cells(interpreters=("tamper", "gradcam")))
    assert [r.status for r in records] == ["failed", "ok"] and "changed in place" in records[0].reason
    from robustbench_interp.resources import _state_hash

    assert _state_hash(bench.resources.base("tiny", "vgg").model) == before


# ---- controls, seeds and cells that cannot be attacked (SPEC section 8)


def test_controls_share_one_fine_tuning_per_model_schedule_and_seed(bench, monkeypatch):
    from robustbench_interp.grid import with_controls

    calls = count_manipulations(monkeypatch)
    grid = with_controls(build_grid("tiny", ["vgg"], ["location", "topk"], ["gradcam"], seeds=[0, 1],
                                    overrides=QUICK))
    controls = [c for c in grid if c.is_control]
    assert len(controls) == 4 and all(c.params.lam == 0 for c in controls)
    assert grid.index(controls[0]) < grid.index(next(c for c in grid if not c.is_control))  # a control first
    records = bench.run_grid(list(grid), score_with=["gradcam"])
    assert all(r.ok for r in records)
    # two seeds: two control fine-tunings for the two attacks, and four manipulations through Grad-CAM
    assert calls.count("location") + calls.count("topk") == 2 + 4
    by_label = {(r.config["attack"], r.config["interpreter"], r.config["seed"]): r for r in records}
    loc, top = by_label[("location", "control", 0)], by_label[("topk", "control", 0)]
    same_seed = [c for c in controls if c.seed == 0]
    assert len(same_seed) == 2 and bench.weights_key(same_seed[0]) == bench.weights_key(same_seed[1])
    assert loc.metrics["accuracy_after"] == top.metrics["accuracy_after"]  # the same fine-tuned weights
    assert bench.store.get_score(loc.cell_id, "gradcam") is not None  # scored like a transfer
    attacked = by_label[("location", "gradcam", 0)]
    assert attacked.control_cell == loc.cell_id and loc.control_cell is None
    assert by_label[("location", "gradcam", 1)].control_cell == by_label[("location", "control", 1)].cell_id


def test_a_control_cell_must_have_lambda_zero_and_no_interpreter_parameters():
    from robustbench_interp.config import CONTROL
    from robustbench_interp.errors import ConfigError

    (cfg,) = cells()
    assert cfg.control.is_control and cfg.control.params.lam == 0 and cfg.control.control == cfg.control
    with pytest.raises(ConfigError, match="lambda = 0"):
        type(cfg)(**{**cfg.__dict__, "interpreter": CONTROL})


def test_a_detaching_interpreter_is_recorded_as_not_attackable_not_as_robust(bench, temporary_registry):
    @register_interpreter("detaching_gradcam")
    class Detaching(Interpreter):
        layer_level = True

        def explain(self, model, x, target, *, layer=None, create_graph=False):
            from robustbench_interp.interpreters import get_interpreter

            return get_interpreter("gradcam").explain(model, x, target, layer=layer).detach()

    (cfg,) = cells(interpreters=("detaching_gradcam",), steps=6)
    record = bench.run_cell(cfg)
    assert record.status == "not_attackable" and "GradientMaskingError" in record.reason
    assert record.metrics["penalty_grad_norms"] == [] or max(record.metrics["penalty_grad_norms"]) == 0
    assert bench.store.get_score(cfg.cell_id, "detaching_gradcam") is None
    assert bench.is_done(cfg)  # computed: not retried on the next run


# ------------------------------------------------------------------------------ the attacker's search

def test_a_searched_cell_records_what_it_tried_and_its_control_follows_the_choice(tmp_path, random_vgg, monkeypatch):
    """SPEC section 9: the runner searches, records every configuration and the curve, stores the
    winner's weights, and computes the control of the configuration chosen; a rerun recomputes nothing."""
    calls = count_manipulations(monkeypatch)
    bench = make_bench(tmp_path / "store", random_vgg, select_size=8, select_accuracy_size=16)
    cell = build_grid("tiny", ["vgg"], ["location"], ["gradcam"], budget=24)[0]  # 12 configurations, 6 steps each at the end
    assert cell.search is not None and cell.params.steps == 6
    (record,) = bench.run_grid([cell], score_with=["gradcam"])
    assert record.ok, record.reason
    search = record.metrics["search"]
    assert len(search["trials"]) == 12
    assert len(calls) == 13  # each configuration started once (and resumed after), then the control
    assert [r["steps"] for r in search["rungs"]] == [1, 2, 3, 6]
    assert [p["steps"] for p in search["curve"]] == [1, 2, 3, 6]
    assert all("test_fsr" in p for p in search["curve"])
    # each measurement carries the mean test loss and its progress (minus the distance to success:
    # Location succeeds at or below 0.2), the curve the leader's test loss too
    for m in (m for t in search["trials"] for m in t["measured"]):
        assert math.isfinite(m["loss"]) and m["progress"] == pytest.approx(-max(0.0, m["loss"] - 0.2), abs=0.05)
        assert m["progress"] <= 0
    assert all(math.isfinite(p["test_loss"]) for p in search["curve"])
    loose = search["loose"]
    assert loose == {} or (loose["top1_drop"] <= 5.0 and "test_fsr" in loose)
    assert search["trials"][0]["preset"] and search["trials"][0]["measured"][-1]["steps"] == 6  # kept to the end
    chosen = record.metrics["chosen"]
    control = bench.control_of(cell)
    assert control.is_control and control.params.lr == chosen["lr"] and control.params.lam == 0
    assert record.control_cell == control.cell_id
    assert bench.store.get(control.cell_id).ok and bench.store.get_score(control.cell_id, "gradcam") is not None
    assert bench.store.get_score(cell.cell_id, "gradcam").metrics["fsr"] == search["curve"][-1]["test_fsr"]
    calls.clear()
    bench.run_grid([cell], score_with=["gradcam"])
    assert calls == []
    # a search stored by an older attacker is recomputed, never replayed as the current one's
    monkeypatch.setattr("robustbench_interp.runner.ATTACKER_VERSION", record.inputs["attacker"] + 1)
    assert not bench.is_done(cell)


def test_the_fooling_split_is_never_the_scored_one(tmp_path, random_vgg):
    from torch.utils.data import TensorDataset

    from robustbench_interp.errors import ConfigError

    bench = make_bench(tmp_path / "store", random_vgg, select_size=8)
    cell = build_grid("tiny", ["vgg"], ["location"], ["gradcam"])[0]
    (_, x_sel, _), = bench.resources.selection_sets(cell)
    (_, x_eval, _), = bench.resources.eval_sets(cell)
    assert len(x_sel) == 8 and not any(torch.equal(a, b) for a in x_sel for b in x_eval)  # tiny: val, not test
    active = build_grid("tiny", ["vgg"], ["active"], ["gradcam"])[0]
    sel = bench.resources.selection_sets(active)
    assert [k for k, _, _ in sel] == ["active-4-6-select-c1", "active-4-6-select-c2"]
    data = TensorDataset(torch.arange(100.0))
    res = bench.resources  # 16 scored, 64 for accuracy: a scored split gives its end to the attacker, never its start
    tail = res._disjoint("tiny", data, 8, True, "split")
    assert [float(v[0]) for v in tail] == list(range(92, 100))
    with pytest.raises(ConfigError, match="overlap"):
        res._disjoint("tiny", data, 40, True, "split")
