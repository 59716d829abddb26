"""SmoothGrad (Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise").

``h = mean_{s=1..n} simplegrad(x + eps_s)`` with ``eps_s ~ N(0, sigma^2)`` and
``sigma = noise_level * (max x - min x)`` per image (noise_level 0.15, as in Heo et al. 2019).

The noise comes from a local :class:`torch.Generator` seeded with ``seed``: the same seed gives the
same map. The ``n`` noise patterns are drawn once, with shape ``[n, 1, C, H, W]``, and shared by the
images of the batch (each scaled by its own sigma), so an image's map depends only on the image,
the seed and the input size -- never on the other images of the batch or on its position in it.

SmoothGrad is ``stochastic`` (SPEC section 8): in the benchmark its ``seed`` is set through
:meth:`~robustbench_interp.interpreters.base.Interpreter.reseeded`, to a fresh seed at every optimizer
step of a manipulation and to one seed no step uses for scoring
(:mod:`robustbench_interp.interpreters.noise`), so the attacker cannot fit ten fixed noise patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robustbench_interp.interpreters import register_interpreter
from robustbench_interp.interpreters.autograd import input_gradient
from robustbench_interp.interpreters.base import Interpreter, check_inputs
from robustbench_interp.interpreters.hyperparams import HyperParams, check_int, check_real


def smoothgrad_noise(x: Tensor, n_samples: int, seed: int, noise_level: float) -> Tensor:
    """The ``[n, B, C, H, W]`` noise SmoothGrad adds to ``x[B, C, H, W]`` (see the module doc)."""
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    pattern = torch.randn((n_samples, 1, *x.shape[1:]), generator=gen, device=x.device, dtype=x.dtype)
    flat = x.detach().flatten(1)
    sigma = noise_level * (flat.amax(dim=1) - flat.amin(dim=1))
    return pattern * sigma.view(1, -1, 1, 1, 1)


@dataclass(frozen=True)
class SmoothGradParams(HyperParams):
    """SmoothGrad's hyper-parameters.

    ``n_samples``: noisy copies averaged per image (>= 1). ``noise_level``: the noise's standard
    deviation as a fraction of the image's value range (>= 0; 0 gives ``simplegrad``). ``seed``: of
    the noise (the benchmark replaces it: see the module doc). ``max_batch``: images per forward/backward (the ``n * B`` noisy copies are chunked).
    """

    n_samples: int = 10
    noise_level: float = 0.15
    seed: int = 0
    max_batch: int = 128

    def __post_init__(self) -> None:
        check_int(self, "n_samples", at_least=1)
        check_real(self, "noise_level", at_least=0)
        check_int(self, "seed")
        check_int(self, "max_batch", at_least=1)


@register_interpreter("smoothgrad")
class SmoothGrad(Interpreter):
    """Mean of ``simplegrad`` over ``n_samples`` noisy copies of the input (:class:`SmoothGradParams`)."""

    hyperparams = SmoothGradParams
    stochastic = True

    def explain(
        self,
        model: nn.Module,
        x: Tensor,
        target: Tensor,
        *,
        layer: nn.Module | None = None,
        create_graph: bool = False,
    ) -> Tensor:
        x, target = check_inputs(x, target)
        n = int(self.params["n_samples"])
        noise = smoothgrad_noise(x, n, self.params["seed"], float(self.params["noise_level"]))
        noisy = (x.detach().unsqueeze(0) + noise).flatten(0, 1)
        max_batch = int(self.params["max_batch"])
        grads = input_gradient(model, noisy, target.repeat(n), create_graph, max_batch=max_batch)
        maps = grads.abs().amax(dim=1)
        return maps.view(n, *x.shape[:1], *maps.shape[1:]).mean(dim=0)
