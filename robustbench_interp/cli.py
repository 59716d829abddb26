"""The ``rbi`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rbi", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered interpreters")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from robustbench_interp import get_interpreter, list_interpreters

    if args.command == "list":
        for name in list_interpreters():
            interp = get_interpreter(name)
            kind = "layer" if interp.layer_level else "input"
            diff = "differentiable" if interp.differentiable else "transfer only"
            print(f"{name:24s} {kind:6s} {diff}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
