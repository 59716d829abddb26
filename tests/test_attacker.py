"""The attacker (SPEC section 9; attacks/attacker.py): the search space and its budget, successive
halving that never drops the preset, selection on the fooling split within the top-1 budget,
divergent configurations dropped, a resumed run equal to one run, and the surrogates."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from robustbench_interp.attacks.attacker import (
    LOOSE_TOP1_DROP,
    configurations,
    cost_factor,
    full_length,
    plan,
    schedule_of,
    search,
    selection_key,
)
from robustbench_interp.attacks.finetune import ManipulationRun, manipulate
from robustbench_interp.attacks.presets import preset, search_space
from robustbench_interp.attacks.surrogates import SURROGATES, get_surrogate
from robustbench_interp.config import _SURROGATE_NAMES, MAX_TOP1_DROP, AttackParams, CellConfig, SearchSpace
from robustbench_interp.errors import ConfigError, GradientMaskingError, InterpreterError
from robustbench_interp.grid import build_grid, main_grid
from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.metrics.heatmaps import normalize
from robustbench_interp.models import tiny
from robustbench_interp.tracks import get_track

TINY = get_track("tiny").search


# ------------------------------------------------------------------------------ the space and its budget

def test_the_tiny_budget_leaves_the_finalists_the_presets_own_steps():
    params, _ = preset("tiny", "vgg", "location", "gradcam")
    space = search_space("tiny", "vgg", "location", "gradcam")
    configs = configurations(space, params)
    assert len(configs) == 12 and configs[0] == params  # the preset first
    assert cost_factor(space, len(configs)) == Fraction(4)
    assert full_length(space, 500, len(configs)) == 500 == params.steps
    assert [(r.steps, r.keep) for r in plan(space, 500, len(configs))] == [(63, 6), (125, 3), (250, 2), (500, 1)]
    # an -adv cell's replays count: 125 minibatches of 4 replays, as its preset
    adv, _ = preset("tiny", "vgg-adv", "location", "gradcam")
    assert schedule_of(space, adv).steps == 125 == adv.steps


def test_every_interpreter_is_searched_over_the_same_learning_rates_and_lambdas():
    """The space is centred on the attack's preset, before LRP's own learning rate, which is one of its points."""
    def values(interp):
        params, _ = preset("tiny", "resnet", "topk", interp)
        return {(p.lr, p.lam, p.surrogate) for p in configurations(search_space("tiny", "resnet", "topk", interp), params)}

    assert values("lrp") == values("gradcam") == values("simplegrad")
    lrp, _ = preset("tiny", "resnet", "topk", "lrp")
    assert lrp.lr == 1e-4 and (lrp.lr, lrp.lam, "relu") in values("lrp")
    assert {lr for lr, _, _ in values("lrp")} == {1e-4, 1e-3}


def test_a_raised_budget_lengthens_the_finalists():
    space = replace(search_space("tiny", "vgg", "location", "gradcam"), budget=8000)
    params, _ = preset("tiny", "vgg", "location", "gradcam")
    assert schedule_of(space, params).steps == 2000
    with pytest.raises(ConfigError, match="too small"):
        full_length(replace(space, budget=3), 500, 12)


def test_the_named_grids_search_with_a_budget_and_run_presets_without():
    main = main_grid("tiny", ["resnet"], ["location"], budget=2000)
    assert all(c.search is not None and c.search.budget == 2000 for c in main.attacked)
    assert not [c for c in main.cells if c.is_control]  # a searched cell's control follows its choice
    plain = build_grid("tiny", ["resnet"], ["location"], ["gradcam"])
    assert plain[0].search is None
    hand = build_grid("tiny", ["resnet"], ["location"], ["gradcam"], budget=None, overrides={"lr": 1e-4, "lam": 1})
    assert hand[0].search is None  # a hand-set configuration runs alone
    assert main_grid("tiny", ["resnet"], ["location"], budget=0).attacked[0].search is None
    committed = main_grid("tiny", ["resnet"], ["location"]).attacked[0].search  # GRID_BUDGET: the committed cells
    assert committed is not None and committed.budget == 2000


def test_a_searched_cell_has_its_own_identity_and_its_control_follows_the_choice():
    plain = build_grid("tiny", ["resnet"], ["location"], ["gradcam"])[0]
    searched = build_grid("tiny", ["resnet"], ["location"], ["gradcam"], budget=None)[0]
    assert searched.cell_id != plain.cell_id
    assert CellConfig.from_dict(searched.to_dict()) == searched
    assert "search" not in plain.to_dict() and "surrogate" not in plain.params.to_dict()  # old ids stay valid
    with pytest.raises(ConfigError, match="control_for"):
        _ = searched.control
    chosen = replace(searched.params, lr=3e-4, lam=100.0, surrogate="softplus")
    control = searched.control_for(chosen)
    assert control.is_control and control.params.lr == 3e-4 and control.params.lam == 0
    assert control.params.surrogate == "relu" and control.search is None
    assert searched.control_for(searched.params) == plain.control  # the preset's control is the old one


def test_search_spaces_are_checked():
    with pytest.raises(ConfigError, match="surrogates"):
        SearchSpace(surrogates=("tanh",))
    with pytest.raises(ConfigError, match="lr_factors"):
        SearchSpace(lr_factors=(1.0, -1.0))
    with pytest.raises(ConfigError, match="rungs"):
        SearchSpace(rungs=0)
    with pytest.raises(ConfigError, match="surrogate"):
        AttackParams(lr=1e-3, lam=1, surrogate="abs")
    assert set(SURROGATES) == set(_SURROGATE_NAMES)
    assert TINY is not None and TINY.budget == 2000


# ------------------------------------------------------------------------------ successive halving

class FakeRun:
    """A manipulation whose FSR and top-1 drop after ``n`` steps are set by its configuration."""

    def __init__(self, params, quality, fail_at=None):
        self.params, self.quality, self.fail_at = params, quality, fail_at
        self.step, self.total = 0, params.steps
        self.model = nn.Linear(1, 1)
        self.model.fake = self

    def advance(self, until=None):
        until = self.total if until is None else min(until, self.total)
        if self.fail_at is not None and until >= self.fail_at:
            raise InterpreterError("the manipulation loss became nan")
        self.step = until
        return self

    def result(self):
        from robustbench_interp.attacks.finetune import Manipulation

        return Manipulation(model=self.model)


def _fake_search(qualities, *, fail=(), space=None):
    """``qualities[(lr, lam, surrogate)] = f(steps) -> (fsr, drop)``; the preset is lr 1e-3, lam 10."""
    space = space or SearchSpace(budget=400, lr_factors=(0.1, 1.0), lam_factors=(1.0, 10.0),
                                 surrogates=("relu", "softplus"), rungs=3, center=(1e-3, 10.0))
    preset_ = AttackParams(lr=1e-3, lam=10.0, steps=100)

    def start(params):
        key = (params.lr, params.lam, params.surrogate)
        return FakeRun(params, qualities[key], fail_at=25 if key in fail else None)

    def evaluate(model):
        fsr, drop = model.fake.quality(model.fake.step)
        return {"fsr": fsr, "top1_drop": drop}

    return search(preset_, space, start, evaluate)


def _qualities(default=(10.0, 0.5), **special):
    keys = [(lr, lam, s) for lr in (1e-4, 1e-3) for lam in (10.0, 100.0) for s in ("relu", "softplus")]
    table = {k: (lambda steps, v=default: v) for k in keys}
    table.update(special)
    return table


def test_the_best_admissible_configuration_wins():
    q = _qualities()
    q[(1e-4, 100.0, "softplus")] = lambda steps: (90.0, 1.5)  # the best within the top-1 budget
    q[(1e-3, 100.0, "relu")] = lambda steps: (99.0, 5.0)  # higher FSR, but it breaks the model
    result = _fake_search(q)
    chosen = result.winner.params
    assert (chosen.lr, chosen.lam, chosen.surrogate) == (1e-4, 100.0, "softplus")
    assert result.winner.run.step == 100  # the winner ran the full length
    assert [p["fsr"] for p in result.curve] == [90.0, 90.0, 90.0]
    summary = result.summary()
    assert len(summary["trials"]) == 8 and summary["winner"]["lr"] == 1e-4
    assert summary["spent"] == result.spent


def test_the_preset_reaches_the_final_rung_even_when_it_starts_worst():
    q = _qualities(default=(50.0, 0.5))
    q[(1e-3, 10.0, "relu")] = lambda steps: (0.0, 0.5) if steps < 100 else (95.0, 0.5)  # a slow starter
    result = _fake_search(q)
    preset_trial = result.trials[0]
    assert preset_trial.preset and [m["steps"] for m in preset_trial.measured] == [25, 50, 100]
    assert result.winner is preset_trial  # never weaker than the preset


def test_a_diverging_configuration_drops_out_and_the_search_goes_on():
    q = _qualities()
    q[(1e-4, 10.0, "relu")] = lambda steps: (70.0, 0.1)
    result = _fake_search(q, fail={(1e-3, 100.0, "relu"), (1e-3, 100.0, "softplus")})
    failed = [t for t in result.trials if t.error]
    assert len(failed) == 2 and all("nan" in t.error for t in failed)
    assert result.winner.params.lr == 1e-4


def test_when_every_configuration_fails_the_cell_fails_with_the_first_reason():
    keys = _qualities()
    with pytest.raises(InterpreterError, match="nan"):
        _fake_search(keys, fail=set(keys))


def test_masking_under_one_surrogate_drops_that_configuration_and_everywhere_ends_the_cell():
    space = SearchSpace(lr_factors=(1.0,), surrogates=("relu", "softplus"), rungs=2)
    preset_ = AttackParams(lr=1e-3, lam=1, steps=10)

    def start_masked_relu(params):
        if params.surrogate == "relu":
            raise GradientMaskingError("no gradient through the ReLU", norms=[0.0])
        return FakeRun(params, lambda steps: (40.0, 0.5))

    result = search(preset_, space, start_masked_relu, lambda m: dict(zip(("fsr", "top1_drop"), m.fake.quality(0))))
    assert result.winner.params.surrogate == "softplus" and "GradientMaskingError" in result.trials[0].error

    calls = []

    def start_masked(params):
        calls.append(params)
        raise GradientMaskingError("no gradient", norms=[0.0])

    with pytest.raises(GradientMaskingError):
        search(preset_, space, start_masked, lambda m: {"fsr": 0.0, "top1_drop": 0.0})
    assert len(calls) == 2  # every configuration was tried


def test_a_rung_keeping_one_keeps_the_leader_and_the_preset():
    q = _qualities(default=(10.0, 0.5))
    q[(1e-4, 100.0, "softplus")] = lambda steps: (90.0, 0.5)
    space = SearchSpace(budget=400, lr_factors=(0.1, 1.0), lam_factors=(1.0, 10.0), surrogates=("relu", "softplus"),
                        rungs=4, eta=3, center=(1e-3, 10.0))  # keeps 3, 1, 1

    def start(params):
        return FakeRun(params, q[(params.lr, params.lam, params.surrogate)])

    result = search(AttackParams(lr=1e-3, lam=10.0, steps=100), space, start,
                    lambda m: dict(zip(("fsr", "top1_drop"), m.fake.quality(m.fake.step))))
    assert (result.winner.params.lr, result.winner.params.surrogate) == (1e-4, "softplus")
    assert result.trials[0].measured[-1]["steps"] == 100  # the preset ran to the end beside it


def test_the_selection_order():
    within = {"fsr": 40.0, "top1_drop": MAX_TOP1_DROP}
    beyond = {"fsr": 99.0, "top1_drop": MAX_TOP1_DROP + 0.1}
    assert selection_key(within) < selection_key(beyond)
    assert selection_key({"fsr": 50.0, "top1_drop": 1.0}) < selection_key({"fsr": 50.0, "top1_drop": 1.5})
    assert selection_key({"fsr": 0.0, "top1_drop": 3.0}) < selection_key({"fsr": 90.0, "top1_drop": 4.0})
    # an FSR tie (no image past the threshold yet) goes to the configuration closer to success
    moved = {"fsr": 0.0, "top1_drop": 1.5, "progress": -0.10}
    still = {"fsr": 0.0, "top1_drop": 0.5, "progress": -0.25}
    assert selection_key(moved) < selection_key(still)
    assert selection_key({**still, "fsr": 1.0}) < selection_key(moved)  # the FSR first
    # no progress measured (a plug-in's NaN test losses): ranked last among its FSR, never unorderable
    unknown = {"fsr": 0.0, "top1_drop": 0.5, "progress": float("nan")}
    assert sorted([unknown, still, moved], key=selection_key) == [moved, still, unknown]
    assert selection_key({**unknown, "progress": None}) == selection_key(unknown)


def test_distances_to_the_success_interval():
    """Progress is the distance of each test loss to the interval, whichever side it is on; an empty
    or constant map, or a NaN loss, stays at its baseline's distance (blanking is not progress)."""
    from robustbench_interp.metrics.fsr import distances

    t0 = torch.tensor([0.45, 0.45, 0.45, 0.45])
    t = torch.tensor([0.10, 0.30, 0.00, float("nan")])  # inside, closer, blank (flagged), NaN
    d = distances(t, t0, (0.0, 0.2), degenerate=torch.tensor([False, False, True, False]))
    assert d.tolist() == pytest.approx([0.0, 0.1, 0.25, 0.25])
    # Center-mass and Active succeed above a lower bound: there the loss must rise
    assert distances(torch.tensor([0.02, 0.3]), torch.zeros(2), (0.1, 1.0)).tolist() == pytest.approx([0.08, 0.0])
    assert distances(torch.tensor([-1.0]), torch.tensor([-1.0]), (0.5, 2.0)).tolist() == [1.5]


