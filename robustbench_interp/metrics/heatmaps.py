"""Operations on heatmaps shared by the attack penalties and the test losses (SPEC sections 2-4).

Maps are tensors ``h[B, h, w]``: one relevance value per grid position, as interpreters return
them. Every function here is differentiable where that makes sense, so the attacks can fine-tune
through it (Heo et al., NeurIPS 2019, section 3).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustbench_interp.errors import ConfigError

#: The epsilon of the normalisation n(h) = relu(h) / (max relu(h) + EPS) (SPEC section 2).
EPS = 1e-8


def check_maps(h: Tensor, name: str = "h") -> Tensor:
    """Return ``h`` if it is a floating ``[B, h, w]`` tensor; raise :class:`ConfigError` otherwise."""
    if not isinstance(h, Tensor) or h.dim() != 3:
        shape = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
        raise ConfigError(f"{name} must be a [B, h, w] tensor of heatmaps, got {shape}")
    if not h.is_floating_point():
        raise ConfigError(f"{name} must have a floating dtype, got {h.dtype}; convert it with .float()")
    return h


def check_pair(h: Tensor, h0: Tensor) -> None:
    """Check the maps of the manipulated (``h``) and original (``h0``) model: both ``[B, h, w]``, same shape."""
    check_maps(h, "h")
    check_maps(h0, "h0")
    if h.shape != h0.shape:
        raise ConfigError(
            f"the maps of w* and w0 must have the same shape, got {tuple(h.shape)} and {tuple(h0.shape)}"
        )


def normalize(h: Tensor) -> Tensor:
    """``n(h) = relu(h) / (max relu(h) + 1e-8)`` per image, the max taken over the grid.

    The result lies in [0, 1] with maximum 1 (0 for a map with no positive value). This is the
    normalisation of every penalty and test loss (SPEC section 2; Heo et al. 2019, section 3).
    Differentiable with respect to ``h``.
    """
    check_maps(h)
    r = torch.relu(h)
    peak = r.amax(dim=(1, 2), keepdim=True)
    return r / (peak + EPS)


#: A normalised map whose values span less than this over the grid is constant (SPEC section 8).
CONSTANT_SPAN = 1e-6


def empty_maps(h: Tensor) -> Tensor:
    """Boolean ``[B]``: the maps whose ``n(h)`` is all zero, i.e. no value above the normalisation's
    epsilon (a map with nothing positive says nothing a user could be misled by; SPEC section 8)."""
    check_maps(h)
    return torch.relu(h.detach()).amax(dim=(1, 2)) <= EPS


def constant_maps(h: Tensor) -> Tensor:
    """Boolean ``[B]``: the maps whose ``n(h)`` is the same at every position (empty maps included):
    they point nowhere, so no attack's test loss can call them fooled."""
    n = normalize(h.detach())
    span = n.amax(dim=(1, 2)) - n.amin(dim=(1, 2))
    return (span <= CONSTANT_SPAN) | empty_maps(h)


def location_mask(l_h: int, l_w: int, *, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """The Location target ``m[l_h, l_w]``: 1 on a border frame, 0 inside (SPEC section 3).

    The frame is ``max(1, l // 7)`` cells wide, ``l`` being the grid side; on a non-square grid the
    top and bottom bands use ``l_h`` and the left and right bands use ``l_w``
    (Heo et al. 2019, Appendix B, Remark 1).
    """
    if l_h < 1 or l_w < 1:
        raise ConfigError(f"a location mask needs a grid of at least 1x1 cells, got {l_h}x{l_w}")
    wh, ww = max(1, l_h // 7), max(1, l_w // 7)
    rows = torch.arange(l_h, device=device)
    cols = torch.arange(l_w, device=device)
    row_band = (rows < wh) | (rows >= l_h - wh)
    col_band = (cols < ww) | (cols >= l_w - ww)
    return (row_band[:, None] | col_band[None, :]).to(dtype)


def grid_coordinates(l_h: int, l_w: int, *, device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Row and column indices of an ``l_h x l_w`` grid, each as a ``[l_h, l_w]`` tensor."""
    rows = torch.arange(l_h, device=device, dtype=dtype)
    cols = torch.arange(l_w, device=device, dtype=dtype)
    return torch.meshgrid(rows, cols, indexing="ij")


def center_of_mass(hn: Tensor) -> Tensor:
    """Centre of mass ``C(hn)`` of non-negative (normalised) maps, ``[B, 2]`` as (row, col).

    ``C(h) = sum_j j * h_j / sum_j h_j`` with ``j`` the grid coordinates (Heo et al. 2019,
    section 3, after Ghorbani et al. 2019). A map with no mass (all zero) has no centre of mass;
    it is given the grid centre ``((l_h - 1) / 2, (l_w - 1) / 2)``, so that an empty map counts as
    "centred" rather than producing NaN. Differentiable with respect to ``hn``.
    """
    check_maps(hn, "hn")
    _, l_h, l_w = hn.shape
    rr, cc = grid_coordinates(l_h, l_w, device=hn.device, dtype=hn.dtype)
    mass = hn.sum(dim=(1, 2))
    has_mass = mass > 0
    safe = torch.where(has_mass, mass, torch.ones_like(mass))
    com = torch.stack([(hn * rr).sum(dim=(1, 2)), (hn * cc).sum(dim=(1, 2))], dim=1) / safe[:, None]
    centre = torch.tensor([(l_h - 1) / 2, (l_w - 1) / 2], device=hn.device, dtype=hn.dtype)
    return torch.where(has_mass[:, None], com, centre.expand_as(com))


def topk_count(n_positions: int, k: float) -> int:
    """How many positions the top ``k`` fraction of ``n_positions`` holds: ``ceil(k * n)``, at least 1.

    A tiny tolerance keeps float products such as ``0.1 * 30 = 3.0000000000000004`` at 3.
    """
    if not (isinstance(k, (int, float)) and 0 < k <= 1):
        raise ConfigError(f"k is the top-k fraction and must lie in (0, 1], got {k!r} (e.g. k=0.1 for 10%)")
    return max(1, math.ceil(k * n_positions - 1e-9))


def topk_mask(hn: Tensor, k: float = 0.1) -> Tensor:
    """Boolean ``[B, h, w]`` mask of the top ``k`` fraction of positions of each map.

    The count is ``ceil(k * h * w)``, at least 1 (SPEC section 3: k = 10%). Ties are broken
    deterministically: among equal values the position earlier in row-major order wins.
    """
    check_maps(hn, "hn")
    b, l_h, l_w = hn.shape
    count = topk_count(l_h * l_w, k)
    flat = hn.detach().reshape(b, -1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices[:, :count]
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask.scatter_(1, order, True)
    return mask.reshape(b, l_h, l_w)
