"""Shared input handling for the image ops: the accepted ranks, and padding along one axis."""

from __future__ import annotations

import numpy as np

from cnnkit._validation import as_float_array, check_channels_first, check_ndim

__all__ = ["as_batch", "from_batch", "add_batch_axes", "pad_index", "WORKSPACE_BYTES"]

# Bound on any temporary an op allocates beyond its input and output (im2col windows,
# per-offset products); work larger than this is done in chunks.
WORKSPACE_BYTES = 4 * 2**20


def as_batch(name: str, x, *, allow_matrix: bool = True):
    """Return `x` as a float `(N, C, H, W)` array and the rank it came with (2, 3 or 4)."""
    x = as_float_array(name, x)
    allowed = (2, 3, 4) if allow_matrix else (3, 4)
    what = "((H, W), (C, H, W) or (N, C, H, W))" if allow_matrix else "((C, H, W) or (N, C, H, W))"
    check_ndim(name, x, allowed, what)
    check_channels_first(name, x)
    if x.ndim == 2:
        return x[None, None], 2
    if x.ndim == 3:
        return x[None], 3
    return x, 4


def from_batch(y: np.ndarray, rank: int) -> np.ndarray:
    """Undo :func:`as_batch` on a result of shape `(N, C, H, W)`."""
    if rank == 2:
        return y[0, 0]
    if rank == 3:
        return y[0]
    return y


def add_batch_axes(y: np.ndarray, rank: int) -> np.ndarray:
    """Add back the leading axes that :func:`from_batch` removed."""
    if rank == 2:
        return y[None, None]
    if rank == 3:
        return y[None]
    return y


def pad_index(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index in ``[0, size)`` of each position of an axis padded by `mode`.

    Positions ``before .. before + size - 1`` map to themselves; the padding maps as
    ``reflect`` (mirror without repeating the edge), ``replicate`` (repeat the edge) or
    ``circular`` (wrap around).
    """
    positions = np.arange(-before, size + after)
    if mode == "replicate":
        return np.clip(positions, 0, size - 1)
    if mode == "circular":
        return positions % size
    if mode == "reflect":
        if size == 1:
            return np.zeros_like(positions)
        period = 2 * (size - 1)
        folded = positions % period
        return np.where(folded < size, folded, period - folded)
    raise AssertionError(f"no index map for padding mode {mode!r}")
