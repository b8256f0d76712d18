"""Tests for cnnkit.filtering: filter2d against scipy.ndimage.correlate and PyTorch, to_display."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

import cnnkit as ck
from cnnkit import kernels
from cnnkit.filtering import filter2d, to_display

# our padding_mode -> scipy.ndimage mode with the same border values
SCIPY_MODES = {
    "zeros": "constant",
    "reflect": "mirror",
    "replicate": "nearest",
    "circular": "wrap",
}


def _scipy_same(image, kernel, mode):
    """Per-channel scipy.ndimage.correlate, the centred ("same", stride 1) reference."""
    if image.ndim == 2:
        return ndi.correlate(image, kernel, mode=mode, cval=0.0)
    return np.stack(
        [ndi.correlate(image[..., c], kernel, mode=mode, cval=0.0) for c in range(image.shape[2])],
        axis=-1,
    )


def _scipy_valid(image, kernel):
    """Per-channel "valid" correlation: scipy's centred result with the border cropped."""
    kh, kw = kernel.shape
    full = _scipy_same(image, kernel, "constant")
    top, left = kh // 2, kw // 2  # odd kernels: the centre tap sits kh // 2 rows in
    return full[top : image.shape[0] - (kh - 1 - top), left : image.shape[1] - (kw - 1 - left)]


def _torch_reference(image, kernel, stride, pads, padding_mode):
    """Depthwise torch conv2d, with the padding (top, bottom, left, right) done by F.pad."""
    x = torch.from_numpy(np.asarray(image, dtype=np.float64))
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]  # (1, C, H, W)
    c = x.shape[1]
    top, bottom, left, right = pads
    torch_mode = "constant" if padding_mode == "zeros" else padding_mode
    x = torch.nn.functional.pad(x, (left, right, top, bottom), mode=torch_mode)
    w = torch.from_numpy(np.asarray(kernel, dtype=np.float64))[None, None].repeat(c, 1, 1, 1)
    out = torch.nn.functional.conv2d(x, w, stride=stride, groups=c)[0]  # (C, Ho, Wo)
    out = out.numpy()
    return out[0] if np.ndim(image) == 2 else out.transpose(1, 2, 0)


@pytest.fixture
def picture(rng):
    """A random float64 (H, W, 3) picture with an odd and an even side."""
    return rng.random((9, 12, 3))


@pytest.mark.parametrize("padding_mode", sorted(SCIPY_MODES))
@pytest.mark.parametrize(
    "name", ["sobel_top", "sobel_right", "laplacian", "emboss", "gaussian_blur"]
)
def test_same_matches_scipy_correlate(picture, name, padding_mode):
    """padding="same" at stride 1 equals scipy.ndimage.correlate with the matching mode."""
    kernel = kernels.get(name)
    out = filter2d(picture, kernel, padding="same", padding_mode=padding_mode)
    assert out.shape == picture.shape
    expected = _scipy_same(picture, kernel, SCIPY_MODES[padding_mode])
    np.testing.assert_allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize("padding_mode", sorted(SCIPY_MODES))
def test_int_padding_one_is_same_for_3x3(picture, padding_mode):
    """padding=1 with a 3x3 kernel is the centred scipy result, in every mode."""
    kernel = kernels.get("sobel_left")
    expected = _scipy_same(picture, kernel, SCIPY_MODES[padding_mode])
    np.testing.assert_allclose(
        filter2d(picture, kernel, padding=1, padding_mode=padding_mode), expected, atol=1e-12
    )


@pytest.mark.parametrize("shape", [(3, 3), (5, 5), (3, 5), (1, 1)])
def test_valid_matches_scipy(picture, rng, shape):
    """padding=0 / "valid" is scipy's centred correlation with the border cropped."""
    kernel = rng.standard_normal(shape)
    expected = _scipy_valid(picture, kernel)
    np.testing.assert_allclose(filter2d(picture, kernel), expected, atol=1e-12)
    np.testing.assert_allclose(filter2d(picture, kernel, padding="valid"), expected, atol=1e-12)


