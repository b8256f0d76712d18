"""One small thread pool for the memory-bound passes (pooling, batch norm, depthwise, ...).

NumPy releases the GIL inside its loops, so elementwise passes over separate blocks of an
array run in parallel on Python threads. The rules that keep results identical for any
number of threads:

- the caller cuts the work into blocks whose bounds depend on the shapes only, never on
  the thread count (:func:`blocks`);
- each block writes its own part of the output, and no block reads another's writes;
  reductions return one partial result per block, which the caller combines in block
  order.

BLAS calls (matmul, einsum over a GEMM) stay on the calling thread, outside the pool:
OpenBLAS has its own threads, and running it from several of ours would oversubscribe the
cores. The one exception is :func:`parallel_gemms`, which runs whole blocks of a
convolution (gather and GEMM) on the pool with BLAS on one thread for the while. The
pool's threads sleep on a queue between jobs; they never spin.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from cnnkit._validation import to_int

__all__ = [
    "BLOCK_BYTES",
    "blocks",
    "elementwise",
    "get_num_threads",
    "memory_order",
    "parallel",
    "parallel_gemms",
    "set_num_threads",
]

ENV_VARIABLE = "CNNKIT_NUM_THREADS"

# Work per block: large enough that the pool's overhead (tens of microseconds) is small
# next to it, small enough that a block's operands stay in the L2/L3 cache.
BLOCK_BYTES = 2 * 2**20

_lock = threading.Lock()
_num_threads: int | None = None  # None: not yet decided (environment, then affinity)
_executor: ThreadPoolExecutor | None = None
_executor_workers = 0
_local = threading.local()  # .inside: this thread is running a block already
_blas_lock = threading.Lock()
_blas_libraries: list | None = None  # threadpoolctl's controllers of the BLAS libraries
_blas_saved: list[int] = []  # their thread counts before the outermost parallel_gemms
_blas_depth = 0  # parallel_gemms calls running now, on any thread


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _from_environment() -> int:
    value = os.environ.get(ENV_VARIABLE, "").strip()
    if not value:
        return _available_cores()
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{ENV_VARIABLE} must be a positive integer, got {value!r}")
    return count


def set_num_threads(n) -> None:
    """Set how many threads cnnkit's memory-bound ops and convolution blocks use.

    The pool runs pooling, batch norm, depthwise convolution, filtering and the blocks of
    the GEMM convolutions. Results do not depend on the number of threads. BLAS (matrix products) keeps its own
    threads, set by OpenBLAS's or MKL's environment variables; while a convolution runs
    its blocks on two or more cnnkit threads, NumPy's BLAS is held to one thread (and
    given back its count when the last such call ends). With ``n = 1`` cnnkit leaves
    BLAS's threads alone.

    Parameters
    ----------
    n : int
        At least 1; 1 runs everything on the calling thread.

    Examples
    --------
    >>> import cnnkit as ck
    >>> before = ck.get_num_threads()
    >>> ck.set_num_threads(1)
    >>> ck.get_num_threads()
    1
    >>> ck.set_num_threads(before)
    """
    global _num_threads
    n = to_int("n", n)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    with _lock:
        _num_threads = n


def get_num_threads() -> int:
    """The number of threads cnnkit's memory-bound ops use.

    By default the cores this process may run on, or ``CNNKIT_NUM_THREADS`` when set.

    Returns
    -------
    int
        The size of the pool, at least 1 (1: everything runs on the calling thread).

    Examples
    --------
    >>> import cnnkit as ck
    >>> ck.get_num_threads() >= 1
    True
    """
    global _num_threads
    if _num_threads is None:
        count = _from_environment()
        with _lock:
            if _num_threads is None:
                _num_threads = count
    return _num_threads


def _pool(workers: int) -> ThreadPoolExecutor:
    """The shared executor, with at least `workers` threads (grown, never per call)."""
    global _executor, _executor_workers
    with _lock:
        if _executor is None or _executor_workers < workers:
            old = _executor
            _executor = ThreadPoolExecutor(workers, thread_name_prefix="cnnkit")
            _executor_workers = workers
            if old is not None:
                old.shutdown(wait=False)
        return _executor


def _forget_pool_in_child() -> None:
    """After fork the pool's threads do not exist in the child: start a new pool there."""
    global _executor, _executor_workers, _lock
    _executor, _executor_workers = None, 0
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


