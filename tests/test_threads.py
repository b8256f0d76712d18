"""The thread pool and its controls: set/get, the environment variable, order and errors."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import _threads


@pytest.fixture
def restore_threads():
    before = ck.get_num_threads()
    yield
    ck.set_num_threads(before)


def test_default_is_the_cores_this_process_may_use():
    """Without CNNKIT_NUM_THREADS the default is the affinity mask's size."""
    env = {k: v for k, v in os.environ.items() if k != "CNNKIT_NUM_THREADS"}
    code = "import cnnkit as ck, os; print(ck.get_num_threads(), len(os.sched_getaffinity(0)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    got, cores = out.stdout.split()
    assert got == cores


def test_environment_variable_sets_the_count():
    env = dict(os.environ, CNNKIT_NUM_THREADS="3")
    code = "import cnnkit as ck; print(ck.get_num_threads())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "3"


def test_bad_environment_variable_is_named():
    env = dict(os.environ, CNNKIT_NUM_THREADS="many")
    code = "import cnnkit as ck; ck.get_num_threads()"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0
    assert "CNNKIT_NUM_THREADS must be a positive integer, got 'many'" in out.stderr


def test_set_and_get(restore_threads):
    ck.set_num_threads(3)
    assert ck.get_num_threads() == 3
    ck.set_num_threads(np.int64(1))
    assert ck.get_num_threads() == 1


@pytest.mark.parametrize(
    "value, error",
    [
        (0, ValueError),
        (-2, ValueError),
        (1.5, TypeError),
        (True, TypeError),
        ("2", TypeError),
    ],
)
def test_set_refuses_bad_counts(restore_threads, value, error):
    with pytest.raises(error, match=r"^n must be"):
        ck.set_num_threads(value)


@pytest.mark.parametrize("count", [1, 2, 4])
def test_parallel_keeps_order_and_uses_the_pool(restore_threads, count):
    """Results come back in item order; with more than one thread, pool threads take part."""
    ck.set_num_threads(count)
    names = set()
    barrier = threading.Barrier(count) if count > 1 else None

    def work(k):
        names.add(threading.current_thread().name)
        if barrier is not None and k < count:
            barrier.wait(timeout=10)  # the first `count` items run at the same time
        return k * k

    assert _threads.parallel(work, range(20)) == [k * k for k in range(20)]
    assert len(names) == count


def test_small_jobs_run_on_the_calling_thread_and_large_ones_on_the_pool(restore_threads):
    """Under BLOCK_BYTES of work the items run inline; from BLOCK_BYTES on, as without it."""
    ck.set_num_threads(2)
    for total, expected in ((_threads.BLOCK_BYTES - 1, 1), (_threads.BLOCK_BYTES, 2)):
        names = set()
        barrier = threading.Barrier(expected)

        def work(k, names=names, barrier=barrier, expected=expected):
            names.add(threading.current_thread().name)
            if k < expected:
                barrier.wait(timeout=10)  # only passes when `expected` threads take part
            return -k

        assert _threads.parallel(work, range(6), total_bytes=total) == [-k for k in range(6)]
        assert len(names) == expected


def test_parallel_raises_the_blocks_error(restore_threads):
    ck.set_num_threads(2)

    def work(k):
        if k == 5:
            raise ValueError("block 5 failed")
        return k

    with pytest.raises(ValueError, match="block 5 failed"):
        _threads.parallel(work, range(10))
    assert _threads.parallel(lambda k: k, range(3)) == [0, 1, 2]  # the pool still works


def test_nested_parallel_runs_inline(restore_threads):
    """A block that calls parallel again does not wait on the (busy) pool."""
    ck.set_num_threads(2)
    result = _threads.parallel(lambda k: sum(_threads.parallel(lambda j: j, range(k))), range(6))
    assert result == [sum(range(k)) for k in range(6)]


