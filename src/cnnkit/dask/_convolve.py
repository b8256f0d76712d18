"""Convolution and filtering of dask arrays: the in-memory op on overlapping blocks.

Two graphs give the same blocks. An image read from a store (Zarr, TIFF, HDF5: any
array-like under ``da.from_array``/``da.from_zarr``/:func:`cnnkit.dask.read_image`) is
cut by ``_from_store`` at the end of this module: each output block reads its own
region and takes thin edges from its neighbours, so memory stays at a few blocks per
worker. Any other dask array goes through ``map_overlap``'s machinery, as follows.

The image is padded once, at its true edges, with the in-memory op's own padding rule;
each block then gets an explicit halo from its neighbours (``boundary="none"``: no block
ever pads its own edge) and the block function is the in-memory op itself with no
padding, so the chunked result is the in-memory result, block by block.

Along one axis, with reach ``r = dilation * (k - 1) + 1`` and stride ``s``, the block
from padded row ``b0`` to ``b1`` computes the windows whose first row lies in
``[b0 - left, b1 - left)``. A halo of ``left`` rows before and ``right = r - 1 - left``
after covers exactly those windows; a block skips the rows before its first window that
starts on the stride grid (its offset). ``left`` is the top padding when that is at most
``r - 1``, so with "same" padding the output blocks line up with the input blocks.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping

import dask.array as da
import numpy as np

from cnnkit._validation import as_float_array
from cnnkit.filtering import filter2d as _filter2d
from cnnkit.functional import conv2d as _conv2d
from cnnkit.functional._conv_geometry import validate

__all__ = ["filter2d", "conv2d"]

# cnnkit's padding modes (PyTorch's) as numpy.pad / dask.array.pad modes. NumPy's
# "reflect" is PyTorch's reflect (the edge is not repeated); dask's map_overlap
# boundary="reflect" would be NumPy's "symmetric", which is why padding is done here.
_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def filter2d(image, kernel, stride=1, padding=0, padding_mode="zeros"):
    """Cross-correlate each channel of a dask image with a 2-D kernel, block by block.

    The lazy counterpart of :func:`cnnkit.filter2d`: the same arguments, the same
    result for any chunking of `image`, the same errors, raised when the graph is built.

    Parameters
    ----------
    image : dask.array.Array of shape (H, W) or (H, W, C)
        Chunked over H and W in any way (the channels are gathered into one chunk).
        A NumPy array is wrapped as one block. Integer and bool images are filtered
        in float32.
    kernel : ndarray of shape (kH, kW)
        Applied to every channel on its own, without flipping; nested lists are accepted.
    stride : int or (int, int), default 1
        Step between windows.
    padding : int, (int, int), "valid" or "same", default 0
        Rows/columns added on each side, or the rule that gives them.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, default "zeros"
        As in :func:`cnnkit.filter2d` (PyTorch's modes), applied at the true image edges
        only, never at a block's edge.

    Returns
    -------
    dask.array.Array of shape (Ho, Wo) or (Ho, Wo, C)
        Lazy; ``response.compute()`` equals ``cnnkit.filter2d(image.compute(), ...)``
        to floating-point rounding. Its dtype is NumPy's promotion of the image's and the
        kernel's float dtypes, as in memory.

    Raises
    ------
    ValueError, TypeError
        The errors of :func:`cnnkit.filter2d`, with its messages; `image` not an array.

    See Also
    --------
    cnnkit.filter2d : The in-memory op each block runs.

    Notes
    -----
    When `image` is nothing but reads of a stored array (:func:`read_image`,
    ``da.from_zarr``, ``da.from_array`` of a Zarr, HDF5 or TIFF array), each output block
    is computed by one task that reads its own block from the store and gets its halo
    (a few rows and columns) from small per-block edge tasks: a worker then holds about
    three blocks at a time, whatever the image size. Other dask arrays are given their
    halos by Dask's overlap machinery, whose memory grows with the image's width.

    Examples
    --------
    >>> import dask
    >>> import dask.array as da
    >>> import numpy as np
    >>> import cnnkit as ck
    >>> from cnnkit import dask as ckd
    >>> picture = np.random.default_rng(0).random((60, 50), dtype=np.float32)
    >>> tiles = da.from_array(picture, chunks=(16, 20))
    >>> kernel = ck.kernels.get("sobel_top").astype(np.float32)
    >>> lazy = ckd.filter2d(tiles, kernel, padding="same", padding_mode="reflect")
    >>> lazy.shape, lazy.chunks[0]
    ((60, 50), (16, 16, 16, 12))
    >>> in_memory = ck.filter2d(picture, kernel, padding="same", padding_mode="reflect")
    >>> bool(np.allclose(lazy.compute(scheduler="synchronous"), in_memory, atol=1e-6))
    True
    """
    stored = _stored_source(image)
    image = _as_float_dask("image", image)
    if image.ndim not in (2, 3):
        raise ValueError(
            f"image must have 2 dimensions (H, W) or 3 (H, W, C), got shape {image.shape}"
        )
    if image.size == 0:
        raise ValueError(f"image must not be empty, got shape {image.shape}")
    kernel = _as_kernel(kernel)
    # conv2d's own checks, as the in-memory filter2d meets them, on a stand-in of the
    # full shape that takes no memory (size-dependent errors must match too)
    stand_in = _stand_in(image)
    if image.ndim == 2:
        geometry = validate(stand_in, kernel, None, stride, padding, 1, 1, padding_mode)[3]
    else:
        channels = image.shape[2]
        geometry = validate(
            stand_in.transpose(2, 0, 1)[None],  # (1, C, H, W)
            np.broadcast_to(kernel, (channels, 1, *kernel.shape)),
            None,  # (C, 1, kH, kW)
            stride,
            padding,
            1,
            channels,
            padding_mode,
        )[3]
    dtype = np.result_type(image.dtype, kernel.dtype)
    if stored is not None:
        return _from_store(
            stored,
            image,
            geometry,
            dtype,
            functools.partial(_filter2d, kernel=kernel, stride=geometry.stride),
            "filter2d",
        )
    if image.ndim == 3:
        image = image.rechunk({2: -1})
    return _blockwise(
        image, (0, 1), geometry, dtype, _filter_block, kernel=kernel, stride=geometry.stride
    )


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """2-D convolution of a dask array chunked over H and W, block by block.

    The lazy counterpart of :func:`cnnkit.functional.conv2d`, for inputs too large for
    memory (a convolution stack applied layer by layer over a huge image).

    Parameters
    ----------
    x : dask.array.Array of shape (N, C, H, W), (C, H, W) or (H, W)
        Chunked over N, H and W in any way (the channels are gathered into one chunk).
        A NumPy array is wrapped as one block.
    weight : ndarray of shape (O, C/groups, kH, kW), or (kH, kW) for an (H, W) `x`
        Kernels.
    bias : ndarray of shape (O,), optional
        Added to each output channel.
    stride, padding, dilation, groups, padding_mode : int, tuple or str
        As in :func:`cnnkit.functional.conv2d`; padding is applied at the true image
        edges only.

    Returns
    -------
    dask.array.Array of shape (N, O, Ho, Wo), (O, Ho, Wo) or (Ho, Wo)
        Lazy; equal to ``conv2d(x.compute(), ...)`` to floating-point rounding.

    Raises
    ------
    ValueError, TypeError
        The errors of :func:`cnnkit.functional.conv2d`, with its messages, raised here.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from cnnkit import functional as F
    >>> from cnnkit import dask as ckd
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 3, 40, 30)).astype(np.float32)
    >>> w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    >>> lazy = ckd.conv2d(da.from_array(x, chunks=(1, 3, 16, 16)), w, stride=2, padding=1)
    >>> lazy.shape
    (2, 4, 20, 15)
    >>> expected = F.conv2d(x, w, stride=2, padding=1)
    >>> bool(np.allclose(lazy.compute(scheduler="synchronous"), expected, atol=1e-5))
    True
    """
    stored = _stored_source(x)
    x = _as_float_dask("x", x)
    _, weight, bias, geometry, rank = validate(
        _stand_in(x), weight, bias, stride, padding, dilation, groups, padding_mode
    )
    dtype = np.result_type(x.dtype, weight.dtype, *([bias.dtype] if bias is not None else []))
    if stored is not None:
        function = functools.partial(
            _conv_region,
            rank=rank,
            weight=weight,
            bias=bias,
            stride=geometry.stride,
            dilation=geometry.dilation,
            groups=geometry.groups,
        )
        return _from_store(stored, x, geometry, dtype, function, "conv2d")
    batch = x.reshape((1,) * (4 - rank) + x.shape).rechunk({1: -1})  # (N, C, H, W)
    out = _blockwise(
        batch,
        (2, 3),
        geometry,
        dtype,
        _conv_block,
        weight=weight,
        bias=bias,
        stride=geometry.stride,
        dilation=geometry.dilation,
        groups=geometry.groups,
    )
    return out[(0,) * (4 - rank)]


def _as_float_dask(name, x):
    """`x` as a floating dask array: float32/float64 kept, bool/integer/float16 to float32."""
    if isinstance(x, np.ndarray):
        x = da.from_array(x, chunks=-1)
    if not isinstance(x, da.Array):
        raise TypeError(
            f"{name} must be a dask.array.Array or numpy.ndarray, got {type(x).__name__}"
        )
    if x.dtype in (np.float32, np.float64):
        return x
    if x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer) or x.dtype == np.float16:
        return x.astype(np.float32)
    raise TypeError(
        f"{name} must hold real numbers (float32, float64, integer or bool), got dtype {x.dtype}"
    )


def _as_kernel(kernel) -> np.ndarray:
    """The kernel checks of :func:`cnnkit.filter2d`, with its messages."""
    if isinstance(kernel, (list, tuple)):
        try:
            kernel = np.array(kernel, dtype=np.float64)
        except (ValueError, TypeError):
            raise TypeError(
                f"kernel must be a 2-D array of numbers, got {type(kernel).__name__}"
            ) from None
    kernel = as_float_array("kernel", kernel)
    if kernel.ndim != 2:
        raise ValueError(f"kernel must have 2 dimensions (kH, kW), got shape {kernel.shape}")
    if kernel.size == 0:
        raise ValueError(f"kernel must not be empty, got shape {kernel.shape}")
    return kernel


def _stand_in(x) -> np.ndarray:
    """A read-only zero array of `x`'s shape and dtype that takes no memory."""
    return np.broadcast_to(np.zeros((), dtype=x.dtype), x.shape)


