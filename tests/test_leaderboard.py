"""The leaderboard renders the store: every number in a table is one stored in a record, aggregated
over seeds by the rules of SPEC section 8 (control, informative, kept, degenerate, coverage)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from robustbench_interp.config import CellConfig
from robustbench_interp.grid import build_grid
from robustbench_interp.leaderboard import (
    DAGGER,
    DEGENERATE,
    LEFT_OUT,
    MAX_TOP1_DROP,
    NOT_ATTACKABLE,
    OTHER_BUDGET,
    PARTIAL,
    RANKED,
    UNINFORMATIVE,
    publish,
    ranking,
    records_store,
    scores_frame,
    write_leaderboard,
)
from robustbench_interp.store import Store

SEEDS = (0, 1, 2)
#: (attack, attacker, scored) -> (mean FSR, baseline); seed s gets FSR + 2 * (s - 1), so std 2 over 3 seeds.
FSR = {
    ("location", "gradcam", "gradcam"): (90.0, 1.0),
    ("location", "gradcam", "lrp_t"): (10.0, 2.0),
    ("location", "lrp_t", "lrp_t"): (60.0, 3.0),
    ("location", "lrp_t", "gradcam"): (40.0, 4.0),
    ("topk", "gradcam", "gradcam"): (70.0, 5.0),
    ("topk", "gradcam", "lrp_t"): (20.0, 6.0),
}
#: (attack, scored) -> control FSR of seed 0 (seed s: + s); the same for every attacker (one schedule).
CONTROL = {("location", "gradcam"): 8.0, ("location", "lrp_t"): 1.0, ("topk", "gradcam"): 0.0,
           ("topk", "lrp_t"): 2.0}


def score(fsr: float, base: float, **extra) -> dict:
    return {"fsr": fsr, "baseline_fsr": base, "n": 10, "fsr_ci": [fsr - 5, fsr + 5],
            "empty_rate": 0.0, "constant_rate": 0.0, "baseline_empty_rate": 0.0, "baseline_constant_rate": 0.0,
            **extra}


def accuracy(drop: float) -> dict:
    return {"accuracy_before": {"top1": 95.0, "top5": 99.0}, "accuracy_after": {"top1": 95.0 - drop, "top5": 98.0},
            "top1_drop": drop, "top5_drop": 1.0}


def add_cell(store: Store, model: str, attack: str, attacker: str, seed: int, scores: dict[str, dict], *,
             drop: float = 0.5, control: dict[str, dict] | None = None, control_drop: float = 0.1,
             **overrides) -> CellConfig:
    """One attacked cell of ``seed`` with its ``scores`` (scored -> metrics) and, when ``control`` is
    given, its control cell with those scores."""
    (cfg,) = build_grid("tiny", [model], [attack], [attacker], seeds=[seed], overrides={"steps": 1, **overrides})
    store.put(cfg, accuracy(drop))  # the store names its control (record.control_cell)
    for scored, metrics in scores.items():
        store.put_score(cfg.cell_id, scored, metrics)
    if control is not None:
        store.put(cfg.control, accuracy(control_drop))
        for scored, metrics in control.items():
            store.put_score(cfg.control.cell_id, scored, metrics)
    return cfg


@pytest.fixture
def store(tmp_path) -> Store:
    """tiny vgg, Location and Top-k through Grad-CAM and LRP_T (not Top-k), three seeds, with controls."""
    store = Store(tmp_path / "store")
    for seed in SEEDS:
        for attack, attacker in {k[:2] for k in FSR}:
            scores = {scored: score(fsr + 2 * (seed - 1), base) for (a, i, scored), (fsr, base) in FSR.items()
                      if (a, i) == (attack, attacker)}
            control = {scored: score(c + seed, base) for (a, scored), c in CONTROL.items() if a == attack
                       for base in [FSR[(attack, "gradcam", scored)][1] if (attack, "gradcam", scored) in FSR else 0.0]}
            add_cell(store, "vgg", attack, attacker, seed, scores, drop=1.5 if attacker == "gradcam" else 0.5,
                     control=control)
    (failed,) = build_grid("tiny", ["vgg"], ["topk"], ["lrp_t"], overrides={"steps": 1})
    store.put_failed(failed, "RuntimeError: skipped in this test")
    return store


def board(store: Store, tmp_path) -> dict[str, pd.DataFrame]:
    out = tmp_path / "board"
    write_leaderboard(store, "tiny", out)
    return {"scores": pd.read_csv(out / "scores.csv"), "detail": pd.read_csv(out / "detail.csv"),
            "ranking": pd.read_csv(out / "ranking.csv").set_index("interpreter"),
            "transfer": pd.read_csv(out / "transfer.csv", header=[0, 1], index_col=0)
            if (out / "transfer.csv").read_text().strip() else pd.DataFrame(),
            **{f"{n}.md": (out / f"{n}.md").read_text() for n in ("fsr", "detail", "accuracy", "ranking", "transfer",
                                                                   "degenerate")}}


def row(detail: pd.DataFrame, attack: str, attacker: str, scored: str, model: str = "vgg") -> pd.Series:
    (found,) = [r for _, r in detail.iterrows() if (r.model, r.attack, r.attacking_interpreter,
                                                   r.scored_interpreter) == (model, attack, attacker, scored)]
    return found


def test_tables_hold_the_stored_numbers_as_means_over_seeds(store, tmp_path):
    written = write_leaderboard(store, "tiny", tmp_path / "board")
    tables = ("fsr", "detail", "accuracy", "transfer", "degenerate", "ranking")
    assert {p.name for p in written.values()} == {f"{n}.{e}" for n in tables for e in ("md", "csv")} | {
        "scores.csv", "index.html"}
    fsr = pd.read_csv(tmp_path / "board" / "fsr.csv", header=[0, 1, 2], index_col=[0, 1])
    assert fsr.loc[("location", "gradcam"), ("fsr", "vgg", "gradcam")] == pytest.approx(90.0)
    assert fsr.loc[("location", "gradcam"), ("fsr_std", "vgg", "gradcam")] == pytest.approx(2.0)
    assert fsr.loc[("location", "lrp_t"), ("baseline_fsr", "vgg", "gradcam")] == 4.0
    assert fsr.loc[("location", "lrp_t"), ("control_fsr", "vgg", "gradcam")] == pytest.approx(9.0)  # 8, 9, 10
    assert fsr.loc[("location", "lrp_t"), ("seeds", "vgg", "gradcam")] == 3
    md = (tmp_path / "board" / "fsr.md").read_text()
    assert "## vgg" in md and "90.0\u00b12.0 (1.0, 9.0)" in md and "40.0\u00b12.0 (4.0, 9.0)" in md
    assert "lowest per-seed Wilson 95 % lower bound" in md


def test_scores_csv_has_one_row_per_score_and_seed_with_its_control(store, tmp_path):
    df = board(store, tmp_path)["scores"]
    attacked = df[~df.control]
    assert len(attacked) == len(FSR) * len(SEEDS)
    assert len(df[df.control]) == len(CONTROL) * len(SEEDS)  # the controls' own scores, one row per seed
    for (attack, attacker, scored), (fsr, base) in FSR.items():
        rows = attacked[(attacked.attack == attack) & (attacked.attacking_interpreter == attacker)
                        & (attacked.scored_interpreter == scored)].set_index("seed")
        assert sorted(rows.index) == list(SEEDS)
        for seed in SEEDS:
            r = rows.loc[seed]
            value, control = fsr + 2 * (seed - 1), CONTROL[(attack, scored)] + seed
            assert (r.fsr, r.baseline_fsr, r.control_fsr, r.adaptive) == (value, base, control, attacker == scored)
            assert r.fooling == pytest.approx(value - max(base, control))
            assert (r.fsr_ci_low, r.fsr_ci_high) == (value - 5, value + 5)
            assert r.top1_drop == (1.5 if attacker == "gradcam" else 0.5) and r.steps == 1
            assert r.empty_rate == 0.0 and r.baseline_empty_rate == 0.0


def test_the_interval_runs_from_the_lowest_seed_bound_to_the_highest(store, tmp_path):
    detail = board(store, tmp_path)["detail"]
    r = row(detail, "location", "gradcam", "gradcam")
    assert (r.fsr_ci_low, r.fsr_ci_high) == (88.0 - 5, 92.0 + 5)  # seed 0's low, seed 2's high
    assert (r.fsr_min, r.fsr_max, r["fsr.seed0"], r["fsr.seed2"]) == (88.0, 92.0, 88.0, 92.0)
    assert r.fsr_std == pytest.approx(2.0) and r.seeds == 3


def test_fooling_uses_each_seeds_own_control(tmp_path):
    """FSR 30 / 30 / 30 against controls 40 / 0 / 0 (baseline 10): fooling is the mean of -10, 20, 20,
    not 30 - max(10, mean control 13.3)."""
    store = Store(tmp_path / "s")
    for seed, control in zip(SEEDS, (40.0, 0.0, 0.0)):
        add_cell(store, "vgg", "location", "gradcam", seed, {"gradcam": score(30.0, 10.0)},
                 control={"gradcam": score(control, 10.0)})
    r = row(board(store, tmp_path)["detail"], "location", "gradcam", "gradcam")
    assert r.fooling == pytest.approx((-10 + 20 + 20) / 3)
    assert r.control_fsr == pytest.approx(40 / 3) and r.counted


def test_a_row_without_its_control_is_marked_and_not_counted(tmp_path):
    store = Store(tmp_path / "s")
    for seed in SEEDS:
        add_cell(store, "vgg", "location", "gradcam", seed, {"gradcam": score(30.0, 10.0)},
                 control={"gradcam": score(0.0, 10.0)} if seed else None)
    tables = board(store, tmp_path)
    r = row(tables["detail"], "location", "gradcam", "gradcam")
    assert not r.has_control and not r.counted
    assert "30.0±0.0 (10.0, 0.0)*" in tables["fsr.md"]
    assert tables["ranking"].loc["gradcam", "left_out_no_control"] == 1


def test_an_uninformative_row_is_shown_marked_and_left_out_of_every_aggregate(store, tmp_path):
    for seed in SEEDS:  # baseline 55 %: Location cannot show fooling here
        add_cell(store, "resnet", "location", "gradcam", seed,
                 {"gradcam": score(99.0, 55.0), "lrp_t": score(0.0, 0.0)},
                 control={"gradcam": score(20.0, 55.0), "lrp_t": score(60.0, 0.0)})  # lrp_t: control 60 %
    tables = board(store, tmp_path)
    for scored in ("gradcam", "lrp_t"):
        r = row(tables["detail"], "location", "gradcam", scored, model="resnet")
        assert not r.informative and not r.counted
    assert f"99.0\u00b10.0 (55.0, 20.0){UNINFORMATIVE}" in tables["fsr.md"]
    rank = tables["ranking"]
    assert rank.loc["gradcam", "left_out_uninformative"] == 1
    assert rank.loc["gradcam", "own_slots"] == 2  # vgg's location and topk: not resnet's 99 %
    assert tables["transfer"].loc["gradcam", ("rows", "lrp_t")] == 2  # vgg only


def test_the_kept_rule_needs_every_seed_within_two_points(tmp_path):
    assert MAX_TOP1_DROP == 2.0
    store = Store(tmp_path / "s")
    for seed, drop in zip(SEEDS, (0.5, 2.0, 2.5)):  # one seed over the limit: the row is not kept
        add_cell(store, "vgg", "location", "gradcam", seed, {"gradcam": score(0.0, 0.0)}, drop=drop,
                 control={"gradcam": score(0.0, 0.0)})
    for seed in SEEDS:  # exactly 2 points on every seed: kept
        add_cell(store, "vgg", "topk", "gradcam", seed, {"gradcam": score(50.0, 0.0)}, drop=2.0,
                 control={"gradcam": score(0.0, 0.0)})
    tables = board(store, tmp_path)
    broken = row(tables["detail"], "location", "gradcam", "gradcam")
    assert (broken.kept, broken.kept_seeds, broken.top1_drop_max, broken.counted) == (False, 2, 2.5, False)
    assert f"0.0\u00b10.0 (0.0, 0.0){DAGGER}" in tables["fsr.md"]
    assert row(tables["detail"], "topk", "gradcam", "gradcam").counted
    rank = tables["ranking"].loc["gradcam"]
    assert (rank.fsr, rank.slots, rank.left_out_not_kept) == (50.0, 1, 1)  # the broken 0 % is not averaged in


def add_searched(store: Store, model: str, attack: str, attacker: str, seed: int, fsr: float,
                 budget: int = 2000) -> None:
    """A cell the attacker searched with ``budget``, scored by ``attacker``, with its control (the
    chosen configuration with lambda = 0)."""
    (cfg,) = build_grid("tiny", [model], [attack], [attacker], seeds=[seed], budget=budget)
    assert cfg.search is not None and cfg.search.budget == budget
    control = cfg.control_for(cfg.params)
    store.put(cfg, accuracy(0.5), control=control)
    store.put_score(cfg.cell_id, attacker, score(fsr, 0.0))
    store.put(control, accuracy(0.1))
    store.put_score(control.cell_id, attacker, score(0.0, 0.0))


def test_a_row_attacked_with_another_budget_than_the_boards_is_marked_and_left_out(tmp_path):
    """Budget parity: Grad-CAM's cells are searched with budget 2000 (six of them), LRP_T's ran the
    presets alone (three): LRP_T's 10 % comes from a weaker attacker and must not rank it as robust."""
    store = Store(tmp_path / "s")
    for seed in SEEDS:
        for model in ("vgg", "resnet"):
            add_searched(store, model, "location", "gradcam", seed, 80.0)
        add_cell(store, "vgg", "location", "lrp_t", seed, {"lrp_t": score(10.0, 0.0)},
                 control={"lrp_t": score(0.0, 0.0)})
    tables = board(store, tmp_path)
    weak = row(tables["detail"], "location", "lrp_t", "lrp_t")
    assert (weak.at_budget, weak.counted, str(weak.budgets)) == (False, False, "0")
    searched = row(tables["detail"], "location", "gradcam", "gradcam")
    assert (searched.at_budget, searched.counted, str(searched.budgets)) == (True, True, "2000")
    assert f"10.0\u00b10.0 (0.0, 0.0){OTHER_BUDGET}" in tables["fsr.md"]
    assert f"80.0\u00b10.0 (0.0, 0.0){OTHER_BUDGET}" not in tables["fsr.md"]
    rank = tables["ranking"]
    assert (rank.loc["lrp_t", "section"], rank.loc["lrp_t", "left_out_other_budget"]) == (LEFT_OUT, 1)
    assert rank.loc["gradcam", "section"] == RANKED and rank.loc["gradcam", "slots"] == 2
    assert "1 other budget" in tables["ranking.md"]
    # the same preset cells alone are a board of their own budget (0): nothing is marked
    alone = Store(tmp_path / "alone")
    for seed in SEEDS:
        add_cell(alone, "vgg", "location", "lrp_t", seed, {"lrp_t": score(10.0, 0.0)},
                 control={"lrp_t": score(0.0, 0.0)})
    assert row(board(alone, tmp_path)["detail"], "location", "lrp_t", "lrp_t").counted


