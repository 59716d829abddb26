"""2x2 composites for the Active fooling attack (Heo et al. 2019, section 3; SPEC section 3).

A composite holds one object of class ``c1`` and one of class ``c2`` in two random quadrants; the
other two quadrants hold an object of another class or background only. Items are
``(image [3,H,W] in [0,1], c1_mask [H,W] bool, c2_mask [H,W] bool)``: the masks mark the ``c1``
object and the ``c2`` object (on the tiny track their pixels; on the ImageNet track, which has no
segmentations, their whole quadrant). The classes themselves are the dataset's ``c1`` and ``c2``
attributes.

On the tiny track each quadrant is a 32x32 render of the tiny generator (objects at the small end
of the tiny scale range, so an object has the same size in pixels as in an ordinary small image);
the "train" part (1000 composites), the "heldout" part (500) and the "test" part (500) come from
separate seed streams. "train" is the attack's fine-tuning data, "heldout" is for choosing
hyper-parameters, and "test", which nothing is tuned on, is where the Active FSR is scored.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from robustbench_interp.data import tiny
from robustbench_interp.errors import ConfigError

PARTS = ("train", "heldout", "test")
DEFAULT_COMPOSITE_SIZES = {"train": 1000, "heldout": 500, "test": 500}
#: Probability that a filler quadrant holds an object of another class (else background only).
_FILLER_OBJECT_P = 0.5


class Composites(Dataset):
    """Active-fooling composites held in memory: ``images`` [N,3,H,W], ``c1_masks`` and
    ``c2_masks`` [N,H,W] (bool), ``quadrant_labels`` [N,4] (class in each quadrant, row-major
    top-left, top-right, bottom-left, bottom-right; -1 = background only), and the classes ``c1``, ``c2``.
    Items are ``(image, c1_mask, c2_mask)``.
    """

    def __init__(
        self, images: Tensor, c1_masks: Tensor, c2_masks: Tensor, quadrant_labels: Tensor, c1: int, c2: int
    ) -> None:
        self.images, self.c1_masks, self.c2_masks = images, c1_masks, c2_masks
        self.quadrant_labels = quadrant_labels
        self.c1, self.c2 = c1, c2

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.images[index], self.c1_masks[index], self.c2_masks[index]

    def __repr__(self) -> str:
        return f"Composites(c1={self.c1}, c2={self.c2}, n={len(self)})"


def check_part(part: str) -> str:
    if part not in PARTS:
        raise ConfigError(f"unknown composite part {part!r}; use one of {', '.join(PARTS)}.")
    return part


def _check_pair(c1: int, c2: int, num_classes: int) -> None:
    for c in (c1, c2):
        if not (isinstance(c, (int, np.integer)) and 0 <= c < num_classes):
            raise ConfigError(f"composite class {c!r} is not a class index in [0, {num_classes}).")
    if c1 == c2:
        raise ConfigError(f"the two Active classes must differ, got c1 = c2 = {c1}.")


def quadrant_layout(n: int, c1: int, c2: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Random quadrant contents [n, 4]: ``c1`` and ``c2`` once each in random quadrants, the two
    others another class (with probability 1/2) or -1 (background)."""
    others = np.array([k for k in range(num_classes) if k not in (c1, c2)])
    fill = rng.choice(others, size=(n, 2)) if len(others) else np.full((n, 2), -1)
    fill = np.where(rng.random((n, 2)) < _FILLER_OBJECT_P, fill, -1)
    layout = np.concatenate([np.full((n, 1), c1), np.full((n, 1), c2), fill], axis=1)
    order = np.argsort(rng.random((n, 4)), axis=1)  # a random permutation per row
    return np.take_along_axis(layout, order, axis=1)


def tile(quadrants: np.ndarray) -> np.ndarray:
    """[n, 4, ...C, h, w] quadrants (row-major) -> [n, ...C, 2h, 2w] composites."""
    top = np.concatenate([quadrants[:, 0], quadrants[:, 1]], axis=-1)
    bottom = np.concatenate([quadrants[:, 2], quadrants[:, 3]], axis=-1)
    return np.concatenate([top, bottom], axis=-2)


@functools.lru_cache(maxsize=8)
def tiny_composites(
    c1: int, c2: int, part: str, n: int | None = None, seed: int = tiny.DEFAULT_SEED
) -> Composites:
    """The tiny track's composites of classes ``c1`` and ``c2`` (64x64; see the module docstring)."""
    check_part(part)
    _check_pair(c1, c2, tiny.NUM_CLASSES)
    n = DEFAULT_COMPOSITE_SIZES[part] if n is None else int(n)
    rng = tiny.rng_for(seed, f"composites-{part}")
    layout = quadrant_layout(n, int(c1), int(c2), tiny.NUM_CLASSES, rng)
    half = tiny.IMAGE_SIZE // 2
    images, masks = tiny.render(
        layout.reshape(-1), rng, size=half, scale_range=tiny.COMPOSITE_SCALE_RANGE, clutter=3
    )
    images = tile(images.reshape(n, 4, 3, half, half))
    masks = masks.reshape(n, 4, half, half)
    c1_masks = tile(masks & (layout == c1)[:, :, None, None])
    c2_masks = tile(masks & (layout == c2)[:, :, None, None])
    return Composites(
        torch.from_numpy(np.ascontiguousarray(images)),
        torch.from_numpy(np.ascontiguousarray(c1_masks)),
        torch.from_numpy(np.ascontiguousarray(c2_masks)),
        torch.from_numpy(layout),
        int(c1),
        int(c2),
    )
