"""The pytest plugin behind ``pytest suites/`` (registered through the ``pytest11`` entry point).

All options live in one group, ``robustbench_interp``, defined once in
:mod:`robustbench_interp.options` and shared with the CLI; here they carry the ``--rbi-`` prefix
(``--rbi-interpreter``, ``--rbi-device``, ...), since the plugin is loaded into every pytest run of
the environment and bare names such as ``--device`` or ``--seed`` belong to other plugins. The
plugin parametrises the suites' tests (``rbi_interpreter``, ``rbi_check``, ``rbi_cell``,
``rbi_transfer``), gives them fixtures (``rbi_suite``, ``rbi_interp``, ``rbi_model``, ``rbi_batch``),
keeps its state in ``config.stash``, prints an FSR table at the end of the session, and can write the
leaderboard. It imports nothing heavy until a suite asks for it, so other test runs are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from robustbench_interp.options import (
    OPTIONS,
    PLUGIN_PREFIX,
    SUITE_OPTIONS,
    add_options,
    check_attack_names,
    check_interpreter_names,
    overrides,
    selected_attacks,
    selected_budget,
    selected_models,
    selected_seeds,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("robustbench_interp", "robustbench_interp benchmark (pytest suites/)")
    add_options(group.addoption, [*OPTIONS, *SUITE_OPTIONS], prefix=PLUGIN_PREFIX)


def pytest_configure(config: pytest.Config) -> None:
    """An unknown ``--rbi-track`` or ``--rbi-attacks`` name is a usage error at once (not a run that
    selects nothing, nor a traceback while collecting)."""
    from robustbench_interp.errors import PluginImportError, UnknownNameError
    from robustbench_interp.tracks import get_track

    try:
        get_track(config.getoption("rbi_track", "tiny"))
    except (UnknownNameError, PluginImportError) as exc:
        raise pytest.UsageError(f"--{PLUGIN_PREFIX}track: {exc}") from None
    value = config.getoption("rbi_attacks", None)
    if value is not None:
        try:
            check_attack_names(selected_attacks(value))
        except UnknownNameError as exc:
            raise pytest.UsageError(f"--{PLUGIN_PREFIX}attacks: {exc}") from None


@dataclass
class Suite:
    """The session's benchmark state: the selection, the store and the (lazily built) runner."""

    config: pytest.Config
    results: list[dict[str, Any]] = field(default_factory=list)
    usage_error: str | None = None
    _bench: Any = None
    _probe: Any = None

    def opt(self, name: str) -> Any:
        return self.config.getoption(name)

    @property
    def track(self) -> str:
        return self.opt("rbi_track")

    def interpreters(self) -> list[str]:
        from robustbench_interp.errors import UnknownNameError
        from robustbench_interp.interpreters import list_interpreters

        specs = self.opt("rbi_interpreter") or list_interpreters()
        try:
            check_interpreter_names(specs)
        except UnknownNameError as exc:  # reported as a usage error once collection ends
            self.usage_error = f"--{PLUGIN_PREFIX}interpreter: {exc}"
            return []
        return specs

    def probed(self) -> Any:
        """The probe of the selected plug-ins (:mod:`robustbench_interp.probe`: built and run on a tiny
        batch through a random model of the track, once, before any model is trained), so that their
        tests fail at once with the reason instead of after a base model's training. The maps' shape
        and values are left to the conformance checks, which name the property."""
        if self._probe is None:
            from robustbench_interp.probe import probe_interpreters

            specs, models = self.interpreters(), self.models()
            self._probe = probe_interpreters(((s, {}) for s in specs), attacking=specs, check_maps=False,
                                             track=self.track, model=models[0] if models else None,
                                             device=self.opt("rbi_device"))
        return self._probe

    def refuse(self, spec: str, *, attacking: bool = False) -> None:
        """Fail the current test at once when ``spec`` failed the probe (``attacking``: also when it
        fails only with ``create_graph``, which its adaptive cells need)."""
        probe = self.probed()
        reason = probe.refused.get(spec) or (probe.not_attackable.get(spec) if attacking else None)
        if reason is not None:
            pytest.fail(f"interpreter {spec} fails on a tiny batch (before any model is trained): {reason}",
                        pytrace=False)

    def models(self) -> list[str]:
        return selected_models(self.track, self.opt("rbi_models"))

    def attacks(self) -> list[str]:
        return selected_attacks(self.opt("rbi_attacks"))

    def grids(self) -> tuple[Any, Any]:
        """The submission's grids (:func:`robustbench_interp.grid.submission_grid`): its adaptive cells,
        and the cells manipulated through the built-in attackers that it is scored on."""
        from robustbench_interp.grid import submission_grid

        return submission_grid(self.track, self.models(), self.attacks(), self.interpreters(),
                               seeds=selected_seeds(self.opt("rbi_seeds")),
                               budget=selected_budget(self.opt("rbi_budget")),
                               overrides=overrides(self.opt("rbi_lr"), self.opt("rbi_lam"), self.opt("rbi_steps"),
                                                   self.opt("rbi_cooldown")))

    def interpreter(self, spec: str, params: Any = ()) -> Any:
        """The interpreter ``spec`` built with ``params`` (a mapping or ``(key, value)`` pairs)."""
        from robustbench_interp.interpreters import get_interpreter

        return get_interpreter(spec, **dict(params))

    def record(self, kind: str, label: str, record: Any, scores: dict[str, Any] | None) -> None:
        """Add a cell's outcome (``kind``: adaptive or transfer; ``record`` a cell or score record)
        to the end-of-session FSR table."""
        self.results.append({"kind": kind, "label": label, "status": record.status,
                             "fsr": (scores or {}).get("fsr"), "baseline_fsr": (scores or {}).get("baseline_fsr"),
                             "top1_drop": record.metrics.get("top1_drop"), "reason": record.reason})

    @property
    def bench(self) -> Any:
        if self._bench is None:
            from robustbench_interp.runner import Runner
            from robustbench_interp.store import Store

            self._bench = Runner(Store(self.opt("rbi_store")), device=self.opt("rbi_device"),
                                    eval_size=self.opt("rbi_eval_size"),
                                    accuracy_size=self.opt("rbi_accuracy_size"),
                                    data_root=self.opt("rbi_data_root"),
                                    retry_failed=not self.opt("rbi_keep_failed"))
        return self._bench

    def visible(self):
        """A context in which output reaches the terminal (training and manipulation progress)."""
        capman = self.config.pluginmanager.getplugin("capturemanager")
        return capman.global_and_fixture_disabled()


