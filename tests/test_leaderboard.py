"""The leaderboard renders the store: every number in a table is one stored in a record."""

from __future__ import annotations

import pandas as pd
import pytest

from robustbench_interp.config import CellConfig
from robustbench_interp.grid import build_grid
from robustbench_interp.leaderboard import publish, ranking, records_store, scores_frame, write_leaderboard
from robustbench_interp.store import Store

FSR = {  # (attack, attacker, scored) -> (fsr, baseline)
    ("location", "gradcam", "gradcam"): (90.0, 1.0),
    ("location", "gradcam", "lrp_t"): (10.0, 2.0),
    ("location", "lrp_t", "lrp_t"): (60.0, 3.0),
    ("location", "lrp_t", "gradcam"): (40.0, 4.0),
    ("topk", "gradcam", "gradcam"): (70.0, 5.0),
    ("topk", "gradcam", "lrp_t"): (20.0, 6.0),
}


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(tmp_path / "store")
    cells = build_grid("tiny", ["vgg"], ["location", "topk"], ["gradcam", "lrp_t"], overrides={"steps": 1})
    for cfg in cells:
        if not any(k[:2] == (cfg.attack, cfg.interpreter) for k in FSR):
            store.put_failed(cfg, "RuntimeError: skipped in this test")
            continue
        drop = 1.5 if cfg.interpreter == "gradcam" else 0.5
        store.put(cfg, {"accuracy_before": {"top1": 95.0, "top5": 99.0},
                        "accuracy_after": {"top1": 95.0 - drop, "top5": 98.0}, "top1_drop": drop, "top5_drop": 1.0})
        for (attack, attacker, scored), (fsr, base) in FSR.items():
            if (attack, attacker) == (cfg.attack, cfg.interpreter):
                store.put_score(cfg.cell_id, scored, {"fsr": fsr, "baseline_fsr": base, "n": 10,
                                                      "fsr_ci": [fsr - 5, fsr + 5]})
    return store


def test_tables_hold_the_stored_numbers(store, tmp_path):
    written = write_leaderboard(store, "tiny", tmp_path / "board")
    assert {p.name for p in written.values()} == {f"{n}.{e}" for n in ("fsr", "accuracy", "transfer", "ranking")
                                                  for e in ("md", "csv")} | {"scores.csv"}
    fsr = pd.read_csv(tmp_path / "board" / "fsr.csv", header=[0, 1, 2], index_col=[0, 1])
    assert fsr.loc[("location", "gradcam"), ("fsr", "vgg", "gradcam")] == 90.0
    assert fsr.loc[("location", "lrp_t"), ("baseline_fsr", "vgg", "gradcam")] == 4.0
    md = (tmp_path / "board" / "fsr.md").read_text()
    assert "90.0 (1.0)" in md and "40.0 (4.0)" in md
    acc = (tmp_path / "board" / "accuracy.md").read_text()
    assert acc.index("baseline") < acc.index("location")
    assert "93.5" in acc  # 95 - 1.5 after the Grad-CAM manipulations


def test_scores_csv_has_one_row_per_score_with_its_cells_accuracy(store, tmp_path):
    write_leaderboard(store, "tiny", tmp_path / "board")
    df = pd.read_csv(tmp_path / "board" / "scores.csv")
    assert len(df) == len(FSR)
    for (attack, attacker, scored), (fsr, base) in FSR.items():
        (row,) = df[(df.attack == attack) & (df.attacking_interpreter == attacker)
                    & (df.scored_interpreter == scored)].itertuples()
        assert (row.fsr, row.baseline_fsr, row.adaptive) == (fsr, base, attacker == scored)
        assert (row.fsr_ci_low, row.fsr_ci_high) == (fsr - 5, fsr + 5)
        assert row.top1_drop == (1.5 if attacker == "gradcam" else 0.5) and row.steps == 1


def test_transfer_matrix_averages_over_attacks_and_models(store, tmp_path):
    write_leaderboard(store, "tiny", tmp_path / "board")
    m = pd.read_csv(tmp_path / "board" / "transfer.csv", index_col=0)
    assert m.loc["gradcam", "gradcam"] == pytest.approx((90 + 70) / 2)
    assert m.loc["gradcam", "lrp_t"] == pytest.approx((10 + 20) / 2)
    assert m.loc["lrp_t", "gradcam"] == pytest.approx(40)


def test_ranking_orders_by_mean_adaptive_fsr(store):
    scores = scores_frame(store, "tiny")
    rank = ranking(scores, store.to_dataframe(status="ok"))
    assert list(rank["interpreter"]) == ["lrp_t", "gradcam"]  # 60 < (90 + 70) / 2
    row = rank.set_index("interpreter").loc["gradcam"]
    assert row["adaptive_fsr"] == pytest.approx(80.0)
    assert row["mean_top1_drop"] == pytest.approx(1.5)
    assert row["transfer_fsr"] == pytest.approx(40.0)


