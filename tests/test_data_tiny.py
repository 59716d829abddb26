"""The tiny track's generated data: deterministic, balanced, masks on the objects, colour uninformative."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustbench_interp.data import get_composites, get_dataset
from robustbench_interp.data.composites import tiny_composites
from robustbench_interp.data.tiny import CLASSES, NUM_CLASSES, render, rng_for, tiny_split
from robustbench_interp.errors import ConfigError, UnknownNameError
from robustbench_interp.tracks import get_track

N = 600  # small splits keep the tests fast; the statistics below hold at this size


@pytest.fixture(scope="module")
def train():
    return tiny_split("train", N)


@pytest.fixture(scope="module")
def val():
    return tiny_split("val", 300)


def test_items_shapes_and_ranges(train):
    x, y = train[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert isinstance(y, int) and 0 <= y < NUM_CLASSES
    assert train.images.shape == (N, 3, 64, 64)
    assert train.masks.shape == (N, 64, 64) and train.masks.dtype == torch.bool
    assert 0.0 <= train.images.min() and train.images.max() <= 1.0
    assert len(train.classes) == NUM_CLASSES >= 10 and len(set(train.classes)) == NUM_CLASSES


def test_labels_are_balanced(train):
    counts = torch.bincount(train.labels, minlength=NUM_CLASSES)
    assert counts.max() - counts.min() <= 1


def test_deterministic_by_seed_and_splits_differ():
    a = render(np.arange(10), rng_for(7, "train"))[0]
    b = render(np.arange(10), rng_for(7, "train"))[0]
    c = render(np.arange(10), rng_for(8, "train"))[0]
    d = render(np.arange(10), rng_for(7, "val"))[0]
    assert np.array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, d)


def test_every_image_has_an_object_and_masks_are_not_degenerate(train):
    area = train.masks.flatten(1).float().mean(1)
    assert (area > 0.01).all() and (area < 0.5).all()


def _ring_outside(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """Pixels within ``width`` of the mask but outside it (a cheap dilation)."""
    grown = mask.copy()
    for _ in range(width):
        g = grown.copy()
        g[1:] |= grown[:-1]
        g[:-1] |= grown[1:]
        g[:, 1:] |= grown[:, :-1]
        g[:, :-1] |= grown[:, 1:]
        grown = g
    return grown & ~mask


def test_mask_covers_the_object(train):
    """Inside the mask the colour is (nearly) uniform and differs from the pixels just outside it."""
    images, masks = train.images.numpy(), train.masks.numpy()
    contrast, spread = [], []
    for img, mask in zip(images[:200], masks[:200]):
        inside = img[:, mask]
        outside = img[:, _ring_outside(mask)]
        contrast.append(np.linalg.norm(inside.mean(1) - outside.mean(1)))
        spread.append(inside.std(1).mean())
    contrast, spread = np.array(contrast), np.array(spread)
    assert np.mean(contrast > 0.2) > 0.95
    assert np.median(spread) < 0.08  # a flat shaded colour plus pixel noise, no background inside


def _nearest_centroid_accuracy(f_train, y_train, f_test, y_test) -> float:
    centroids = np.stack([f_train[y_train == k].mean(0) for k in range(NUM_CLASSES)])
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-8
    d = (((f_test - mu) / sd)[:, None] - ((centroids - mu) / sd)[None]) ** 2
    return float((d.sum(-1).argmin(1) == y_test).mean())


def _colour_histogram(images: np.ndarray, bins: int = 4) -> np.ndarray:
    q = np.minimum((images * bins).astype(int), bins - 1)
    codes = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    return np.stack([np.bincount(c.ravel(), minlength=bins**3) for c in codes]) / codes[0].size


def _logistic_accuracy(f_train, y_train, f_test, y_test, steps: int = 300) -> float:
    torch.manual_seed(0)
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-8
    xt = torch.tensor((f_train - mu) / sd, dtype=torch.float32)
    xv = torch.tensor((f_test - mu) / sd, dtype=torch.float32)
    lin = torch.nn.Linear(xt.shape[1], NUM_CLASSES)
    opt = torch.optim.Adam(lin.parameters(), lr=0.05, weight_decay=1e-3)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(lin(xt), torch.as_tensor(y_train))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float((lin(xv).argmax(1).numpy() == y_test).mean())


def test_colour_alone_does_not_give_the_class_away(train, val):
    """Mean object colour, mean image colour and a colour histogram classify at about chance (10%)."""
    yt, yv = train.labels.numpy(), val.labels.numpy()
    it, iv = train.images.numpy(), val.images.numpy()
    mt, mv = train.masks.numpy(), val.masks.numpy()

    def obj_colour(images, masks):
        return np.stack([img[:, m].mean(1) for img, m in zip(images, masks)])

    chance, slack = 1 / NUM_CLASSES, 0.08
    assert _nearest_centroid_accuracy(obj_colour(it, mt), yt, obj_colour(iv, mv), yv) < chance + slack
    assert _nearest_centroid_accuracy(it.mean((2, 3)), yt, iv.mean((2, 3)), yv) < chance + slack
    assert _logistic_accuracy(_colour_histogram(it), yt, _colour_histogram(iv), yv) < chance + slack


def test_position_does_not_give_the_class_away(train, val):
    """The object's centre (from its mask) classifies at about chance."""

    def centres(masks):
        return np.array([[xs.mean(), ys.mean()] for ys, xs in (np.nonzero(m) for m in masks)], dtype=float)

    yt, yv = train.labels.numpy(), val.labels.numpy()
    acc = _nearest_centroid_accuracy(centres(train.masks.numpy()), yt, centres(val.masks.numpy()), yv)
    assert acc < 1 / NUM_CLASSES + 0.08


