"""The leaderboard shows what the attacker tried (SPEC section 9): per searched cell the configuration
chosen against the preset, the FSR-versus-budget curve (budget.csv, fig_budget.png), and how the
interpreters' order changes between half and full budget (Kendall's tau)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from robustbench_interp.grid import build_grid
from robustbench_interp.leaderboard import rank_stability, search_frames, write_leaderboard
from robustbench_interp.store import Store


def _searched(store: Store, model: str, interp: str, seed: int, half: float, full: float, preset_fsr: float,
              budget: int = 2000) -> None:
    cell = build_grid("tiny", [model], ["location"], [interp], seeds=[seed], budget=budget)[0]
    curve = [{"rung": k, "steps": steps, "spent": spent, "fsr": fsr, "top1_drop": 0.5, "test_fsr": fsr,
              "loss": 0.4 - fsr / 500, "test_loss": 0.4 - fsr / 500, "lr": 3e-4, "lam": 100.0, "surrogate": "softplus"}
             for k, (steps, spent, fsr) in enumerate([(63, 756, half / 2), (125, 1128, half / 1.5),
                                                       (250, 1500, half), (500, 2000, full)])]
    trials = [{"lr": 1e-3, "lam": 10.0, "surrogate": "relu", "preset": True, "error": None,
               "measured": [{"rung": 3, "steps": 500, "fsr": preset_fsr, "top1_drop": 1.0}]},
              {"lr": 1e-4, "lam": 100.0, "surrogate": "relu", "preset": False, "error": "InterpreterError: nan",
               "measured": []}]
    store.put(cell, {"top1_drop": 0.5, "adaptive": {"fsr": full},
                     "chosen": {"lr": 3e-4, "lam": 100.0, "surrogate": "softplus", "preset": False},
                     "search": {"trials": trials, "curve": curve, "spent": 2000, "rungs": [],
                                "preset_report": {"test_fsr": preset_fsr - 1},
                                "loose": {"lr": 1e-3, "lam": 10.0, "surrogate": "relu", "fsr": full + 5, "top1_drop": 3.5,
                                          "test_fsr": full + 4}}},
              control=cell.control_for(cell.params))


def test_the_search_table_and_the_curve(tmp_path):
    store = Store(tmp_path / "store")
    _searched(store, "resnet", "gradcam", 0, half=60.0, full=80.0, preset_fsr=70.0)
    cells, curve = search_frames(store, "tiny")
    row = cells.iloc[0]
    assert (row.model, row.interpreter, row.surrogate, row.preset_chosen) == ("resnet", "gradcam", "softplus", False)
    assert (row.select_fsr, row.preset_select_fsr, row.test_fsr, row.preset_test_fsr) == (80.0, 70.0, 80.0, 69.0)
    assert (row.configurations, row.failed, row.spent) == (2, 1, 2000)
    assert (row.loose_lr, row.loose_surrogate, row.loose_select_fsr, row.loose_select_top1_drop,
            row.loose_test_fsr) == (1e-3, "relu", 85.0, 3.5, 84.0)
    assert list(curve["steps"]) == [63, 125, 250, 500]
    written = write_leaderboard(store, "tiny", tmp_path / "board")
    assert {"search.md", "search.csv", "budget.csv", "fig_budget.png"} <= set(written)
    text = (tmp_path / "board" / "search.md").read_text()
    assert "softplus" in text and "not defined with 1 interpreter" in text
    assert "## resnet" in text  # one table per model, the preset beside the choice
    row_text = next(line for line in text.splitlines() if line.startswith("| location"))
    cols = [c.strip() for c in row_text.strip("|").split("|")]
    assert cols == ["location", "gradcam", "0", "2000", "0.0003 / 100 / softplus", "80.0 / 0.5", "70.0 / 1.0",
                    "80.0 / 0.5", "69.0", "0.240", "0.001 / 10 / relu, 85.0 / 3.5 (84.0)", "2 (1)", "2000"]
    budget = pd.read_csv(tmp_path / "board" / "budget.csv")
    assert len(budget) == 4 and list(budget["test_loss"]) == sorted(budget["test_loss"], reverse=True)


def test_scores_and_accuracy_show_what_the_search_chose(tmp_path):
    """scores.csv gives a searched cell's chosen learning rate, lambda and surrogate (not the
    preset's); the accuracy table keeps apart the controls of different chosen learning rates."""
    store = Store(tmp_path / "store")
    fsr = {"fsr": 80.0, "fsr_ci": [70.0, 88.0], "baseline_fsr": 1.0, "baseline_fsr_ci": [0.0, 3.0], "n": 100,
           "empty_rate": 0.0, "constant_rate": 0.0}
    for model, lr in (("resnet", 3e-4), ("vgg", 1e-3)):
        cell = build_grid("tiny", [model], ["location"], ["gradcam"], seeds=[0], budget=2000)[0]
        chosen = cell.control_for(replace(cell.params, lr=lr))
        control = store.put(chosen, {"top1_drop": 0.1, "accuracy_after": {"top1": 98.0},
                                     "accuracy_before": {"top1": 98.1}})
        store.put(cell, {"top1_drop": 0.5, "accuracy_after": {"top1": 97.0}, "accuracy_before": {"top1": 97.5},
                         "chosen": {"lr": lr, "lam": 30.0, "surrogate": "softplus", "preset": False}},
                  control=chosen)
        store.put_score(cell.cell_id, "gradcam", fsr)
        store.put_score(control.cell_id, "gradcam", {**fsr, "fsr": 2.0})
    write_leaderboard(store, "tiny", tmp_path / "board")
    scores = pd.read_csv(tmp_path / "board" / "scores.csv")
    attacked = scores[~scores["control"]].set_index("model")
    assert attacked.loc["resnet", "lr"] == 3e-4 and attacked.loc["vgg", "lr"] == 1e-3
    assert set(attacked["lam"]) == {30.0} and set(attacked["surrogate"]) == {"softplus"}
    assert scores[scores["control"]]["surrogate"].isna().all()
    accuracy = (tmp_path / "board" / "accuracy.md").read_text()
    assert "control (lr 0.0003)" in accuracy and "control (lr 0.001)" in accuracy


