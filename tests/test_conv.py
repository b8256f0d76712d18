"""conv2d against PyTorch (forward and autograd) and a naive loop (gradient checks:
test_properties.py)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnkit.functional as F
from cnnkit.functional import _shapes as shapes_module
from cnnkit.functional import conv as conv_module

import reference

TORCH_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "replicate",
    "circular": "circular",
}


def resolve_pads(padding, h, w, kernel, stride, dilation):
    """(top, bottom, left, right), computed independently of cnnkit's code.

    For "same" at stride > 1 the oracle is not independent of the rule: PyTorch refuses
    padding="same" there, so the pads come from reference.same_pads, TensorFlow's rule as
    cnnkit also reads it, and PyTorch then checks the convolution given those pads.
    """
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        return reference.same_pads(h, kernel[0], stride[0], dilation[0]) + reference.same_pads(
            w, kernel[1], stride[1], dilation[1]
        )
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return (ph, ph, pw, pw)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def torch_conv(x, weight, bias, stride, pads, dilation, groups, mode, grad_output=None):
    """PyTorch's result (and gradients when grad_output is given): F.pad then F.conv2d."""
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(weight, requires_grad=True)
    bt = None if bias is None else torch.tensor(bias, requires_grad=True)
    top, bottom, left, right = pads
    xp = TF.pad(xt, (left, right, top, bottom), mode=TORCH_MODES[mode]) if any(pads) else xt
    out = TF.conv2d(xp, wt, bt, stride=stride, padding=0, dilation=dilation, groups=groups)
    if grad_output is None:
        return out.detach().numpy()
    out.backward(torch.tensor(grad_output))
    grads = (xt.grad.numpy(), wt.grad.numpy(), None if bt is None else bt.grad.numpy())
    return out.detach().numpy(), grads


# n, c, h, w, o, kernel, stride, padding, dilation, groups, padding_mode
CASES = [
    (2, 3, 7, 9, 4, (3, 3), 1, 0, 1, 1, "zeros"),
    (1, 1, 6, 6, 1, (3, 3), 3, 0, 1, 1, "zeros"),  # the walkthrough's stride 3
    (2, 4, 8, 7, 6, (3, 2), (2, 1), (1, 2), 1, 2, "zeros"),
    (3, 6, 9, 9, 6, (3, 3), 1, 1, 1, 6, "zeros"),  # depthwise
    (2, 4, 9, 9, 8, (3, 3), 2, 1, 1, 4, "reflect"),  # depthwise, multiplier 2
    (1, 2, 5, 5, 3, (5, 5), 1, 0, 1, 1, "zeros"),  # kernel equal to the input
    (2, 3, 11, 10, 4, (3, 3), 2, 2, 2, 1, "replicate"),
    (2, 2, 6, 5, 2, (2, 3), 3, (2, 1), 1, 2, "circular"),
    (1, 3, 7, 8, 5, (1, 1), 1, 0, 1, 1, "zeros"),
    (2, 3, 10, 13, 4, (4, 3), (3, 2), "same", (1, 2), 1, "zeros"),
    (1, 2, 9, 8, 2, (2, 2), 1, "same", 1, 1, "reflect"),
    (2, 3, 8, 8, 3, (3, 3), 2, "valid", 1, 3, "zeros"),
    (4, 1, 5, 5, 2, (3, 3), 1, 1, 1, 1, "circular"),
    (2, 2, 7, 7, 4, (3, 3), 2, "same", 1, 2, "replicate"),
    (1, 5, 4, 6, 3, (2, 4), (1, 3), (1, 0), (2, 1), 1, "zeros"),
]


def random_cases(count, seed):
    """Random valid configurations, including every padding mode, groups and dilation."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        groups = int(rng.integers(1, 4))
        c, o = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
        kernel = tuple(int(k) for k in rng.integers(1, 5, size=2))
        stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
        dilation = tuple(int(d) for d in rng.integers(1, 3, size=2))
        h, w = (int(v) for v in rng.integers(1, 12, size=2))
        padding = [0, 1, 2, (0, 2), "same", "valid"][rng.integers(6)]
        mode = ["zeros", "reflect", "replicate", "circular"][rng.integers(4)]
        pads = resolve_pads(padding, h, w, kernel, stride, dilation)
        if mode == "reflect" and (max(pads[:2]) >= h or max(pads[2:]) >= w):
            continue
        if mode == "circular" and (max(pads[:2]) > h or max(pads[2:]) > w):
            continue
        span_h = h + pads[0] + pads[1] - dilation[0] * (kernel[0] - 1)
        span_w = w + pads[2] + pads[3] - dilation[1] * (kernel[1] - 1)
        if span_h < 1 or span_w < 1:
            continue
        n = int(rng.integers(1, 4))
        cases.append((n, c, h, w, o, kernel, stride, padding, dilation, groups, mode))
    return cases


def make_inputs(case, dtype, rng, bias=True):
    n, c, h, w, o, kernel, stride, padding, dilation, groups, mode = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c // groups, *kernel)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None
    kwargs = dict(
        stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode
    )
    pads = resolve_pads(padding, h, w, kernel, pair(stride), pair(dilation))
    return x, weight, b, kwargs, pads


ALL_CASES = CASES + random_cases(40, seed=7)


@pytest.mark.parametrize("case", ALL_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_and_backward_match_torch_float64(case, bias, rng):
    """Output and all three gradients equal PyTorch's in float64."""
    x, weight, b, kwargs, pads = make_inputs(case, np.float64, rng, bias)
    out, cache = F.conv2d_forward(x, weight, b, **kwargs)
    grad_output = rng.standard_normal(out.shape)
    expected, (gx, gw, gb) = torch_conv(
        x,
        weight,
        b,
        pair(kwargs["stride"]),
        pads,
        pair(kwargs["dilation"]),
        kwargs["groups"],
        kwargs["padding_mode"],
        grad_output,
    )
    assert out.shape == expected.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    dx, dw, db = F.conv2d_backward(grad_output, cache)
    np.testing.assert_allclose(dx, gx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, gw, rtol=1e-10, atol=1e-10)
    if bias:
        np.testing.assert_allclose(db, gb, rtol=1e-10, atol=1e-10)
    else:
        assert db is None