# ------------------------------------------------------------------------------ real runs

DATA = TensorDataset(torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 10)


def _resnet():
    torch.manual_seed(0)
    model = tiny.build("resnet").eval()
    return model, model.get_submodule(model.target_layer_name)


def test_a_run_advanced_in_segments_is_one_run():
    """The schedule is the full length's, so stopping at rungs changes nothing: the preset's
    finalist is exactly the preset cell."""
    model, layer = _resnet()
    params = AttackParams(lr=1e-3, lam=1.0, steps=8, batch_size=4, cooldown=0.5)
    whole = manipulate(model, layer, get_interpreter("gradcam"), "location", params, DATA, seed=3).model
    run = ManipulationRun(model, layer, get_interpreter("gradcam"), "location", params, DATA, seed=3)
    for until in (1, 2, 4, 8):
        run.advance(until)
        other = ManipulationRun(model, layer, get_interpreter("gradcam"), "location", params, DATA, seed=4)
        other.advance(3)  # another configuration in between must not disturb it
    assert run.done
    for a, b in zip(whole.state_dict().values(), run.model.state_dict().values()):
        assert torch.equal(a, b)


def test_the_softplus_surrogate_passes_gradient_where_the_paper_penalty_has_none():
    h = -torch.rand(2, 4, 4) - 0.5  # negative everywhere: n(h) is empty
    h.requires_grad_(True)
    assert normalize(h).abs().sum() == 0
    (get_surrogate("softplus")(h) - 0).pow(2).mean().backward()
    assert h.grad is not None and (h.grad != 0).all()
    soft = get_surrogate("softplus")(h.detach())
    assert (soft > 0).all()
    assert torch.equal(soft.flatten(1).argsort(), h.detach().flatten(1).argsort())  # monotone: Top-k's order kept
    assert get_surrogate("relu") is None


