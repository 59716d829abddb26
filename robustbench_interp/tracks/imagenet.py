"""The ``imagenet`` track (SPEC section 6): the paper's setting.

torchvision's VGG19, ResNet50 and DenseNet121 with their ImageNet weights from the local torch hub
cache (:mod:`robustbench_interp.models.imagenet`), the ImageNet validation set from a local folder
(:mod:`robustbench_interp.data.imagenet`), the paper's hyper-parameters (in the attacks' files).
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from robustbench_interp.errors import ConfigError
from robustbench_interp.tracks.base import Schedule, Track
from robustbench_interp.tracks.registry import register_track


@register_track
class ImageNetTrack(Track):
    name = "imagenet"
    description = "torchvision VGG19 / ResNet50 / DenseNet121, a local ImageNet folder (--data-root)"
    order = 1
    num_classes = 1000
    input_size = (224, 224)
    active_classes = (386, 555)  # African elephant, fire truck (the paper's pair)
    schedule = Schedule(epochs=1, batch_size=8)  # the paper: one pass, batch 8, constant lr
    adv_eps = 2 / 255
    adv_replays = 4
    # ImageNet has no labelled test split; its hyper-parameters are the paper's, not chosen on "val".
    eval_split = "val"
    eval_composites = "heldout"
    # No search yet: the attacker resumes configurations at rungs counted in steps, and the paper's
    # schedule counts one epoch. The attacker would measure on the end of "val" and "heldout", the
    # scorer on their start.
    search = None
    select_split = "val"
    select_composites = "heldout"

    def architectures(self) -> list[str]:
        from robustbench_interp.models.imagenet import ARCHITECTURES

        return sorted(ARCHITECTURES)

    def dataset(self, split: str, root: str | os.PathLike | None = None) -> Dataset:
        from robustbench_interp.data.imagenet import imagenet_split

        return imagenet_split(split, root)

    def composites(self, c1: int, c2: int, part: str, root: str | os.PathLike | None = None) -> Dataset:
        from robustbench_interp.data.imagenet import imagenet_composites

        return imagenet_composites(c1, c2, part, root)

    def build_model(self, arch: str, adv: bool, *, weights: Any, config: Any, progress: bool
                    ) -> tuple[nn.Module, str]:
        from robustbench_interp.models import imagenet

        if config is not None:
            raise ConfigError("config= applies to the tiny track only; imagenet models are not trained here.")
        if adv and weights is None:
            raise ConfigError(
                f"{arch}-adv: the benchmark does not adversarially train ImageNet models; pass "
                "weights=<local state dict of an adversarially trained model>."
            )
        return imagenet.build(arch, weights)
