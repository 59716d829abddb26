"""LRP-composite (SPEC section 2): conservation, the rules against hand-computed answers, the
engine's handling of residuals, concatenations, BN fusion, caching and unsupported ops."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_interp.errors import UnsupportedModelError
from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.interpreters._lrp_engine import relevance

EPS = 0.01


def _lrp(model, x, target, layer=None):
    name = "lrp" if layer is None else "lrp_t"
    return get_interpreter(name).explain(model, x, target, layer=layer)


def _bias_free_net() -> nn.Sequential:
    """A ReLU net without biases whose logits are large next to epsilon (so the leak is tiny)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(32, 16, bias=False), nn.ReLU(), nn.Linear(16, 10, bias=False),
    ).eval()
    with torch.no_grad():
        model[9].weight.abs_()  # positive logits well above epsilon
        for p in model.parameters():
            p.mul_(10.0)
    return model


def test_relevance_is_conserved_layer_by_layer():
    model = _bias_free_net()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) - 0.3  # signed input
    target = torch.tensor([2, 5])
    with torch.no_grad():
        y = model(x).gather(1, target.view(-1, 1)).squeeze(1)
    assert (y > 100.0).all()
    totals = {"input": _lrp(model, x, target).sum(dim=(1, 2))}
    for i, layer in enumerate(model[:6]):
        totals[f"{i}:{type(layer).__name__}"] = _lrp(model, x, target, layer).sum(dim=(1, 2))
    for i in (7, 8):  # the hidden linear layer's output, as the engine sees it
        totals[f"{i}:{type(model[i]).__name__}"] = relevance(model, x, target, layer=model[i]).sum(dim=1)
    for where, total in totals.items():
        torch.testing.assert_close(total, y, rtol=1e-3, atol=0.0, msg=f"relevance not conserved at {where}")
    # the z+ and winner-take-all rules conserve exactly; only epsilon leaks, at the linear layers
    torch.testing.assert_close(totals["input"], totals["0:Conv2d"], rtol=1e-5, atol=0.0)
    torch.testing.assert_close(totals["0:Conv2d"], totals["5:AdaptiveAvgPool2d"], rtol=1e-5, atol=0.0)


def test_epsilon_rule_on_a_linear_net_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4)).eval()
    x = torch.randn(3, 3, 2, 2)
    target = torch.tensor([0, 1, 3])
    w, b = model[1].weight.detach(), model[1].bias.detach()
    z = x.flatten(1) @ w.T + b
    zc = z.gather(1, target.view(-1, 1))
    stab = zc + EPS * torch.where(zc >= 0, 1.0, -1.0)
    expected = (x.flatten(1) * w[target] / stab * zc).view(3, 3, 2, 2).sum(1)
    assert (zc < 0).any() and (zc > 0).any()  # both signs of the stabiliser are exercised
    torch.testing.assert_close(_lrp(model, x, target), expected)


def test_zplus_rule_on_a_conv_with_signed_inputs_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 1, 2), nn.Flatten()).eval()  # logits = the 2x2 output cells
    x = torch.randn(1, 2, 3, 3)
    w = model[0].weight.detach()[0]  # [2, 2, 2]
    target = torch.tensor([3])  # output cell (1, 1): input window rows 1..2, cols 1..2
    with torch.no_grad():
        y = model(x)[0, 3]
    contrib = (x[0, :, 1:3, 1:3] * w).clamp(min=0)  # (a_i w_i)^+, the bias is ignored
    expected = torch.zeros(2, 3, 3)
    expected[:, 1:3, 1:3] = contrib / contrib.sum() * y
    torch.testing.assert_close(_lrp(model, x, target)[0], expected.sum(0))


def test_bn_after_conv_is_fused_into_the_conv():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0, -0.1, 1.5]))  # negative scales flip W's sign
        bn.running_var.uniform_(0.5, 2.0)
        bn.running_mean.normal_()
    head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))
    model = nn.Sequential(conv, bn, *head).eval()
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(3, 6, 3, padding=1)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        fused.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
    reference = nn.Sequential(fused, *head).eval()
    x, target = torch.rand(2, 3, 8, 8), torch.tensor([0, 3])
    torch.testing.assert_close(model(x), reference(x))
    torch.testing.assert_close(_lrp(model, x, target), _lrp(reference, x, target))


def test_max_pool_is_winner_take_all():
    torch.manual_seed(0)
    model = nn.Sequential(nn.MaxPool2d(3, 2, 1), nn.Flatten(), nn.Linear(3 * 4 * 4, 4)).eval()
    x, target = torch.rand(2, 3, 8, 8), torch.tensor([1, 2])
    rel = relevance(model, x, target)
    _, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    winners = torch.zeros(2, 3, 64, dtype=torch.bool).scatter(2, idx.flatten(2), True).view_as(x)
    assert (rel[~winners] == 0).all() and (rel[winners] != 0).any()
    pooled_rel = relevance(model, x, target, layer=model[0])
    torch.testing.assert_close(rel.sum(dim=(1, 2, 3)), pooled_rel.sum(dim=(1, 2, 3)))


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Conv2d(3, 4, 1, bias=False)

    def forward(self, x):
        out = self.a(x)
        out += self.b(x)
        return out


class _Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Conv2d(3, 2, 1, bias=False)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=1)


