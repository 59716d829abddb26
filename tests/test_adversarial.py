"""Free adversarial training's perturbation, PGD, and the tiny -adv models."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from robustbench_interp.models import (
    AdvTrainConfig,
    FreePerturbation,
    TrainConfig,
    cache,
    pgd_accuracy,
    pgd_attack,
    zoo,
)
from robustbench_interp.models.adversarial import free_adversarial_train

EPS = 8 / 255


def _small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(32, 10)).eval()  # fmt: skip


def test_free_perturbation_moves_by_the_sign_of_the_gradient():
    x = torch.full((4, 3, 8, 8), 0.5)
    pert = FreePerturbation(EPS, step_size=EPS / 4)
    x_adv = pert.perturb(x)
    assert torch.equal(x_adv, x) and pert.current.requires_grad
    weights = torch.randn_like(x)
    (x_adv * weights).sum().backward()  # gradient w.r.t. delta = weights
    pert.step()
    torch.testing.assert_close(pert.delta, EPS / 4 * weights.sign())
    # the next minibatch starts from the carried-over delta
    torch.testing.assert_close(pert.perturb(x) - x, EPS / 4 * weights.sign())


def test_free_perturbation_stays_in_the_ball_and_the_image_range():
    torch.manual_seed(0)
    pert = FreePerturbation(EPS)  # step = eps: every step would leave the ball without the projection
    for _ in range(20):
        x = torch.rand(5, 3, 8, 8)
        x_adv = pert.perturb(x)
        assert (x_adv - x).abs().max() <= EPS + 1e-6
        assert 0 <= x_adv.min() and x_adv.max() <= 1
        pert.step(grad=torch.randn_like(x))
        assert pert.delta.abs().max() <= EPS + 1e-6
        assert ((x + pert.delta) >= -1e-6).all() and ((x + pert.delta) <= 1 + 1e-6).all()


def test_free_perturbation_follows_batch_size_changes():
    pert = FreePerturbation(EPS)
    x = torch.full((4, 3, 8, 8), 0.5)
    pert.perturb(x)
    pert.step(grad=torch.ones_like(x))
    smaller = pert.perturb(x[:2])
    torch.testing.assert_close(smaller - x[:2], torch.full_like(x[:2], EPS))
    pert.step(grad=torch.zeros_like(x[:2]))  # sign(0) = 0: delta unchanged
    larger = pert.perturb(torch.full((6, 3, 8, 8), 0.5))
    assert torch.allclose(larger[:2] - 0.5, torch.tensor(EPS)) and torch.equal(larger[2:], torch.full_like(larger[2:], 0.5))
    with pytest.raises(RuntimeError, match="before perturb"):
        FreePerturbation(EPS).step()


def test_pgd_increases_the_loss_and_stays_in_the_ball():
    model = _small_model()
    torch.manual_seed(1)
    x, y = torch.rand(16, 3, 8, 8), torch.randint(0, 10, (16,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x_adv = pgd_attack(model, x, y, eps=EPS, steps=10, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1
    with torch.no_grad():
        clean, adv = (nn.functional.cross_entropy(model(z), y, reduction="none") for z in (x, x_adv))
    assert (adv >= clean - 1e-6).all() and adv.mean() > clean.mean()
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # PGD beats a random point of the ball
    noise = (x + EPS * torch.randint(0, 2, x.shape).float().mul(2).sub(1)).clamp(0, 1)
    with torch.no_grad():
        assert adv.mean() > nn.functional.cross_entropy(model(noise), y)


def test_pgd_accuracy_is_at_most_clean_accuracy():
    from torch.utils.data import TensorDataset

    from robustbench_interp.models import accuracy

    model = _small_model()
    torch.manual_seed(2)
    x = torch.rand(40, 3, 8, 8)
    data = TensorDataset(x, model(x).argmax(1).detach())  # labels the model gets right
    assert accuracy(model, data) == 1.0
    assert pgd_accuracy(model, data, eps=0.0, steps=2) == 1.0
    assert pgd_accuracy(model, data, eps=EPS, steps=5, batch_size=16, max_examples=30) < 1.0


def test_free_adversarial_training_is_deterministic(tmp_path, monkeypatch):
    from torch.utils.data import TensorDataset

    torch.manual_seed(3)
    data = TensorDataset(torch.rand(24, 3, 8, 8), torch.randint(0, 10, (24,)))
    config = AdvTrainConfig(eps=EPS, replays=2, batch_size=8, max_steps=5)
    states = []
    for _ in range(2):
        model = _small_model()
        torch.manual_seed(0)
        result = free_adversarial_train(model, data, config, progress=False)
        states.append(model.state_dict())
    assert result.steps == 5
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], _small_model().state_dict()[k]) for k in states[0])


def test_adv_variant_is_cached_with_its_card(tmp_path, monkeypatch):
    monkeypatch.setenv("RBI_CACHE_DIR", str(tmp_path))
    base = TrainConfig(epochs=1, batch_size=16, n_train=48, n_val=20, max_steps=3)
    config = AdvTrainConfig(base=base, replays=2, batch_size=16, max_steps=4, pgd_steps=2, pgd_eval_examples=20)
    runs = dict(zoo.TRAINING_RUNS)
    model = zoo.load_model("tiny", "resnet-adv", config=config, progress=False)
    assert zoo.TRAINING_RUNS == {"standard": runs["standard"] + 1, "adversarial": runs["adversarial"] + 1}
    _, card_path = cache.model_paths("tiny", "resnet-adv", config.key())
    card = json.loads(card_path.read_text())
    for key in ("standard_val_top1", "standard_val_pgd_top1", "adv_val_top1", "adv_val_pgd_top1"):
        assert 0.0 <= card[key] <= 1.0
    assert card["eps"] == config.eps and card["config"]["base"]["max_steps"] == 3
    again = zoo.load_model("tiny", "resnet-adv", config=config, progress=False)
    assert zoo.TRAINING_RUNS["adversarial"] == runs["adversarial"] + 1  # loaded, not trained
    sa, sb = model.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["vgg", "resnet", "densenet"])
def test_adv_model_is_more_robust_than_the_standard_one(arch):
    """With the default configs (trained or loaded from the cache): PGD accuracy at the same eps is
    clearly higher for the adversarially trained model, and its clean accuracy stays reasonable."""
    from robustbench_interp.data import get_dataset

    val = get_dataset("tiny", "val")
    eps = zoo.DEFAULT_ADV_CONFIGS[arch].eps
    standard = zoo.load_model("tiny", arch, progress=False).model
    adv = zoo.load_model("tiny", arch + "-adv", progress=False).model
    pgd_std = pgd_accuracy(standard, val, eps=eps, max_examples=500)
    pgd_adv = pgd_accuracy(adv, val, eps=eps, max_examples=500)
    assert pgd_adv >= pgd_std + 0.2
    from robustbench_interp.models import accuracy

    assert accuracy(adv, val) >= 0.6