def test_a_track_without_a_search_refuses_a_budget():
    with pytest.raises(ConfigError, match="no attacker's search"):
        search_space("imagenet", "resnet50", "location", "gradcam", budget=2000)
    assert search_space("imagenet", "resnet50", "location", "gradcam") is None
    assert search_space("tiny", "resnet", "location", "gradcam", budget=0) is None


def test_the_presets_finalist_is_reported_beside_the_winner():
    q = _qualities()
    q[(1e-4, 100.0, "softplus")] = lambda steps: (90.0, 1.5)
    space = SearchSpace(budget=400, lr_factors=(0.1, 1.0), lam_factors=(1.0, 10.0), surrogates=("relu", "softplus"),
                        rungs=3, center=(1e-3, 10.0))

    def start(params):
        return FakeRun(params, q[(params.lr, params.lam, params.surrogate)])

    def evaluate(model):
        fsr, drop = model.fake.quality(model.fake.step)
        return {"fsr": fsr, "top1_drop": drop}

    result = search(AttackParams(lr=1e-3, lam=10.0, steps=100), space, start, evaluate,
                    report=lambda model: {"test_fsr": model.fake.quality(model.fake.step)[0] - 1})
    assert result.summary()["preset_report"] == {"test_fsr": 9.0}
    assert result.curve[-1]["test_fsr"] == 89.0


