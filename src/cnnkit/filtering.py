"""Filter pictures with a 2-D kernel, channel by channel, and turn responses into pictures.

:func:`filter2d` is a thin wrapper over :func:`cnnkit.functional.conv2d`, so a picture is
filtered by the same cross-correlation a CNN layer computes. Each channel is filtered on
its own: a depthwise convolution (``groups=C``, one kernel for every channel) of the
``(1, C, H, W)`` view of the image. conv2d chooses how: band by band without copying
the image, or, with zero padding and column stride 1, the ``(H, W, C)`` image as one
``(H, W*C)`` matrix (its "interleaved" strategy); either way the result is written
channels-last and the arguments are checked once, by conv2d. Responses keep their
sign; :func:`to_display` maps them to ``[0, 1]`` for showing.
"""

from __future__ import annotations

import numpy as np

from cnnkit._validation import as_float_array, check_channels_last, check_choice
from cnnkit.functional import conv2d

__all__ = ["filter2d", "to_display", "DISPLAY_MODES"]

#: The ways :func:`to_display` maps a response to [0, 1].
DISPLAY_MODES = ("abs", "signed", "minmax", "clip", "robust")
#: Percentile of ``|r|`` that ``to_display(..., mode="robust")`` maps to 1.
ROBUST_PERCENTILE = 99.5


def filter2d(image, kernel, stride=1, padding=0, padding_mode="zeros") -> np.ndarray:
    """Cross-correlate each channel of an image with a 2-D kernel.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C)
        The picture, channels last as :func:`cnnkit.load_image` returns it. Integer and
        bool images are converted to float32 first.
    kernel : ndarray of shape (kH, kW)
        The kernel, e.g. ``cnnkit.kernels.get("sobel_top")``; nested lists are accepted.
        It is applied to every channel on its own, without flipping.
    stride : int or (int, int), default 1
        Step between windows.
    padding : int, (int, int), "valid" or "same", default 0
        Border added on each side, as in :func:`cnnkit.functional.conv2d`: ``"same"``
        gives ``ceil(H / stride)`` rows and ``ceil(W / stride)`` columns, an odd total
        padding putting the extra row/column at the bottom/right.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, default "zeros"
        What the border holds.

    Returns
    -------
    response : ndarray of shape (Ho, Wo) or (Ho, Wo, C)
        Same rank as ``image``, with ``Ho = (H + 2 * padding - kH) // stride + 1`` (and
        likewise ``Wo``). Negative and above-1 values are kept, never clipped; the dtype is
        NumPy's promotion of the image's and the kernel's float dtypes (a float32 image
        with a float64 kernel from :mod:`cnnkit.kernels` gives float64).

    Raises
    ------
    ValueError
        An image that is not 2-D or 3-D or is empty, a kernel that is not 2-D or is empty,
        or bad stride, padding or padding_mode (from ``conv2d``, naming the argument).
    TypeError
        ``image`` is not an ndarray, or either holds non-numbers.

    Notes
    -----
    ``out[i, j, c] = sum_{u, v} kernel[u, v] * padded[i * sh + u, j * sw + v, c]``.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnkit as ck
    >>> step = np.zeros((4, 4))
    >>> step[:2] = 1.0  # bright top half
    >>> ck.filter2d(step, ck.kernels.get("sobel_top"))  # positive: the top side is brighter
    array([[4., 4.],
           [4., 4.]])
    >>> rgb = np.ones((5, 6, 3), dtype=np.float32)
    >>> ck.filter2d(rgb, ck.kernels.get("box_blur"), padding="same").shape
    (5, 6, 3)
    """
    image = as_float_array("image", image)
    if image.ndim not in (2, 3):
        raise ValueError(
            f"image must have 2 dimensions (H, W) or 3 (H, W, C), got shape {image.shape}"
        )
    if image.size == 0:
        raise ValueError(f"image must not be empty, got shape {image.shape}")
    check_channels_last("image", image)
    if isinstance(kernel, (list, tuple)):
        try:
            kernel = np.array(kernel, dtype=np.float64)
        except (ValueError, TypeError):
            raise TypeError(
                f"kernel must be a 2-D array of numbers, got {type(kernel).__name__}"
            ) from None
    kernel = as_float_array("kernel", kernel)
    if kernel.ndim != 2:
        raise ValueError(f"kernel must have 2 dimensions (kH, kW), got shape {kernel.shape}")
    if kernel.size == 0:
        raise ValueError(f"kernel must not be empty, got shape {kernel.shape}")

    if image.ndim == 2:
        return conv2d(image, kernel, stride=stride, padding=padding, padding_mode=padding_mode)
    channels = image.shape[2]
    x = image.transpose(2, 0, 1)[None]  # (H, W, C) -> (1, C, H, W), a view of channels-last memory
    weight = np.broadcast_to(kernel, (channels, 1, *kernel.shape))  # (C, 1, kH, kW), one kernel
    out = conv2d(
        x, weight, stride=stride, padding=padding, groups=channels, padding_mode=padding_mode
    )  # (1, C, Ho, Wo), channels-last in memory
    return np.ascontiguousarray(out[0].transpose(1, 2, 0))  # (Ho, Wo, C), no copy as a rule


