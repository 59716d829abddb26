"""The one fine-tuning loop of every manipulation attack (Heo et al. 2019, eq. 2; SPEC section 3).

    L(w) = CE(D; w) + lambda * L_F(D_fool; w, w0)

minimised with Adam, the model in eval mode (BatchNorm statistics frozen), all parameters trainable,
the penalty computed *through* the attacking interpreter (``create_graph=True``). The learning rate
is constant, as in the paper, or decays linearly to 0 over the last ``params.cooldown`` of the steps. With
``params.adv`` the cross-entropy term is taken on "free" adversarial examples (Shafahi et al. 2019)
as the manipulation runs, so an adversarially trained base model stays adversarially trained.

Honest scoring (SPEC section 8) asks three more things of the loop:

- **Fresh noise.** A stochastic interpreter (SmoothGrad) gets the noise seed
  ``attack_noise_seed(seed, t)`` at optimizer step ``t`` (replays counted), a seed scoring never uses
  (:mod:`robustbench_interp.interpreters.noise`): the attacker optimises the expectation over the
  noise, not ten fixed patterns. Within a step the original model's reference maps use the same
  noise as the manipulated model's (common random numbers).
- **Gradient masking detected.** On each of the first ``MASKING_CHECK_STEPS`` optimizer steps the
  global L2 norm of ``d penalty / d weights`` is measured on its own (before the step's backward; a
  penalty not connected to the weights counts as 0) and kept in
  :attr:`Manipulation.penalty_grad_norms` (every step of a shorter run). Several steps, because Center-mass's penalty has a zero
  subgradient at ``w == w0``. When every one of them is exactly 0, the penalty cannot move the
  weights and the loop stops with a :class:`GradientMaskingError`: the interpreter is scored by
  transfer only, never ranked as robust. A norm that is not finite is no masking but a diverging
  manipulation, and fails the cell like a non-finite loss.
- **Control.** With ``lambda = 0`` the penalty is never computed (no interpreter call; the
  interpreter may be None): the control is plain fine-tuning with the same schedule, data order and
  seed as the manipulations it controls.

The attacker (SPEC section 9) asks two more: a run can be advanced in segments
(:class:`ManipulationRun`; :func:`manipulate` runs one to the end), and ``params.surrogate`` names a
transform of the maps that the penalty alone sees (:mod:`robustbench_interp.attacks.surrogates`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from robustbench_interp.attacks.base import Attack
from robustbench_interp.attacks.surrogates import get_surrogate
from robustbench_interp.config import AttackParams
from robustbench_interp.errors import (
    AttackError,
    ConfigError,
    GradientMaskingError,
    InterpreterError,
    NotDifferentiableError,
    RBIError,
)
from robustbench_interp.interpreters.autograd import capture_logits, shared_logits
from robustbench_interp.interpreters.base import Interpreter, capture_output, check_map
from robustbench_interp.interpreters.isolation import isolated
from robustbench_interp.interpreters.noise import attack_noise_seed
from robustbench_interp.models.adversarial import FreePerturbation

#: Called after every step with (step, total_steps, losses); used for progress bars.
ProgressFn = Callable[[int, int, dict[str, float | None]], None]

#: The first optimizer steps on which the penalty's gradient w.r.t. the weights is measured; all of
#: them exactly 0 is gradient masking (:class:`GradientMaskingError`).
MASKING_CHECK_STEPS = 5


@dataclass
class Manipulation:
    """The outcome of one manipulation: the fine-tuned model, its loss history (``penalty`` is None
    in a control run, which never computes it), and the global L2 norm of the penalty's gradient
    w.r.t. the weights on each of the first :data:`MASKING_CHECK_STEPS` optimizer steps (empty in a
    control run)."""

    model: nn.Module
    history: list[dict[str, float | None]] = field(default_factory=list)
    seconds: float = 0.0
    penalty_grad_norms: list[float] = field(default_factory=list)


def _cycle(loader: DataLoader) -> Iterator:
    while True:
        yield from loader


def _loader(dataset: Dataset, batch_size: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator)


def explain_checked(
    interpreter: Interpreter,
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    layer: nn.Module | None,
    *,
    create_graph: bool,
    grid: tuple[int, int] | None = None,
) -> Tensor:
    """Run ``interpreter`` and check its map (shape, dtype, finiteness, and the ``grid`` when given:
    see :func:`expected_grid`); errors name the interpreter."""
    try:
        with isolated(interpreter.name, model):
            h = interpreter.explain(model, x, target, layer=layer, create_graph=create_graph)
    except InterpreterError:
        raise
    except Exception as exc:  # a plug-in's own failure becomes the cell's recorded reason
        raise InterpreterError(f"interpreter {interpreter.name!r} raised {type(exc).__name__}: {exc}") from exc
    return check_map(interpreter.name, h, x.shape[0], grid)


def expected_grid(interpreter: Interpreter, model: nn.Module, layer: nn.Module | None, x: Tensor) -> tuple[int, int]:
    """The grid a map must have: the input's for input-level interpreters, the target layer's
    output grid for layer-level ones (found with one forward pass of one image)."""
    if not interpreter.layer_level or layer is None:
        return (int(x.shape[-2]), int(x.shape[-1]))
    with capture_output(layer) as outputs, torch.no_grad():
        model(x[:1])
    return (int(outputs[0].shape[-2]), int(outputs[0].shape[-1]))


class ReferenceCache:
    """The original model's maps, computed once for the runs of one search.

    The configurations of a search (:mod:`robustbench_interp.attacks.attacker`) share the seed, so
    they see the same minibatches in the same order, with the same noise seed at each optimizer
    step; the original model's maps of a step (Top-k, Center-mass and Active compare with them) are
    therefore the same for each of them, and are computed once. An entry is keyed by the step's
    noise seed, the batch's shape and checksums of its images and labels, so a run that saw other
    data computes its own. Entries are kept up to ``max_bytes`` (then computed as usual)."""

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes, self.bytes, self.hits = int(max_bytes), 0, 0
        self._maps: dict[tuple[Any, ...], tuple[Tensor, ...]] = {}

    def get(self, key: tuple[Any, ...], compute: Callable[[], tuple[Tensor, ...]]) -> tuple[Tensor, ...]:
        """The maps of ``key``, computed by ``compute`` the first time (and kept while there is room)."""
        found = self._maps.get(key)
        if found is not None:
            self.hits += 1
            return found
        maps = compute()
        size = sum(m.numel() * m.element_size() for m in maps)
        if self.bytes + size <= self.max_bytes:
            self._maps[key], self.bytes = maps, self.bytes + size
        return maps


class _Penalty:
    """The penalty L_F of one attack, with the original model's maps as the frozen reference."""

    def __init__(
        self,
        attack: Attack,
        interpreter: Interpreter,
        model0: nn.Module,
        layer0: nn.Module | None,
        attack_params: Any,
        classes: tuple[int, int] | None,
        surrogate: Callable[[Tensor], Tensor] | None = None,
        cache: ReferenceCache | None = None,
    ) -> None:
        self.attack, self.interpreter, self.attack_params, self.classes = attack, interpreter, attack_params, classes
        self.surrogate, self.cache = surrogate, cache
        self.model0, self.layer0 = model0, layer0
        self.grid: tuple[int, int] | None = None

    def _maps(self, interpreter: Interpreter, model: nn.Module, layer: nn.Module | None, x: Tensor, target: Tensor,
              *, graph: bool) -> Tensor:
        h = explain_checked(interpreter, model, x, target, layer, create_graph=graph, grid=self.grid)
        return h if graph else h.detach()

    def __call__(self, model: nn.Module, layer: nn.Module | None, x: Tensor, y: Tensor, noise_seed: int) -> Tensor:
        """The penalty on batch ``x``, every map of it (manipulated and reference) with the noise of
        ``noise_seed`` when the interpreter is stochastic."""
        if self.grid is None:
            self.grid = expected_grid(self.interpreter, self.model0, self.layer0, x)
        interpreter = self.interpreter.reseeded(noise_seed)
        targets = self.attack.targets(y, self.classes)
        h = tuple(self._maps(interpreter, model, layer, x, t, graph=True) for t in targets)
        h0 = None
        if self.attack.uses_reference:
            def reference() -> tuple[Tensor, ...]:
                return tuple(self._maps(interpreter, self.model0, self.layer0, x, t, graph=False) for t in targets)

            if self.cache is None:
                h0 = reference()
            else:
                key = (noise_seed, tuple(x.shape), float(x.detach().double().sum()),
                       tuple(int(t.sum()) for t in targets))
                h0 = self.cache.get(key, reference)
        if self.surrogate is not None:
            h = tuple(self.surrogate(m) for m in h)
            h0 = None if h0 is None else tuple(self.surrogate(m) for m in h0)
        try:
            pen = self.attack.penalty_of(h, h0, self.attack_params)
        except RBIError:
            raise
        except Exception as exc:  # a plug-in attack's own failure becomes the cell's reason
            raise AttackError(f"the penalty of attack {self.attack.name!r} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(pen, Tensor) or pen.numel() != 1:
            raise AttackError(f"the penalty of attack {self.attack.name!r} must be a scalar tensor, got "
                              f"{type(pen).__name__}{tuple(pen.shape) if isinstance(pen, Tensor) else ''}")
        return pen.reshape(())


def _name(interpreter: Interpreter | None) -> str:
    return repr(interpreter.name) if interpreter is not None else "(none: a control run)"


def _backward(terms: Sequence[Tensor], shared: bool, interpreter: Interpreter | None, attack: Attack) -> None:
    """Back-propagate each of ``terms`` in turn, keeping the graph for the next where the terms
    ``shared`` a forward pass (apart, each graph is freed as it goes); a failure there (in a plug-in's
    autograd function) fails the cell, naming both."""
    terms = [t for t in terms if t.requires_grad] or list(terms)  # (none: backward() says why)
    try:
        for i, term in enumerate(terms):
            term.backward(retain_graph=shared and i < len(terms) - 1)
    except Exception as exc:  # a plug-in's backward pass failed
        raise InterpreterError(
            f"the backward pass through interpreter {_name(interpreter)} and attack {attack.name!r} raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def penalty_grad_norm(pen: Tensor, weights: Sequence[Tensor]) -> float:
    """The global L2 norm of ``d pen / d weights`` (in float64, so that a tiny gradient does not
    underflow to a false 0), the graph kept for the step's backward; 0 when ``pen`` is not connected
    to the weights. NaN or inf when the gradient is not finite."""
    if not pen.requires_grad:
        return 0.0
    grads = torch.autograd.grad(pen, list(weights), retain_graph=True, allow_unused=True)
    norms = [torch.linalg.vector_norm(g.detach(), dtype=torch.float64) for g in grads if g is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


class _MaskingCheck:
    """Gradient masking detection (module doc): the penalty's gradient norm on the first ``window``
    optimizer steps, and a :class:`GradientMaskingError` when every one of them is 0."""

    def __init__(self, weights: Sequence[Tensor], window: int, interpreter: Interpreter, attack: Attack) -> None:
        self.weights, self.window, self.interpreter, self.attack = list(weights), window, interpreter, attack
        self.norms: list[float] = []

    def __call__(self, pen: Tensor, t: int) -> None:
        if t >= self.window:
            return
        try:
            norm = penalty_grad_norm(pen, self.weights)
        except Exception as exc:  # a plug-in's backward pass failed
            raise InterpreterError(
                f"the backward pass through interpreter {_name(self.interpreter)} and attack {self.attack.name!r} "
                f"raised {type(exc).__name__}: {exc}"
            ) from exc
        if not math.isfinite(norm):
            raise InterpreterError(
                f"the gradient of the penalty of attack {self.attack.name!r} through interpreter "
                f"{_name(self.interpreter)} w.r.t. the weights is {norm} at optimizer step {t}; lower lr or lambda"
            )
        self.norms.append(norm)
        if len(self.norms) == self.window and not any(self.norms):
            raise GradientMaskingError(
                f"the penalty of attack {self.attack.name!r} through interpreter {_name(self.interpreter)} has no "
                f"gradient w.r.t. the model's weights on any of the first {self.window} optimizer steps: its maps "
                "do not depend on the weights through autograd (a .detach(), torch.no_grad, a numpy round-trip, "
                "or a degenerate target layer), so the cell cannot be attacked adaptively and is ranked by "
                "transfer only",
                norms=self.norms,
            )


def lr_factor(step: int, total: int, cooldown: float) -> float:
    """The learning-rate factor of ``step`` (0-based) of ``total``: 1, then a linear decay to 0 over
    the last ``cooldown`` fraction of the steps (the last step still moves, by 1 / its length)."""
    tail = cooldown * total
    return 1.0 if tail <= 0 else min(1.0, (total - step) / tail)


def corresponding_module(model0: nn.Module, model: nn.Module, layer: nn.Module | None) -> nn.Module | None:
    """The module of ``model`` that sits where ``layer`` sits in ``model0`` (e.g. after a deepcopy)."""
    if layer is None or model is model0:
        return layer
    for (_, module0), (_, module) in zip(model0.named_modules(), model.named_modules()):
        if module0 is layer:
            return module
    raise InterpreterError(f"the target layer {type(layer).__name__} is not a module of the model")


class ManipulationRun:
    """One manipulation in progress, resumable: :meth:`advance` runs its steps in segments, so the
    attacker (:mod:`robustbench_interp.attacks.attacker`) can stop a configuration at a rung,
    measure it and carry on with it later. The learning-rate schedule (its cooldown) is that of the
    run's full length ``params.steps``, so a run advanced in segments follows exactly the trajectory
    of one run to the end: stopping at a rung changes nothing about the later steps. Arguments as
    :func:`manipulate`; ``reference_cache`` (a :class:`ReferenceCache`) is shared by the runs of one
    search, so that the original model's maps of a step are computed once for all of them."""

    def __init__(
        self,
        model0: nn.Module,
        layer0: nn.Module | None,
        interpreter: Interpreter | None,
        attack: Attack | str,
        params: AttackParams,
        train_data: Dataset,
        fool_data: Dataset | None = None,
        *,
        attack_params: Any = None,
        classes: tuple[int, int] | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        progress: ProgressFn | None = None,
        reference_cache: ReferenceCache | None = None,
    ) -> None:
        from robustbench_interp.attacks.registry import get_attack

        attack = get_attack(attack)
        control = params.lam == 0
        if not isinstance(attack_params, attack.Params):
            attack_params = attack.make_params(attack_params)
        adaptive = None if control else _check_adaptive(interpreter, attack, fool_data, classes)
        surrogate = get_surrogate(params.surrogate)
        torch.manual_seed(seed)
        self.device = device = torch.device(device)
        self.params, self.interpreter, self.attack, self.seed, self.progress = params, interpreter, attack, seed, progress
        model0 = model0.to(device).eval()
        self.model = model = copy.deepcopy(model0).eval()
        self.layer = corresponding_module(model0, model, layer0)
        for p in model.parameters():
            p.requires_grad_(True)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
        self.batches = _cycle(_loader(train_data, params.batch_size, seed))
        self.fool_batches = (_cycle(_loader(fool_data, params.batch_size, seed + 1))
                             if fool_data is not None and not control else None)
        self.perturbation = FreePerturbation(params.eps) if params.adv else None
        self.replays = params.replays if params.adv else 1
        self.total = params.steps or params.epochs * max(1, len(train_data) // params.batch_size)  # type: ignore[arg-type]
        self.penalty: _Penalty | None = None
        self.masking: _MaskingCheck | None = None
        if adaptive is not None:
            self.penalty = _Penalty(attack, adaptive, model0, layer0, attack_params, classes, surrogate,
                                    reference_cache)
            self.masking = _MaskingCheck(list(model.parameters()), min(MASKING_CHECK_STEPS, self.total * self.replays),
                                         adaptive, attack)
        total, cooldown = self.total, params.cooldown
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: lr_factor(step, total, cooldown))
        self.history: list[dict[str, float | None]] = []
        self.seconds = 0.0
        self.step = 0  # minibatches so far
        self.t = 0  # optimizer steps so far, replays counted: the index of the noise seed and of the masking check
        self.shared_steps = 0  # optimizer steps whose cross-entropy took the interpreter's logits

    @property
    def done(self) -> bool:
        return self.step >= self.total

    def advance(self, until: int | None = None) -> ManipulationRun:
        """Run the minibatches up to ``until`` (the full length when None); returns the run."""
        stop = self.total if until is None else min(int(until), self.total)
        params, model, device = self.params, self.model, self.device
        start = time.perf_counter()
        model.train(False)
        while self.step < stop:
            step = self.step
            x, y = (t_.to(device) for t_ in next(self.batches)[:2])
            if self.fool_batches is not None:  # two-class attacks: composites; the targets are the two classes
                xf = next(self.fool_batches)
                xf = (xf[0] if isinstance(xf, (list, tuple)) else xf).to(device)
                yf = torch.empty(xf.shape[0], dtype=torch.long, device=device)
            else:
                xf, yf = x, y
            for _ in range(self.replays):
                x_ce = self.perturbation.perturb(x) if self.perturbation is not None else x
                ce, pen, how = self._losses(x_ce, y, xf, yf)
                weighted = None if pen is None else params.lam * pen
                loss = ce if weighted is None else ce + weighted
                if not math.isfinite(float(loss.detach())):
                    raise InterpreterError(
                        f"the manipulation loss became {float(loss)} at step {step} (CE {float(ce):.4g}, "
                        f"penalty {_value(pen)}); lower lr={params.lr} or lambda={params.lam}"
                    )
                if self.masking is not None and pen is not None:
                    self.masking(pen, self.t)
                self.optimizer.zero_grad(set_to_none=True)
                _backward([loss] if how == "joint" else [ce, weighted], how == "shared", self.interpreter, self.attack)
                self.optimizer.step()
                self.t += 1
                if self.perturbation is not None:
                    self.perturbation.step()
            record = {"step": float(step), "ce": float(ce.detach()), "penalty": _value(pen),
                      "loss": float(loss.detach()), "lr": self.optimizer.param_groups[0]["lr"]}
            self.scheduler.step()
            self.history.append(record)
            self.step += 1
            if self.progress is not None:
                self.progress(self.step, self.total, record)
        self.seconds += time.perf_counter() - start
        model.eval()
        return self

    def _losses(self, x_ce: Tensor, y: Tensor, xf: Tensor, yf: Tensor) -> tuple[Tensor, Tensor | None, str]:
        """The step's cross-entropy on ``x_ce``, its penalty on ``xf`` (None in a control run), and
        how the two are back-propagated: ``"joint"`` (together), ``"shared"`` (the cross-entropy
        first, then the penalty, through the forward pass they share) or ``"apart"`` (the same
        order, through forward passes of their own).

        Where the interpreter allows (:attr:`Interpreter.shares_forward`) and both terms see the
        same batch, the cross-entropy takes the logits of the forward pass the interpreter made on
        it: one forward pass fewer. Without it the cross-entropy's forward pass comes first and the
        backward is joint, so autograd reaches that pass's graph last and adds its gradient last to
        each weight's sum; back-propagated one after the other, in that order, the sums are the
        same to the last bit (on a CPU, for a model that uses each weight once per forward pass).
        Together (:attr:`Interpreter.shares_backward`), the backward through the forward pass is
        made once, which leaves the weights as they are only for the maps that declare it. A step
        in which the interpreter made no such forward pass, or more than one, makes its own,
        after the penalty's, and back-propagates apart."""
        model, interp = self.model, self.interpreter
        if self.penalty is None:
            return F.cross_entropy(model(x_ce), y), None, "joint"
        noise_seed = attack_noise_seed(self.seed, self.t)
        if not (interp is not None and interp.shares_forward and x_ce is xf):
            ce = F.cross_entropy(model(x_ce), y)
            return ce, self.penalty(model, self.layer, xf, yf, noise_seed), "joint"
        with capture_logits(model, x_ce) as outputs:
            pen = self.penalty(model, self.layer, xf, yf, noise_seed)
        logits = shared_logits(outputs)
        if logits is None:
            return F.cross_entropy(model(x_ce), y), pen, "apart"
        self.shared_steps += 1
        return F.cross_entropy(logits, y), pen, "joint" if interp.shares_backward else "shared"

    def result(self) -> Manipulation:
        """The manipulation so far (the model itself, not a copy: it moves on if the run advances)."""
        return Manipulation(model=self.model, history=self.history, seconds=self.seconds,
                            penalty_grad_norms=self.masking.norms if self.masking is not None else [])


def manipulate(
    model0: nn.Module,
    layer0: nn.Module | None,
    interpreter: Interpreter | None,
    attack: Attack | str,
    params: AttackParams,
    train_data: Dataset,
    fool_data: Dataset | None = None,
    *,
    attack_params: Any = None,
    classes: tuple[int, int] | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: ProgressFn | None = None,
) -> Manipulation:
    """Fine-tune a copy of ``model0`` so that ``interpreter``'s maps are fooled by ``attack``.

    ``train_data`` yields ``(x, y)`` for the cross-entropy term; ``fool_data`` yields images (or
    ``(x, ...)`` tuples) for Active fooling's penalty (passive attacks use the training batch).
    ``attack_params`` are the attack's own hyper-parameters (its ``Params`` or a dict; defaults when
    None). ``model0`` is not modified. The returned model is in eval mode on ``device``.

    With ``params.lam == 0`` this is the control run: the penalty is never computed, ``interpreter``
    is not called (it may be None) and ``fool_data`` is not needed. Otherwise a penalty without a
    gradient w.r.t. the weights raises :class:`GradientMaskingError` (see the module doc).
    ``params.surrogate`` names the map transform the penalty sees (:mod:`~robustbench_interp.attacks.surrogates`).
    """
    return ManipulationRun(model0, layer0, interpreter, attack, params, train_data, fool_data,
                           attack_params=attack_params, classes=classes, seed=seed, device=device,
                           progress=progress).advance().result()


def _check_adaptive(interpreter: Interpreter | None, attack: Attack, fool_data: Dataset | None,
                    classes: tuple[int, int] | None) -> Interpreter:
    """Refuse an adaptive manipulation (``lambda > 0``) that cannot run, before any step; returns its interpreter."""
    if interpreter is None:
        raise ConfigError(f"the {attack.name} attack with lambda > 0 needs an interpreter (None is for a "
                          "control run, lambda = 0)")
    if not interpreter.differentiable:
        raise NotDifferentiableError(
            f"interpreter {interpreter.name!r} is not differentiable: it cannot be attacked adaptively "
            "and is scored by transfer only"
        )
    if attack.two_classes and (fool_data is None or classes is None):
        raise ConfigError(f"the {attack.name} attack needs fool_data (the composites) and classes=(c1, c2)")
    return interpreter


def _value(pen: Tensor | None) -> float | None:
    return None if pen is None else float(pen.detach())


__all__ = ["MASKING_CHECK_STEPS", "Manipulation", "ManipulationRun", "corresponding_module", "expected_grid", "explain_checked",
           "lr_factor", "manipulate", "penalty_grad_norm"]
