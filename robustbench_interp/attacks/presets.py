"""Hyper-parameter presets of the manipulation attacks, per track (SPEC section 3).

ImageNet: the paper's table (Heo et al. 2019, Appendix B; batch 8, Adam, eval mode), given for the
two attacking interpreters the paper used, LRP_T and Grad-CAM. Other interpreters on ImageNet fall
back to the Grad-CAM row: a starting point, not a tuned value; override ``lr`` / ``lam``.

tiny: chosen from a sweep on the tiny track; the command and its result are in ``docs/presets.md``.
Every value can be overridden (``preset(..., lr=..., lam=...)``, or the CLI's ``--lr`` / ``--lam``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from robustbench_interp.config import Attack, AttackParams, Track, as_enum
from robustbench_interp.errors import ConfigError

# (model, attack) -> {interpreter: (lr, lambda)}; paper Appendix B.
_IMAGENET: dict[tuple[str, Attack], dict[str, tuple[float, float]]] = {
    ("vgg19", Attack.LOCATION): {"lrp_t": (1e-6, 1), "gradcam": (1e-6, 1)},
    ("vgg19", Attack.TOPK): {"lrp_t": (5e-7, 1), "gradcam": (3e-7, 0.4)},
    ("vgg19", Attack.CENTER_MASS): {"lrp_t": (2e-6, 0.25), "gradcam": (1e-6, 0.25)},
    ("vgg19", Attack.ACTIVE): {"lrp_t": (2e-6, 2), "gradcam": (2e-6, 2)},
    ("resnet50", Attack.LOCATION): {"lrp_t": (1e-6, 4), "gradcam": (2e-6, 2)},
    ("resnet50", Attack.TOPK): {"lrp_t": (4e-7, 1.5), "gradcam": (3e-7, 4)},
    ("resnet50", Attack.CENTER_MASS): {"lrp_t": (6e-7, 0.5), "gradcam": (1e-7, 1)},
    ("resnet50", Attack.ACTIVE): {"lrp_t": (3e-6, 2), "gradcam": (1e-6, 2)},
    ("densenet121", Attack.LOCATION): {"lrp_t": (2e-6, 2), "gradcam": (2e-6, 2)},
    ("densenet121", Attack.TOPK): {"lrp_t": (1e-6, 1), "gradcam": (3e-6, 6)},
    ("densenet121", Attack.CENTER_MASS): {"lrp_t": (5e-7, 0.25), "gradcam": (2e-6, 0.25)},
    ("densenet121", Attack.ACTIVE): {"lrp_t": (4e-6, 15), "gradcam": (6e-6, 15)},
}
_IMAGENET_BATCH = 8

# tiny: attack -> (lr, lambda, steps, batch size); see docs/presets.md for the sweep behind them.
_TINY: dict[Attack, tuple[float, float, int, int]] = {
    Attack.LOCATION: (1e-3, 10.0, 500, 32),
    Attack.TOPK: (1e-3, 1.5, 500, 32),
    Attack.CENTER_MASS: (1e-3, 0.1, 500, 32),
    Attack.ACTIVE: (1e-3, 32.0, 500, 32),
}
# tiny learning rates that differ from the attack's, per attacking interpreter. LRP (input level):
# at lr 1e-3 the manipulation broke the ResNet and the DenseNet (Top-k left them 25 % and 16 % top-1);
# at 1e-4 the DenseNet keeps 96.6 % (docs/presets.md).
_TINY_INTERPRETER_LR: dict[str, float] = {"lrp": 1e-4}
# The learning rate decays linearly to 0 over the last 40 % of the steps, so that the accuracy
# settles after the large learning rate that moves the maps within a 2-core CPU budget.
_TINY_COOLDOWN = 0.4
# tiny's Active penalty is a mean over grid positions, so one lambda fits the 8x8 and 16x16 grids.
_TINY_ACTIVE_REDUCTION = "mean"

#: Free adversarial training kept during manipulation of an ``-adv`` base model (SPEC section 3).
ADV_REPLAYS = 4
ADV_EPS = {Track.TINY: 4 / 255, Track.IMAGENET: 2 / 255}


def _base_name(model: str) -> tuple[str, bool]:
    return (model[: -len("-adv")], True) if model.endswith("-adv") else (model, False)


def preset(track: Track | str, model: str, attack: Attack | str, interpreter: str, **overrides: Any) -> AttackParams:
    """The preset :class:`AttackParams` of a cell, with ``overrides`` applied (e.g. ``lr=1e-5``).

    An ``-adv`` base model gets the free adversarial-training term (``adv=True``, eps and replays
    of :data:`ADV_EPS` / :data:`ADV_REPLAYS`).
    """
    track, attack = as_enum(Track, track), as_enum(Attack, attack)
    base, adv = _base_name(model)
    if track is Track.IMAGENET:
        row = _IMAGENET.get((base, attack))
        if row is None:
            models = sorted({m for m, _ in _IMAGENET})
            raise ConfigError(
                f"no ImageNet preset for model {model!r}; presets exist for {models}. "
                "Pass lr= and lam= (CLI: --lr, --lam) to run another model."
            )
        lr, lam = row.get(interpreter, row["gradcam"])
        params = AttackParams(lr=lr, lam=lam, epochs=1, batch_size=_IMAGENET_BATCH)
    else:
        lr, lam, steps, batch = _TINY[attack]
        lr = _TINY_INTERPRETER_LR.get(interpreter, lr)
        params = AttackParams(lr=lr, lam=lam, steps=steps, batch_size=batch, cooldown=_TINY_COOLDOWN,
                              active_reduction=_TINY_ACTIVE_REDUCTION)
    if adv:
        params = replace(params, adv=True, eps=ADV_EPS[track], replays=ADV_REPLAYS)
    try:
        return replace(params, **overrides)
    except TypeError as exc:
        raise ConfigError(f"unknown hyper-parameter in {sorted(overrides)}: {exc}") from exc
