"""Read images lazily as dask arrays and write dask arrays block by block.

TIFF is read tile by tile through tifffile's zarr view (each block opens the file
itself, so the graph holds a path, not an open file, and runs on any worker); Zarr
through dask's own reader; other images through :func:`cnnkit.load_image`, as one block.
Writing to Zarr stores each block as it is computed; writing a tiled TIFF computes one
row of blocks at a time. Both write beside the destination and move the result into
place at the end, so an interrupted write leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

import dask.array as da
import numpy as np

__all__ = ["read_image", "write_image", "TIFF_SUFFIXES", "ZARR_SUFFIXES"]

TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIXES = (".zarr",)

#: Tile side of the TIFF files :func:`write_image` writes (a multiple of 16, as TIFF needs).
TIFF_TILE = 256


def read_image(path, chunks=None, *, gray=False):
    """A lazy dask array of a TIFF, Zarr or ordinary image file, float32 in [0, 1].

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tif``/``.tiff`` file (tiled or not; the first series, full resolution), a
        ``.zarr`` array, or any picture :func:`cnnkit.load_image` reads.
    chunks : int, tuple or "auto", optional
        Block shape, as in :func:`dask.array.from_array`. By default a Zarr array keeps
        its stored chunks, a TIFF gets blocks of whole tiles of about dask's configured
        chunk size, and other pictures are one block.
    gray : bool, default False
        The luminance (:func:`cnnkit.images.rgb_to_gray`) of an RGB image; a one-channel
        image is returned as it is.

    Returns
    -------
    dask.array.Array of shape (H, W) or (H, W, C), float32
        Integer pixels are scaled to [0, 1] by their type's maximum (255, 65535, ...), as
        :func:`cnnkit.load_image` does; floating-point pixels keep their values. Nothing
        is read until the array is computed, and then only the blocks asked for.

    Raises
    ------
    FileNotFoundError
        `path` does not exist.
    ValueError
        A file that is not a readable image, or a TIFF/Zarr array that is not (H, W) or
        (H, W, C).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import tifffile
    >>> from cnnkit import dask as ckd
    >>> folder = tempfile.mkdtemp()
    >>> pixels = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    >>> tifffile.imwrite(os.path.join(folder, "scan.tif"), pixels, tile=(16, 16))
    >>> image = ckd.read_image(os.path.join(folder, "scan.tif"), chunks=32)
    >>> image.shape, image.dtype, image.chunks
    ((64, 48), dtype('float32'), ((32, 32), (32, 16)))
    >>> round(float(image[1, 0].compute(scheduler="synchronous")) * 65535, 3)  # pixel 48
    48.0
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        stored = _TiffRegions(path)
        stored_chunks = stored.tile
    elif suffix in ZARR_SUFFIXES:
        stored = _open_zarr(path)
        stored_chunks = tuple(stored.chunks)[:2]
    else:
        return _read_picture(path, chunks, gray)
    if stored.ndim not in (2, 3):
        raise ValueError(
            f"cannot read {str(path)!r} as an image: its array has shape "
            f"{stored.shape}, not (H, W) or (H, W, C)"
        )
    if gray and stored.ndim == 3 and stored.shape[2] != 3:
        raise ValueError(
            f"cannot take the luminance of {str(path)!r}: it has {stored.shape[2]} channels, not 3"
        )
    pixels = _Pixels(stored, gray=gray)
    if pixels.plain:  # float32 as stored: dask reads the store itself
        pixels = stored
    if chunks is None and suffix in ZARR_SUFFIXES:  # the stored chunks, channels together
        chunks = stored_chunks + pixels.shape[2:]
    elif chunks is None:  # whole tiles, about dask's chunk size, channels together
        previous = None if stored_chunks is None else stored_chunks + pixels.shape[2:]
        chunks = da.core.normalize_chunks(
            "auto", pixels.shape, dtype=np.float32, previous_chunks=previous
        )
        chunks = chunks[:2] + pixels.shape[2:]
    # one array-like read region by region: cnnkit.dask.filter2d reads its blocks with
    # their halos straight from it
    return da.from_array(
        pixels, chunks=chunks, asarray=True, lock=False, name=f"read-{_token(path, gray)}"
    )


