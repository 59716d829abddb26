"""Fixtures shared by the test modules: the tiny nets the interpreters are tested on, and a batch
of images for them."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_interp.models.base import Normalize

# ------------------------------------------------------------------------------- the tiny nets
# Each net fixture gives ``(model, target_layer, last_conv)``: the model in eval mode, taking
# [B, 3, 32, 32] inputs in [0, 1], returning 10 logits. The target layer has a convolution after it,
# so every map (layer-level ones included) depends on ``last_conv``'s weights.

_MEAN, _STD = (0.5, 0.45, 0.4), (0.25, 0.25, 0.3)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class _TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = Normalize(_MEAN, _STD)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.block1 = _BasicBlock(8, 8)
        self.block2 = _BasicBlock(8, 16, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.block1(self.stem(self.norm(x))))
        x = self.pool(x)
        return self.fc(x.view(x.size(0), -1))  # size(): a non-tensor op LRP must skip


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, 2 * growth, 1, bias=False)
        self.norm2, self.conv2 = nn.BatchNorm2d(2 * growth), nn.Conv2d(2 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        x = self.conv1(F.relu(self.norm1(x), inplace=True))
        return self.conv2(F.relu(self.norm2(x), inplace=True))


class _DenseBlock(nn.Module):
    def __init__(self, cin: int, growth: int, n: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_DenseLayer(cin + i * growth, growth) for i in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class _TinyDenseNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = Normalize(_MEAN, _STD)
        self.conv0, self.norm0 = nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8)
        self.block1 = _DenseBlock(8, 4, 2)
        self.transition = nn.Sequential(
            nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.Conv2d(16, 8, 1, bias=False), nn.AvgPool2d(2)
        )
        self.block2 = _DenseBlock(8, 4, 2)
        self.norm5 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm0(self.conv0(self.norm(x))), inplace=True)
        x = self.block2(self.transition(self.block1(x)))
        x = F.adaptive_avg_pool2d(F.relu(self.norm5(x), inplace=True), 1)
        return self.fc(torch.flatten(x, 1))


def _randomise_bn(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics (fresh ones are the identity), then eval mode."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
    return model.eval()


def make_cnn():
    torch.manual_seed(0)
    model = nn.Sequential(
        Normalize(_MEAN, _STD),
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout(0.2),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10),
    )
    return _randomise_bn(model), model[6], model[8]


def make_resnet():
    torch.manual_seed(0)
    model = _randomise_bn(_TinyResNet())
    return model, model.block1, model.block2.conv2


def make_densenet():
    torch.manual_seed(0)
    model = _randomise_bn(_TinyDenseNet())
    return model, model.block1.layers[1], model.block2.layers[1].conv2


NETS = {"cnn": make_cnn, "resnet": make_resnet, "densenet": make_densenet}


@pytest.fixture
def make_net() -> Callable[[str], tuple[nn.Module, nn.Module, nn.Module]]:
    """``make_net(name)``: a fresh tiny net of :data:`NETS` (the same weights on every call)."""
    return lambda name: NETS[name]()


@pytest.fixture(params=sorted(NETS))
def any_net(request):
    """Each tiny net in turn."""
    return NETS[request.param]()


@pytest.fixture
def batch():
    """Three 32x32 images in [0, 1] and their target classes."""
    gen = torch.Generator().manual_seed(0)
    return torch.rand(3, 3, 32, 32, generator=gen), torch.tensor([1, 4, 7])


@pytest.fixture
def random_resnet_cache(tmp_path, monkeypatch):
    """Published weights holding a randomly initialised tiny ResNet (with its manifest entry) where
    the trained one would be, so ``rbi run`` loads it instead of the published one (the plumbing is
    under test, not the attack's strength); the model cache is an empty temporary folder."""
    from robustbench_interp.models import cache, load_model, published

    monkeypatch.setenv(cache.ENV_CACHE_DIR, str(tmp_path / "cache"))
    folder = tmp_path / "weights"
    weights = folder / "resnet.pt"
    cache.save_state_dict(weights, load_model("tiny", "resnet", weights="random").model.state_dict())
    manifest = {"format": published.MANIFEST_FORMAT, "track": "tiny",
                "models": {"resnet": {"file": weights.name, "sha256": published.sha256_file(weights)}}}
    (folder / published.MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.setattr(published, "WEIGHTS_DIR", folder)
    return tmp_path
