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
    "UsageError",
    "int_or_pair",
    "bounded_int",
    "positive_int",
    "nonnegative_int",
    "output_folder",
    "check_writable",
    "check_new",
    "add_force",
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

#: The largest integer an option accepts where nothing says otherwise: far beyond any
#: sensible size, count or seed, and small enough for every NumPy integer type in use.
MAX_INT = 2**31 - 1


class UsageError(ValueError):
    """A bad command line found after parsing: exit status 2, the option named.

    ``cnnkit`` reports it as argparse reports its own errors
    (``cnnkit train: error: argument -o/--output: ...``) and exits 2; raise it only
    before any work has started.
    """

    def __init__(self, option: str, message: str):
        super().__init__(f"argument {option}: {message}")
        self.option = option


def _parse_ints(text: str, minimum: int, maximum: int = MAX_INT):
    """'3' -> 3 and '3,5' -> (3, 5), each in [minimum, maximum]; ArgumentTypeError otherwise."""
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
    if max(values) > maximum:
        raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def int_or_pair(minimum: int = 1, maximum: int = MAX_INT):
    """An argparse type: an int or a pair ``H,W``, each in ``[minimum, maximum]``."""

    def parse(text: str):
        return _parse_ints(text, minimum, maximum)

    parse.__name__ = "integer or pair"  # argparse names the type in its error message
    return parse


def bounded_int(minimum: int, maximum: int = MAX_INT):
    """An argparse type: an integer in ``[minimum, maximum]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text!r}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {text!r}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its error message
    return parse


#: An argparse type: an integer >= 1.
positive_int = bounded_int(1)

#: An argparse type: an integer >= 0 (seeds).
nonnegative_int = bounded_int(0)

#: The largest ``--padding`` of ``cnnkit filter``: more only adds border (and memory:
#: the response grows by twice the padding on each axis).
MAX_PADDING = 100


def padding_value(text: str):
    """An argparse type for ``--padding``: an int, a pair ``H,W``, ``same`` or ``valid``.

    Write a negative value as ``--padding=-1``, or argparse takes it for an option; it
    is refused all the same (padding is at least 0).
    """
    if text.strip().lower() in ("same", "valid"):
        return text.strip().lower()
    return _parse_ints(text, 0, MAX_PADDING)


def output_file(suffixes: tuple[str, ...]):
    """An argparse type: a path whose suffix is one of `suffixes` (case-insensitive)."""

    def parse(text: str) -> Path:
        if not text.strip():
            raise argparse.ArgumentTypeError("must not be empty")
        path = Path(text)
        if path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{text!r} must end in {', '.join(suffixes)}")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
        return path

    parse.__name__ = "output file"
    return parse


def output_folder(text: str) -> Path:
    """An argparse type: a folder to write into (not empty, not an existing file)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (use . for the current folder)")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    return path


def add_force(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--force``: replace `what` when it exists."""
    parser.add_argument(
        "--force", action="store_true", help=f"replace {what} if it exists (otherwise refused)"
    )


def check_new(paths, option: str, force: bool) -> None:
    """Raise UsageError naming `option` if any of `paths` exists, unless `force`."""
    if force:
        return
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing:
        shown = ", ".join(existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise UsageError(
            option, f"{shown} already exists; pass --force to replace it, or choose another name"
        )


def check_writable(path, option: str) -> None:
    """Raise UsageError naming `option` and `path` unless a file can be written at `path`.

    Checked before any work: the nearest existing folder above `path` must be a folder
    in which a file can be created (tried with a hidden probe file, removed at once, so
    permissions, read-only file systems and full quotas all show). Missing folders below
    it are created by the writers.
    """
    path = Path(path)
    folder = path.parent
    while not folder.exists():
        if folder == folder.parent:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(option, f"cannot write {path}: {folder} is not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(option, f"cannot write {path}: permission denied")
    probe = folder / f".cnnkit-probe-{secrets.token_hex(4)}"
    try:
        with open(probe, "xb"):
            pass
    except OSError as error:
        raise UsageError(
            option, f"cannot write {path}: {error.strerror or error} (in {folder})"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """Add ``-q/--quiet``."""
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or progress messages"
    )


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
            raise ValueError(
                f"refusing to overwrite the input file {str(source)!r}; choose another output path"
            )


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
    scaled = np.clip(picture, 0.0, 1.0, dtype=np.float32)  # one float copy, worked in place
    scaled *= 255
    pixels = np.rint(scaled, out=scaled).astype(np.uint8)  # (H, W[, 3])
    del scaled
    with atomic_path(path) as temporary:
        Image.fromarray(pixels).save(
            temporary, format=Image.registered_extensions()[path.suffix.lower()]
        )
    return path


def progress(iterable=None, *, total=None, desc=None, quiet=False, unit="it"):
    """A tqdm progress bar on stderr, off with `quiet` or when stderr is not a terminal."""
    from tqdm import tqdm

    disabled = quiet or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return tqdm(
        iterable, total=total, desc=desc, unit=unit, disable=disabled, leave=False, file=sys.stderr
    )


# -- how a picture becomes a model's input (predict, features) ----------------------------

INVERT_CHOICES = {"auto": "auto", "yes": True, "no": False}


def add_image_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--invert`` and ``--no-crop`` (``cnnkit predict`` and ``cnnkit features``)."""
    parser.add_argument(
        "--invert",
        choices=tuple(INVERT_CHOICES),
        default="auto",
        help="invert the picture (1 - value) first: auto "
        "inverts a light-background picture for a model trained on "
        "light-on-dark images such as the digits (default auto)",
    )
    parser.add_argument(
        "--no-crop",
        action="store_true",
        help="for models that crop to the drawing (the digits), resize the whole picture instead",
    )


def prepare(picture, metadata, args):
    """A loaded picture as the (1, C, H, W) input the model expects, as the options say."""
    from cnnkit.preprocessing import prepare as prepare_input

    return prepare_input(
        picture, metadata, invert=INVERT_CHOICES[args.invert], crop=False if args.no_crop else None
    )
