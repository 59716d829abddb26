"""The datasets of each track (SPEC section 6).

- ``get_dataset(track, split)``: items ``(image [3,H,W] float in [0,1], label int)``.
- ``get_composites(track, c1, c2, part)``: the Active attack's 2x2 composites, items
  ``(image, c1_mask, c2_mask)`` (see :mod:`robustbench_interp.data.composites`).

Bring your own data: anything the benchmark evaluates on is a :class:`torch.utils.data.Dataset` whose
items are ``(x [3,H,W] float in [0,1], y int)`` (the models normalise inside), so a
:class:`torchvision.datasets.ImageFolder` with ``transforms.ToTensor()`` or a
``TensorDataset(images, labels)`` works as it is. Composites for the Active attack are any dataset of
``(x, c1_mask, c2_mask)`` with ``c1`` and ``c2`` attributes, e.g. :class:`Composites` built by hand.
"""

from __future__ import annotations

import os

from torch.utils.data import Dataset

from robustbench_interp.data.composites import Composites
from robustbench_interp.data.tiny import TinyShapes
from robustbench_interp.errors import ConfigError


def get_dataset(track: str, split: str, *, root: str | os.PathLike | None = None) -> Dataset:
    """The ``split`` ("train", "val" or "test") of ``track`` (see the track's file for its data).

    tiny: the generated shapes dataset (5000 / 1000 / 1000 images; ``root`` is ignored).
    imagenet: the local ImageNet under ``root`` or ``$RBI_IMAGENET_ROOT``; "val" is the evaluation
    split (ImageNet has no labelled "test").
    """
    from robustbench_interp.tracks import get_track

    spec = get_track(track)
    if split not in spec.splits:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(spec.splits)}.")
    return spec.dataset(split, root)


def get_composites(
    track: str,
    c1: int | None = None,
    c2: int | None = None,
    part: str = "train",
    *,
    root: str | os.PathLike | None = None,
) -> Dataset:
    """Active-fooling composites of classes ``c1``, ``c2`` (default: the track's ``active_classes``).

    ``part`` is "train" (the attack's fine-tuning data), "heldout" (for choosing hyper-parameters)
    or, on tracks that have one, "test" (where the Active FSR is scored: the track's
    ``eval_composites``); no two parts share an image. Items are ``(image, c1_mask, c2_mask)``.
    """
    from robustbench_interp.tracks import get_track

    spec = get_track(track)
    d1, d2 = spec.active_classes
    return spec.composites(d1 if c1 is None else c1, d2 if c2 is None else c2, part, root)


__all__ = ["Composites", "TinyShapes", "get_composites", "get_dataset"]