def test_parallel_in_a_forked_child(restore_threads):
    """The pool works in a child forked after the parent started it."""
    ck.set_num_threads(2)
    _threads.parallel(lambda k: k, range(4))
    code = (
        "import os, sys, cnnkit as ck\n"
        "from cnnkit import _threads\n"
        "ck.set_num_threads(2)\n"
        "_threads.parallel(lambda k: k, range(4))\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0 if _threads.parallel(lambda k: k + 1, range(4)) == [1, 2, 3, 4] else 3)\n"
        "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.stdout.strip() == "0", out.stderr


def test_blocks_depend_on_sizes_only(restore_threads):
    splits = []
    for count in (1, 2, 5):
        ck.set_num_threads(count)
        splits.append(_threads.blocks(1000, 24, block_bytes=1000))
    assert splits[0] == splits[1] == splits[2]
    assert splits[0][0] == (0, 41) and splits[0][-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(splits[0], splits[0][1:]))


def test_scratch_reuses_memory_per_thread_and_name():
    """The same thread and name get the same memory back; other names and threads do not."""
    from cnnkit import _workspace

    a = _workspace.scratch("test.a", (4, 5), np.float32)
    assert a.shape == (4, 5) and a.dtype == np.float32 and a.flags.c_contiguous
    assert np.shares_memory(a, _workspace.scratch("test.a", (20,), np.float32))
    assert not np.shares_memory(a, _workspace.scratch("test.b", (20,), np.float32))
    other = []
    thread = threading.Thread(
        target=lambda: other.append(_workspace.scratch("test.a", (20,), np.float32))
    )
    thread.start()
    thread.join()
    assert not np.shares_memory(a, other[0])


def test_scratch_memory_is_bounded_and_releasable(monkeypatch):
    from cnnkit import _workspace

    monkeypatch.setattr(_workspace, "MAX_BUFFER_BYTES", 1000)
    monkeypatch.setattr(_workspace, "SHELF_BYTES", 2000)
    big = _workspace.scratch("test.big", (300,), np.float64)  # over MAX_BUFFER_BYTES: not kept
    assert not np.shares_memory(big, _workspace.scratch("test.big", (300,), np.float64))
    shelf = _workspace._shelf().buffers
    shelf.clear()
    for name in ("test.1", "test.2", "test.3"):
        _workspace.scratch(name, (100,), np.float64)  # 800 bytes each
        assert sum(b.nbytes for b in shelf.values()) <= 2000
    _workspace.release()
    assert not shelf


def test_elementwise_cuts_memory_order_and_passes_odd_layouts_whole(monkeypatch):
    """Same-layout arrays (C order or channels-last) are cut in memory order; others whole."""
    monkeypatch.setattr(_threads, "BLOCK_BYTES", 64)
    seen = []

    def record(*blocks):
        seen.append(blocks[0].shape)
        np.multiply(blocks[0], 2, out=blocks[1])

    for x in (
        np.arange(120.0).reshape(2, 3, 4, 5),
        np.arange(120.0).reshape(2, 4, 5, 3).transpose(0, 3, 1, 2),  # channels-last memory
    ):
        out = np.empty_like(x)
        seen.clear()
        _threads.elementwise(record, x, out)
        assert len(seen) > 1 and all(len(s) == 1 for s in seen)
        np.testing.assert_array_equal(out, 2 * x)
    x = np.arange(120.0).reshape(2, 3, 4, 5)
    for out in (np.empty((2, 3, 4, 5), order="F"), np.empty((2, 3, 4, 10))[..., ::2]):
        seen.clear()
        _threads.elementwise(record, x, out)
        assert seen == [(2, 3, 4, 5)]
        np.testing.assert_array_equal(out, 2 * x)


def test_relu_in_blocks_matches_torch(rng, threads):
    """ReLU forward and backward over blocks and threads equal PyTorch's."""
    import torch

    import cnnkit.functional as F

    x = rng.standard_normal((4, 6, 10, 10)).astype(np.float32).transpose(0, 2, 3, 1)
    g = rng.standard_normal(x.shape).astype(np.float32)
    out, cache = F.relu_forward(x)
    xt = torch.tensor(x, requires_grad=True)
    expected = torch.relu(xt)
    expected.backward(torch.tensor(g))
    np.testing.assert_array_equal(out, expected.detach().numpy())
    np.testing.assert_array_equal(F.relu_backward(g, cache), xt.grad.numpy())


def _blas_threads():
    """Thread counts of NumPy's BLAS libraries, as threadpoolctl reads them afresh (a
    BLAS another package loads later, such as SciPy's own, is not NumPy's matmul's)."""
    from threadpoolctl import threadpool_info

    blas = [info for info in threadpool_info() if info["user_api"] == "blas"]
    numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
    own = [info for info in blas if info["filepath"].startswith(numpy_dir + os.sep + "numpy")]
    return [info["num_threads"] for info in own or blas]


@pytest.fixture
def two_blas_threads():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        yield _blas_threads()


def test_parallel_gemms_runs_blocks_on_the_pool_with_blas_on_one_thread(
    restore_threads, two_blas_threads
):
    """Each block on one of cnnkit's threads while BLAS runs on one; BLAS restored after."""
    assert two_blas_threads, "no BLAS library found by threadpoolctl"
    ck.set_num_threads(2)
    barrier = threading.Barrier(2)
    seen = []

    def work(k):
        seen.append((threading.current_thread().name, _blas_threads()))
        if k < 2:
            barrier.wait(timeout=10)  # only passes when two threads take part
        a = np.full((64, 64), float(k))
        return float((a @ a)[0, 0])

    result = _threads.parallel_gemms(work, range(4), total_bytes=_threads.BLOCK_BYTES)
    assert result == [64.0 * k * k for k in range(4)]
    assert len({name for name, _ in seen}) == 2
    assert all(counts == [1] * len(two_blas_threads) for _, counts in seen)
    assert _blas_threads() == two_blas_threads


@pytest.mark.parametrize("threads, total", [(1, 2**30), (2, 100)])
def test_parallel_gemms_leaves_blas_alone_for_one_thread_or_small_jobs(
    restore_threads, two_blas_threads, threads, total
):
    ck.set_num_threads(threads)
    names, counts = set(), []

    def work(k):
        names.add(threading.current_thread().name)
        counts.append(_blas_threads())
        return k

    assert _threads.parallel_gemms(work, range(4), total_bytes=total) == [0, 1, 2, 3]
    assert names == {threading.current_thread().name}
    assert all(c == two_blas_threads for c in counts)


def test_parallel_gemms_restores_blas_after_an_error(restore_threads, two_blas_threads):
    ck.set_num_threads(2)

    def work(k):
        if k == 3:
            raise ValueError("block 3 failed")
        return k

    with pytest.raises(ValueError, match="block 3 failed"):
        _threads.parallel_gemms(work, range(6), total_bytes=2**30)
    assert _blas_threads() == two_blas_threads


def test_overlapping_parallel_gemms_restore_blas_when_the_last_ends(
    restore_threads, two_blas_threads
):
    """Two callers at once: the first to finish leaves BLAS on one thread for the other."""
    ck.set_num_threads(2)
    inside, release = threading.Event(), threading.Event()

    def slow(k):
        inside.set()
        assert release.wait(timeout=10)
        return k

    first = threading.Thread(
        target=_threads.parallel_gemms, args=(slow, range(2)), kwargs={"total_bytes": 2**30}
    )
    first.start()
    assert inside.wait(timeout=10)
    assert _threads.parallel_gemms(lambda k: k, range(2), total_bytes=2**30) == [0, 1]
    assert _blas_threads() == [1] * len(two_blas_threads)  # the first call is still running
    release.set()
    first.join(timeout=10)
    assert _blas_threads() == two_blas_threads


def test_import_does_not_load_threadpoolctl():
    code = "import sys, cnnkit, cnnkit.functional, cnnkit.nn; print('threadpoolctl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
