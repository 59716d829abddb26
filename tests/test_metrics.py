"""Properties of the heatmap operations, test losses, FSR, similarity, accuracy and AOPC (SPEC section 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn
from torch.utils.data import TensorDataset

from robustbench_interp.attacks import get_attack, standard_attacks
from robustbench_interp.attacks.active import active_test_loss
from robustbench_interp.attacks.center_mass import center_mass_test_loss
from robustbench_interp.attacks.location import location_loss as location_test_loss
from robustbench_interp.attacks.topk import topk_loss as topk_test_loss
from robustbench_interp.errors import ConfigError, UnknownNameError
from robustbench_interp.metrics import (
    aopc_curve,
    center_of_mass,
    evaluate_accuracy,
    fooling_success_rate,
    fsr_by_class,
    fsr_confidence_interval,
    fsr_summary,
    location_mask,
    normalize,
    spearman,
    topk_correct,
    topk_intersection,
    topk_mask,
)

#: The built-in attacks by name (their success intervals and test losses).
A = {name: get_attack(name) for name in standard_attacks()}


def rand_maps(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- heatmaps


def test_normalize_lies_in_unit_interval_with_max_one_and_is_differentiable():
    h = rand_maps(4, 9, 11).requires_grad_()
    n = normalize(h)
    assert n.min() >= 0 and n.max() <= 1
    torch.testing.assert_close(n.amax(dim=(1, 2)), torch.ones(4))
    n.sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0


def test_normalize_of_a_map_without_positive_values_is_zero_not_nan():
    n = normalize(-torch.rand(2, 5, 5))
    assert torch.equal(n, torch.zeros(2, 5, 5))


@pytest.mark.parametrize("l_h,l_w", [(14, 14), (7, 7), (6, 6), (14, 21), (224, 224)])
def test_location_mask_is_a_frame_of_width_l_over_7(l_h, l_w):
    m = location_mask(l_h, l_w)
    wh, ww = max(1, l_h // 7), max(1, l_w // 7)
    assert m.shape == (l_h, l_w)
    assert m[:wh].eq(1).all() and m[-wh:].eq(1).all() and m[:, :ww].eq(1).all() and m[:, -ww:].eq(1).all()
    assert m[wh:l_h - wh, ww:l_w - ww].eq(0).all()
    assert m.sum() == l_h * l_w - (l_h - 2 * wh) * (l_w - 2 * ww)


def test_center_of_mass_of_point_masses_and_the_empty_map():
    hn = torch.zeros(3, 5, 7)
    hn[0, 1, 2] = 1.0
    hn[1, 0, 0] = hn[1, 4, 6] = 0.5  # two equal masses at opposite corners -> the centre
    com = center_of_mass(hn)
    torch.testing.assert_close(com, torch.tensor([[1.0, 2.0], [2.0, 3.0], [2.0, 3.0]]))


def test_center_of_mass_is_differentiable_also_next_to_an_empty_map():
    hn = torch.rand(2, 4, 4)
    hn[1] = 0
    hn.requires_grad_()
    com = center_of_mass(hn)
    com.sum().backward()
    assert torch.isfinite(hn.grad).all() and hn.grad[0].abs().sum() > 0


def test_topk_mask_counts_ceil_and_breaks_ties_deterministically():
    h = torch.zeros(1, 5, 6)  # 30 positions, 10% -> 3 (despite 0.1 * 30 = 3.0000000000000004)
    assert topk_mask(h, 0.1).sum() == 3
    assert topk_mask(h, 0.1).reshape(-1)[:3].all()  # all tied: the first positions in row-major order
    h2 = rand_maps(2, 7, 7)
    mask = topk_mask(h2, 0.1)  # ceil(4.9) = 5
    assert mask.sum(dim=(1, 2)).tolist() == [5, 5]
    for i in range(2):
        threshold = h2[i].reshape(-1).topk(5).values.min()
        assert (h2[i][mask[i]] >= threshold).all()
    assert topk_mask(h2, 1e-6).sum(dim=(1, 2)).tolist() == [1, 1]
    with pytest.raises(ConfigError):
        topk_mask(h2, 0.0)


# ----------------------------------------------------------------------------- test losses


def test_location_test_loss_of_the_mask_is_zero_and_of_its_complement_large():
    m = location_mask(14, 14)
    assert location_test_loss(m[None]).item() == pytest.approx(0.0, abs=1e-7)
    assert location_test_loss(3.0 * m[None]).item() == pytest.approx(0.0, abs=1e-7)  # scale-free
    assert location_test_loss((1 - m)[None]).item() == pytest.approx(1.0, abs=1e-6)
    t = location_test_loss(torch.stack([m, 1 - m]))
    assert t.shape == (2,)
    assert fooling_success_rate(t, A["location"]) == 50.0


def test_topk_test_loss_of_the_original_map_is_the_mean_of_its_squared_top_values():
    h0 = rand_maps(3, 10, 10)
    t = topk_test_loss(h0, h0, k=0.1)
    n0 = normalize(h0).reshape(3, -1)
    expected = n0.topk(10, dim=1).values.square().mean(dim=1)
    torch.testing.assert_close(t, expected)
    # a manipulated map that is zero on the original top-k positions succeeds completely
    moved = torch.where(topk_mask(normalize(h0)), torch.zeros_like(h0), h0.abs() + 1)
    assert topk_test_loss(moved, h0).abs().max() < 1e-7
    torch.testing.assert_close(get_attack("topk").test_losses_of((h0,), (h0,), get_attack("topk").make_params())[0], t)


def test_center_mass_test_loss_is_one_for_opposite_corners_and_in_unit_range():
    h = torch.zeros(1, 14, 9)
    h0 = torch.zeros(1, 14, 9)
    h[0, 0, 0] = 1.0
    h0[0, 13, 8] = 2.0
    assert center_mass_test_loss(h, h0).item() == pytest.approx(1.0)
    a, b = rand_maps(64, 7, 7, seed=1), rand_maps(64, 7, 7, seed=2)
    t = center_mass_test_loss(a, b)
    assert t.shape == (64,) and (t >= 0).all() and (t <= 1).all()
    assert get_attack("center_mass").test_losses_of((a,), (a,), None)[0].abs().max() < 1e-6


def test_center_mass_test_loss_does_not_depend_on_resolution():
    def corner_vs_centre(side):
        h, h0 = torch.zeros(1, side, side), torch.zeros(1, side, side)
        h[0, 0, 0] = 1.0
        h0[0, (side - 1) // 2, (side - 1) // 2] = 1.0
        return center_mass_test_loss(h, h0).item()

    assert corner_vs_centre(7) == pytest.approx(0.5) and corner_vs_centre(225) == pytest.approx(0.5)


def two_maps() -> tuple[torch.Tensor, torch.Tensor]:
    """Two positive maps whose rankings are exact reverses of each other."""
    a = torch.arange(1, 50, dtype=torch.float32).reshape(1, 7, 7)
    return a, a.flip(dims=(1, 2))


def test_active_test_loss_is_two_for_swapped_maps_and_zero_for_identical_maps():
    h0_c1, h0_c2 = two_maps()
    t1, t2 = active_test_loss(h0_c2, h0_c1, h0_c1, h0_c2)  # w*'s c1 map = w0's c2 map, and vice versa
    assert t1.item() == pytest.approx(2.0) and t2.item() == pytest.approx(2.0)
    t1, t2 = active_test_loss(h0_c1, h0_c1, h0_c1, h0_c1)  # identical maps everywhere
    assert t1.item() == pytest.approx(0.0) and t2.item() == pytest.approx(0.0)
    t1, t2 = active_test_loss(h0_c1, h0_c2, h0_c1, h0_c2)  # unchanged model: s0(c1, c2) - 1 = -2
    assert t1.item() == pytest.approx(-2.0) and t2.item() == pytest.approx(-2.0)
    assert fooling_success_rate(torch.tensor([2.0]), A["active"]) == 100.0


def test_baseline_active_test_loss_is_s0_minus_one_and_never_succeeds():
    h0_c1, h0_c2 = rand_maps(8, 6, 6, seed=3).abs(), rand_maps(8, 6, 6, seed=4).abs()
    t1, t2 = get_attack("active").test_losses_of((h0_c1, h0_c2), (h0_c1, h0_c2), None)
    s = spearman(normalize(h0_c1), normalize(h0_c2))
    torch.testing.assert_close(t1, s - 1)
    torch.testing.assert_close(t2, s - 1)
    assert fooling_success_rate(t1, A["active"]) == 0.0


def test_each_attacks_test_loss_is_its_own_formula_and_a_typo_names_the_attack():
    h, h0 = rand_maps(4, 8, 8, seed=5), rand_maps(4, 8, 8, seed=6)
    loss = {name: get_attack(name) for name in ("location", "topk", "center_mass")}
    torch.testing.assert_close(loss["location"].test_losses_of((h,), (h0,), None)[0], location_test_loss(h))
    torch.testing.assert_close(loss["topk"].test_losses_of((h,), (h0,), loss["topk"].make_params({"k": 0.2}))[0],
                               topk_test_loss(h, h0, 0.2))
    torch.testing.assert_close(loss["center_mass"].test_losses_of((h,), (h0,), None)[0],
                               center_mass_test_loss(h, h0))
    t1, t2 = get_attack("active").test_losses_of((h, h0), (h0, h), None)
    torch.testing.assert_close((t1, t2), active_test_loss(h, h0, h0, h))
    with pytest.raises(UnknownNameError, match="location"):
        get_attack("locaton")


def test_test_losses_reject_maps_of_different_shapes():
    with pytest.raises(ConfigError, match="same shape"):
        topk_test_loss(torch.rand(2, 7, 7), torch.rand(2, 14, 14))


# ----------------------------------------------------------------------------- FSR


def test_fsr_counts_boundary_values_as_inside():
    assert fooling_success_rate(torch.tensor([0.0, 0.2, 0.2000001, 0.5]), (0.0, 0.2)) == 50.0
    for name in standard_attacks():
        lo, hi = A[name].success_interval
        assert fooling_success_rate([lo, hi], A[name]) == 100.0
        assert fooling_success_rate([lo - 1e-6, hi + 1e-6], A[name]) == 0.0
    assert fooling_success_rate(torch.tensor([float("nan"), 0.1]), A["location"]) == 50.0
    assert fooling_success_rate(torch.tensor([0.2, 0.3], dtype=torch.float32), A["location"]) == 50.0
    assert fooling_success_rate(torch.tensor([0.1, 1.0], dtype=torch.float32), A["center_mass"]) == 100.0


def test_success_intervals_are_the_papers():
    assert {name: A[name].success_interval for name in standard_attacks()} == {
        "location": (0.0, 0.2), "topk": (0.0, 0.3), "center_mass": (0.1, 1.0), "active": (0.5, 2.0)
    }


def test_wilson_interval_matches_the_closed_form_and_stays_in_range():
    lo, hi = fsr_confidence_interval(0, 10)
    assert lo == 0.0 and 0 < hi < 35
    lo, hi = fsr_confidence_interval(10, 10)
    assert hi == pytest.approx(100.0) and 65 < lo < 100
    lo, hi = fsr_confidence_interval(50, 100)
    assert lo == pytest.approx(40.38, abs=0.01) and hi == pytest.approx(59.62, abs=0.01)
    with pytest.raises(ConfigError):
        fsr_confidence_interval(3, 0)


def test_fsr_by_class_splits_the_successes_by_label():
    t = torch.tensor([0.1, 0.5, 0.0, 0.1, 0.9])  # location: success iff t <= 0.2
    labels = torch.tensor([3, 3, 7, 7, 7])
    assert fsr_by_class(t, labels, A["location"]) == {"3": 50.0, "7": pytest.approx(200 / 3)}
    with pytest.raises(ConfigError, match="one label per test loss"):
        fsr_by_class(t, labels[:2], A["location"])


def test_fsr_summary_reports_fsr_and_baseline_as_plain_numbers():
    summary = fsr_summary(torch.tensor([0.1, 0.3, 0.15, 0.9]), torch.tensor([0.9, 0.9, 0.1, 0.8]), A["location"])
    assert summary["fsr"] == 50.0 and summary["baseline_fsr"] == 25.0 and summary["n"] == 4
    assert all(isinstance(v, (int, float, list)) for v in summary.values())
    assert summary["fsr_ci"][0] < 50.0 < summary["fsr_ci"][1]


# ----------------------------------------------------------------------------- similarity


def test_spearman_of_a_map_with_itself_is_one_and_with_its_reverse_minus_one():
    a, rev = two_maps()
    assert spearman(a, a).item() == pytest.approx(1.0)
    assert spearman(a, rev).item() == pytest.approx(-1.0)
    h = rand_maps(3, 6, 6)
    torch.testing.assert_close(spearman(h, h), torch.ones(3, dtype=torch.float64))


def test_spearman_matches_scipy_with_ties_and_constant_maps_give_zero():
    a = torch.randint(0, 4, (5, 6, 6), generator=torch.Generator().manual_seed(7)).float()
    b = torch.randint(0, 4, (5, 6, 6), generator=torch.Generator().manual_seed(8)).float()
    ours = spearman(a, b).numpy()
    ref = [stats.spearmanr(a[i].reshape(-1).numpy(), b[i].reshape(-1).numpy()).statistic for i in range(5)]
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert spearman(torch.ones(1, 4, 4), rand_maps(1, 4, 4)).item() == 0.0


def test_topk_intersection_of_self_is_one_and_of_disjoint_tops_is_zero():
    a, rev = two_maps()
    assert topk_intersection(a, a).item() == 1.0
    assert topk_intersection(a, rev).item() == 0.0
    b = a.clone()
    b.reshape(-1)[-1] = -100.0  # drop a's top position out of b's top 5
    assert topk_intersection(a, b, k=0.1).item() == pytest.approx(4 / 5)


# ----------------------------------------------------------------------------- accuracy


def test_topk_correct_counts_hits():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.05], [0.2, 0.3, 0.5]])
    y = torch.tensor([1, 2, 0])
    assert topk_correct(logits, y, ks=(1, 2, 3)) == {1: 1, 2: 1, 3: 3}
    with pytest.raises(ConfigError):
        topk_correct(logits, y, ks=(5,))


class Lookup(nn.Module):
    """A 'model' whose logits are stored in the input itself (x[:, 0, 0, :C])."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.c = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, : self.c]


