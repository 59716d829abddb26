"""The ``tiny`` track's data: procedurally generated shapes on clutter, with ground-truth masks.

Every image is 64x64 RGB in [0, 1] and holds one object of one of ten shape classes, drawn at a
random position and scale over a cluttered background. The generator is deterministic by seed and
vectorised with numpy, so the default splits (5000 / 1000 / 1000 images) take a few seconds; they
are generated once per process and kept in memory.

The class can only be read from the object's *shape*:

- the object's colour is drawn from the same distribution for every class (uniform in RGB, pushed
  away from the local background colour so the object stays visible; the push never looks at the
  class);
- the background (a random base colour, a random linear gradient, smooth low-frequency noise and
  3-8 distractor strokes and blobs that are no class shape) is drawn independently of the class;
- the object's position, scale and small rotation are drawn independently of the class;
- pixel noise covers the object and the background alike.

``tests/test_data_tiny.py`` checks that colour alone (mean colour of the image or of the object)
classifies at about chance level, and that the masks cover the objects.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

#: Bump when the generator changes: it is part of every cache key that depends on the data.
TINY_DATA_VERSION = 1

IMAGE_SIZE = 64
CLASSES: tuple[str, ...] = (
    "disc",
    "ring",
    "square",
    "frame",
    "triangle",
    "plus",
    "cross",
    "ell",
    "stripes",
    "star",
)
NUM_CLASSES = len(CLASSES)
SPLITS = ("train", "val", "test")
DEFAULT_SIZES = {"train": 5000, "val": 1000, "test": 1000}
DEFAULT_SEED = 0
# Each split draws from its own stream: SeedSequence(seed).spawn(...)[index]; composites use 3, 4.
_STREAM = {"train": 0, "val": 1, "test": 2, "composites-train": 3, "composites-heldout": 4, "composites-test": 5}

#: Object half-size in pixels (independent of class). Composite quadrants use the low end, so an
#: object has the same absolute size in a composite as in a small ordinary image.
SCALE_RANGE = (8.0, 14.0)
COMPOSITE_SCALE_RANGE = (8.0, 9.5)
_MAX_ROTATION = np.deg2rad(15.0)
_CHUNK = 500  # images generated at once (bounds the memory of the vectorised drawing)


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """The numpy Generator of one named stream ("train", "val", ...) of a dataset seed."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(len(_STREAM))[_STREAM[stream]])


# --------------------------------------------------------------------------------------------------
# Shapes: boolean masks in the object's local coordinates (u, v), the object spanning about [-1, 1].


