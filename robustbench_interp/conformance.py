"""Conformance checks of a submitted interpreter, one function per property.

Each check takes the interpreter, a :class:`~robustbench_interp.models.base.LoadedModel` and a
small batch ``(x, y)`` and raises :class:`ConformanceError` with a readable message when the
property does not hold. ``pytest suites/`` runs each as its own test (the shape of scikit-learn's
``parametrize_with_checks``), so a submitter sees exactly which property failed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from robustbench_interp.errors import InterpreterError, IsolationError, RBIError
from robustbench_interp.interpreters.autograd import capture_output
from robustbench_interp.interpreters.base import Interpreter, check_map
from robustbench_interp.interpreters.isolation import isolated
from robustbench_interp.metrics.heatmaps import normalize
from robustbench_interp.metrics.similarity import spearman
from robustbench_interp.models.base import LoadedModel

#: Maps of the same input must agree to this (relative to the map's largest magnitude).
TOLERANCE = 1e-4
#: Randomisation check: mean Spearman correlation between the maps of the trained model and of
#: the model with its top layers re-initialised must stay below this (Adebayo et al. 2018).
RANDOMISATION_MAX_SPEARMAN = 0.9


class ConformanceError(RBIError, AssertionError):
    """A submitted interpreter does not have a property the benchmark relies on."""


class NotCheckable(RBIError):
    """A check cannot be judged because a more basic one fails (the map is not a finite tensor); the
    suites skip it with this reason, so the submitter sees the one real failure, not its echoes."""


#: The checks that judge the map's form; every other check needs a finite floating tensor to judge.
_FORM_CHECKS = ("shape_and_dtype", "finite")


def _explain(interp: Interpreter, lm: LoadedModel, x: Tensor, y: Tensor, *, model: nn.Module | None = None,
             layer: nn.Module | None = None, create_graph: bool = False) -> Tensor:
    model = lm.model if model is None else model
    layer = lm.target_layer if layer is None else layer
    try:
        with isolated(interp.name, model):
            h = interp.explain(model, x, y, layer=layer, create_graph=create_graph)
    except IsolationError as exc:
        raise ConformanceError(str(exc)) from exc
    except InterpreterError:
        raise
    except Exception as exc:
        raise ConformanceError(f"{interp.name!r} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(h, Tensor):
        raise ConformanceError(f"{interp.name!r} returned a {type(h).__module__}.{type(h).__name__}; explain() must "
                               "return a torch.Tensor [B, h, w] (torch.as_tensor(...) converts a numpy array)")
    return h


def prerequisite(interp: Interpreter, lm: LoadedModel, x: Tensor, y: Tensor, check: str) -> None:
    """Raise :class:`NotCheckable` when ``check`` cannot be judged because the map is not a finite
    floating tensor (the shape_and_dtype and finite checks say what is wrong)."""
    if check in _FORM_CHECKS:
        return
    try:
        h = _explain(interp, lm, x, y)
    except ConformanceError as exc:
        raise NotCheckable(f"not checkable: {exc}") from None
    if not h.is_floating_point() or not bool(torch.isfinite(h).all()):
        raise NotCheckable(f"not checkable: {interp.name!r} returns a map that is not finite floating point "
                           "(see its shape_and_dtype and finite checks)")


def _expected_grid(interp: Interpreter, lm: LoadedModel, x: Tensor) -> tuple[int, int]:
    if not interp.layer_level:
        return tuple(x.shape[-2:])  # type: ignore[return-value]
    with capture_output(lm.target_layer) as outputs, torch.no_grad():
        lm.model(x[:1])
    return tuple(outputs[0].shape[-2:])  # type: ignore[return-value]


def _close(a: Tensor, b: Tensor) -> bool:
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-12)
    return bool(((a - b).abs() <= TOLERANCE * scale).all())


def check_shape_and_dtype(interp: Interpreter, lm: LoadedModel, x: Tensor, y: Tensor) -> None:
    """A floating ``[B, h, w]`` map on the input grid (input-level) or the target layer's grid."""
    h = _explain(interp, lm, x, y)
    grid = _expected_grid(interp, lm, x)
    try:
        check_map(interp.name, h, len(x), grid)
    except InterpreterError as exc:
        if "NaN or infinite" not in str(exc):
            raise ConformanceError(str(exc)) from exc


def check_finite(interp: Interpreter, lm: LoadedModel, x: Tensor, y: Tensor) -> None:
    """No NaN or infinite values."""
    h = _explain(interp, lm, x, y)
    if not torch.isfinite(h).all():
        raise ConformanceError(f"{interp.name!r} returned {int((~torch.isfinite(h)).sum())} NaN/inf values")


def check_deterministic(interp: Interpreter, lm: LoadedModel, x: Tensor, y: Tensor) -> None:
    """Two calls on the same input give the same map (seed any randomness from the interpreter's params)."""
    if not _close(_explain(interp, lm, x, y), _explain(interp, lm, x, y)):
        raise ConformanceError(
            f"{interp.name!r} gave different maps for the same input; seed its randomness "
            "(e.g. a torch.Generator from a 'seed' parameter)"
        )


