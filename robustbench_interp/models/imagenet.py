"""The imagenet track's base models: torchvision VGG19, ResNet50 and DenseNet121 (SPEC section 3).

Each network is wrapped as ``nn.Sequential(normalize=Normalize(ImageNet mean/std), net=<torchvision
model>)`` so that it takes images in [0, 1]. Target layers (grid sizes at 224x224 input):

============  ===========================================  =====  ====================================
name          target layer (dotted, in the wrapper)        grid   paper
============  ===========================================  =====  ====================================
vgg19         ``net.features.33``                           14x14  input of conv5_4 (ReLU after conv5_3)
resnet50      ``net.layer4.1``                              7x7    input of the last bottleneck of layer4
densenet121   ``net.features.denseblock4.tap``              7x7    input of the last dense layer of block 4
============  ===========================================  =====  ====================================

As in the authors' code (``--lrp_target_layer`` 34 / 19 / 64: the map at the *input* of the named
module), never the output of the last block, after which only pooling and a linear head follow (the
gradient there is the same at every position). torchvision's dense block keeps its features as a list
and concatenates them inside each layer; the last block of DenseNet121 is given a forward that
concatenates the features entering its last layer once and passes them through ``tap``, a
parameter-free identity, so that they are one tensor, on the path both into the last layer and into
the block's output (the same numbers as torchvision's forward; no state-dict key changes).

Weights (``weights=``):

- ``None``: torchvision's ImageNet weights (``IMAGENET1K_V1``), read only from the local torch hub
  cache (``torch.hub.get_dir()/checkpoints/<file>``); nothing is downloaded. A missing file is a
  :class:`MissingResourceError` naming the expected path.
- a path: a local state dict (of the torchvision network, or of the whole wrapper), loaded with
  ``weights_only=True``.
- ``"random"``: random initialisation (for tests).

All ReLUs are made non-in-place, so that hooks and double backward (``create_graph=True``) work.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from robustbench_interp.errors import MissingResourceError
from robustbench_interp.models.base import Normalize
from robustbench_interp.models.cache import load_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = (224, 224)
NUM_CLASSES = 1000

#: name -> (torchvision builder name, weights enum name, target layer inside the torchvision net)
ARCHITECTURES: dict[str, tuple[str, str, str]] = {
    "vgg19": ("vgg19", "VGG19_Weights", "features.33"),
    "resnet50": ("resnet50", "ResNet50_Weights", "layer4.1"),
    "densenet121": ("densenet121", "DenseNet121_Weights", "features.denseblock4.tap"),
}

# DenseNet checkpoints from torchvision use "norm.1" where the modules are now "norm1".
_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def hub_checkpoint(name: str) -> Path:
    """Where torchvision's ImageNet weights of ``name`` are expected in the local torch hub cache."""
    import torchvision.models as tvm

    weights = getattr(tvm, ARCHITECTURES[name][1]).IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]


def _fix_densenet_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    fixed = {}
    for key, value in state.items():
        match = _DENSENET_KEY.match(key)
        fixed[match.group(1) + match.group(2) if match else key] = value
    return fixed


def _imagenet_state(name: str, weights: str | os.PathLike | None) -> dict[str, Tensor]:
    if weights is None:
        path = hub_checkpoint(name)
        if not path.is_file():
            raise MissingResourceError(
                f"torchvision's ImageNet weights of {name} are not in the local torch hub cache: expected "
                f"{str(path)!r}. Nothing is downloaded; copy the file there (e.g. from a machine with "
                f"internet: python -c \"import torchvision; torchvision.models.{ARCHITECTURES[name][0]}"
                f"(weights='IMAGENET1K_V1')\"), or pass weights=<local .pth state dict>."
            )
    else:
        path = Path(weights).expanduser()
    state = load_state_dict(path)
    state = {k.removeprefix("net."): v for k, v in state.items() if not k.startswith("normalize.")}
    return _fix_densenet_keys(state) if name == "densenet121" else state


def _no_inplace(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return model


class _TappedDenseBlock(nn.ModuleDict):
    """torchvision's ``_DenseBlock`` with the features entering its last layer named ``tap``."""

    def forward(self, init_features: Tensor) -> Tensor:
        layers = [module for key, module in self.items() if key != "tap"]
        features = [init_features]
        for layer in layers[:-1]:
            features.append(layer(features))
        x = self.tap(torch.cat(features, 1))
        return torch.cat([x, layers[-1](x)], 1)


def _tap_last_dense_block(net: nn.Module) -> None:
    block = net.features.denseblock4
    block.__class__ = _TappedDenseBlock
    block.add_module("tap", nn.Identity())


def build(name: str, weights: str | os.PathLike | None = None) -> tuple[nn.Module, str]:
    """``(wrapper, target layer name)`` for ImageNet model ``name`` with ``weights`` (see module doc)."""
    import torchvision.models as tvm

    builder: Callable[..., nn.Module] = getattr(tvm, ARCHITECTURES[name][0])
    random = isinstance(weights, str) and weights == "random"
    state = None if random else _imagenet_state(name, weights)  # fail before the slow build
    net = builder(weights=None)
    if state is not None:
        net.load_state_dict(state)
    _no_inplace(net)
    if name == "densenet121":
        _tap_last_dense_block(net)
    model = nn.Sequential(OrderedDict(normalize=Normalize(IMAGENET_MEAN, IMAGENET_STD), net=net))
    return model, "net." + ARCHITECTURES[name][2]