def to_display(response, mode="abs") -> np.ndarray:
    """Map a signed filter response to a displayable image in ``[0, 1]``.

    Parameters
    ----------
    response : ndarray of shape (H, W) or (H, W, C)
        A filter output, e.g. from :func:`filter2d`; any sign, any scale.
    mode : {"abs", "signed", "minmax", "clip", "robust"}, default "abs"
        - ``"abs"``: ``|r| / max|r|``. Edge strength: 0 (black) where the kernel sees
          nothing, 1 at the strongest response of either sign.
        - ``"signed"``: ``0.5 + r / (2 max|r|)``. Zero maps to 0.5 (mid-gray, or the
          centre of a diverging colormap), negatives below, positives above, on a scale
          symmetric about 0 so the two signs can be compared.
        - ``"minmax"``: ``(r - min r) / (max r - min r)``, stretching the full range.
        - ``"clip"``: ``r`` itself, clipped to [0, 1]. For kernels whose weights sum to 1
          (identity, blurs, sharpen, emboss) on an image in [0, 1]: the response is a
          picture already, so the identity shows the input unchanged.
        - ``"robust"``: ``|r| / p``, clipped to [0, 1], with ``p`` the 99.5th percentile
          of ``|r|``. Edge strength, as ``"abs"``, but a few extreme pixels no longer
          darken the rest.

        One scale is used for the whole array (all channels together), so the relative
        strength of the channels is kept. An all-zero (or, for ``"minmax"``, constant)
        response maps to 0 (``"abs"``, ``"minmax"``) or 0.5 (``"signed"``).

    Returns
    -------
    ndarray of the same shape, values in [0, 1]
        Float32 for integer input, otherwise the input's float dtype.

    Raises
    ------
    ValueError
        An unknown ``mode``, or a response holding NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.filtering import to_display
    >>> r = np.array([[-2.0, 0.0, 1.0]])
    >>> to_display(r)
    array([[1. , 0. , 0.5]])
    >>> to_display(r, mode="signed")
    array([[0.  , 0.5 , 0.75]])
    >>> to_display(r, mode="minmax")
    array([[0.        , 0.66666667, 1.        ]])
    >>> to_display(r, mode="clip")
    array([[0., 0., 1.]])
    """
    mode = check_choice("mode", mode, DISPLAY_MODES)
    response = as_float_array("response", response)
    if response.size and not np.isfinite(response).all():
        raise ValueError("response must hold finite values, got NaN or infinity")
    if response.size == 0:
        return response.copy()
    # The scale is a float64 scalar; the arrays stay in the response's dtype and are worked
    # on in place, so a large picture costs one output-sized array, not several float64 ones.
    dtype = response.dtype
    if mode == "clip":
        return np.clip(response, 0.0, 1.0).astype(dtype, copy=False)
    if mode == "minmax":
        low, high = float(response.min()), float(response.max())
        if not high > low:
            return np.zeros_like(response)
        out = np.multiply(response, 0.5, dtype=dtype)  # halved: max - min cannot overflow
        out /= dtype.type((high - low) / 2)
        out -= dtype.type(low / (high - low))
    elif mode == "robust":
        out = np.abs(response)
        peak = float(np.percentile(out, ROBUST_PERCENTILE, overwrite_input=True))
        np.abs(response, out=out)  # the percentile reordered it
        peak = peak if peak > 0 else float(out.max())
        if not peak > 0:
            return np.zeros_like(response)
        out /= dtype.type(peak)
    else:
        peak = max(float(response.max()), -float(response.min()))
        if not peak > 0:
            return np.zeros_like(response) if mode == "abs" else np.full_like(response, 0.5)
        if mode == "abs":
            out = np.abs(response)
            out /= dtype.type(peak)
        else:
            out = np.multiply(response, 0.5, dtype=dtype)
            out /= dtype.type(peak)
            out += dtype.type(0.5)
    return np.clip(out, 0.0, 1.0, out=out)