def test_no_search_no_search_table(tmp_path):
    store = Store(tmp_path / "store")
    cell = build_grid("tiny", ["resnet"], ["location"], ["gradcam"])[0]
    store.put(cell, {"top1_drop": 0.5})
    assert "search.md" not in write_leaderboard(store, "tiny", tmp_path / "board")


@pytest.mark.parametrize(("swap", "tau"), [(False, 1.0), (True, -1.0)])
def test_rank_stability_is_kendalls_tau_between_half_and_full_budget(tmp_path, swap, tau):
    store = Store(tmp_path / "store")
    fulls = {"gradcam": 90.0, "lrp_t": 50.0, "simplegrad": 10.0}
    for interp, full in fulls.items():
        for seed in (0, 1):
            half = (100.0 - full) if swap else full - 5
            _searched(store, "resnet", interp, seed, half=half, full=full, preset_fsr=0.0)
    _searched(store, "vgg", "gradcam", 0, half=0.0, full=0.0, preset_fsr=0.0)  # a slot the others lack
    stability = rank_stability(search_frames(store, "tiny")[1])
    assert stability["tau"] == pytest.approx(tau)
    assert (stability["interpreters"], stability["slots"]) == (3, 2)
    assert stability["full"]["gradcam"] == 90.0


def test_searches_of_one_slot_at_two_budgets_stay_apart(tmp_path):
    """A store holding one slot searched at two budgets gives two searches, never their mean."""
    store = Store(tmp_path / "store")
    _searched(store, "vgg", "gradcam", 0, half=0.0, full=0.0, preset_fsr=85.0)
    _searched(store, "vgg", "gradcam", 0, half=60.0, full=100.0, preset_fsr=100.0, budget=8000)
    cells, curve = search_frames(store, "tiny")
    assert list(cells["budget"]) == [2000, 8000] and list(cells["test_fsr"]) == [0.0, 100.0]
    assert curve.groupby("budget")["test_fsr"].max().to_dict() == {2000: 0.0, 8000: 100.0}
    assert rank_stability(curve)["slots"] == 2
    assert "fig_budget.png" in write_leaderboard(store, "tiny", tmp_path / "board")


def test_rank_stability_of_searches_without_a_budget(tmp_path):
    """A schedule counted in epochs searches without a budget: the leaderboard still builds, each
    such search a slot of its own."""
    store = Store(tmp_path / "store")
    for interp, full in (("gradcam", 90.0), ("lrp_t", 50.0)):
        _searched(store, "resnet", interp, 0, half=full - 5, full=full, preset_fsr=0.0)
    curve = search_frames(store, "tiny")[1].assign(budget=None)
    stability = rank_stability(curve)
    assert (stability["interpreters"], stability["slots"], stability["tau"]) == (2, 1, 1.0)
    assert rank_stability(curve[curve["steps"] != 250])["interpreters"] == 0  # no rung at half: no order


def test_a_hand_set_surrogate_is_what_scores_csv_says(tmp_path):
    store = Store(tmp_path / "store")
    cell = build_grid("tiny", ["resnet"], ["location"], ["gradcam"], seeds=[0])[0]
    cell = replace(cell, params=replace(cell.params, surrogate="softplus"))
    store.put(cell, {"top1_drop": 0.5})
    store.put_score(cell.cell_id, "gradcam", {"fsr": 80.0, "fsr_ci": [70.0, 88.0], "baseline_fsr": 1.0,
                                             "baseline_fsr_ci": [0.0, 3.0], "n": 100})
    write_leaderboard(store, "tiny", tmp_path / "board")
    assert list(pd.read_csv(tmp_path / "board" / "scores.csv")["surrogate"]) == ["softplus"]


def test_the_budget_figure_of_an_attack_not_registered_here(tmp_path):
    """A curve may name a plug-in attack this process does not have: drawn without its boundary."""
    from robustbench_interp.figures import draw_budget

    store = Store(tmp_path / "store")
    _searched(store, "resnet", "gradcam", 0, half=60.0, full=80.0, preset_fsr=70.0)
    curve = search_frames(store, "tiny")[1].assign(attack="mypkg.attacks:Elsewhere")
    assert draw_budget(curve, tmp_path / "fig.png").exists()
