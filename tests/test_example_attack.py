"""The example attack plug-in ``examples/rbi_corner`` (Corner fooling, registered through an entry
point): discovery, its penalty and test loss by hand, and a run through ``rbi run`` from its entry
point and from its import path.

Needs the package installed: ``pip install -e examples/rbi_corner``.
"""

from __future__ import annotations

import json

import pytest
import torch

from robustbench_interp.attacks import ATTACKS, get_attack, list_attacks, standard_attacks
from robustbench_interp.cli import main
from robustbench_interp.errors import ConfigError

rbi_corner = pytest.importorskip(
    "rbi_corner", reason="the example attack is not installed; run `pip install -e examples/rbi_corner`"
)


def test_registered_through_the_entry_point_and_run_only_when_named():
    assert "corner" in list_attacks() and ATTACKS.origin("corner").startswith("entry point rbi_corner")
    assert "corner" not in standard_attacks()
    assert isinstance(get_attack("corner"), rbi_corner.Corner)
    assert type(get_attack("rbi_corner:Corner")) is rbi_corner.Corner


def test_the_penalty_is_zero_on_the_corner_square_and_the_test_loss_is_its_share_of_relevance():
    attack, params = get_attack("corner"), get_attack("corner").make_params()
    mask = rbi_corner.corner_mask(14, 14)
    assert int(mask.sum()) == 4 * 4  # side 2 * (14 // 7) = 4
    maps = torch.stack([mask, 1 - mask, torch.zeros(14, 14), mask + 0.01 * (1 - mask)])
    assert attack.penalty(maps[:1], None, params).item() == pytest.approx(0.0, abs=1e-7)
    t = attack.test_loss(maps, maps, params)
    assert t[0].item() == pytest.approx(1.0) and t[1].item() == pytest.approx(0.0)
    assert t[2].item() == 0.0  # an empty map is never a success
    assert t[3].item() == pytest.approx(16 / (16 + 0.01 * 180), rel=1e-5)
    (t_all,) = attack.test_losses_of((maps,), (maps,), params)
    lo, hi = attack.success_interval
    assert ((t_all >= lo) & (t_all <= hi)).tolist() == [True, False, False, True]


def test_its_hyper_parameters_are_declared():
    with pytest.raises(ConfigError, match="side_fraction"):
        get_attack("corner").make_params({"side_fracton": 5})
    with pytest.raises(ConfigError, match=">= 2"):
        get_attack("corner").make_params({"side_fraction": 1})


@pytest.mark.parametrize("spec", ["corner", "rbi_corner:Corner"])
def test_rbi_run_runs_the_plugin_attack(random_resnet_cache, spec, capsys):
    root = random_resnet_cache
    code = main(["run", "--attacks", spec, "--models", "resnet", "--steps", "2", "--eval-size", "8",
                 "--accuracy-size", "32", "--score-with", "gradcam", "--store", str(root / "store"),
                 "--leaderboard-dir", str(root / "board"), "--no-figures", "--seeds", "0"])
    assert code == 0, capsys.readouterr().err
    records = [json.loads(p.read_text()) for p in (root / "store" / "cells").glob("*.json")]
    (cell,) = [r for r in records if r["config"]["interpreter"] != "control"]
    (control,) = [r for r in records if r["config"]["interpreter"] == "control"]
    assert cell["control_cell"] == control["cell_id"] and control["config"]["params"]["lam"] == 0
    assert cell["status"] == "ok" and cell["config"]["attack"] == spec
    assert cell["config"]["attack_params"] == {"side_fraction": 7}
    assert cell["metrics"]["steps"] == 2 and 0 <= cell["metrics"]["adaptive"]["fsr"] <= 100
    fsr = (root / "board" / "tiny" / "fsr.csv").read_text()
    assert spec in fsr
