"""The noise seeds of stochastic interpreters (SPEC section 8, "Stochastic interpreters").

The attacker draws fresh noise at every optimizer step (expectation over transformation, Athalye
et al. 2018, "Synthesizing Robust Adversarial Examples"), so the manipulated model cannot fit a
fixed set of noise patterns; scoring uses a noise seed that no manipulation step ever used. The two
kinds of seed live in disjoint halves of the 64-bit seeds a :class:`torch.Generator` takes::

    attack_noise_seed(seed, t) = 2**63 + (seed mod 2**32) * 2**31 + t     0 <= t < 2**31
    SCORING_NOISE_SEED         = 0
    SELECTION_NOISE_SEED       = 1

``t`` counts the optimizer steps of the manipulation with cell seed ``seed`` (an ``-adv`` cell's
replays included). Every attack seed has bit 63 set and the scoring seed has not, so they never
meet, whatever the seed or the step; the attacker measures its configurations on the fooling split
with a third seed (SPEC section 9), so the choice of a configuration never sees the scoring noise; and ``(seed mod 2**32, t)`` -> attack seed is one-to-one, so
two steps of a manipulation never share their noise. The scoring seed is SmoothGrad's default
seed, so a map scored before this rule existed was scored with the same noise.

An interpreter receives a seed through :meth:`Interpreter.reseeded`; a deterministic interpreter
ignores it.
"""

from __future__ import annotations

from robustbench_interp.errors import ConfigError
from robustbench_interp.interpreters.base import Interpreter

__all__ = [
    "ATTACK_NOISE_BASE",
    "MAX_ATTACK_STEPS",
    "SCORING_NOISE_SEED",
    "SELECTION_NOISE_SEED",
    "attack_noise_seed",
    "is_attack_noise_seed",
    "scoring_interpreter",
    "selection_interpreter",
]

#: The smallest attack-step seed: every attack-step seed has bit 63 set.
ATTACK_NOISE_BASE = 1 << 63
#: Optimizer steps a manipulation may count (``t < 2**31``) before its seeds would overlap the next cell seed's.
MAX_ATTACK_STEPS = 1 << 31
#: The one noise seed of every score (original and manipulated maps alike); below :data:`ATTACK_NOISE_BASE`.
SCORING_NOISE_SEED = 0
#: The noise seed with which the attacker measures its configurations (SPEC section 9); neither an
#: attack step's nor the scoring one.
SELECTION_NOISE_SEED = 1
_SEED_SPAN = 1 << 32


def attack_noise_seed(seed: int, step: int) -> int:
    """The noise seed of optimizer step ``step`` (0-based, replays counted) of the manipulation
    with cell seed ``seed``: ``2**63 + (seed mod 2**32) * 2**31 + step``, in ``[2**63, 2**64)``."""
    if not 0 <= step < MAX_ATTACK_STEPS:
        raise ConfigError(f"the optimizer step {step} of a manipulation must lie in [0, 2**31)")
    return ATTACK_NOISE_BASE + (int(seed) % _SEED_SPAN) * MAX_ATTACK_STEPS + int(step)


def is_attack_noise_seed(noise_seed: int) -> bool:
    """True when ``noise_seed`` is one that :func:`attack_noise_seed` can return."""
    return ATTACK_NOISE_BASE <= noise_seed < 1 << 64


def scoring_interpreter(interpreter: Interpreter) -> Interpreter:
    """``interpreter`` as every score must use it: its noise from :data:`SCORING_NOISE_SEED`
    (itself when it is deterministic). The runner builds its scorers with this."""
    return interpreter.reseeded(SCORING_NOISE_SEED)


def selection_interpreter(interpreter: Interpreter) -> Interpreter:
    """``interpreter`` as the attacker measures a configuration with it: its noise from
    :data:`SELECTION_NOISE_SEED` (itself when it is deterministic)."""
    return interpreter.reseeded(SELECTION_NOISE_SEED)