def test_the_accuracy_table_shows_each_attacks_control_first(store, tmp_path):
    add_cell(store, "resnet", "location", "gradcam", 0, {"gradcam": score(50.0, 0.0)},
             control={"gradcam": score(0.0, 0.0)}, control_drop=0.8)  # the base was not converged
    md = board(store, tmp_path)["accuracy.md"]
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    labels = [tuple(cell.strip() for cell in line.split("|")[1:3]) for line in lines[1:]]
    assert labels[:4] == [("baseline", "-"), ("location", "control"), ("location", "gradcam"),
                          ("location", "lrp_t")]
    assert ("topk", "control") in labels
    assert "0.8\u00b0" in md and "93.5" in md  # 95 - 1.5 after the Grad-CAM manipulations
    acc = pd.read_csv(tmp_path / "board" / "accuracy.csv", header=[0, 1], index_col=[0, 1])
    assert acc.loc[("location", "control"), ("vgg", "top1_drop_max")] == pytest.approx(0.1)
    assert acc.loc[("location", "gradcam"), ("vgg", "seeds")] == 3


def test_a_degenerate_interpreter_is_reported_per_model_and_not_ranked_there(tmp_path):
    store = Store(tmp_path / "s")
    flat = {"baseline_constant_rate": 100.0, "baseline_empty_rate": 100.0, "constant_rate": 100.0}
    for seed in SEEDS:
        for model in ("vgg", "resnet"):
            maps = flat if model == "vgg" else {}
            add_cell(store, model, "location", "lrp_t", seed, {"lrp_t": score(0.0, 0.0, **maps)},
                     control={"lrp_t": score(0.0, 0.0, **maps)})
            add_cell(store, model, "location", "gradcam", seed, {"gradcam": score(50.0, 0.0)},
                     control={"gradcam": score(0.0, 0.0)})
    tables = board(store, tmp_path)
    assert row(tables["detail"], "location", "lrp_t", "lrp_t").degenerate
    assert not row(tables["detail"], "location", "lrp_t", "lrp_t", model="resnet").degenerate
    deg = pd.read_csv(tmp_path / "board" / "degenerate.csv").set_index(["model", "scored_interpreter"])
    assert deg.loc[("vgg", "lrp_t"), "degenerate"] and not deg.loc[("resnet", "lrp_t"), "degenerate"]
    assert "degenerate" in tables["degenerate.md"] and f"0.0\u00b10.0 (0.0, 0.0){DEGENERATE}" in tables["fsr.md"]
    rank = tables["ranking"]
    assert rank.loc["lrp_t", "degenerate_on"] == "vgg" and rank.loc["lrp_t", "left_out_degenerate"] == 1
    # ranked on resnet only, where gradcam is ranked too: the 0 % on vgg is never a robust result
    assert (rank.loc["lrp_t", "slots"], rank.loc["gradcam", "slots"]) == (1, 1)
    assert rank.loc["gradcam", "section"] == RANKED


