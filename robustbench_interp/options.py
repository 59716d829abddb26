"""The benchmark's options, defined once and shared by the ``rbi`` CLI and the pytest plugin.

Each option is ``(flag, kwargs)`` as both ``argparse`` and ``pytest.Parser.addoption`` accept it.
"""

from __future__ import annotations

import os
from typing import Any


DEFAULT_STORE = os.environ.get("RBI_STORE", "results")

Option = tuple[str, dict[str, Any]]

OPTIONS: list[Option] = [
    ("--interpreter", dict(action="append", default=[], metavar="SPEC", dest="rbi_interpreter",
                           help="interpreter to benchmark: a registered name or 'package.module:attr' "
                                "(repeatable; default: every registered interpreter)")),
    ("--track", dict(default="tiny", dest="rbi_track", help="track: tiny (default, CPU) or imagenet")),
    ("--models", dict(default=None, dest="rbi_models", metavar="M1,M2",
                      help="comma-separated base models (default: the track's standard models)")),
    ("--attacks", dict(default=None, dest="rbi_attacks", metavar="A1,A2",
                       help="comma-separated attacks: registered names or 'package.module:attr' specs "
                            "(default: the benchmark's four; `rbi list` shows every registered one)")),
    ("--device", dict(default="cpu", dest="rbi_device", help="cpu, cuda or cuda:N (default: cpu)")),
    ("--store", dict(default=DEFAULT_STORE, dest="rbi_store",
                     help="results store folder (default: ./results or $RBI_STORE)")),
    ("--seed", dict(default=0, type=int, dest="rbi_seed", help="seed of every cell (default: 0)")),
    ("--eval-size", dict(default=256, type=int, dest="rbi_eval_size",
                         help="validation images (and held-out composites) scored per cell (default: 256)")),
    ("--accuracy-size", dict(default=None, type=int, dest="rbi_accuracy_size",
                             help="validation images used for top-1/top-5 accuracy (default: all)")),
    ("--data-root", dict(default=None, dest="rbi_data_root",
                         help="ImageNet folder for the imagenet track (or $RBI_IMAGENET_ROOT)")),
    ("--lr", dict(default=None, type=float, dest="rbi_lr", help="override the preset learning rate")),
    ("--lam", dict(default=None, type=float, dest="rbi_lam", help="override the preset penalty weight lambda")),
    ("--steps", dict(default=None, type=int, dest="rbi_steps", help="override the preset number of steps")),
    ("--cooldown", dict(default=None, type=float, dest="rbi_cooldown",
                        help="override the preset cooldown (the final fraction of the steps over which the "
                             "learning rate decays linearly to 0)")),
    ("--retry-failed", dict(action="store_true", default=False, dest="rbi_retry_failed",
                            help="recompute cells stored as failed")),
]


def split_list(value: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; None stays None."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


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
    """Fail at once, naming the close names, on an interpreter name that is not registered (a typo);
    a registered plug-in that is broken, or a 'module:attr' spec, fails its own cells instead."""
    from robustbench_interp.errors import PluginImportError
    from robustbench_interp.interpreters import INTERPRETERS

    for spec in specs:
        if ":" not in spec:
            try:
                INTERPRETERS.get(spec)
            except PluginImportError:
                pass