def test_evaluate_accuracy_in_percent_and_top5_only_with_ten_classes():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 12, generator=g)
    y = logits.argmax(dim=1)
    y[:5] = logits.argsort(dim=1, descending=True)[:5, 5]  # 6th best: wrong for top-1 and top-5
    y[5:8] = logits.argsort(dim=1, descending=True)[5:8, 2]  # 3rd best: top-5 only
    x = torch.zeros(20, 1, 1, 12)
    x[:, 0, 0] = logits
    model = Lookup(12).eval()
    res = evaluate_accuracy(model, TensorDataset(x, y), device="cpu", batch_size=6)
    assert res == {"top1": 60.0, "top5": 75.0, "n": 20}
    res3 = evaluate_accuracy(Lookup(3).eval(), TensorDataset(x, logits[:, :3].argmax(1)), batch_size=7)
    assert res3["top1"] == 100.0 and res3["top5"] is None
    with pytest.raises(ConfigError, match="eval"):
        evaluate_accuracy(Lookup(12).train(), TensorDataset(x, y))


# ----------------------------------------------------------------------------- AOPC


class OneRegion(nn.Module):
    """Two-class model whose class-0 score depends only on the top-left 4x4 region of the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 10.0 * (x[:, :, :4, :4].mean(dim=(1, 2, 3)) - 0.5)
        return torch.stack([s, -s], dim=1)


@pytest.mark.parametrize("replace", ["uniform noise", "mean"])
def test_aopc_is_large_for_a_map_pointing_at_the_region_the_model_uses(replace):
    x = torch.zeros(4, 3, 16, 16)
    x[:, :, :4, :4] = 1.0
    y = torch.zeros(4, dtype=torch.long)
    good = torch.zeros(4, 16, 16)
    good[:, :4, :4] = 1.0
    inverted = 1.0 - good
    coarse = torch.zeros(4, 2, 2)  # a layer-level map on a coarser grid, top-left cell relevant
    coarse[:, 0, 0] = 1.0

    def run(h):
        return aopc_curve(OneRegion().eval(), x, y, h, steps=5, patch=4, replace=replace,
                          generator=torch.Generator().manual_seed(0))

    curve_good, aopc_good = run(good)
    _, aopc_inverted = run(inverted)
    _, aopc_coarse = run(coarse)
    assert curve_good.shape == (6,)
    assert curve_good[0] > 0.99 and curve_good[1] < 0.9
    assert aopc_good > 0.3 and abs(aopc_inverted) < 1e-6
    assert aopc_coarse == pytest.approx(aopc_good)
    again, aopc_again = run(good)
    assert torch.equal(again, curve_good) and aopc_again == aopc_good  # deterministic given the generator


def test_aopc_rejects_a_patch_that_does_not_divide_the_input():
    with pytest.raises(ConfigError, match="patch"):
        aopc_curve(OneRegion().eval(), torch.zeros(1, 3, 10, 10), torch.zeros(1, dtype=torch.long),
                   torch.zeros(1, 10, 10), steps=1, patch=3)



def test_empty_and_constant_maps_are_never_successes_and_their_rates_are_reported():
    """SPEC section 8: an all-zero map's centre of mass is the grid centre, so without the rule it
    would be a Center-mass success whenever the original map was off-centre; a flat map likewise."""
    from robustbench_interp.metrics.scoring import score_maps

    h0 = torch.zeros(4, 8, 8)
    h0[:, 0, 0] = 1.0  # every original map peaks in a corner
    h = torch.zeros(4, 8, 8)  # empty
    h[2:] = 0.5  # constant
    attack = get_attack("center_mass")
    t = attack.test_losses_of((h,), (h0,), attack.make_params())[0]
    assert (t >= 0.1).all()  # the test loss alone calls every one of them fooled
    scores = score_maps(attack, (h,), (h0,), attack.make_params())
    assert scores["fsr"] == 0.0
    assert scores["empty_rate"] == 50.0 and scores["constant_rate"] == 100.0
    assert scores["baseline_empty_rate"] == 0.0 and scores["baseline_constant_rate"] == 0.0
