"""Activation and dropout layers."""

from __future__ import annotations

import numpy as np

from cnnkit import _threads
from cnnkit import functional as F
from cnnkit._random import get_rng
from cnnkit._validation import check_probability, check_real
from cnnkit.nn.module import Module

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Softmax", "Dropout"]


class ReLU(Module):
    """``max(x, 0)`` elementwise.

    Examples
    --------
    >>> import numpy as np
    >>> ReLU()(np.array([-1.0, 2.0]))
    array([0., 2.])
    """

    _output_is_new = True

    def forward(self, x):
        out, self._cache = F.relu_forward(x)
        return out

    def _forward_in_place(self, x):
        if not (isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.flags.writeable):
            return self(x)
        self._cache = None
        _threads.elementwise(lambda block, target: np.maximum(block, 0, out=target), x, x)
        return x

    def backward(self, grad_output):
        return F.relu_backward(grad_output, self._last_cache())


class LeakyReLU(Module):
    """`x` where positive, ``negative_slope * x`` elsewhere.

    Parameters
    ----------
    negative_slope : float, default 0.01
        Slope where the input is negative.

    Examples
    --------
    >>> import numpy as np
    >>> LeakyReLU(0.5)(np.array([-1.0, 2.0]))
    array([-0.5,  2. ])
    """

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = check_real("negative_slope", negative_slope)

    def forward(self, x):
        out, self._cache = F.leaky_relu_forward(x, self.negative_slope)
        return out

    def backward(self, grad_output):
        return F.leaky_relu_backward(grad_output, self._last_cache())

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """Logistic sigmoid elementwise.

    Examples
    --------
    >>> import numpy as np
    >>> Sigmoid()(np.zeros(2))
    array([0.5, 0.5])
    """

    def forward(self, x):
        out, self._cache = F.sigmoid_forward(x)
        return out

    def backward(self, grad_output):
        return F.sigmoid_backward(grad_output, self._last_cache())


class Softmax(Module):
    """Softmax along `axis`.

    Parameters
    ----------
    axis : int, default -1
        The axis the values are normalised along.

    Examples
    --------
    >>> import numpy as np
    >>> Softmax()(np.zeros((1, 4)))
    array([[0.25, 0.25, 0.25, 0.25]])
    """

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        out, self._cache = F.softmax_forward(x, self.axis)
        return out

    def backward(self, grad_output):
        return F.softmax_backward(grad_output, self._last_cache())

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Dropout(Module):
    """Inverted dropout while training; the identity in evaluation mode.

    Parameters
    ----------
    p : float in [0, 1], default 0.5
        Probability of dropping an element while training.
    rng : numpy.random.Generator, int or None, keyword-only
        Source of the masks (None: cnnkit's default generator, see :func:`cnnkit.manual_seed`).

    Examples
    --------
    >>> import numpy as np
    >>> layer = Dropout(0.5, rng=0).eval()
    >>> layer(np.ones(3))
    array([1., 1., 1.])
    """

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        self.p = check_probability("p", p)
        self.rng = None if rng is None else get_rng(rng)

    def forward(self, x):
        out, self._cache = F.dropout_forward(x, self.p, self.training, self.rng)
        return out

    def backward(self, grad_output):
        if self._cache is None and self.training and self.p > 0:
            raise RuntimeError("Dropout.backward called before forward")
        return F.dropout_backward(grad_output, self._cache)

    def extra_repr(self) -> str:
        return f"p={self.p}"