def _batch_dependent(interp: Interpreter, lm: LoadedModel, x: Tensor, y: Tensor, **kw: nn.Module) -> int | None:
    """The first image (of the first three) whose map changes when it is explained alone, or None."""
    h = _explain(interp, lm, x, y, **kw)
    for i in range(min(len(x), 3)):
        if not _close(h[i : i + 1], _explain(interp, lm, x[i : i + 1], y[i : i + 1], **kw)):
            return i
    return None


def _in_float64(lm: LoadedModel) -> tuple[nn.Module, nn.Module]:
    """A float64 copy of the model and its target layer (the same weights, cast)."""
    import copy

    model = copy.deepcopy(lm.model).double()
    name = next(n for n, m in lm.model.named_modules() if m is lm.target_layer)
    return model, model.get_submodule(name)


def check_batch_independence(interp: Interpreter, lm: LoadedModel, x: Tensor, y: Tensor) -> None:
    """Image i's map does not depend on the other images in the batch.

    A convolution may round differently for another batch size, and a rule that divides by small
    pre-activations (LRP's epsilon and z+ rules on a trained DenseNet: 2e-4 of the map's largest
    value) magnifies that beyond the float32 tolerance. A mismatch in float32 is therefore judged
    again on a float64 copy of the model, where rounding is some 1e-12: a map that still changes
    there depends on its batch; one that agrees there only rounds. An interpreter that cannot run
    in float64 is judged on the float32 result."""
    i = _batch_dependent(interp, lm, x, y)
    if i is not None:
        try:
            model, layer = _in_float64(lm)
            again = _batch_dependent(interp, lm, x.double(), y, model=model, layer=layer)
        except ConformanceError:
            again = i  # it does not run in float64: the float32 mismatch stands
        if again is not None:
            raise ConformanceError(
                f"{interp.name!r}: the map of image {again} changes when other images share its batch "
                "(normalise per image, seed noise per image, avoid batch statistics)"
            )


def check_target_dependence(interp: Interpreter, lm: LoadedModel, x: Tensor, y: Tensor) -> None:
    """The map changes with the target class (it explains a class, not the image)."""
    other = (y + 1) % lm.num_classes
    h, h2 = _explain(interp, lm, x, y), _explain(interp, lm, x, other)
    same = sum(_close(h[i], h2[i]) for i in range(len(x)))
    if same == len(x):
        raise ConformanceError(f"{interp.name!r} returned the same map for every target class")


def check_spatial_variation(interp: Interpreter, lm: LoadedModel, x: Tensor, y: Tensor) -> None:
    """The map varies over positions for at least one image of the batch. A map that is constant
    everywhere points at nothing, and no manipulation can move it, so it would score FSR 0 without
    being robust (a gradient with respect to a layer that feeds only a global-average pool and a
    linear head is one such map). A single constant map is allowed: Grad-CAM's is all zero when every
    weighted activation is negative."""
    h = _explain(interp, lm, x, y).detach().flatten(1).double()
    spread = h.amax(1) - h.amin(1)
    scale = h.abs().amax(1).clamp_min(1e-12)
    if bool((spread <= TOLERANCE * scale).all()):
        raise ConformanceError(
            f"{interp.name!r} returned a map that is constant over positions for every image of the batch; "
            "a constant map shows no location and cannot be manipulated, so its FSRs would mean nothing "
            "(a gradient at a layer followed only by global-average pooling and a linear layer is constant: "
            "explain an earlier layer or the input)"
        )


def check_differentiable(interp: Interpreter, lm: LoadedModel, x: Tensor, y: Tensor) -> None:
    """With ``create_graph=True`` the map has a non-zero gradient w.r.t. the model's weights."""
    h = _explain(interp, lm, x, y, create_graph=True)
    params = [p for p in lm.model.parameters() if p.requires_grad]
    if not h.requires_grad:
        raise ConformanceError(
            f"{interp.name!r} declares differentiable=True but its map with create_graph=True has no "
            "graph; build it with torch.autograd.grad(..., create_graph=True) and no .detach(), or set "
            "differentiable = False (the interpreter then gets transfer cells only)"
        )
    grads = torch.autograd.grad(normalize(h).square().sum(), params, allow_unused=True)
    total = sum(float(g.abs().sum()) for g in grads if g is not None)
    if not total > 0:
        raise ConformanceError(f"{interp.name!r}: the map's gradient w.r.t. the model's weights is zero")