def test_an_empty_store_gives_empty_tables(tmp_path):
    write_leaderboard(Store(tmp_path / "empty"), "tiny", tmp_path / "board")
    assert "No results yet" in (tmp_path / "board" / "fsr.md").read_text()


def test_failed_cells_are_left_out(store):
    failed = [r for r in store.records(status="failed")]
    assert failed and all(CellConfig.from_dict(r["config"]).interpreter == "lrp_t" for r in failed)
    assert set(scores_frame(store, "tiny")["attack"]) == {"location", "topk"}


def test_a_manipulation_that_broke_the_model_is_marked_and_not_counted(store, tmp_path):
    from robustbench_interp.leaderboard import DAGGER, MAX_TOP1_DROP

    (cfg,) = build_grid("tiny", ["resnet"], ["location"], ["lrp_t"], overrides={"steps": 1})
    drop = MAX_TOP1_DROP + 10
    store.put(cfg, {"accuracy_before": {"top1": 95.0}, "accuracy_after": {"top1": 95.0 - drop}, "top1_drop": drop})
    store.put_score(cfg.cell_id, "lrp_t", {"fsr": 0.0, "baseline_fsr": 0.0, "n": 10})
    store.put_score(cfg.cell_id, "gradcam", {"fsr": 99.0, "baseline_fsr": 0.0, "n": 10})
    write_leaderboard(store, "tiny", tmp_path / "board")
    assert f"0.0 (0.0){DAGGER}" in (tmp_path / "board" / "fsr.md").read_text()
    rank = pd.read_csv(tmp_path / "board" / "ranking.csv").set_index("interpreter")
    assert rank.loc["lrp_t", "adaptive_fsr"] == pytest.approx(60.0)  # the broken 0 % is not averaged in
    assert rank.loc["lrp_t", "adaptive_cells_over_drop"] == 1
    assert rank.loc["gradcam", "transfer_fsr"] == pytest.approx(40.0)  # nor its transfer 99 %
    m = pd.read_csv(tmp_path / "board" / "transfer.csv", index_col=0)
    assert m.loc["lrp_t", "lrp_t"] == pytest.approx(60.0)
    df = pd.read_csv(tmp_path / "board" / "scores.csv")
    assert list(df[df.model == "resnet"]["kept"]) == [False, False]


def preset_store(root, fsr: float) -> Store:
    """A store with one preset cell (no overrides): tiny resnet, Location through Grad-CAM."""
    store = Store(root)
    (cfg,) = build_grid("tiny", ["resnet"], ["location"], ["gradcam"])
    store.put(cfg, {"accuracy_before": {"top1": 96.0, "top5": 99.5},
                    "accuracy_after": {"top1": 95.0, "top5": 99.0}, "top1_drop": 1.0, "top5_drop": 0.5})
    store.put_score(cfg.cell_id, "gradcam", {"fsr": fsr, "baseline_fsr": 1.0, "n": 10, "fsr_ci": [fsr - 5, fsr + 5]})
    store.put_score(cfg.cell_id, "lrp_t", {"fsr": 30.0, "baseline_fsr": 2.0, "n": 10, "fsr_ci": [25.0, 35.0]})
    return store


def publish_and_write(source: Store, board_dir) -> Store:
    board = records_store(board_dir)
    publish(source, board, "tiny")
    write_leaderboard(board, "tiny", board_dir)
    return board


def test_a_store_publishes_into_the_records_and_a_fresh_store_loses_nothing(store, tmp_path):
    board_dir = tmp_path / "board"
    publish_and_write(preset_store(tmp_path / "full", 80.0), board_dir)
    before = {p.name: p.read_text() for p in board_dir.iterdir() if p.is_file()}
    publish_and_write(Store(tmp_path / "empty"), board_dir)
    assert {p.name: p.read_text() for p in board_dir.iterdir() if p.is_file()} == before
    # another store's cells join the board's
    publish_and_write(store, board_dir)
    df = pd.read_csv(board_dir / "scores.csv")
    assert set(df["model"]) == {"vgg", "resnet"}
    row = df[(df.model == "resnet") & (df.scored_interpreter == "gradcam")].iloc[0]
    assert (row.fsr, row.fsr_ci_low, row["accuracy_after.top5"], row.top1_drop) == (80.0, 75.0, 99.0, 1.0)
    assert "95.0" in (board_dir / "accuracy.md").read_text()


