"""The Dask paths of ``cnnkit filter`` and ``cnnkit predict``: large images, many images.

Kept apart from the commands so that each command adds one focused branch; dask is
imported only when a Dask path runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from cnnkit.commands._common import UsageError, atomic_path, check_not_input, progress

__all__ = [
    "filter_output",
    "wants_dask_filter",
    "run_filter",
    "wants_dask_predict",
    "run_predict",
    "LARGE_IMAGE_BYTES",
    "DEFAULT_CHUNK",
]

#: Inputs of `cnnkit filter` above this many bytes (as float32) stream through Dask.
LARGE_IMAGE_BYTES = 256 * 2**20

#: Block side of a streamed `cnnkit filter` when --chunks is not given.
DEFAULT_CHUNK = 2048

STREAM_INPUTS = (".tif", ".tiff", ".zarr")
STREAM_OUTPUTS = (".zarr", ".tif", ".tiff")


def filter_output(suffixes: tuple[str, ...]):
    """An argparse type: a file path with one of `suffixes`, or a ``.zarr`` folder."""

    def parse(text: str) -> Path:
        path = Path(text)
        allowed = (*suffixes, ".zarr")
        if path.suffix.lower() not in allowed:
            raise argparse.ArgumentTypeError(f"{text!r} must end in {', '.join(allowed)}")
        if path.is_dir() and path.suffix.lower() != ".zarr":
            raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
        return path

    parse.__name__ = "output file"
    return parse


def wants_dask_filter(args: argparse.Namespace) -> bool:
    """Whether `cnnkit filter` streams: --chunks, a Zarr, or a TIFF too large for memory."""
    source = Path(str(args.source))
    if args.chunks is not None or args.output.suffix.lower() == ".zarr":
        return True
    if source.suffix.lower() == ".zarr":
        return True
    if source.suffix.lower() in (".tif", ".tiff") and source.is_file():
        return _tiff_bytes(source) > LARGE_IMAGE_BYTES
    return False


def _tiff_bytes(path: Path) -> int:
    """Bytes of the TIFF's first series as float32; 0 if tifffile cannot tell."""
    import math

    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            return 4 * math.prod(tif.series[0].shape)
    except Exception:  # noqa: BLE001 - not a TIFF tifffile reads: Pillow will say why
        return 0


def run_filter(args: argparse.Namespace, kernel) -> int:
    """Filter a TIFF, Zarr or picture block by block into a Zarr or TIFF; exit status."""
    import dask
    import numpy as np

    from cnnkit import dask as ckd

    source = Path(str(args.source))
    # usage errors (exit 2), before any work
    if args.output.suffix.lower() not in STREAM_OUTPUTS:
        raise UsageError(
            "-o/--output",
            f"a streamed filter writes the response values to "
            f"{', '.join(STREAM_OUTPUTS)}, not {args.output.suffix}; "
            "choose such an output",
        )
    if args.display != "auto":
        raise UsageError(
            "--display",
            "does not apply when streaming: the response values are written as they are (float32)",
        )
    check_not_input(args.output, [source])
    if source.resolve() == args.output.resolve():
        raise ValueError(
            f"refusing to overwrite the input {str(source)!r}; choose another output path"
        )
    chunks = args.chunks if args.chunks is not None else DEFAULT_CHUNK
    chunks = chunks if isinstance(chunks, tuple) else (chunks, chunks)
    _return_freed_memory()
    # the blocks are read from the file as they are (no rechunking), each with its halo
    image = ckd.read_image(source, chunks={0: chunks[0], 1: chunks[1]}, gray=args.gray)
    # float32 in, float32 out: the named kernels are float64, which would double the bytes
    response = ckd.filter2d(
        image,
        kernel.astype(image.dtype),
        stride=args.stride,
        padding=args.padding,
        padding_mode=args.padding_mode,
    )
    with (
        _task_progress(quiet=args.quiet, desc=f"filter {source.name}"),
        dask.config.set(scheduler="threads"),
    ):
        ckd.write_image(response, args.output)
    if not args.quiet:
        print(
            f"wrote {args.output}: {args.kernel} on {image.shape} in blocks of "
            f"{chunks} -> response {response.shape} {np.dtype(response.dtype).name}"
        )
    return 0


