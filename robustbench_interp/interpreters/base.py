"""The interpreter interface (SPEC section 2) and the checks the benchmark applies to every map.

An interpreter maps ``(model, x[B,3,H,W], target[B]) -> h[B,h,w]``: one relevance value per spatial
position, higher = more important for the target class, channels already reduced. Input-level
interpreters return maps at the input resolution; layer-level ones (``layer_level = True``) on the
grid of the model's target layer. Interpreters return raw maps; the benchmark normalises them
(:func:`robustbench_interp.metrics.heatmaps.normalize`).

Stochastic interpreters (SPEC section 8). A map that depends on random noise (SmoothGrad) must
take its noise from a seed the benchmark can set, never from torch's global generator: the
interpreter sets ``stochastic = True``, and :meth:`Interpreter.reseeded` returns a copy whose noise
comes from a given seed. The manipulation calls it with a fresh seed at every optimizer step and
scoring with a seed no step used (:mod:`robustbench_interp.interpreters.noise`). A method that
declares an integer hyper-parameter ``seed`` and draws all its noise from a generator seeded by it
needs nothing more: the default :meth:`~Interpreter.reseeded` builds the interpreter again with the
new ``seed``. Any other method overrides :meth:`~Interpreter.reseeded`.
"""

from __future__ import annotations

import abc
from dataclasses import fields
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from robustbench_interp.errors import ConfigError, InterpreterError, RBIError
from robustbench_interp.interpreters.autograd import capture_output
from robustbench_interp.interpreters.hyperparams import HyperParams

#: ``capture_output`` lives in :mod:`robustbench_interp.interpreters.autograd`; it stays importable
#: from here for code written before it moved.
__all__ = ["Interpreter", "capture_output", "check_inputs", "check_map", "require_layer"]


class Interpreter(abc.ABC):
    """Base class of every interpreter.

    Subclasses set the class attributes and implement :meth:`explain`. Constructor keyword
    arguments are the method's hyper-parameters (e.g. ``n_samples`` for SmoothGrad); they are
    stored in :attr:`params` so that a benchmark cell can record them.

    A subclass declares its hyper-parameters by naming a frozen dataclass in :attr:`hyperparams`
    (see :mod:`robustbench_interp.interpreters.hyperparams`): the constructor then refuses an
    unknown keyword and a bad value with a :class:`ConfigError`, and :attr:`params` holds every
    declared value, defaults included. Every built-in does. A subclass that declares none
    (``hyperparams = None``) keeps the old behaviour: :attr:`params` is whatever keywords it got.
    """

    #: Registered name; set by :func:`register_interpreter` when left empty.
    name: ClassVar[str] = ""
    #: True when the map lives on the target layer's grid rather than the input's.
    layer_level: ClassVar[bool] = False
    #: True when ``explain(..., create_graph=True)`` is differentiable w.r.t. the model's weights.
    differentiable: ClassVar[bool] = True
    #: The dataclass declaring the accepted hyper-parameters; ``None``: any keyword is accepted.
    hyperparams: ClassVar[type[HyperParams] | None] = None
    #: True when the map depends on random noise; its noise is then set through :meth:`reseeded`.
    stochastic: ClassVar[bool] = False
    #: True when a manipulation step may take its cross-entropy from the logits of the forward pass
    #: that :meth:`explain` makes on the batch itself, instead of a forward pass of its own (one
    #: forward pass fewer). Set it where :meth:`explain` calls the model once on the batch as given
    #: (``model(x)`` or ``model(x.detach())``, not a copy, a chunk or another memory layout), with
    #: autograd on and no hook that changes the pass's values or its gradient. The step then
    #: back-propagates the two terms one after the other (the cross-entropy, then the penalty), so
    #: each weight's gradient is the same sum, in the same order, as with a forward pass of its own:
    #: the same weights to the last bit on a CPU, for a model that uses each weight once per forward
    #: pass (every model of the built-in tracks). ``tests/test_shared_forward.py`` checks the
    #: built-ins that set it; the conformance suite checks a plug-in that does, and refuses one
    #: whose steps find nothing to share.
    shares_forward: ClassVar[bool] = False
    #: With :attr:`shares_forward`: the step back-propagates the two terms together, in one backward
    #: pass through the shared forward pass (its backward fewer as well). Set it only where the map's
    #: gradient passes nothing back through that forward pass's activations: an input or layer
    #: gradient of a piecewise-linear model (convolutions, linear layers, BatchNorm in eval mode,
    #: ReLU, max- and average-pooling: every model of the built-in tracks), whose ReLU masks and
    #: max-pool indices pass none. A map that reads the activations (Grad-CAM weighs the target
    #: layer's) would have the two terms' gradients summed inside the forward pass, in another order
    #: than apart: other weights after the first step. On a model with smooth activations (SiLU,
    #: GELU) an input gradient reads them too. Declared without :attr:`shares_forward` it would have
    #: no effect, and the conformance suite refuses it.
    shares_backward: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        declared = type(self).hyperparams
        if declared is None:
            self.params: dict[str, Any] = dict(params)
        else:
            self.params = declared.build(self.name or type(self).__name__, params).as_dict()

    @abc.abstractmethod
    def explain(
        self,
        model: nn.Module,
        x: Tensor,
        target: Tensor,
        *,
        layer: nn.Module | None = None,
        create_graph: bool = False,
    ) -> Tensor:
        """Return the raw heatmap ``h[B, h, w]`` of ``model`` for ``x[B,3,H,W]`` and classes ``target[B]``.

        ``layer`` is the model's target layer (used by layer-level methods). With
        ``create_graph=True`` the map is differentiable with respect to the model's parameters.
        """

    def reseeded(self, seed: int) -> Interpreter:
        """This interpreter with its noise drawn from ``seed``; ``self`` is left unchanged.

        A deterministic interpreter (``stochastic = False``) returns ``self``. A stochastic one, by
        default, is built again from its hyper-parameters with ``seed`` replaced (an instance's own
        ``name`` is kept); it needs a ``seed`` hyper-parameter for that, or it overrides this method.
        """
        if not self.stochastic:
            return self
        declared = type(self).hyperparams
        if declared is not None and "seed" not in {f.name for f in fields(declared)}:
            raise InterpreterError(
                f"interpreter {self.name or type(self).__name__!r} declares stochastic = True but has no 'seed' "
                "hyper-parameter: declare `seed: int = 0` in its hyperparams and draw its noise from it, or "
                "override reseeded(seed)"
            )
        try:
            clone = type(self)(**{**self.params, "seed": int(seed)})
        except RBIError:
            raise
        except Exception as exc:  # a plug-in's constructor does not take its own params back
            raise InterpreterError(
                f"interpreter {self.name or type(self).__name__!r} could not be built again with seed={seed} "
                f"({type(exc).__name__}: {exc}); its constructor must accept its params as keywords, or it "
                "overrides reseeded(seed)"
            ) from exc
        if "name" in vars(self):
            clone.name = self.name
        return clone

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{type(self).__name__}({args})"