@pytest.mark.parametrize("stride", [2, 3, (2, 3)])
def test_stride_subsamples_stride_one(picture, stride):
    """A stride picks every s-th window of the stride-1 result (valid and zero padding)."""
    kernel = kernels.get("sobel_top")
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    valid = _scipy_valid(picture, kernel)
    np.testing.assert_allclose(filter2d(picture, kernel, stride=stride), valid[::sh, ::sw])
    padded = _scipy_same(picture, kernel, "constant")  # padding=1 with a 3x3 kernel
    np.testing.assert_allclose(
        filter2d(picture, kernel, stride=stride, padding=1), padded[::sh, ::sw]
    )


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("ksize", [2, 3, 4])
@pytest.mark.parametrize("padding_mode", sorted(SCIPY_MODES))
def test_same_any_stride_matches_torch(rng, stride, ksize, padding_mode):
    """padding="same" at any stride and kernel size: ceil(H / s) outputs, TF-style pads."""
    image = rng.random((7, 10, 2))
    kernel = rng.standard_normal((ksize, ksize))
    pads = []
    for n in image.shape[:2]:
        total = max((-(-n // stride) - 1) * stride + ksize - n, 0)
        pads += [total // 2, total - total // 2]
    out = filter2d(image, kernel, stride=stride, padding="same", padding_mode=padding_mode)
    assert out.shape == (-(-7 // stride), -(-10 // stride), 2)
    expected = _torch_reference(image, kernel, stride, pads, padding_mode)
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_pair_padding_matches_torch(rng):
    """A (ph, pw) padding pads rows and columns differently."""
    image = rng.random((6, 8))
    kernel = rng.standard_normal((3, 2))
    out = filter2d(image, kernel, stride=(1, 2), padding=(2, 1), padding_mode="replicate")
    expected = _torch_reference(image, kernel, (1, 2), (2, 2, 1, 1), "replicate")
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_gray_image_gives_matrix(rng):
    """An (H, W) image gives (Ho, Wo), equal to scipy on the matrix."""
    image = rng.random((8, 7))
    out = filter2d(image, kernels.get("outline"), padding="same", padding_mode="reflect")
    assert out.shape == (8, 7)
    np.testing.assert_allclose(out, ndi.correlate(image, kernels.get("outline"), mode="mirror"))


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_each_channel_on_its_own(rng, channels):
    """Each channel is filtered alone: channel c of the result is filter2d of channel c."""
    image = rng.random((6, 9, channels))
    kernel = rng.standard_normal((3, 3))
    out = filter2d(image, kernel, padding=1)
    assert out.shape == (6, 9, channels)
    for c in range(channels):
        np.testing.assert_allclose(out[..., c], filter2d(image[..., c], kernel, padding=1))
        np.testing.assert_allclose(
            out[..., c], ndi.correlate(image[..., c], kernel, mode="constant"), atol=1e-12
        )


def test_equals_depthwise_conv2d(rng):
    """filter2d is conv2d's depthwise form: (1, C, H, W) input, (C, 1, kH, kW) weight, groups=C."""
    from cnnkit.functional import conv2d

    image = rng.random((7, 9, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 4)).astype(np.float32)
    weight = np.repeat(kernel[None, None], 3, axis=0)  # (C, 1, kH, kW)
    for options in ({}, {"stride": 2, "padding": "same", "padding_mode": "circular"}):
        expected = conv2d(image.transpose(2, 0, 1)[None], weight, groups=3, **options)[0]
        np.testing.assert_allclose(
            filter2d(image, kernel, **options), expected.transpose(1, 2, 0), rtol=1e-6, atol=1e-6
        )


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"padding": 1},
        {"padding": (2, 1)},
        {"padding": "same"},
        {"padding": "valid"},
        {"stride": (2, 1), "padding": 1},
        {"stride": (1, 2)},
        {"padding": "same", "stride": 2},
        {"padding": 1, "padding_mode": "reflect"},
    ],
)
@pytest.mark.parametrize("kernel_shape", [(3, 3), (2, 4), (5, 1)])
def test_interleaved_and_planar_paths_agree_exactly(rng, options, kernel_shape):
    """Channels side by side (zero padding, column stride 1) give the planar depthwise numbers."""
    from cnnkit.functional import conv2d

    image = rng.random((9, 11, 3)).astype(np.float32)
    kernel = rng.standard_normal(kernel_shape).astype(np.float32)
    weight = np.repeat(kernel[None, None], 3, axis=0)
    planar = np.ascontiguousarray(image.transpose(2, 0, 1))[None]  # never the interleaved path
    expected = conv2d(planar, weight, groups=3, **options)[0].transpose(1, 2, 0)
    np.testing.assert_array_equal(filter2d(image, kernel, **options), expected)


def test_delegates_to_conv2d(monkeypatch, rng):
    """filter2d computes nothing itself: every call goes through functional.conv2d."""
    import cnnkit.filtering
    from cnnkit.functional import conv2d

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return conv2d(*args, **kwargs)

    monkeypatch.setattr(cnnkit.filtering, "conv2d", spy)
    filter2d(rng.random((5, 5)), np.ones((3, 3)), stride=2, padding="same")
    filter2d(rng.random((5, 5, 3)), np.ones((3, 3)), padding_mode="replicate", padding=1)
    assert len(calls) == 2
    assert calls[0]["stride"] == 2 and calls[0]["padding"] == "same"
    assert calls[1]["padding_mode"] == "replicate"


def test_is_cross_correlation_not_convolution():
    """A delta image reproduces the kernel rotated by a half turn (no flip is applied)."""
    delta = np.zeros((5, 5))
    delta[2, 2] = 1.0
    kernel = np.arange(9.0).reshape(3, 3)
    out = filter2d(delta, kernel, padding="same")
    np.testing.assert_array_equal(out[1:4, 1:4], kernel[::-1, ::-1])


def test_negative_responses_kept():
    """A dark-to-bright step gives negative values with sobel_top: nothing is clipped."""
    step = np.zeros((6, 6), dtype=np.uint8)
    step[3:] = 255  # bright bottom, uint8 input
    out = filter2d(step, kernels.get("sobel_top"), padding="same", padding_mode="replicate")
    assert out.min() == -4 * 255 and out.max() == 0
    assert np.issubdtype(out.dtype, np.floating)


def test_sobel_top_on_sample_image_is_signed():
    """On a real photo the response has both signs and exceeds 1 in magnitude."""
    cat = ck.load_image("chelsea", gray=True)[:64, :64]
    out = filter2d(cat, kernels.get("sobel_top"))
    assert out.min() < 0 < out.max()
    np.testing.assert_allclose(out, _scipy_valid(cat, kernels.get("sobel_top")), atol=1e-5)


@pytest.mark.parametrize(
    "image_dtype, kernel_dtype, expected",
    [
        (np.float32, np.float32, np.float32),
        (np.float64, np.float64, np.float64),
        (np.float32, np.float64, np.float64),
        (np.uint8, np.float32, np.float32),
        (np.bool_, np.float32, np.float32),
    ],
)
def test_dtypes(rng, image_dtype, kernel_dtype, expected):
    """Floats keep their dtype, mixed floats promote as NumPy does, integers become float32."""
    image = (rng.random((5, 5, 3)) * 2).astype(image_dtype)
    kernel = rng.standard_normal((3, 3)).astype(kernel_dtype)
    out = filter2d(image, kernel)
    assert out.dtype == expected
    expected_values = _scipy_valid(image.astype(np.float64), kernel.astype(np.float64))
    np.testing.assert_allclose(out, expected_values, rtol=1e-5, atol=1e-5)


def test_list_kernel_accepted(rng):
    """A nested-list kernel works like the array."""
    image = rng.random((5, 5))
    listed = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    expected = filter2d(image, np.array(listed, dtype=float))
    np.testing.assert_array_equal(filter2d(image, listed), expected)


def test_non_contiguous_and_unmodified(rng):
    """Strided, transposed and reversed inputs match contiguous copies and are left unchanged."""
    base = rng.random((20, 16, 3))
    kernel_base = rng.standard_normal((6, 6))
    views = [base[::2, ::-1], base.transpose(1, 0, 2), base[..., ::-1]]
    kernel = kernel_base[::2, ::-2]  # (3, 3), non-contiguous
    base_before, kernel_before = base.copy(), kernel_base.copy()
    for view in views:
        out = filter2d(view, kernel, stride=2, padding="same", padding_mode="reflect")
        expected = filter2d(
            np.ascontiguousarray(view),
            np.ascontiguousarray(kernel),
            stride=2,
            padding="same",
            padding_mode="reflect",
        )
        np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(base, base_before)
    np.testing.assert_array_equal(kernel_base, kernel_before)


def test_result_is_a_new_contiguous_array(rng):
    """The result owns C-contiguous memory (safe to write, to save, to plot)."""
    out = filter2d(rng.random((6, 6, 3)), kernels.get("sharpen"), padding=1)
    assert out.flags.c_contiguous and out.flags.writeable


Z5, K3 = np.zeros((5, 5)), np.ones((3, 3))


@pytest.mark.parametrize(
    "image, kernel, kwargs, exc, pattern",
    [
        (np.zeros(5), K3, {}, ValueError, r"image must have 2 .* \(5,\)"),
        (np.zeros((2, 5, 5, 3)), K3, {}, ValueError, r"image.*\(2, 5, 5, 3\)"),
        (Z5, np.ones((1, 3, 3)), {}, ValueError, r"kernel must have 2 .*\(1, 3, 3\)"),
        (Z5, np.ones(3), {}, ValueError, r"kernel.*\(3,\)"),
        (Z5, np.ones((0, 3)), {}, ValueError, "kernel must not be empty"),
        (np.zeros((0, 5)), K3, {}, ValueError, "image must not be empty"),
        ([[1.0, 2.0]], np.ones((1, 1)), {}, TypeError, "image"),
        (Z5, [[1, "a"]], {}, TypeError, "kernel"),
        (np.zeros((5, 5), dtype=complex), K3, {}, TypeError, "image"),
        (Z5, K3, {"stride": 0}, ValueError, "stride must be >= 1, got 0"),
        (Z5, K3, {"padding": -1}, ValueError, "padding"),
        (Z5, K3, {"padding": "full"}, ValueError, "padding.*'full'"),
        (Z5, K3, {"padding_mode": "mirror"}, ValueError, "padding_mode.*'mirror'"),
        (
            np.zeros((5, 5, 3)),
            np.ones((7, 7)),
            {},
            ValueError,
            "image is 5×5; a 7×7 kernel needs at least 7×7 pixels",
        ),
        (np.zeros((3, 3)), K3, {"padding": 3, "padding_mode": "reflect"}, ValueError, "reflect"),
    ],
)
def test_bad_arguments(image, kernel, kwargs, exc, pattern):
    """Bad arguments raise ValueError/TypeError naming the argument and value."""
    with pytest.raises(exc, match=pattern):
        filter2d(image, kernel, **kwargs)


def test_top_level_alias():
    """ck.filter2d is cnnkit.filtering.filter2d."""
    assert ck.filter2d is filter2d


# -- to_display -------------------------------------------------------------------------


def test_to_display_abs(rng):
    """ "abs" is |r| / max|r|: in [0, 1], 1 at the strongest response of either sign."""
    r = rng.standard_normal((5, 6, 3)) * 7
    out = to_display(r)
    np.testing.assert_allclose(out, np.abs(r) / np.abs(r).max())
    assert out.max() == 1.0 and out.min() >= 0.0


def test_to_display_signed(rng):
    """ "signed" maps 0 to 0.5 on a scale symmetric about 0."""
    r = rng.standard_normal((5, 6))
    r[0, 0] = 0.0
    out = to_display(r, mode="signed")
    np.testing.assert_allclose(out, 0.5 + r / (2 * np.abs(r).max()))
    assert out[0, 0] == 0.5 and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out > 0.5, r > 0)


def test_to_display_minmax(rng):
    """ "minmax" stretches min..max to 0..1."""
    r = rng.standard_normal((4, 4)) + 3
    out = to_display(r, mode="minmax")
    np.testing.assert_allclose(out, (r - r.min()) / (r.max() - r.min()))


@pytest.mark.parametrize("mode, value", [("abs", 0.0), ("signed", 0.5), ("minmax", 0.0)])
def test_to_display_flat(mode, value):
    """A flat response maps to a constant without dividing by zero."""
    np.testing.assert_array_equal(to_display(np.zeros((3, 3)), mode=mode), np.full((3, 3), value))
    if mode == "minmax":
        np.testing.assert_array_equal(to_display(np.full((2, 2), 5.0), mode=mode), 0.0)


def test_to_display_dtype_and_input_untouched(rng):
    """float32 stays float32, integers become float32; the input is not modified."""
    r = rng.standard_normal((4, 4)).astype(np.float32)
    before = r.copy()
    assert to_display(r).dtype == np.float32
    np.testing.assert_array_equal(r, before)
    assert to_display(np.array([[-3, 1]], dtype=np.int16)).dtype == np.float32
    extreme = np.array([-3e38, 3e38], dtype=np.float32)  # max - min overflows float32
    np.testing.assert_allclose(to_display(extreme, mode="minmax"), [0.0, 1.0])


def test_to_display_errors():
    """Unknown modes and non-finite responses raise ValueError naming them."""
    with pytest.raises(ValueError, match=r"mode.*'log'"):
        to_display(np.zeros((2, 2)), mode="log")
    with pytest.raises(ValueError, match="finite"):
        to_display(np.array([[np.nan, 1.0]]))
    with pytest.raises(TypeError, match="response"):
        to_display([[1.0, 2.0]])


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (2, 1, 4)])
def test_too_small_image_message_names_the_image_and_kernel(shape):
    """No internals of the colour path (no dilation the user never set) in the message."""
    with pytest.raises(ValueError) as info:
        filter2d(np.ones(shape), np.ones((3, 3)))
    assert (
        str(info.value)
        == f"image is {shape[0]}×{shape[1]}; a 3×3 kernel needs at least 3×3 pixels, or padding"
    )
