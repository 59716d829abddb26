"""Manipulation attacks (SPEC section 3): one file per attack, the one fine-tuning loop, presets.

Every attack is an :class:`Attack` registered by name (:func:`get_attack`, :func:`list_attacks`);
installed packages add attacks through the entry-point group ``robustbench_interp.attacks``, and
``"package.module:attr"`` names one directly. See :mod:`robustbench_interp.attacks.base` for how to
write one.
"""

# The built-ins register themselves on import, one per module (the paper's four).
from robustbench_interp.attacks import active, center_mass, location, topk  # noqa: E402,F401,I001
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

__all__ = [
    "ATTACKS",
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
