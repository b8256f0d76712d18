"""The ``cnnkit`` command line: one sub-command per module in :mod:`cnnkit.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Exit status: 0 on success, 2 on a usage error, 1 on any other
failure, reported as one line on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["get_parser", "main"]

COMMANDS = ("tour", "filter", "kernels", "animate", "train", "predict", "features")


def _command_module(name: str):
    return importlib.import_module(f"cnnkit.commands.{name}")


def get_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command."""
    from cnnkit import __version__

    parser = argparse.ArgumentParser(
        prog="cnnkit",
        description="Understand, build and run convolutional neural networks with NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"cnnkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = _command_module(name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with `argv` (default ``sys.argv[1:]``) and return the exit status."""
    parser = get_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on a usage error, 0 on --help
        return int(exit_.code or 0)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("cnnkit: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the contract: one line, no traceback
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"cnnkit {args.command}: error: {message}", file=sys.stderr)
        return 1
