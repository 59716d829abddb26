"""The hyper-parameters of a cell from its track and its attack (SPEC section 3).

A cell's fine-tuning hyper-parameters come from two places: the track's manipulation schedule
(steps or epochs, batch size, cooldown, adversarial training of ``-adv`` models, per-interpreter
learning rates: :class:`~robustbench_interp.tracks.Track`) and the attack's preset on that track
(``lr``, ``lambda`` and the attack's own parameters: :class:`~robustbench_interp.attacks.Preset`).
On ImageNet the attacks carry the paper's table (Appendix B) for LRP_T and Grad-CAM; other
interpreters use the Grad-CAM row, a starting point rather than a tuned value. On tiny the values
come from a sweep (``docs/presets.md``). Every value can be overridden (``--lr``, ``--lam``, ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Any

from robustbench_interp.attacks.base import Attack
from robustbench_interp.attacks.registry import get_attack
from robustbench_interp.config import AttackParams, SearchSpace
from robustbench_interp.errors import ConfigError
from robustbench_interp.tracks import ADV_SUFFIX, Track, get_track


def _base_name(model: str) -> tuple[str, bool]:
    return (model[: -len(ADV_SUFFIX)], True) if model.endswith(ADV_SUFFIX) else (model, False)


def _attack_lr_lam(track: Track, attack: Attack, model: str, interpreter: str) -> tuple[float, float]:
    """The attack's (lr, lambda) for (model, interpreter) on the track, before per-interpreter learning rates."""
    found = attack.presets.get(track.name) or track.presets.get(attack.name)
    lr_lam = None if found is None else found.lookup(model, interpreter)
    if lr_lam is None:
        where = f"for model {model!r}; presets exist for {found.models()}" if found else f"on track {track.name!r}"
        raise ConfigError(
            f"attack {attack.name!r} has no preset {where}. Pass lr= and lam= (CLI: --lr, --lam), or add a "
            f"Preset for {track.name!r} to the attack's presets (or one for {attack.name!r} to the track's)."
        )
    return lr_lam


def _lr_lam(track: Track, attack: Attack, model: str, interpreter: str) -> tuple[float, float]:
    lr, lam = _attack_lr_lam(track, attack, model, interpreter)
    return track.interpreter_lr.get(interpreter, lr), lam


def search_space(track: str, model: str, attack: str | Attack, interpreter: str, budget: int | None = None
                 ) -> SearchSpace | None:
    """The attacker's search of a cell (SPEC section 9): the track's space centred on the attack's
    (lr, lambda) for the model, before any per-interpreter learning rate, so that every interpreter
    is searched over the same learning rates; ``budget`` (optimizer steps) replaces the track's.
    None when the track has no search or ``budget`` is 0 (the preset alone)."""
    spec, found = get_track(track), get_attack(attack)
    if spec.search is None and budget:
        raise ConfigError(f"the {spec.name} track has no attacker's search (its schedule counts epochs); drop "
                          f"--budget {budget}, or run a track with one (tiny)")
    if spec.search is None or budget == 0:
        return None
    center = _attack_lr_lam(spec, found, _base_name(model)[0], interpreter)
    return replace(spec.search, center=center, budget=spec.search.budget if budget is None else budget)


def preset(track: str, model: str, attack: str | Attack, interpreter: str, **overrides: Any
           ) -> tuple[AttackParams, dict[str, Any]]:
    """The fine-tuning :class:`AttackParams` of a cell and the attack's own parameters, with
    ``overrides`` applied last (e.g. ``lr=1e-5``, or ``k=0.2`` for Top-k).

    An ``-adv`` base model gets the track's free adversarial-training term (``adv=True``, its
    eps and replays). Its replays count as optimizer steps (budget parity, SPEC section 8): on a
    track whose schedule counts steps, an ``-adv`` cell takes ``steps // replays`` batches, each
    replayed ``replays`` times, so that it makes as many optimizer steps as a standard cell. Without
    a preset for the (track, model), ``lr`` and ``lam`` must be given.
    """
    spec, found = get_track(track), get_attack(attack)
    base, adv = _base_name(model)
    loop_names = {f.name for f in dataclasses.fields(AttackParams)}
    loop = {k: v for k, v in overrides.items() if k in loop_names}
    own = {k: v for k, v in overrides.items() if k not in loop_names}
    if "lr" in loop and "lam" in loop:
        lr, lam = loop["lr"], loop["lam"]
    else:
        lr, lam = _lr_lam(spec, found, base, interpreter)
    schedule = spec.schedule
    params = AttackParams(lr=lr, lam=lam, epochs=schedule.epochs, steps=schedule.steps,
                          batch_size=schedule.batch_size, cooldown=schedule.cooldown)
    if adv:
        params = replace(params, adv=True, eps=spec.adv_eps, replays=spec.adv_replays)
    own_preset = found.presets.get(spec.name) or spec.presets.get(found.name)
    preset_own = own_preset.params if own_preset is not None else {}
    try:
        attack_params = found.params_dict({**preset_own, **own})
    except ConfigError as exc:
        raise ConfigError(f"unknown hyper-parameter in {sorted(overrides)}: {exc}") from exc
    params = replace(params, **loop)
    if params.adv and params.steps is not None:  # the replays count as steps
        params = replace(params, steps=max(1, params.steps // params.replays))
    return params, attack_params
