"""Batch normalisation layer."""

from __future__ import annotations

import numpy as np

from cnnkit import functional as F
from cnnkit._validation import as_float_array, check_ndim, check_positive_int, check_real
from cnnkit.functional.norm import _batch_norm_forward
from cnnkit.nn.module import Module, Parameter

__all__ = ["BatchNorm2d"]


class BatchNorm2d(Module):
    """Batch normalisation over the channels of (N, C, H, W) inputs, as PyTorch's.

    In training, each batch is normalised with its own statistics and the running
    statistics are updated (``num_batches_tracked`` counts the updates); in evaluation
    the running statistics are used.

    Parameters
    ----------
    num_features : int
        The number of channels C.
    eps : float, default 1e-5
        Added to the variance before its square root.
    momentum : float, default 0.1
        Weight of the new batch in the running statistics' update.

    Attributes
    ----------
    weight, bias : Parameter of shape (C,)
        Initialised to ones and zeros.
    running_mean, running_var : ndarray of shape (C,)
        Initialised to zeros and ones.
    num_batches_tracked : 0-d int64 ndarray

    Examples
    --------
    >>> import numpy as np
    >>> bn = BatchNorm2d(3)
    >>> out = bn(np.random.default_rng(0).normal(5.0, 2.0, size=(4, 3, 2, 2)))
    >>> bool(abs(out.mean()) < 1e-6), bn.running_mean.round(1), int(bn.num_batches_tracked)
    (True, array([0.5, 0.5, 0.5], dtype=float32), 1)
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features = check_positive_int("num_features", num_features)
        self.eps = check_real("eps", eps, minimum=0.0)
        self.momentum = check_real("momentum", momentum)
        self.weight = Parameter(np.ones(self.num_features, dtype=np.float32))
        self.bias = Parameter(np.zeros(self.num_features, dtype=np.float32))
        self.register_buffer("running_mean", np.zeros(self.num_features, dtype=np.float32))
        self.register_buffer("running_var", np.ones(self.num_features, dtype=np.float32))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    _output_is_new = True

    def forward(self, x):
        x = as_float_array("x", x)
        check_ndim("x", x, (4,), "(N, C, H, W)")
        out, self._cache = F.batch_norm_forward(
            x,
            self.running_mean,
            self.running_var,
            self.weight.data,
            self.bias.data,
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
        )
        if self.training:
            self.num_batches_tracked += 1
        return out

    def _forward_in_place(self, x):
        if self.training or not isinstance(x, np.ndarray) or x.ndim != 4:
            return self(x)
        self._cache = None
        statistics = (self.running_mean, self.running_var, self.weight.data, self.bias.data)
        return _batch_norm_forward(x, *statistics, False, self.momentum, self.eps, in_place=True)[0]

    def backward(self, grad_output):
        grad_x, grad_weight, grad_bias = F.batch_norm_backward(grad_output, self._last_cache())
        self.weight.accumulate(grad_weight)
        self.bias.accumulate(grad_bias)
        return grad_x

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class LocalResponseNorm(Module):
    """Local response normalisation across channels, as PyTorch's (AlexNet, GoogLeNet).

    See :func:`cnnkit.functional.local_response_norm`.

    Parameters
    ----------
    size : int
        Number of neighbouring channels summed over.
    alpha : float, default 1e-4
        Scale of the sum of squares.
    beta : float, default 0.75
        Exponent.
    k : float, default 1.0
        Additive constant.

    Examples
    --------
    >>> import numpy as np
    >>> LocalResponseNorm(5)(np.ones((2, 8, 4, 4), np.float32)).shape
    (2, 8, 4, 4)
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = check_positive_int("size", size)
        self.alpha = check_real("alpha", alpha)
        self.beta = check_real("beta", beta)
        self.k = check_real("k", k)

    def forward(self, x):
        out, self._cache = F.local_response_norm_forward(
            x, self.size, self.alpha, self.beta, self.k
        )
        return out

    def backward(self, grad_output):
        return F.local_response_norm_backward(grad_output, self._last_cache())

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


__all__ += ["LocalResponseNorm"]
