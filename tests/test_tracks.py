"""A track is one unit: registered by name, an unknown name is an error, and a new track is one file
(its data, models, schedule and the presets of the attacks on it) that every front end can use."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from robustbench_interp.attacks import Preset
from robustbench_interp.attacks.presets import preset
from robustbench_interp.data import get_dataset
from robustbench_interp.errors import UnknownNameError
from robustbench_interp.grid import build_grid
from robustbench_interp.models import list_models, load_model
from robustbench_interp.tracks import TRACKS, Schedule, Track, get_track, list_tracks, register_track


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


class Toy(Track):
    """A whole track in one class, as a track file would hold it."""

    name = "toy"
    order = 50
    num_classes = 3
    input_size = (8, 8)
    active_classes = (0, 2)
    schedule = Schedule(steps=3, batch_size=4)
    adv_eps = 1 / 255
    presets = {"location": Preset(lr=5e-3, lam=2.0), "topk": Preset(lr=1e-3, lam=1.0, params={"k": 0.25})}

    def architectures(self):
        return ["toynet"]

    def dataset(self, split, root=None):
        g = torch.Generator().manual_seed(len(split))
        return TensorDataset(torch.rand(12, 3, 8, 8, generator=g), torch.arange(12) % 3)

    def composites(self, c1, c2, part, root=None):
        return TensorDataset(torch.rand(8, 3, 8, 8), torch.zeros(8, 8, 8), torch.zeros(8, 8, 8))

    def build_model(self, arch, adv, *, weights, config, progress):
        torch.manual_seed(0)
        return _Net().eval(), "features.1"


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(TRACKS, "_entries", dict(TRACKS._entries))
    monkeypatch.setattr(TRACKS, "_origins", dict(TRACKS._origins))
    register_track(Toy)
    return get_track("toy")


def test_the_built_in_tracks_are_registered_in_order_and_a_typo_names_them():
    assert list_tracks()[:2] == ["tiny", "imagenet"]
    with pytest.raises(UnknownNameError, match="Did you mean 'tiny'"):
        get_track("tinny")
    with pytest.raises(UnknownNameError, match="available tracks"):
        build_grid("cifar", ["vgg"], ["location"], ["gradcam"])


def test_a_new_track_in_one_class_serves_data_models_presets_and_grids(toy):
    assert "toy" in list_tracks() and list_models("toy") == ["toynet", "toynet-adv"]
    assert len(get_dataset("toy", "val")) == 12
    loaded = load_model("toy", "toynet")
    assert loaded.num_classes == 3 and loaded.input_size == (8, 8) and loaded.target_layer_name == "features.1"
    params, own = preset("toy", "toynet", "topk", "gradcam")
    assert (params.lr, params.lam, params.steps, params.batch_size, own) == (1e-3, 1.0, 3, 4, {"k": 0.25})
    adv, _ = preset("toy", "toynet-adv", "location", "gradcam")
    assert adv.adv and adv.eps == 1 / 255 and adv.lr == 5e-3
    (cell,) = build_grid("toy", ["toynet"], ["active"], ["gradcam"], overrides={"lr": 1e-3, "lam": 1.0})
    assert cell.classes == (0, 2)  # the track's Active pair
