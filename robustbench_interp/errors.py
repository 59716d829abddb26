"""The benchmark's exception tree.

Every error the benchmark raises on bad input is a :class:`RBIError`, and its message names the bad
value and the fix. Each class below says when it is raised.
"""

from __future__ import annotations


class RBIError(Exception):
    """Base class of every error robustbench_interp raises on purpose."""


class ConfigError(RBIError, ValueError):
    """An option or hyper-parameter has a value the benchmark cannot use (a bad ``--device``,
    a negative learning rate, an unknown attack or track name)."""


class UnknownNameError(ConfigError, KeyError):
    """A name is not in a registry. The message lists the closest registered names."""

    def __str__(self) -> str:  # KeyError would quote the message; show it as written.
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(RBIError, ValueError):
    """A name is registered twice in the same registry."""


class PluginImportError(RBIError, ImportError):
    """A ``"package.module:attr"`` spec or an entry point could not be imported; the message says
    whether the module or the attribute failed."""


class UsageError(RBIError, RuntimeError):
    """A documented object was used out of order (e.g. ``FreePerturbation.step()`` before
    ``perturb()``); the message says which call must come first."""


class InterpreterError(RBIError):
    """An interpreter failed while explaining: it raised, or returned a map of the wrong shape,
    dtype, or with NaN / infinite values. The benchmark records the failing cell and carries on."""


class AttackError(RBIError):
    """An attack failed while computing its penalty or its test losses (a plug-in attack's own code
    raised, or returned something other than a finite scalar penalty). The benchmark records the
    failing cell and carries on."""


class IsolationError(InterpreterError):
    """An interpreter left the shared model or the process changed (a hook, the train/eval mode, the
    default dtype, a weight modified in place). What it changed is put back, and its cell fails."""


class NotDifferentiableError(InterpreterError):
    """A differentiable map was asked of an interpreter that declares itself non-differentiable;
    such an interpreter gets transfer cells only."""


class GradientMaskingError(NotDifferentiableError):
    """An adaptive manipulation found that its penalty has no gradient with respect to the model's
    weights (zero, or not connected to them at all) on each of its first optimizer steps: the maps
    do not depend on the weights through autograd (a ``.detach()``, ``torch.no_grad``, a numpy
    round-trip, a degenerate target layer). The interpreter is then not attackable adaptively: like
    a declared non-differentiable one, it gets transfer cells only and is never ranked as robust.
    ``norms`` holds the measured gradient norms (all 0), one per optimizer step checked."""

    def __init__(self, message: str, norms: list[float] | tuple[float, ...] = ()) -> None:
        super().__init__(message)
        self.norms = [float(n) for n in norms]


class UnsupportedModelError(RBIError, TypeError):
    """An interpreter met a layer or operation it has no rule for (e.g. LRP on an unknown op)."""


class MissingResourceError(RBIError, FileNotFoundError):
    """A weights file, a dataset folder or a cached artefact is missing; the message names the
    path and how to provide it."""
