"""Helpers the sub-commands share: argument types, safe output files, progress bars.

Outputs are written atomically: to a hidden temporary file beside the destination,
then moved over it with :func:`os.replace`, so an interrupted run never leaves a
half-written picture behind. No command writes over one of its input files.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
from pathlib import Path

__all__ = [
    "int_or_pair",
    "padding_value",
    "output_file",
    "add_quiet",
    "check_not_input",
    "atomic_path",
    "save_figure",
    "save_image",
    "progress",
    "IMAGE_SUFFIXES",
]

#: Output picture formats `cnnkit filter` and `cnnkit tour` write, by file suffix.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Resolution of saved figures (dots per inch).
FIGURE_DPI = 100


def _parse_ints(text: str, minimum: int):
    """'3' -> 3 and '3,5' -> (3, 5), each at least `minimum`; ArgumentTypeError otherwise."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer or two separated by a comma (like 2 or 2,1), got {text!r}"
        ) from None
    if len(values) > 2:
        raise argparse.ArgumentTypeError(f"expected one or two integers, got {text!r}")
    if min(values) < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def int_or_pair(minimum: int = 1):
    """An argparse type: an int or a pair ``H,W``, each at least `minimum`."""

    def parse(text: str):
        return _parse_ints(text, minimum)

    parse.__name__ = "integer or pair"  # argparse names the type in its error message
    return parse


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def padding_value(text: str):
    """An argparse type for ``--padding``: an int, a pair ``H,W``, ``same`` or ``valid``."""
    if text.strip().lower() in ("same", "valid"):
        return text.strip().lower()
    return _parse_ints(text, 0)


def output_file(suffixes: tuple[str, ...]):
    """An argparse type: a path whose suffix is one of `suffixes` (case-insensitive)."""

    def parse(text: str) -> Path:
        path = Path(text)
        if path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(
                f"{text!r} must end in {', '.join(suffixes)}"
            )
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
        return path

    parse.__name__ = "output file"
    return parse


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """Add ``-q/--quiet``."""
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars or progress messages")


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_not_input(output, inputs) -> None:
    """Raise ValueError if `output` is (or would replace) one of the `inputs` files."""
    output = Path(output)
    for source in inputs:
        if source is None:
            continue
        source = Path(source)
        if source.is_file() and _same_file(output, source):
            raise ValueError(f"refusing to overwrite the input file {str(source)!r}; "
                             "choose another output path")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success move it over `path`.

    The temporary file keeps the suffix of `path`, so writers that pick the format by
    suffix (Pillow, matplotlib) still do. On an error it is removed and `path` is left
    as it was. Missing parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def save_figure(fig, path, *, dpi: int = FIGURE_DPI) -> Path:
    """Save a matplotlib figure atomically; the format follows the suffix."""
    path = Path(path)
    with atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=dpi, format=path.suffix.lstrip(".").lower())
    fig.clear()
    return path


def save_image(picture, path) -> Path:
    """Save a float picture in [0, 1], (H, W) or (H, W, 3), atomically as 8 bits per channel."""
    import numpy as np
    from PIL import Image

    path = Path(path)
    pixels = np.rint(np.clip(picture, 0.0, 1.0) * 255).astype(np.uint8)  # (H, W[, 3])
    with atomic_path(path) as temporary:
        Image.fromarray(pixels).save(temporary, format=Image.registered_extensions()[
            path.suffix.lower()])
    return path


def progress(iterable=None, *, total=None, desc=None, quiet=False, unit="it"):
    """A tqdm progress bar on stderr, off with `quiet` or when stderr is not a terminal."""
    from tqdm import tqdm

    disabled = quiet or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disabled, leave=False,
                file=sys.stderr)
