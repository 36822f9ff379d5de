"""Command line: `tradesense-operator run|plan|backup|console …`.

Each sub-command lives in its own module and registers itself through `register(subparsers)`;
this module only assembles them, so adding a command never touches the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Protocol, cast

# Sub-command modules, each exposing `register(subparsers) -> None` that sets `func` on its parser.
COMMAND_MODULES = ("run", "backup", "plan", "console")


class _Registrar(Protocol):
    def __call__(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def build_parser() -> argparse.ArgumentParser:
    """Assemble the parser from every sub-command module."""
    parser = argparse.ArgumentParser(prog="tradesense-operator", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        cast(_Registrar, module.register)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for usage errors, 1 for failures)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = cast(Callable[[argparse.Namespace], int], args.func)
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
