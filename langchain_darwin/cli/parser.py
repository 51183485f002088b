"""The ``darwin`` command line: one argparse parser with a subparser per command.

    darwin PROMPT [options]          the same as `darwin run PROMPT [options]`
    darwin run PROMPT [options]      answer one prompt, with live progress
    darwin generate -i IN -o OUT     answer a dataset into AlpacaEval records
    darwin serve [options]           an OpenAI-compatible HTTP API over DARWIN searches

``run`` is the default command: when the first argument is not a command name (nor ``-h`` /
``--help``), :func:`with_default_command` puts ``run`` in front of it, so every ``darwin
PROMPT ...`` line keeps working. A prompt that is itself a command name needs the explicit
form: ``darwin run generate``.

Each command is a module with ``add_arguments(parser)`` and ``run(args) -> exit code``, and
optionally ``HELP`` (one line; default: the docstring's first line), ``DESCRIPTION`` (default:
the docstring's first paragraph) and ``EPILOG``; :data:`COMMANDS` lists them, so a new command
is one entry. Their heavy imports belong inside ``run``, so that building
the parser stays cheap.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from types import ModuleType

#: Command name -> the module implementing it (see the module docstring for its contract).
COMMANDS: dict[str, str] = {
    "run": "langchain_darwin.cli.run",
    "generate": "langchain_darwin.cli.generate",
    "serve": "langchain_darwin.cli.serve",
}
DEFAULT_COMMAND = "run"


def command_module(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each subparser records itself as ``command_parser`` and its
    module's ``run`` as ``func``, so ``args.func(args)`` runs the command."""
    parser = argparse.ArgumentParser(
        prog="darwin",
        description="DARWIN decoding-time alignment from the command line.",
        epilog=f"`darwin PROMPT ...` is `darwin {DEFAULT_COMMAND} PROMPT ...`; a prompt that is "
        f"a command name needs the explicit `darwin {DEFAULT_COMMAND} PROMPT`. "
        "`darwin COMMAND --help` lists a command's options.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = command_module(name)
        doc = (module.__doc__ or name).strip()
        sub = commands.add_parser(
            name,
            help=getattr(module, "HELP", doc.splitlines()[0]),
            description=getattr(module, "DESCRIPTION", doc.split("\n\n")[0]),
            epilog=getattr(module, "EPILOG", None),
        )
        module.add_arguments(sub)
        sub.set_defaults(func=module.run, command_parser=sub)
    return parser


def with_default_command(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``run`` in front unless it starts with a command name or asks for the
    top-level help; an empty command line is left empty (argparse then names the commands)."""
    argv = list(argv)
    if not argv or argv[0] in COMMANDS or argv[0] in ("-h", "--help"):
        return argv
    return [DEFAULT_COMMAND, *argv]
