"""Convolution layer."""

from __future__ import annotations

from cnnkit import functional as F
from cnnkit._validation import check_choice, check_positive, check_positive_int
from cnnkit.functional._conv_geometry import PADDING_MODES, check_padding
from cnnkit.nn.init import uniform_fan_in
from cnnkit.nn.module import Module, Parameter, backward_follows

__all__ = ["Conv2d"]


class Conv2d(Module):
    """2-D convolution layer with PyTorch's parameters, defaults and initialisation.

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    out_channels : int
        Channels of the output (kernels).
    kernel_size : int or (int, int)
        Height and width of each kernel.
    stride : int or (int, int), default 1
        Step between windows.
    padding : int, (int, int), "valid" or "same", default 0
        Rows and columns added on each side, or a rule (see :func:`cnnkit.functional.conv2d`).
    dilation : int or (int, int), default 1
        Spacing between kernel taps.
    groups : int, default 1
        Input and output channels are split into this many independent groups.
    bias : bool, default True
        Whether the layer adds a learned bias per output channel.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, default "zeros"
        What the padding holds.
    rng : numpy.random.Generator, int or None, keyword-only
        Source of the initial weights (None: cnnkit's default generator).

    Attributes
    ----------
    weight : Parameter of shape (out_channels, in_channels / groups, kH, kW), float32
    bias : Parameter of shape (out_channels,), or None

    Examples
    --------
    >>> import numpy as np
    >>> conv = Conv2d(3, 8, 3, padding=1, rng=0)
    >>> out = conv(np.ones((2, 3, 5, 5), dtype=np.float32))
    >>> out.shape, conv.backward(np.ones_like(out)).shape, conv.weight.grad.shape
    ((2, 8, 5, 5), (2, 3, 5, 5), (8, 3, 3, 3))
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        padding_mode="zeros",
        *,
        rng=None,
    ):
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.kernel_size = check_positive("kernel_size", kernel_size)
        self.stride = check_positive("stride", stride)
        self.padding = check_padding(padding)
        self.dilation = check_positive("dilation", dilation)
        self.groups = check_positive_int("groups", groups)
        self.padding_mode = check_choice("padding_mode", padding_mode, PADDING_MODES)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide in_channels={self.in_channels} "
                f"and out_channels={self.out_channels}"
            )
        kh, kw = self.kernel_size
        fan_in = self.in_channels // self.groups * kh * kw
        shape = (self.out_channels, self.in_channels // self.groups, kh, kw)
        self.weight = Parameter(uniform_fan_in(shape, fan_in, rng))
        if bias:
            self.bias = Parameter(uniform_fan_in((self.out_channels,), fan_in, rng))
        else:
            self.register_parameter("bias", None)

    _output_is_new = True

    def forward(self, x):
        arguments = (
            self.weight.data,
            None if self.bias is None else self.bias.data,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.padding_mode,
        )
        if not backward_follows():  # keep no windows for a backward
            self._cache = None
            return F.conv2d(x, *arguments)
        out, self._cache = F.conv2d_forward(x, *arguments)
        return out

    def backward(self, grad_output):
        grad_x, grad_weight, grad_bias = F.conv2d_backward(grad_output, self._last_cache())
        self.weight.accumulate(grad_weight)
        if self.bias is not None:
            self.bias.accumulate(grad_bias)
        return grad_x

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        return text
