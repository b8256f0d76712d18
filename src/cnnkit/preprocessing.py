"""How a picture becomes a model's input: :func:`prepare` and :func:`prepare_image`.

A trained model records how its training images were made (``metadata["preprocessing"]``,
see :func:`preprocessing_metadata`); :func:`prepare` applies the same preparation to any
picture, whatever its size. ``cnnkit predict``, ``cnnkit features``, the explorer and
``cnnkit.dask.predict`` all prepare images through :func:`prepare`, so they agree.

Large pictures are first shrunk by an integer factor (an area average, as Pillow's
``reducing_gap`` does) to a few times the model's input size, so preparing a 9000x9000
photo for an 8x8 model needs memory for the shrunk picture, not for copies of the photo.

Pillow is imported inside the functions that use it.
"""

from __future__ import annotations

import numpy as np

from cnnkit._validation import to_int

__all__ = [
    "prepare",
    "prepare_image",
    "preprocessing_metadata",
    "recipe_of",
    "BACKGROUNDS",
    "REDUCE_TO",
    "REDUCE_MIN_SIDE",
]

#: The values of ``background``: the training images' background, if they share one.
BACKGROUNDS = ("dark", "light", None)

#: Before the final resize, a large picture is shrunk by an integer factor (an area
#: average) to about this many times the model's longer input side (or
#: :data:`REDUCE_MIN_SIDE`, whichever is larger).
REDUCE_TO = 16

#: Pictures are never pre-shrunk below this many pixels on their longer side, so
#: cropping to the content still sees the drawing in detail.
REDUCE_MIN_SIDE = 512

# Pixels brighter than this fraction of the brightest count as content when cropping.
_CONTENT_THRESHOLD = 0.25


def preprocessing_metadata(background=None, crop=False) -> dict:
    """The JSON-ready description of how images are prepared for a model.

    This is what a model file stores under ``metadata["preprocessing"]`` and what
    :func:`prepare` reads.

    Parameters
    ----------
    background : {"dark", "light", None}, default None
        The background of the training images, if they share one (scikit-learn's digits
        are light strokes on a dark background). A picture whose border disagrees is
        inverted (unless told otherwise).
    crop : bool, default False
        Crop a picture to its content, centred in a square, before resizing (as the
        digits were made).

    Returns
    -------
    dict
        ``{"background": ..., "crop": ..., "resize": "bilinear" or "box"}``.

    Examples
    --------
    >>> from cnnkit.preprocessing import preprocessing_metadata
    >>> preprocessing_metadata("dark", crop=True)
    {'background': 'dark', 'crop': True, 'resize': 'box'}
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be 'dark', 'light' or None, got {background!r}")
    if not isinstance(crop, (bool, np.bool_)):
        raise TypeError(f"crop must be a bool, got {crop!r}")
    return {"background": background, "crop": bool(crop), "resize": "box" if crop else "bilinear"}


def recipe_of(metadata: dict) -> dict:
    """The checked ``"preprocessing"`` entry of a model's metadata.

    Files written before that entry existed kept ``"background"`` and ``"crop"`` at the
    top of the metadata; they are read from there. Nothing recorded means no inversion
    and no cropping.

    Parameters
    ----------
    metadata : dict
        A model's metadata (as saved, or as :func:`cnnkit.serialization.load_model`
        returns it).

    Returns
    -------
    dict
        ``{"background": ..., "crop": ..., "resize": ...}`` as
        :func:`preprocessing_metadata` makes it, plus any other keys recorded.

    Examples
    --------
    >>> from cnnkit.preprocessing import recipe_of
    >>> recipe_of({"background": "dark", "crop": True})
    {'background': 'dark', 'crop': True, 'resize': 'box'}
    >>> recipe_of({})["crop"]
    False
    """
    recipe = metadata.get("preprocessing")
    if recipe is None:
        recipe = {
            "background": metadata.get("background"),
            "crop": bool(metadata.get("crop", False)),
        }
    if not isinstance(recipe, dict):
        raise ValueError(f"metadata['preprocessing'] must be a dict, got {recipe!r}"[:200])
    return {
        **recipe,
        **preprocessing_metadata(recipe.get("background"), bool(recipe.get("crop", False))),
    }


def _reduce(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Shrink an ``(H, W, C)`` image by an integer factor (area average) towards `size`.

    The result keeps at least ``max(REDUCE_TO * size, REDUCE_MIN_SIDE)`` pixels on its
    longer side; a picture already that small comes back as it is (not copied).
    """
    keep = max(REDUCE_TO * max(size), REDUCE_MIN_SIDE)
    factor = max(image.shape[0], image.shape[1]) // keep
    if factor < 2:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    if h < 1 or w < 1:  # a long thin strip: small in total, resized as it is
        return image
    out = np.zeros((h, w, image.shape[2]), np.float32)  # (h, w, C)
    for i in range(factor):  # one block row at a time: no full-size temporary
        rows = image[i : h * factor : factor, : w * factor]  # (h, w * factor, C)
        out += rows.reshape(h, w, factor, image.shape[2]).sum(axis=2, dtype=np.float32)
    out /= factor * factor
    return out


