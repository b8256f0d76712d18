"""The depthwise engine (plain and interleaved) in blocks and on 1 or 2 threads, against
PyTorch and the im2col strategy, and bitwise across thread counts."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnkit as ck
import cnnkit.functional as F
from cnnkit import _threads
from cnnkit.functional import conv as conv_module
from cnnkit.functional._conv_depthwise import _blocks as depthwise_blocks

TORCH_MODES = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}

# n, c, h, w, kernel, stride, padding (int), dilation, padding_mode, channels-last memory
CASES = [
    (2, 12, 9, 10, (3, 3), 1, 1, 1, "zeros", False),  # channels-last engine, planar input
    (2, 12, 9, 10, (3, 3), 1, 1, 1, "zeros", True),  # channels-last engine and input
    (3, 9, 11, 8, (3, 2), (2, 1), (1, 1), (1, 2), "zeros", False),
    (1, 16, 7, 7, (5, 5), 2, 2, 1, "reflect", True),
    (2, 8, 6, 9, (2, 3), 1, (1, 0), 1, "replicate", False),
    (2, 3, 9, 10, (3, 3), 1, 1, 1, "zeros", False),  # planar engine
    (1, 1, 12, 13, (3, 3), 2, 1, (2, 1), "circular", False),
    (2, 5, 10, 7, (4, 2), (1, 2), (2, 1), 1, "zeros", True),
]


def torch_depthwise(x, weight, bias, stride, padding, dilation, mode, grad):
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(weight, requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    if mode == "zeros":
        out = TF.conv2d(xt, wt, bt, stride, (ph, pw), dilation, groups=x.shape[1])
    else:
        xp = TF.pad(xt, (pw, pw, ph, ph), mode=TORCH_MODES[mode])
        out = TF.conv2d(xp, wt, bt, stride, 0, dilation, groups=x.shape[1])
    out.backward(torch.tensor(grad))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def make(case, rng, dtype):
    n, c, h, w, kernel, stride, padding, dilation, mode, channels_last = case
    if channels_last:
        x = rng.standard_normal((n, h, w, c)).astype(dtype).transpose(0, 3, 1, 2)
    else:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((c, 1, *kernel)).astype(dtype)
    weight[0, 0, 0, 0], weight[-1, 0, -1, -1] = 1.0, -1.0  # the exact +1/-1 taps
    if c > 2:
        weight[:, 0, 0, -1] = -1.0  # a tap of -1 on every channel
    bias = rng.standard_normal(c).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=c, padding_mode=mode)
    return x, weight, bias, kwargs


@pytest.mark.parametrize("budget", [None, 700])
@pytest.mark.parametrize("case", CASES)
def test_depthwise_matches_torch_and_im2col(case, budget, rng, monkeypatch, threads):
    """Forward and backward equal PyTorch's and the im2col strategy's, in one block or many."""
    if budget is not None:
        monkeypatch.setattr(_threads, "BLOCK_BYTES", budget)
    x, weight, bias, kwargs = make(case, rng, np.float64)
    out, cache = F.conv2d_forward(x, weight, bias, **kwargs)
    assert cache.strategy == "depthwise"
    grad = rng.standard_normal(out.shape)
    grads = F.conv2d_backward(grad, cache)
    expected = torch_depthwise(
        x,
        weight,
        bias,
        kwargs["stride"],
        kwargs["padding"],
        kwargs["dilation"],
        kwargs["padding_mode"],
        grad,
    )
    for mine, theirs in zip((out, *grads), expected):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-10)
    monkeypatch.setattr(conv_module, "_strategy", lambda *args: "im2col")
    out_ref, cache_ref = F.conv2d_forward(x, weight, bias, **kwargs)
    for mine, theirs in zip((out, *grads), (out_ref, *F.conv2d_backward(grad, cache_ref))):
        np.testing.assert_allclose(mine, theirs, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("case", CASES)
def test_depthwise_is_the_same_for_any_thread_count(case, rng, monkeypatch):
    """float32 forward and backward are bitwise equal on 1, 2 and 3 threads."""
    monkeypatch.setattr(_threads, "BLOCK_BYTES", 700)
    x, weight, bias, kwargs = make(case, rng, np.float32)
    grad = None
    results = []
    before = ck.get_num_threads()
    try:
        for count in (1, 2, 3):
            ck.set_num_threads(count)
            out, cache = F.conv2d_forward(x, weight, bias, **kwargs)
            grad = rng.standard_normal(out.shape).astype(np.float32) if grad is None else grad
            results.append((out, *F.conv2d_backward(grad, cache)))
    finally:
        ck.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_output_keeps_the_input_layout():
    """A channels-first input gives a channels-first output, a channels-last one channels-last."""
    weight = np.ones((12, 1, 3, 3), np.float32)
    planar = np.ones((2, 12, 5, 5), np.float32)
    assert F.conv2d(planar, weight, groups=12).flags.c_contiguous
    channels_last = np.ones((2, 5, 5, 12), np.float32).transpose(0, 3, 1, 2)
    assert F.conv2d(channels_last, weight, groups=12).transpose(0, 2, 3, 1).flags.c_contiguous


@pytest.mark.parametrize("shape", [(37, 41), (37, 41, 3)])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_filter2d_in_blocks_matches_scipy(shape, padding_mode, rng, monkeypatch, threads):
    """filter2d (plain, interleaved and depthwise paths), in blocks on 1 or 2 threads, equals scipy."""
    import scipy.ndimage as ndi

    monkeypatch.setattr(_threads, "BLOCK_BYTES", 2000)
    image = rng.random(shape, dtype=np.float32)
    kernel = ck.kernels.get("sobel_top").astype(np.float32)
    got = ck.filter2d(image, kernel, padding="same", padding_mode=padding_mode)
    mode = {"zeros": "constant", "reflect": "mirror"}[padding_mode]
    planes = image[..., None] if image.ndim == 2 else image
    expected = np.stack(
        [ndi.correlate(planes[..., c], kernel, mode=mode) for c in range(planes.shape[2])], -1
    )
    np.testing.assert_allclose(got, expected.reshape(got.shape), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3, 12])
def test_zero_taps_still_spread_inf_and_nan(channels, rng, threads):
    """Zero taps are skipped only where the input is finite: 0 * inf stays NaN, as PyTorch."""
    kernel = ck.kernels.get("sobel_top").astype(np.float32)  # a row of zeros
    x = rng.standard_normal((2, channels, 12, 11)).astype(np.float32)
    x[0, 0, 5, 5] = np.inf
    x[1, -1, 2, 7] = np.nan
    weight = np.ascontiguousarray(np.broadcast_to(kernel, (channels, 1, 3, 3)))
    got = F.conv2d(x, weight, padding=1, groups=channels)
    expected = TF.conv2d(torch.tensor(x), torch.tensor(weight), padding=1, groups=channels).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# n, c, h, w, kernel, stride, padding, dilation: zero padding, whole planes per block
PARTITION_CASES = [
    (3, 10, 8, 7, (3, 3), 2, 0, 1),  # stride 2: the last input row is read by no tap
    (4, 7, 6, 5, (2, 3), (2, 3), (1, 2), (2, 1)),
    (2, 5, 9, 11, (2, 2), 3, 1, 1),  # stride 3, kernel 2: a component no tap reads
    (3, 6, 7, 9, (3, 3), 1, 1, (2, 2)),
]


@pytest.mark.parametrize("case", PARTITION_CASES)
def test_depthwise_blocks_of_several_planes(case, rng, monkeypatch):
    """Blocks of several channels and samples, sizes that do not divide C or N, strides,
    dilations: equal to PyTorch at every budget, and bitwise on 1, 2 and 3 threads."""
    n, c, h, w, kernel, stride, padding, dilation = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((c, 1, *kernel)).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=c)
    grad = None
    partitions = set()
    before = ck.get_num_threads()
    try:
        for budget in [1] + [int(2 ** (k / 4)) for k in range(32, 84)]:
            monkeypatch.setattr(_threads, "BLOCK_BYTES", budget)
            g = F.conv2d_forward(x, weight, bias, **kwargs)[1].geometry
            partition = tuple((b.n1 - b.n0, b.c1 - b.c0) for b in depthwise_blocks(g, 4))
            if partition in partitions:
                continue
            partitions.add(partition)
            results = []
            for count in (1, 2, 3):
                ck.set_num_threads(count)
                out, cache = F.conv2d_forward(x, weight, bias, **kwargs)
                if grad is None:
                    grad = rng.standard_normal(out.shape).astype(np.float32)
                    expected = torch_depthwise(
                        x.astype(np.float64),
                        weight.astype(np.float64),
                        bias.astype(np.float64),
                        stride,
                        padding,
                        dilation,
                        "zeros",
                        grad.astype(np.float64),
                    )
                results.append((out, *F.conv2d_backward(grad, cache)))
            for mine, theirs in zip(results[0], expected):
                np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4)
            for other in results[1:]:
                for a, b in zip(results[0], other):
                    np.testing.assert_array_equal(a, b)
    finally:
        ck.set_num_threads(before)
    # the budgets gave bands, blocks of several samples, and several channels per block
    sizes = {size for partition in partitions for size in partition}
    assert (1, 1) in sizes and any(nb > 1 for nb, _ in sizes) and any(cb > 1 for _, cb in sizes)
    assert n < 3 or any(1 < nb < n for nb, _ in sizes)  # some blocks hold part of the batch
