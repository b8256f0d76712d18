"""The ``cnnkit`` command line: one sub-command per module in :mod:`cnnkit.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Exit status: 0 on success, 2 on a usage error (argparse's, or a
:class:`~cnnkit.commands._common.UsageError` a command raises before its work), 1 on any
other failure, reported as one line on stderr without a traceback.

Progress output never decides whether the work completes: when the reader of standard
output goes away (``cnnkit train -o m.npz | head -2``), further output is dropped and
the command carries on and writes its files.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

__all__ = ["get_parser", "main"]

COMMANDS = (
    "tour",
    "filter",
    "kernels",
    "animate",
    "train",
    "predict",
    "features",
    "explore",
    "convert",
    "info",
)


#: What argparse takes for a value rather than an option when it starts with "-": a
#: negative number, or a negative pair such as "-1,0" (so `--padding -1,0` is read as a
#: value and refused by the option's own check, naming the option).
_NEGATIVE_VALUE = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d+,-?\d+$")


def _command_module(name: str):
    return importlib.import_module(f"cnnkit.commands.{name}")


def get_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command.

    Returns
    -------
    argparse.ArgumentParser
        The ``cnnkit`` parser; each command of :data:`COMMANDS` is a sub-parser.

    Examples
    --------
    >>> get_parser().parse_args(["kernels"]).command
    'kernels'
    """
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
        sub._negative_number_matcher = _NEGATIVE_VALUE  # argparse's own hook for this
        sub.set_defaults(_run=module.run)
    return parser


class _OutputThatMayClose:
    """Standard output that turns quiet, instead of raising, once its reader has gone."""

    def __init__(self, stream):
        self._stream = stream
        self.closed_by_reader = False

    def _gone(self) -> None:
        self.closed_by_reader = True
        try:  # so the interpreter's final flush of what is buffered is quiet too
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def write(self, text):
        if not self.closed_by_reader:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self):
        if not self.closed_by_reader:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Run the command line with `argv` (default ``sys.argv[1:]``) and return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``cnnkit``.

    Returns
    -------
    int
        0 on success, 2 on a usage error, 1 on any other failure (reported as one line
        on stderr).

    Examples
    --------
    >>> main(["kernels", "sobel_top"])  # doctest: +ELLIPSIS
    sobel_top...
    0
    """
    try:
        parser = get_parser()
    except Exception as error:  # noqa: BLE001 - a broken install still gets one line
        print(f"cnnkit: error: {_one_line(error)}", file=sys.stderr)
        return 1
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on a usage error, 0 on --help
        return int(exit_.code or 0)
    from cnnkit.commands._common import UsageError

    stdout = sys.stdout
    sys.stdout = _OutputThatMayClose(stdout)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("cnnkit: interrupted", file=sys.stderr)
        return 130
    except UsageError as error:
        print(f"cnnkit {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the contract: one line, no traceback
        print(f"cnnkit {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    finally:
        try:
            sys.stdout.flush()
        finally:
            sys.stdout = stdout
