"""The model zoo of each track (SPEC section 6): ``load_model``, ``list_models``, ``list_tracks``.

See :mod:`robustbench_interp.models.zoo` for what each track holds and how to bring your own model.
"""

from robustbench_interp.models.adversarial import AdvTrainConfig, FreePerturbation, pgd_accuracy, pgd_attack
from robustbench_interp.models.base import LoadedModel, Normalize
from robustbench_interp.models.device import resolve_device
from robustbench_interp.models.training import TrainConfig, accuracy
from robustbench_interp.models.zoo import list_models, list_tracks, load_model

__all__ = [
    "AdvTrainConfig",
    "FreePerturbation",
    "LoadedModel",
    "Normalize",
    "TrainConfig",
    "accuracy",
    "list_models",
    "list_tracks",
    "load_model",
    "pgd_accuracy",
    "pgd_attack",
    "resolve_device",
]