@pytest.mark.parametrize("case", CASES)
def test_float32_matches_torch(case, rng):
    """float32 stays float32 and agrees with PyTorch to float32 precision, gradients too."""
    x, weight, b, kwargs, pads = make_inputs(case, np.float32, rng)
    out, cache = F.conv2d_forward(x, weight, b, **kwargs)
    grad_output = rng.standard_normal(out.shape).astype(np.float32)
    expected, grads = torch_conv(
        x,
        weight,
        b,
        pair(kwargs["stride"]),
        pads,
        pair(kwargs["dilation"]),
        kwargs["groups"],
        kwargs["padding_mode"],
        grad_output,
    )
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    for mine, theirs in zip(F.conv2d_backward(grad_output, cache), grads):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES[:9])
def test_forward_matches_naive_loops(case, rng):
    """Against the loop implementation, which shares no code with cnnkit or PyTorch."""
    x, weight, b, kwargs, pads = make_inputs(case, np.float64, rng)
    expected = reference.conv2d(
        x,
        weight,
        b,
        pair(kwargs["stride"]),
        pads,
        pair(kwargs["dilation"]),
        kwargs["groups"],
        kwargs["padding_mode"],
    )
    np.testing.assert_allclose(F.conv2d(x, weight, b, **kwargs), expected, rtol=1e-12, atol=1e-12)


def test_walkthrough_matrix_stride_1_and_3():
    """A 6x6 matrix and a 3x3 kernel: 4x4 at stride 1, 2x2 at stride 3, as the loops say."""
    matrix = np.arange(36, dtype=np.float64).reshape(6, 6) % 7
    kernel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    for stride, size in ((1, 4), (3, 2)):
        out = F.conv2d(matrix, kernel, stride=stride)
        expected = reference.conv2d(matrix[None, None], kernel[None, None], stride=(stride, stride))
        assert out.shape == (size, size)
        np.testing.assert_allclose(out, expected[0, 0])


@pytest.mark.parametrize("padding", [0, 1, "same", (2, 0)])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_plain_matrix_equals_batched_form(padding, mode, rng):
    """(H, W) x (kH, kW) is the (1, 1, H, W) x (1, 1, kH, kW) case, forward and backward."""
    x = rng.standard_normal((7, 8))
    k = rng.standard_normal((3, 2))
    out, cache = F.conv2d_forward(x, k, padding=padding, padding_mode=mode, stride=(1, 2))
    out4, cache4 = F.conv2d_forward(
        x[None, None], k[None, None], padding=padding, padding_mode=mode, stride=(1, 2)
    )
    np.testing.assert_allclose(out, out4[0, 0])
    g = rng.standard_normal(out.shape)
    dx, dk, _ = F.conv2d_backward(g, cache)
    dx4, dk4, _ = F.conv2d_backward(g[None, None], cache4)
    assert dx.shape == x.shape and dk.shape == k.shape
    np.testing.assert_allclose(dx, dx4[0, 0])
    np.testing.assert_allclose(dk, dk4[0, 0])


def test_single_sample_equals_batch_of_one(rng):
    """(C, H, W) input gives the (N=1) result without the batch axis, and its gradient likewise."""
    x = rng.standard_normal((3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    out, cache = F.conv2d_forward(x, w, padding=1)
    out4, cache4 = F.conv2d_forward(x[None], w, padding=1)
    np.testing.assert_allclose(out, out4[0])
    g = rng.standard_normal(out.shape)
    np.testing.assert_allclose(
        F.conv2d_backward(g, cache)[0], F.conv2d_backward(g[None], cache4)[0][0]
    )


@pytest.mark.parametrize("budget", [1, 2000, 50_000])
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[3], CASES[6]])
def test_chunked_workspace_gives_same_result(case, budget, rng, monkeypatch):
    """Splitting the work into row and sample chunks changes nothing, forward or backward."""
    x, weight, b, kwargs, _ = make_inputs(case, np.float64, rng)
    out, cache = F.conv2d_forward(x, weight, b, **kwargs)
    g = rng.standard_normal(out.shape)
    grads = F.conv2d_backward(g, cache)
    monkeypatch.setattr(shapes_module, "WORKSPACE_BYTES", budget)
    out_c, cache_c = F.conv2d_forward(x, weight, b, **kwargs)
    np.testing.assert_allclose(out_c, out, rtol=1e-12, atol=1e-12)
    for mine, full in zip(F.conv2d_backward(g, cache_c), grads):
        np.testing.assert_allclose(mine, full, rtol=1e-12, atol=1e-12)


