"""Attack presets: the paper's table on ImageNet, the swept values on tiny, overrides on top."""

from __future__ import annotations

import pytest

from robustbench_interp.attacks.presets import ADV_EPS, preset
from robustbench_interp.config import Track
from robustbench_interp.errors import ConfigError


def test_imagenet_presets_are_the_papers_table():
    p = preset("imagenet", "resnet50", "location", "lrp_t")
    assert (p.lr, p.lam, p.batch_size, p.cooldown, p.active_reduction) == (1e-6, 4.0, 8, 0.0, "sum")
    assert (preset("imagenet", "densenet121", "active", "gradcam").lr,
            preset("imagenet", "densenet121", "active", "gradcam").lam) == (6e-6, 15.0)


def test_tiny_presets_use_the_swept_schedule_and_lrps_smaller_learning_rate():
    p = preset("tiny", "vgg", "location", "gradcam")
    assert (p.lr, p.lam, p.steps, p.batch_size, p.cooldown) == (1e-3, 10.0, 500, 32, 0.4)
    assert preset("tiny", "vgg", "location", "lrp").lr == 1e-4
    assert preset("tiny", "vgg", "active", "gradcam").active_reduction == "mean"


def test_an_adv_model_keeps_free_adversarial_training_and_overrides_apply_last():
    p = preset("tiny", "resnet-adv", "topk", "gradcam", lr=5e-4)
    assert p.adv and p.eps == ADV_EPS[Track.TINY] and p.replays > 1
    assert p.lr == 5e-4
    with pytest.raises(ConfigError, match="unknown hyper-parameter"):
        preset("tiny", "resnet", "topk", "gradcam", learning_rate=1e-3)
