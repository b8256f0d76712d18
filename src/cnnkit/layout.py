"""Images and tensors: the one layout rule of cnnkit, and the conversions between the two.

**Images are channels-last, tensors are channels-first.**

- An *image* is ``(H, W)`` or ``(H, W, C)``: what :func:`cnnkit.load_image` returns,
  what :func:`cnnkit.filter2d`, :func:`pool_image` and :mod:`cnnkit.plot` take, what
  NumPy, matplotlib, Pillow and scikit-image use.
- A *tensor* is ``(C, H, W)`` or a batch ``(N, C, H, W)``: what :mod:`cnnkit.functional`
  and :mod:`cnnkit.nn` take, as in PyTorch.

Cross between the two only with :func:`to_tensor` and :func:`to_image`. A plain 2-D
``(H, W)`` array is both: a one-channel image and the matrix form the functional ops
accept.
"""

from __future__ import annotations

import numpy as np

from cnnkit._validation import (
    as_float_array,
    check_channels_last,
    check_choice,
    looks_channels_first,
    looks_channels_last,
)
from cnnkit.functional import avg_pool2d, max_pool2d

__all__ = ["to_tensor", "to_image", "pool_image"]


def _as_float32_image(name: str, image) -> np.ndarray:
    """`image` as float32; uint8 and uint16 pixels scaled to [0, 1] as Pillow stores them."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255)
    if isinstance(image, np.ndarray) and image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535)
    return as_float_array(name, image).astype(np.float32, copy=False)


def to_tensor(image, *, batch: bool = False) -> np.ndarray:
    """An image, channels last, as a float32 tensor, channels first.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, C) or (N, H, W, C)
        One image or a stack of images. uint8 and uint16 pixels are scaled to ``[0, 1]``
        (as ``torchvision.transforms.ToTensor`` does); other numbers keep their values.
    batch : bool, default False
        Add a leading batch axis of 1 to a single image, for ``nn`` models.

    Returns
    -------
    ndarray of float32, shape (C, H, W), or (N, C, H, W) for a stack or with `batch`
        A new array (C-contiguous); a 2-D image gets ``C = 1``.

    Raises
    ------
    ValueError
        A 3-D array that is evidently a tensor already (``(3, 300, 451)``), or one of
        another rank.

    See Also
    --------
    to_image : The way back.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnkit as ck
    >>> image = np.zeros((300, 451, 3), dtype=np.uint8)
    >>> ck.to_tensor(image).shape, ck.to_tensor(image).dtype
    ((3, 300, 451), dtype('float32'))
    >>> ck.to_tensor(image, batch=True).shape
    (1, 3, 300, 451)
    >>> ck.to_tensor(np.ones((28, 28))).shape
    (1, 28, 28)
    """
    if not isinstance(batch, (bool, np.bool_)):
        raise TypeError(f"batch must be True or False, got {batch!r}")
    x = _as_float32_image("image", image)
    if x.ndim == 2:
        tensor = x[None]  # (1, H, W)
    elif x.ndim == 3:
        if looks_channels_first(x.shape):
            raise ValueError(
                f"image must be channels-last, (H, W) or (H, W, C), but shape {x.shape} "
                f"looks like a (C, H, W) tensor already: pass it to the ops as it is, or "
                f"ck.to_image(tensor) to get an image"
            )
        tensor = x.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
    elif x.ndim == 4:
        tensor = x.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    else:
        raise ValueError(f"image must have shape (H, W), (H, W, C) or (N, H, W, C), got {x.shape}")
    if batch and tensor.ndim == 3:
        tensor = tensor[None]  # (1, C, H, W)
    return np.array(tensor, dtype=np.float32, order="C", copy=True)  # never a view of `image`


def to_image(tensor) -> np.ndarray:
    """A tensor, channels first, as an image, channels last (the way back from :func:`to_tensor`).

    Parameters
    ----------
    tensor : ndarray of shape (C, H, W) or (N, C, H, W)
        A feature map stack or a batch; ``(H, W)`` is returned as a copy.

    Returns
    -------
    ndarray of shape (H, W, C), or (N, H, W, C) for a batch
        The same dtype. A single ``(1, H, W)`` channel gives ``(H, W)``, as
        ``ck.load_image(..., gray=True)`` returns gray images; a batch keeps its channel
        axis, so ``to_tensor`` reads it back as a batch.

    Raises
    ------
    ValueError
        A 3-D array that is evidently an image already (``(300, 451, 3)``), or one of
        another rank.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnkit as ck
    >>> ck.to_image(np.zeros((3, 300, 451))).shape
    (300, 451, 3)
    >>> ck.to_image(np.zeros((1, 28, 28))).shape
    (28, 28)
    >>> ck.to_image(np.zeros((8, 1, 28, 28))).shape
    (8, 28, 28, 1)
    >>> image = np.random.default_rng(0).random((4, 5, 3), dtype=np.float32)
    >>> np.array_equal(ck.to_image(ck.to_tensor(image)), image)
    True
    """
    x = as_float_array("tensor", tensor)
    if x.ndim == 2:
        return x.copy()
    if x.ndim == 3:
        if looks_channels_last(x.shape):
            raise ValueError(
                f"tensor must be channels-first, (C, H, W) or (N, C, H, W), but shape "
                f"{x.shape} looks like an (H, W, C) image already: use it as it is, or "
                f"ck.to_tensor(image) to get a tensor"
            )
        image = x.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    elif x.ndim == 4:
        image = x.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
    else:
        raise ValueError(f"tensor must have shape (C, H, W) or (N, C, H, W), got {x.shape}")
    if x.ndim == 3 and image.shape[-1] == 1:
        image = image[:, :, 0]  # (H, W), as a gray image
    return np.ascontiguousarray(image)


def pool_image(image, kernel_size, stride=None, padding=0, *, mode: str = "max") -> np.ndarray:
    """Max- or average-pool each channel of an image, keeping it an image.

    The image-level twin of :func:`cnnkit.functional.max_pool2d` and
    :func:`~cnnkit.functional.avg_pool2d`, for the tutorial chain filter → ReLU → pool on
    a photo: ``ck.pool_image(F.relu(ck.filter2d(image, kernel)), 2)``.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C)
        Channels last, as :func:`cnnkit.load_image` and :func:`cnnkit.filter2d` give it.
    kernel_size, stride, padding : int or (int, int)
        As for :func:`cnnkit.functional.max_pool2d`; ``stride=None`` means `kernel_size`.
    mode : {"max", "avg"}, default "max"
        The largest value or the mean of each window.

    Returns
    -------
    ndarray of shape (H', W') or (H', W', C)
        The pooled image, in the image's float dtype (float32 for integer images).

    Examples
    --------
    >>> import numpy as np
    >>> import cnnkit as ck
    >>> image = np.zeros((300, 451, 3), dtype=np.float32)
    >>> ck.pool_image(image, 2).shape
    (150, 225, 3)
    >>> ck.pool_image(np.arange(16.0).reshape(4, 4), 2, mode="avg")
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    check_choice("mode", mode, ("max", "avg"))
    x = as_float_array("image", image)
    if x.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got {x.shape}")
    check_channels_last("image", x)  # an evident (C, H, W) tensor names ck.to_image
    pool = max_pool2d if mode == "max" else avg_pool2d
    planes = x if x.ndim == 2 else x.transpose(2, 0, 1)  # (H, W) or (C, H, W)
    pooled = pool(planes, kernel_size, stride=stride, padding=padding)
    return pooled if x.ndim == 2 else np.ascontiguousarray(pooled.transpose(1, 2, 0))
