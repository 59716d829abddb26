"""Robustness cells: every attack x base model, adaptive (through the interpreter itself) and
transfer (the interpreter scored on models manipulated through the built-in attackers).

A test fails only when its cell could not be computed, or, with --rbi-max-fsr, when an adaptive FSR
exceeds the goal. Each cell's FSR is a test property and appears in the summary table.
"""

from __future__ import annotations

import pytest


def adaptive(suite, cell, record_property):
    if not suite.interpreter(cell.interpreter, cell.interpreter_params).differentiable:
        pytest.skip(f"{cell.interpreter!r} is not differentiable: transfer cells only")
    with suite.visible():
        record = suite.bench.run_cell(cell)
    scores = suite.bench.store.get_score(cell.cell_id, cell.interpreter, cell.interpreter_params)
    metrics = (scores or {}).get("metrics", {})
    suite.record("adaptive", cell.label, record, metrics)
    if record["status"] != "ok":
        pytest.fail(f"cell {cell.label} could not be computed: {record['reason']}")
    record_property("fsr", metrics["fsr"])
    record_property("baseline_fsr", metrics["baseline_fsr"])
    record_property("top1_drop", record["metrics"]["top1_drop"])
    goal = suite.opt("rbi_max_fsr")
    if goal is not None and metrics["fsr"] > goal:
        pytest.fail(f"{cell.label}: FSR {metrics['fsr']:.1f}% > --rbi-max-fsr {goal}% "
                    f"(baseline {metrics['baseline_fsr']:.1f}%)")


def transfer(suite, pair, record_property):
    cell, spec = pair
    with suite.visible():
        suite.bench.run_cell(cell)
        record = suite.bench.score_cell(cell, spec)
    label = f"{cell.label}->{spec}"
    if record is None:
        pytest.fail(f"the manipulated model {cell.label} could not be computed: "
                    f"{suite.bench.store.get(cell.cell_id)['reason']}")
    suite.record("transfer", label, record, record.get("metrics"))
    if record["status"] != "ok":
        pytest.fail(f"transfer cell {label} could not be computed: {record['reason']}")
    record_property("fsr", record["metrics"]["fsr"])
    record_property("baseline_fsr", record["metrics"]["baseline_fsr"])


@pytest.mark.rbi_attack("location")
def test_location(rbi_suite, rbi_cell, record_property):
    adaptive(rbi_suite, rbi_cell, record_property)


@pytest.mark.rbi_attack("topk")
def test_topk(rbi_suite, rbi_cell, record_property):
    adaptive(rbi_suite, rbi_cell, record_property)


@pytest.mark.rbi_attack("center_mass")
def test_center_mass(rbi_suite, rbi_cell, record_property):
    adaptive(rbi_suite, rbi_cell, record_property)


@pytest.mark.rbi_attack("active")
def test_active(rbi_suite, rbi_cell, record_property):
    adaptive(rbi_suite, rbi_cell, record_property)


@pytest.mark.rbi_attack("location")
def test_location_transfer(rbi_suite, rbi_transfer, record_property):
    transfer(rbi_suite, rbi_transfer, record_property)


@pytest.mark.rbi_attack("topk")
def test_topk_transfer(rbi_suite, rbi_transfer, record_property):
    transfer(rbi_suite, rbi_transfer, record_property)


@pytest.mark.rbi_attack("center_mass")
def test_center_mass_transfer(rbi_suite, rbi_transfer, record_property):
    transfer(rbi_suite, rbi_transfer, record_property)


@pytest.mark.rbi_attack("active")
def test_active_transfer(rbi_suite, rbi_transfer, record_property):
    transfer(rbi_suite, rbi_transfer, record_property)
