"""Manipulation attacks (SPEC section 3): one file per attack, the one fine-tuning loop, presets.

Every attack is an :class:`Attack` registered by name (:func:`get_attack`, :func:`list_attacks`);
installed packages add attacks through the entry-point group ``robustbench_interp.attacks``, and
``"package.module:attr"`` names one directly. See :mod:`robustbench_interp.attacks.base` for how to
write one.
"""

from robustbench_interp.attacks.base import Attack, NoParams, PassiveAttack, Preset, TwoClassAttack
from robustbench_interp.attacks.registry import (
    ATTACKS,
    ENTRY_POINT_GROUP,
    attack_order,
    check_attack_names,
    get_attack,
    list_attacks,
    register_attack,
    safe_name,
    standard_attacks,
)
from robustbench_interp.registry import import_builtins

#: The built-in attacks' modules: every module of this package but the machinery (one attack per
#: module, each registering itself on import; adding a built-in is adding its file).
BUILTIN_MODULES = import_builtins(__name__, __path__, infrastructure=("base", "registry", "presets", "finetune"))

__all__ = [
    "ATTACKS",
    "BUILTIN_MODULES",
    "ENTRY_POINT_GROUP",
    "Attack",
    "NoParams",
    "PassiveAttack",
    "Preset",
    "TwoClassAttack",
    "attack_order",
    "check_attack_names",
    "get_attack",
    "list_attacks",
    "register_attack",
    "safe_name",
    "standard_attacks",
]