def test_a_not_attackable_interpreter_is_ranked_by_transfer_after_the_adaptive_ones(tmp_path):
    store = Store(tmp_path / "s")
    for seed in SEEDS:
        add_cell(store, "vgg", "location", "gradcam", seed,
                 {"gradcam": score(80.0, 0.0), "smoothgrad": score(5.0, 0.0)},
                 control={"gradcam": score(0.0, 0.0), "smoothgrad": score(1.0, 0.0)})
        (cfg,) = build_grid("tiny", ["vgg"], ["location"], ["smoothgrad"], seeds=[seed], overrides={"steps": 1})
        store.put_not_attackable(cfg, "NotDifferentiableError: the penalty has no gradient", {})
    # it publishes, though it has no score
    board_store = records_store(tmp_path / "lb")
    assert publish(store, board_store, "tiny") == 3 + 3 + 3  # three cells, their controls, three not attackable
    write_leaderboard(board_store, "tiny", tmp_path / "lb")
    rank = pd.read_csv(tmp_path / "lb" / "ranking.csv")
    assert list(rank["interpreter"]) == ["gradcam", "smoothgrad"]
    smooth = rank.set_index("interpreter").loc["smoothgrad"]
    assert smooth.section == NOT_ATTACKABLE and smooth.not_attackable_cells == 3
    assert smooth.transfer_fooling == pytest.approx(4.0) and pd.isna(smooth.fooling)
    assert "not attackable adaptively (gradient masked / non-differentiable)" in (tmp_path / "lb" / "ranking.md").read_text()