class _Job:
    """Blocks handed out one at a time to whichever thread asks next."""

    def __init__(self, work, items):
        self.work, self.items = work, items
        self.results = [None] * len(items)
        self.error: BaseException | None = None
        self._next = itertools.count()  # next() on a count is atomic under the GIL
        self._remaining = len(items)
        self._lock = threading.Lock()
        self.done = threading.Event()

    def run(self) -> None:
        was_inside = getattr(_local, "inside", False)
        _local.inside = True
        try:
            while (index := next(self._next)) < len(self.items):
                if self.error is None:
                    try:
                        self.results[index] = self.work(self.items[index])
                    except BaseException as error:  # noqa: BLE001 - re-raised on the calling thread
                        self.error = error
                with self._lock:
                    self._remaining -= 1
                    if self._remaining == 0:
                        self.done.set()
        finally:
            _local.inside = was_inside


def parallel(work, items, *, total_bytes: int | None = None) -> list:
    """``[work(item) for item in items]``, the items spread over the pool's threads.

    The calling thread takes blocks too. A call from inside a block (nested) runs on its
    own thread, and so does a job whose `total_bytes` (the memory all its items touch)
    is under ``BLOCK_BYTES``: handing so little work to another thread costs more than
    it saves. The first exception a block raises is raised here, once all blocks have
    stopped.

    Examples
    --------
    >>> parallel(lambda k: k * k, range(4))
    [0, 1, 4, 9]
    """
    items = list(items)
    threads = min(get_num_threads(), len(items))
    small = total_bytes is not None and total_bytes < BLOCK_BYTES
    if threads <= 1 or small or getattr(_local, "inside", False):
        return [work(item) for item in items]
    job = _Job(work, items)
    pool = _pool(threads - 1)
    for _ in range(threads - 1):
        pool.submit(job.run)
    job.run()
    job.done.wait()
    if job.error is not None:
        raise job.error
    return job.results