def _blockwise(x, axes, geometry, dtype, block_function, **options):
    """Pad `x` at its edges, give its blocks halos and run `block_function` on each."""
    top, bottom, left, right = geometry.pads
    pads = {axes[0]: (top, bottom), axes[1]: (left, right)}
    if any(geometry.pads):
        mode = _PAD_MODES[geometry.padding_mode]
        x = da.pad(x, [pads.get(axis, (0, 0)) for axis in range(x.ndim)], mode=mode)
    plans = [
        _axis_plan(x.chunks[axis], pads[axis], (d * (k - 1) + 1), s)
        for axis, k, s, d in zip(axes, geometry.kernel, geometry.stride, geometry.dilation)
    ]
    x = x.rechunk({axis: plan.padded_chunks for axis, plan in zip(axes, plans)})
    depth = {axis: plan.depth for axis, plan in zip(axes, plans)}
    x = da.overlap.overlap(x, depth=depth, boundary="none", allow_rechunk=False)
    out_chunks = list(x.chunks)
    out_chunks[axes[0]], out_chunks[axes[1]] = plans[0].out_chunks, plans[1].out_chunks
    if block_function is _conv_block:
        out_chunks[1] = (geometry.out_channels,)
    return x.map_blocks(
        block_function,
        chunks=tuple(out_chunks),
        dtype=dtype,
        meta=np.empty((0,) * x.ndim, dtype=dtype),
        axes=axes,
        offsets=(plans[0].offsets, plans[1].offsets),
        **options,
    )


