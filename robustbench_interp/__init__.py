"""robustbench_interp: how robust is a saliency-map interpreter against adversarial model manipulation?"""

from robustbench_interp.errors import (
    ConfigError,
    DuplicateNameError,
    InterpreterError,
    MissingResourceError,
    NotDifferentiableError,
    PluginImportError,
    RBIError,
    UnknownNameError,
    UnsupportedModelError,
)
from robustbench_interp.interpreters import (
    get_interpreter,
    list_interpreters,
    register_interpreter,
)
from robustbench_interp.interpreters.base import Interpreter

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DuplicateNameError",
    "Interpreter",
    "InterpreterError",
    "MissingResourceError",
    "NotDifferentiableError",
    "PluginImportError",
    "RBIError",
    "UnknownNameError",
    "UnsupportedModelError",
    "get_interpreter",
    "list_interpreters",
    "register_interpreter",
]
