"""Device strings ("cpu", "cuda", "cuda:0") checked at the door."""

from __future__ import annotations

import torch

from robustbench_interp.errors import ConfigError


def resolve_device(device: str | torch.device) -> torch.device:
    """Parse ``device``; a CUDA device that this machine lacks is a :class:`ConfigError`."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:<index>'.") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but CUDA is not available here; use device='cpu'.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist."
            )
    elif dev.type != "cpu":
        raise ConfigError(f"unsupported device {device!r}; use 'cpu', 'cuda' or 'cuda:<index>'.")
    return dev
