"""The shared argument checks: one helper per check, and the image/tensor layout rule."""

import numpy as np
import pytest
import torch

import cnnkit as ck
import cnnkit.functional as F
from cnnkit import _validation as V


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_check_bool_accepts_bools(value):
    """Python and NumPy bools come back as Python bools."""
    assert V.check_bool("flag", value) is bool(value)


@pytest.mark.parametrize("value", [1, 0, "yes", None, np.array(True)])
def test_check_bool_refuses_the_rest(value):
    """Ints, strings, None and arrays are refused, naming the argument."""
    with pytest.raises(TypeError, match="flag must be a bool, got"):
        V.check_bool("flag", value)


def test_check_positive_int():
    """Ints >= 1 pass; 0 is a ValueError and 1.0 or True a TypeError, each naming the argument."""
    assert V.check_positive_int("groups", np.int64(3)) == 3
    with pytest.raises(ValueError, match="groups must be >= 1, got 0"):
        V.check_positive_int("groups", 0)
    for bad in (1.0, True, "2"):
        with pytest.raises(TypeError, match="groups must be an int"):
            V.check_positive_int("groups", bad)


def test_check_grad_shape_and_dtype():
    """A gradient of the output's shape is cast to the compute dtype; another shape is refused."""
    grad = V.check_grad(np.ones((2, 3), np.float64), (2, 3), np.float32)
    assert grad.dtype == np.float32 and grad.shape == (2, 3)
    assert V.check_grad(np.ones(3, np.int64), (3,)).dtype == np.float32
    with pytest.raises(
        ValueError, match=r"grad_output must have shape \(2, 3\), got shape \(3, 2\)"
    ):
        V.check_grad(np.ones((3, 2)), (2, 3))


@pytest.mark.parametrize("size", [1, 2, 5, 8, 13])
@pytest.mark.parametrize("kernel", [1, 2, 3, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("dilation", [1, 2])
def test_output_size_matches_torch(size, kernel, stride, padding, dilation):
    """Where PyTorch's conv gives an output, output_size agrees; where it fails, output_size raises."""
    x = torch.zeros(1, 1, size, 1)
    w = torch.zeros(1, 1, kernel, 1)
    try:
        expected = torch.nn.functional.conv2d(
            x, w, stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1)
        ).shape[2]
    except RuntimeError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError, match="output size would be empty"):
            V.output_size(size, kernel, stride, padding, dilation)
    else:
        assert V.output_size(size, kernel, stride, padding, dilation) == expected
        assert F.conv2d_output_size(size, kernel, stride, padding, dilation) == expected


@pytest.mark.parametrize("size", [4, 5, 7, 10])
@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1), (3, 3, 1), (2, 3, 1)])
def test_output_size_ceil_mode_matches_torch_pooling(size, kernel, stride, padding):
    """ceil_mode keeps a last partial window exactly where torch's max_pool2d does."""
    x = torch.zeros(1, 1, size, size)
    for ceil_mode in (False, True):
        expected = torch.nn.functional.max_pool2d(
            x, kernel, stride, padding, ceil_mode=ceil_mode
        ).shape[2]
        assert V.output_size(size, kernel, stride, padding, ceil_mode=ceil_mode) == expected


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((2, 5), ValueError, "output size would be empty: kernel_size 5 spans 5"),
        ((0, 1), ValueError, "size must be >= 1, got 0"),
        ((5, 0), ValueError, "kernel_size must be >= 1, got 0"),
        ((5, 3, 0), ValueError, "stride must be >= 1, got 0"),
        ((5, 3, 1, -1), ValueError, "padding must be >= 0, got -1"),
        ((5, 3, 1, 0, 0), ValueError, "dilation must be >= 1, got 0"),
        ((5.0, 3), TypeError, "size must be an int"),
    ],
)
def test_conv2d_output_size_validates(args, error, message):
    """conv2d_output_size never returns a size < 1: bad arguments raise, naming the argument."""
    with pytest.raises(error, match=message):
        F.conv2d_output_size(*args)


# -- image (H, W, C) versus tensor (C, H, W) ----------------------------------------------


def test_tutorial_chain_on_a_photo_names_the_conversion(rng):
    """filter2d -> relu -> max_pool2d on an (H, W, C) photo stops at the pool, naming ck.to_tensor."""
    image = rng.random((300, 451, 3)).astype(np.float32)
    response = F.relu(ck.filter2d(image, ck.kernels.get("sobel_top")))
    with pytest.raises(
        ValueError, match=r"\(298, 449, 3\) looks like an \(H, W, C\) image.*ck\.to_tensor"
    ):
        F.max_pool2d(response, 2)


@pytest.mark.parametrize(
    "op",
    [
        F.global_avg_pool2d,
        lambda x: F.avg_pool2d(x, 2),
        lambda x: F.conv2d(x, np.ones((1, 3, 3, 3))),
    ],
)
def test_channels_first_ops_refuse_an_evident_image(op, rng):
    """global_avg_pool2d(image) no longer gives 300 'channel' means: it names the conversion."""
    with pytest.raises(
        ValueError, match=r"ck\.to_tensor\(image\), which gives shape \(3, 300, 451\)"
    ):
        op(rng.random((300, 451, 3)))


def test_filter2d_refuses_an_evident_tensor():
    """A (3, 10, 10) tensor given to filter2d names ck.to_image instead of giving (1, 8, 10)."""
    with pytest.raises(
        ValueError, match=r"\(3, 10, 10\) looks like a \(C, H, W\) tensor.*ck\.to_image"
    ):
        ck.filter2d(np.ones((3, 10, 10)), ck.kernels.get("sobel_top"))


@pytest.mark.parametrize(
    "shape",
    [
        (3, 32, 32),
        (64, 4, 4),
        (512, 3, 3),
        (2048, 7, 7),
        (16, 100, 1),
        (64, 28, 28),
        (8, 8, 3),
        (1, 28, 28),
    ],
)
def test_real_cnn_tensors_pass_the_channels_first_ops(shape):
    """Feature maps, 1-D signals as (C, L, 1) and small colour-like shapes are not refused."""
    x = np.ones(shape, np.float32)
    assert F.global_avg_pool2d(x).shape == shape[:1]


@pytest.mark.parametrize(
    "shape", [(300, 451, 3), (5, 6, 3), (4, 640, 3), (100, 100, 4), (28, 28, 1), (3, 10, 4)]
)
def test_real_images_pass_filter2d(shape):
    """Pictures of any size, thin strips and RGBA images are filtered as (H, W, C)."""
    image = np.ones(shape, np.float32)
    assert ck.filter2d(image, np.ones((1, 1), np.float32)).shape == shape