def _applies(strategy, case):
    """Whether a strategy can compute a case: rows needs stride 1, all need no groups, pointwise 1x1 unpadded."""
    stride, groups = pair(case[6]), case[9]
    if strategy == "pointwise":
        return (
            groups == 1
            and case[5] == (1, 1)
            and pair(stride) == (1, 1)
            and case[7] in (0, (0, 0), "valid")
        )
    return groups == 1 and (strategy == "planar" or stride == (1, 1))


@pytest.mark.parametrize(
    "case, strategy",
    [
        (case, strategy)
        for strategy in ("rows", "planar", "pointwise")
        for case in ALL_CASES
        if _applies(strategy, case)
    ],
)
def test_fast_strategies_agree_with_im2col(case, strategy, rng, monkeypatch):
    """Each fast path gives im2col's results, forward and backward, wherever it applies."""
    x, weight, b, kwargs, _ = make_inputs(case, np.float64, rng)
    g = rng.standard_normal(F.conv2d(x, weight, b, **kwargs).shape)
    results = {}
    for name in ("im2col", strategy):
        monkeypatch.setattr(conv_module, "_strategy", lambda *args, name=name: name)
        out, cache = F.conv2d_forward(x, weight, b, **kwargs)
        assert cache.strategy == name
        results[name] = (out, *F.conv2d_backward(g, cache))
    for mine, theirs in zip(results[strategy], results["im2col"]):
        if theirs is None:
            assert mine is None
        else:
            np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)


def assert_forced_strategy_matches_torch(strategy, case, budget, rng, monkeypatch):
    """`strategy`, forced, with workspaces of `budget` bytes: PyTorch's output and gradients."""
    monkeypatch.setattr(conv_module, "_strategy", lambda *args: strategy)
    monkeypatch.setattr(shapes_module, "WORKSPACE_BYTES", budget)
    x, weight, b, kwargs, pads = make_inputs(case, np.float64, rng)
    out, cache = F.conv2d_forward(x, weight, b, **kwargs)
    g = rng.standard_normal(out.shape)
    expected, grads = torch_conv(
        x,
        weight,
        b,
        pair(kwargs["stride"]),
        pads,
        pair(kwargs["dilation"]),
        kwargs["groups"],
        kwargs["padding_mode"],
        g,
    )
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    for mine, theirs in zip(F.conv2d_backward(g, cache), grads):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("budget", [1, 3000])
@pytest.mark.parametrize("case", [c for c in CASES if c[9] == 1][:5])
def test_planar_strategy_in_bands_matches_torch(case, budget, rng, monkeypatch):
    """The planar path, forced and cut into bands, matches PyTorch forward and backward."""
    assert_forced_strategy_matches_torch("planar", case, budget, rng, monkeypatch)


@pytest.mark.parametrize("strategy", ["rows", "planar"])
@pytest.mark.parametrize(
    "shape, wshape, padding",
    [
        ((64, 1, 28, 28), (8, 1, 5, 5), 0),  # a first layer cut into several bands
        ((3, 3, 70, 90), (16, 3, 3, 3), 1),
    ],
)
def test_strategies_agree_on_inputs_larger_than_the_workspace(
    strategy, shape, wshape, padding, rng, monkeypatch
):
    """Inputs that need many chunks give im2col's numbers on every path, backward included."""
    x, w = rng.standard_normal(shape), rng.standard_normal(wshape)
    results = {}
    for name in ("im2col", strategy):
        monkeypatch.setattr(conv_module, "_strategy", lambda *args, name=name: name)
        out, cache = F.conv2d_forward(x, w, padding=padding)
        results[name] = (out, *F.conv2d_backward(np.ones_like(out), cache)[:2])
    for mine, theirs in zip(results[strategy], results["im2col"]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-11, atol=1e-11)


# n, c, h, w, kernel, stride, padding, dilation: depthwise, zero padding, column stride 1
INTERLEAVED_CASES = [
    (1, 3, 9, 11, (3, 3), 1, 0, 1),
    (2, 3, 8, 7, (2, 4), (2, 1), "same", 1),  # asymmetric "same" pads, row stride 2
    (1, 4, 10, 9, (3, 2), 1, (2, 1), (2, 1)),
    (3, 2, 6, 6, (1, 5), 1, "same", (1, 2)),
    (1, 3, 5, 5, (5, 5), 1, 0, 1),  # kernel equal to the image
]


