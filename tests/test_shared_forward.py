"""The manipulation step's shared forward pass (attacks/finetune.py, Interpreter.shares_forward
and shares_backward).

An interpreter that sets ``shares_forward`` lets the step take its cross-entropy from the logits of
the forward pass its ``explain`` made on the batch: one forward pass fewer. The two terms are then
back-propagated one after the other, so each weight's gradient is the same sum in the same order as
with a forward pass of its own. One that also sets ``shares_backward`` has them back-propagated
together (its backward fewer too), which is allowed only where the map's gradient passes nothing
back through the forward activations. Either way the shared step must give the separate step's
weights to the last bit. Grad-CAM is the counter-example that shows the check can tell them apart:
its map weighs the target layer's activations, so back-propagated together the two terms'
gradients meet inside the forward pass and are summed in another order.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from robustbench_interp.attacks.finetune import ManipulationRun
from robustbench_interp.config import AttackParams
from robustbench_interp.interpreters import Interpreter, get_interpreter, list_interpreters
from robustbench_interp.models.zoo import load_tiny

STEPS = 6  # past the masking check's window (MASKING_CHECK_STEPS = 5), whose steps take an extra gradient
SHARING = [name for name in list_interpreters() if get_interpreter(name).shares_forward]
JOINT = [name for name in SHARING if get_interpreter(name).shares_backward]


def _data(n: int = 24) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, 3, 64, 64, generator=g), torch.randint(0, 10, (n,), generator=g))


def _tiny(arch: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model = load_tiny(arch, False, "random", None, False).eval()
    return model, dict(model.named_modules())[model.target_layer_name]


def _run(model, layer, interp: Interpreter, attack: str, share: bool, joint: bool | None = None, **kw) -> ManipulationRun:
    interp.shares_forward = share  # on the instance: the class's declaration stays as it is
    if joint is not None:
        interp.shares_backward = joint
    params = AttackParams(lr=1e-3, lam=3.0, steps=STEPS, batch_size=8, **kw)
    return ManipulationRun(model, layer, interp, attack, params, _data(), seed=1).advance()


def _max_difference(a: ManipulationRun, b: ManipulationRun) -> float:
    sa, sb = a.result().model.state_dict(), b.result().model.state_dict()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


def _built_in(name: str) -> bool:
    return type(get_interpreter(name)).__module__.startswith("robustbench_interp.")


def test_the_built_ins_that_share_are_the_plain_forward_passes_and_joint_the_piecewise_linear_gradients():
    # (installed plug-ins that declare sharing, as the Grad-CAM++ example does, are checked below too)
    assert [n for n in SHARING if _built_in(n)] == ["gradcam", "gradient_x_input", "simplegrad", "simplegrad_t"]
    assert [n for n in JOINT if _built_in(n)] == ["gradient_x_input", "simplegrad", "simplegrad_t"]


@pytest.mark.parametrize("arch", ["vgg", "resnet", "densenet"])
@pytest.mark.parametrize("name", SHARING)
def test_a_shared_step_gives_the_separate_steps_weights_to_the_bit(arch, name):
    model, layer = _tiny(arch)
    for attack in ("location", "topk"):
        shared = _run(model, layer, get_interpreter(name), attack, True)
        separate = _run(model, layer, get_interpreter(name), attack, False)
        assert shared.shared_steps == STEPS and separate.shared_steps == 0
        assert _max_difference(shared, separate) == 0.0, (arch, name, attack)


@pytest.mark.parametrize("joint", [False, True])
def test_grad_cam_back_propagated_together_would_change_the_weights_so_its_terms_stay_apart(joint):
    model, layer = _tiny("resnet")
    assert get_interpreter("gradcam").shares_forward and not get_interpreter("gradcam").shares_backward
    shared = _run(model, layer, get_interpreter("gradcam"), "topk", True, joint=joint)
    separate = _run(model, layer, get_interpreter("gradcam"), "topk", False)
    assert shared.shared_steps == STEPS
    assert (_max_difference(shared, separate) > 0.0) == joint


class _OnACopy(Interpreter):
    """Declares sharing but runs the model on a copy of the batch: nothing to share."""

    name = "on_a_copy"
    shares_forward = True

    def explain(self, model: nn.Module, x: Tensor, target: Tensor, *, layer=None, create_graph=False) -> Tensor:
        x_in = x.clone().requires_grad_(True)
        score = model(x_in).gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, x_in, create_graph=create_graph)
        return grad.abs().amax(dim=1)


def test_a_step_with_no_forward_pass_on_the_batch_makes_its_own():
    model, layer = _tiny("resnet")
    copy_run = _run(model, layer, _OnACopy(), "location", True)
    assert copy_run.shared_steps == 0
    assert _max_difference(copy_run, _run(model, layer, get_interpreter("simplegrad"), "location", False)) == 0.0


@pytest.mark.parametrize("case", ["adversarial training", "two-class composites"])
def test_steps_whose_terms_see_different_batches_do_not_share(case):
    """The cross-entropy sees adversarial examples, or the penalty composites of two classes: the
    step makes its own forward pass, as a run that never shares does."""
    model, layer = _tiny("resnet")
    if case == "adversarial training":
        attack, kw, extra = "location", {"adv": True, "eps": 8 / 255}, {}
    else:
        composites = TensorDataset(torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
        attack, kw, extra = "active", {}, {"fool_data": composites, "classes": (0, 1)}
    runs = []
    for share in (True, False):
        interp = get_interpreter("simplegrad")
        interp.shares_forward = share
        params = AttackParams(lr=1e-3, lam=3.0, steps=STEPS, batch_size=8, **kw)
        runs.append(ManipulationRun(model, layer, interp, attack, params, _data(), seed=1, **extra).advance())
    assert runs[0].shared_steps == runs[1].shared_steps == 0


def test_the_conformance_check_refuses_a_false_declaration_and_passes_a_true_one():
    from robustbench_interp.conformance import ConformanceError, check_shared_forward
    from robustbench_interp.models.base import LoadedModel

    model, layer = _tiny("resnet")
    lm = LoadedModel(track="tiny", name="resnet", model=model, target_layer=layer, num_classes=10, input_size=(64, 64))
    x, y = _data(8).tensors
    check_shared_forward(get_interpreter("simplegrad"), lm, x, y)
    check_shared_forward(get_interpreter("gradcam"), lm, x, y)
    gradcam = get_interpreter("gradcam")
    gradcam.shares_backward = True
    with pytest.raises(ConformanceError, match="declares shares_backward = True.*Set shares_backward = False"):
        check_shared_forward(gradcam, lm, x, y)
    alone = get_interpreter("simplegrad")
    alone.shares_forward = False
    with pytest.raises(ConformanceError, match="declares shares_backward = True without shares_forward"):
        check_shared_forward(alone, lm, x, y)


class _Guided(Interpreter):
    """Guided backpropagation: declares sharing, but its forward pass puts a hook on every ReLU's
    output that drops negative gradients, so the cross-entropy's gradient through it is not the
    model's."""

    name = "guided"
    shares_forward = True

    def explain(self, model: nn.Module, x: Tensor, target: Tensor, *, layer=None, create_graph=False) -> Tensor:
        def guide(_module, _inputs, output):
            output.register_hook(lambda g: g.clamp(min=0))

        handles = [m.register_forward_hook(guide) for m in model.modules() if isinstance(m, nn.ReLU)]
        try:
            x_in = x.detach().requires_grad_(True)
            score = model(x_in).gather(1, target.view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(score, x_in, create_graph=create_graph)
        finally:
            for handle in handles:
                handle.remove()
        return grad.abs().amax(dim=1)


def test_a_forward_pass_that_is_not_the_models_own_is_refused():
    from robustbench_interp.conformance import ConformanceError, check_shared_forward
    from robustbench_interp.models.base import LoadedModel

    model, layer = _tiny("resnet")
    assert _max_difference(_run(model, layer, _Guided(), "location", True),
                           _run(model, layer, _Guided(), "location", False)) > 0.0
    lm = LoadedModel(track="tiny", name="resnet", model=model, target_layer=layer, num_classes=10, input_size=(64, 64))
    x, y = _data(8).tensors
    with pytest.raises(ConformanceError, match="declares shares_forward = True.*not the model's plain forward"):
        check_shared_forward(_Guided(), lm, x, y)


class _Smooth(nn.Module):
    """A small convolutional network with SiLU activations: a weight's gradient is a sum of several
    non-zero terms, so the order in which they are added shows in the last bits (on a ReLU network
    most of them are exact zeros)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 16, 3, padding=1), nn.SiLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _smooth() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model = _Smooth().eval()
    return model, model.features[1]  # a SiLU and a convolution above it: their weights' gradients have several terms


def test_on_a_smooth_model_the_order_of_the_sums_shows():
    """The cross-entropy's graph made after the penalty's, one joint backward: other bits than
    made before it. So the comparisons below can fail."""
    model, layer = _smooth()
    x, y = _data(8).tensors
    interp = get_interpreter("gradcam")
    grads = []
    for ce_first in (True, False):
        model.zero_grad(set_to_none=True)
        ce = F.cross_entropy(model(x), y) if ce_first else None
        pen = interp.explain(model, x, y, layer=layer, create_graph=True).mean()
        ce = F.cross_entropy(model(x), y) if ce is None else ce
        (ce + 3.0 * pen).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert any(not torch.equal(a, b) for a, b in zip(*grads))


@pytest.mark.parametrize("name", ["gradcam", "simplegrad"])
def test_on_a_smooth_model_a_shared_forward_pass_back_propagated_apart_gives_the_same_weights(name):
    model, layer = _smooth()
    for attack in ("location", "topk"):
        shared = _run(model, layer, get_interpreter(name), attack, True, joint=False)
        separate = _run(model, layer, get_interpreter(name), attack, False)
        assert shared.shared_steps == STEPS
        assert _max_difference(shared, separate) == 0.0, (name, attack)


def test_on_a_smooth_model_an_input_gradient_back_propagated_together_changes_the_weights():
    """Why shares_backward needs a piecewise-linear model: SiLU's derivative depends on its input."""
    model, layer = _smooth()
    joint = _run(model, layer, get_interpreter("simplegrad"), "location", True, joint=True)
    assert joint.shared_steps == STEPS
    assert _max_difference(joint, _run(model, layer, get_interpreter("simplegrad"), "location", False)) > 0.0


def test_on_a_smooth_model_a_step_with_nothing_to_share_keeps_the_weights():
    """Its own forward pass comes after the penalty's; back-propagated apart, the sums keep their order."""
    model, layer = _smooth()
    copy_run = _run(model, layer, _OnACopy(), "location", True)
    assert copy_run.shared_steps == 0
    assert _max_difference(copy_run, _run(model, layer, get_interpreter("simplegrad"), "location", False)) == 0.0


def test_the_conformance_check_refuses_an_interpreter_whose_steps_find_nothing_to_share():
    from robustbench_interp.conformance import ConformanceError, check_shared_forward
    from robustbench_interp.models.base import LoadedModel

    model, layer = _tiny("resnet")
    lm = LoadedModel(track="tiny", name="resnet", model=model, target_layer=layer, num_classes=10, input_size=(64, 64))
    x, y = _data(8).tensors
    with pytest.raises(ConformanceError, match="found no logits to share.*call the model once on the batch as given"):
        check_shared_forward(_OnACopy(), lm, x, y)