def test_the_ranking_uses_the_slots_every_ranked_interpreter_covers(tmp_path):
    """gradcam covers 4 slots, lrp_t 3 of them (its vgg/topk row is uninformative), smoothgrad 1
    (resnet only): gradcam and lrp_t are ranked over their 3 common slots, smoothgrad apart."""
    store = Store(tmp_path / "s")
    fsr = {"gradcam": 60.0, "lrp_t": 30.0, "smoothgrad": 10.0}
    for seed in SEEDS:
        for model in ("vgg", "resnet"):
            for attack in ("location", "topk"):
                for name, mean in fsr.items():
                    if name == "smoothgrad" and (model, attack) != ("resnet", "location"):
                        continue
                    value = mean + (20.0 if (name, model, attack) == ("gradcam", "vgg", "topk") else 0.0)
                    base = 70.0 if (name, model, attack) == ("lrp_t", "vgg", "topk") else 0.0
                    add_cell(store, model, attack, name, seed, {name: score(value, base)},
                             control={name: score(5.0, base)})
    tables = board(store, tmp_path)
    rank = tables["ranking"]
    assert list(rank.index) == ["lrp_t", "gradcam", "smoothgrad"]
    assert list(rank["section"]) == [RANKED, RANKED, PARTIAL]
    assert (rank.loc["gradcam", "slots"], rank.loc["gradcam", "own_slots"]) == (3, 4)
    assert rank.loc["gradcam", "fsr"] == pytest.approx(60.0)  # vgg/topk's 80 % is not in the common slots
    assert rank.loc["gradcam", "fooling"] == pytest.approx(55.0)  # 60 - max(0, control 5)
    assert (rank.loc["smoothgrad", "slots"], rank.loc["smoothgrad", "rank"]) == (1, 1)
    assert "3 common slots" in tables["ranking.md"] and "## partial coverage" in tables["ranking.md"]


