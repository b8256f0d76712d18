"""Pooling layers."""

from __future__ import annotations

from cnnkit import functional as F
from cnnkit._validation import check_bool, check_pool_window
from cnnkit.nn.module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "GlobalAvgPool2d"]


class MaxPool2d(Module):
    """Max pooling layer; see :func:`cnnkit.functional.max_pool2d`.

    Parameters
    ----------
    kernel_size : int or (int, int)
        Height and width of the window.
    stride : int, (int, int) or None, default None
        Step between windows; None means `kernel_size`.
    padding : int or (int, int), default 0
        Implicit padding on each side (at most half the window).
    dilation : int or (int, int), default 1
        Spacing between the window's taps.
    ceil_mode : bool, default False
        Round the output size up, so that a last partial window counts.

    Examples
    --------
    >>> import numpy as np
    >>> MaxPool2d(2)(np.ones((1, 3, 4, 4))).shape
    (1, 3, 2, 2)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        check_pool_window(
            kernel_size, stride, padding, dilation
        )  # refused now, not at the first call
        check_bool("ceil_mode", ceil_mode)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x):
        out, self._cache = F.max_pool2d_forward(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )
        return out

    def backward(self, grad_output):
        return F.max_pool2d_backward(grad_output, self._last_cache())

    def extra_repr(self) -> str:
        stride = self.kernel_size if self.stride is None else self.stride
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling layer; see :func:`cnnkit.functional.avg_pool2d`.

    Parameters
    ----------
    kernel_size : int or (int, int)
        Height and width of the window.
    stride : int, (int, int) or None, default None
        Step between windows; None means `kernel_size`.
    padding : int or (int, int), default 0
        Implicit padding on each side (at most half the window).
    ceil_mode : bool, default False
        Round the output size up, so that a last partial window counts.
    count_include_pad : bool, default True
        Divide by the whole window, padding included; else by the values inside.

    Examples
    --------
    >>> import numpy as np
    >>> AvgPool2d(2)(np.ones((3, 4, 4))).shape
    (3, 2, 2)
    """

    def __init__(
        self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True
    ):
        super().__init__()
        check_pool_window(kernel_size, stride, padding)  # refused now, not at the first call
        check_bool("ceil_mode", ceil_mode)
        check_bool("count_include_pad", count_include_pad)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        out, self._cache = F.avg_pool2d_forward(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad
        )
        return out

    def backward(self, grad_output):
        return F.avg_pool2d_backward(grad_output, self._last_cache())

    def extra_repr(self) -> str:
        stride = self.kernel_size if self.stride is None else self.stride
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}"


class GlobalAvgPool2d(Module):
    """Mean over each channel's plane: (N, C, H, W) -> (N, C).

    Examples
    --------
    >>> import numpy as np
    >>> GlobalAvgPool2d()(np.ones((2, 3, 4, 4))).shape
    (2, 3)
    """

    def forward(self, x):
        out, self._cache = F.global_avg_pool2d_forward(x)
        return out

    def backward(self, grad_output):
        return F.global_avg_pool2d_backward(grad_output, self._last_cache())
