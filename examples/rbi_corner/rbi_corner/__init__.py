"""Corner fooling as a robustbench_interp attack plug-in: the whole attack in one class.

The manipulation pushes every explanation into the top-left corner of the grid: a square of side
``2 * (l // 7)`` cells (at least 1) of an ``l x l`` map, the target of the "Corner" fooling in the
code of Heo et al. (NeurIPS 2019). It is passive: the explanation stops depending on the object.

- penalty (what the fine-tuning minimises), the shape of the paper's Location loss with the corner
  square as the target: ``mean_i mean_j (n(h_i)_j - m_j)^2``;
- test loss (what the benchmark scores): the share of the normalised relevance that lies in the
  square, ``t_i = sum_j n(h_i)_j m_j / sum_j n(h_i)_j``; success when at least half of it does,
  ``t_i`` in [0.5, 1]. A map with no positive relevance has ``t_i = 0``, so an empty map is never
  counted as fooled.

Installed (``pip install -e examples/rbi_corner``) it registers as ``corner`` through the entry-point
group ``robustbench_interp.attacks``; without installing, ``--attacks rbi_corner:Corner`` with the
folder on ``PYTHONPATH`` names it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from robustbench_interp.attacks import PassiveAttack, Preset
from robustbench_interp.errors import ConfigError
from robustbench_interp.metrics import normalize


def corner_mask(l_h: int, l_w: int, side_fraction: int = 7, *, device=None, dtype=torch.float32) -> Tensor:
    """``[l_h, l_w]``: 1 on the top-left square of side ``2 * (min(l_h, l_w) // side_fraction)``
    (at least 1), 0 elsewhere."""
    side = max(1, 2 * (min(l_h, l_w) // side_fraction))
    mask = torch.zeros(l_h, l_w, device=device, dtype=dtype)
    mask[:side, :side] = 1.0
    return mask


@dataclass(frozen=True)
class CornerParams:
    """``side_fraction``: the square's side is ``2 * (l // side_fraction)`` cells (the authors': 7)."""

    side_fraction: int = 7

    def __post_init__(self) -> None:
        if isinstance(self.side_fraction, bool) or not isinstance(self.side_fraction, int) or self.side_fraction < 2:
            raise ConfigError(f"side_fraction must be an integer >= 2, got {self.side_fraction!r}")


class Corner(PassiveAttack):
    """Passive: the explanation of every image points at the top-left corner."""

    name = "corner"
    success_interval = (0.5, 1.0)
    uses_reference = False
    Params = CornerParams
    # tiny: the Location preset's learning rate and lambda (the same kind of target-mask loss)
    presets = {"tiny": Preset(lr=1e-3, lam=10.0)}

    def _mask(self, h: Tensor, params: CornerParams) -> Tensor:
        return corner_mask(h.shape[1], h.shape[2], params.side_fraction, device=h.device, dtype=h.dtype)

    def penalty(self, h: Tensor, h0: Tensor | None, params: CornerParams) -> Tensor:
        return (normalize(h) - self._mask(h, params)).square().mean()

    def test_loss(self, h: Tensor, h0: Tensor, params: CornerParams) -> Tensor:
        hn = normalize(h)
        total = hn.sum(dim=(1, 2))
        inside = (hn * self._mask(h, params)).sum(dim=(1, 2))
        return torch.where(total > 0, inside / total.clamp_min(1e-12), torch.zeros_like(total))
