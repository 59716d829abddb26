"""The tiny track's three architectures, small versions of the paper's VGG, ResNet and DenseNet.

They are built only from standard modules (Normalize, Conv2d, BatchNorm2d, ReLU, MaxPool2d,
AvgPool2d, AdaptiveAvgPool2d, Flatten, Linear, Dropout, and an Identity that names a target layer), residual additions ``out + identity`` and
``torch.cat``, so that an fx-based LRP can trace them; no module instance is called twice and no
ReLU is in-place. Each takes 64x64 inputs in [0, 1] and names its target layer (the module whose
output is the grid of layer-level interpreters). As in the authors' code, the map is taken at the
*input* of the last block, never at its output: after the output of the last block come only global
pooling and a linear head, so the gradient there is the same at every position (SimpleGrad_T would be
a constant map and LRP_T would equal Grad-CAM before its ReLU). Here at least one conv block with a
non-linearity lies between the target layer and the pooling head (SPEC section 3):

- ``vgg``: target ``features.10`` (16x16x64), the input of the last convolution (conv-BN-ReLU and
  max pooling follow), like VGG19's input of conv5_4;
- ``resnet``: target ``layer3.0`` (8x8x64), the input of the last basic block ``layer3.1``, like
  ResNet50's output of ``layer4[1]``;
- ``densenet``: target ``features.denseblock3.tap`` (8x8, the concatenated features entering the
  last dense layer; a parameter-free identity), like DenseNet121's input of
  ``denseblock4.denselayer16``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from robustbench_interp.models.base import Normalize

#: Bump when an architecture changes: it is part of every cached model's key. Version 2: the
#: DenseNet's last block has the identity ``tap`` (no weight changed) and the targets moved.
TINY_MODEL_VERSION = 2

#: Rough per-channel statistics of the tiny images (inputs stay in [0, 1]; the model normalises).
TINY_MEAN = (0.5, 0.5, 0.5)
TINY_STD = (0.25, 0.25, 0.25)


def _conv3(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=bias)


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [_conv3(cin, cout, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def _kaiming_init(model: nn.Module) -> None:
    """He initialisation (fan-out) of convolutions, as torchvision does for VGG and ResNet."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class TinyVGG(nn.Module):
    """VGG-style plain CNN (like torchvision's ``vgg19_bn``): 3x3 conv-BN-ReLU, max pooling, global
    average pooling, two linear layers. BatchNorm makes it train reliably in a few CPU minutes."""

    target_layer_name = "features.10"

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = Normalize(TINY_MEAN, TINY_STD)
        self.features = nn.Sequential(
            *_conv_bn_relu(3, 16), nn.MaxPool2d(2),  # 0-3: 64 -> 32
            *_conv_bn_relu(16, 32), nn.MaxPool2d(2),  # 4-7: 32 -> 16
            *_conv_bn_relu(32, 64),  # 8-10: 16x16; 10 is the target layer (input of the last conv)
            *_conv_bn_relu(64, 64), nn.MaxPool2d(2),  # 11-14: 16 -> 8
        )  # fmt: skip
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, num_classes))
        _kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(self.normalize(x))
        return self.classifier(self.flatten(self.avgpool(x)))


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 conv + BN, a (projected) identity added, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3(cin, cout, stride, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = _conv3(cout, cout, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + identity
        return self.relu2(out)


class TinyResNet(nn.Module):
    """ResNet-style: a conv stem, three stages of basic blocks (32, 16, 8 px), global pooling, fc."""

    target_layer_name = "layer3.0"

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = Normalize(TINY_MEAN, TINY_STD)
        self.stem = nn.Sequential(_conv3(3, 16, stride=2, bias=False), nn.BatchNorm2d(16), nn.ReLU())  # -> 32
        self.layer1 = nn.Sequential(BasicBlock(16, 16))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, stride=2))  # -> 16
        self.layer3 = nn.Sequential(BasicBlock(32, 64, stride=2), BasicBlock(64, 64))  # -> 8
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)
        _kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(self.normalize(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))


class DenseLayer(nn.Module):
    """BN-ReLU-conv3x3 on the concatenation of all earlier features; returns the new features only."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.conv = _conv3(cin, growth, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.relu(self.norm(x)))


class DenseBlock(nn.Module):
    """``features = cat([features, layer(features)])`` for each dense layer; the features entering
    the last dense layer pass through ``tap``, an identity that names them (a target layer)."""

    def __init__(self, cin: int, growth: int, n_layers: int) -> None:
        super().__init__()
        for i in range(n_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(cin + i * growth, growth))
        self.tap = nn.Identity()
        self.out_channels = cin + n_layers * growth

    def forward(self, x: Tensor) -> Tensor:
        layers = [m for name, m in self.named_children() if name.startswith("denselayer")]
        for layer in layers[:-1]:
            x = torch.cat([x, layer(x)], dim=1)
        x = self.tap(x)
        return torch.cat([x, layers[-1](x)], dim=1)


def _transition(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            norm=nn.BatchNorm2d(cin),
            relu=nn.ReLU(),
            conv=nn.Conv2d(cin, cout, kernel_size=1, bias=False),
            pool=nn.AvgPool2d(2),
        )
    )


class TinyDenseNet(nn.Module):
    """DenseNet-style: stem, three dense blocks (32, 16, 8 px) joined by transitions, BN, pool, fc."""

    target_layer_name = "features.denseblock3.tap"

    def __init__(self, num_classes: int = 10, growth: int = 16, n_layers: int = 3) -> None:
        super().__init__()
        self.normalize = Normalize(TINY_MEAN, TINY_STD)
        block1 = DenseBlock(16, growth, n_layers - 1)
        c1 = block1.out_channels // 2
        block2 = DenseBlock(c1, growth, n_layers)
        c2 = block2.out_channels // 2
        block3 = DenseBlock(c2, growth, n_layers)
        self.features = nn.Sequential(
            OrderedDict(
                conv0=_conv3(3, 16, stride=2, bias=False),  # 64 -> 32
                norm0=nn.BatchNorm2d(16),
                relu0=nn.ReLU(),
                denseblock1=block1,
                transition1=_transition(block1.out_channels, c1),  # 32 -> 16
                denseblock2=block2,
                transition2=_transition(block2.out_channels, c2),  # 16 -> 8
                denseblock3=block3,
                norm5=nn.BatchNorm2d(block3.out_channels),
                relu5=nn.ReLU(),
            )
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(block3.out_channels, num_classes)
        _kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(self.normalize(x))
        return self.classifier(self.flatten(self.avgpool(x)))


ARCHITECTURES: dict[str, type[nn.Module]] = {"vgg": TinyVGG, "resnet": TinyResNet, "densenet": TinyDenseNet}


def build(name: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised tiny model (torch's default initialisation, seeded by the caller)."""
    return ARCHITECTURES[name](num_classes)
