"""The regression check compares recomputed cells with the committed records, number by number."""

from __future__ import annotations

import pytest

from robustbench_interp.cli import main
from robustbench_interp.errors import ConfigError
from robustbench_interp.grid import build_grid
from robustbench_interp.leaderboard import publish, records_store
from robustbench_interp.records import CellRecord, ScoreRecord
from robustbench_interp.regression import (
    DEFAULT_TOLERANCES,
    EXACT,
    FLOORS,
    SPREAD_FACTOR,
    CellSpec,
    check_cells,
    committed_records,
    passed,
    tolerance,
)
from robustbench_interp.store import Store

CELLS = build_grid("tiny", ["resnet"], ["location"], ["gradcam"], seeds=[0, 1, 2])
CELL = CELLS[0]  # seed 0, the one the check recomputes
#: The committed numbers of seeds 0, 1, 2: top-1 after (std 1.5), Grad-CAM's FSR (std 8), LRP_T's (std 0.5).
TOP1_AFTER, GRADCAM, LRP_T = (93.0, 91.5, 94.5), (80.0, 72.0, 88.0), (30.0, 30.5, 29.5)
#: Their controls' (lambda = 0): top-1 after (std 0.1), Grad-CAM's FSR (std 0.4: the floor applies).
CONTROL_TOP1, CONTROL_GRADCAM = (95.8, 95.9, 96.0), (0.4, 0.0, 0.8)


def record(top1_after: float = 93.0, top1_before: float = 96.0, cfg=CELL) -> CellRecord:
    return CellRecord(cell_id=cfg.cell_id, status="ok", config=cfg.to_dict(),
                      metrics={"accuracy_before": {"top1": top1_before, "top5": 100.0},
                               "accuracy_after": {"top1": top1_after, "top5": 99.0},
                               "top1_drop": top1_before - top1_after, "top5_drop": 1.0})


def committed_store(root, seeds=(0, 1, 2)) -> Store:
    """A leaderboard published from a store holding CELL's ``seeds`` with the numbers above."""
    store = Store(root / "store")
    for cfg in CELLS:
        if cfg.seed not in seeds:
            continue
        top1, control = TOP1_AFTER[cfg.seed], cfg.control
        store.put(control, {**record(CONTROL_TOP1[cfg.seed]).metrics, "top1_drop": 96.0 - CONTROL_TOP1[cfg.seed]})
        store.put_score(control.cell_id, "gradcam", {"fsr": CONTROL_GRADCAM[cfg.seed], "baseline_fsr": 1.2, "n": 256})
        store.put_score(control.cell_id, "lrp_t", {"fsr": 0.0, "baseline_fsr": 0.4, "n": 256})
        store.put(cfg, {**record(top1).metrics, "top1_drop": 96.0 - top1})
        store.put_score(cfg.cell_id, "gradcam", {"fsr": GRADCAM[cfg.seed], "baseline_fsr": 1.2, "n": 256})
        store.put_score(cfg.cell_id, "lrp_t", {"fsr": LRP_T[cfg.seed], "baseline_fsr": 0.4, "n": 256})
    publish(store, records_store(root / "leaderboard" / "tiny"), "tiny")
    return committed_records(root / "leaderboard", "tiny")


@pytest.fixture
def committed(tmp_path) -> Store:
    return committed_store(tmp_path)


class FakeBench:
    """Stands in for the Runner: returns the given record and FSRs instead of computing them."""

    def __init__(self, top1_after: float, fsr: dict[str, float | None], *, top1_before: float = 96.0,
                 baseline: dict[str, float] | None = None, control_top1: float = 95.8,
                 control_fsr: dict[str, float] | None = None) -> None:
        self.top1_after, self.top1_before, self.fsr = top1_after, top1_before, fsr
        self.baseline = {"gradcam": 1.2, "lrp_t": 0.4, **(baseline or {})}
        self.control_top1 = control_top1
        self.control_fsr = {name: 0.0 for name in fsr} | {"gradcam": 0.4} | (control_fsr or {})

    def control_of(self, cfg):
        return cfg.control

    def run_cell(self, cfg):
        if cfg.is_control:
            return record(self.control_top1, self.top1_before, cfg)
        return record(self.top1_after, self.top1_before)

    def score_cell(self, cfg, name):
        value = (self.control_fsr if cfg.is_control else self.fsr).get(name)
        return None if value is None else ScoreRecord(
            cell_id=cfg.cell_id, interpreter=name, status="ok",
            metrics={"fsr": value, "baseline_fsr": self.baseline.get(name, 0.0)})


def test_tolerances_come_from_the_committed_seeds_spread():
    assert tolerance("fsr", GRADCAM) == (pytest.approx(SPREAD_FACTOR * 8.0), "1 x std 8.00 over 3 seeds")
    tol, where = tolerance("fsr", LRP_T)  # 1 x 0.5 points: the floor applies
    assert tol == FLOORS["fsr"] and where.startswith("floor")
    assert tolerance("top1", TOP1_AFTER)[0] == pytest.approx(1.5)
    assert tolerance("fsr", [80.0]) == (DEFAULT_TOLERANCES["fsr"], "default: 1 committed seed, no spread")
    assert tolerance("fsr", GRADCAM, given=1.0) == (1.0, "given (--fsr-tolerance)")


