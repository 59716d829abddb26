"""Fixtures of the benchmarks: a ResNet18 at 64x64, batch 32, the reference pass, and the judge of a ratio."""

from __future__ import annotations

import pytest
import torch
from steps import build
from torch import nn

from robustbench_interp.timing import Ratio

BATCH, SIZE, CLASSES = 32, 64, 10


@pytest.fixture(scope="session")
def bench_setup() -> tuple[nn.Module, nn.Module, torch.Tensor, torch.Tensor]:
    """``(model, target_layer, x, target)``: torchvision resnet18 (random weights) behind Normalize."""
    torch.manual_seed(0)
    return build("bench", SIZE, BATCH, torch.device("cpu"), CLASSES)


def forward_backward(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The reference: one forward pass and one backward pass to the input."""
    xg = x.detach().requires_grad_(True)
    score = model(xg).gather(1, target.view(-1, 1)).sum()
    return torch.autograd.grad(score, xg)[0]


def judge(benchmark, ratio: Ratio, bound: float | None, what: str, **extra: object) -> None:
    """Store ``ratio`` in the benchmark's extra_info and check ``bound`` on its median; a ratio
    whose spread is too wide to trust skips the test with its numbers instead of judging it."""
    benchmark.extra_info.update({**ratio.to_dict(), "bound": bound, **extra})
    print(f"\n{what}: {ratio.describe()}")
    if not ratio.trusted:
        pytest.skip(f"{what}: {ratio.describe()}")
    if bound is not None:
        assert ratio.median <= bound, f"{what}: median ratio {ratio.describe()}, over the bound {bound}"


def pytest_collect_file(file_path, parent):
    """Collect ``bench_*.py`` when the folder is given (``pytest benchmarks/``)."""
    name = file_path.name
    if file_path.suffix == ".py" and name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