def test_the_best_finalist_under_a_looser_top1_budget_is_reported():
    """A cell whose only strong configuration costs 3 points of top-1: the winner stays within 2
    points (and fools little), the report names the strong one within LOOSE_TOP1_DROP."""
    q = _qualities(default=(5.0, 0.5))
    q[(1e-3, 10.0, "relu")] = lambda steps: (85.0, 3.0)  # the preset
    space = SearchSpace(budget=400, lr_factors=(0.1, 1.0), lam_factors=(1.0, 10.0), surrogates=("relu", "softplus"),
                        rungs=3, center=(1e-3, 10.0))

    def start(params):
        return FakeRun(params, q[(params.lr, params.lam, params.surrogate)])

    def evaluate(model):
        return dict(zip(("fsr", "top1_drop"), model.fake.quality(model.fake.step)))

    result = search(AttackParams(lr=1e-3, lam=10.0, steps=100), space, start, evaluate,
                    report=lambda model: {"test_fsr": model.fake.quality(model.fake.step)[0] - 1})
    assert result.winner.measured[-1]["top1_drop"] <= MAX_TOP1_DROP and not result.winner.preset
    loose = result.summary()["loose"]
    assert (loose["lr"], loose["lam"], loose["preset"], loose["fsr"], loose["test_fsr"]) == (1e-3, 10.0, True, 85.0, 84.0)
    assert MAX_TOP1_DROP < loose["top1_drop"] <= LOOSE_TOP1_DROP


