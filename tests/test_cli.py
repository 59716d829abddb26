"""The `rbi` command line: which cells `rbi run` builds, and errors that name the bad value."""

from __future__ import annotations

from robustbench_interp.cli import build_parser, main, run_cells
from robustbench_interp.grid import LEADERBOARD_ATTACK_MODELS, RUN_ATTACKERS

MODELS = ["densenet", "resnet", "vgg"]
ATTACKS = ["location", "topk", "center_mass", "active"]


def cells_of(*argv: str):
    """The attacked cells of ``rbi run`` (its controls checked and left out) and the scorers."""
    args = build_parser().parse_args(["run", *argv])
    cells, scorers = run_cells(args, "tiny", MODELS, ATTACKS)
    attacked = [c for c in cells if not c.is_control]
    preset = [c for c in attacked if c.search is None]  # a searched cell's control follows its choice
    assert {c.control.cell_id for c in preset} == {c.cell_id for c in cells if c.is_control}
    return attacked, scorers


def test_the_default_grid_is_the_quick_job_one_seed_with_the_presets():
    from robustbench_interp.grid import QUICK_SEEDS, quick_models

    cells, scorers = cells_of()
    assert {c.interpreter for c in cells} == set(RUN_ATTACKERS) and {c.seed for c in cells} == set(QUICK_SEEDS)
    assert all(c.search is None for c in cells)  # the presets, whatever the main job's budget
    assert len(cells) == len(MODELS) * len(ATTACKS) * len(QUICK_SEEDS)  # the models are the caller's
    assert quick_models("tiny", MODELS) == ["resnet"] and quick_models("tiny", ["vgg", "densenet"]) == ["vgg"]
    assert scorers[0] == "gradcam" and "lrp_t" in scorers


def test_the_main_grid_attacks_through_grad_cam_only():
    cells, scorers = cells_of("--grid", "main")
    assert {c.interpreter for c in cells} == set(RUN_ATTACKERS)
    assert len(cells) == len(MODELS) * len(ATTACKS) * 3  # the tiny track's three seeds
    assert [c.seed for c in cells] == sorted(c.seed for c in cells)  # seed-major
    assert scorers[0] == "gradcam" and "lrp_t" in scorers
    assert all(c.search is not None and c.search.budget == 2000 for c in cells)  # the committed board's budget


def test_the_leaderboard_grid_attacks_through_every_differentiable_interpreter():
    from robustbench_interp import list_interpreters

    cells, scorers = cells_of("--grid", "leaderboard")
    assert scorers[: len(RUN_ATTACKERS)] == list(RUN_ATTACKERS) and set(scorers) == set(list_interpreters())
    by_attacker: dict[str, set[str]] = {}
    for c in cells:
        by_attacker.setdefault(c.interpreter, set()).add(c.model)
    assert cells[0].interpreter == RUN_ATTACKERS[0]
    for name in list_interpreters():
        expected = set(LEADERBOARD_ATTACK_MODELS.get(name, MODELS))
        assert by_attacker.get(name, set()) == expected, name
    assert len({c.cell_id for c in cells}) == len(cells)


def test_interpreter_all_means_every_registered_differentiable_one():
    from robustbench_interp import list_interpreters

    cells, _ = cells_of("--interpreter", "all", "--models", "resnet")
    assert {c.interpreter for c in cells} == set(list_interpreters())


def test_an_unknown_interpreter_is_an_error_naming_it_and_the_close_names(capsys, tmp_path):
    code = main(["run", "--interpreter", "gradcma", "--models", "resnet", "--attacks", "location",
                 "--store", str(tmp_path / "s"), "--leaderboard-dir", str(tmp_path / "lb")])
    err = capsys.readouterr().err
    assert code == 2 and "'gradcma'" in err and "'gradcam'" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()  # nothing was computed or stored


