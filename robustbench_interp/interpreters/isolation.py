"""Isolation: an interpreter call leaves the model and the process as it found them.

Interpreters share the base models (loaded once) and the process. A plug-in that leaves a hook on a
module, switches the model to train mode, changes torch's default dtype or changes a weight in place
would change what every later interpreter sees: a well-behaved plug-in would then fail its own
checks for another's fault. :func:`isolated` wraps every call: after it, whatever the call changed
is put back (hooks removed, modes and the default dtype restored; weights and buffers changed in
place are put back by the runner, which checks the base model's hash after every cell and score
and restores the model as it was loaded), and the call fails with an
:class:`~robustbench_interp.errors.IsolationError` naming the interpreter and what it left behind,
so the guilty plug-in fails its own cells and nobody else's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from robustbench_interp.errors import IsolationError

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _state(model: nn.Module) -> dict[str, Any]:
    return {
        "hooks": {(name, kind): set(getattr(m, kind, {}).keys())
                  for name, m in model.named_modules() for kind in _HOOK_DICTS},
        "training": {name: m.training for name, m in model.named_modules()},
        "versions": {name: p._version for name, p in model.named_parameters()},
        "dtype": torch.get_default_dtype(),
    }


def _restore(model: nn.Module, before: dict[str, Any]) -> list[str]:
    """Put back what changed since ``before``; returns what was found changed, in words."""
    found: list[str] = []
    modules = dict(model.named_modules())
    for (name, kind), keys in before["hooks"].items():
        hooks = getattr(modules.get(name), kind, None)
        extra = [k for k in list(hooks or {}) if k not in keys]
        for key in extra:
            del hooks[key]
        if extra:
            found.append(f"{len(extra)} {kind.strip('_').replace('_', ' ')} on {name or 'the model'}")
    switched = [name or "the model" for name, m in modules.items() if before["training"].get(name, m.training) != m.training]
    for name, m in modules.items():
        m.training = before["training"].get(name, m.training)
    if switched:
        found.append(f"the train/eval mode of {switched[0]}{' and others' if len(switched) > 1 else ''} switched")
    if torch.get_default_dtype() != before["dtype"]:
        found.append(f"torch's default dtype changed to {torch.get_default_dtype()}")
        torch.set_default_dtype(before["dtype"])
    changed = [name for name, p in model.named_parameters() if before["versions"].get(name, p._version) != p._version]
    if changed:
        found.append(f"the weights {changed[0]}{' and others' if len(changed) > 1 else ''} modified in place")
    return found


@contextlib.contextmanager
def isolated(name: str, model: nn.Module) -> Iterator[None]:
    """Run the block (one interpreter call); afterwards restore the model's hooks and modes and the
    default dtype, and raise an :class:`IsolationError` naming ``name`` and what it changed."""
    before = _state(model)
    try:
        yield
    finally:
        found = _restore(model, before)
    if found:
        raise IsolationError(f"interpreter {name!r} left the model or the process changed: {'; '.join(found)}. "
                               "An interpreter must leave no hook, mode, default dtype or weight changed "
                               "(remove hooks in a finally block, never call model.train())")
