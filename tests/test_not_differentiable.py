"""A differentiable map asked of an interpreter that declares ``differentiable = False`` is a
:class:`NotDifferentiableError` (an :class:`InterpreterError`, so a cell records it and the grid
carries on): the fine-tuning loop refuses it before any step, the runner stores the reason."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from robustbench_interp import Interpreter
from robustbench_interp.attacks.finetune import manipulate
from robustbench_interp.config import AttackParams
from robustbench_interp.errors import InterpreterError, NotDifferentiableError
from robustbench_interp.grid import build_grid
from robustbench_interp.interpreters import INTERPRETERS, register_interpreter
from robustbench_interp.runner import Runner
from robustbench_interp.store import Store


class MeanColour(Interpreter):
    """Looks at the input only: no gradient w.r.t. the weights to give."""

    differentiable = False

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        return x.mean(1)


def test_the_fine_tuning_loop_refuses_before_any_step():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    data = TensorDataset(torch.rand(8, 3, 8, 8), torch.arange(8) % 3)
    params = AttackParams(lr=1e-2, lam=1.0, steps=2, batch_size=8)
    interp = MeanColour()
    interp.name = "mean_colour"
    with pytest.raises(NotDifferentiableError, match="'mean_colour' is not differentiable") as info:
        manipulate(net, None, interp, "location", params, data)
    assert isinstance(info.value, InterpreterError)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_the_runner_stores_the_refusal_as_the_cells_reason(tmp_path, monkeypatch):
    from robustbench_interp.models import load_model

    monkeypatch.setattr(INTERPRETERS, "_entries", dict(INTERPRETERS._entries))
    monkeypatch.setattr(INTERPRETERS, "_origins", dict(INTERPRETERS._origins))
    register_interpreter("mean_colour")(MeanColour)
    bench = Runner(Store(tmp_path), eval_size=16, accuracy_size=64, aopc_size=8, batch_size=16,
                      log=lambda _m: None)
    bench.resources.add_base(load_model("tiny", "vgg", weights="random"))
    (cfg,) = build_grid("tiny", ["vgg"], ["location"], ["mean_colour"], overrides={"steps": 2, "batch_size": 8})
    record = bench.run_cell(cfg)
    assert record["status"] == "not_attackable"  # ranked by transfer only, never as robust
    assert record["reason"].startswith("NotDifferentiableError: interpreter 'mean_colour' declares itself")