SUITE_KEY = pytest.StashKey[Suite]()


def _suite(config: pytest.Config) -> Suite:
    if SUITE_KEY not in config.stash:
        config.stash[SUITE_KEY] = Suite(config)
    return config.stash[SUITE_KEY]


@dataclass(frozen=True)
class Check:
    """One conformance check of :data:`robustbench_interp.conformance.CHECKS`, as the ``rbi_check``
    parameter: ``check(interp, model, (x, y))`` raises when the property does not hold."""

    name: str
    function: Callable[..., None]

    def __call__(self, interp: Any, model: Any, batch: tuple[Any, Any]) -> None:
        from robustbench_interp.conformance import NotCheckable, prerequisite

        x, y = batch
        try:
            prerequisite(interp, model, x, y, self.name)
        except NotCheckable as exc:
            pytest.skip(str(exc))
        self.function(interp, model, x, y)


def _checks() -> list[Check]:
    from robustbench_interp.conformance import CHECKS

    return [Check(name, function) for name, function in CHECKS.items()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise a suite test by the fixtures it uses: ``rbi_interpreter`` (every selected
    interpreter, first in the id), ``rbi_check`` (every conformance check), ``rbi_cell`` (every
    selected attack x model x interpreter: an adaptive cell) and ``rbi_transfer`` (every selected
    attack x model x built-in attacker, scored by every other selected interpreter). The robustness
    ids start with the attack, so ``-k location`` selects one attack."""
    suite = _suite(metafunc.config)
    names = metafunc.fixturenames
    if "rbi_interpreter" in names:
        specs = suite.interpreters()
        metafunc.parametrize("rbi_interpreter", specs, ids=specs, scope="module")
    if "rbi_check" in names:
        checks = _checks()
        metafunc.parametrize("rbi_check", checks, ids=[c.name for c in checks])
    if "rbi_cell" in names:
        cells = suite.grids()[0].attacked  # each test computes its cell's control first
        metafunc.parametrize("rbi_cell", cells, ids=_cell_ids(cells))
    if "rbi_transfer" in names:
        transfer = suite.grids()[1]
        pairs = [(cell, spec) for cell in transfer.cells for spec in transfer.scorers if spec != cell.interpreter]
        metafunc.parametrize("rbi_transfer", pairs,
                             ids=[f"{i}-to-{s}" for i, (_c, s) in zip(_cell_ids([c for c, _s in pairs]), pairs)])


def _cell_ids(cells: Any) -> list[str]:
    """Test ids that read like the cells; the seed is added when the cells have several."""
    several = len({c.seed for c in cells}) > 1
    return [f"{c.attack}-{c.track}-{c.model}-{c.interpreter}" + (f"-seed{c.seed}" if several else "")
            for c in cells]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A usage error met while parametrising (an unknown interpreter name) stops the run here."""
    suite = config.stash.get(SUITE_KEY, None)
    if suite is not None and suite.usage_error:
        raise pytest.UsageError(suite.usage_error)
    if suite is not None and any(name.startswith("rbi_") for item in items for name in getattr(item, "fixturenames", ())):
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        for line in suite.probed().lines():  # said before the first test runs; its tests fail at once
            if reporter is not None:
                reporter.write_line(f"rbi: {line}", red=True)


@pytest.fixture(scope="session")
def rbi_suite(request: pytest.FixtureRequest) -> Suite:
    """The session's :class:`Suite` (options, store, runner)."""
    return _suite(request.config)


@pytest.fixture(scope="module")
def rbi_interp(rbi_suite: Suite, rbi_interpreter: str):
    """The interpreter ``rbi_interpreter`` (a selected spec), built."""
    rbi_suite.refuse(rbi_interpreter)
    return rbi_suite.interpreter(rbi_interpreter)


@pytest.fixture
def rbi_model(rbi_suite: Suite):
    """The first selected base model of the track (trained or loaded once, then cached by the
    runner), for conformance checks. Function-scoped, so that a plug-in refused by its
    ``rbi_interp`` fixture fails before a model is trained."""
    with rbi_suite.visible():
        return rbi_suite.bench.resources.base(rbi_suite.track, rbi_suite.models()[0])


@pytest.fixture
def rbi_batch(rbi_suite: Suite):
    """Eight validation images and their labels (on the suite's device)."""
    data = rbi_suite.bench.resources.data(rbi_suite.track)
    device = rbi_suite.bench.resources.device
    return data.eval_x[:8].to(device), data.eval_y[:8].to(device)


def _is_worker(config: pytest.Config) -> bool:
    """True in a pytest-xdist worker (``pytest suites/ -n auto``): its cells' outcomes go to the
    controller, which prints the table and writes the leaderboard once."""
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In an xdist worker: hand the cells' outcomes to the controller."""
    config = session.config
    suite = config.stash.get(SUITE_KEY, None)
    if _is_worker(config) and suite is not None:
        config.workeroutput["rbi_results"] = list(suite.results)  # type: ignore[attr-defined]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """In the xdist controller: gather a finished worker's outcomes (the workers share the store, whose
    claims keep them from computing a cell twice)."""
    results = getattr(node, "workeroutput", {}).get("rbi_results")
    if results:
        _suite(node.config).results.extend(results)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    suite = config.stash.get(SUITE_KEY, None)
    if suite is None or not suite.results or _is_worker(config):
        return
    suite.results.sort(key=lambda r: (r["kind"], r["label"]))  # the same table whatever the workers' order
    from tabulate import tabulate

    rows = [[r["kind"], r["label"], r["status"], r["fsr"], r["baseline_fsr"], r["top1_drop"]] for r in suite.results]
    terminalreporter.section("robustbench_interp: fooling success rates")
    terminalreporter.write_line(tabulate(rows, headers=["cell", "label", "status", "FSR %", "baseline %",
                                                        "top-1 drop"], floatfmt=".1f"))
    out = config.getoption("rbi_leaderboard")
    if out:
        from pathlib import Path

        from robustbench_interp.errors import RBIError
        from robustbench_interp.leaderboard import publish, records_store, write_leaderboard

        board = records_store(Path(out) / suite.track)
        try:
            publish(suite.bench.store, board, suite.track)
        except RBIError as exc:
            terminalreporter.write_line(f"leaderboard not written: {exc}")
            return
        written = write_leaderboard(board, suite.track, Path(out) / suite.track)
        terminalreporter.write_line(f"leaderboard written: {sorted(str(p) for p in written.values())}")