def test_a_single_attacking_interpreter_is_ranked_over_its_own_slots(store, tmp_path):
    store_one = Store(tmp_path / "one")
    for seed in SEEDS:
        add_cell(store_one, "vgg", "location", "gradcam", seed, {"gradcam": score(90.0, 1.0), "lrp_t": score(10.0, 2.0)},
                 control={"gradcam": score(3.0, 1.0), "lrp_t": score(1.0, 2.0)})
    tables = board(store_one, tmp_path)
    rank = tables["ranking"]
    assert rank.loc["gradcam", "section"] == RANKED and rank.loc["gradcam", "slots"] == 1
    assert rank.loc["lrp_t", "section"] == "transfer only"
    assert rank.loc["lrp_t", "transfer_fooling"] == pytest.approx(8.0)
    assert "With one interpreter ranked (gradcam)" in tables["ranking.md"]


def test_active_rows_give_each_class_with_its_interval(tmp_path):
    store = Store(tmp_path / "s")

    def active(c1: float, c2: float, base1: float = 0.0) -> dict:
        groups = {g: score(v, b) for g, v, b in (("c1", c1, base1), ("c2", c2, 0.0))}
        return {"fsr": (c1 + c2) / 2, "baseline_fsr": base1 / 2, "n": 10, **groups}

    for seed in SEEDS:
        add_cell(store, "vgg", "active", "gradcam", seed, {"gradcam": active(40.0 + seed, 80.0)},
                 control={"gradcam": active(2.0, 4.0)})
        add_cell(store, "resnet", "active", "gradcam", seed, {"gradcam": active(90.0, 90.0, base1=60.0)},
                 control={"gradcam": active(0.0, 0.0, base1=60.0)})
    tables = board(store, tmp_path)
    r = row(tables["detail"], "active", "gradcam", "gradcam")
    assert (r["c1.fsr"], r["c1.fsr_ci_low"], r["c1.fsr_ci_high"]) == (41.0, 35.0, 47.0)
    assert (r["c2.fsr"], r["c2.control_fsr"], r["c2.fooling"]) == (80.0, 4.0, 76.0)
    assert r.fooling == pytest.approx((41.0 + 80.0) / 2 - 3.0) and r.counted
    assert "41.0 [35.0, 47.0]" in tables["detail.md"]
    # c1's baseline of 60 % makes the resnet row uninformative although the mean's is 30 %
    assert not row(tables["detail"], "active", "gradcam", "gradcam", model="resnet").informative
    scores = tables["scores"]
    assert {"c1.fsr", "c2.fsr", "c1.control_fsr", "c1.empty_rate"} <= set(scores.columns)


