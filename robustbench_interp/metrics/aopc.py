"""Area Over the Perturbation Curve, most-relevant-first (Samek, Binder, Montavon, Lapuschkin,
Müller, "Evaluating the Visualization of What a Deep Neural Network Has Learned", IEEE TNNLS 2017;
arXiv 2015/2016), a faithfulness check that does not depend on the map's scale.

The input is divided into ``patch x patch`` regions, ordered by the map's summed relevance in each;
the most relevant region is perturbed first, then the next, cumulatively, recording the model's
score of the true class after each step. ``AOPC = 1/(L+1) sum_{k=0..L} (f(x) - f(x_k))`` averaged
over the batch (Samek et al., eq. 12; the k=0 term is 0): a map that points at what the model uses
makes the score fall fast and the AOPC large.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from robustbench_interp.errors import ConfigError
from robustbench_interp.metrics.heatmaps import check_maps

REPLACEMENTS = ("uniform noise", "mean")
SCORES = ("prob", "logit")


def region_relevance(h: Tensor, input_size: tuple[int, int], patch: int) -> Tensor:
    """Relevance of each ``patch x patch`` input region, ``[B, H/patch, W/patch]``.

    A map on the input grid is average-pooled; a map already on the region grid is used as is; a
    map on another grid (a layer-level map) is upsampled to the input first, by exact block
    repetition when the input size is a multiple of the map's, bilinearly otherwise. (Average or
    sum pooling give the same ordering.)
    """
    check_maps(h)
    height, width = input_size
    grid = (height // patch, width // patch)
    rel = h.detach().float()[:, None]
    if tuple(h.shape[1:]) == grid:
        return rel[:, 0]
    if tuple(h.shape[1:]) != (height, width):
        exact = height % h.shape[1] == 0 and width % h.shape[2] == 0
        mode = "nearest" if exact else "bilinear"
        kwargs = {} if exact else {"align_corners": False}
        rel = F.interpolate(rel, size=(height, width), mode=mode, **kwargs)
    return F.avg_pool2d(rel, patch)[:, 0]


def _score(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, score: str) -> Tensor:
    logits = model(x)
    out = logits.softmax(dim=1) if score == "prob" else logits
    return out.gather(1, y[:, None])[:, 0].double()


@torch.no_grad()
def aopc_curve(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    h: Tensor,
    *,
    steps: int,
    patch: int,
    replace: Literal["uniform noise", "mean"] = "uniform noise",
    generator: torch.Generator | None = None,
    score: Literal["prob", "logit"] = "prob",
) -> tuple[Tensor, float]:
    """Most-relevant-first perturbation curve ``[steps + 1]`` (batch mean) and the AOPC scalar.

    ``x[B, C, H, W]`` with ``H`` and ``W`` multiples of ``patch``; ``y[B]`` the classes scored;
    ``h[B, h, w]`` the raw maps. ``replace`` fills perturbed regions with uniform noise in [0, 1]
    (inputs are in [0, 1], Samek et al.'s choice) or with the image's per-channel mean. ``score``
    is the softmax probability (default, comparable across models) or the logit of ``y``.
    Deterministic given ``generator`` (regions of equal relevance are taken in row-major order).
    The model must be in eval mode; no gradients are taken.
    """
    if getattr(model, "training", False):
        raise ConfigError("aopc_curve needs the model in eval mode; call model.eval() first")
    if replace not in REPLACEMENTS or score not in SCORES:
        raise ConfigError(
            f"replace must be one of {REPLACEMENTS} and score one of {SCORES}, got {replace!r}, {score!r}"
        )
    b, _, height, width = x.shape
    if patch < 1 or height % patch or width % patch:
        raise ConfigError(f"patch={patch} must divide the input size {height}x{width}")
    n_regions = (height // patch) * (width // patch)
    if not 1 <= steps <= n_regions:
        raise ConfigError(
            f"steps={steps} must lie in [1, {n_regions}] (the number of {patch}x{patch} regions)"
        )
    rel = region_relevance(h, (height, width), patch).reshape(b, -1)
    order = torch.sort(rel, dim=1, descending=True, stable=True).indices.to(x.device)
    if replace == "uniform noise":
        device = generator.device if generator is not None else x.device
        fill = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    else:
        fill = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    rows = torch.arange(height, device=x.device) // patch
    cols = torch.arange(width, device=x.device) // patch
    region_of_pixel = rows[:, None] * (width // patch) + cols[None, :]
    y = y.to(x.device)
    curve = [_score(model, x, y, score)]
    xp = x.clone()
    for k in range(steps):
        hit = (region_of_pixel[None] == order[:, k, None, None])[:, None]
        xp = torch.where(hit, fill, xp)
        curve.append(_score(model, xp, y, score))
    per_image = torch.stack(curve)  # [steps + 1, B]
    aopc = float((per_image[0:1] - per_image).mean())
    return per_image.mean(dim=1), aopc


def aopc_before_after(
    model0: Callable[[Tensor], Tensor],
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    h0: Tensor,
    h: Tensor,
    *,
    seed: int,
    steps: int = 16,
) -> dict[str, Any]:
    """AOPC (most relevant first) of the original model ``model0`` with its maps ``h0``, and of the
    manipulated ``model`` with its own maps ``h`` and with ``h0``: whether the manipulated maps
    still point at what the model uses. Regions are an eighth of the image's side; the noise that
    fills them is drawn from ``seed``, the same for the three curves."""
    patch = max(1, x.shape[-1] // 8)
    out: dict[str, Any] = {}
    for name, net, maps in (("w0_h0", model0, h0), ("wstar_hstar", model, h), ("wstar_h0", model, h0)):
        gen = torch.Generator(device=x.device).manual_seed(seed)
        curve, value = aopc_curve(net, x, y, maps.to(x.device), steps=steps, patch=patch, generator=gen)
        out[name] = {"aopc": value, "curve": curve.double().tolist()}
    return out
