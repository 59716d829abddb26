"""Robustness cells: every selected attack x base model, adaptive (through the interpreter itself)
and transfer (the interpreter scored on models manipulated through the built-in attackers). The
plugin generates one test per cell, its id starting with the attack (``-k location`` selects one
attack).

A test fails only when its cell could not be computed, or, with --rbi-max-fsr, when an adaptive FSR
exceeds the goal. Each cell's FSR is a test property and appears in the summary table.
"""

from __future__ import annotations

import pytest


def test_adaptive(rbi_suite, rbi_cell, record_property):
    cell = rbi_cell
    rbi_suite.refuse(cell.interpreter, attacking=True)
    if not rbi_suite.interpreter(cell.interpreter, cell.interpreter_params).differentiable:
        pytest.skip(f"{cell.interpreter!r} is not differentiable: transfer cells only")
    with rbi_suite.visible():
        record = rbi_suite.bench.run_cell(cell)  # the attacker's search when the cell has one
        control, control_cell = None, rbi_suite.bench.control_of(cell)  # the chosen configuration, lambda = 0
        if control_cell is not None:
            rbi_suite.bench.run_cell(control_cell)
            control = rbi_suite.bench.score_cell(control_cell, cell.interpreter, dict(cell.interpreter_params))
    scores = rbi_suite.bench.store.get_score(cell.cell_id, cell.interpreter, cell.interpreter_params)
    metrics = scores.metrics if scores is not None else {}
    rbi_suite.record("adaptive", cell.label, record, metrics)
    if record.status == "not_attackable":
        pytest.skip(f"cell {cell.label}: not attackable adaptively ({record.reason}); ranked by transfer only")
    if not record.ok:
        pytest.fail(f"cell {cell.label} could not be computed: {record.reason}")
    record_property("fsr", metrics["fsr"])
    record_property("baseline_fsr", metrics["baseline_fsr"])
    if control is not None and control.ok:
        record_property("control_fsr", control.metrics["fsr"])
    record_property("top1_drop", record.metrics["top1_drop"])
    chosen = record.metrics.get("chosen")
    if chosen:
        record_property("chosen", f"lr={chosen['lr']:g} lam={chosen['lam']:g} {chosen['surrogate']}")
    goal = rbi_suite.opt("rbi_max_fsr")
    if goal is not None and metrics["fsr"] > goal:
        pytest.fail(f"{cell.label}: FSR {metrics['fsr']:.1f}% > --rbi-max-fsr {goal}% "
                    f"(baseline {metrics['baseline_fsr']:.1f}%)")


def test_transfer(rbi_suite, rbi_transfer, record_property):
    cell, spec = rbi_transfer
    rbi_suite.refuse(spec)
    with rbi_suite.visible():
        rbi_suite.bench.run_cell(cell)
        record = rbi_suite.bench.score_cell(cell, spec)
    label = f"{cell.label}->{spec}"
    if record is None:
        pytest.fail(f"the manipulated model {cell.label} could not be computed: "
                    f"{rbi_suite.bench.store.get(cell.cell_id).reason}")
    rbi_suite.record("transfer", label, record, record.metrics)
    if not record.ok:
        pytest.fail(f"transfer cell {label} could not be computed: {record.reason}")
    record_property("fsr", record.metrics["fsr"])
    record_property("baseline_fsr", record.metrics["baseline_fsr"])
