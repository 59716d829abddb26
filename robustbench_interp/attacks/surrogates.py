"""The penalty's surrogates: map transforms applied inside the attack only (SPEC section 9).

Every penalty and test loss normalises a map with ``n(h) = relu(h) / (max relu(h) + eps)``. Where
a map is negative, the ReLU passes no gradient: a class whose maps are negative on the whole frame
cannot be moved by the paper's penalty at all (on the tiny VGG, three classes of ten under Location
through Grad-CAM). A surrogate replaces the maps the *penalty* sees by a transform of them; the
test loss, and so every score, stays the paper's.

- ``relu``: the identity (the paper's penalty).
- ``softplus``: ``tau * softplus(h / tau)`` with ``tau = SOFTPLUS_TEMPERATURE * max |h|`` per map
  (a constant, detached). Values well above ``tau`` are nearly unchanged; negative values become
  small positive ones whose gradient, ``sigmoid(h / tau)``, is never zero, so the penalty can lift
  a negative region until the ReLU of the test loss passes it. The transform is monotone, so the
  order of the positions (Top-k's ranking) is kept.

Surrogates are one axis of the attacker's search space (:mod:`robustbench_interp.attacks.attacker`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from robustbench_interp.errors import ConfigError

#: ``tau`` of the softplus surrogate, as a fraction of the map's largest absolute value.
SOFTPLUS_TEMPERATURE = 0.1
#: Keeps ``tau`` above 0 on an all-zero map.
_TINY = 1e-12


def relu_surrogate(h: Tensor) -> Tensor:
    """The paper's penalty: the maps as they are."""
    return h


def softplus_surrogate(h: Tensor) -> Tensor:
    """``tau * softplus(h / tau)`` per map, ``tau = SOFTPLUS_TEMPERATURE * max |h|`` (detached)."""
    tau = SOFTPLUS_TEMPERATURE * h.detach().abs().amax(dim=tuple(range(1, h.dim())), keepdim=True) + _TINY
    return tau * F.softplus(h / tau)


#: Name -> transform of ``[B, h, w]`` maps.
SURROGATES: dict[str, Callable[[Tensor], Tensor]] = {"relu": relu_surrogate, "softplus": softplus_surrogate}


def get_surrogate(name: str) -> Callable[[Tensor], Tensor] | None:
    """The transform named ``name`` (None for ``relu``, which changes nothing)."""
    if name not in SURROGATES:
        raise ConfigError(f"unknown surrogate {name!r}; use one of {', '.join(SURROGATES)}")
    return None if name == "relu" else SURROGATES[name]