def _resize(image: np.ndarray, size: tuple[int, int], *, box: bool = False) -> np.ndarray:
    """Resize a float ``(H, W, C)`` image to `size` with Pillow (antialiased), per channel."""
    from PIL import Image

    h, w = size
    if image.shape[:2] == (h, w):
        return image.astype(np.float32, copy=True)
    method = Image.Resampling.BOX if box else Image.Resampling.BILINEAR
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[:, :, c], np.float32), mode="F").resize(
                (w, h), method
            )
        )
        for c in range(image.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0).astype(np.float32)  # (h, w, C)


def _as_hwc(image: np.ndarray, channels: int, name: str = "image") -> np.ndarray:
    """An ``(H, W)`` or ``(H, W, 1|3|4)`` image as float32 ``(H, W, channels)``.

    A float32 image with the right channels comes back as a view (not copied).
    """
    from cnnkit.images import rgb_to_gray

    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]  # (H, W, 1)
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"{name} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
            f"got shape {image.shape}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} is empty, got shape {image.shape}")
    image = image[:, :, :3].astype(np.float32, copy=False)  # alpha dropped
    if channels == image.shape[2]:
        return image
    if channels == 1:
        return np.clip(rgb_to_gray(image), 0, 1).astype(np.float32)[:, :, None]  # (H, W, 1)
    if channels == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)  # (H, W, 3)
    raise ValueError(f"cannot give {name} with {image.shape[2]} channels {channels} channels")


