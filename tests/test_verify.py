"""`rbi verify`: a submitted interpreter's leaderboard row recomputed and compared with the committed one."""

from __future__ import annotations

import json

from robustbench_interp.cli import main

QUICK = ["--models", "resnet", "--attacks", "location", "--eval-size", "8", "--accuracy-size", "32"]


def published(root, scorer: str):
    """A board of the Grad-CAM Location cell on the random ResNet, scored by ``scorer`` too."""
    board = root / "board"
    assert main(["run", *QUICK, "--steps", "2", "--score-with", scorer, "--no-figures", "--store", str(root / "s"),
                 "--leaderboard-dir", str(board)]) == 0
    return board


def test_verify_reproduces_a_row_and_catches_a_moved_number(random_resnet_cache, capsys):
    board = published(random_resnet_cache, "lrp_t")
    capsys.readouterr()
    verify = ["verify", *QUICK, "--leaderboard-dir", str(board)]
    assert main([*verify, "--interpreter", "gradcam"]) == 0  # its adaptive cell
    out, err = capsys.readouterr()
    assert "verify gradcam passed" in err and "FSR gradcam (adaptive)" in out
    assert main([*verify, "--interpreter", "lrp_t"]) == 0  # transfer only: scored on the Grad-CAM cell
    out, err = capsys.readouterr()
    assert "FSR lrp_t (transfer)" in out and "verify lrp_t passed" in err

    records = board / "tiny" / "records"
    controls = [json.loads(p.read_text())["cell_id"] for p in (records / "cells").glob("*.json")
                if json.loads(p.read_text())["config"]["interpreter"] == "control"]
    assert controls
    for cell_id in controls:  # only the control's FSR moved: the fooling would move with it
        path = records / "scores" / cell_id / "gradcam.json"
        record = json.loads(path.read_text())
        record["metrics"]["fsr"] += 50.0
        path.write_text(json.dumps(record))
    assert main([*verify, "--interpreter", "gradcam"]) == 1
    out, err = capsys.readouterr()
    assert "verify gradcam FAILED" in err and "control FSR gradcam" in err

    for path in (records / "scores").glob("*/gradcam.json"):  # a committed number that moved
        record = json.loads(path.read_text())
        if record["metrics"].get("fsr") is not None:
            record["metrics"]["fsr"] += 50.0
            path.write_text(json.dumps(record))
    assert main([*verify, "--interpreter", "gradcam"]) == 1
    assert "verify gradcam FAILED" in capsys.readouterr().err


def test_verify_of_an_interpreter_with_no_row_is_an_error_before_any_work(random_resnet_cache, capsys):
    board = published(random_resnet_cache, "gradcam")
    capsys.readouterr()
    assert main(["verify", *QUICK, "--leaderboard-dir", str(board), "--interpreter", "simplegrad"]) == 2
    assert "no row of interpreter 'simplegrad'" in capsys.readouterr().err
