"""The model zoo: ``load_model(track, name)`` for every base model of every track.

tiny: "vgg", "resnet", "densenet" and "<name>-adv" (the same models after free adversarial training)
load the published weights shipped with the package (:mod:`.published`, checked by SHA-256); they
were trained by the benchmark with ``DEFAULT_TRAIN_CONFIGS`` / ``DEFAULT_ADV_CONFIGS`` and ``rbi train``
re-creates them. An explicit ``config=`` trains another recipe into the cache on first use.
imagenet: "vgg19", "resnet50", "densenet121" with torchvision's ImageNet weights from the local hub
cache; "<name>-adv" need a local weights file (``weights=<path>``): the benchmark does not run
adversarial training on ImageNet.

Bring your own model: build a :class:`~robustbench_interp.models.base.LoadedModel` by hand, e.g.
``LoadedModel(track="tiny", name="mine", model=net.eval(), target_layer=net.layer4,
num_classes=10, input_size=(64, 64), target_layer_name="layer4")``, with a model that takes images
in [0, 1] (put a :class:`~robustbench_interp.models.base.Normalize` first if it expects normalised
inputs).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time

import torch
from torch import nn

from robustbench_interp.errors import ConfigError, UnknownNameError
from robustbench_interp.models import cache, published, tiny
from robustbench_interp.models.adversarial import AdvTrainConfig, free_adversarial_train, pgd_accuracy
from robustbench_interp.models.base import LoadedModel
from robustbench_interp.models.device import resolve_device
from robustbench_interp.models.training import TrainConfig, accuracy, deterministic, train_model
from robustbench_interp.tracks.base import ADV_SUFFIX

#: The published recipe per tiny architecture (docs/base_models.md): 30 epochs, trained to a plateau
#: where the control fine-tune (the manipulation with lambda = 0) moves the test top-1 by at most
#: 0.5 point. At 10-14 epochs it did not: the ResNet gained 0.6-1.2 points under the control (96.6 %
#: test top-1 -> 97.2-97.8 %); at 30 it has 98.9 %.
DEFAULT_TRAIN_CONFIGS = {
    "vgg": TrainConfig(epochs=30),
    "resnet": TrainConfig(epochs=30),
    "densenet": TrainConfig(epochs=30),
}
#: Free adversarial training per architecture: 4 epochs (16 replayed passes) from the published
#: standard model, so that the control of an ``-adv`` model (125 batches x 4 replays, the same free
#: adversarial training) finds it at its plateau too.
DEFAULT_ADV_CONFIGS = {arch: AdvTrainConfig(base=config, epochs=4) for arch, config in DEFAULT_TRAIN_CONFIGS.items()}

# Counts of actual training runs in this process (tests check that a cached load does not train).
TRAINING_RUNS = {"standard": 0, "adversarial": 0}


def list_tracks() -> list[str]:
    """The tracks' names (tiny first)."""
    from robustbench_interp.tracks import list_tracks as _list_tracks

    return _list_tracks()


def list_models(track: str) -> list[str]:
    """The base models of ``track``, standard and adversarially trained (``-adv``), sorted."""
    from robustbench_interp.tracks import get_track

    return get_track(track).models()


def _split_name(track: str, name: str) -> tuple[str, bool]:
    import difflib

    available = list_models(track)
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(
            f"unknown {track} model {name!r}.{hint} Available: {', '.join(available)}."
        )
    adv = name.endswith(ADV_SUFFIX)
    return (name[: -len(ADV_SUFFIX)] if adv else name), adv


# --------------------------------------------------------------------------------------------------
# tiny: published weights by default; other recipes trained once, cached, loaded.


def _random_tiny(arch: str, seed: int = 0) -> nn.Module:
    with deterministic(seed):
        return tiny.build(arch).eval()


