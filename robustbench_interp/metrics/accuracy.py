"""Top-1 / top-5 accuracy of a model (SPEC section 4: reported for ``w0``, ``w*`` and their drops;
Heo et al. 2019, Table 3)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from robustbench_interp.errors import ConfigError

#: Top-5 accuracy is reported only for tasks with at least this many classes (SPEC section 4).
MIN_CLASSES_FOR_TOP5 = 10


def topk_correct(logits: Tensor, y: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """Number of rows of ``logits[B, C]`` whose true class ``y[B]`` is among the ``k`` highest, per k.

    Ties among logits follow ``torch.topk``. A ``k`` larger than ``C`` is an error.
    """
    if logits.dim() != 2 or y.shape != (logits.shape[0],):
        raise ConfigError(
            f"need logits [B, C] and labels [B], got {tuple(logits.shape)} and {tuple(y.shape)}"
        )
    num_classes = logits.shape[1]
    bad = [k for k in ks if not 1 <= k <= num_classes]
    if bad:
        raise ConfigError(f"top-k needs 1 <= k <= num_classes={num_classes}, got k={bad}")
    top = logits.topk(max(ks), dim=1).indices
    hit = top == y.to(top.device)[:, None]
    return {k: int(hit[:, :k].any(dim=1).sum()) for k in ks}


def _batches(data: Dataset | Iterable[Any], batch_size: int) -> Iterable[Any]:
    if isinstance(data, DataLoader) or not isinstance(data, Dataset):
        return data
    return DataLoader(data, batch_size=batch_size, shuffle=False)


def evaluate_accuracy(
    model: Callable[[Tensor], Tensor],
    data: Dataset | Iterable[Any],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    ks: Sequence[int] = (1, 5),
) -> dict[str, float | int | None]:
    """Top-k accuracies, in percent, of ``model`` on ``data`` (a Dataset or an iterable of batches).

    Items / batches are ``(x, y, ...)``; extra fields (e.g. object masks) are ignored. Runs under
    ``torch.no_grad``; an ``nn.Module`` must already be in eval mode (BatchNorm statistics frozen, as
    in the attacks), otherwise :class:`ConfigError` is raised rather than silently changing it.
    Returns ``{"top1": ..., "top5": ..., "n": N}`` (``"top{k}"`` for each k); top-k for k > 1 is
    ``None`` when the task has fewer than 10 classes.
    """
    if getattr(model, "training", False):
        raise ConfigError("evaluate_accuracy needs the model in eval mode; call model.eval() first")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    counts = {k: 0 for k in ks}
    n, num_classes = 0, None
    with torch.no_grad():
        for batch in _batches(data, batch_size):
            x, y = batch[0].to(device), torch.as_tensor(batch[1]).to(device)
            logits = model(x)
            num_classes = logits.shape[1]
            usable = [k for k in ks if k <= num_classes]
            for k, c in topk_correct(logits, y, usable).items():
                counts[k] += c
            n += int(y.shape[0])
    if n == 0:
        raise ConfigError("evaluate_accuracy got no data; check the dataset or loader is not empty")
    result: dict[str, float | int | None] = {}
    for k in ks:
        enough_classes = num_classes is not None and num_classes >= MIN_CLASSES_FOR_TOP5
        reported = k == 1 or (enough_classes and k <= num_classes)
        result[f"top{k}"] = 100.0 * counts[k] / n if reported else None
    result["n"] = n
    return result