def fooling(attack: str, attacker: str, scored: str) -> float:
    """The fixture's fooling of a row: the mean over seeds of FSR - max(baseline, that seed's control)."""
    fsr, base = FSR[(attack, attacker, scored)]
    return sum(fsr + 2 * (s - 1) - max(base, CONTROL[(attack, scored)] + s) for s in SEEDS) / len(SEEDS)


def test_the_transfer_matrix_averages_fooling_over_counted_rows(store, tmp_path):
    m = board(store, tmp_path)["transfer"]
    assert m.loc["gradcam", ("fooling", "gradcam")] == pytest.approx(
        (fooling("location", "gradcam", "gradcam") + fooling("topk", "gradcam", "gradcam")) / 2)
    assert m.loc["gradcam", ("fooling", "lrp_t")] == pytest.approx(
        (fooling("location", "gradcam", "lrp_t") + fooling("topk", "gradcam", "lrp_t")) / 2)
    assert m.loc["gradcam", ("fsr", "lrp_t")] == pytest.approx(15.0)
    assert m.loc["lrp_t", ("fooling", "gradcam")] == pytest.approx(fooling("location", "lrp_t", "gradcam"))
    assert m.loc["gradcam", ("rows", "gradcam")] == 2 and m.loc["lrp_t", ("rows", "gradcam")] == 1


def test_ranking_orders_by_mean_fooling(store):
    scores = scores_frame(store, "tiny")
    rank = ranking(scores, store.to_dataframe(status="ok")).set_index("interpreter")
    assert list(rank.index) == ["lrp_t", "gradcam"]  # 60 - 3 < 90 - 9: location is the only common slot
    row_ = rank.loc["gradcam"]
    assert (row_.slots, row_.own_slots) == (1, 2)
    assert row_["fooling"] == pytest.approx(fooling("location", "gradcam", "gradcam")) and row_["fsr"] == 90.0
    assert row_["mean_top1_drop"] == pytest.approx(1.5)
    assert row_["transfer_fooling"] == pytest.approx(fooling("location", "lrp_t", "gradcam"))


def test_an_empty_store_gives_empty_tables(tmp_path):
    write_leaderboard(Store(tmp_path / "empty"), "tiny", tmp_path / "board")
    assert "No results yet" in (tmp_path / "board" / "fsr.md").read_text()
    assert "No results yet" in (tmp_path / "board" / "ranking.md").read_text()


def test_failed_cells_are_left_out(store):
    failed = list(store.records(status="failed"))
    assert failed and all(CellConfig.from_dict(r["config"]).interpreter == "lrp_t" for r in failed)
    assert set(scores_frame(store, "tiny")["attack"]) == {"location", "topk"}


