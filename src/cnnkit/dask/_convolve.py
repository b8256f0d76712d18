"""Convolution and filtering of dask arrays: the in-memory op on overlapping blocks.

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

import math

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
        image = image.rechunk({2: -1})
    dtype = np.result_type(image.dtype, kernel.dtype)
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
    x = _as_float_dask("x", x)
    _, weight, bias, geometry, rank = validate(
        _stand_in(x), weight, bias, stride, padding, dilation, groups, padding_mode
    )
    batch = x.reshape((1,) * (4 - rank) + x.shape).rechunk({1: -1})  # (N, C, H, W)
    dtype = np.result_type(x.dtype, weight.dtype, *([bias.dtype] if bias is not None else []))
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

    def __init__(self, padded_chunks, depth, out_chunks, offsets):
        self.padded_chunks = padded_chunks
        self.depth = depth  # (before, after)
        self.out_chunks = out_chunks
        self.offsets = offsets  # rows to skip at each block's start to reach its first window


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
