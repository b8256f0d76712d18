"""Reusable scratch buffers for the blocks of the memory-bound passes.

A fresh temporary of a few MiB costs a page fault per 4 KiB page on every call (the
allocator returns large blocks to the system and maps them again). The passes instead
borrow their block-sized temporaries here: each thread keeps its own buffers, by name,
and gets the same memory back on its next call, already mapped and often still in cache.
No process-wide allocator setting is changed.

Rules that keep this safe:

- a buffer is only scratch inside one call: never returned to the user, never stored in
  a cache for a backward pass;
- a name is used by one call site at a time on a thread (two live temporaries of one
  pass take two names);
- memory is bounded: at most ``SHELF_BYTES`` per thread (requests above
  ``MAX_BUFFER_BYTES`` are not kept), freed when the thread ends or by :func:`release`.
"""

from __future__ import annotations

import math
import threading
import weakref

import numpy as np

__all__ = ["scratch", "release", "MAX_BUFFER_BYTES", "SHELF_BYTES"]

MAX_BUFFER_BYTES = 16 * 2**20
SHELF_BYTES = 32 * 2**20


class _Shelf:
    """One thread's buffers: name -> 1-D byte array."""

    def __init__(self):
        self.buffers: dict[str, np.ndarray] = {}


_local = threading.local()
_shelves: weakref.WeakSet = weakref.WeakSet()  # every live thread's shelf, for release()
_lock = threading.Lock()


def _shelf() -> _Shelf:
    shelf = getattr(_local, "shelf", None)
    if shelf is None:
        shelf = _local.shelf = _Shelf()
        with _lock:
            _shelves.add(shelf)
    return shelf


def scratch(name: str, shape, dtype, like: np.ndarray | None = None) -> np.ndarray:
    """An uninitialised array for temporary use within the current call.

    The memory is this thread's buffer `name`, reused by the next request for `name`:
    the array must not outlive the call that asked for it. It is C-contiguous, or laid
    out in the memory order of `like` (an array of as many dimensions): elementwise
    passes that mix memory orders run several times slower.

    Examples
    --------
    >>> a = scratch("example", (2, 3), np.float32)
    >>> b = scratch("example", (3,), np.float32)  # the same memory, reused
    >>> np.shares_memory(a, b)
    True
    >>> scratch("example", (2, 3), np.float32, like=np.empty((3, 2)).T).strides
    (4, 8)
    """
    if like is not None and not like.flags.c_contiguous:
        order = sorted(range(like.ndim), key=lambda axis: -abs(like.strides[axis]))
        in_order = scratch(name, tuple(shape[axis] for axis in order), dtype)
        return in_order.transpose([order.index(axis) for axis in range(like.ndim)])
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_BUFFER_BYTES:
        return np.empty(shape, dtype)
    shelf = getattr(_local, "shelf", None) or _shelf()
    buffer = shelf.buffers.get(name)
    if buffer is None or buffer.nbytes < nbytes:
        buffers = shelf.buffers
        buffers.pop(name, None)
        if sum(b.nbytes for b in buffers.values()) + nbytes > SHELF_BYTES:
            buffers.clear()  # arrays still in use keep their memory until they are dropped
        buffer = buffers[name] = np.empty(max(nbytes, 1), np.uint8)
    return np.ndarray(shape, dtype, buffer=buffer)


def release() -> None:
    """Drop every thread's buffers (memory in use by a running call is freed after it)."""
    with _lock:
        shelves = list(_shelves)
    for shelf in shelves:
        shelf.buffers.clear()