def _border_is_light(image: np.ndarray) -> bool:
    """Whether the outermost rows and columns of an ``(H, W, C)`` image are mostly light."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])  # (B, C)
    return bool(np.median(border.mean(axis=1)) > 0.5)


def _crop_to_content(image: np.ndarray) -> np.ndarray:
    """Crop an ``(H, W, C)`` light-on-dark image to its content, padded square and centred."""
    gray = image.mean(axis=2)  # (H, W)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    signal = np.clip(gray - np.median(border), 0, None)
    if signal.max() <= 0:
        return image  # a blank picture: nothing to crop to
    rows = np.flatnonzero((signal > _CONTENT_THRESHOLD * signal.max()).any(axis=1))
    cols = np.flatnonzero((signal > _CONTENT_THRESHOLD * signal.max()).any(axis=0))
    crop = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w, C)
    side = max(crop.shape[:2])
    out = np.full((side, side, image.shape[2]), np.median(border), np.float32)  # (s, s, C)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    out[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return out


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    try:
        c, h, w = (to_int("input_shape", s) for s in input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be (C, H, W) ints, got {input_shape!r}") from None
    except ValueError:
        raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}") from None
    if c not in (1, 3) or h < 1 or w < 1:
        raise ValueError(f"input_shape must be (1 or 3, H >= 1, W >= 1), got {input_shape!r}")
    return c, h, w


def prepare_image(image, input_shape, *, invert="auto", background=None, crop=False):
    """Turn a picture into the ``(C, H, W)`` input a model expects.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), values in [0, 1]
        A picture, as returned by :func:`cnnkit.load_image` (any size; RGBA drops alpha).
    input_shape : tuple of int (C, H, W)
        The model's input: ``C`` is 1 (the luminance is used) or 3 (a grayscale picture
        is repeated into three channels); the picture is resized to ``(H, W)``.
    invert : bool or "auto", default "auto"
        Replace each value ``v`` with ``1 - v``. ``"auto"`` inverts when `background` is
        given and the picture's border disagrees with it: a picture with a light border
        (dark ink on white paper) going to a model trained on ``background="dark"``
        (scikit-learn's digits are light strokes on black).
    background : {"dark", "light", None}, default None
        The background of the model's training images, if they share one.
    crop : bool, default False
        Crop to the content (pixels that stand out from the border), pad it to a square
        and centre it before resizing, so a small drawing in a large picture fills the
        frame as the digits do. The content is then stretched so its brightest pixel is 1.

    Returns
    -------
    x : ndarray of shape (C, H, W)
        Float32 values in [0, 1], ready for the model.

    Notes
    -----
    Resizing is Pillow's antialiased bilinear filter, or the box filter (an area average,
    as the digits were made) when cropping. The aspect ratio is kept only with `crop`.
    A picture much larger than the input is first shrunk by an integer factor (see the
    module's notes), so memory follows the input size rather than the picture's.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.preprocessing import prepare_image
    >>> paper = np.ones((40, 30))
    >>> paper[10:30, 12:18] = 0.0  # a dark stroke on white paper
    >>> x = prepare_image(paper, (1, 8, 8), background="dark", crop=True)
    >>> x.shape, float(x[0, 0, 0]), float(x.max())
    ((1, 8, 8), 0.0, 1.0)
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy.ndarray, got {type(image).__name__}")
    c, h, w = _check_input_shape(input_shape)
    if invert != "auto" and not isinstance(invert, (bool, np.bool_)):
        raise ValueError(f"invert must be True, False or 'auto', got {invert!r}")
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be 'dark', 'light' or None, got {background!r}")
    if image.ndim not in (2, 3):
        raise ValueError(
            f"image must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
            f"got shape {image.shape}"
        )
    planes = image[:, :, None] if image.ndim == 2 else image[:, :, :3]  # (H, W, C0)
    if planes.dtype != np.float32:  # never compute on integers; one float32 copy
        planes = planes.astype(np.float32)
    pic = _as_hwc(_reduce(planes, (h, w)), c)  # (H', W', C), small from here on
    if invert == "auto":
        invert = background is not None and _border_is_light(pic) != (background == "light")
    if invert:
        pic = 1.0 - pic
    if crop:
        light = _border_is_light(pic)
        pic = 1.0 - _crop_to_content(1.0 - pic) if light else _crop_to_content(pic)
        pic = _resize(pic, (h, w), box=True)
        # Stretch so the content spans [0, 1], as in the digits (its peak is 16 of 16).
        lo, hi = float(pic.min()), float(pic.max())
        if hi > lo:
            pic = (pic - lo) / (hi - lo)
    else:
        pic = _resize(pic, (h, w))
    return np.ascontiguousarray(pic.transpose(2, 0, 1), dtype=np.float32)  # (C, H, W)


def prepare(image, metadata, *, invert="auto", crop=None) -> np.ndarray:
    """Prepare a picture exactly as ``cnnkit predict`` does for the model of `metadata`.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C), values in [0, 1]
        A picture as :func:`cnnkit.load_image` returns it (any size).
    metadata : dict
        A model's metadata, as :func:`cnnkit.serialization.load_model` returns it: its
        ``"input_shape"`` ``[C, H, W]`` and its ``"preprocessing"`` (see
        :func:`recipe_of`; missing means no inversion and no cropping).
    invert : bool or "auto", default "auto"
        ``cnnkit predict --invert``: ``"auto"`` inverts a picture whose border disagrees
        with the training images' background.
    crop : bool or None, default None
        None crops as the model was trained (``preprocessing["crop"]``); False never
        crops (``cnnkit predict --no-crop``); True always does.

    Returns
    -------
    ndarray of shape (1, C, H, W), float32
        A batch of one, ready for ``model(x)``.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.preprocessing import prepare, preprocessing_metadata
    >>> metadata = {
    ...     "input_shape": [1, 8, 8],
    ...     "preprocessing": preprocessing_metadata("dark", crop=True),
    ... }
    >>> paper = np.ones((400, 300, 3), np.float32)
    >>> paper[100:300, 120:180] = 0.0  # dark ink on white paper
    >>> x = prepare(paper, metadata)
    >>> x.shape, x.dtype, float(x[0, 0, 0, 0]), float(x.max())
    ((1, 1, 8, 8), dtype('float32'), 0.0, 1.0)
    """
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    shape = metadata.get("input_shape")
    if shape is None:
        raise ValueError("metadata has no 'input_shape' (C, H, W) to prepare the image for")
    recipe = recipe_of(metadata)
    if crop is not None and not isinstance(crop, (bool, np.bool_)):
        raise TypeError(f"crop must be a bool or None, got {crop!r}")
    if crop is None:
        crop = recipe["crop"]
    x = prepare_image(image, shape, invert=invert, background=recipe["background"], crop=bool(crop))
    return x[None]  # (1, C, H, W)
