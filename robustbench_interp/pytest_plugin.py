"""The pytest plugin behind ``pytest suites/`` (registered through the ``pytest11`` entry point).

All options live in one group, ``robustbench_interp``; they only matter to the benchmark suites and
leave other test runs alone.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("robustbench_interp", "robustbench_interp benchmark options")
    group.addoption(
        "--interpreter",
        action="append",
        default=[],
        metavar="SPEC",
        help="interpreter to benchmark: a registered name or 'package.module:attr' (repeatable; "
        "default: every registered interpreter)",
    )
