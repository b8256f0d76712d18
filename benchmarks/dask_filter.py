"""cnnkit.dask.filter2d against dask-image's correlate: a large image from Zarr to Zarr.

    python benchmarks/dask_filter.py [--size 16384] [--chunk 2048] [--workers 2]

Both sides read the same float32 Zarr (``--size`` squared; 16384 is 1 GiB), filter it
with the same kernel on the same blocks ("same" size, zero padding) and write a new Zarr,
on the same dask.distributed LocalCluster (``--workers`` processes, one thread each).
The sides alternate (A B A B ...); each line reports the median time ratio
(cnnkit / dask-image: below 1 means cnnkit is faster) and each side's peak memory: the
largest resident set of any worker, sampled every 50 ms, above that worker's resident
set before the run, in MiB and in chunks. The outputs are compared (largest absolute
difference). ``--heap`` starts the workers with ``MALLOC_MMAP_THRESHOLD_`` at 64 MiB:
distributed sets ``MALLOC_TRIM_THRESHOLD_``, which makes glibc hand every freed
workspace back to the system, so cnnkit's per-band workspaces are page-faulted in again
and again. Needs ``pip install 'cnnkit[bench]'`` (dask-image). The machine may be
shared: compare ratios from one run, not times across runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import threading
import time

import numpy as np


def worker_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class PeakMemory:
    """The largest rise of any worker's resident set while the block runs."""

    def __init__(self, client, interval=0.05):
        self.client, self.interval = client, interval

    def __enter__(self):
        self.base = self.client.run(worker_rss)
        self.peak = dict(self.base)
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            for worker, rss in self.client.run(worker_rss).items():
                self.peak[worker] = max(self.peak[worker], rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()

    @property
    def rise(self) -> int:
        return max(self.peak[w] - self.base[w] for w in self.base)


def make_input(path, size, chunk):
    import dask.array as da

    image = da.random.default_rng(0).random((size, size), chunks=chunk, dtype=np.float32)
    image.to_zarr(path, overwrite=True)


def cnnkit_side(source, target, kernel):
    import dask.array as da

    from cnnkit import dask as ckd

    image = da.from_zarr(source)
    return ckd.filter2d(image, kernel, padding="same").to_zarr(
        target, overwrite=True, compute=False
    )


def dask_image_side(source, target, kernel):
    import dask.array as da
    from dask_image.ndfilters import correlate

    image = da.from_zarr(source)
    return correlate(image, kernel, mode="constant", cval=0.0).to_zarr(
        target, overwrite=True, compute=False
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kernels", type=int, nargs="+", default=[3, 7])
    parser.add_argument("--dir", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument(
        "--heap",
        action="store_true",
        help="let the workers' malloc serve blocks under 64 MiB from its heap "
        "(MALLOC_MMAP_THRESHOLD_); distributed's default "
        "MALLOC_TRIM_THRESHOLD_ makes every freed workspace go back to "
        "the system, so each new one is page-faulted in again",
    )
    args = parser.parse_args(argv)

    import dask.array as da
    from distributed import Client, LocalCluster

    scratch = args.dir or tempfile.mkdtemp(prefix="cnnkit-dask-bench-")
    source = os.path.join(scratch, "input.zarr")
    chunk_mib = args.chunk**2 * 4 / 2**20
    print(
        f"image {args.size}x{args.size} float32 ({args.size**2 * 4 / 2**30:.2f} GiB), "
        f"chunks {args.chunk}x{args.chunk} ({chunk_mib:.0f} MiB), {args.workers} worker "
        f"processes x 1 thread, Zarr to Zarr, padding 'same' (zeros)"
        + (", workers' malloc mmap threshold 64 MiB" if args.heap else "")
    )
    env = {"CNNKIT_NUM_THREADS": "1"}
    if args.heap:  # malloc reads it at process start: it must be set before the spawn
        import dask

        dask.config.set(
            {"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": str(64 * 2**20)}
        )
    # one thread per worker on both sides: BLAS (dask's default) and cnnkit's own pool
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            dashboard_address=":0",
            memory_limit=0,
            silence_logs=logging.ERROR,
            env=env,
        ) as cluster,
        Client(cluster) as client,
    ):
        make_input(source, args.size, args.chunk)
        sides = {"cnnkit": cnnkit_side, "dask-image": dask_image_side}
        warm = os.path.join(scratch, "warm.zarr")  # imports and caches on every worker first
        make_input(warm, 2 * args.chunk, args.chunk)
        for name, side in sides.items():
            for size in args.kernels:
                side(
                    warm,
                    os.path.join(scratch, f"warm-{name}.zarr"),
                    np.ones((size, size), np.float32),
                ).compute()
        for size in args.kernels:
            kernel = np.random.default_rng(size).standard_normal((size, size))
            kernel = kernel.astype(np.float32)
            times = {name: [] for name in sides}
            peaks = dict.fromkeys(sides, 0)
            for _ in range(args.rounds):
                for name, side in sides.items():
                    target = os.path.join(scratch, f"{name}.zarr")
                    graph = side(source, target, kernel)
                    client.run(__import__("gc").collect)
                    with PeakMemory(client) as memory:
                        start = time.perf_counter()
                        graph.compute()
                        times[name].append(time.perf_counter() - start)
                    peaks[name] = max(peaks[name], memory.rise)
            ratios = [a / b for a, b in zip(times["cnnkit"], times["dask-image"])]
            ours = da.from_zarr(os.path.join(scratch, "cnnkit.zarr"))
            theirs = da.from_zarr(os.path.join(scratch, "dask-image.zarr"))
            difference = float(abs(ours - theirs).max().compute())
            print(
                f"{size}x{size}: time ratio cnnkit / dask-image "
                f"{statistics.median(ratios):.2f} (cnnkit {statistics.median(times['cnnkit']):.1f} s, "
                f"dask-image {statistics.median(times['dask-image']):.1f} s); peak worker "
                f"memory above start: cnnkit {peaks['cnnkit'] / 2**20:.0f} MiB "
                f"({peaks['cnnkit'] / 2**20 / chunk_mib:.1f} chunks), dask-image "
                f"{peaks['dask-image'] / 2**20:.0f} MiB "
                f"({peaks['dask-image'] / 2**20 / chunk_mib:.1f} chunks); "
                f"max |difference| {difference:.2g}"
            )
    if args.dir is None:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