class _Plan:
    """How one axis is cut: padded blocks, their halo, output blocks and window offsets."""

    def __init__(self, padded_chunks, depth, out_chunks, offsets, bounds, starts):
        self.padded_chunks = padded_chunks
        self.depth = depth  # (before, after)
        self.out_chunks = out_chunks
        self.offsets = offsets  # rows to skip at each block's start to reach its first window
        self.bounds = bounds  # the blocks' edges in padded rows: len(blocks) + 1 of them
        self.starts = starts  # each block's first window, and the number of windows last

    def parts(self, k, reach, stride):
        """Padded rows of block `k`'s windows, as (rows from block k - 1, its own rows,
        rows from block k + 1); an empty part is None."""
        first = self.starts[k] * stride
        end = (self.starts[k + 1] - 1) * stride + reach
        low, high = self.bounds[k], self.bounds[k + 1]
        return (
            (first, low) if first < low else None,
            (max(first, low), min(end, high)),
            (high, end) if end > high else None,
        )


def _axis_plan(chunks, pads, reach, stride) -> _Plan:
    """Cut an axis already padded by `pads` (chunks include the pad) for windows of `reach`.

    Blocks follow the image's own chunk boundaries, merging blocks too small to lend a
    halo or to hold a window; every output block is non-empty.
    """
    before, _ = pads
    length = sum(chunks)
    n_out = (length - reach) // stride + 1
    halo_before = min(before, reach - 1)
    halo_after = reach - 1 - halo_before
    smallest = max(halo_before, halo_after, 1)  # a block lends at most one neighbour's halo
    bounds, starts = [0], [0]
    for bound in np.cumsum(chunks)[:-1].tolist():
        first = math.ceil((bound - halo_before) / stride)  # the block's first window
        if (
            bound - bounds[-1] >= smallest
            and length - bound >= smallest
            and starts[-1] < first < n_out
        ):
            bounds.append(bound)
            starts.append(first)
    offsets = tuple(
        first * stride - (bound - halo_before) if k else 0
        for k, (bound, first) in enumerate(zip(bounds, starts))
    )
    bounds.append(length)
    starts.append(n_out)
    return _Plan(
        tuple(np.diff(bounds).tolist()),
        (halo_before, halo_after),
        tuple(np.diff(starts).tolist()),
        offsets,
        tuple(bounds),
        tuple(starts),
    )


