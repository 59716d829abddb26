"""The fine-tuning loop's learning-rate schedule (attacks/finetune.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from robustbench_interp.attacks.finetune import lr_factor, manipulate
from robustbench_interp.config import AttackParams
from robustbench_interp.interpreters import get_interpreter


def test_lr_factor_is_constant_then_decays_linearly_over_the_cooldown():
    assert [lr_factor(s, 10, 0.0) for s in range(10)] == [1.0] * 10
    factors = [lr_factor(s, 10, 0.4) for s in range(10)]
    assert factors[:6] == [1.0] * 6
    assert factors[6:] == pytest.approx([1.0, 0.75, 0.5, 0.25])


@pytest.mark.parametrize("cooldown,expected", [(0.0, [1.0] * 4), (0.5, [1.0, 1.0, 1.0, 0.5])])
def test_the_loop_steps_with_the_scheduled_learning_rate(cooldown, expected):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    data = TensorDataset(torch.rand(8, 3, 8, 8), torch.arange(8) % 3)
    params = AttackParams(lr=1e-2, lam=1.0, steps=4, batch_size=8, cooldown=cooldown)
    result = manipulate(net, None, get_interpreter("simplegrad"), "location", params, data)
    assert [r["lr"] / params.lr for r in result.history] == pytest.approx(expected)
