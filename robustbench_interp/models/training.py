"""Deterministic training of the tiny track's base models (seeded; same config -> same weights).

The recipe: Adam with weight decay, a short linear warm-up then cosine decay of the learning rate,
minibatches in an order drawn from the config's seed, BatchNorm in train mode, no augmentation (the
objects already sit at random positions and scales). ``torch.use_deterministic_algorithms`` is on
while training, so the same config on the same machine and torch build gives bit-identical weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from robustbench_interp.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """How a tiny base model is trained; its :meth:`key` identifies the cached weights.

    ``max_steps`` stops training early (unit tests use a handful of steps on tiny data).
    """

    epochs: int = 10
    lr: float = 2e-3
    batch_size: int = 32
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0
    data_seed: int = 0
    n_train: int = 5000
    n_val: int = 1000
    max_steps: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "n_train", "n_val"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)!r}.")
        if not self.lr > 0:
            raise ConfigError(f"TrainConfig.lr must be > 0, got {self.lr!r}.")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"TrainConfig.max_steps must be None or >= 1, got {self.max_steps!r}.")

    def key(self) -> str:
        """A stable hash of the config (with the data and model versions), the cache key."""
        return config_hash(self)


def config_hash(config: object, **extra: object) -> str:
    """sha256 (16 hex digits) of a frozen dataclass as sorted JSON, plus ``extra`` fields."""
    from robustbench_interp.data.tiny import TINY_DATA_VERSION
    from robustbench_interp.models.tiny import TINY_MODEL_VERSION

    payload = {
        "type": type(config).__name__,
        "config": dataclasses.asdict(config),  # type: ignore[arg-type]
        "data_version": TINY_DATA_VERSION,
        "model_version": TINY_MODEL_VERSION,
        **extra,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainResult:
    """What a training run reports (goes into the model card)."""

    val_accuracy: float
    train_seconds: float
    steps: int
    final_loss: float


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch's global RNG and turn deterministic algorithms on; restore both afterwards."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic)


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset | DataLoader, *, batch_size: int = 500, topk: int = 1) -> float:
    """Top-``topk`` accuracy (fraction in [0, 1]) of ``model`` (left in its current mode) on ``data``,
    a dataset or loader of ``(x, y)``."""
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size)
    device = _device_of(model)
    correct = total = 0
    for x, y in loader:
        x, y = x.to(device), torch.as_tensor(y).to(device)
        pred = model(x).topk(topk, dim=1).indices
        correct += (pred == y[:, None]).any(dim=1).sum().item()
        total += len(y)
    return correct / max(total, 1)


def _minibatches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def train_model(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    config: TrainConfig,
    *,
    progress: bool = True,
    desc: str = "train",
) -> TrainResult:
    """Train ``model`` in place on ``train_set`` (items ``(x, y)``) as ``config`` says; report the
    accuracy on ``val_set``. Deterministic: call it under :func:`deterministic` after seeding the
    model's initialisation (as :func:`robustbench_interp.models.cache.load_or_train` does)."""
    from tqdm.auto import tqdm

    device = _device_of(model)
    images, labels = _as_tensors(train_set)
    steps_per_epoch = math.ceil(len(labels) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = min(config.warmup_steps, max(1, total // 10))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, warmup))
    generator = torch.Generator().manual_seed(config.seed)
    start, step, loss_value = time.perf_counter(), 0, float("nan")
    bar = tqdm(total=total, desc=desc, unit="step", disable=not progress, file=sys.stderr, leave=False)
    model.train()
    for epoch in range(config.epochs):
        for idx in _minibatches(len(labels), config.batch_size, generator):
            if step >= total:
                break
            x, y = images[idx].to(device), labels[idx].to(device)
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            loss_value = loss.item()
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_value:.3f}")
    bar.close()
    model.eval()
    val = accuracy(model, val_set)
    seconds = time.perf_counter() - start
    if progress:
        print(f"{desc}: {step} steps in {seconds:.0f}s, val top-1 {100 * val:.1f}%", file=sys.stderr)
    return TrainResult(val_accuracy=val, train_seconds=seconds, steps=step, final_loss=loss_value)


def _as_tensors(dataset: Dataset) -> tuple[Tensor, Tensor]:
    """``(images, labels)`` of an in-memory dataset, or stacked from any dataset of ``(x, y)``."""
    images, labels = getattr(dataset, "images", None), getattr(dataset, "labels", None)
    if isinstance(images, Tensor) and isinstance(labels, Tensor):
        return images, labels
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))  # type: ignore[arg-type]
    return torch.stack(xs), torch.as_tensor(ys)
