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

import enum
import os

from torch.utils.data import Dataset

from robustbench_interp.data import tiny
from robustbench_interp.data.composites import Composites, tiny_composites
from robustbench_interp.data.tiny import TinyShapes, tiny_split
from robustbench_interp.errors import ConfigError, UnknownNameError


class Track(str, enum.Enum):
    """The benchmark's tracks: ``tiny`` (embedded, CPU) and ``imagenet`` (the paper's setting)."""

    TINY = "tiny"
    IMAGENET = "imagenet"

    @classmethod
    def parse(cls, track: str | Track) -> Track:
        """Convert a name to a :class:`Track` at once, so that a typo fails at the door."""
        try:
            return cls(track)
        except ValueError:
            names = ", ".join(repr(t.value) for t in cls)
            raise UnknownNameError(f"unknown track {track!r}; available tracks: {names}.") from None


#: The (c1, c2) classes of the Active attack per track: tiny "triangle" / "cross"; ImageNet
#: 386 African elephant / 555 fire truck (the paper's pair).
DEFAULT_ACTIVE_CLASSES: dict[str, tuple[int, int]] = {
    "tiny": (tiny.CLASSES.index("triangle"), tiny.CLASSES.index("cross")),
    "imagenet": (386, 555),
}

SPLITS = ("train", "val", "test")


def get_dataset(track: str | Track, split: str, *, root: str | os.PathLike | None = None) -> Dataset:
    """The ``split`` ("train", "val" or "test") of ``track``.

    tiny: the generated shapes dataset (5000 / 1000 / 1000 images; ``root`` is ignored).
    imagenet: the local ImageNet under ``root`` or ``$RBI_IMAGENET_ROOT``; "val" is the evaluation
    split (ImageNet has no labelled "test").
    """
    track = Track.parse(track)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    if track is Track.TINY:
        return tiny_split(split)
    from robustbench_interp.data.imagenet import imagenet_split

    return imagenet_split(split, root)


def get_composites(
    track: str | Track,
    c1: int | None = None,
    c2: int | None = None,
    part: str = "train",
    *,
    root: str | os.PathLike | None = None,
) -> Dataset:
    """Active-fooling composites of classes ``c1``, ``c2`` (default: :data:`DEFAULT_ACTIVE_CLASSES`).

    ``part`` is "train" (the attack's fine-tuning data) or "heldout" (where Active FSR is measured);
    the two never share an image. Items are ``(image, c1_mask, c2_mask)``.
    """
    track = Track.parse(track)
    d1, d2 = DEFAULT_ACTIVE_CLASSES[track.value]
    c1 = d1 if c1 is None else c1
    c2 = d2 if c2 is None else c2
    if track is Track.TINY:
        return tiny_composites(c1, c2, part)
    from robustbench_interp.data.imagenet import imagenet_composites

    return imagenet_composites(c1, c2, part, root)


__all__ = [
    "DEFAULT_ACTIVE_CLASSES",
    "Composites",
    "TinyShapes",
    "Track",
    "get_composites",
    "get_dataset",
]
