"""The tiny track's models: architectures, deterministic training, the weights cache, the zoo API."""

from __future__ import annotations

import json
import operator

import pytest
import torch
import torch.fx
from torch import nn

from robustbench_interp.errors import ConfigError, MissingResourceError, UnknownNameError
from robustbench_interp.models import (
    LoadedModel,
    Normalize,
    TrainConfig,
    cache,
    list_models,
    list_tracks,
    load_model,
    zoo,
)
from robustbench_interp.models.device import resolve_device

ARCHS = ["vgg", "resnet", "densenet"]
GRIDS = {"vgg": 16, "resnet": 8, "densenet": 8}
TINY_CONFIG = TrainConfig(epochs=1, batch_size=16, n_train=48, n_val=20, max_steps=3, lr=1e-3)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RBI_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_list_tracks_and_models():
    assert list_tracks() == ["tiny", "imagenet"]
    assert list_models("tiny") == sorted(ARCHS + [a + "-adv" for a in ARCHS])
    assert "resnet50-adv" in list_models("imagenet")


def test_unknown_names_list_the_available_ones():
    with pytest.raises(UnknownNameError, match="Did you mean 'resnet'.*Available: densenet"):
        load_model("tiny", "resnet18", weights="random")
    with pytest.raises(UnknownNameError, match="available tracks: 'tiny', 'imagenet'"):
        load_model("cifar", "vgg")


def test_device_strings():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        for device in ("cuda", "cuda:0"):
            with pytest.raises(ConfigError, match="CUDA is not available"):
                load_model("tiny", "vgg", device=device, weights="random")


@pytest.mark.parametrize("arch", ARCHS)
def test_architecture_contract(arch):
    loaded = load_model("tiny", arch, weights="random")
    assert isinstance(loaded, LoadedModel) and not loaded.model.training
    assert loaded.input_size == (64, 64) and loaded.num_classes == 10
    assert loaded.model.get_submodule(loaded.target_layer_name) is loaded.target_layer
    assert isinstance(next(loaded.model.children()), Normalize)  # inputs in [0, 1]

    seen = {}
    loaded.target_layer.register_forward_hook(lambda m, i, o: seen.update(out=o))
    calls: dict[str, int] = {}
    for name, module in loaded.model.named_modules():
        module.register_forward_hook(lambda m, i, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
    logits = loaded.model(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 10)
    assert seen["out"].shape[-2:] == (GRIDS[arch], GRIDS[arch])
    assert max(calls.values()) == 1  # no module instance is applied twice (hooks and LRP stay simple)
    assert not any(getattr(m, "inplace", False) for m in loaded.model.modules())

    traced = torch.fx.symbolic_trace(loaded.model)  # an fx-based LRP can trace it
    x = torch.rand(3, 3, 64, 64)
    torch.testing.assert_close(traced(x), loaded.model(x))
    allowed = (Normalize, nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d,
               nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear, nn.Dropout, nn.Identity)  # fmt: skip
    leaves = [m for m in loaded.model.modules() if not list(m.children())]
    assert all(isinstance(m, allowed) for m in leaves)
    called = [loaded.model.get_submodule(n.target) for n in traced.graph.nodes if n.op == "call_module"]
    assert called and all(isinstance(m, allowed) for m in called)
    functions = {n.target for n in traced.graph.nodes if n.op in ("call_function", "call_method")}
    # residual additions, concatenations, and Normalize's (x - mean) / std
    assert functions <= {torch.cat, operator.add, operator.sub, operator.truediv}


def test_random_weights_are_seeded():
    a = load_model("tiny", "resnet", weights="random").model.state_dict()
    b = load_model("tiny", "resnet", weights="random").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_is_deterministic_and_changes_the_weights(tmp_path, monkeypatch):
    models = []
    for run in range(2):
        monkeypatch.setenv("RBI_CACHE_DIR", str(tmp_path / f"run{run}"))
        models.append(zoo.load_or_train("densenet", TINY_CONFIG, progress=False))
    assert _states_equal(*models)
    other = zoo.load_or_train("densenet", TrainConfig(**{**TINY_CONFIG.__dict__, "seed": 1}), progress=False)
    assert not _states_equal(models[0], other)
    random = load_model("tiny", "densenet", weights="random").model
    assert not _states_equal(models[0], random)


def test_second_load_comes_from_the_cache(cache_dir, monkeypatch):
    first = load_model("tiny", "vgg", config=TINY_CONFIG, progress=False)
    weights, card = cache.model_paths("tiny", "vgg", TINY_CONFIG.key())
    assert weights.is_file() and card.is_file()
    info = json.loads(card.read_text())
    assert info["config"]["max_steps"] == 3 and info["steps"] == 3
    assert 0.0 <= info["val_top1"] <= 1.0 and info["train_seconds"] > 0
    assert not list(weights.parent.glob(".*.tmp"))  # atomic writes leave no temporaries

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    monkeypatch.setattr(zoo, "train_model", no_training)
    second = load_model("tiny", "vgg", config=TINY_CONFIG, progress=False)
    assert _states_equal(first.model, second.model)
    # a different config is a different cache entry
    with pytest.raises(AssertionError, match="trained again"):
        load_model("tiny", "vgg", config=TrainConfig(**{**TINY_CONFIG.__dict__, "lr": 2e-3}), progress=False)


def test_config_key_is_stable_and_covers_every_field():
    assert TINY_CONFIG.key() == TrainConfig(**TINY_CONFIG.__dict__).key()
    keys = {TrainConfig(**{**TINY_CONFIG.__dict__, field: value}).key()
            for field, value in [("epochs", 2), ("lr", 0.5), ("seed", 3), ("data_seed", 4), ("n_train", 10)]}  # fmt: skip
    assert len(keys) == 5 and TINY_CONFIG.key() not in keys
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=-1.0)


def test_weights_from_a_local_file(tmp_path):
    source = load_model("tiny", "resnet", weights="random").model
    for p in source.parameters():
        nn.init.normal_(p)
    path = tmp_path / "mine.pt"
    cache.save_state_dict(path, source.state_dict())
    loaded = load_model("tiny", "resnet", weights=path)
    assert _states_equal(source, loaded.model)
    with pytest.raises(MissingResourceError, match="nothere.pt"):
        load_model("tiny", "resnet", weights=tmp_path / "nothere.pt")


class _Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_cache_loads_refuse_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(1), "payload": _Payload()}, path)
    with pytest.raises(MissingResourceError, match="UnpicklingError"):
        cache.load_state_dict(path)


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"

    def failing_save(obj, f):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        cache.save_state_dict(path, {"w": torch.ones(2)})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_published_model_reaches_90_percent(arch):
    """The default (published) model: val top-1 >= 90%, as its manifest says."""
    from robustbench_interp.data import get_dataset
    from robustbench_interp.models import accuracy, published

    loaded = load_model("tiny", arch, progress=False)
    assert accuracy(loaded.model, get_dataset("tiny", "val")) >= 0.90
    assert published.read_manifest()["models"][arch]["val_top1"] >= 0.90