def test_get_dataset_api():
    ds = get_dataset("tiny", "test")
    assert len(ds) == 1000 and ds.classes == CLASSES
    assert get_dataset("tiny", "test") is ds  # generated once per process
    with pytest.raises(ConfigError, match="split"):
        get_dataset("tiny", "validation")
    with pytest.raises(UnknownNameError, match="tiny"):
        get_dataset("tinny", "val")


def test_composites_hold_one_object_of_each_class_in_different_quadrants():
    c1, c2 = get_track("tiny").active_classes
    comp = tiny_composites(c1, c2, "heldout", n=40)
    image, m1, m2 = comp[0]
    assert image.shape == (3, 64, 64) and m1.shape == m2.shape == (64, 64)
    assert (comp.c1, comp.c2) == (c1, c2)
    assert ((comp.quadrant_labels == c1).sum(1) == 1).all() and ((comp.quadrant_labels == c2).sum(1) == 1).all()
    assert not (comp.c1_masks & comp.c2_masks).any()
    for i in range(len(comp)):
        quads = []
        for mask in (comp.c1_masks[i], comp.c2_masks[i]):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert len(ys) > 20
            quad = {(int(y) // 32, int(x) // 32) for y, x in zip(ys, xs)}
            assert len(quad) == 1  # the object lies within one quadrant
            quads.append(quad.pop())
        assert quads[0] != quads[1]
        q1, q2 = (int(torch.nonzero(comp.quadrant_labels[i] == c).item()) for c in (c1, c2))
        assert quads == [(q1 // 2, q1 % 2), (q2 // 2, q2 % 2)]
    # the quadrants are not always in the same places
    assert len({int(torch.nonzero(row == c1).item()) for row in comp.quadrant_labels}) == 4


def test_composite_parts_differ_and_bad_classes_fail():
    c1, c2 = get_track("tiny").active_classes
    train_part = tiny_composites(c1, c2, "train", n=10)
    heldout = tiny_composites(c1, c2, "heldout", n=10)
    test_part = tiny_composites(c1, c2, "test", n=10)
    assert not torch.allclose(train_part.images, heldout.images)
    assert not torch.allclose(test_part.images, heldout.images)
    assert len(get_composites("tiny", c1, c2, "heldout")) == 500
    assert len(get_composites("tiny", c1, c2, "test")) == 500
    with pytest.raises(ConfigError, match="differ"):
        tiny_composites(c1, c1, "train", n=4)
    with pytest.raises(ConfigError, match="class index"):
        tiny_composites(c1, 99, "train", n=4)
    with pytest.raises(ConfigError, match="part"):
        tiny_composites(c1, c2, "validation", n=4)


def test_the_tiny_active_pair_is_triangle_and_cross():
    from robustbench_interp.data.tiny import CLASSES

    c1, c2 = get_track("tiny").active_classes
    assert (CLASSES[c1], CLASSES[c2]) == ("triangle", "cross")
