"""Argument checks for the public boundary; each message names the argument and the value."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "as_float_array",
    "check_ndim",
    "check_positive",
    "check_nonnegative",
    "check_probability",
    "check_choice",
    "to_pair",
    "to_int",
    "check_bool",
    "check_positive_int",
    "check_grad",
    "check_grad_shape",
    "output_size",
    "check_pool_window",
    "check_channels_first",
    "check_channels_last",
]


def _describe(value) -> str:
    """A short description of a value for an error message."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_float_array(name: str, x, *, allow_none: bool = False):
    """Return `x` as a floating ndarray: float32/float64 kept, bool/integer/float16 to float32."""
    if x is None and allow_none:
        return None
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}: {_describe(x)}")
    if x.dtype == np.float32 or x.dtype == np.float64:
        return x
    if x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer) or x.dtype == np.float16:
        return x.astype(np.float32)
    raise TypeError(
        f"{name} must hold real numbers (float32, float64, integer or bool), got dtype {x.dtype}"
    )


def check_ndim(name: str, x: np.ndarray, allowed: tuple[int, ...], what: str = "") -> None:
    """Raise ValueError unless `x.ndim` is one of `allowed`."""
    if x.ndim not in allowed:
        dims = " or ".join(str(d) for d in allowed)
        hint = f" {what}" if what else ""
        raise ValueError(f"{name} must have {dims} dimensions{hint}, got shape {x.shape}")


def to_int(name: str, value) -> int:
    """Return `value` as a Python int; bools, floats and other types raise TypeError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {_describe(value)}")
    return int(value)


def check_bool(name: str, value) -> bool:
    """Return `value` as a bool; anything but a Python or NumPy bool raises TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {_describe(value)}")
    return bool(value)