def train_standard(arch: str, config: TrainConfig, *, progress: bool = True) -> tuple[nn.Module, dict]:
    """Train the tiny standard model ``arch`` with ``config`` (deterministically, from the seeded
    initialisation); returns the model (CPU, eval mode) and its model card. Caches nothing."""
    from robustbench_interp.data.tiny import tiny_split

    train_set = tiny_split("train", config.n_train, config.data_seed)
    val_set = tiny_split("val", config.n_val, config.data_seed)
    with deterministic(config.seed):
        model = tiny.build(arch)
        result = train_model(model, train_set, val_set, config, progress=progress, desc=f"tiny/{arch}")
    TRAINING_RUNS["standard"] += 1
    card = {
        "track": "tiny",
        "name": arch,
        "key": config.key(),
        "config": dataclasses.asdict(config),
        "val_top1": result.val_accuracy,
        "train_seconds": result.train_seconds,
        "steps": result.steps,
        "final_loss": result.final_loss,
        **_environment(),
    }
    return model.eval(), card


def train_adversarial(
    arch: str, config: AdvTrainConfig, standard: nn.Module, *, progress: bool = True
) -> tuple[nn.Module, dict]:
    """Free adversarial training of a copy of ``standard`` (the tiny model ``arch`` trained with
    ``config.base``) as ``config`` says; returns the model and its card, which records clean and PGD
    accuracy of both models on the val split. Caches nothing."""
    from robustbench_interp.data.tiny import tiny_split

    train_set = tiny_split("train", config.base.n_train, config.base.data_seed)
    val_set = tiny_split("val", config.base.n_val, config.base.data_seed)
    with deterministic(config.seed):
        model = tiny.build(arch)
        model.load_state_dict(standard.state_dict())
        result = free_adversarial_train(model, train_set, config, progress=progress, desc=f"tiny/{arch}-adv")
    TRAINING_RUNS["adversarial"] += 1
    start = time.perf_counter()
    scores = {}
    for label, net in (("standard", standard), ("adv", model)):
        scores[f"{label}_val_top1"] = accuracy(net, val_set)
        scores[f"{label}_val_pgd_top1"] = pgd_accuracy(
            net, val_set, eps=config.eps, steps=config.pgd_steps, max_examples=config.pgd_eval_examples
        )
    if progress:
        print(
            f"tiny/{arch}-adv: clean {100 * scores['standard_val_top1']:.1f}% -> "
            f"{100 * scores['adv_val_top1']:.1f}%, PGD(eps={config.eps:.4f}) "
            f"{100 * scores['standard_val_pgd_top1']:.1f}% -> {100 * scores['adv_val_pgd_top1']:.1f}% "
            f"(evaluated in {time.perf_counter() - start:.0f}s)",
            file=sys.stderr,
        )
    card = {
        "track": "tiny",
        "name": arch + ADV_SUFFIX,
        "key": config.key(),
        "config": dataclasses.asdict(config),
        "eps": config.eps,
        "pgd": {"eps": config.eps, "steps": config.pgd_steps, "step_size": 2.5 * config.eps / config.pgd_steps,
                "random_start": True, "examples": min(config.pgd_eval_examples, len(val_set))},
        **scores,
        "val_top1": scores["adv_val_top1"],
        "train_seconds": result.train_seconds,
        "steps": result.steps,
        "final_loss": result.final_loss,
        **_environment(),
    }  # fmt: skip
    return model.eval(), card


def _cached(arch: str, weights_path) -> nn.Module | None:
    if not weights_path.is_file():
        return None
    model = tiny.build(arch)
    model.load_state_dict(cache.load_state_dict(weights_path))
    return model.eval()


