"""The runs of one search share the original model's maps (ReferenceCache): the same weights as
runs that compute their own, with the maps computed once."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from robustbench_interp.attacks.finetune import ManipulationRun, ReferenceCache
from robustbench_interp.config import AttackParams
from robustbench_interp.interpreters import get_interpreter
from robustbench_interp.models.zoo import load_tiny


def _data(n: int = 24) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, 3, 64, 64, generator=g), torch.randint(0, 10, (n,), generator=g))


@pytest.mark.parametrize("attack, interpreter, params", [
    ("center_mass", "gradcam", {}),
    ("topk", "smoothgrad", {"n_samples": 2}),  # stochastic: the noise seed is part of the key
])
def test_runs_sharing_a_cache_end_with_the_weights_of_runs_without(attack, interpreter, params):
    torch.manual_seed(0)
    model = load_tiny("resnet", False, "random", None, False).eval()
    layer = dict(model.named_modules())[model.target_layer_name]
    interp = get_interpreter(interpreter, **params)
    data = _data()
    configs = [AttackParams(lr=lr, lam=lam, steps=4, batch_size=8) for lr, lam in ((1e-3, 1.0), (1e-4, 3.0))]

    def weights(cache):
        runs = [ManipulationRun(model, layer, interp, attack, p, data, seed=3, reference_cache=cache) for p in configs]
        for until in (2, 4):  # in rungs, as the search advances them
            for run in runs:
                run.advance(until)
        return [run.result().model.state_dict() for run in runs]

    cache = ReferenceCache()
    shared, alone = weights(cache), weights(None)
    for a, b in zip(shared, alone):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert cache.hits == 4  # the second configuration's four steps


def test_a_full_cache_computes_instead_of_keeping():
    cache = ReferenceCache(max_bytes=16)
    calls = []

    def compute():
        calls.append(1)
        return (torch.zeros(8),)  # 32 bytes: over the bound

    cache.get(("k",), compute)
    cache.get(("k",), compute)
    assert len(calls) == 2 and cache.bytes == 0 and cache.hits == 0
