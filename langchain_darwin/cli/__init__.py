"""The ``darwin`` command and its subcommands (see :mod:`langchain_darwin.cli.parser`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from langchain_darwin.cli.parser import build_parser, with_default_command


def main(argv: Sequence[str] | None = None) -> int:
    """``darwin ...`` as a function: ``main(["How do I boil an egg?", "--demo"])``."""
    args = build_parser().parse_args(with_default_command(sys.argv[1:] if argv is None else argv))
    code: int = args.func(args)
    return code


__all__ = ["build_parser", "main"]