def load_or_train(arch: str, config: TrainConfig | None = None, *, progress: bool = True) -> nn.Module:
    """The tiny standard model ``arch`` trained with ``config``: from the cache if there, else trained
    (deterministically), cached with its model card, and returned. On the CPU, in eval mode.
    ``config`` defaults to ``DEFAULT_TRAIN_CONFIGS[arch]`` (the published recipe; the default
    ``load_model`` path loads the published weights instead, see :mod:`.published`)."""
    config = config or DEFAULT_TRAIN_CONFIGS[arch]
    weights_path, card_path = cache.model_paths("tiny", arch, config.key())
    model = _cached(arch, weights_path)
    if model is None:
        model, card = train_standard(arch, config, progress=progress)
        cache.save_state_dict(weights_path, model.state_dict())
        cache.write_card(card_path, card)
    return model


def load_or_adv_train(arch: str, config: AdvTrainConfig | None = None, *, progress: bool = True) -> nn.Module:
    """The tiny model ``arch`` after free adversarial training from its standard model (``config.base``);
    cached like :func:`load_or_train`. The card records clean and PGD accuracy of both models.
    ``config`` defaults to ``DEFAULT_ADV_CONFIGS[arch]``."""
    config = config or DEFAULT_ADV_CONFIGS[arch]
    weights_path, card_path = cache.model_paths("tiny", arch + ADV_SUFFIX, config.key())
    model = _cached(arch, weights_path)
    if model is None:
        standard = load_or_train(arch, config.base, progress=progress)
        model, card = train_adversarial(arch, config, standard, progress=progress)
        cache.save_state_dict(weights_path, model.state_dict())
        cache.write_card(card_path, card)
    return model


def _environment() -> dict[str, object]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def load_tiny(arch: str, adv: bool, weights: str | os.PathLike | None, config, progress: bool) -> nn.Module:
    """A tiny model: random (``weights="random"``), from a local state dict, the published weights
    (``weights=None`` and no ``config``; checked against their manifest, never trained), or trained
    with ``config`` into the cache."""
    name = arch + ADV_SUFFIX if adv else arch
    if isinstance(weights, str) and weights == "random":
        return _random_tiny(arch)
    if weights is not None:
        model = tiny.build(arch)
        model.load_state_dict(cache.load_state_dict(weights))
        return model.eval()
    if config is None:
        return published.load_published(arch, adv)
    if adv:
        if not isinstance(config, AdvTrainConfig):
            raise ConfigError(f"config of {name!r} must be an AdvTrainConfig, got {type(config).__name__}.")
        return load_or_adv_train(arch, config, progress=progress)
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config of {name!r} must be a TrainConfig, got {type(config).__name__}.")
    return load_or_train(arch, config, progress=progress)


# --------------------------------------------------------------------------------------------------
# The public entry point.


def load_model(
    track: str,
    name: str,
    *,
    device: str | torch.device = "cpu",
    weights: str | os.PathLike | None = None,
    progress: bool = True,
    config: TrainConfig | AdvTrainConfig | None = None,
) -> LoadedModel:
    """A base model of ``track``, in eval mode on ``device``, with its target layer.

    ``weights``: ``None`` for the track's own weights (tiny: the published weights shipped with the
    package, checked against their SHA-256 in ``weights/tiny/manifest.json``; imagenet: torchvision's, from the local torch hub cache), a path to a local
    state dict, or ``"random"`` for a randomly initialised model. ``config`` (tiny only) trains with
    another recipe (on first use, cached under ``$RBI_CACHE_DIR``): a :class:`TrainConfig`, or an
    :class:`AdvTrainConfig` for ``-adv`` names.
    ``progress`` shows training progress on stderr.
    """
    from robustbench_interp.tracks import get_track

    spec = get_track(track)
    dev = resolve_device(device)
    arch, adv = _split_name(spec.name, name)
    model, target_name = spec.build_model(arch, adv, weights=weights, config=config, progress=progress)
    model = model.to(dev).eval()
    return LoadedModel(
        track=spec.name,
        name=name,
        model=model,
        target_layer=model.get_submodule(target_name),
        num_classes=spec.num_classes,
        input_size=spec.input_size,
        target_layer_name=target_name,
    )
