"""The leaderboard shows what the attacker tried (SPEC section 9): per searched cell the configuration
chosen against the preset, the FSR-versus-budget curve (budget.csv, fig_budget.png), and how the
interpreters' order changes between half and full budget (Kendall's tau)."""

from __future__ import annotations

import pandas as pd
import pytest

from robustbench_interp.grid import build_grid
from robustbench_interp.leaderboard import rank_stability, search_frames, write_leaderboard
from robustbench_interp.store import Store


def _searched(store: Store, model: str, interp: str, seed: int, half: float, full: float, preset_fsr: float) -> None:
    cell = build_grid("tiny", [model], ["location"], [interp], seeds=[seed], budget=2000)[0]
    curve = [{"rung": k, "steps": steps, "spent": spent, "fsr": fsr, "top1_drop": 0.5, "test_fsr": fsr,
              "lr": 3e-4, "lam": 100.0, "surrogate": "softplus"}
             for k, (steps, spent, fsr) in enumerate([(63, 756, half / 2), (125, 1128, half / 1.5),
                                                       (250, 1500, half), (500, 2000, full)])]
    trials = [{"lr": 1e-3, "lam": 10.0, "surrogate": "relu", "preset": True, "error": None,
               "measured": [{"rung": 3, "steps": 500, "fsr": preset_fsr, "top1_drop": 1.0}]},
              {"lr": 1e-4, "lam": 100.0, "surrogate": "relu", "preset": False, "error": "InterpreterError: nan",
               "measured": []}]
    store.put(cell, {"top1_drop": 0.5, "adaptive": {"fsr": full},
                     "chosen": {"lr": 3e-4, "lam": 100.0, "surrogate": "softplus", "preset": False},
                     "search": {"trials": trials, "curve": curve, "spent": 2000, "rungs": [],
                                "preset_report": {"test_fsr": preset_fsr - 1}}},
              control=cell.control_for(cell.params))


def test_the_search_table_and_the_curve(tmp_path):
    store = Store(tmp_path / "store")
    _searched(store, "resnet", "gradcam", 0, half=60.0, full=80.0, preset_fsr=70.0)
    cells, curve = search_frames(store, "tiny")
    row = cells.iloc[0]
    assert (row.model, row.interpreter, row.surrogate, row.preset_chosen) == ("resnet", "gradcam", "softplus", False)
    assert (row.select_fsr, row.preset_select_fsr, row.test_fsr, row.preset_test_fsr) == (80.0, 70.0, 80.0, 69.0)
    assert (row.configurations, row.failed, row.spent) == (2, 1, 2000)
    assert list(curve["steps"]) == [63, 125, 250, 500]
    written = write_leaderboard(store, "tiny", tmp_path / "board")
    assert {"search.md", "search.csv", "budget.csv", "fig_budget.png"} <= set(written)
    text = (tmp_path / "board" / "search.md").read_text()
    assert "softplus" in text and "not defined with 1 interpreter" in text
    assert len(pd.read_csv(tmp_path / "board" / "budget.csv")) == 4


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