def write_image(array, path, *, overwrite=True):
    """Compute a dask image block by block into a Zarr array or a tiled TIFF file.

    Parameters
    ----------
    array : dask.array.Array of shape (H, W) or (H, W, C)
        Computed with the current scheduler (a ``distributed.Client`` if one is active).
    path : str or os.PathLike
        A ``.zarr`` folder (chunks of the array's blocks) or a ``.tif``/``.tiff`` file
        (tiles of :data:`TIFF_TILE` pixels, one row of blocks computed at a time).
    overwrite : bool, default True
        Replace an existing `path`; otherwise refuse with FileExistsError.

    Returns
    -------
    pathlib.Path
        `path`, written completely: the data go to a hidden temporary beside it first.

    Examples
    --------
    >>> import os, tempfile
    >>> import dask
    >>> import dask.array as da
    >>> import numpy as np
    >>> from cnnkit import dask as ckd
    >>> folder = tempfile.mkdtemp()
    >>> lazy = da.ones((100, 80), dtype=np.float32, chunks=40)
    >>> with dask.config.set(scheduler="synchronous"):
    ...     written = ckd.write_image(lazy, os.path.join(folder, "out.zarr"))
    ...     again = ckd.read_image(written).compute()
    >>> again.shape, float(again.sum())
    ((100, 80), 8000.0)
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TIFF_SUFFIXES + ZARR_SUFFIXES:
        raise ValueError(
            f"path must end in {', '.join(TIFF_SUFFIXES + ZARR_SUFFIXES)}, got {str(path)!r}"
        )
    if not isinstance(array, da.Array):
        raise TypeError(f"array must be a dask.array.Array, got {type(array).__name__}")
    if array.ndim not in (2, 3):
        raise ValueError(f"array must have shape (H, W) or (H, W, C), got {array.shape}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    with _replacing(path) as temporary:
        if suffix in ZARR_SUFFIXES:
            _regular(array).to_zarr(str(temporary))
        else:
            import tifffile

            tifffile.imwrite(
                temporary,
                _tiff_tiles(array, TIFF_TILE),
                shape=array.shape,
                dtype=array.dtype,
                tile=(TIFF_TILE, TIFF_TILE),
                photometric="minisblack" if array.ndim == 2 or array.shape[2] != 3 else "rgb",
                planarconfig="contig",
            )
    return path


@contextlib.contextmanager
def _replacing(path: Path):
    """Yield a temporary path beside `path` (file or folder); on success move it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    temporary = path.with_name(f".{path.stem}.{token}.tmp{path.suffix}")
    old = path.with_name(f".{path.stem}.{token}.old{path.suffix}")
    try:
        yield temporary
        if path.is_dir():  # a folder (Zarr) cannot be replaced in one rename
            os.replace(path, old)
        os.replace(temporary, path)
    finally:
        for leftover in (temporary, old):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()


def _regular(array):
    """`array` with blocks Zarr can store: equal blocks along each axis but the last."""
    chunks = {}
    for axis, sizes in enumerate(array.chunks):
        if len(set(sizes[:-1])) > 1 or sizes[-1] > sizes[0]:
            chunks[axis] = max(sizes)
    return array.rechunk(chunks) if chunks else array


def _tiff_tiles(array, tile: int):
    """TIFF tiles of `array` in file order, computing one row of blocks at a time."""
    width = array.shape[1]
    carry = None
    rows_of_blocks = array.numblocks[0]
    for i in range(rows_of_blocks):
        band = np.asarray(array.blocks[i].compute())  # (h, W[, C])
        rows = band if carry is None else np.concatenate([carry, band])
        last = i == rows_of_blocks - 1
        whole = rows.shape[0] if last else rows.shape[0] // tile * tile
        for r in range(0, whole, tile):
            for c in range(0, width, tile):
                yield rows[r : r + tile, c : c + tile]  # tifffile pads the edge tiles
        carry = rows[whole:]