def _window_start(block, axes, offsets, block_id):
    """`block` from its first window on (the rows before it belong to the previous block)."""
    index = [slice(None)] * block.ndim
    for axis, axis_offsets in zip(axes, offsets):
        index[axis] = slice(axis_offsets[block_id[axis]], None)
    return block[tuple(index)]


def _filter_block(block, *, kernel, stride, axes, offsets, block_id=None):
    """The in-memory filter2d on one haloed block, without padding."""
    return _filter2d(_window_start(block, axes, offsets, block_id), kernel, stride=stride)


def _conv_block(block, *, weight, bias, stride, dilation, groups, axes, offsets, block_id=None):
    """The in-memory conv2d on one haloed (N, C, h, w) block, without padding."""
    return _conv2d(
        _window_start(block, axes, offsets, block_id),
        weight,
        bias,
        stride=stride,
        dilation=dilation,
        groups=groups,
    )


# -- Images read straight from their store ----------------------------------------------
#
# When the dask array is nothing but reads of an array-like (``da.from_zarr``,
# ``da.from_array`` of a Zarr, HDF5 or TIFF array, :func:`cnnkit.dask.read_image`), each
# output block is one task that reads its own rows and columns from the store and gets
# the few rows and columns of halo it needs from its neighbours from small "donor" tasks
# (one per block, which read that block and keep only the edges the neighbours need). No
# task waits with a neighbour's whole block in memory, so a worker holds about one block
# read, one assembled with its halo and one result at a time, whatever the image size;
# each stored block is read twice (once by its donor task, once by its own).

_GETTERS = ("getter", "getter_nofancy", "getter_inline")


def _stored_source(x):
    """The array-like whose regions `x`'s blocks are, or None if `x` is anything more."""
    if not isinstance(x, da.Array):
        return None
    from dask.blockwise import Blockwise

    layers = getattr(x.dask, "layers", None)  # a graph of another kind: the overlap path
    if not isinstance(layers, Mapping):
        return None
    top = layers.get(x.name)
    function = getattr(getattr(top, "task", None), "func", None)
    if not isinstance(top, Blockwise) or getattr(function, "__name__", None) not in _GETTERS:
        return None
    if len(layers) == 2:  # from_array's default: the array-like under its own key
        values = list(layers.get(f"original-{x.name}", {}).values())
        stored = values[0] if len(values) == 1 else None
    elif len(layers) == 1:  # inline_array=True: the array-like is the getter's argument
        stored = top.indices[0][0] if top.indices and top.indices[0][1] is None else None
    else:
        return None
    if (
        stored is None
        or isinstance(stored, np.ndarray)  # in memory already: the overlap path is as good
        or not all(hasattr(stored, name) for name in ("shape", "dtype", "__getitem__"))
        or tuple(stored.shape) != x.shape
        or np.dtype(stored.dtype) != x.dtype
    ):
        return None
    return stored


