"""Fail fast: every submitted interpreter is imported, built and run once on a tiny batch before any
base model is loaded or any cell computed.

A plug-in's own mistakes (an import that fails, a constructor that refuses its keywords, an
``explain`` with the wrong signature, a map of the wrong shape or with NaNs) would otherwise surface
minutes later, after a base model was trained or a manipulation ran. :func:`probe_interpreters`
finds them in seconds, on two random 64x64 images and a tiny VGG-style network with random weights
(whatever the track: the probe checks the plug-in's code, not its maps), and says what to fix.

What the probe does not judge: whether the maps depend on the weights (a cell's gradient-masking
check decides that, and an interpreter that fails it is scored by transfer, not refused), nor any
property of the maps (the conformance checks of ``pytest suites/``). Built-in interpreters are not
probed: the project's tests run them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from robustbench_interp.errors import RBIError

#: Images and classes of the probe batch.
PROBE_BATCH, PROBE_SIZE, PROBE_CLASSES = 2, 64, 10


def is_builtin(spec: str) -> bool:
    """True for an interpreter registered by this package itself (not a plug-in, not an import path)."""
    from robustbench_interp.interpreters import INTERPRETERS

    if ":" in spec:
        return False
    try:
        origin = INTERPRETERS.origin(spec)
    except RBIError:  # a registered plug-in that is broken: probed, so that its reason comes first
        return False
    return origin == "built-in" or origin.startswith("robustbench_interp.")


def _probe_model() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A tiny VGG-style network with random weights (seeded) and its target layer."""
    from robustbench_interp.models.zoo import load_tiny

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = load_tiny("vgg", False, "random", None, False).eval()
    return model, dict(model.named_modules())[model.target_layer_name]


def probe_interpreter(spec: str, params: Mapping[str, Any] | None = None, *, attacking: bool = False,
                      check_maps: bool = True) -> str | None:
    """Build ``spec`` with ``params`` and run it once on the probe batch (with ``create_graph`` when
    it attacks and declares itself differentiable); None when that works, else the reason, which
    names the spec and the fix. With ``check_maps`` the map must also be a finite floating
    ``[B, h, w]`` tensor on the expected grid (``pytest suites/`` leaves that to its conformance
    checks, which name the property)."""
    from robustbench_interp.attacks.finetune import expected_grid
    from robustbench_interp.interpreters import get_interpreter
    from robustbench_interp.interpreters.base import check_map

    try:
        interp = get_interpreter(spec, **dict(params or {}))
    except RBIError as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - any failure of a plug-in's import or constructor is reported
        return f"building {spec!r} raised {type(exc).__name__}: {exc}"
    model, layer = _probe_model()
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(PROBE_BATCH, 3, PROBE_SIZE, PROBE_SIZE, generator=generator)
    target = torch.arange(PROBE_BATCH) % PROBE_CLASSES
    graph = attacking and interp.differentiable
    try:
        h = interp.explain(model, x, target, layer=layer, create_graph=graph)
        if check_maps:
            check_map(spec, h, PROBE_BATCH, expected_grid(interp, model, layer, x))
    except RBIError as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - the plug-in's explain failed: say where, and the contract
        return (f"{spec}.explain(model, x[{PROBE_BATCH},3,{PROBE_SIZE},{PROBE_SIZE}], target[{PROBE_BATCH}], "
                f"layer=<target layer>, create_graph={graph}) raised {type(exc).__name__}: {exc}; explain must "
                "return a finite Tensor[B, h, w] (the input's grid, or the target layer's for layer_level = True)")
    return None


def probe_interpreters(specs: Iterable[tuple[str, Mapping[str, Any]]], attacking: Iterable[str] = (), *,
                       check_maps: bool = True) -> tuple[dict[str, str], float]:
    """Probe every plug-in among ``specs`` (``(spec, params)`` pairs; built-ins are skipped, each
    spec probed once, attacking when it is in ``attacking``; ``check_maps`` as in
    :func:`probe_interpreter`). Returns ``{spec: reason}`` for those that failed, and the seconds it took."""
    started = time.perf_counter()
    attacking = set(attacking)
    failures: dict[str, str] = {}
    seen: set[str] = set()
    for spec, params in specs:
        if spec in seen or is_builtin(spec):
            continue
        seen.add(spec)
        reason = probe_interpreter(spec, params, attacking=spec in attacking, check_maps=check_maps)
        if reason is not None:
            failures[spec] = reason
    return failures, time.perf_counter() - started