@pytest.mark.parametrize("budget", [None, 1])
@pytest.mark.parametrize("case", INTERLEAVED_CASES)
def test_interleaved_strategy_matches_im2col_and_torch(case, budget, rng, monkeypatch):
    """One kernel on every channel of a channels-last input: the (H, W*C) path, forward and backward."""
    n, c, h, w, kernel, stride, padding, dilation = case
    if budget is not None:
        monkeypatch.setattr(shapes_module, "WORKSPACE_BYTES", budget)
    x = rng.standard_normal((n, h, w, c)).transpose(0, 3, 1, 2)  # (N, C, H, W) view of NHWC memory
    weight = np.broadcast_to(rng.standard_normal((1, 1, *kernel)), (c, 1, *kernel))
    b = rng.standard_normal(c)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=c)
    out, cache = F.conv2d_forward(x, weight, b, **kwargs)
    assert cache.strategy == "interleaved"
    g = rng.standard_normal(out.shape)
    grads = F.conv2d_backward(g, cache)
    monkeypatch.setattr(conv_module, "_strategy", lambda *args: "im2col")
    out_ref, cache_ref = F.conv2d_forward(x, weight, b, **kwargs)
    for mine, theirs in zip((out, *grads), (out_ref, *F.conv2d_backward(g, cache_ref))):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)
    pads = resolve_pads(padding, h, w, kernel, pair(stride), pair(dilation))
    expected, torch_grads = torch_conv(
        x, np.ascontiguousarray(weight), b, pair(stride), pads, pair(dilation), c, "zeros", g
    )
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    for mine, theirs in zip(grads, torch_grads):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-10)


def test_interleaved_only_where_it_applies(rng):
    """Different kernels per channel, other padding modes, column strides or planar memory stay depthwise."""
    x = rng.standard_normal((1, 8, 9, 3)).transpose(0, 3, 1, 2)  # NHWC memory
    shared = np.broadcast_to(np.ones((1, 1, 3, 3)), (3, 1, 3, 3))
    assert F.conv2d_forward(x, shared, groups=3)[1].strategy == "interleaved"
    assert F.conv2d_forward(x, np.ones((3, 1, 3, 3)), groups=3)[1].strategy == "interleaved"
    others = [
        (x, rng.standard_normal((3, 1, 3, 3)), {}),
        (x, shared, {"padding": 1, "padding_mode": "reflect"}),
        (x, shared, {"stride": (1, 2)}),
        (np.ascontiguousarray(x), shared, {}),
    ]
    for xi, wi, kwargs in others:
        assert F.conv2d_forward(xi, wi, groups=3, **kwargs)[1].strategy == "depthwise"


def test_strategy_choice(rng):
    """Few channels go planar, depthwise stays depthwise, wide stride-1 layers go rows
    unless its padded grid wastes over a tenth, strided ones im2col."""
    cases = [
        ("planar", (2, 3, 32, 32), (16, 3, 3, 3), 1, 1),
        ("depthwise", (2, 8, 16, 16), (8, 1, 3, 3), 1, 8),
        ("rows", (2, 32, 48, 48), (32, 32, 3, 3), 1, 1),  # 50x50 grid for 48x48: 8.5 %
        ("im2col", (2, 32, 32, 32), (32, 32, 3, 3), 1, 1),  # 34x34 for 32x32: 13 %
        ("im2col", (2, 32, 16, 16), (32, 32, 3, 3), 2, 1),
    ]
    for expected, shape, wshape, stride, groups in cases:
        _, cache = F.conv2d_forward(
            np.ones(shape), np.ones(wshape), stride=stride, padding=1, groups=groups
        )
        assert cache.strategy == expected