class _Reader:
    """Reads boxes of the padded image from the store: the padding made by its mode."""

    def __init__(self, shape, axes, pads, mode, dtype):
        self.shape = shape
        self.pads = dict(zip(axes, pads))  # axis: (before, after)
        self.mode = mode
        self.dtype = dtype

    def _rows(self, axis, low, high):
        """Source rows of padded rows [low, high) (-1: a zero) along `axis`."""
        rows = np.arange(low, high) - self.pads[axis][0]
        size = self.shape[axis]
        if self.mode == "zeros":
            return np.where((rows >= 0) & (rows < size), rows, -1)
        if self.mode == "reflect":
            rows = np.abs(rows)
            return np.where(rows >= size, 2 * (size - 1) - rows, rows)
        if self.mode == "replicate":
            return np.clip(rows, 0, size - 1)
        return rows % size  # circular

    def __call__(self, source, box):
        """`box` ((low, high) per axis; padded rows on the padded axes) as an array."""
        shape = tuple(high - low for low, high in box)
        reads, places, takes = [], [], {}
        for axis, (low, high) in enumerate(box):
            if axis not in self.pads:
                reads.append([slice(low, high)])
                places.append(slice(None))
                continue
            rows = self._rows(axis, low, high)
            valid = np.flatnonzero(rows >= 0)
            if valid.size == 0:
                return np.zeros(shape, self.dtype)
            wanted = rows[valid]
            first = int(wanted[0])
            if np.array_equal(wanted, np.arange(first, first + wanted.size)):
                reads.append([slice(first, first + wanted.size)])
                places.append(slice(int(valid[0]), int(valid[-1]) + 1))
            else:  # reflected or wrapped rows: read the runs needed, then pick
                unique = np.unique(wanted)
                cuts = np.flatnonzero(np.diff(unique) != 1) + 1
                reads.append([slice(int(r[0]), int(r[-1]) + 1) for r in np.split(unique, cuts)])
                places.append(slice(None))
                takes[axis] = np.searchsorted(unique, rows)
        region = self._read(source, reads)
        for axis, positions in takes.items():
            region = np.take(region, positions, axis=axis)
        if region.shape == shape:
            return region
        padded = np.zeros(shape, self.dtype)
        padded[tuple(places)] = region
        return padded

    def read_into(self, source, box, out):
        """Read `box` into the array `out`: straight from a Zarr (v3) store when it needs
        no padding, which saves a block-sized copy; otherwise through ``__call__``."""
        plain = all(
            low - self.pads[axis][0] >= 0 and high - self.pads[axis][0] <= self.shape[axis]
            for axis, (low, high) in enumerate(box)
            if axis in self.pads
        )
        get = getattr(source, "get_basic_selection", None)
        if plain and get is not None and np.dtype(source.dtype) == self.dtype:
            try:
                from zarr.core.buffer import cpu
            except ImportError:  # zarr 2: no `out` buffers
                pass
            else:
                index = tuple(
                    slice(low - self.pads[axis][0], high - self.pads[axis][0])
                    if axis in self.pads
                    else slice(low, high)
                    for axis, (low, high) in enumerate(box)
                )
                get(index, out=cpu.NDBuffer.from_numpy_array(out))
                return
        out[...] = self(source, box)

    def _read(self, source, reads):
        """The runs of every axis read and joined (one read in the common case)."""

        def join(axis, index):
            if axis == len(reads):
                block = np.asarray(source[tuple(index)])
                return block if block.dtype == self.dtype else block.astype(self.dtype)
            parts = [join(axis + 1, (*index, run)) for run in reads[axis]]
            return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=axis)

        return join(0, ())