def test_an_unknown_attack_is_an_error_naming_it_and_the_attacks(capsys, tmp_path):
    code = main(["run", "--attacks", "location,locaton", "--models", "resnet",
                 "--store", str(tmp_path / "s"), "--leaderboard-dir", str(tmp_path / "lb")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown attack 'locaton'" in err and "Did you mean 'location'" in err
    assert all(attack in err for attack in ATTACKS) and "Traceback" not in err
    assert not (tmp_path / "s").exists()  # nothing was computed or stored


def test_the_leaderboard_grid_refuses_an_interpreter_selection(capsys):
    assert main(["run", "--grid", "leaderboard", "--interpreter", "gradcam"]) == 2
    assert "--grid leaderboard" in capsys.readouterr().err


def test_rbi_leaderboard_rebuilds_the_committed_tables_from_the_committed_records_byte_for_byte(capsys, tmp_path):
    """The committed tables are a function of the committed records (so this is also a check that
    nobody edited a table by hand, and that the records are today's schema)."""
    import shutil
    from pathlib import Path

    committed = Path(__file__).resolve().parents[1] / "leaderboard" / "tiny"
    board = tmp_path / "board" / "tiny"
    shutil.copytree(committed, board)
    before = {p.name: p.read_bytes() for p in board.iterdir() if p.is_file()}
    for name in ("fsr.md", "scores.csv", "ranking.csv"):
        (board / name).write_text("stale\n")
    assert main(["leaderboard", "--leaderboard-dir", str(tmp_path / "board")]) == 0
    assert {p.name: p.read_bytes() for p in board.iterdir() if p.is_file()} == before


def test_the_committed_records_are_todays_searched_cells():
    """A change to a preset, the search space or the track's budget without a new leaderboard fails
    here: every committed attacked cell is the one the grid builds today, searched, and every
    committed control is the one a committed cell's search chose."""
    from pathlib import Path

    from robustbench_interp.grid import build_grid
    from robustbench_interp.leaderboard import records_store

    board = records_store(Path(__file__).resolve().parents[1] / "leaderboard" / "tiny")
    records = list(board.records())
    chosen = set()
    for record in records:
        c = record.config
        if c["interpreter"] == "control":
            continue
        (cell,) = build_grid("tiny", [c["model"]], [c["attack"]], [c["interpreter"]], seeds=[c["seed"]], budget=None)
        assert cell.search is not None and cell.cell_id == record.cell_id, record.label
        chosen.add(record.control_cell)
    controls = {r.cell_id for r in records if r.config["interpreter"] == "control"}
    assert controls and controls <= chosen


def test_rbi_leaderboard_refuses_a_missing_or_empty_store_and_keeps_the_tables(capsys, tmp_path):
    (tmp_path / "board" / "tiny").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    for store in ("typo", "file", "empty"):
        assert main(["leaderboard", "--store", str(tmp_path / store), "--leaderboard-dir", str(tmp_path / "board")]) == 2
        err = capsys.readouterr().err
        assert str(tmp_path / store) in err and "Traceback" not in err
    assert main(["leaderboard", "--leaderboard-dir", str(tmp_path / "board")]) == 2  # no records at all
    assert "holds no records" in capsys.readouterr().err
    assert list((tmp_path / "board" / "tiny").iterdir()) == []


def test_a_crafted_record_runs_nothing_when_figures_are_rebuilt(capsys, tmp_path):
    """Stored data is data: a record naming 'os:system' with a command as its parameters is skipped."""
    from robustbench_interp.config import CellConfig
    from robustbench_interp.grid import build_grid
    from robustbench_interp.records import CellRecord
    from robustbench_interp.store import Store

    marker = tmp_path / "pwned"
    (cfg,) = build_grid("tiny", ["resnet"], ["location"], ["gradcam"])
    config = {**cfg.to_dict(), "interpreter": "os:system", "interpreter_params": {"command": f"touch {marker}"}}
    cell_id = CellConfig.from_dict(config).cell_id  # a consistent record: its id is its config's hash
    store = Store(tmp_path / "crafted")
    store.write(CellRecord(cell_id=cell_id, status="ok", config=config, label="crafted", version=cfg.version,
                           metrics={"top1_drop": 0.0, "accuracy_before": {"top1": 90.0, "top5": 99.0},
                                    "accuracy_after": {"top1": 90.0, "top5": 99.0}}))
    store.weights_path(cell_id).write_bytes(b"")
    code = main(["leaderboard", "--store", str(tmp_path / "crafted"), "--leaderboard-dir", str(tmp_path / "board"),
                 "--figures"])
    err = capsys.readouterr().err
    assert code == 0 and not marker.exists()
    assert "figure: skipped" in err and "'os:system'" in err


def test_bad_inputs_fail_at_the_door_before_any_work(capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    cases = [
        (["run", "--store", ""], "--store is empty"),
        (["run", "--store", str(tmp_path / "afile")], "is a file"),
        (["run", "--store", "/proc/rbi-store"], "cannot hold results"),
        (["run", "--eval-size", "0", "--store", str(tmp_path / "s")], "eval_size must be an integer >= 1"),
        (["run", "--interpreter", ".evil:X", "--store", str(tmp_path / "s")], "absolute import path"),
        (["check", "--score-with", "lrp_tt"], "Did you mean 'lrp_t'"),
        (["check", "--cells", ","], "names no cell"),
        (["leaderboard", "--track", "../../x"], "unknown track"),
    ]
    for argv, message in cases:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)


def test_ctrl_c_says_in_one_line_what_was_kept_and_how_to_resume(capsys, monkeypatch, tmp_path):
    import robustbench_interp.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_run", interrupted)
    assert main(["run", "--store", str(tmp_path / "s")]) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "resume" in err and str(tmp_path / "s") in err and "Traceback" not in err


QUICK_RUN = ["--models", "resnet", "--attacks", "location", "--steps", "2", "--eval-size", "8", "--accuracy-size", "32",
             "--score-with", "gradcam", "--no-figures"]


def test_rbi_run_exits_1_and_lists_each_failed_cell_with_its_reason(random_resnet_cache, capsys, monkeypatch):
    root = random_resnet_cache
    (root / "rbi_boom_mod.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(root))
    code = main(["run", *QUICK_RUN, "--grid", "main", "--interpreter", "rbi_boom_mod:X", "--interpreter", "gradcam",
                 "--store", str(root / "store"), "--leaderboard-dir", str(root / "board")])
    err = capsys.readouterr().err
    assert code == 1 and "3 cells failed" in err  # the plug-in's cell for each of the three seeds
    # said first, before any base model is loaded or cell computed (the probe of robustbench_interp.probe)
    assert err.splitlines()[0].startswith("[rbi] interpreter rbi_boom_mod:X fails on a tiny batch")
    assert "failed: tiny-resnet-location-rbi_boom_mod:X: PluginImportError" in err and "boom at import" in err
    scores = (root / "board" / "tiny" / "scores.csv").read_text()
    assert "resnet,location,gradcam,gradcam" in scores  # the other cell carried on, and is on the board


def test_cells_of_another_evaluation_size_are_not_mixed_into_a_leaderboard(random_resnet_cache, capsys):
    root = random_resnet_cache
    args = ["--store", str(root / "store"), "--leaderboard-dir", str(root / "board")]
    assert main(["run", *QUICK_RUN, *args]) == 0
    capsys.readouterr()
    other = [a if a != "8" else "16" for a in QUICK_RUN]  # --eval-size 16
    before = (root / "board" / "tiny" / "scores.csv").read_text()
    assert main(["run", *other, "--attacks", "topk", *args]) == 2
    err = capsys.readouterr().err
    assert "--eval-size 16" in err and "8" in err and "another --leaderboard-dir" in err
    assert (root / "board" / "tiny" / "scores.csv").read_text() == before


def test_rbi_run_writes_its_leaderboard_beside_its_store_not_into_the_committed_one(random_resnet_cache, capsys,
                                                                                   monkeypatch):
    root = random_resnet_cache
    monkeypatch.chdir(root)  # a clone: leaderboard/ would be the committed folder
    assert main(["run", *QUICK_RUN, "--store", "results"]) == 0
    assert (root / "results" / "leaderboard" / "tiny" / "scores.csv").exists()
    assert not (root / "leaderboard").exists()
    assert "leaderboard results/leaderboard/tiny" in capsys.readouterr().err  # said where it goes


def test_a_re_run_with_nothing_changed_keeps_the_figures_and_a_new_manipulation_redraws_them(
        random_resnet_cache, capsys, monkeypatch):
    import os

    from robustbench_interp import figures

    root = random_resnet_cache
    drawn = []
    real = figures.draw_figures
    monkeypatch.setattr(figures, "draw_figures", lambda *a, **k: drawn.append(1) or real(*a, **k))
    args = ["run", *[a for a in QUICK_RUN if a != "--no-figures"], "--store", str(root / "s"),
            "--leaderboard-dir", str(root / "board")]
    assert main(args) == 0 and len(drawn) == 1
    figure = root / "board" / "tiny" / "fig_location_resnet.png"
    assert figure.exists()
    assert main(args) == 0 and len(drawn) == 1  # nothing changed: nothing drawn
    assert "figures of" in capsys.readouterr().err
    later = figure.stat().st_mtime + 10  # a manipulated model newer than the figure: drawn again
    for weights in (root / "s" / "weights").rglob("*"):
        if weights.is_file():
            os.utime(weights, (later, later))
    assert main(args) == 0 and len(drawn) == 2
