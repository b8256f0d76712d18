"""cnnkit.dask.predict throughput on a LocalCluster against the in-memory loop.

    python benchmarks/dask_predict.py [--images 2000] [--workers 1 2]

A folder of generated pictures (PNG, 20 to 60 pixels a side) is classified with a
digits model, as ``cnnkit predict`` does: read, prepare, one model call per batch of 64.
The in-memory loop does that in this process; cnnkit.dask.predict does it on a
dask.distributed LocalCluster of N worker processes with one thread each (started before
the clock). Reported: images per second, and the efficiency against the ideal
(single-process throughput x N workers; 1.0 is ideal, the target is >= 1 / 1.2 = 0.83).

Where the time goes is reported from CPU time, which other load cannot inflate: the
workers' CPU seconds per image against the in-memory loop's (the Dask path's own cost
per image), the CPU seconds of this process (scheduler and client) and of the workers,
and how many cores they had between them (CPU seconds / wall seconds). A machine with
fewer free cores than workers + 1 cannot reach the ideal whatever the code does. The
machine may be shared: compare ratios from one run, not times across runs.

``--malloc both`` runs each worker count twice: with distributed's worker environment
(it sets ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes glibc's mmap threshold at
128 KiB, so every array over 128 KiB is mapped afresh and page-faulted), and with that
variable unset (``distributed.nanny.pre-spawn-environ``), glibc's defaults as in the
in-memory loop.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import shutil
import tempfile
import time

# one core per process on both sides, as distributed gives its workers: without this the
# in-memory loop's BLAS would spin threads on the other core
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402


def make_folder(root, count):
    from PIL import Image

    import cnnkit as ck
    from cnnkit.models import digits_cnn

    rng = np.random.default_rng(0)
    folder = os.path.join(root, "pictures")
    os.makedirs(folder)
    for k in range(count):
        side = int(rng.integers(20, 60))
        pixels = (rng.random((side, side)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{k:05d}.png"))
    model = ck.save(
        digits_cnn(rng=0),
        os.path.join(root, "digits.npz"),
        input_shape=(1, 8, 8),
        classes=[str(k) for k in range(10)],
    )
    return model, folder


def in_memory(model_path, files, batch_size=64):
    """The `cnnkit predict` pipeline in one process, batch by batch."""
    from cnnkit.images import load_image
    from cnnkit.preprocessing import prepare
    from cnnkit.serialization import load_model
    from cnnkit.train import predict_proba

    model, metadata = load_model(model_path)
    labels = []
    for start in range(0, len(files), batch_size):
        batch = [prepare(load_image(f), metadata)[0] for f in files[start : start + batch_size]]
        labels += predict_proba(model, np.stack(batch)).argmax(axis=1).tolist()
    return labels


def worker_cpu() -> float:
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--malloc",
        choices=["distributed", "glibc", "both"],
        default="distributed",
        help="the workers' allocator settings: distributed's default environment, "
        "glibc's defaults (MALLOC_TRIM_THRESHOLD_ unset), or both",
    )
    args = parser.parse_args(argv)

    import dask
    from distributed import Client, LocalCluster

    import cnnkit as ck
    from cnnkit import dask as ckd

    ck.set_num_threads(1)  # one core per process on both sides
    root = tempfile.mkdtemp(prefix="cnnkit-predict-bench-")
    try:
        model, folder = make_folder(root, args.images)
        files = ckd.image_files(folder)
        in_memory(model, files[:64])  # warm-up: imports, caches
        start, cpu = time.perf_counter(), own_cpu()
        expected = in_memory(model, files)
        single = len(files) / (time.perf_counter() - start)
        single_cpu = (own_cpu() - cpu) / len(files)
        print(
            f"{len(files)} PNG images, digits model, batches of 64; {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f} before the run"
        )
        print(
            f"in-memory loop (1 process): {single:.0f} images/s, "
            f"{single_cpu * 1e3:.3f} CPU ms per image"
        )
        mallocs = ["distributed", "glibc"] if args.malloc == "both" else [args.malloc]
        for workers, malloc in itertools.product(args.workers, mallocs):
            # distributed sets the variable in this process too before spawning workers
            os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
            environ = {} if malloc == "distributed" else {"MALLOC_TRIM_THRESHOLD_": None}
            with (
                dask.config.set({"distributed.nanny.pre-spawn-environ": environ}),
                LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    dashboard_address=":0",
                    silence_logs=logging.ERROR,
                    env={"CNNKIT_NUM_THREADS": "1"},
                ) as cluster,
                Client(cluster) as client,
            ):
                ckd.predict(model, files[: 64 * workers]).compute()  # warm-up on every worker
                before_workers, before_own = client.run(worker_cpu), own_cpu()
                start = time.perf_counter()
                results = ckd.predict(model, files).compute()
                wall = time.perf_counter() - start
                spent = client.run(worker_cpu)
                workers_cpu = sum(spent[w] - before_workers[w] for w in spent)
                main_cpu = own_cpu() - before_own
            rate = len(files) / wall
            assert [r["index"] for r in results] == expected
            print(
                f"cnnkit.dask.predict, {workers} worker(s), {malloc} malloc: "
                f"{rate:.0f} images/s, "
                f"efficiency {rate / (single * workers):.2f} of ideal "
                f"({single * workers:.0f} images/s); workers "
                f"{workers_cpu / len(files) * 1e3:.3f} CPU ms per image "
                f"({workers_cpu / len(files) / single_cpu:.2f} x in-memory), "
                f"scheduler + client {main_cpu:.2f} CPU s, cores used "
                f"{(workers_cpu + main_cpu) / wall:.2f} over {wall:.2f} s"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
