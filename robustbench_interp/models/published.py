"""The published base weights of the tiny track (SPEC section 8, "Fixed base models").

The six tiny base models ship with the package as plain state dicts in
``robustbench_interp/weights/tiny/<name>.pt``, next to ``manifest.json``: per model the file's
SHA-256, the training config and its key, the accuracy on the val and test splits (and PGD accuracy
for ``-adv``), the torch version and the training seconds. :func:`load_published` checks a file
against the manifest before loading it, so every machine scores the same weights; a missing or
changed file is an error that names the file and the fix, never a silent re-training.

:func:`train_published` re-creates them (``rbi train``) with the published configs
(:data:`~robustbench_interp.models.zoo.DEFAULT_TRAIN_CONFIGS` and ``DEFAULT_ADV_CONFIGS``); the
recipe and the plateau measurement are in docs/base_models.md.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch import nn

from robustbench_interp.errors import ConfigError, MissingResourceError
from robustbench_interp.fileio import atomic_write_json

#: The folder of the published tiny weights (tests point it elsewhere with monkeypatch).
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "tiny"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
#: Test images of the PGD accuracy in the manifest (the first ones of the test split).
PGD_TEST_EXAMPLES = 500

_FIX = "restore it with `git checkout -- {path}` (or reinstall the package), or re-create it with `rbi train --track tiny`"


def weights_dir() -> Path:
    """The folder holding the published tiny weights and their manifest."""
    return Path(WEIGHTS_DIR)


def sha256_file(path: str | Path) -> str:
    """The SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: str | Path | None = None) -> dict[str, Any]:
    """The manifest of ``folder`` (default :func:`weights_dir`); a missing one is a
    :class:`MissingResourceError` naming the fix."""
    path = Path(folder or weights_dir()) / MANIFEST
    if not path.is_file():
        raise MissingResourceError(f"the manifest of the published tiny weights is missing: {path}; "
                                   + _FIX.format(path=path))
    with open(path) as f:
        return json.load(f)


def published_file(name: str, folder: str | Path | None = None) -> Path:
    """The checked weights file of the published model ``name`` (e.g. ``"resnet-adv"``).

    Raises :class:`MissingResourceError` when the manifest has no entry or the file is missing, and
    :class:`ConfigError` when the file's SHA-256 differs from the manifest's."""
    folder = Path(folder or weights_dir())
    entry = read_manifest(folder).get("models", {}).get(name)
    if entry is None:
        raise MissingResourceError(f"no published tiny model {name!r} in {folder / MANIFEST}; "
                                   "re-create it with `rbi train --track tiny --models " + name + "`")
    path = folder / entry["file"]
    if not path.is_file():
        raise MissingResourceError(f"the published weights of tiny/{name} are missing: {path}; "
                                   + _FIX.format(path=path))
    found = sha256_file(path)
    if found != entry["sha256"]:
        raise ConfigError(
            f"the published weights of tiny/{name} do not match their manifest: {path} has SHA-256 "
            f"{found}, {folder / MANIFEST} expects {entry['sha256']}; " + _FIX.format(path=path)
        )
    return path


def load_published(arch: str, adv: bool, folder: str | Path | None = None) -> nn.Module:
    """The published tiny model ``arch`` (``-adv`` when ``adv``), checked against the manifest; on
    the CPU, in eval mode. Never trains."""
    from robustbench_interp.models import cache, tiny
    from robustbench_interp.tracks.base import ADV_SUFFIX

    path = published_file(arch + ADV_SUFFIX if adv else arch, folder)
    model = tiny.build(arch)
    model.load_state_dict(cache.load_state_dict(path))
    return model.eval()


# --------------------------------------------------------------------------------------------------
# Re-creating them (rbi train).


def published_names() -> list[str]:
    """The six published names, standard models first (an ``-adv`` model starts from its standard one)."""
    from robustbench_interp.models.zoo import DEFAULT_TRAIN_CONFIGS
    from robustbench_interp.tracks.base import ADV_SUFFIX

    archs = sorted(DEFAULT_TRAIN_CONFIGS)
    return archs + [a + ADV_SUFFIX for a in archs]


def evaluate(model: nn.Module, adv_eps: float | None, pgd_steps: int = 10) -> dict[str, float]:
    """Top-1 on the val and test splits and, when ``adv_eps`` is given, PGD top-1 on the first
    500 images of each (the manifest's numbers)."""
    from robustbench_interp.data.tiny import tiny_split
    from robustbench_interp.models.adversarial import pgd_accuracy
    from robustbench_interp.models.training import accuracy

    scores: dict[str, float] = {}
    for split in ("val", "test"):
        data = tiny_split(split)
        scores[f"{split}_top1"] = accuracy(model, data)
        if adv_eps is not None:
            scores[f"{split}_pgd_top1"] = pgd_accuracy(model, data, eps=adv_eps, steps=pgd_steps,
                                                       max_examples=PGD_TEST_EXAMPLES)
    return scores


