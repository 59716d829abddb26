"""Conformance of each selected interpreter: one test per (check, interpreter).

A failure names the property; see robustbench_interp/conformance.py for what each check demands.
"""

from __future__ import annotations

import pytest

from robustbench_interp import get_interpreter
from robustbench_interp.conformance import CHECKS


@pytest.fixture(scope="module")
def interp(rbi_interpreter):
    return get_interpreter(rbi_interpreter)


def _run(name, interp, rbi_model, rbi_batch):
    x, y = rbi_batch
    CHECKS[name](interp, rbi_model, x, y)


def test_shape_and_dtype(interp, rbi_model, rbi_batch):
    _run("shape_and_dtype", interp, rbi_model, rbi_batch)


def test_finite(interp, rbi_model, rbi_batch):
    _run("finite", interp, rbi_model, rbi_batch)


def test_deterministic(interp, rbi_model, rbi_batch):
    _run("deterministic", interp, rbi_model, rbi_batch)


def test_batch_independence(interp, rbi_model, rbi_batch):
    _run("batch_independence", interp, rbi_model, rbi_batch)


def test_target_dependence(interp, rbi_model, rbi_batch):
    _run("target_dependence", interp, rbi_model, rbi_batch)


def test_spatial_variation(interp, rbi_model, rbi_batch):
    _run("spatial_variation", interp, rbi_model, rbi_batch)


def test_differentiable(interp, rbi_model, rbi_batch):
    if not interp.differentiable:
        pytest.skip(f"{interp.name!r} declares itself non-differentiable: it gets transfer cells only "
                    "(scored on models manipulated through the built-ins), no adaptive cells")
    _run("differentiable", interp, rbi_model, rbi_batch)


def test_randomisation(interp, rbi_model, rbi_batch):
    _run("randomisation", interp, rbi_model, rbi_batch)