def test_the_published_record_wins_over_the_boards_record_of_the_same_cell(tmp_path):
    board_dir = tmp_path / "board"
    publish_and_write(preset_store(tmp_path / "old", 80.0), board_dir)
    publish_and_write(preset_store(tmp_path / "new", 55.0), board_dir)
    df = pd.read_csv(board_dir / "scores.csv")
    assert list(df[df.scored_interpreter == "gradcam"]["fsr"]) == [55.0]


def test_a_cell_of_other_hyper_parameters_replaces_the_one_in_its_place(tmp_path):
    board_dir = tmp_path / "board"
    board = publish_and_write(preset_store(tmp_path / "preset", 80.0), board_dir)
    other = Store(tmp_path / "other")
    (cfg,) = build_grid("tiny", ["resnet"], ["location"], ["gradcam"], overrides={"steps": 7})
    other.put(cfg, {"accuracy_before": {"top1": 96.0, "top5": 99.5},
                    "accuracy_after": {"top1": 95.5, "top5": 99.0}, "top1_drop": 0.5, "top5_drop": 0.5})
    other.put_score(cfg.cell_id, "gradcam", {"fsr": 20.0, "baseline_fsr": 1.0, "n": 10, "fsr_ci": [15.0, 25.0]})
    publish_and_write(other, board_dir)
    assert [r.cell_id for r in board.records()] == [cfg.cell_id]  # nothing stale stays
    assert [s.interpreter for s in board.scores()] == ["gradcam"]
    assert list(pd.read_csv(board_dir / "scores.csv")["steps"]) == [7]


def test_the_tables_are_a_function_of_the_store_alone(store, tmp_path):
    board = tmp_path / "board"
    write_leaderboard(preset_store(tmp_path / "full", 80.0), "tiny", board)
    write_leaderboard(store, "tiny", board)
    assert set(pd.read_csv(board / "scores.csv")["model"]) == {"vgg"}


def test_a_published_cell_scored_by_fewer_interpreters_keeps_the_boards_other_scores(tmp_path):
    board_dir = tmp_path / "board"
    publish_and_write(preset_store(tmp_path / "old", 80.0), board_dir)  # scored by gradcam and lrp_t
    fewer = Store(tmp_path / "fewer")
    (cfg,) = build_grid("tiny", ["resnet"], ["location"], ["gradcam"])
    fewer.put(cfg, {"accuracy_before": {"top1": 96.0, "top5": 99.5},
                    "accuracy_after": {"top1": 94.0, "top5": 99.0}, "top1_drop": 2.0, "top5_drop": 0.5})
    fewer.put_score(cfg.cell_id, "gradcam", {"fsr": 70.0, "baseline_fsr": 1.0, "n": 10, "fsr_ci": [65.0, 75.0],
                                             "test_losses": [0.1] * 10})
    board = publish_and_write(fewer, board_dir)
    df = pd.read_csv(board_dir / "scores.csv").set_index("scored_interpreter")
    assert (df.loc["gradcam", "fsr"], df.loc["lrp_t", "fsr"]) == (70.0, 30.0)
    assert set(df["top1_drop"]) == {2.0}  # the cell's accuracy is the published record's
    assert "test_losses" not in board.get_score(cfg.cell_id, "gradcam").metrics  # per-image lists stay behind


def test_several_records_of_one_grid_place_publish_as_one_and_other_versions_not_at_all(tmp_path):
    import json

    source = preset_store(tmp_path / "src", 80.0)  # the preset cell of resnet/location/gradcam, made long ago
    (preset_cell,) = source.records()
    path = source.cell_path(preset_cell.cell_id)
    path.write_text(json.dumps({**json.loads(path.read_text()), "created": "2000-01-01T00:00:00+00:00"}))
    (other,) = build_grid("tiny", ["resnet"], ["location"], ["gradcam"], overrides={"lr": 5e-4})
    source.put(other, {"accuracy_before": {"top1": 96.0, "top5": 99.5},
                       "accuracy_after": {"top1": 95.0, "top5": 99.0}, "top1_drop": 1.0, "top5_drop": 0.5})
    old = source.cell_path(other.cell_id).with_name("0123456789abcdef.json")  # a record of another version
    old.write_text(json.dumps({**json.loads(source.cell_path(other.cell_id).read_text()),
                               "cell_id": "0123456789abcdef", "version": "1"}))
    board = records_store(tmp_path / "board")
    for _ in range(2):
        assert publish(source, board, "tiny") == 1
        assert len(list(board.records())) == 1  # one per place, whatever was published before
    assert [r.cell_id for r in board.records()] == [other.cell_id]  # the newest of the place
