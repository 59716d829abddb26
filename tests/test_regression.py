"""The regression check compares recomputed cells with the committed records, number by number."""

from __future__ import annotations

import pytest

from robustbench_interp.cli import main
from robustbench_interp.errors import ConfigError
from robustbench_interp.grid import build_grid
from robustbench_interp.leaderboard import publish, records_store
from robustbench_interp.records import CellRecord, ScoreRecord
from robustbench_interp.regression import CellSpec, check_cells, committed_records, passed
from robustbench_interp.store import Store

(CELL,) = build_grid("tiny", ["resnet"], ["location"], ["gradcam"])


def record(top1_after: float = 93.0) -> CellRecord:
    return CellRecord(cell_id=CELL.cell_id, status="ok", config=CELL.to_dict(),
                      metrics={"accuracy_before": {"top1": 96.0, "top5": 100.0},
                               "accuracy_after": {"top1": top1_after, "top5": 99.0},
                               "top1_drop": 96.0 - top1_after, "top5_drop": 1.0})


@pytest.fixture
def committed(tmp_path) -> Store:
    """A leaderboard published from a store holding CELL with FSR 80 (adaptive) and 30 (lrp_t)."""
    store = Store(tmp_path / "store")
    store.put(CELL, record().metrics)
    store.put_score(CELL.cell_id, "gradcam", {"fsr": 80.0, "baseline_fsr": 0.0, "n": 256})
    store.put_score(CELL.cell_id, "lrp_t", {"fsr": 30.0, "baseline_fsr": 0.0, "n": 256})
    publish(store, records_store(tmp_path / "leaderboard" / "tiny"), "tiny")
    return committed_records(tmp_path / "leaderboard", "tiny")


class FakeBench:
    """Stands in for the Runner: returns the given record and FSRs instead of computing them."""

    def __init__(self, top1_after: float, fsr: dict[str, float | None]) -> None:
        self.top1_after, self.fsr = top1_after, fsr

    def run_cell(self, cfg):
        return record(self.top1_after)

    def score_cell(self, cfg, name):
        value = self.fsr.get(name)
        return None if value is None else ScoreRecord(cell_id=cfg.cell_id, interpreter=name, status="ok",
                                                      metrics={"fsr": value})


def test_numbers_within_tolerance_pass(committed):
    report = check_cells(FakeBench(92.0, {"gradcam": 85.0, "lrp_t": 25.0}), [CELL], committed)
    assert passed(report)
    assert list(report["quantity"]) == ["top1 before", "top1 after", "FSR gradcam (adaptive)",
                                        "FSR lrp_t (transfer)"]
    assert report["delta"].tolist() == pytest.approx([0.0, -1.0, 5.0, -5.0])


def test_a_number_beyond_its_tolerance_is_reported_as_moved(committed):
    report = check_cells(FakeBench(90.5, {"gradcam": 55.0, "lrp_t": 30.0}), [CELL], committed)
    assert not passed(report)
    moved = report[report["status"] == "MOVED"]["quantity"].tolist()
    assert moved == ["top1 after", "FSR gradcam (adaptive)"]


def test_a_cell_or_scorer_the_leaderboard_lacks_is_missing_not_ok(committed):
    report = check_cells(FakeBench(93.0, {"gradcam": 80.0, "lrp": 10.0}), [CELL], committed, scorers=["lrp"])
    assert not passed(report)
    assert report.set_index("quantity").loc["FSR lrp (transfer)", "status"] == "missing"


def test_cell_specs_are_model_attack_interpreter():
    assert CellSpec.parse("vgg:topk:lrp_t") == CellSpec("vgg", "topk", "lrp_t")
    with pytest.raises(ConfigError, match="model:attack:interpreter"):
        CellSpec.parse("vgg:topk")


def test_rbi_check_without_a_committed_leaderboard_says_how_to_make_one(tmp_path, capsys):
    assert main(["check", "--leaderboard-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "records" in err and "rbi run" in err


def test_a_check_cell_may_name_a_plugin_attack_by_its_path():
    from robustbench_interp.grid import parse_cell

    assert parse_cell("resnet/rbi_corner:Corner/gradcam") == ("resnet", "rbi_corner:Corner", "gradcam")
    assert parse_cell("resnet:topk:gradcam") == ("resnet", "topk", "gradcam")
