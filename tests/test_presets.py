"""Attack presets: the paper's table on ImageNet, the swept values on tiny, overrides on top."""

from __future__ import annotations

import pytest

from robustbench_interp.attacks.presets import preset
from robustbench_interp.errors import ConfigError
from robustbench_interp.tracks import get_track


def test_imagenet_presets_are_the_papers_table():
    p, own = preset("imagenet", "resnet50", "location", "lrp_t")
    assert (p.lr, p.lam, p.batch_size, p.cooldown, own) == (1e-6, 4.0, 8, 0.0, {})
    p, own = preset("imagenet", "densenet121", "active", "gradcam")
    assert (p.lr, p.lam, own) == (6e-6, 15.0, {})
    assert preset("imagenet", "vgg19", "topk", "simplegrad")[0].lr == 3e-7  # the Grad-CAM row


def test_tiny_presets_use_the_swept_schedule_and_lrps_smaller_learning_rate():
    p, _ = preset("tiny", "vgg", "location", "gradcam")
    assert (p.lr, p.lam, p.steps, p.batch_size, p.cooldown) == (1e-3, 10.0, 500, 32, 0.4)
    assert preset("tiny", "vgg", "location", "lrp")[0].lr == 1e-4
    assert preset("tiny", "vgg", "active", "gradcam")[1] == {}


def test_an_adv_model_keeps_free_adversarial_training_and_overrides_apply_last():
    p, own = preset("tiny", "resnet-adv", "topk", "gradcam", lr=5e-4, k=0.2)
    assert p.adv and p.eps == get_track("tiny").adv_eps and p.replays > 1
    # budget parity: an -adv cell makes as many optimizer steps (batches x replays) as a standard one
    assert p.steps * p.replays == preset("tiny", "resnet", "topk", "gradcam")[0].steps
    assert p.lr == 5e-4 and own == {"k": 0.2}
    with pytest.raises(ConfigError, match="unknown hyper-parameter"):
        preset("tiny", "resnet", "topk", "gradcam", learning_rate=1e-3)


def test_a_model_without_a_preset_says_which_have_one_unless_lr_and_lam_are_given():
    with pytest.raises(ConfigError, match="vgg19"):
        preset("imagenet", "vit", "location", "gradcam")
    p, _ = preset("imagenet", "vit", "location", "gradcam", lr=1e-6, lam=2.0)
    assert (p.lr, p.lam) == (1e-6, 2.0)
