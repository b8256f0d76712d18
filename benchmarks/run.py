"""cnnkit against PyTorch and SciPy, timed in the same run.

    python benchmarks/run.py [conv|filter|pool|train|memory ...]

Each case alternates cnnkit and its peer in rounds (A B A B ...) and reports the median
of the per-round time ratios (cnnkit / peer: below 1 means cnnkit is faster), the median times,
and GFLOP/s where it applies. float32, 2 threads on both sides (PyTorch's; cnnkit's pool
and OpenBLAS's). The machine is shared
and noisy: compare ratios from one run, not absolute times across runs.

The conv sections add a "GEMM eff." column: the paired time of NumPy matmuls with the
convolution's FLOPs (the windows x weights GEMM or its weights x windows transpose,
whichever is faster here; forward + backward: the three GEMMs) over cnnkit's time.
1.00 means cnnkit runs at NumPy's own GEMM ceiling; "-" marks grouped layers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

THREADS = 2
TARGET_SECONDS = 1.0  # per case and side, at least MIN_ROUNDS rounds
MIN_ROUNDS = 5
SETTLE_SECONDS = 0.15

# (N, C, H, W) -> O, kernel, stride, padding, groups
CONV_CASES = [
    ((1, 3, 224, 224), 64, 3, 1, 1, 1),
    ((32, 32, 32, 32), 64, 3, 1, 1, 1),
    ((64, 1, 28, 28), 8, 5, 1, 0, 1),
    ((8, 64, 56, 56), 64, 3, 1, 1, 1),
    ((8, 64, 56, 56), 128, 3, 2, 1, 1),
    ((8, 128, 28, 28), 128, 1, 1, 0, 1),
    ((8, 128, 28, 28), 128, 3, 1, 1, 128),  # depthwise
]


def paired(mine, peer):
    """Median per-round ratio mine/peer, and the median times.

    Rounds alternate the two sides (A B A B ...). Each side's turn starts with a pause
    and an untimed run, then a few timed runs back to back: OpenBLAS's threads (NumPy)
    and OpenMP's (PyTorch) keep spinning on the two cores for a while after their work,
    so a call timed right after the other library's would be charged for its threads.
    """
    for f in (mine, peer):
        f()
    t0 = time.perf_counter()
    peer()
    estimate = max(time.perf_counter() - t0, 1e-5)
    repeats = max(2, min(20, int(0.05 / estimate)))  # ~50 ms of work per side and round
    rounds = max(MIN_ROUNDS, min(15, int(TARGET_SECONDS / (estimate * repeats))))
    ratios, mine_times, peer_times = [], [], []
    for _ in range(rounds):
        medians = []
        for f in (mine, peer):
            time.sleep(SETTLE_SECONDS)  # the other library's threads stop spinning
            f()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                f()
                times.append(time.perf_counter() - start)
            medians.append(statistics.median(times))
        mine_times.append(medians[0])
        peer_times.append(medians[1])
        ratios.append(medians[0] / medians[1])
    return statistics.median(ratios), statistics.median(mine_times), statistics.median(peer_times)


def row(name, ratio, mine, peer, flops=None, peer_name="torch", efficiency=None):
    gflops = ""
    if flops:
        gflops = f"{flops / mine / 1e9:7.1f} {flops / peer / 1e9:7.1f}"
    if efficiency is not None:
        gflops += f"   {efficiency:5.2f}" if efficiency == efficiency else "       -"
    print(
        f"{name:<44} {ratio:6.2f}x  {mine * 1e3:9.2f} {peer * 1e3:9.2f} ms  {peer_name:<6} {gflops}",
        flush=True,
    )


def gemm_efficiency(mine, gemm):
    """Paired time of the matmuls over cnnkit's time (1 = at NumPy's ceiling); NaN without one."""
    if gemm is None:
        return math.nan
    ratio, _, _ = paired(gemm, mine)
    return ratio


def header(title, flops=False):
    extra = "  GFLOP/s ck   peer  GEMM eff." if flops else ""
    print(
        f"\n== {title}\n{'case':<44} {'ratio':>7}  {'cnnkit':>9} {'peer':>9}     {'peer':<6}{extra}"
    )


def conv_flops(shape, o, k, stride, pad, groups):
    n, c, h, w = shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    return 2.0 * n * o * ho * wo * (c // groups) * k * k


def gemm_of(shape, o, k, stride, pad, groups, backward=False):
    """NumPy matmuls with a convolution's FLOPs, in the faster of the two orientations.

    The windows matrix is (M, K) = (N*Ho*Wo, C*k*k) and the weights (K, O): forward is
    windows x weights (M, K) @ (K, O) or weights x windows (O, K) @ (K, M); backward
    adds the weight gradient and the windows' gradient in the same orientation. None
    for grouped convolutions (not one GEMM).
    """
    if groups != 1:
        return None
    n, c, h, w = shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    m, kk = n * ho * wo, c * k * k
    rng = np.random.default_rng(1)
    windows = rng.standard_normal((m, kk), dtype=np.float32)  # (M, K)
    weights = rng.standard_normal((kk, o), dtype=np.float32)  # (K, O)
    grad = rng.standard_normal((m, o), dtype=np.float32)  # (M, O)
    windows_t = np.ascontiguousarray(windows.T)  # (K, M)
    weights_t = np.ascontiguousarray(weights.T)  # (O, K)
    grad_t = np.ascontiguousarray(grad.T)  # (O, M)

    def rows_first():  # (M, K) @ (K, O); (K, M) @ (M, O); (M, O) @ (O, K)
        windows @ weights
        if backward:
            windows_t @ grad
            grad @ weights_t

    def weights_first():  # (O, K) @ (K, M); (O, M) @ (M, K); (K, O) @ (O, M)
        weights_t @ windows_t
        if backward:
            grad_t @ windows
            weights @ grad_t

    def best_time(f):
        f()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            f()
            times.append(time.perf_counter() - start)
        return min(times)

    return min((rows_first, weights_first), key=best_time)


def bench_conv():
    import torch

    import cnnkit.functional as F
    from cnnkit import nn

    header("conv2d forward (functional) vs torch.nn.functional.conv2d", flops=True)
    print("   GEMM eff.: NumPy's matmul of the same FLOPs (faster orientation) / cnnkit, paired")
    rng = np.random.default_rng(0)
    fwd_ratios, both_ratios = [], []
    for shape, o, k, stride, pad, groups in CONV_CASES:
        x = rng.standard_normal(shape, dtype=np.float32)
        w = rng.standard_normal((o, shape[1] // groups, k, k), dtype=np.float32)
        b = rng.standard_normal(o, dtype=np.float32)
        xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
        with torch.no_grad():
            ratio, mine, peer = paired(
                lambda: F.conv2d(x, w, b, stride, pad, groups=groups),
                lambda: torch.nn.functional.conv2d(xt, wt, bt, stride, pad, groups=groups),
            )
        fwd_ratios.append(ratio)
        name = f"{shape}->{o} k{k} s{stride} p{pad}" + (f" g{groups}" if groups > 1 else "")
        row(
            name,
            ratio,
            mine,
            peer,
            conv_flops(shape, o, k, stride, pad, groups),
            efficiency=gemm_efficiency(
                lambda: F.conv2d(x, w, b, stride, pad, groups=groups),
                gemm_of(shape, o, k, stride, pad, groups),
            ),
        )
    print(f"{'geometric mean':<44} {math.exp(np.mean(np.log(fwd_ratios))):6.2f}x")

    header("conv2d forward + backward: nn.Conv2d vs torch.nn.Conv2d autograd", flops=True)
    for shape, o, k, stride, pad, groups in CONV_CASES:
        x = rng.standard_normal(shape, dtype=np.float32)
        layer = nn.Conv2d(shape[1], o, k, stride, pad, groups=groups, rng=0)
        reference = torch.nn.Conv2d(shape[1], o, k, stride, pad, groups=groups)
        reference.load_state_dict(
            {key: torch.from_numpy(v) for key, v in layer.state_dict().items()}
        )
        xt = torch.from_numpy(x).requires_grad_()
        grad = np.ones(layer(x).shape, dtype=np.float32)
        gt = torch.from_numpy(grad)

        def mine():
            layer(x)
            layer.backward(grad)

        def peer():
            reference(xt).backward(gt)

        ratio, t_mine, t_peer = paired(mine, peer)
        both_ratios.append(ratio)
        name = f"{shape}->{o} k{k} s{stride} p{pad}" + (f" g{groups}" if groups > 1 else "")
        row(
            name,
            ratio,
            t_mine,
            t_peer,
            3 * conv_flops(shape, o, k, stride, pad, groups),
            efficiency=gemm_efficiency(
                mine, gemm_of(shape, o, k, stride, pad, groups, backward=True)
            ),
        )
    print(f"{'geometric mean':<44} {math.exp(np.mean(np.log(both_ratios))):6.2f}x")


def bench_filter():
    import scipy.ndimage as ndi
    import torch

    import cnnkit as ck

    header("filter2d, 3x3 Sobel, zero padding 'same' vs scipy.ndimage.correlate and torch")
    kernel = ck.kernels.get("sobel_top").astype(np.float32)
    kt = torch.from_numpy(kernel)[None, None]
    rng = np.random.default_rng(0)
    for shape in ((1024, 1024), (1024, 1024, 3)):
        image = rng.random(shape, dtype=np.float32)

        def scipy_filter(image=image):
            if image.ndim == 2:
                return ndi.correlate(image, kernel, mode="constant")
            return np.stack(
                [
                    ndi.correlate(image[..., c], kernel, mode="constant")
                    for c in range(image.shape[2])
                ],
                -1,
            )

        planes = torch.from_numpy(np.ascontiguousarray(np.atleast_3d(image).transpose(2, 0, 1)))[
            :, None
        ]

        def torch_filter(planes=planes):
            with torch.no_grad():
                return torch.nn.functional.conv2d(planes, kt, padding=1)

        mine = lambda image=image: ck.filter2d(image, kernel, padding="same")  # noqa: E731
        ratio, t_mine, t_peer = paired(mine, scipy_filter)
        row(f"{shape}", ratio, t_mine, t_peer, peer_name="scipy")
        ratio, t_mine, t_peer = paired(mine, torch_filter)
        row(f"{shape}", ratio, t_mine, t_peer, peer_name="torch")


def bench_pool():
    import torch

    import cnnkit.functional as F

    header("pooling and batch norm, forward + backward, vs torch autograd")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64, 56, 56), dtype=np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    mean, var = np.zeros(64, np.float32), np.ones(64, np.float32)
    weight, bias = np.ones(64, np.float32), np.zeros(64, np.float32)
    mt, vt = torch.from_numpy(mean.copy()), torch.from_numpy(var.copy())
    wt, bt = torch.ones(64, requires_grad=True), torch.zeros(64, requires_grad=True)
    cases = {
        "max_pool2d 2x2 s2": (
            lambda: F.max_pool2d_forward(x, 2),
            F.max_pool2d_backward,
            lambda: torch.nn.functional.max_pool2d(xt, 2),
        ),
        "max_pool2d 3x3 s2 p1": (
            lambda: F.max_pool2d_forward(x, 3, 2, 1),
            F.max_pool2d_backward,
            lambda: torch.nn.functional.max_pool2d(xt, 3, 2, 1),
        ),
        "avg_pool2d 2x2 s2": (
            lambda: F.avg_pool2d_forward(x, 2),
            F.avg_pool2d_backward,
            lambda: torch.nn.functional.avg_pool2d(xt, 2),
        ),
        "batch_norm training": (
            lambda: F.batch_norm_forward(x, mean, var, weight, bias, training=True),
            lambda g, c: F.batch_norm_backward(g, c)[0],
            lambda: torch.nn.functional.batch_norm(xt, mt, vt, wt, bt, training=True),
        ),
    }
    for name, (forward, backward, reference) in cases.items():
        out, _ = forward()
        grad = np.ones(out.shape, np.float32)
        gt = torch.from_numpy(grad)

        def mine(forward=forward, backward=backward, grad=grad):
            backward(grad, forward()[1])

        def peer(reference=reference, gt=gt):
            reference().backward(gt)

        row(f"(32, 64, 56, 56) {name}", *paired(mine, peer))


def bench_train():
    import torch
    from train_digits import torch_twin  # beside this file

    from cnnkit import data, models, nn, optim

    header("one training epoch on the digits, default model, batch 64, Adam 3e-3")
    train, _ = data.load_digits()
    model = models.digits_cnn(rng=0)
    reference = torch_twin(model)
    criterion, optimizer = nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=3e-3)
    torch_criterion = torch.nn.CrossEntropyLoss()
    torch_optimizer = torch.optim.Adam(reference.parameters(), lr=3e-3)
    x, y = train.x.astype(np.float32), train.y.astype(np.int64)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    order = np.random.default_rng(0).permutation(len(y))
    batches = [order[i : i + 64] for i in range(0, len(y), 64)]

    def mine():
        for idx in batches:
            loss = criterion(model(x[idx]), y[idx])
            optimizer.zero_grad()
            model.backward(criterion.backward())
            optimizer.step()
        return loss

    def peer():
        for idx in batches:
            ti = torch.from_numpy(idx)
            loss = torch_criterion(reference(xt[ti]), yt[ti])
            torch_optimizer.zero_grad()
            loss.backward()
            torch_optimizer.step()
        return loss

    row(f"digits_cnn epoch ({len(y)} images, {len(batches)} steps)", *paired(mine, peer))


MEMORY_CASES = {
    "filter2d 8192x8192 gray": "filter_gray",
    "filter2d 4096x4096x3": "filter_rgb",
    "conv2d (8, 64, 56, 56)->128 k3 fwd": "conv_forward",
    "conv2d (8, 64, 56, 56)->128 k3 fwd+bwd": "conv_backward",
    "max_pool2d 3x3 s2 p1 (32, 64, 112, 112) fwd+bwd": "max_pool",
    "batch_norm (32, 64, 112, 112) fwd+bwd": "batch_norm",
    "depthwise 3x3 (8, 128, 112, 112) fwd+bwd": "depthwise",
}


def _memory_case(name):
    """Run one case in this process; print peak RSS growth beyond inputs and outputs (MiB)."""
    import cnnkit as ck
    import cnnkit.functional as F

    rng = np.random.default_rng(0)
    kernel = ck.kernels.get("sobel_top").astype(np.float32)
    if name in ("max_pool", "batch_norm", "depthwise"):
        shape = (8, 128, 112, 112) if name == "depthwise" else (32, 64, 112, 112)
        inputs = [rng.standard_normal(shape, dtype=np.float32)]
        channels = shape[1]
        if name == "depthwise":
            inputs.append(rng.standard_normal((channels, 1, 3, 3), dtype=np.float32))
        else:
            inputs += [np.zeros(channels, np.float32), np.ones(channels, np.float32)]

        def run():  # the gradient fed back counts with the outputs
            if name == "max_pool":
                out, cache = F.max_pool2d_forward(inputs[0], 3, 2, 1)
                grad = np.ones(out.shape, np.float32)
                return out, grad, F.max_pool2d_backward(grad, cache)
            if name == "batch_norm":
                out, cache = F.batch_norm_forward(inputs[0], *inputs[1:], training=True)
                grad = np.ones(out.shape, np.float32)
                return out, grad, F.batch_norm_backward(grad, cache)
            out, cache = F.conv2d_forward(inputs[0], inputs[1], padding=1, groups=channels)
            grad = np.ones(out.shape, np.float32)
            return out, grad, F.conv2d_backward(grad, cache)

    elif name.startswith("filter"):
        shape = (8192, 8192) if name == "filter_gray" else (4096, 4096, 3)
        inputs = [rng.random(shape, dtype=np.float32)]
        run = lambda: ck.filter2d(inputs[0], kernel, padding="same")  # noqa: E731
    else:
        inputs = [
            rng.standard_normal((8, 64, 56, 56), dtype=np.float32),
            rng.standard_normal((128, 64, 3, 3), dtype=np.float32),
        ]
        if name == "conv_forward":
            run = lambda: F.conv2d(inputs[0], inputs[1], padding=1)  # noqa: E731
        else:

            def run():
                out, cache = F.conv2d_forward(inputs[0], inputs[1], padding=1)
                return out, F.conv2d_backward(np.ones(out.shape, np.float32), cache)

    baseline = _rss_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:  # reset the peak (VmHWM) to now
        handle.write("5")
    result = run()
    peak = _rss_bytes("VmHWM")
    flat = (
        [result]
        if isinstance(result, np.ndarray)
        else [a for a in _flatten(result) if isinstance(a, np.ndarray)]
    )
    output_bytes = sum(a.nbytes for a in flat)
    print(
        json.dumps(
            {
                "extra_mib": (peak - baseline - output_bytes) / 2**20,
                "input_mib": sum(a.nbytes for a in inputs) / 2**20,
                "output_mib": output_bytes / 2**20,
            }
        )
    )


def _rss_bytes(field):
    """The process's current (VmRSS) or peak (VmHWM) resident memory, from /proc."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _flatten(items):
    for item in items:
        if isinstance(item, (tuple, list)):
            yield from _flatten(item)
        else:
            yield item