def require_layer(interpreter: Interpreter, layer: nn.Module | None) -> nn.Module:
    """Return ``layer`` or raise a clear error when a layer-level method was given none."""
    if layer is None:
        raise ConfigError(
            f"interpreter {interpreter.name!r} is layer-level and needs the model's target layer: "
            "pass layer=<module> (load_model(...) returns it as .target_layer)."
        )
    return layer


def check_inputs(x: Tensor, target: Tensor | int) -> tuple[Tensor, Tensor]:
    """Validate ``x[B,3,H,W]`` and ``target`` (an int or ``[B]`` tensor); return both as tensors."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ConfigError(f"x must be a [B, C, H, W] tensor, got {shape}")
    if isinstance(target, int):
        target = torch.full((x.shape[0],), target, dtype=torch.long, device=x.device)
    if not isinstance(target, Tensor) or target.shape != (x.shape[0],):
        shape = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
        raise ConfigError(f"target must be an int or a [B]={x.shape[0]} tensor of classes, got {shape}")
    return x, target.to(device=x.device, dtype=torch.long)


def check_map(name: str, h: object, batch: int, grid: tuple[int, int] | None = None) -> Tensor:
    """Check a returned map: a finite floating ``[batch, h, w]`` tensor (on ``grid`` if given).

    Raises :class:`InterpreterError` naming the interpreter, what was wrong and what was expected.
    """
    if not isinstance(h, Tensor):
        raise InterpreterError(
            f"interpreter {name!r} returned {type(h).__name__}; explain() must return a Tensor[B, h, w]"
        )
    if h.dim() != 3 or h.shape[0] != batch:
        raise InterpreterError(
            f"interpreter {name!r} returned a map of shape {tuple(h.shape)}; expected [B={batch}, h, w] "
            "(reduce channels, keep the batch)"
        )
    if grid is not None and tuple(h.shape[1:]) != tuple(grid):
        raise InterpreterError(
            f"interpreter {name!r} returned a {tuple(h.shape[1:])} map; expected {tuple(grid)} "
            "(input resolution for input-level methods, the target layer's grid for layer-level ones)"
        )
    if not h.is_floating_point():
        raise InterpreterError(f"interpreter {name!r} returned dtype {h.dtype}; expected a floating dtype")
    if not torch.isfinite(h).all():
        bad = int((~torch.isfinite(h)).sum())
        raise InterpreterError(f"interpreter {name!r} returned a map with {bad} NaN or infinite values")
    return h
