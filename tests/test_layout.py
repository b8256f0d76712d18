"""The layout rule: images (H, W, C) and tensors (C, H, W) / (N, C, H, W), and the way between."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnkit as ck
from cnnkit import functional as F


def test_to_tensor_matches_torch_permute(rng):
    """(H, W, C) -> (C, H, W) and (N, H, W, C) -> (N, C, H, W), float32, as torch's permute."""
    image = rng.random((30, 45, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        ck.to_tensor(image), torch.from_numpy(image).permute(2, 0, 1).numpy()
    )
    stack = rng.random((2, 7, 9, 4))
    tensor = ck.to_tensor(stack)
    assert tensor.dtype == np.float32 and tensor.flags.c_contiguous
    np.testing.assert_array_equal(
        tensor, torch.from_numpy(stack).permute(0, 3, 1, 2).float().numpy()
    )
    assert ck.to_tensor(image, batch=True).shape == (1, 3, 30, 45)
    assert ck.to_tensor(image[:, :, 0]).shape == (1, 30, 45)


def test_to_tensor_scales_uint8_like_torchvision_and_copies(rng):
    """uint8 pixels become [0, 1] floats (/255, ToTensor's rule); the input is never shared."""
    pixels = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    expected = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).numpy()
    np.testing.assert_allclose(ck.to_tensor(pixels), expected, rtol=1e-6)
    gray = rng.random((5, 6)).astype(np.float32)
    tensor = ck.to_tensor(gray)
    tensor[...] = 7
    assert gray.max() < 1


@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 6, 6), (8, 4, 4), (2, 1, 3, 5), (4, 4)])
def test_to_image_undoes_to_tensor(rng, shape):
    """to_tensor(to_image(t)) == t for one or more channels and batches; (1, H, W) gives (H, W)."""
    tensor = rng.random(shape).astype(np.float32)
    image = ck.to_image(tensor)
    if len(shape) == 3 and shape[0] == 1:
        assert image.shape == shape[1:]
    np.testing.assert_array_equal(ck.to_tensor(image).reshape(tensor.shape), tensor)


def test_wrong_layouts_name_the_conversion():
    """A (C, H, W) tensor given as an image, or an (H, W, C) image as a tensor, is refused."""
    with pytest.raises(ValueError, match=r"looks like a \(C, H, W\) tensor.*ck.to_image"):
        ck.to_tensor(np.zeros((3, 300, 451)))
    with pytest.raises(ValueError, match=r"looks like an \(H, W, C\) image.*ck.to_tensor"):
        ck.to_image(np.zeros((300, 451, 3)))
    with pytest.raises(ValueError, match=r"looks like a \(C, H, W\) tensor.*ck.to_image"):
        ck.pool_image(np.zeros((3, 100, 120)), 2)
    with pytest.raises(ValueError, match=r"looks like an \(H, W, C\) image.*ck.to_tensor"):
        F.max_pool2d(np.zeros((300, 451, 3)), 2)  # the op itself (its check, with these words)
    ck.to_tensor(np.zeros((2, 3, 5)))  # not evident either way: read as an image, as told
    with pytest.raises(ValueError, match="image must have shape"):
        ck.to_tensor(np.zeros(5))
    with pytest.raises(TypeError, match="batch"):
        ck.to_tensor(np.zeros((4, 4)), batch=1)


def test_tutorial_chain_on_a_photo_keeps_every_channel():
    """filter, ReLU, pool on a (300, 451, 3) photo give (149, 224, 3), as torch per channel.

    The mistake this replaces: F.max_pool2d on the (H, W, C) response read it as
    (C, H, W) and returned (298, 224, 1).
    """
    image = ck.load_image("chelsea")
    kernel = ck.kernels.get("sobel_top")
    rectified = F.relu(ck.filter2d(image, kernel))  # (298, 449, 3), an image
    pooled = ck.pool_image(rectified, 2)
    assert pooled.shape == (149, 224, 3) and pooled.dtype == rectified.dtype
    expected = TF.max_pool2d(torch.from_numpy(rectified).permute(2, 0, 1), 2).permute(1, 2, 0)
    np.testing.assert_array_equal(pooled, expected.numpy())
    # the same through the tensor side, and one mean per colour channel
    through_tensor = ck.to_image(F.max_pool2d(ck.to_tensor(rectified), 2))  # float32
    np.testing.assert_allclose(through_tensor, pooled, rtol=1e-6)
    means = F.global_avg_pool2d(ck.to_tensor(image))
    assert means.shape == (3,)
    np.testing.assert_allclose(means, image.astype(np.float64).mean(axis=(0, 1)), rtol=1e-5)


def test_pool_image_average_and_gray(rng):
    """mode="avg" is avg_pool2d per channel; a 2-D image stays 2-D."""
    image = rng.random((9, 12, 2))
    pooled = ck.pool_image(image, 3, stride=2, padding=1, mode="avg")
    expected = TF.avg_pool2d(torch.from_numpy(image).permute(2, 0, 1), 3, 2, 1)
    np.testing.assert_allclose(pooled, expected.permute(1, 2, 0).numpy(), rtol=1e-12)
    assert ck.pool_image(image[:, :, 0], 2).shape == (4, 6)
    with pytest.raises(ValueError, match="mode"):
        ck.pool_image(image, 2, mode="min")