def test_a_recomputation_within_the_seed_spread_passes(committed):
    # Grad-CAM moves by 7 points: within its std of 8; LRP_T by 4, within its floor of 5
    report = check_cells(FakeBench(92.0, {"gradcam": 87.0, "lrp_t": 26.0}), [CELL], committed)
    assert passed(report), report
    assert list(report["quantity"]) == ["top1 before", "top1 after", "FSR gradcam (adaptive)",
                                        "baseline FSR gradcam", "FSR lrp_t (transfer)", "baseline FSR lrp_t",
                                        "control top1 after", "control FSR gradcam", "control FSR lrp_t"]
    assert report["delta"].tolist() == pytest.approx([0.0, -1.0, 7.0, 0.0, -4.0, 0.0, 0.0, 0.0, 0.0])
    assert report["tolerance"].tolist() == pytest.approx([EXACT, 1.5, 8.0, EXACT, 5.0, EXACT, 1.0, 5.0, 5.0])
    assert report.set_index("quantity").loc["top1 before", "tolerance_from"] == "exact (published base weights)"
    assert set(report["seed"]) == {0}


def test_a_recomputation_far_outside_the_seed_spread_fails(committed):
    report = check_cells(FakeBench(90.5, {"gradcam": 50.0, "lrp_t": 36.0}), [CELL], committed)
    assert not passed(report)
    moved = report[report["status"] == "MOVED"]["quantity"].tolist()
    assert moved == ["top1 after", "FSR gradcam (adaptive)", "FSR lrp_t (transfer)"]


def test_a_control_that_moved_fails_the_check(committed):
    """The fooling subtracts the control's FSR: a recomputed control outside its seeds' spread (or
    its floor) fails, even when the attacked cell itself is within tolerance."""
    report = check_cells(FakeBench(93.0, {"gradcam": 80.0, "lrp_t": 30.0}, control_top1=93.5,
                                   control_fsr={"gradcam": 12.0}), [CELL], committed)
    moved = report[report["status"] == "MOVED"]["quantity"].tolist()
    assert moved == ["control top1 after", "control FSR gradcam"]
    lines = report.set_index("quantity")
    assert lines.loc["control FSR gradcam", "committed"] == CONTROL_GRADCAM[0]
    assert lines.loc["control top1 after", "tolerance_from"].startswith("floor")


def test_the_base_models_numbers_must_match_exactly(committed):
    report = check_cells(FakeBench(93.0, {"gradcam": 80.0, "lrp_t": 30.0}, top1_before=95.9,
                                   baseline={"lrp_t": 0.8}), [CELL], committed)
    moved = report[report["status"] == "MOVED"]["quantity"].tolist()
    assert moved == ["top1 before", "baseline FSR lrp_t"]


def test_given_tolerances_override_the_derived_ones(committed):
    report = check_cells(FakeBench(93.0, {"gradcam": 85.0, "lrp_t": 30.0}), [CELL], committed,
                         tolerances={"fsr": 1.0, "top1": None})
    lines = report.set_index("quantity")
    assert lines.loc["FSR gradcam (adaptive)", "status"] == "MOVED"
    assert lines.loc["FSR gradcam (adaptive)", "tolerance_from"] == "given (--fsr-tolerance)"
    assert lines.loc["top1 after", "tolerance"] == pytest.approx(1.5)  # still derived


def test_a_committed_cell_of_one_seed_falls_back_to_the_default_tolerances(tmp_path):
    report = check_cells(FakeBench(93.0, {"gradcam": 88.0, "lrp_t": 30.0}), [CELL], committed_store(tmp_path, (0,)))
    assert passed(report)
    lines = report.set_index("quantity")
    assert lines.loc["FSR gradcam (adaptive)", "tolerance"] == DEFAULT_TOLERANCES["fsr"]
    assert lines.loc["top1 after", "tolerance_from"].startswith("default")


def test_a_cell_or_scorer_the_leaderboard_lacks_is_missing_not_ok(committed):
    report = check_cells(FakeBench(93.0, {"gradcam": 80.0, "lrp": 10.0}), [CELL], committed, scorers=["lrp"])
    assert not passed(report)
    assert report.set_index("quantity").loc["FSR lrp (transfer)", "status"] == "missing"


def test_rbi_check_tolerances_default_to_the_derived_ones():
    from robustbench_interp.cli import build_parser

    args = build_parser().parse_args(["check"])
    assert (args.fsr_tolerance, args.top1_tolerance) == (None, None)
    args = build_parser().parse_args(["check", "--fsr-tolerance", "3"])
    assert args.fsr_tolerance == 3.0


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
