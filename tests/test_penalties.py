"""Properties of the differentiable fooling penalties (SPEC section 3)."""

from __future__ import annotations

import pytest
import torch

from robustbench_interp.attacks import get_attack
from robustbench_interp.attacks.active import active_penalty
from robustbench_interp.attacks.center_mass import center_mass_penalty, center_mass_test_loss
from robustbench_interp.attacks.location import location_loss as location_test_loss
from robustbench_interp.attacks.location import location_penalty
from robustbench_interp.attacks.topk import topk_loss as topk_test_loss
from robustbench_interp.attacks.topk import topk_penalty
from robustbench_interp.metrics import (
    fooling_success_rate,
    location_mask,
    normalize,
    topk_mask,
)


def rand_maps(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_location_penalty_is_zero_on_the_mask_and_the_batch_mean_of_the_test_loss():
    m = location_mask(14, 14)
    assert location_penalty(torch.stack([m, 5 * m])).item() == pytest.approx(0.0, abs=1e-7)
    h = rand_maps(6, 14, 14)
    assert location_penalty(h).item() == pytest.approx(location_test_loss(h).mean().item(), rel=1e-6)


def test_topk_penalty_of_the_original_map_equals_the_mean_of_its_squared_top_values():
    h0 = rand_maps(3, 10, 10)
    expected = normalize(h0).reshape(3, -1).topk(10, dim=1).values.square().mean()
    assert topk_penalty(h0, h0, k=0.1).item() == pytest.approx(expected.item(), rel=1e-6)
    assert topk_penalty(h0, h0).item() == pytest.approx(topk_test_loss(h0, h0).mean().item(), rel=1e-6)


def test_topk_penalty_gradient_reaches_only_the_original_top_positions_and_not_w0():
    h0 = rand_maps(2, 8, 8, seed=1).requires_grad_()
    h = (rand_maps(2, 8, 8, seed=2).abs() + 0.1).requires_grad_()
    topk_penalty(h, h0, k=0.1).backward()
    assert h0.grad is None  # the original model's map is a constant target
    grad_outside = h.grad[~topk_mask(normalize(h0.detach()))]
    # outside P_i only the argmax (through the normaliser) can receive a gradient
    assert (grad_outside != 0).sum() <= 2
    assert h.grad[topk_mask(normalize(h0.detach()))].abs().sum() > 0


def test_center_mass_penalty_is_minus_the_l1_distance_in_grid_cells():
    h, h0 = torch.zeros(1, 14, 9), torch.zeros(1, 14, 9)
    h[0, 0, 0] = 1.0
    h0[0, 13, 8] = 1.0
    assert center_mass_penalty(h, h0).item() == pytest.approx(-(13 + 8))
    a = rand_maps(4, 7, 7, seed=3)
    assert center_mass_penalty(a, a).item() == pytest.approx(0.0, abs=1e-6)


def test_active_penalty_is_zero_for_swapped_maps_and_half_the_sum_of_two_mses():
    c1, c2 = rand_maps(3, 7, 7, seed=4), rand_maps(3, 7, 7, seed=5)
    assert active_penalty(c2, c1, c1, c2).item() == pytest.approx(0.0, abs=1e-10)
    h1, h2 = rand_maps(3, 7, 7, seed=6), rand_maps(3, 7, 7, seed=7)
    # the authors' 0.5 * (mse + mse): means over images and positions
    mse = torch.nn.functional.mse_loss
    expected = 0.5 * (mse(normalize(h1), normalize(c2)) + mse(normalize(h2), normalize(c1)))
    assert active_penalty(h1, h2, c1, c2).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("name", ["location", "topk", "center_mass", "active"])
def test_penalties_have_gradients_through_a_parametrised_map(name):
    """The map comes from weights (a 1x1 'conv' over features), as in fine-tuning through an interpreter."""
    g = torch.Generator().manual_seed(8)
    features = torch.randn(4, 5, 9, 9, generator=g)
    weights = torch.randn(5, generator=g, requires_grad=True)
    h = torch.einsum("bchw,c->bhw", features, weights)
    h_other = torch.einsum("bchw,c->bhw", features.flip(1), weights)
    h0 = torch.einsum("bchw,c->bhw", features, torch.randn(5, generator=g))
    penalty = {
        "location": lambda: location_penalty(h),
        "topk": lambda: topk_penalty(h, h0),
        "center_mass": lambda: center_mass_penalty(h, h0),
        "active": lambda: active_penalty(h, h_other, h0, h0.flip(1)),
    }[name]()
    assert penalty.dim() == 0 and torch.isfinite(penalty)
    (grad,) = torch.autograd.grad(penalty, weights)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["location", "topk", "center_mass"])
def test_minimising_a_passive_penalty_makes_its_test_loss_succeed(name):
    """Gradient descent on the penalty alone reaches the success interval of its test loss.

    The free map starts positive (relu passes no gradient to negative positions) and slightly off
    ``h0``: at ``h == h0`` exactly, the L1 distance of Center-mass has a zero (sub)gradient; in
    fine-tuning the cross-entropy term moves the model off ``w0`` after the first step.
    """
    h0 = rand_maps(8, 14, 14, seed=9).abs() + 0.01
    h = (h0 + 0.01 * rand_maps(8, 14, 14, seed=10)).requires_grad_()
    opt = torch.optim.Adam([h], lr=0.05)
    penalty = {"location": lambda: location_penalty(h), "topk": lambda: topk_penalty(h, h0),
               "center_mass": lambda: center_mass_penalty(h, h0)}[name]
    for _ in range(150):
        opt.zero_grad()
        penalty().backward()
        opt.step()
    t = {"location": lambda: location_test_loss(h), "topk": lambda: topk_test_loss(h, h0),
         "center_mass": lambda: center_mass_test_loss(h, h0)}[name]()
    assert fooling_success_rate(t, get_attack(name)) == 100.0



def test_location_penalty_gives_no_gradient_to_frame_cells_below_zero():
    """Why a class whose frame turns negative stays unfooled: the normalisation's ReLU blocks the
    penalty's pull on those cells, while positive frame cells are pulled up."""
    h = torch.full((1, 8, 8), -1.0)
    h[0, 3:5, 3:5] = 1.0  # the object, inside
    h[0, 0, 0] = 0.5  # one positive frame cell
    h.requires_grad_(True)
    location_penalty(h).backward()
    frame = location_mask(8, 8).bool()
    negative_frame = frame & (h[0].detach() < 0)
    assert torch.all(h.grad[0][negative_frame] == 0)
    assert h.grad[0, 0, 0] < 0  # gradient descent raises the positive frame cell
