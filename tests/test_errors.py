"""Every error the package raises on purpose belongs to its documented tree (robustbench_interp.errors)."""

from __future__ import annotations

import re
from pathlib import Path

import robustbench_interp
from robustbench_interp import errors

PACKAGE = Path(robustbench_interp.__file__).parent
BUILTIN = re.compile(r"raise (ValueError|LookupError|KeyError|TypeError|RuntimeError|FileNotFoundError|IndexError)\(")


def test_no_builtin_exception_is_raised_on_purpose():
    found = [f"{path.relative_to(PACKAGE)}:{i}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for i, line in enumerate(path.read_text().splitlines(), 1) if BUILTIN.search(line) and not line.rstrip().endswith("# the Mapping protocol")]
    assert not found, "raise an error of robustbench_interp.errors instead:\n" + "\n".join(found)


def test_every_error_class_is_documented_public_and_derives_from_the_base():
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    for cls in classes:
        assert issubclass(cls, errors.RBIError) and cls.__doc__, cls
        assert cls.__name__ in robustbench_interp.__all__, cls
