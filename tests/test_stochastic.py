"""Stochastic interpreters (SPEC section 8): the attacker draws fresh noise at every optimizer step,
the reference maps of a step share its noise, and scoring uses a seed no step ever uses
(interpreters/noise.py, Interpreter.reseeded, attacks/finetune.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from robustbench_interp import Interpreter
from robustbench_interp.attacks.finetune import manipulate
from robustbench_interp.config import AttackParams
from robustbench_interp.errors import ConfigError, InterpreterError
from robustbench_interp.interpreters import get_interpreter, list_interpreters, smoothgrad
from robustbench_interp.interpreters.hyperparams import HyperParams, check_int
from robustbench_interp.interpreters.noise import (
    ATTACK_NOISE_BASE,
    MAX_ATTACK_STEPS,
    SCORING_NOISE_SEED,
    attack_noise_seed,
    is_attack_noise_seed,
    scoring_interpreter,
)

# ---- the seeds


def test_scoring_seed_is_never_an_attack_seed_by_construction():
    # attack_noise_seed(s, t) = BASE + (s mod 2**32) * 2**31 + t: affine in t with slope 1, so the
    # seeds of cell seed s fill [f(s, 0), f(s, 2**31 - 1)]; every such interval starts at or above
    # BASE = 2**63 (bit 63 set), and the scoring seed lies below it.
    assert ATTACK_NOISE_BASE == 2**63 and 0 <= SCORING_NOISE_SEED < ATTACK_NOISE_BASE
    assert not is_attack_noise_seed(SCORING_NOISE_SEED)
    for seed in range(100):
        first, last = attack_noise_seed(seed, 0), attack_noise_seed(seed, MAX_ATTACK_STEPS - 1)
        assert first >= ATTACK_NOISE_BASE > SCORING_NOISE_SEED
        assert attack_noise_seed(seed, 10**6) - first == 10**6 and last - first == MAX_ATTACK_STEPS - 1
        assert last < attack_noise_seed(seed + 1, 0)  # the cell seeds' intervals do not overlap either
        assert is_attack_noise_seed(first) and is_attack_noise_seed(last)


def test_attack_seeds_fit_a_torch_generator_and_steps_outside_the_range_are_refused():
    largest = attack_noise_seed(2**32 - 1, MAX_ATTACK_STEPS - 1)
    assert largest == 2**64 - 1
    torch.Generator().manual_seed(largest)
    for step in (-1, MAX_ATTACK_STEPS):
        with pytest.raises(ConfigError, match=f"optimizer step {step}"):
            attack_noise_seed(0, step)


# ---- reseeded


@pytest.mark.parametrize("name", [n for n in list_interpreters() if not get_interpreter(n).stochastic])
def test_a_deterministic_interpreter_reseeded_is_itself(name):
    interp = get_interpreter(name)
    assert interp.reseeded(attack_noise_seed(0, 3)) is interp
    assert scoring_interpreter(interp) is interp


def test_smoothgrad_is_stochastic_and_reseeded_changes_only_its_seed():
    interp = get_interpreter("smoothgrad", n_samples=3, seed=7)
    assert interp.stochastic
    other = interp.reseeded(11)
    assert other is not interp and type(other) is type(interp)
    assert interp.params["seed"] == 7  # self unchanged
    assert other.params == {**interp.params, "seed": 11}
    assert scoring_interpreter(interp).params["seed"] == SCORING_NOISE_SEED


def test_smoothgrad_maps_follow_the_seed():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    x, target = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    interp = get_interpreter("smoothgrad", n_samples=2)
    a, b, c = (interp.reseeded(s).explain(net, x, target) for s in (attack_noise_seed(0, 0),) * 2
               + (attack_noise_seed(0, 1),))
    assert torch.equal(a, b) and not torch.allclose(a, c)


class NoisyPlugin(Interpreter):
    """A plug-in with noise and no declared hyper-parameters: its seed arrives as a keyword."""

    stochastic = True

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        gen = torch.Generator().manual_seed(int(self.params.get("seed", 0)))
        return x.mean(1) + torch.rand(x.shape[-2:], generator=gen)


@dataclass(frozen=True)
class _NoSeed(HyperParams):
    n: int = 1

    def __post_init__(self) -> None:
        check_int(self, "n", at_least=1)


class NoisyWithoutSeed(Interpreter):
    stochastic = True
    hyperparams = _NoSeed

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        return x.mean(1) + torch.rand(x.shape[-2:])


def test_a_plugin_with_a_seed_keyword_needs_no_reseeded_of_its_own():
    plugin = NoisyPlugin(scale=2)
    plugin.name = "noisy"
    other = plugin.reseeded(5)
    assert other.params == {"scale": 2, "seed": 5} and other.name == "noisy" and plugin.params == {"scale": 2}
    x = torch.zeros(1, 3, 4, 4)
    assert torch.equal(other.explain(None, x, 0), plugin.reseeded(5).explain(None, x, 0))
    assert not torch.equal(other.explain(None, x, 0), plugin.reseeded(6).explain(None, x, 0))


def test_a_stochastic_plugin_without_a_seed_is_told_how_to_declare_one():
    with pytest.raises(InterpreterError, match="no 'seed' hyper-parameter.*override reseeded"):
        NoisyWithoutSeed().reseeded(1)


class FixedConstructor(NoisyPlugin):
    def __init__(self, scale: float) -> None:
        super().__init__(scale=scale)


def test_a_plugin_whose_constructor_takes_no_seed_is_told_to_override_reseeded():
    with pytest.raises(InterpreterError, match="could not be built again with seed=3.*overrides reseeded"):
        FixedConstructor(1.0).reseeded(3)


# ---- the manipulation


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


DATA = TensorDataset(torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 3)


@pytest.fixture
def noise_spy(monkeypatch):
    """Every noise tensor SmoothGrad draws, with its seed, in call order."""
    drawn: list[tuple[int, torch.Tensor]] = []
    original = smoothgrad.smoothgrad_noise

    def spy(x, n_samples, seed, noise_level):
        noise = original(x, n_samples, seed, noise_level)
        drawn.append((int(seed), noise.detach().clone()))
        return noise

    monkeypatch.setattr(smoothgrad, "smoothgrad_noise", spy)
    return drawn


def _run(seed: int, **params) -> nn.Module:
    params = {"lr": 1e-2, "lam": 1.0, "steps": 3, "batch_size": 4, **params}
    interp = get_interpreter("smoothgrad", n_samples=2)
    return manipulate(_net(), None, interp, "topk", AttackParams(**params), DATA, seed=seed).model


def test_every_optimizer_step_draws_fresh_noise_shared_with_its_reference_maps(noise_spy):
    _run(seed=3)
    # Top-k compares with the original model: per step the manipulated model's maps, then w0's.
    assert len(noise_spy) == 6
    steps = [noise_spy[i:i + 2] for i in range(0, 6, 2)]
    assert [s[0][0] for s in steps] == [attack_noise_seed(3, t) for t in range(3)]
    for (seed, noise), (seed0, noise0) in steps:  # common random numbers within a step
        assert seed == seed0 and torch.equal(noise, noise0)
    assert not torch.allclose(steps[0][0][1], steps[1][0][1])  # fresh noise from one step to the next
    assert SCORING_NOISE_SEED not in {seed for seed, _ in noise_spy}


def test_replays_of_an_adv_manipulation_count_as_steps_of_their_own(noise_spy):
    _run(seed=0, steps=2, adv=True, eps=0.01, replays=2)
    assert [seed for seed, _ in noise_spy[::2]] == [attack_noise_seed(0, t) for t in range(4)]


def test_the_same_cell_seed_gives_the_same_noise_and_the_same_model(noise_spy):
    first = _run(seed=3)
    seeds = [seed for seed, _ in noise_spy]
    noise_spy.clear()
    again = _run(seed=3)
    assert [seed for seed, _ in noise_spy] == seeds
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    noise_spy.clear()
    _run(seed=4)
    assert not {seed for seed, _ in noise_spy} & set(seeds)
