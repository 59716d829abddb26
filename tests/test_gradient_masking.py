"""Gradient masking is detected, not rewarded (SPEC section 8; attacks/finetune.py): a penalty with no
gradient w.r.t. the weights on each of the first MASKING_CHECK_STEPS optimizer steps stops the
manipulation with a GradientMaskingError (transfer only, never "robust"); the control run
(lambda = 0) never computes the penalty."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from robustbench_interp import Interpreter
from robustbench_interp.attacks.finetune import MASKING_CHECK_STEPS, manipulate
from robustbench_interp.config import AttackParams
from robustbench_interp.errors import GradientMaskingError, InterpreterError, NotDifferentiableError
from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.models import tiny

# 32 px images (a 4x4 target grid): a handful of steps take about a second.
DATA = TensorDataset(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.arange(4) % 10)


def _resnet() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model = tiny.build("resnet").eval()
    return model, model.get_submodule(model.target_layer_name)


def _params(steps: int = 3, lam: float = 1.0) -> AttackParams:
    return AttackParams(lr=1e-3, lam=lam, steps=steps, batch_size=2)


class Masked(Interpreter):
    """Grad-CAM with its map cut off from the weights in one of the usual ways."""

    layer_level = True

    def __init__(self, how: str) -> None:
        super().__init__(how=how)
        self.name = f"gradcam_{how}"
        self.calls = 0

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        self.calls += 1
        gradcam = get_interpreter("gradcam")
        how = self.params["how"]
        if how == "no_grad":
            with torch.no_grad():
                return gradcam.explain(model, x, target, layer=layer, create_graph=False)
        h = gradcam.explain(model, x, target, layer=layer, create_graph=create_graph)
        return h.detach() if how == "detach" else torch.from_numpy(h.detach().numpy().copy())


@pytest.mark.parametrize("how", ["detach", "no_grad", "numpy"])
def test_a_masked_interpreter_is_refused_within_the_check_steps(how):
    model, layer = _resnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    interp = Masked(how)
    with pytest.raises(GradientMaskingError) as info:
        manipulate(model, layer, interp, "location", _params(steps=50), DATA)
    assert interp.calls == MASKING_CHECK_STEPS  # Location: one map per step, then the loop stopped
    assert info.value.norms == [0.0] * MASKING_CHECK_STEPS
    message = str(info.value)
    assert f"attack 'location' through interpreter 'gradcam_{how}' has no gradient" in message
    assert "transfer only" in message
    assert isinstance(info.value, NotDifferentiableError) and isinstance(info.value, InterpreterError)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("attack", ["location", "center_mass"])
def test_gradcam_on_a_random_tiny_model_is_attacked_and_its_penalty_gradients_recorded(attack):
    model, layer = _resnet()
    result = manipulate(model, layer, get_interpreter("gradcam"), attack, _params(steps=MASKING_CHECK_STEPS), DATA)
    norms = result.penalty_grad_norms
    assert len(norms) == MASKING_CHECK_STEPS and all(n >= 0 for n in norms)
    if attack == "center_mass":  # at w == w0 the L1 distance's subgradient is 0; later steps move it
        assert norms[0] == 0.0 and any(n > 0 for n in norms[1:])
    else:
        assert all(n > 0 for n in norms)


def test_a_penalty_gradient_that_is_not_finite_fails_the_cell_but_is_no_masking():
    class Blows(Interpreter):
        name = "blows"

        def explain(self, model, x, target, *, layer=None, create_graph=False):
            w = next(model.parameters())
            h = x.mean(1) + 0 * (w * 0).sum()  # connected to the weights, with a finite value
            return h + 0 * torch.sqrt((w - w.detach()).sum())  # d sqrt / d s at 0 is inf: NaN gradient

    model, layer = _resnet()
    with pytest.raises(InterpreterError, match="w.r.t. the weights is nan at optimizer step 0") as info:
        manipulate(model, layer, Blows(), "location", _params(), DATA)
    assert not isinstance(info.value, GradientMaskingError)


def test_a_declared_non_differentiable_interpreter_is_refused_as_before():
    class Declared(Masked):
        differentiable = False

    interp = Declared("detach")
    model, layer = _resnet()
    with pytest.raises(NotDifferentiableError, match="is not differentiable") as info:
        manipulate(model, layer, interp, "location", _params(), DATA)
    assert type(info.value) is NotDifferentiableError and interp.calls == 0


# ---- the control run (lambda = 0)


def test_the_control_never_calls_the_interpreter_and_is_plain_fine_tuning():
    model, layer = _resnet()
    spy = Masked("detach")
    spy.differentiable = False  # a control needs no interpreter at all, differentiable or not
    control = manipulate(model, layer, spy, "location", _params(lam=0), DATA, seed=5)
    without = manipulate(model, layer, None, "location", _params(lam=0), DATA, seed=5)
    assert spy.calls == 0 and control.penalty_grad_norms == [] and without.penalty_grad_norms == []
    assert [r["penalty"] for r in control.history] == [None] * 3

    # The same weights as Adam on the cross-entropy alone, with the loop's data order (a loader
    # shuffled by a generator seeded with the cell seed) and schedule (constant lr, no cooldown).
    torch.manual_seed(5)
    reference = tiny.build("resnet")
    reference.load_state_dict(model.state_dict())
    reference.eval()
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3)
    loader = DataLoader(DATA, batch_size=2, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(5))
    batches = itertools.chain(loader, loader)  # a second pass reshuffles, as the loop's cycling does
    for _ in range(3):
        x, y = next(batches)
        optimizer.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        optimizer.step()
    for name, value in reference.state_dict().items():
        assert torch.equal(control.model.state_dict()[name], value), name
        assert torch.equal(without.model.state_dict()[name], value), name


def test_the_control_of_a_two_class_attack_needs_no_composites():
    model, layer = _resnet()
    result = manipulate(model, layer, None, "active", _params(lam=0, steps=1), DATA)
    assert len(result.history) == 1 and result.history[0]["penalty"] is None
