"""robustbench_interp: how robust is a saliency-map interpreter against adversarial model manipulation?"""

from robustbench_interp.data import get_composites, get_dataset
from robustbench_interp.errors import (
    AttackError,
    ConfigError,
    DuplicateNameError,
    GradientMaskingError,
    InterpreterError,
    IsolationError,
    MissingResourceError,
    NotDifferentiableError,
    PluginImportError,
    RBIError,
    UnknownNameError,
    UnsupportedModelError,
    UsageError,
)
from robustbench_interp.interpreters import (
    get_interpreter,
    list_interpreters,
    register_interpreter,
)
from robustbench_interp.interpreters.base import Interpreter
from robustbench_interp.models import list_models, list_tracks, load_model

__version__ = "0.1.0"

__all__ = [
    "AttackError",
    "ConfigError",
    "DuplicateNameError",
    "GradientMaskingError",
    "Interpreter",
    "InterpreterError",
    "IsolationError",
    "MissingResourceError",
    "NotDifferentiableError",
    "PluginImportError",
    "RBIError",
    "UnknownNameError",
    "UnsupportedModelError",
    "UsageError",
    "get_composites",
    "get_dataset",
    "get_interpreter",
    "list_interpreters",
    "list_models",
    "list_tracks",
    "load_model",
    "register_interpreter",
]
