"""The benchmark's options, defined once and shared by the ``rbi`` CLI and the pytest plugin.

Each option is ``(name, kwargs)``: the name without dashes or prefix, and the keyword arguments
both ``argparse`` and ``pytest.Parser.addoption`` accept. :func:`add_options` adds them under a
prefix, the way pytest-benchmark's ``add_global_options`` does: the plugin's ``--rbi-device`` (a
pytest plugin is loaded into every test run of the environment, so its options must not take
names other plugins use) and the CLI's bare ``rbi run --device``. Either way the value lands in the
same ``dest`` (``rbi_device``), so the code reading it does not depend on the spelling.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

DEFAULT_STORE = os.environ.get("RBI_STORE", "results")
#: The pytest plugin's prefix: ``--rbi-interpreter``, ``--rbi-device``, ...
PLUGIN_PREFIX = "rbi-"

Option = tuple[str, dict[str, Any]]

#: The options of a benchmark run, shared by ``rbi run`` and ``pytest suites/``.
OPTIONS: list[Option] = [
    ("interpreter", {"action": "append", "default": [], "metavar": "SPEC", "dest": "rbi_interpreter",
                     "help": "interpreter to benchmark: a registered name or 'package.module:attr' "
                             "(repeatable; default: every registered interpreter)"}),
    ("track", {"default": "tiny", "dest": "rbi_track",
               "help": "a registered track (default: tiny, the embedded CPU one; `rbi list` shows them)"}),
    ("models", {"default": None, "dest": "rbi_models", "metavar": "M1,M2",
                "help": "comma-separated base models (default: the track's standard models)"}),
    ("attacks", {"default": None, "dest": "rbi_attacks", "metavar": "A1,A2",
                 "help": "comma-separated attacks: registered names or 'package.module:attr' specs (default: the "
                          "benchmark's four; `rbi list` shows every registered one)"}),
    ("device", {"default": "cpu", "dest": "rbi_device", "help": "cpu, cuda or cuda:N (default: cpu)"}),
    ("store", {"default": DEFAULT_STORE, "dest": "rbi_store",
               "help": "results store folder (default: ./results or $RBI_STORE)"}),
    ("seeds", {"default": None, "dest": "rbi_seeds", "metavar": "S1,S2",
               "help": "comma-separated seeds; each cell is manipulated once per seed (default: the track's, "
                       "tiny: 0,1,2)"}),
    ("eval-size", {"default": 256, "type": int, "dest": "rbi_eval_size",
                   "help": "test images (and test composites) scored per cell (default: 256)"}),
    ("accuracy-size", {"default": None, "type": int, "dest": "rbi_accuracy_size",
                       "help": "test images used for top-1/top-5 accuracy (default: all)"}),
    ("data-root", {"default": None, "dest": "rbi_data_root",
                   "help": "ImageNet folder for the imagenet track (or $RBI_IMAGENET_ROOT)"}),
    ("lr", {"default": None, "type": float, "dest": "rbi_lr", "help": "override the preset learning rate"}),
    ("lam", {"default": None, "type": float, "dest": "rbi_lam", "help": "override the preset penalty weight lambda"}),
    ("steps", {"default": None, "type": int, "dest": "rbi_steps", "help": "override the preset number of steps"}),
    ("cooldown", {"default": None, "type": float, "dest": "rbi_cooldown",
                  "help": "override the preset cooldown (the final fraction of the steps over which the "
                          "learning rate decays linearly to 0)"}),
    ("budget", {"default": None, "type": int, "dest": "rbi_budget", "metavar": "STEPS",
                "help": "the attacker's search budget per cell in optimizer steps, the same for every interpreter "
                        "(tiny: 2000 leaves the finalists the preset's 500 steps; raise it on a GPU). Default: 0, "
                        "each cell's preset alone, as the committed leaderboard. --lr/--lam/--steps run one "
                        "configuration"}),
    ("keep-failed", {"action": "store_true", "default": False, "dest": "rbi_keep_failed",
                     "help": "do not retry cells stored as failed (default: a failed cell is computed again)"}),
]

#: The options of ``pytest suites/`` only (a test outcome, the end of the session).
SUITE_OPTIONS: list[Option] = [
    ("max-fsr", {"type": float, "default": None, "dest": "rbi_max_fsr", "metavar": "PERCENT",
                 "help": "fail an adaptive robustness cell whose FSR exceeds PERCENT (default: report only)"}),
    ("leaderboard", {"default": None, "dest": "rbi_leaderboard", "metavar": "DIR",
                     "help": "write the leaderboard of the track under DIR/<track>/ at the end of the session"}),
]


def add_options(addoption: Callable[..., Any], options: Iterable[Option] = OPTIONS, *, prefix: str = "",
                names: Iterable[str] | None = None) -> None:
    """Add ``options`` (those called ``names``, default all) through ``addoption``
    (``argparse.ArgumentParser.add_argument`` or a pytest option group's ``addoption``) as
    ``--<prefix><name>``."""
    wanted = None if names is None else set(names)
    for name, kwargs in options:
        if wanted is None or name in wanted:
            addoption(f"--{prefix}{name}", **kwargs)


def split_list(value: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; None stays None."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def selected_seeds(value: str | None) -> list[int] | None:
    """The ``--seeds`` selection as integers (None: the track's seeds); a bad value is a usage error."""
    from robustbench_interp.errors import ConfigError

    items = split_list(value)
    if items is None:
        return None
    try:
        return [int(item) for item in items]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers (e.g. 0,1,2), got {value!r}") from None


def selected_budget(value: int | None) -> int | None:
    """``--budget``: None (the grid's default), 0 (the presets alone) or a number of optimizer steps."""
    from robustbench_interp.errors import ConfigError

    if value is not None and value < 0:
        raise ConfigError(f"--budget is a number of optimizer steps per cell (0: no search), got {value}")
    return value


def selected_models(track: str, value: str | None) -> list[str]:
    """The ``--models`` selection, or every standard (not ``-adv``) base model of ``track``."""
    from robustbench_interp.models import list_models

    return split_list(value) or [m for m in list_models(track) if not m.endswith("-adv")]


def selected_attacks(value: str | None) -> list[str]:
    """The ``--attacks`` selection (a typo'd name fails here, naming the close ones), or the
    benchmark's standard attacks (a plug-in attack runs when named)."""
    from robustbench_interp.attacks import check_attack_names, standard_attacks

    return check_attack_names(split_list(value) or []) or standard_attacks()


def overrides(lr: float | None, lam: float | None, steps: int | None, cooldown: float | None = None
              ) -> dict[str, Any]:
    """The hyper-parameter overrides that were given."""
    given = {"lr": lr, "lam": lam, "steps": steps, "cooldown": cooldown}
    return {name: value for name, value in given.items() if value is not None}


def check_interpreter_names(specs: list[str]) -> None:
    """Fail at once, naming the close names, on an interpreter name that is not registered (a typo)
    or a spec that is not an absolute 'package.module:attr' path; a registered plug-in that is
    broken, or a spec whose import fails, fails its own cells instead."""
    from robustbench_interp.errors import PluginImportError
    from robustbench_interp.interpreters import INTERPRETERS
    from robustbench_interp.registry import check_spec

    for spec in specs:
        if ":" in spec:
            check_spec(spec)
        else:
            try:
                INTERPRETERS.get(spec)
            except PluginImportError:
                pass


def check_attack_names(names: Iterable[str]) -> None:
    """Fail at once on an attack name that is not registered (a typo such as ``locaton``) with
    :class:`~robustbench_interp.errors.UnknownNameError`, naming the close names; a
    ``module:attr`` spec fails its own cells when it runs."""
    from robustbench_interp.attacks import check_attack_names as check

    check(list(names))