def preset_store(root, fsr: float) -> Store:
    """A store with one preset cell (no overrides), seed 0: tiny resnet, Location through Grad-CAM, with
    its control."""
    store = Store(root)
    (cfg,) = build_grid("tiny", ["resnet"], ["location"], ["gradcam"])
    store.put(cfg, {"accuracy_before": {"top1": 96.0, "top5": 99.5}, 
                    "accuracy_after": {"top1": 95.0, "top5": 99.0}, "top1_drop": 1.0, "top5_drop": 0.5})
    store.put_score(cfg.cell_id, "gradcam", {"fsr": fsr, "baseline_fsr": 1.0, "n": 10, "fsr_ci": [fsr - 5, fsr + 5]})
    store.put_score(cfg.cell_id, "lrp_t", {"fsr": 30.0, "baseline_fsr": 2.0, "n": 10, "fsr_ci": [25.0, 35.0]})
    store.put(cfg.control, accuracy(0.2))
    for name in ("gradcam", "lrp_t"):
        store.put_score(cfg.control.cell_id, name, {"fsr": 3.0, "baseline_fsr": 1.0, "n": 10})
    return store


def publish_and_write(source: Store, board_dir, cell_ids=None) -> Store:
    board_ = records_store(board_dir)
    publish(source, board_, "tiny", cell_ids)
    write_leaderboard(board_, "tiny", board_dir)
    return board_


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
    row_ = df[(df.model == "resnet") & (df.scored_interpreter == "gradcam") & ~df.control].iloc[0]
    assert (row_.fsr, row_.fsr_ci_low, row_["accuracy_after.top5"], row_.top1_drop) == (80.0, 75.0, 99.0, 1.0)
    assert row_.control_fsr == 3.0
    assert "95.0" in (board_dir / "accuracy.md").read_text()


def test_a_cells_control_is_published_with_it_and_its_scores(tmp_path):
    source = preset_store(tmp_path / "src", 80.0)
    (cell,) = [r for r in source.records() if r.config["interpreter"] == "gradcam"]
    board_ = publish_and_write(source, tmp_path / "board", cell_ids={cell.cell_id})  # the control not named
    control = cell.control_cell
    assert {r.cell_id for r in board_.records()} == {cell.cell_id, control}
    assert {s.interpreter for s in board_.scores(control)} == {"gradcam", "lrp_t"}
    assert pd.read_csv(tmp_path / "board" / "scores.csv")["control_fsr"].dropna().tolist() == [3.0, 3.0]


def test_controls_of_other_schedules_coexist_and_an_unused_control_goes(tmp_path):
    """LRP has its own learning rate on tiny, so its control differs from Grad-CAM's in the same
    (model, attack, seed): both stay. A control no cell names any more is removed."""
    source = Store(tmp_path / "src")
    grad = add_cell(source, "vgg", "location", "gradcam", 0, {"gradcam": score(50.0, 0.0)},
                    control={"gradcam": score(0.0, 0.0)})
    lrp = add_cell(source, "vgg", "location", "lrp", 0, {"lrp": score(50.0, 0.0)}, control={"lrp": score(0.0, 0.0)})
    assert grad.control.cell_id != lrp.control.cell_id
    board_ = publish_and_write(source, tmp_path / "board")
    assert {r.cell_id for r in board_.records()} == {c.cell_id for c in (grad, lrp, grad.control, lrp.control)}
    other = Store(tmp_path / "other")  # Grad-CAM's cell again with another learning rate: another control
    moved = add_cell(other, "vgg", "location", "gradcam", 0, {"gradcam": score(40.0, 0.0)},
                     control={"gradcam": score(0.0, 0.0)}, lr=5e-4)
    publish_and_write(other, tmp_path / "board")
    assert {r.cell_id for r in board_.records()} == {c.cell_id for c in (moved, lrp, moved.control, lrp.control)}
    assert not list(board_.scores(grad.control.cell_id))


def test_the_published_record_wins_over_the_boards_record_of_the_same_cell(tmp_path):
    board_dir = tmp_path / "board"
    publish_and_write(preset_store(tmp_path / "old", 80.0), board_dir)
    publish_and_write(preset_store(tmp_path / "new", 55.0), board_dir)
    df = pd.read_csv(board_dir / "scores.csv")
    assert list(df[(df.scored_interpreter == "gradcam") & ~df.control]["fsr"]) == [55.0]