def test_a_rung_before_the_cooldown_admits_a_larger_drop():
    """Mid-run the learning rate has not cooled down: a configuration with a drop the cooldown will
    give back is not ranked below one that fools nothing."""
    q = _qualities(default=(0.0, 0.5))
    q[(1e-4, 100.0, "softplus")] = lambda steps: (60.0, 4.0) if steps < 100 else (80.0, 1.8)
    space = SearchSpace(budget=400, lr_factors=(0.1, 1.0), lam_factors=(1.0, 10.0), surrogates=("relu", "softplus"),
                        rungs=3, center=(1e-3, 10.0))
    preset_ = AttackParams(lr=1e-3, lam=10.0, steps=100, cooldown=0.4)

    def start(params):
        return FakeRun(params, q[(params.lr, params.lam, params.surrogate)])

    def evaluate(model):
        fsr, drop = model.fake.quality(model.fake.step)
        return {"fsr": fsr, "top1_drop": drop}

    result = search(preset_, space, start, evaluate)
    assert (result.winner.params.lr, result.winner.params.lam) == (1e-4, 100.0)
    assert result.curve[0]["fsr"] == 60.0  # the leader of the first rung despite its 4-point drop


def test_a_rung_before_the_cooldown_also_keeps_the_best_admissible_configuration():
    """Four configurations fool more at a drop the cooldown never gives back: the early allowance
    ranks them first, but the best configuration within 2 points still reaches the final rung and wins."""
    q = _qualities(default=(0.0, 0.5))
    q[(1e-3, 10.0, "relu")] = lambda steps: (10.0, 0.5)  # the preset
    for key in [(1e-3, 100.0, "relu"), (1e-3, 100.0, "softplus"), (1e-4, 100.0, "relu"), (1e-4, 100.0, "softplus")]:
        q[key] = lambda steps: (50.0, 4.0)
    q[(1e-4, 10.0, "softplus")] = lambda steps: (30.0, 1.0)
    space = SearchSpace(budget=600, lr_factors=(0.1, 1.0), lam_factors=(1.0, 10.0), surrogates=("relu", "softplus"),
                        rungs=2, center=(1e-3, 10.0))  # 8 configurations: 50 steps, the best 4 to 100

    def start(params):
        return FakeRun(params, q[(params.lr, params.lam, params.surrogate)])

    def evaluate(model):
        return dict(zip(("fsr", "top1_drop"), model.fake.quality(model.fake.step)))

    result = search(AttackParams(lr=1e-3, lam=10.0, steps=100, cooldown=0.4), space, start, evaluate)
    assert result.rungs[0].keep == 4 and result.curve[0]["fsr"] == 50.0
    assert (result.winner.params.lr, result.winner.params.lam, result.winner.params.surrogate) == (1e-4, 10.0, "softplus")
    assert sum(len(t.measured) == 2 for t in result.trials) == 4  # still four finalists: the budget holds


def test_the_planned_minibatches_are_the_budget():
    from robustbench_interp.attacks.attacker import planned_minibatches

    cell = build_grid("tiny", ["vgg"], ["location"], ["gradcam"], budget=2000)[0]
    assert planned_minibatches(cell.search, cell.params) == 12 * 63 + 6 * 62 + 3 * 125 + 2 * 250  # 2003: rounding up