@pytest.mark.parametrize("block_cls", [_Residual, _Concat])
def test_residual_and_concat_split_relevance(block_cls):
    torch.manual_seed(0)
    block = block_cls()
    channels = 6 if block_cls is _Concat else 4
    model = nn.Sequential(block, nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(channels * 4, 5)).eval()
    x, target = torch.rand(2, 3, 6, 6), torch.tensor([0, 4])
    r_out = relevance(model, x, target, layer=block)
    r_a = relevance(model, x, target, layer=block.a)
    r_b = relevance(model, x, target, layer=block.b)
    with torch.no_grad():
        a, b = block.a(x), block.b(x)
    if block_cls is _Residual:
        z = a + b
        torch.testing.assert_close(r_a, a / (z + 1e-6 * torch.where(z >= 0, 1.0, -1.0)) * r_out)
        torch.testing.assert_close(r_a + r_b, r_out, rtol=1e-4, atol=1e-6)
    else:
        torch.testing.assert_close(torch.cat([r_a, r_b], 1), r_out)


def test_lrp_t_on_a_container_is_its_last_output(batch, make_net):
    x, target = batch
    model, _, _ = make_net("resnet")
    torch.testing.assert_close(_lrp(model, x, target, model.block1), _lrp(model, x, target, model.block1.relu))
    model, _, _ = make_net("densenet")
    layer = model.block1.layers[1]
    torch.testing.assert_close(_lrp(model, x, target, layer), _lrp(model, x, target, layer.conv2))


@pytest.mark.parametrize("net", ["resnet", "densenet"])
def test_residual_and_dense_nets_conserve_without_biases(net, batch, make_net):
    model, layer, _ = make_net(net)
    with torch.no_grad():  # no bias anywhere: BN is a pure per-channel scale, the fc has no shift
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.bias.zero_()
                m.running_mean.zero_()
            if isinstance(m, nn.Linear):
                m.bias.zero_()
                m.weight.mul_(1000.0)  # logits far above epsilon
    x, target = batch
    with torch.no_grad():
        y = model(x).gather(1, target.view(-1, 1)).squeeze(1)
    assert (y.abs() > 1.0).all()
    torch.testing.assert_close(_lrp(model, x, target).sum(dim=(1, 2)), y, rtol=0.02, atol=0.0)
    total_t = relevance(model, x, target, layer=layer).sum(dim=(1, 2, 3))
    if net == "resnet":  # the block output carries all the relevance
        torch.testing.assert_close(total_t, y, rtol=0.02, atol=0.0)


def test_new_weights_at_the_address_of_freed_ones_are_not_taken_for_the_cached_ones():
    """A ``.data`` swap keeps the parameter's version; the allocator may hand the new values the
    address of memory the swap freed. Repeated, so that such a reuse happens (before the cache held
    the memory it was keyed on, about one swap in twenty replayed the old weights here)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()
    x, target = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    for _ in range(100):
        _lrp(model, x, target)
        model.double().float()  # frees the float storage the cache was keyed on
        with torch.no_grad():
            model[0].weight.data = model[0].weight.data + 0.3 * torch.randn_like(model[0].weight)
        torch.testing.assert_close(_lrp(model, x, target), _lrp(copy.deepcopy(model), x, target))


def test_cached_trace_follows_the_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    ).eval()
    x, target = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    first = _lrp(model, x, target)
    with torch.no_grad():  # fine-tuning changes the weights in place: fused BN weights must follow
        model[1].weight.neg_()
        model[0].weight.add_(0.3 * torch.randn_like(model[0].weight))
    fresh = copy.deepcopy(model)
    torch.testing.assert_close(_lrp(model, x, target), _lrp(fresh, x, target))
    assert not torch.allclose(_lrp(model, x, target), first)
    before = _lrp(model, x, target)
    # a new tensor (z+ is scale-invariant: change it unevenly), then new values under the same tensor
    model[0].weight = nn.Parameter(model[0].weight.detach() + 0.3 * torch.randn_like(model[0].weight))
    torch.testing.assert_close(_lrp(model, x, target), _lrp(copy.deepcopy(model), x, target))
    assert not torch.allclose(_lrp(model, x, target), before)
    before = _lrp(model, x, target)
    model.double().float()  # .data swapped, versions unchanged
    with torch.no_grad():
        model[0].weight.data = model[0].weight.data + 0.3 * torch.randn_like(model[0].weight)
    torch.testing.assert_close(_lrp(model, x, target), _lrp(copy.deepcopy(model), x, target))
    assert not torch.allclose(_lrp(model, x, target), before)
    model[2] = nn.Identity()  # a swapped module: the graph must be re-traced
    torch.testing.assert_close(_lrp(model, x, target), _lrp(copy.deepcopy(model), x, target))


class _Tanh(nn.Module):
    def forward(self, x):
        return torch.tanh(x)


@pytest.mark.parametrize("act, named", [(nn.Sigmoid(), "Sigmoid"), (_Tanh(), "tanh")])
def test_unsupported_op_is_named(act, named):
    model = nn.Sequential(act, nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()
    x, target = torch.rand(1, 3, 8, 8), torch.tensor([0])
    with pytest.raises(UnsupportedModelError, match=named):
        _lrp(model, x, target)
    # an unsupported op below the target layer is never reached by lrp_t
    assert _lrp(model, x, target, model[1]).abs().sum() > 0