def _shape_mask(label: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    box = np.maximum(au, av)
    r = np.hypot(u, v)
    name = CLASSES[label]
    if name == "disc":
        return r <= 0.95
    if name == "ring":
        return (r <= 0.95) & (r >= 0.55)
    if name == "square":
        return box <= 0.8
    if name == "frame":
        return (box <= 0.85) & (box >= 0.5)
    if name == "triangle":  # apex up
        return (v <= 0.8) & (v >= -0.9) & (au <= 0.95 * (v + 0.9) / 1.7)
    if name == "plus":
        return ((au <= 0.25) & (av <= 0.95)) | ((av <= 0.25) & (au <= 0.95))
    if name == "cross":
        p, q = np.abs(u + v) / np.sqrt(2), np.abs(u - v) / np.sqrt(2)
        return ((p <= 0.22) & (q <= 0.95)) | ((q <= 0.22) & (p <= 0.95))
    if name == "ell":
        return ((u >= -0.8) & (u <= -0.35) & (av <= 0.9)) | ((v >= 0.45) & (v <= 0.9) & (au <= 0.8))
    if name == "stripes":
        return (box <= 0.8) & (np.cos(u * 2.5 * np.pi) > 0)
    if name == "star":
        theta = np.arctan2(v, u)
        return r <= 0.95 * (0.45 + 0.55 * np.abs(np.cos(2.5 * theta)) ** 3)
    raise AssertionError(name)


def _render_objects(
    labels: np.ndarray, size: int, scale_range: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Boolean object masks [N, size, size]; label -1 draws no object."""
    n = len(labels)
    scale = rng.uniform(*scale_range, size=n)
    margin = scale + 1.0
    cx = rng.uniform(margin, size - 1 - margin)
    cy = rng.uniform(margin, size - 1 - margin)
    angle = rng.uniform(-_MAX_ROTATION, _MAX_ROTATION, size=n)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx = (xx[None] - cx[:, None, None]) / scale[:, None, None]
    dy = (yy[None] - cy[:, None, None]) / scale[:, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    masks = np.zeros((n, size, size), dtype=bool)
    for label in np.unique(labels):
        if label < 0:
            continue
        idx = labels == label
        masks[idx] = _shape_mask(int(label), u[idx], v[idx])
    return masks


# --------------------------------------------------------------------------------------------------
# Backgrounds and clutter (never depends on the class).


def _smooth_noise(n: int, size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency noise [N, 3, size, size]: a coarse random grid, bilinearly upsampled."""
    coarse = torch.from_numpy(rng.standard_normal((n, 3, cells, cells)).astype(np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)
    return fine.numpy()


def _backgrounds(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) - 0.5
    base = rng.uniform(0.15, 0.85, size=(n, 3, 1, 1))
    grad = rng.uniform(-0.35, 0.35, size=(n, 3, 2, 1, 1))
    img = (base + grad[:, :, 0] * xx + grad[:, :, 1] * yy).astype(np.float32)
    img += rng.uniform(0.03, 0.12, size=(n, 1, 1, 1)).astype(np.float32) * _smooth_noise(n, size, 6, rng)
    return img


def _add_clutter(img: np.ndarray, n_max: int, rng: np.random.Generator) -> None:
    """Paint distractor strokes (thin line segments) and small blobs, in place."""
    n, _, size, _ = img.shape
    if n_max < 1:
        return
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    unit = size / 64.0
    count = rng.integers(max(1, n_max // 2), n_max + 1, size=n)
    colours = rng.uniform(0.0, 1.0, size=(n, n_max + 1, 3)).astype(np.float32)
    top = np.full((n, size, size), n_max, dtype=np.int64)  # index of the topmost distractor; n_max = none
    for j in range(n_max):
        x0, y0 = rng.uniform(0, size, size=(2, n)).astype(np.float32)
        is_stroke = rng.random(n) < 0.6
        length = rng.uniform(6, 16, size=n) * unit
        angle = rng.uniform(0, np.pi, size=n)
        width = rng.uniform(0.6, 1.1, size=n)
        radius = rng.uniform(1.2, 2.6, size=n) * max(unit, 0.6)
        # distance from each pixel to the segment from (x0, y0); a blob is a zero-length segment
        ex = np.where(is_stroke, length * np.cos(angle), 0.0).astype(np.float32)[:, None, None]
        ey = np.where(is_stroke, length * np.sin(angle), 0.0).astype(np.float32)[:, None, None]
        px, py = xx[None] - x0[:, None, None], yy[None] - y0[:, None, None]
        t = np.clip((px * ex + py * ey) / np.maximum(ex * ex + ey * ey, 1e-6), 0.0, 1.0)
        dist2 = (px - t * ex) ** 2 + (py - t * ey) ** 2
        reach = np.where(is_stroke, width, radius).astype(np.float32)[:, None, None]
        top[(dist2 <= reach * reach) & (count > j)[:, None, None]] = j
    painted = top < n_max
    paint = np.take_along_axis(colours, top.reshape(n, -1, 1), axis=1).reshape(n, size, size, 3)
    img[:] = np.where(painted[:, None], paint.transpose(0, 3, 1, 2), img)


def _object_colours(background_mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform RGB colours, pushed to at least 0.45 (L2) from the background mean colour."""
    colour = rng.uniform(0.0, 1.0, size=background_mean.shape)
    diff = colour - background_mean
    dist = np.linalg.norm(diff, axis=1, keepdims=True)
    direction = np.where(dist > 1e-3, diff / np.maximum(dist, 1e-3), np.array([[1.0, 1.0, 1.0]]) / np.sqrt(3))
    pushed = background_mean + 0.45 * direction
    colour = np.where(dist < 0.45, pushed, colour)
    # pushing may leave the cube; fall back to the opposite direction, then clip
    outside = np.any((colour < 0) | (colour > 1), axis=1, keepdims=True)
    colour = np.where(outside, background_mean - 0.45 * direction, colour)
    return np.clip(colour, 0.0, 1.0)


def render(
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    size: int = IMAGE_SIZE,
    scale_range: tuple[float, float] = SCALE_RANGE,
    clutter: int = 6,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one image per label: ``(images [N,3,size,size] float32 in [0,1], masks [N,size,size] bool)``.

    A label of -1 gives background and clutter only (an empty mask).
    """
    labels = np.asarray(labels, dtype=np.int64)
    images, masks = [], []
    for start in range(0, len(labels), _CHUNK):
        chunk = labels[start : start + _CHUNK]
        n = len(chunk)
        img = _backgrounds(n, size, rng)
        _add_clutter(img, clutter, rng)
        mask = _render_objects(chunk, size, scale_range, rng)
        colour = _object_colours(img.mean(axis=(2, 3)), rng)
        shade = 1.0 + 0.15 * _smooth_noise(n, size, 4, rng)  # shading over the object
        obj = colour[:, :, None, None].astype(np.float32) * shade
        img = np.where(mask[:, None], obj, img)
        img += 0.03 * rng.standard_normal(size=img.shape, dtype=np.float32)
        images.append(np.clip(img, 0.0, 1.0, out=img))
        masks.append(mask)
    if not images:
        return np.zeros((0, 3, size, size), np.float32), np.zeros((0, size, size), bool)
    return np.concatenate(images), np.concatenate(masks)


def balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels, each class equally often (up to one), in random order."""
    return rng.permutation(np.arange(n) % num_classes)


# --------------------------------------------------------------------------------------------------
# Datasets.


class TinyShapes(Dataset):
    """One split of the tiny track: items ``(image [3,64,64] float32 in [0,1], label int)``.

    The tensors live in memory: ``images`` [N,3,64,64], ``labels`` [N] (int64), ``masks`` [N,64,64]
    (bool, the object's pixels); ``classes`` holds the class names. Build it with
    :func:`tiny_split` (cached per process) rather than directly.
    """

    classes: tuple[str, ...] = CLASSES

    def __init__(self, images: Tensor, labels: Tensor, masks: Tensor, *, split: str = "", seed: int = 0):
        self.images, self.labels, self.masks = images, labels, masks
        self.split, self.seed = split, seed

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        return f"TinyShapes(split={self.split!r}, seed={self.seed}, n={len(self)})"


@functools.lru_cache(maxsize=16)
def tiny_split(split: str, n: int | None = None, seed: int = DEFAULT_SEED) -> TinyShapes:
    """The ``split`` ("train", "val" or "test") of the tiny dataset, with ``n`` images (default:
    5000 / 1000 / 1000) drawn from the stream of ``seed``. Generated once per process."""
    from robustbench_interp.errors import ConfigError

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r} of the tiny track; use one of {', '.join(SPLITS)}.")
    n = DEFAULT_SIZES[split] if n is None else int(n)
    if n < 0:
        raise ConfigError(f"a split size must be >= 0, got n={n}.")
    rng = rng_for(seed, split)
    labels = balanced_labels(n, NUM_CLASSES, rng)
    images, masks = render(labels, rng)
    return TinyShapes(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        torch.from_numpy(masks),
        split=split,
        seed=seed,
    )