def test_non_contiguous_inputs_and_no_mutation(rng):
    """Transposed, strided and reversed views give the contiguous result; inputs are untouched."""
    base = rng.standard_normal((4, 8, 12, 3))
    x = base.transpose(0, 3, 1, 2)[::2, :, ::-1, ::2]  # (2, 3, 12, 6), no contiguous axis
    w = rng.standard_normal((3, 5, 3, 3)).transpose(1, 0, 2, 3)[:, :, ::-1]
    b = rng.standard_normal(10)[::2]
    snapshot = [a.copy() for a in (x, w, b)]
    out, cache = F.conv2d_forward(x, w, b, padding=1, padding_mode="reflect")
    expected, cache_c = F.conv2d_forward(
        *(np.ascontiguousarray(a) for a in (x, w, b)), padding=1, padding_mode="reflect"
    )
    np.testing.assert_array_equal(out, expected)
    g = rng.standard_normal(out.shape)
    for mine, theirs in zip(F.conv2d_backward(g, cache), F.conv2d_backward(g, cache_c)):
        np.testing.assert_array_equal(mine, theirs)
    for before, after in zip(snapshot, (x, w, b)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("padding, mode", [(1, "zeros"), (2, "reflect"), ("same", "circular")])
def test_depthwise_on_a_channels_last_image_matches_contiguous(padding, mode, rng):
    """The (1, C, H, W) view of an (H, W, C) image filters as its planar copy, gradients too."""
    image = rng.standard_normal((9, 11, 3))
    x = image.transpose(2, 0, 1)[None]
    w = rng.standard_normal((3, 1, 3, 3))
    out, cache = F.conv2d_forward(x, w, groups=3, padding=padding, padding_mode=mode)
    expected, cache_c = F.conv2d_forward(
        np.ascontiguousarray(x), w, groups=3, padding=padding, padding_mode=mode
    )
    assert cache.strategy == "depthwise" and out[0].transpose(1, 2, 0).flags.c_contiguous
    np.testing.assert_array_equal(out, expected)
    g = rng.standard_normal(out.shape)
    for mine, theirs in zip(F.conv2d_backward(g, cache), F.conv2d_backward(g, cache_c)):
        np.testing.assert_array_equal(mine, theirs)


def test_dtypes_follow_numpy_promotion():
    """float32 stays float32, float32 with float64 computes in float64, integers become float32."""
    x32 = np.ones((1, 1, 4, 4), np.float32)
    w32 = np.ones((1, 1, 3, 3), np.float32)
    assert F.conv2d(x32, w32).dtype == np.float32
    assert F.conv2d(x32, w32.astype(np.float64)).dtype == np.float64
    img = np.full((1, 1, 4, 4), 200, np.uint8)
    out = F.conv2d(img, np.ones((1, 1, 3, 3), np.int64))
    assert out.dtype == np.float32 and out[0, 0, 0, 0] == 1800  # no uint8 wrap-around
    assert F.conv2d(np.ones((4, 4), bool), np.ones((2, 2), np.float32)).dtype == np.float32


def test_same_padding_keeps_ceil_size(rng):
    """padding="same" gives ceil(H / stride) rows and columns at any stride."""
    for stride in (1, 2, 3):
        for k in (1, 2, 3, 4):
            out = F.conv2d(
                rng.standard_normal((1, 1, 10, 7)),
                np.ones((1, 1, k, k)),
                padding="same",
                stride=stride,
            )
            assert out.shape[2:] == (-(-10 // stride), -(-7 // stride))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_same_padding_at_stride_1_matches_torch_same(rng):
    """At stride 1 our "same" is PyTorch's padding="same", even kernels included."""
    x = rng.standard_normal((2, 3, 9, 8))
    for kernel in ((3, 3), (2, 4), (4, 1)):
        w = rng.standard_normal((2, 3, *kernel))
        expected = TF.conv2d(
            torch.tensor(x), torch.tensor(w), padding="same", dilation=(2, 1)
        ).numpy()
        np.testing.assert_allclose(
            F.conv2d(x, w, padding="same", dilation=(2, 1)), expected, rtol=1e-10
        )


BAD = [
    (dict(x=[[1.0, 2.0]]), TypeError, "x must be a numpy.ndarray"),
    (dict(x=np.ones((2, 3, 4, 5, 6))), ValueError, "x must have 2 or 3 or 4 dimensions"),
    (dict(x=np.ones(5)), ValueError, "x must have"),
    (dict(weight=np.ones((3, 3))), ValueError, "weight must have shape"),
    (dict(x=np.ones((5, 5)), weight=np.ones((1, 1, 3, 3))), ValueError, "plain (H, W) matrix"),
    (dict(weight=np.ones((2, 2, 3, 3))), ValueError, "expects 2 input channels"),
    (dict(groups=2), ValueError, "groups=2 must divide"),
    (dict(groups=0), ValueError, "groups must be >= 1, got 0"),
    (dict(groups=1.0), TypeError, "groups must be an int"),
    (dict(stride=0), ValueError, "stride must be >= 1, got 0"),
    (dict(stride=(1, -1)), ValueError, "stride must be >= 1, got (1, -1)"),
    (dict(stride=1.5), TypeError, "stride must be an int or a pair of ints, got 1.5"),
    (dict(stride=(1, 2, 3)), ValueError, "stride must be an int or a pair"),
    (dict(dilation=0), ValueError, "dilation must be >= 1, got 0"),
    (dict(padding=-1), ValueError, "padding must be >= 0, got -1"),
    (dict(padding="full"), ValueError, "padding must be one of 'valid', 'same', got 'full'"),
    (dict(padding_mode="mirror"), ValueError, "padding_mode must be one of"),
    (
        dict(weight=np.ones((2, 3, 9, 9))),
        ValueError,
        "image is 5×5; a 9×9 kernel needs at least 9×9 pixels, or padding",
    ),
    (
        dict(weight=np.ones((2, 3, 3, 3)), dilation=4),
        ValueError,
        "a 3×3 kernel with dilation (4, 4) needs at least 9×9 pixels",
    ),
    (
        dict(padding=5, padding_mode="reflect"),
        ValueError,
        "padding_mode='reflect' needs padding smaller",
    ),
    (
        dict(padding=6, padding_mode="circular"),
        ValueError,
        "padding_mode='circular' needs padding no larger",
    ),
    (dict(bias=np.ones(3)), ValueError, "bias must have shape (2,), got shape (3,)"),
    (dict(x=np.ones((1, 3, 5, 5), dtype=complex)), TypeError, "x must hold real numbers"),
    (dict(weight=np.ones((2, 3, 0, 3))), ValueError, "kernel size must be >= 1"),
    (dict(x=np.ones((1, 3, 0, 5))), ValueError, "non-empty image"),
]


@pytest.mark.parametrize("override, error, message", BAD)
def test_bad_arguments_raise_clear_errors(override, error, message):
    """Each bad argument raises the documented error naming the argument and the value."""
    args = dict(
        x=np.ones((1, 3, 5, 5)),
        weight=np.ones((2, 3, 3, 3)),
        bias=None,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        padding_mode="zeros",
    )
    args.update(override)
    with pytest.raises(error) as info:
        F.conv2d(**args)
    assert message in str(info.value)


def test_backward_rejects_wrong_gradient_shape(rng):
    """A grad_output of the wrong shape is refused, naming both shapes."""
    _out, cache = F.conv2d_forward(
        rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    )
    with pytest.raises(
        ValueError, match=r"grad_output must have shape \(1, 3, 3, 3\), got shape \(1, 3, 3\)"
    ):
        F.conv2d_backward(np.ones((1, 3, 3)), cache)


def test_reflect_and_circular_limits_match_torch(rng):
    """The largest padding PyTorch accepts for reflect (size - 1) and circular (size) works here too."""
    x = rng.standard_normal((1, 1, 4, 5))
    w = rng.standard_normal((1, 1, 3, 3))
    for mode, pad in (("reflect", 3), ("circular", 4)):
        expected = torch_conv(x, w, None, (1, 1), (pad,) * 4, (1, 1), 1, mode)
        np.testing.assert_allclose(
            F.conv2d(x, w, padding=pad, padding_mode=mode), expected, rtol=1e-10
        )


@pytest.mark.parametrize(
    "x, weight, kwargs, message",
    [
        (
            np.ones((1, 1)),
            np.ones((3, 3)),
            {},
            "image is 1×1; a 3×3 kernel needs at least 3×3 pixels, or padding",
        ),
        (
            np.ones((3, 1, 1)),
            np.ones((2, 3, 3, 3)),
            {},
            "image is 1×1; a 3×3 kernel needs at least 3×3 pixels, or padding",
        ),
        (
            np.ones((4, 4)),
            np.ones((3, 3)),
            {"dilation": 2},
            "image is 4×4; a 3×3 kernel with dilation (2, 2) needs at least 5×5 pixels, or padding",
        ),
        (
            np.ones((2, 2)),
            np.ones((5, 5)),
            {"padding": 1},
            "image is 2×2 (4×4 with padding (1, 1)); a 5×5 kernel needs at least 5×5 pixels, or more padding",
        ),
    ],
)
def test_too_small_image_speaks_of_the_users_arguments(x, weight, kwargs, message):
    """The message names the image size, the kernel and the padding the user gave, nothing internal."""
    with pytest.raises(ValueError) as info:
        F.conv2d(x, weight, **kwargs)
    assert str(info.value) == message


def test_bad_input_rank_blames_x_not_weight():
    """A 1-D x is x's fault, whatever the weight."""
    with pytest.raises(
        ValueError, match=r"^x must have 2 or 3 or 4 dimensions .* got shape \(8,\)"
    ):
        F.conv2d(np.ones(8), np.ones((3, 3)))


@pytest.mark.parametrize("layout", ["planar", "channels_last", "strided"])
@pytest.mark.parametrize(
    "shape, out_channels, dtype",
    [((2, 5, 6, 7), 3, np.float64), ((1, 8, 4, 4), 16, np.float64), ((3, 2, 5, 1), 4, np.float32)],
)
def test_pointwise_strategy_matches_im2col_and_torch(
    shape, out_channels, dtype, layout, rng, monkeypatch
):
    """1x1 kernels read the input where it lies (planar or channels-last), forward and backward."""
    n, c, h, w = shape
    if layout == "planar":
        x = rng.standard_normal(shape).astype(dtype)
    elif layout == "channels_last":
        x = rng.standard_normal((n, h, w, c)).astype(dtype).transpose(0, 3, 1, 2)
    else:
        x = rng.standard_normal((n, c, 2 * h, w)).astype(dtype)[:, :, ::2]
    weight = rng.standard_normal((out_channels, c, 1, 1)).astype(dtype)
    b = rng.standard_normal(out_channels).astype(dtype)
    out, cache = F.conv2d_forward(x, weight, b)
    assert cache.strategy == "pointwise"
    g = rng.standard_normal(out.shape).astype(dtype)
    grads = F.conv2d_backward(g, cache)
    monkeypatch.setattr(conv_module, "_strategy", lambda *args: "im2col")
    out_ref, cache_ref = F.conv2d_forward(x, weight, b)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for mine, theirs in zip((out, *grads), (out_ref, *F.conv2d_backward(g, cache_ref))):
        assert mine.dtype == dtype
        np.testing.assert_allclose(mine, theirs, rtol=tol, atol=tol)
    expected, torch_grads = torch_conv(x, weight, b, (1, 1), (0, 0, 0, 0), (1, 1), 1, "zeros", g)
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    for mine, theirs in zip(grads, torch_grads):
        np.testing.assert_allclose(mine, theirs, rtol=tol, atol=tol)


def test_pointwise_output_layouts(rng):
    """The output comes in the input's layout (the next layer's copy is free)."""
    w = rng.standard_normal((6, 4, 1, 1))
    one = F.conv2d(rng.standard_normal((1, 4, 5, 5)), w)
    channels_last = F.conv2d(rng.standard_normal((2, 5, 5, 4)).transpose(0, 3, 1, 2), w)
    assert one.flags.c_contiguous  # one planar sample: (O, 1, Ho, Wo) is (1, O, Ho, Wo)
    assert channels_last.transpose(0, 2, 3, 1).flags.c_contiguous
    assert F.conv2d(rng.standard_normal((3, 4, 5, 5)), w).flags.c_contiguous  # per sample


@pytest.mark.parametrize("budget", [None, 2000])
@pytest.mark.parametrize("strategy", ["im2col", "rows", "pointwise", "planar"])
def test_results_identical_for_any_thread_count(strategy, budget, rng, monkeypatch):
    """Gathers, padding copies and whole blocks of GEMMs on the thread pool give
    bit-identical results, forward and backward; with a small workspace the blocks are
    rows of one image, whose gradients overlap at their edges."""
    import cnnkit as ck
    from cnnkit import _threads

    kernel = 1 if strategy == "pointwise" else 3
    padding = 0 if strategy == "pointwise" else 1
    x = rng.standard_normal((2, 5, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 5, kernel, kernel)).astype(np.float32)
    g = rng.standard_normal((2, 6, 9, 8)).astype(np.float32)
    monkeypatch.setattr(conv_module, "_strategy", lambda *args: strategy)
    monkeypatch.setattr(_threads, "BLOCK_BYTES", 512)  # several row blocks
    if budget is not None:
        monkeypatch.setattr(shapes_module, "WORKSPACE_BYTES", budget)
    before = ck.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            ck.set_num_threads(count)
            out, cache = F.conv2d_forward(x, w, padding=padding)
            results.append((out, *F.conv2d_backward(g, cache)[:2]))
    finally:
        ck.set_num_threads(before)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
    expected, grads = torch_conv(x, w, None, (1, 1), (padding,) * 4, (1, 1), 1, "zeros", g)
    np.testing.assert_allclose(results[1][0], expected, rtol=1e-4, atol=1e-4)
    for mine, theirs in zip(results[1][1:], grads[:2]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4)


# wide enough (>= 4 channels per group) for the strided copy of every window, dilated,
# grouped, strided and padded in each mode
WIDE_CASES = [
    (2, 8, 9, 10, 4, (3, 3), 2, 1, (2, 2), 1, "reflect"),
    (2, 8, 9, 9, 8, (3, 2), 1, "same", (1, 2), 2, "zeros"),
    (1, 12, 7, 8, 6, (2, 3), (2, 1), (1, 2), (2, 3), 3, "circular"),
    (3, 5, 6, 7, 3, (3, 3), (1, 2), 2, 1, 1, "replicate"),
]


@pytest.mark.parametrize(
    "case, budget",
    [(case, 1) for case in ALL_CASES + WIDE_CASES] + [(case, 2**30) for case in CASES + WIDE_CASES],
)
def test_im2col_on_every_case_matches_torch(case, budget, rng, monkeypatch, threads):
    """The im2col engine (one strided copy of every window, or a copy per kernel offset
    for few channels), forced on every case, in chunks of one row or whole (cut in
    blocks of samples), on 1 or 2 threads: PyTorch's output and gradients."""
    assert_forced_strategy_matches_torch("im2col", case, budget, rng, monkeypatch)


# planes of 16 KiB or less (every channel at once), 16-64 KiB (16 at a time), over
# 64 KiB or a multiple of 4 KiB (8 at a time); channel counts that leave a partial step
@pytest.mark.parametrize(
    "shape", [(2, 5, 7, 9), (1, 21, 90, 100), (1, 11, 150, 130), (2, 13, 32, 32), (1, 3, 1, 1)]
)
def test_channels_last_copy_of_every_plane_size(shape, rng, threads):
    """copy_channels_last is a plain transpose, however many channels each pass reads."""
    from cnnkit.functional._conv_geometry import copy_channels_last

    x = rng.standard_normal(shape).astype(np.float32)
    target = np.empty((shape[0], shape[2], shape[3], shape[1]), np.float32)
    assert copy_channels_last(target, x) is target
    np.testing.assert_array_equal(target, x.transpose(0, 2, 3, 1))


def test_backward_rounds_keep_overlapping_blocks_apart(monkeypatch):
    """Blocks whose gradient spans overlap never share a round on the pool; every block
    runs once, and the results come back in block order."""
    from cnnkit.functional import _conv_gemm as gemm

    rounds = []

    def recording(work, items, *, total_bytes):
        rounds.append(list(items))
        return [work(i) for i in items]

    monkeypatch.setattr(gemm, "parallel_gemms", recording)
    # rows of one image, each reaching 2 rows into the next; then images 10 rows apart
    blocks = [(0, 4), (4, 8), (8, 12), (12, 14), (20, 30), (30, 40), (40, 41)]
    spans = {b: (b[0], b[1] + 2) for b in blocks}
    result = gemm._without_overlaps(lambda b: b[0] * 10, blocks, spans.get, total_bytes=1 << 30)
    assert result == [b[0] * 10 for b in blocks]
    assert sorted(i for members in rounds for i in members) == list(range(len(blocks)))
    for members in rounds:
        for a in members:
            for b in members:
                if a < b:
                    (s0, e0), (s1, e1) = spans[blocks[a]], spans[blocks[b]]
                    assert e0 <= s1 or e1 <= s0, (blocks[a], blocks[b])
    assert len(rounds) == 2  # alternate blocks: no more rounds than the overlaps need


@pytest.mark.parametrize("strategy", ["im2col", "rows", "pointwise", "planar"])
@pytest.mark.parametrize("budget", [None, 3000])
def test_backward_after_other_calls_uses_its_own_forward(strategy, budget, rng, monkeypatch):
    """A cache keeps what its backward needs: forward A, forward and backward B (which
    reuse the thread's workspace), then backward A still gives A's gradients."""
    monkeypatch.setattr(conv_module, "_strategy", lambda *args: strategy)
    if budget is not None:
        monkeypatch.setattr(shapes_module, "WORKSPACE_BYTES", budget)
    kernel, padding = (1, 0) if strategy == "pointwise" else (3, 1)
    x_a, x_b = (rng.standard_normal((2, 3, 10, 9)).astype(np.float32) for _ in range(2))
    w = rng.standard_normal((4, 3, kernel, kernel)).astype(np.float32)
    out_a, cache_a = F.conv2d_forward(x_a, w, padding=padding)
    g = rng.standard_normal(out_a.shape).astype(np.float32)
    _, cache_b = F.conv2d_forward(x_b, w, padding=padding)
    F.conv2d_backward(g, cache_b)
    grads = F.conv2d_backward(g, cache_a)[:2]
    expected, torch_grads = torch_conv(x_a, w, None, (1, 1), (padding,) * 4, (1, 1), 1, "zeros", g)
    np.testing.assert_allclose(out_a, expected, rtol=1e-4, atol=1e-4)
    for mine, theirs in zip(grads, torch_grads[:2]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("strategy", ["im2col", "rows", "pointwise", "planar"])
def test_inf_and_nan_spread_as_in_torch_without_warnings(strategy, rng, monkeypatch, threads):
    """0 * inf and inf - inf give NaN where PyTorch's do, forward and backward, and no
    RuntimeWarning (pytest makes it an error) whichever thread did the product."""
    kernel = 1 if strategy == "pointwise" else 3
    padding = 0 if strategy == "pointwise" else 1
    x = rng.standard_normal((2, 5, 9, 8)).astype(np.float32)
    x[0, 1, 4, 4] = np.inf
    x[1, 3, 2, 6] = np.nan
    w = rng.standard_normal((6, 5, kernel, kernel)).astype(np.float32)
    w[0, 1] = 0.0  # output channel 0 reads the inf with zero weights: NaN
    g = rng.standard_normal((2, 6, 9, 8)).astype(np.float32)
    monkeypatch.setattr(conv_module, "_strategy", lambda *args: strategy)
    out, cache = F.conv2d_forward(x, w, padding=padding)
    dx, dw = F.conv2d_backward(g, cache)[:2]
    expected, grads = torch_conv(x, w, None, (1, 1), (padding,) * 4, (1, 1), 1, "zeros", g)
    assert np.isnan(out[0, 0, 4, 4]) and np.isnan(dw).any()
    for mine, theirs in [(out, expected), (dx, grads[0]), (dw, grads[1])]:
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))
        np.testing.assert_array_equal(np.isinf(mine), np.isinf(theirs))
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("strategy", ["im2col", "rows", "pointwise", "planar"])
def test_conv2d_keeps_nothing_for_a_backward(strategy, rng, monkeypatch):
    """conv2d (no backward follows) equals conv2d_forward's output bit for bit, and after
    a first call allocates little beyond its output: no kept windows, no new padded copy."""
    import tracemalloc

    kernel = 1 if strategy == "pointwise" else 3
    padding = 0 if strategy == "pointwise" else 1
    x = rng.standard_normal((8, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((32, 16, kernel, kernel)).astype(np.float32)
    monkeypatch.setattr(conv_module, "_strategy", lambda *args: strategy)
    expected = F.conv2d_forward(x, w, padding=padding)[0]
    F.conv2d(x, w, padding=padding)  # the workspace grows on a first call
    tracemalloc.start()
    try:
        out = F.conv2d(x, w, padding=padding)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(out, expected)
    assert peak <= out.nbytes + w.nbytes + 64 * 1024, (peak, out.nbytes)


@pytest.mark.parametrize("budget", [None, 2000])
@pytest.mark.parametrize("strategy", ["im2col", "rows", "pointwise", "planar"])
def test_conv2d_without_backward_equals_forward_on_any_threads(
    strategy, budget, rng, monkeypatch, threads
):
    """conv2d's path that keeps nothing, in one block or many, on 1 or 2 threads: bit for
    bit conv2d_forward's output, which the other tests hold against PyTorch."""
    kernel = 1 if strategy == "pointwise" else 3
    padding = 0 if strategy == "pointwise" else (1, 2)
    x = rng.standard_normal((3, 5, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 5, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    monkeypatch.setattr(conv_module, "_strategy", lambda *args: strategy)
    if budget is not None:
        monkeypatch.setattr(shapes_module, "WORKSPACE_BYTES", budget)
    expected = F.conv2d_forward(x, w, b, padding=padding, padding_mode="reflect")[0]
    got = F.conv2d(x, w, b, padding=padding, padding_mode="reflect")
    np.testing.assert_array_equal(got, expected)
