"""``cnnkit kernels``: list the named kernels, or print one with its values."""

from __future__ import annotations

import argparse

HELP = "list the named kernels with what each responds to, or show one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnkit kernels``."""
    parser.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="print this kernel's values (default: list every kernel)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the kernel bank, or one kernel; return the exit status."""
    import numpy as np

    from cnnkit import kernels

    if args.name is not None:
        weights = kernels.get(args.name)  # ValueError naming the known kernels
        print(f"{args.name}: {kernels.describe(args.name)}")
        print(np.array2string(weights, precision=4, suppress_small=True))
        return 0
    names = kernels.available()
    width = max(map(len, names))
    for name in names:
        shape = "\u00d7".join(map(str, kernels.get(name).shape))
        print(f"{name:<{width}}  {shape:<5}  {kernels.describe(name)}")
    return 0