def _from_store(stored, x, geometry, dtype, function, label):
    """The response of `function` over blocks read from `stored` (see above)."""
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    rank = x.ndim
    axes = (0, 1) if label == "filter2d" else (rank - 2, rank - 1)
    top, bottom, left, right = geometry.pads
    pads = ((top, bottom), (left, right))
    reaches = [d * (k - 1) + 1 for k, d in zip(geometry.kernel, geometry.dilation)]
    plans = []
    for axis, (before, after), reach, stride in zip(axes, pads, reaches, geometry.stride):
        padded = tuple(c for c in ((before,) + x.chunks[axis] + (after,)) if c)
        plans.append(_axis_plan(padded, (before, after), reach, stride))
    work = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    reader = _Reader(x.shape, axes, pads, geometry.padding_mode, work)
    # the blocks of the other axes: a batch keeps its blocks, channels are one block
    batched = label == "conv2d" and rank == 4
    others = {axis: ((0, size),) for axis, size in enumerate(x.shape) if axis not in axes}
    out_chunks = {axis: (size,) for axis, size in enumerate(x.shape) if axis not in axes}
    if batched:
        edges = np.cumsum((0,) + x.chunks[0]).tolist()
        others[0] = tuple(itertools.pairwise(edges))
        out_chunks[0] = x.chunks[0]
    if label == "conv2d" and rank > 2:
        out_chunks[rank - 3] = (geometry.out_channels,)
    for axis, plan in zip(axes, plans):
        out_chunks[axis] = plan.out_chunks
    parts = [
        [plan.parts(k, reach, stride) for k in range(len(plan.out_chunks))]
        for plan, reach, stride in zip(plans, reaches, geometry.stride)
    ]

    token = tokenize(x.name, label, geometry, function)
    name, donors, source = f"{label}-{token}", f"{label}-halo-{token}", f"{label}-source-{token}"
    graph = {source: stored}
    grid = [range(len(out_chunks[axis])) for axis in range(rank)]
    wants = {}  # donor block: {direction: box}
    for index in itertools.product(*grid):
        box = [others[axis][index[axis]] if axis not in axes else None for axis in range(rank)]
        own = list(box)
        for axis, row_parts in zip(axes, parts):
            own[axis] = row_parts[index[axis]][1]
        pieces = []
        for direction in itertools.product((-1, 0, 1), repeat=2):
            if direction == (0, 0):
                continue
            piece, donor = list(box), list(index)
            for axis, step, row_parts in zip(axes, direction, parts):
                piece[axis] = row_parts[index[axis]][step + 1]
                donor[axis] += step
            if any(p is None for p in piece):
                continue
            wants.setdefault(tuple(donor), {})[direction] = tuple(piece)
            pieces.append(((donors, *donor), direction))
        key = (name, *index)
        graph[key] = (
            _assemble,
            source,
            reader,
            tuple(own),
            [donor_key for donor_key, _ in pieces],
            [direction for _, direction in pieces],
            tuple(axes),
            function,
        )
    for donor, boxes in wants.items():
        key = (donors, *donor)
        graph[key] = (_donate, source, reader, boxes)
    meta = np.empty((0,) * rank, dtype=dtype)
    chunks = tuple(out_chunks[axis] for axis in range(rank))
    return da.Array(HighLevelGraph.from_collections(name, graph), name, chunks, meta=meta)


def _donate(source, reader, boxes):
    """The edges of one block its neighbours need: {direction: array}, read at once."""
    low = [min(box[axis][0] for box in boxes.values()) for axis in range(len(reader.shape))]
    high = [max(box[axis][1] for box in boxes.values()) for axis in range(len(reader.shape))]
    region = reader(source, tuple(zip(low, high)))
    return {
        direction: region[tuple(slice(b[0] - lo, b[1] - lo) for b, lo in zip(box, low))].copy()
        for direction, box in boxes.items()
    }


def _assemble(source, reader, own, donations, directions, axes, function):
    """Read a block's own rows, add the neighbours' edges around them and apply `function`."""
    if not donations:
        return function(reader(source, own))
    own_shape = [high - low for low, high in own]
    before, after = [0, 0], [0, 0]  # rows and columns from the neighbours, per side
    for donated, direction in zip(donations, directions):
        for n, (axis, step) in enumerate(zip(axes, direction)):
            if step:
                (before if step < 0 else after)[n] = donated[direction].shape[axis]
    shape = list(own_shape)
    for n, axis in enumerate(axes):
        shape[axis] += before[n] + after[n]
    region = np.empty(shape, reader.dtype)

    def view(extent, direction):
        index = [slice(None)] * len(shape)
        for n, (axis, step) in enumerate(zip(axes, direction)):
            start = {-1: 0, 0: before[n], 1: before[n] + own_shape[axis]}[step]
            index[axis] = slice(start, start + extent[axis])
        return region[tuple(index)]

    reader.read_into(source, own, view(own_shape, (0, 0)))
    for donated, direction in zip(donations, directions):
        piece = donated[direction]
        view(piece.shape, direction)[...] = piece
    return function(region)


def _conv_region(region, *, rank, weight, bias, stride, dilation, groups):
    """The in-memory conv2d on one region of an (N, C, H, W), (C, H, W) or (H, W) input."""
    batch = region.reshape((1,) * (4 - rank) + region.shape)
    out = _conv2d(batch, weight, bias, stride=stride, dilation=dilation, groups=groups)
    return out[(0,) * (4 - rank)]