def check_positive_int(name: str, value) -> int:
    """Return `value` as an int >= 1."""
    value = to_int(name, value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def check_grad_shape(grad_output: np.ndarray, shape: tuple) -> None:
    """Raise ValueError unless `grad_output` has the shape of the forward's output."""
    if grad_output.shape != tuple(shape):
        raise ValueError(
            f"grad_output must have shape {tuple(shape)}, got shape {grad_output.shape}"
        )


def check_grad(grad_output, shape: tuple, dtype=None) -> np.ndarray:
    """`grad_output` as a float array of the forward output's `shape`, in `dtype` if given."""
    grad_output = as_float_array("grad_output", grad_output)
    check_grad_shape(grad_output, shape)
    return grad_output if dtype is None else grad_output.astype(dtype, copy=False)


def output_size(size, kernel_size, stride=1, padding=0, dilation=1, *, ceil_mode=False) -> int:
    """Output length along one axis of a convolution or pooling, as PyTorch computes it.

    `padding` is added on each side, or is a ``(before, after)`` pair. With
    `ceil_mode` (pooling) a last partial window is kept if it starts inside the input
    or the leading padding. Every argument is checked; a kernel that does not fit in
    the padded input raises ValueError.
    """
    size = check_positive_int("size", size)
    kernel_size = check_positive_int("kernel_size", kernel_size)
    stride = check_positive_int("stride", stride)
    dilation = check_positive_int("dilation", dilation)
    before, after = to_pair("padding", padding)
    if min(before, after) < 0:
        raise ValueError(f"padding must be >= 0, got {_describe(padding)}")
    padded = size + before + after
    span = dilation * (kernel_size - 1) + 1  # the dilated kernel's extent
    if span > padded:
        raise ValueError(
            f"output size would be empty: kernel_size {kernel_size} spans {span} (dilation "
            f"{dilation}), more than size {size} with padding {padding}"
        )
    reach = padded - span  # how far the first window can move
    out = (-(-reach // stride) if ceil_mode else reach // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + before:
        out -= 1  # the last window would start in the trailing padding
    return out


def check_pool_window(kernel_size, stride=None, padding=0, dilation=1):
    """A pooling window's (kernel, stride, padding, dilation) as pairs; stride None is the kernel.

    As in PyTorch, the padding may be at most half the kernel size.
    """
    kernel = check_positive("kernel_size", kernel_size)
    stride = kernel if stride is None else check_positive("stride", stride)
    padding = check_nonnegative("padding", padding)
    dilation = check_positive("dilation", dilation)
    if any(p > k // 2 for k, p in zip(kernel, padding)):
        raise ValueError(
            f"padding must be at most half the kernel size: got padding {padding} "
            f"for kernel_size {kernel}"
        )
    return kernel, stride, padding, dilation


def to_pair(name: str, value) -> tuple[int, int]:
    """Return an int or a pair of ints as a pair `(h, w)`."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {_describe(value)}")
        try:
            return to_int(name, value[0]), to_int(name, value[1])
        except TypeError:
            raise TypeError(
                f"{name} must be an int or a pair of ints, got {_describe(value)}"
            ) from None
    try:
        v = to_int(name, value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a pair of ints, got {_describe(value)}"
        ) from None
    return v, v


def check_positive(name: str, value) -> tuple[int, int]:
    """Return `value` as a pair of ints, each >= 1."""
    pair = to_pair(name, value)
    if min(pair) < 1:
        raise ValueError(f"{name} must be >= 1, got {_describe(value)}")
    return pair


def check_nonnegative(name: str, value) -> tuple[int, int]:
    """Return `value` as a pair of ints, each >= 0."""
    pair = to_pair(name, value)
    if min(pair) < 0:
        raise ValueError(f"{name} must be >= 0, got {_describe(value)}")
    return pair


def check_probability(name: str, value) -> float:
    """Return `value` as a float in [0, 1]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1], got {_describe(value)}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def check_choice(name: str, value, choices) -> str:
    """Return `value` if it is one of `choices`, else raise ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}, got {_describe(value)}")
    return value


def check_real(name: str, value, *, minimum=None, exclusive=False) -> float:
    """Return `value` as a float, optionally bounded below."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        op = ">" if exclusive else ">="
        raise ValueError(f"{name} must be {op} {minimum}, got {value}")
    return value


# -- image (H, W, C) versus tensor (C, H, W) -------------------------------------------------
#
# Pictures (load_image, filter2d, the plots) are channels-last; the functional ops read a
# 3-D array as channels-first. Where the shape makes the mix-up evident, say so:
# - an (H, W, C) colour image met by a channels-first op: the last axis is 3 or 4 and the
#   first two are each at least 8 times larger. A real (C, H, W) tensor would need a
#   width of 3 or 4 with a height and channel count 8 times that, a shape CNN feature
#   maps do not take. A last axis of 1 is left alone: (C, L, 1) is how 1-D signals go
#   through 2-D layers.
# - a (C, H, W) tensor met by an image function: the first axis is 1, 3 or 4 and the
#   other two are at least 8, i.e. a picture at most 4 pixels tall with 8 or more
#   channels, which no image file gives.
IMAGE_CHANNELS = (1, 3, 4)


def looks_channels_last(shape) -> bool:
    """Whether a 3-D shape is evidently an (H, W, C) colour image (see the rule above)."""
    if len(shape) != 3:
        return False
    height, width, channels = shape
    return channels in (3, 4) and min(height, width) >= 8 * channels


def looks_channels_first(shape) -> bool:
    """Whether a 3-D shape is evidently a (C, H, W) tensor rather than an image (rule above)."""
    return len(shape) == 3 and shape[0] in IMAGE_CHANNELS and min(shape[1:]) >= 8


def check_channels_first(name: str, x: np.ndarray) -> None:
    """Refuse an evident (H, W, C) image where a (C, H, W) tensor is expected."""
    if looks_channels_last(x.shape):
        raise ValueError(
            f"{name} of shape {x.shape} looks like an (H, W, C) image, but this operation reads "
            f"a 3-D array as (C, H, W): convert it with ck.to_tensor(image), which gives "
            f"shape {(x.shape[2], x.shape[0], x.shape[1])}"
        )


def check_channels_last(name: str, x: np.ndarray) -> None:
    """Refuse an evident (C, H, W) tensor where an (H, W, C) image is expected."""
    if looks_channels_first(x.shape):
        raise ValueError(
            f"{name} of shape {x.shape} looks like a (C, H, W) tensor, but images are read as "
            f"(H, W, C): convert it with ck.to_image(tensor), which gives shape "
            f"{(x.shape[1], x.shape[2], x.shape[0])}"
        )
