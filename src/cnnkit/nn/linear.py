"""Linear and flatten layers."""

from __future__ import annotations

import numpy as np

from cnnkit import functional as F
from cnnkit._validation import as_float_array, check_positive_int
from cnnkit.nn.init import uniform_fan_in
from cnnkit.nn.module import Module, Parameter

__all__ = ["Linear", "Flatten"]


class Linear(Module):
    """Affine layer ``x @ weight.T + bias`` with PyTorch's initialisation.

    Parameters
    ----------
    in_features : int
        Size of the input's last axis.
    out_features : int
        Size of the output's last axis.
    bias : bool, default True
        Whether the layer adds a learned bias.
    rng : numpy.random.Generator, int or None, keyword-only
        Source of the initial weights (None: cnnkit's default generator).

    Attributes
    ----------
    weight : Parameter of shape (out_features, in_features), float32
    bias : Parameter of shape (out_features,), or None

    Examples
    --------
    >>> import numpy as np
    >>> layer = Linear(4, 2, rng=0)
    >>> layer(np.ones((3, 4))).shape
    (3, 2)
    """

    def __init__(self, in_features, out_features, bias=True, *, rng=None):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        shape = (self.out_features, self.in_features)
        self.weight = Parameter(uniform_fan_in(shape, self.in_features, rng))
        if bias:
            self.bias = Parameter(uniform_fan_in((self.out_features,), self.in_features, rng))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        bias = None if self.bias is None else self.bias.data
        out, self._cache = F.linear_forward(x, self.weight.data, bias)
        return out

    def backward(self, grad_output):
        grad_x, grad_weight, grad_bias = F.linear_backward(grad_output, self._last_cache())
        self.weight.accumulate(grad_weight)
        if self.bias is not None:
            self.bias.accumulate(grad_bias)
        return grad_x

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Flatten(Module):
    """Flatten every axis after the first: (N, ...) -> (N, prod(...)).

    Examples
    --------
    >>> import numpy as np
    >>> Flatten()(np.ones((2, 3, 4, 4))).shape
    (2, 48)
    """

    def forward(self, x):
        x = as_float_array("x", x)
        if x.ndim < 1:
            raise ValueError("x must have at least one dimension, got a 0-d array")
        self._cache = x.shape
        return x.reshape(x.shape[0], -1) if x.ndim > 1 else x

    def backward(self, grad_output):
        shape = self._last_cache()
        grad_output = as_float_array("grad_output", grad_output)
        if grad_output.size != int(np.prod(shape)):
            raise ValueError(
                f"grad_output must have {int(np.prod(shape))} elements, got shape {grad_output.shape}"
            )
        return grad_output.reshape(shape)
