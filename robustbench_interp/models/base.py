"""What every base model of every track provides: the model and the facts the benchmark needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class LoadedModel:
    """A base model ready for the benchmark (returned by :func:`robustbench_interp.load_model`).

    ``model`` is in eval mode and takes inputs in [0, 1] (any normalisation is inside it);
    ``target_layer`` is the module whose *output* is the grid of layer-level interpreters.
    """

    track: str
    name: str
    model: nn.Module
    target_layer: nn.Module
    num_classes: int
    input_size: tuple[int, int]
    target_layer_name: str = ""


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as the model's first layer, so inputs stay in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std