def train_published(
    names: Iterable[str] | None = None,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    report: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train the tiny base models ``names`` (default: all six) with the published configs into
    ``out_dir`` (default: :func:`weights_dir`, i.e. re-create the published weights) and write
    its manifest (entries of models not trained here are kept). An ``-adv`` model starts from its
    standard model: trained in the same call (and written only if asked for), or the one already in
    ``out`` with the published config's key. ``report(name, entry)``
    is called after each model. Returns the manifest."""
    from robustbench_interp.models import cache, zoo
    from robustbench_interp.tracks.base import ADV_SUFFIX

    available = published_names()
    names = available if names is None else list(dict.fromkeys(names))
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(f"unknown tiny model(s) {', '.join(map(repr, unknown))}; available: {', '.join(available)}.")
    out = Path(out_dir or weights_dir())
    out.mkdir(parents=True, exist_ok=True)
    try:
        manifest = read_manifest(out)
    except MissingResourceError:
        manifest = {"format": MANIFEST_FORMAT, "track": "tiny", "models": {}}
    standards: dict[str, nn.Module | None] = {}
    for name in sorted(names, key=available.index):
        adv = name.endswith(ADV_SUFFIX)
        arch = name[: -len(ADV_SUFFIX)] if adv else name
        if arch not in standards:
            standards[arch] = _standard_of(arch, names, out, manifest, progress) if adv else None
        if standards[arch] is None:
            standards[arch], std_card = zoo.train_standard(arch, zoo.DEFAULT_TRAIN_CONFIGS[arch], progress=progress)
        if adv:
            config = zoo.DEFAULT_ADV_CONFIGS[arch]
            model, card = zoo.train_adversarial(arch, config, standards[arch], progress=progress)
        else:
            config = zoo.DEFAULT_TRAIN_CONFIGS[arch]
            model, card = standards[arch], std_card
        path = out / f"{name}.pt"
        cache.save_state_dict(path, model.state_dict())
        entry = manifest_entry(path, config, card, model)
        manifest["models"][name] = entry
        manifest["models"] = {k: manifest["models"][k] for k in sorted(manifest["models"], key=_order(available))}
        atomic_write_json(out / MANIFEST, manifest)
        if report is not None:
            report(name, entry)
        elif progress:
            print(f"tiny/{name}: val {100 * entry['val_top1']:.1f}%, test {100 * entry['test_top1']:.1f}%",
                  file=sys.stderr)
    return manifest


def manifest_entry(path: Path, config: Any, card: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """The manifest entry of the weights file ``path`` of ``model``, trained with ``config`` (a
    ``TrainConfig``, or an ``AdvTrainConfig`` for ``-adv``) as its model ``card`` says."""
    import torch

    adv = hasattr(config, "eps")
    entry = {
        "file": path.name,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "key": config.key(),
        "config_type": type(config).__name__,
        "config": card["config"],
        **evaluate(model, config.eps if adv else None, getattr(config, "pgd_steps", 10)),
        "train_seconds": card["train_seconds"],
        "steps": card["steps"],
        "final_loss": card["final_loss"],
        "torch": torch.__version__,
        "python": card["python"],
        "threads": card["threads"],
    }
    if adv:
        entry["pgd"] = {**card["pgd"], "examples": PGD_TEST_EXAMPLES}
    return entry


def _standard_of(arch: str, names: list[str], out: Path, manifest: dict[str, Any], progress: bool) -> nn.Module | None:
    """The standard model an ``-adv`` model starts from when it is not trained in this call: the one in
    ``out`` if its manifest entry has the published config's key (training is deterministic, so
    training it again would give the same weights on this machine); else None (train it)."""
    from robustbench_interp.models.zoo import DEFAULT_TRAIN_CONFIGS

    entry = manifest["models"].get(arch)
    if arch in names or entry is None or entry.get("key") != DEFAULT_TRAIN_CONFIGS[arch].key():
        return None
    try:
        model = load_published(arch, False, out)
    except (MissingResourceError, ConfigError):
        return None
    if progress:
        print(f"tiny/{arch}-adv starts from {out / entry['file']}", file=sys.stderr)
    return model


def _order(available: list[str]) -> Callable[[str], tuple[int, str]]:
    return lambda name: (available.index(name) if name in available else len(available), name)


__all__ = ["WEIGHTS_DIR", "load_published", "published_file", "read_manifest", "sha256_file", "train_published"]