def _return_freed_memory() -> None:
    """Have glibc hand freed blocks back to the system at once, as distributed's workers
    do (``MALLOC_TRIM_THRESHOLD_``), so that this process's memory follows the blocks in
    use rather than the most it ever held (about twice as much with two threads)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    m_trim_threshold = -1  # glibc's mallopt parameter
    with contextlib.suppress(OSError, AttributeError, TypeError):  # not glibc: leave it
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(
            m_trim_threshold, 64 * 1024
        )


def wants_dask_predict(args: argparse.Namespace) -> bool:
    """Whether `cnnkit predict` runs on Dask: a folder, --csv or --scheduler."""
    return (
        args.csv is not None
        or args.scheduler is not None
        or any(os.path.isdir(str(source)) for source in args.images)
    )


def run_predict(args: argparse.Namespace, invert) -> int:
    """Classify every image (folders expanded) on Dask; print or write a CSV; exit status."""
    import sys

    from cnnkit import dask as ckd

    sources: list = []
    for source in args.images:
        sources += ckd.image_files(source) if os.path.isdir(source) else [source]
    if args.csv is not None:
        check_not_input(args.csv, [args.model, *sources])
    results = ckd.predict(
        args.model, sources, batch_size=args.batch_size, invert=invert, crop=not args.no_crop
    )
    with _csv_writer(args.csv) as write:
        rows = _compute_partitions(results, args.scheduler, args.workers, args.quiet)
        write(rows)
    failed = [row for row in rows if "error" in row]
    if args.csv is None:
        for row in rows:
            if "error" in row:
                print(f"{row['source']}: error: {row['error']}")
            else:
                print(f"{row['source']}: {row['label']} ({row['probability']:.1%})")
    elif not args.quiet:
        print(
            f"wrote {args.csv}: {len(rows) - len(failed)} images classified, "
            f"{len(failed)} unreadable"
        )
    if failed:
        print(
            f"cnnkit predict: {len(failed)} of {len(rows)} images could not be read "
            f"(first: {failed[0]['source']}: {failed[0]['error']})",
            file=sys.stderr,
        )
    return 0


CSV_COLUMNS = ("source", "label", "probability", "error")


@contextlib.contextmanager
def _csv_writer(path):
    """Yield write(rows): the CSV (if `path`) is opened before the work and moved into place
    only when every row is written, so it is complete or absent."""
    if path is None:
        yield lambda rows: None
        return
    import csv

    with atomic_path(path) as temporary, open(temporary, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS, extrasaction="ignore")

        def write(rows):
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {
                        **row,
                        "probability": (
                            f"{row['probability']:.6g}" if "probability" in row else ""
                        ),
                    }
                )

        yield write


def _compute_partitions(bag, scheduler, workers, quiet) -> list[dict]:
    """Compute a bag partition by partition with a progress bar; the rows in order."""
    partitions = bag.to_delayed()
    if scheduler is not None:
        from distributed import Client, as_completed

        try:
            client = Client(scheduler, timeout="10s")
        except OSError as error:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {error}") from None
        with client:
            futures = client.compute(partitions)
            with progress(total=len(futures), desc="predict", quiet=quiet, unit="batch") as bar:
                for _ in as_completed(futures):
                    bar.update(1)
            return [row for part in client.gather(futures) for row in part]
    import dask

    with _task_progress(quiet=quiet, desc="predict"):
        parts = dask.compute(*partitions, scheduler="processes", num_workers=workers)
    return [row for part in parts for row in part]


@contextlib.contextmanager
def _task_progress(*, quiet: bool, desc: str):
    """A progress bar over the tasks of every local Dask computation in the block."""
    from dask.callbacks import Callback

    with progress(total=0, desc=desc, quiet=quiet, unit="task") as bar:

        class TaskBar(Callback):
            def _start_state(self, dsk, state):
                bar.total = (bar.total or 0) + sum(
                    len(state[k]) for k in ("ready", "waiting", "running", "finished")
                )
                bar.refresh()

            def _posttask(self, key, result, dsk, state, worker_id):
                bar.update(1)

        with TaskBar():
            yield
