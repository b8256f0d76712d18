"""cnnkit.preprocessing: how a picture becomes a model's input."""

import tracemalloc

import numpy as np
import pytest
from PIL import Image

from cnnkit.data import load_digits
from cnnkit.preprocessing import prepare, prepare_image, preprocessing_metadata

# -- prepare_image -----------------------------------------------------------------------


def test_prepare_channels_and_size():
    """RGB to one channel uses the luminance; gray to three repeats; any size resized."""
    rgb = np.zeros((20, 30, 3), np.float32)
    rgb[..., 1] = 1.0
    one = prepare_image(rgb, (1, 5, 6))
    assert one.shape == (1, 5, 6) and one.dtype == np.float32
    np.testing.assert_allclose(one, 0.7154, atol=1e-4)
    three = prepare_image(np.full((7, 7), 0.25, np.float32), (3, 4, 4))
    assert three.shape == (3, 4, 4)
    np.testing.assert_allclose(three, 0.25, atol=1e-6)


def test_prepare_invert_auto_follows_background():
    """Dark ink on white paper is inverted for a dark-background model, not otherwise."""
    paper = np.ones((16, 16), np.float32)
    paper[4:12, 6:10] = 0.0
    dark_model = prepare_image(paper, (1, 8, 8), background="dark")
    assert dark_model[0, 0, 0] == 0.0 and dark_model.max() > 0.8
    no_background = prepare_image(paper, (1, 8, 8))
    assert no_background[0, 0, 0] == 1.0
    forced = prepare_image(paper, (1, 8, 8), invert=True)
    np.testing.assert_allclose(forced, 1 - no_background, atol=1e-6)
    kept = prepare_image(1 - paper, (1, 8, 8), background="dark")
    np.testing.assert_allclose(kept, dark_model, atol=1e-6)


def test_prepare_crop_fills_the_frame():
    """A small stroke in a large picture is cropped to fill the height, centred."""
    paper = np.zeros((200, 200), np.float32)
    paper[50:90, 140:150] = 1.0  # a short bright bar, off centre
    x = prepare_image(paper, (1, 8, 8), crop=True)[0]
    rows, cols = np.flatnonzero(x.max(axis=1) > 0.5), np.flatnonzero(x.max(axis=0) > 0.5)
    assert rows[0] == 0 and rows[-1] == 7  # full height
    assert 3 <= cols.mean() <= 4  # centred


def test_prepare_crop_matches_a_digit():
    """Cropping an enlarged digit (with margins) gives back roughly the digit."""
    train, _ = load_digits()
    digit = train.x[0, 0]
    big = np.kron(digit, np.ones((10, 10), np.float32))  # (80, 80), each pixel a block
    canvas = 1 - np.pad(big, 60)  # dark on light, lots of margin
    x = prepare_image(canvas, (1, 8, 8), background="dark", crop=True)[0]
    assert np.abs(x - digit).mean() < 0.12


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_shape=(2, 8, 8)), "input_shape"),
        (dict(input_shape=(1, 0, 8)), "input_shape"),
        (dict(input_shape=(1, 8)), "input_shape"),
        (dict(input_shape=(1, 8, 8), invert="yes"), "invert"),
        (dict(input_shape=(1, 8, 8), background="grey"), "background"),
    ],
)
def test_prepare_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        prepare_image(np.zeros((4, 4)), **kwargs)


def test_prepare_bad_image():
    with pytest.raises(ValueError, match="image must have shape"):
        prepare_image(np.zeros((4, 4, 2)), (1, 8, 8))
    with pytest.raises(TypeError, match="image"):
        prepare_image([[0.0]], (1, 8, 8))


def _full_resolution_resize(image, size):
    """The reference: Pillow's antialiased bilinear resize of the whole picture, per channel."""
    h, w = size
    return np.stack(
        [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(image[:, :, c]), mode="F").resize(
                    (w, h), Image.Resampling.BILINEAR
                )
            )
            for c in range(image.shape[2])
        ]
    )  # (C, h, w)


def test_prepare_large_picture_matches_full_resolution():
    """Shrinking a large picture first changes the result by less than a grey level."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:2400, 0:2000].astype(np.float32)
    image = np.stack(
        [0.5 + 0.4 * np.sin(xx / 150 + c) * np.cos(yy / 210) for c in range(3)], axis=2
    ).astype(np.float32)
    image += rng.uniform(-0.05, 0.05, image.shape).astype(np.float32)  # fine detail
    x = prepare_image(image, (3, 16, 12))
    reference = np.clip(_full_resolution_resize(image, (16, 12)), 0, 1)
    np.testing.assert_allclose(x, reference, atol=2e-3)


def test_prepare_memory_follows_the_input_not_the_picture():
    """Preparing a 3000x3000 RGB picture for an 8x8 model allocates far less than it holds."""
    image = np.full((3000, 3000, 3), 0.5, np.float32)  # 108 MB
    tracemalloc.start()
    try:
        prepare_image(image, (1, 8, 8), background="dark", crop=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.25 * image.nbytes, f"peak {peak / 1e6:.0f} MB"


def test_prepare_follows_metadata():
    """prepare() is prepare_image with the model's shape and recipe, as a batch of one."""
    paper = np.ones((60, 40, 3), np.float32)
    paper[15:45, 18:24] = 0.0
    metadata = {"input_shape": [1, 8, 8], "preprocessing": preprocessing_metadata("dark", True)}
    x = prepare(paper, metadata)
    assert x.shape == (1, 1, 8, 8) and x.dtype == np.float32
    np.testing.assert_array_equal(
        x[0], prepare_image(paper, (1, 8, 8), background="dark", crop=True)
    )
    np.testing.assert_array_equal(  # --no-crop
        prepare(paper, metadata, crop=False)[0], prepare_image(paper, (1, 8, 8), background="dark")
    )
    np.testing.assert_array_equal(  # --invert no
        prepare(paper, metadata, invert=False)[0],
        prepare_image(paper, (1, 8, 8), invert=False, background="dark", crop=True),
    )
    plain = prepare(paper, {"input_shape": [3, 5, 5]})  # no recipe: only resized
    np.testing.assert_array_equal(plain[0], prepare_image(paper, (3, 5, 5)))


@pytest.mark.parametrize(
    "metadata, error, match",
    [
        ({}, ValueError, "input_shape"),
        ([1, 8, 8], TypeError, "metadata must be a dict"),
        ({"input_shape": [1, 8, 8], "preprocessing": "crop"}, ValueError, "preprocessing"),
        (
            {"input_shape": [1, 8, 8], "preprocessing": {"background": "grey"}},
            ValueError,
            "background",
        ),
    ],
)
def test_prepare_bad_metadata(metadata, error, match):
    with pytest.raises(error, match=match):
        prepare(np.zeros((4, 4), np.float32), metadata)


def test_preprocessing_metadata_checks():
    with pytest.raises(ValueError, match="background"):
        preprocessing_metadata("grey")
    with pytest.raises(TypeError, match="crop"):
        preprocessing_metadata(None, crop="yes")