def bench_memory():
    print(
        "\n== peak memory beyond inputs and outputs (max RSS growth, each case in a fresh process)"
    )
    print(f"{'case':<44} {'extra MiB':>10} {'input MiB':>10} {'output MiB':>11}")
    for label, name in MEMORY_CASES.items():
        result = subprocess.run(
            [sys.executable, __file__, "--memory-case", name],
            capture_output=True,
            text=True,
            check=True,
        )
        numbers = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"{label:<44} {numbers['extra_mib']:10.1f} {numbers['input_mib']:10.1f} {numbers['output_mib']:11.1f}"
        )


SECTIONS = {
    "conv": bench_conv,
    "filter": bench_filter,
    "pool": bench_pool,
    "train": bench_train,
    "memory": bench_memory,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], default=[])
    parser.add_argument("--memory-case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_case:
        _memory_case(args.memory_case)
        return 0
    import torch

    import cnnkit

    torch.set_num_threads(THREADS)
    cnnkit.set_num_threads(THREADS)  # cnnkit's pool for the memory-bound passes
    print(
        f"cnnkit vs peers, float32, {THREADS} threads; numpy {np.__version__}, torch {torch.__version__}; "
        f"ratio = cnnkit time / peer time (median of alternating rounds)"
    )
    for name in args.sections or SECTIONS:
        SECTIONS[name]()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    raise SystemExit(main())