class _TiffRegions:
    """Reads regions of a TIFF's first series by path: picklable, opened per read."""

    def __init__(self, path: Path):
        import tifffile

        self.path = str(path)
        try:
            with tifffile.TiffFile(self.path) as tif:
                series = tif.series[0]
                self.axes = series.axes
                self.shape = tuple(series.shape)
                self.dtype = np.dtype(series.dtype)
                page = series.pages[0]
                self.tile = (page.tilelength, page.tilewidth) if page.is_tiled else None
        except (tifffile.TiffFileError, OSError, IndexError, ValueError) as error:
            raise ValueError(f"cannot read {self.path!r} as a TIFF image: {error}") from None
        if self.axes not in ("YX", "YXS"):
            raise ValueError(
                f"cannot read {self.path!r} as an image: its axes are "
                f"{self.axes!r}, not YX or YXS (rows, columns[, samples])"
            )
        self.ndim = len(self.shape)

    def __getitem__(self, index):
        import tifffile
        import zarr

        with tifffile.TiffFile(self.path) as tif:
            return zarr.open(tif.series[0].aszarr(), mode="r")[index]


def _open_zarr(path: Path):
    import zarr

    try:
        stored = zarr.open_array(str(path), mode="r")
    except Exception as error:  # noqa: BLE001 - zarr reports a bad store in many ways
        raise ValueError(f"cannot read {str(path)!r} as a Zarr array: {error}") from None
    if not (
        np.issubdtype(stored.dtype, np.integer)
        or np.issubdtype(stored.dtype, np.floating)
        or stored.dtype == np.bool_
    ):
        raise ValueError(f"cannot read {str(path)!r} as an image: its dtype is {stored.dtype}")
    return stored


class _Pixels:
    """A stored image's regions as float32 in [0, 1], or their luminance: picklable."""

    def __init__(self, stored, *, gray: bool):
        self.stored = stored
        self.gray = bool(gray) and stored.ndim == 3
        dtype = np.dtype(stored.dtype)
        self.scale = np.float32(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else None
        self.shape = tuple(stored.shape[:2]) if self.gray else tuple(stored.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)
        self.plain = dtype == np.float32 and not self.gray

    def __getitem__(self, index):
        if self.gray:
            index = (*index, slice(None)) if isinstance(index, tuple) else (index, slice(None))
        block = np.asarray(self.stored[index])
        block = block.astype(np.float32)
        if self.scale:
            block /= self.scale  # in place: one block-sized array, not two
        if self.gray:
            from cnnkit.images import rgb_to_gray

            block = rgb_to_gray(block)
        return block


def _read_picture(path: Path, chunks, gray: bool):
    from dask import delayed

    from cnnkit.images import load_image

    shape = _picture_shape(path, gray)
    image = da.from_delayed(
        delayed(load_image, pure=True)(str(path), gray=gray), shape=shape, dtype=np.float32
    )
    return image if chunks is None else image.rechunk(chunks)


def _picture_shape(path: Path, gray: bool) -> tuple:
    """The shape :func:`cnnkit.load_image` will return, from the file's header alone."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            width, height = picture.size
            with contextlib.suppress(Exception):  # a damaged EXIF block: as stored
                if picture.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # turned 90 degrees
                    width, height = height, width
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(
            f"cannot read {str(path)!r}: not a recognised image file ({error})"
        ) from None
    return (height, width) if gray else (height, width, 3)


def _token(path: Path, *options) -> str:
    from dask.base import tokenize

    stat = path.stat()
    return tokenize(str(path.resolve()), stat.st_mtime_ns, stat.st_size, *options)