def test_a_cell_of_other_hyper_parameters_replaces_the_one_in_its_place(tmp_path):
    board_dir = tmp_path / "board"
    board_ = publish_and_write(preset_store(tmp_path / "preset", 80.0), board_dir)
    other = Store(tmp_path / "other")
    cfg = add_cell(other, "resnet", "location", "gradcam", 0, {"gradcam": score(20.0, 1.0)}, steps=7)
    publish_and_write(other, board_dir)
    assert [r.cell_id for r in board_.records()] == [cfg.cell_id]  # nothing stale stays, the old control neither
    assert [s.interpreter for s in board_.scores()] == ["gradcam"]
    assert list(pd.read_csv(board_dir / "scores.csv")["steps"]) == [7]


def test_the_tables_are_a_function_of_the_store_alone(store, tmp_path):
    out = tmp_path / "board"
    write_leaderboard(preset_store(tmp_path / "full", 80.0), "tiny", out)
    write_leaderboard(store, "tiny", out)
    assert set(pd.read_csv(out / "scores.csv")["model"]) == {"vgg"}


def test_a_published_cell_scored_by_fewer_interpreters_keeps_the_boards_other_scores(tmp_path):
    board_dir = tmp_path / "board"
    publish_and_write(preset_store(tmp_path / "old", 80.0), board_dir)  # scored by gradcam and lrp_t
    fewer = Store(tmp_path / "fewer")
    (cfg,) = build_grid("tiny", ["resnet"], ["location"], ["gradcam"])
    fewer.put(cfg, {"accuracy_before": {"top1": 96.0, "top5": 99.5}, 
                    "accuracy_after": {"top1": 94.0, "top5": 99.0}, "top1_drop": 2.0, "top5_drop": 0.5})
    fewer.put_score(cfg.cell_id, "gradcam", {"fsr": 70.0, "baseline_fsr": 1.0, "n": 10, "fsr_ci": [65.0, 75.0],
                                             "test_losses": [0.1] * 10})
    board_ = publish_and_write(fewer, board_dir)
    df = pd.read_csv(board_dir / "scores.csv")
    df = df[~df.control].set_index("scored_interpreter")
    assert (df.loc["gradcam", "fsr"], df.loc["lrp_t", "fsr"]) == (70.0, 30.0)
    assert set(df["top1_drop"]) == {2.0}  # the cell's accuracy is the published record's
    assert "test_losses" not in board_.get_score(cfg.cell_id, "gradcam").metrics  # per-image lists stay behind


def test_several_records_of_one_grid_place_publish_as_one_and_other_versions_not_at_all(tmp_path):
    source = preset_store(tmp_path / "src", 80.0)  # the preset cell of resnet/location/gradcam, made long ago
    (preset_cell,) = [r for r in source.records() if r.config["interpreter"] == "gradcam"]
    path = source.cell_path(preset_cell.cell_id)
    path.write_text(json.dumps({**json.loads(path.read_text()), "created": "2000-01-01T00:00:00+00:00"}))
    (other,) = build_grid("tiny", ["resnet"], ["location"], ["gradcam"], overrides={"lr": 5e-4})
    source.put(other, {"accuracy_before": {"top1": 96.0, "top5": 99.5},
                       "accuracy_after": {"top1": 95.0, "top5": 99.0}, "top1_drop": 1.0, "top5_drop": 0.5})
    old = source.cell_path(other.cell_id).with_name("0123456789abcdef.json")  # a record of another version
    old.write_text(json.dumps({**json.loads(source.cell_path(other.cell_id).read_text()),
                               "cell_id": "0123456789abcdef", "version": "1"}))
    board_ = records_store(tmp_path / "board")
    for _ in range(2):
        assert publish(source, board_, "tiny") == 1  # one per place (the newest names no control)
        assert [r.cell_id for r in board_.records()] == [other.cell_id]  # the newest of the place


def test_a_models_fsr_table_has_no_row_of_an_attacker_without_cells_there():
    """The per-model FSR tables: an attacking interpreter that attacked one model only has no empty
    row in the other models' tables."""
    from robustbench_interp.leaderboard import _by_model

    columns = pd.MultiIndex.from_product([["resnet", "vgg"], ["gradcam", "lrp"]])
    text = pd.DataFrame([["80.0", "1.0", "70.0", "2.0"], ["5.0", "0.0", "-", "-"]], columns=columns,
                        index=pd.MultiIndex.from_tuples([("location", "gradcam"), ("location", "lrp")],
                                                        names=["attack", "attacking_interpreter"]))
    parts = _by_model(text)
    assert list(parts["resnet"].index) == [("location", "gradcam"), ("location", "lrp")]
    assert list(parts["vgg"].index) == [("location", "gradcam")]
