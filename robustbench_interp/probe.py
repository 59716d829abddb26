"""Fail fast: every submitted interpreter is imported, built and run once on a tiny batch before any
base model is loaded or any cell computed.

A plug-in's own mistakes (an import that fails, a constructor that refuses its keywords, an
``explain`` with the wrong signature, a map of the wrong shape or with NaNs) would otherwise surface
minutes later, after a base model was trained or a manipulation ran. :func:`probe_interpreters`
finds them in seconds, on two random images through a randomly initialised model of the run's
first architecture, track and device (the probe checks the plug-in's code, not its maps), inside the
same isolation as every interpreter call (a plug-in that changes the default dtype or leaves a
hook is refused), and says what to fix.

Two verdicts, so that a method that cannot keep the graph loses only what needs it:

- **refused**: it cannot be built, or ``explain`` fails (or, with ``check_maps``, returns a bad map)
  without ``create_graph``: none of its cells can run;
- **not attackable here**: it works without the graph but fails with ``create_graph=True`` (asked
  only of attacking, differentiable interpreters): its adaptive cells cannot run, its transfer
  scores can.

What the probe does not judge: whether the maps depend on the weights (a cell's gradient-masking
check decides that, and an interpreter that fails it is scored by transfer, not refused), nor any
property of the maps (the conformance checks of ``pytest suites/``). Built-in interpreters are not
probed: the project's tests run them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from robustbench_interp.errors import RBIError

#: Images of the probe batch.
PROBE_BATCH = 2


@dataclass
class ProbeResult:
    """What :func:`probe_interpreters` found: ``refused`` (spec -> reason: none of its cells can run),
    ``not_attackable`` (spec -> reason: only its adaptive cells cannot) and the seconds it took."""

    refused: dict[str, str] = field(default_factory=dict)
    not_attackable: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """One line per plug-in that failed, naming it, what it loses and the reason."""
        return [*(f"interpreter {spec} fails on a tiny batch: {reason}" for spec, reason in self.refused.items()),
                *(f"interpreter {spec} fails with create_graph=True on a tiny batch (its adaptive cells are not "
                  f"computed, its transfer scores are): {reason}" for spec, reason in self.not_attackable.items())]


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


def probe_model(track: str = "tiny", model: str | None = None, device: str | torch.device = "cpu") -> Any:
    """A randomly initialised ``model`` of ``track`` (its first standard one when None) on ``device``,
    seeded, as a :class:`~robustbench_interp.models.base.LoadedModel`."""
    from robustbench_interp.models import list_models
    from robustbench_interp.models.zoo import load_model

    name = model or next(m for m in list_models(track) if not m.endswith("-adv"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return load_model(track, name, weights="random", device=device, progress=False)


def probe_interpreter(spec: str, params: Mapping[str, Any] | None = None, *, loaded: Any, graph: bool = False,
                      check_maps: bool = True) -> str | None:
    """Build ``spec`` with ``params`` and run it once on two random images through ``loaded`` (a
    :func:`probe_model`), with ``create_graph=graph``; None when that works, else the reason, which
    names the spec and the fix. With ``check_maps`` the map must also be a finite floating
    ``[B, h, w]`` tensor on the expected grid."""
    interp = _build(spec, params)
    return interp if isinstance(interp, str) else _run(interp, spec, loaded, graph=graph, check_maps=check_maps)


def _build(spec: str, params: Mapping[str, Any] | None) -> Any:
    """The interpreter ``spec`` built with ``params``, or the reason it cannot be (a str)."""
    from robustbench_interp.interpreters import get_interpreter

    try:
        return get_interpreter(spec, **dict(params or {}))
    except RBIError as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - any failure of a plug-in's import or constructor is reported
        return f"building {spec!r} raised {type(exc).__name__}: {exc}"


def _run(interp: Any, spec: str, loaded: Any, *, graph: bool, check_maps: bool) -> str | None:
    """Run the built ``interp`` once on the probe batch (see :func:`probe_interpreter`)."""
    from robustbench_interp.attacks.finetune import expected_grid
    from robustbench_interp.interpreters.base import check_map
    from robustbench_interp.interpreters.isolation import isolated

    model, layer = loaded.model, loaded.target_layer
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(PROBE_BATCH, 3, *loaded.input_size, generator=generator).to(device)
    target = (torch.arange(PROBE_BATCH) % loaded.num_classes).to(device)
    try:
        with isolated(spec, model):
            h = interp.explain(model, x, target, layer=layer, create_graph=graph)
        if check_maps:
            check_map(spec, h, PROBE_BATCH, expected_grid(interp, model, layer, x))
    except RBIError as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - the plug-in's explain failed: say where, and the contract
        return (f"{spec}.explain(model, x[{PROBE_BATCH},3,{loaded.input_size[0]},{loaded.input_size[1]}], "
                f"target[{PROBE_BATCH}], layer=<target layer>, create_graph={graph}) raised {type(exc).__name__}: "
                f"{exc}; explain must return a finite Tensor[B, h, w] (the input's grid, or the target layer's for "
                "layer_level = True)")
    return None


def probe_interpreters(specs: Iterable[tuple[str, Mapping[str, Any]]], attacking: Iterable[str] = (), *,
                       check_maps: bool = True, track: str = "tiny", model: str | None = None,
                       device: str | torch.device = "cpu") -> ProbeResult:
    """Probe every plug-in among ``specs`` (``(spec, params)`` pairs; built-ins are skipped, each
    (spec, params) probed once) on a :func:`probe_model` of ``track``, ``model`` and ``device``:
    without the graph, and for those in ``attacking`` that declare themselves differentiable, with
    it (see the module doc for the two verdicts; ``check_maps`` as in :func:`probe_interpreter`)."""
    started = time.perf_counter()
    attacking = set(attacking)
    result = ProbeResult()
    seen: set[tuple[str, str]] = set()
    loaded = None
    for spec, params in specs:
        key = (spec, repr(sorted(dict(params).items())))
        if key in seen or is_builtin(spec):
            continue
        seen.add(key)
        interp = _build(spec, params)
        if isinstance(interp, str):
            result.refused[spec] = interp
            continue
        loaded = loaded or probe_model(track, model, device)
        reason = _run(interp, spec, loaded, graph=False, check_maps=check_maps)
        if reason is not None:
            result.refused[spec] = reason
        elif spec in attacking and interp.differentiable:
            reason = _run(interp, spec, loaded, graph=True, check_maps=check_maps)
            if reason is not None:
                result.not_attackable[spec] = reason
    result.seconds = time.perf_counter() - started
    return result