def randomised_top(lm: LoadedModel, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """A copy of the model whose layers after the target layer are re-initialised (Adebayo et al.
    2018, cascading randomisation from the top down to the target layer); returns (model, layer)."""
    model = copy.deepcopy(lm.model)
    names = [n for n, _ in lm.model.named_modules()]
    layer_name = next(n for n, m in lm.model.named_modules() if m is lm.target_layer)
    modules = dict(model.named_modules())
    after = names[names.index(layer_name) + 1 :]
    torch.manual_seed(seed)
    touched = 0
    for name in after:
        module = modules[name]
        if hasattr(module, "reset_parameters") and not name.startswith(layer_name + "."):
            module.reset_parameters()
            touched += 1
    if touched == 0:
        raise ConformanceError("the model has no layer with parameters above its target layer to randomise")
    return model.eval(), modules[layer_name]


def check_randomisation(interp: Interpreter, lm: LoadedModel, x: Tensor, y: Tensor) -> None:
    """Model-parameter randomisation sanity check (Adebayo et al. 2018): the map must change when the
    top layers are re-initialised; a map that does not depend on the model is no explanation of it."""
    model, layer = randomised_top(lm)
    h = _explain(interp, lm, x, y)
    hr = _explain(interp, lm, x, y, model=model, layer=layer)
    rho = float(spearman(normalize(h), normalize(hr)).double().mean())
    if rho >= RANDOMISATION_MAX_SPEARMAN:
        raise ConformanceError(
            f"{interp.name!r}: maps barely change when the top layers are re-initialised (mean Spearman "
            f"{rho:.3f} >= {RANDOMISATION_MAX_SPEARMAN}); the interpreter does not explain the model"
        )


#: Optimizer steps of the shared-forward check (each run: shared, and with a forward pass of its own).
SHARED_FORWARD_STEPS = 2


def check_shared_forward(interp: Interpreter, lm: LoadedModel, x: Tensor, y: Tensor) -> None:
    """An interpreter that declares ``shares_forward`` (and ``shares_backward``) leaves a
    manipulation's weights as they are without it, to the last bit: two Location steps with the
    cross-entropy taken from its forward pass end with the weights of two steps that make a forward
    pass of their own. An interpreter that declares neither has nothing to check."""
    if not interp.differentiable:
        return
    if interp.shares_backward and not interp.shares_forward:
        raise ConformanceError(
            f"{interp.name!r} declares shares_backward = True without shares_forward: the backward "
            "pass can be shared only with the forward pass. Set both, or neither"
        )
    if not interp.shares_forward:
        return
    from torch.utils.data import TensorDataset

    from robustbench_interp.attacks.finetune import ManipulationRun
    from robustbench_interp.config import AttackParams

    params = AttackParams(lr=1e-3, lam=1.0, steps=SHARED_FORWARD_STEPS, batch_size=len(x))

    def run(share: bool, joint: bool) -> tuple[dict[str, Tensor], int]:
        copy_ = copy.copy(interp)
        copy_.shares_forward, copy_.shares_backward = share, joint
        manipulation = ManipulationRun(lm.model, lm.target_layer, copy_, "location", params, TensorDataset(x, y), seed=0)
        try:
            manipulation.advance()
        except RBIError as exc:
            raise ConformanceError(f"{interp.name!r}: a manipulation step failed: {exc}") from exc
        return manipulation.result().model.state_dict(), manipulation.shared_steps

    def differing(weights: dict[str, Tensor]) -> list[str]:
        return [name for name in weights if not torch.equal(weights[name], separate[name])]

    separate, _ = run(False, False)
    shared, steps = run(True, interp.shares_backward)
    if steps != SHARED_FORWARD_STEPS:
        raise ConformanceError(
            f"{interp.name!r} declares shares_forward = True, but {SHARED_FORWARD_STEPS - steps} of "
            f"{SHARED_FORWARD_STEPS} steps found no logits to share: its explain must call the model once on the "
            "batch as given (model(x) or model(x.detach()), not a copy, a chunk or another layout), with "
            "autograd on. Do so, or set shares_forward = False"
        )
    changed = differing(shared)
    if not changed:
        return
    worst = max(float((shared[n].double() - separate[n].double()).abs().max()) for n in changed)
    how = (f"changes the weights after {SHARED_FORWARD_STEPS} steps ({len(changed)} tensors, by up to "
           f"{worst:.3g}, first {changed[0]})")
    if interp.shares_backward and not differing(run(True, False)[0]):
        raise ConformanceError(
            f"{interp.name!r} declares shares_backward = True, but back-propagating the cross-entropy "
            f"and the penalty together through its forward pass {how}: its map's gradient flows "
            "back through that forward pass's activations. Set shares_backward = False (the forward "
            "pass can still be shared)"
        )
    raise ConformanceError(
        f"{interp.name!r} declares shares_forward = True, but taking the cross-entropy from its forward "
        f"pass {how}: that pass is not the model's plain forward pass on the batch (a hook changes "
        "its values or gradients, or it runs in another layout), or the model uses a weight more than "
        "once per forward pass. Set shares_forward = False"
    )


CHECKS: dict[str, Callable[[Interpreter, LoadedModel, Tensor, Tensor], None]] = {
    "shape_and_dtype": check_shape_and_dtype,
    "finite": check_finite,
    "deterministic": check_deterministic,
    "batch_independence": check_batch_independence,
    "target_dependence": check_target_dependence,
    "spatial_variation": check_spatial_variation,
    "differentiable": check_differentiable,
    "randomisation": check_randomisation,
    "shared_forward": check_shared_forward,
}