def blocks(
    count: int, bytes_per_item: int, block_bytes: int | None = None
) -> list[tuple[int, int]]:
    """Split ``range(count)`` into ``(start, stop)`` blocks of about `block_bytes` each.

    `block_bytes` defaults to ``BLOCK_BYTES`` (read at each call, so tests can shrink it).
    The split depends on the sizes only, never on the number of threads.

    Examples
    --------
    >>> blocks(10, 1, block_bytes=4)
    [(0, 4), (4, 8), (8, 10)]
    """
    block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
    step = max(1, block_bytes // max(1, bytes_per_item))
    return [(start, min(start + step, count)) for start in range(0, count, step)]


def memory_order(a) -> tuple[int, ...]:
    """`a`'s axes longer than 1, outermost first in memory."""
    return tuple(
        sorted(
            (axis for axis in range(a.ndim) if a.shape[axis] > 1),
            key=lambda axis: -abs(a.strides[axis]),
        )
    )


def _memory_order_flat(a, order):
    """`a`'s elements as a 1-D view in memory order, or None when its memory has gaps."""
    rest = [axis for axis in range(a.ndim) if axis not in order]
    permuted = a.transpose(rest + list(order))
    return permuted.reshape(-1) if permuted.flags.c_contiguous else None


def elementwise(update, *arrays) -> None:
    """Run ``update(*blocks)`` over matching blocks of arrays of one shape and memory layout.

    The blocks are 1-D slices of the arrays' memory (so a channels-last view is cut as
    well as a C-ordered array); arrays whose layouts differ, or whose memory has gaps,
    are passed whole as one block.

    Examples
    --------
    >>> import numpy as np
    >>> x, out = np.arange(6.0).reshape(2, 3), np.empty((2, 3))
    >>> elementwise(lambda a, b: np.multiply(a, 2, out=b), x, out)
    >>> out
    array([[ 0.,  2.,  4.],
           [ 6.,  8., 10.]])
    """
    if arrays[0].size * sum(a.itemsize for a in arrays) <= BLOCK_BYTES:
        update(*arrays)  # one block: no need to find the memory order
        return
    order = memory_order(arrays[0])
    same_layout = all(a.shape == arrays[0].shape and memory_order(a) == order for a in arrays)
    flats = [_memory_order_flat(a, order) for a in arrays] if same_layout else [None]
    if any(f is None for f in flats) or arrays[0].size == 0:
        update(*arrays)
        return
    ready = [f for f in flats if f is not None]  # all of them (checked above)
    itemsize = sum(a.itemsize for a in arrays)
    spans = blocks(ready[0].size, itemsize)
    parallel(lambda span: update(*(f[span[0] : span[1]] for f in ready)), spans)


def _controlled_blas() -> list:
    """threadpoolctl's controllers of NumPy's BLAS (found once).

    A wheel's own BLAS lies in the NumPy package's directory (``numpy.libs``); where none
    does (a system or conda BLAS), every BLAS library loaded is taken.
    """
    global _blas_libraries
    if _blas_libraries is None:
        import numpy as np
        from threadpoolctl import ThreadpoolController

        libraries = ThreadpoolController().select(user_api="blas").lib_controllers
        numpy_dir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy")
        own = [lib for lib in libraries if lib.filepath.startswith(numpy_dir)]
        with _blas_lock:
            _blas_libraries = own or libraries
    return _blas_libraries


def _set_blas_threads(library, count: int) -> None:
    """Set one BLAS library's thread count, whichever thread calls.

    threadpoolctl lets only one "controlling" thread set a process-wide (pthreads)
    OpenBLAS pool and silently ignores the others; cnnkit's calls come from any thread,
    so they take control for the set and give it back, as ``threadpool_limits`` does.
    """
    clear = getattr(type(library), "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)
    library.set_num_threads(count)
    if clear is not None:
        clear(force=True)


@contextlib.contextmanager
def _blas_on_one_thread():
    """Every BLAS library on one thread inside, restored when the last such block ends.

    The setting is process-wide (OpenBLAS's pthreads pool is shared), so overlapping
    calls from several threads count themselves in and out and only the last restores.
    """
    global _blas_depth, _blas_saved
    libraries = _controlled_blas()
    with _blas_lock:
        if _blas_depth == 0:
            _blas_saved = [library.num_threads for library in libraries]
            for library in libraries:
                _set_blas_threads(library, 1)
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for library, count in zip(libraries, _blas_saved):
                    _set_blas_threads(library, count)


def parallel_gemms(work, items, *, total_bytes: int) -> list:
    """:func:`parallel` for blocks that each gather their operands and run a GEMM on them.

    Each block runs whole on one of the pool's threads with BLAS on one thread, so what a
    block gathers is read back by the same core. Sharing every block between the cores
    (our thread gathers, BLAS's threads split the GEMM) makes each core write lines the
    other one cached, which on some machines (virtual CPUs on different dies) makes the
    gathers several times slower. Small jobs, a single block, one cnnkit thread, or BLAS
    libraries whose threads cannot be set run in order on the calling thread, BLAS
    threaded as it is.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.ones((4, 3))
    >>> parallel_gemms(lambda k: float((a @ a.T)[k].sum()), range(2), total_bytes=96)
    [12.0, 12.0]
    """
    items = list(items)
    if (
        get_num_threads() < 2
        or len(items) < 2
        or total_bytes < BLOCK_BYTES
        or getattr(_local, "inside", False)
        or not _controlled_blas()
    ):
        return [work(item) for item in items]
    with _blas_on_one_thread():
        return parallel(work, items)
