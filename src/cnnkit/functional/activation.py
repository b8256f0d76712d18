"""Elementwise and normalising activations: forward and backward.

Each ``*_forward`` returns ``(out, cache)``; each ``*_backward(grad_output, cache)``
returns the gradient with respect to the input.
"""

from __future__ import annotations

import numbers

import numpy as np

from cnnkit import _threads
from cnnkit._validation import as_float_array, check_grad, check_real
from cnnkit._workspace import scratch

__all__ = [
    "relu", "relu_forward", "relu_backward",
    "leaky_relu", "leaky_relu_forward", "leaky_relu_backward",
    "sigmoid", "sigmoid_forward", "sigmoid_backward",
    "softmax", "softmax_forward", "softmax_backward",
    "log_softmax", "log_softmax_forward", "log_softmax_backward",
]  # fmt: skip


def _check_axis(x: np.ndarray, axis) -> int:
    """The axis as a non-negative int; a 0-d `x` takes axis 0 or -1, as in PyTorch."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an int, got {axis!r}")
    ndim = max(x.ndim, 1)
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis must be in [{-ndim}, {ndim}) for x of shape {x.shape}, got {axis}")
    return axis % ndim


def _array(value, shape) -> np.ndarray:
    """`value` as an ndarray of `shape`: NumPy gives scalars for 0-d operands."""
    return np.asarray(value).reshape(shape)


def relu_forward(x):
    """Forward pass of :func:`relu`: its output and the cache :func:`relu_backward` needs.

    Parameters
    ----------
    x : ndarray
        Input of any shape; integer and bool inputs are computed in float32.

    Returns
    -------
    out : ndarray
        What :func:`relu` returns.
    cache : tuple or ndarray
        What :func:`relu_backward` needs; opaque to the caller.

    Examples
    --------
    >>> out, cache = relu_forward(np.array([-2.0, 3.0]))
    >>> out
    array([0., 3.])
    """
    x = as_float_array("x", x)
    out = np.empty_like(x)  # x's memory order
    _threads.elementwise(lambda block, target: np.maximum(block, 0, out=target), x, out)
    return out, out


def relu_backward(grad_output, cache):
    """Gradient of :func:`relu`: passes where the output is positive.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the output, of the output's shape.
    cache : tuple or ndarray
        The cache :func:`relu_forward` returned.

    Returns
    -------
    grad_x : ndarray
        Gradient of the loss with respect to `x`, of the shape and dtype of `x`.

    Examples
    --------
    >>> out, cache = relu_forward(np.array([-2.0, 3.0]))
    >>> relu_backward(np.array([5.0, 5.0]), cache)
    array([0., 5.])
    """
    out = cache
    grad = check_grad(grad_output, out.shape, out.dtype)
    grad_x = np.empty_like(grad)

    def update(grad, out, grad_x):
        positive = np.greater(out, 0, out=scratch("relu.positive", out.shape, bool, out))
        np.multiply(grad, positive, out=grad_x)

    _threads.elementwise(update, grad, out, grad_x)
    return grad_x


def relu(x):
    """Rectified linear unit, ``max(x, 0)``.

    Parameters
    ----------
    x : ndarray
        Input of any shape; integer and bool inputs are computed in float32.

    Returns
    -------
    ndarray
        ``max(x, 0)``, of the shape and float dtype of `x`.

    Examples
    --------
    >>> import numpy as np
    >>> relu(np.array([-2.0, 0.0, 3.0]))
    array([0., 0., 3.])
    """
    return relu_forward(x)[0]


def leaky_relu_forward(x, negative_slope=0.01):
    """Forward pass of :func:`leaky_relu`: its output and the cache :func:`leaky_relu_backward` needs.

    Parameters
    ----------
    x : ndarray
        Input of any shape; integer and bool inputs are computed in float32.
    negative_slope : float, default 0.01
        Slope where `x` is negative.

    Returns
    -------
    out : ndarray
        What :func:`leaky_relu` returns.
    cache : tuple or ndarray
        What :func:`leaky_relu_backward` needs; opaque to the caller.

    Examples
    --------
    >>> out, cache = leaky_relu_forward(np.array([-2.0, 3.0]), 0.1)
    >>> out
    array([-0.2,  3. ])
    """
    x = as_float_array("x", x)
    slope = check_real("negative_slope", negative_slope)
    positive = x > 0
    out = _array(np.where(positive, x, x * x.dtype.type(slope)), x.shape)
    return out, (positive, x.dtype.type(slope))


def leaky_relu_backward(grad_output, cache):
    """Gradient of :func:`leaky_relu`: 1 where the input is positive, the slope elsewhere.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the output, of the output's shape.
    cache : tuple or ndarray
        The cache :func:`leaky_relu_forward` returned.

    Returns
    -------
    grad_x : ndarray
        Gradient of the loss with respect to `x`, of the shape and dtype of `x`.

    Examples
    --------
    >>> out, cache = leaky_relu_forward(np.array([-2.0, 3.0]), 0.1)
    >>> leaky_relu_backward(np.array([5.0, 5.0]), cache)
    array([0.5, 5. ])
    """
    positive, slope = cache
    grad = check_grad(grad_output, positive.shape, slope.dtype)
    return _array(np.where(positive, grad, grad * slope), positive.shape)


def leaky_relu(x, negative_slope=0.01):
    """Leaky ReLU: `x` where positive, ``negative_slope * x`` elsewhere.

    Parameters
    ----------
    x : ndarray
        Input of any shape; integer and bool inputs are computed in float32.
    negative_slope : float, default 0.01
        Slope where `x` is negative.

    Returns
    -------
    ndarray
        Of the shape and float dtype of `x`.

    Examples
    --------
    >>> import numpy as np
    >>> leaky_relu(np.array([-2.0, 3.0]), 0.1)
    array([-0.2,  3. ])
    """
    return leaky_relu_forward(x, negative_slope)[0]


def sigmoid_forward(x):
    """Forward pass of :func:`sigmoid`: its output and the cache :func:`sigmoid_backward` needs.

    Parameters
    ----------
    x : ndarray
        Input of any shape; integer and bool inputs are computed in float32.

    Returns
    -------
    out : ndarray
        What :func:`sigmoid` returns.
    cache : tuple or ndarray
        What :func:`sigmoid_backward` needs; opaque to the caller.

    Examples
    --------
    >>> out, cache = sigmoid_forward(np.array([0.0]))
    >>> out
    array([0.5])
    """
    x = as_float_array("x", x)
    # exp(-|x|) <= 1 never overflows; the two branches are the same function
    e = np.exp(-np.abs(x))
    out = _array(np.where(x >= 0, 1 / (1 + e), e / (1 + e)), x.shape).astype(x.dtype, copy=False)
    return out, out


def sigmoid_backward(grad_output, cache):
    """Gradient of :func:`sigmoid`: ``s * (1 - s)``.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the output, of the output's shape.
    cache : tuple or ndarray
        The cache :func:`sigmoid_forward` returned.

    Returns
    -------
    grad_x : ndarray
        Gradient of the loss with respect to `x`, of the shape and dtype of `x`.

    Examples
    --------
    >>> out, cache = sigmoid_forward(np.array([0.0]))
    >>> sigmoid_backward(np.array([1.0]), cache)
    array([0.25])
    """
    out = cache
    return _array(check_grad(grad_output, out.shape, out.dtype) * out * (1 - out), out.shape)


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, without overflow for any finite input.

    Parameters
    ----------
    x : ndarray
        Input of any shape; integer and bool inputs are computed in float32.

    Returns
    -------
    ndarray
        Values in [0, 1], of the shape and float dtype of `x`.

    Examples
    --------
    >>> import numpy as np
    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    return sigmoid_forward(x)[0]


def softmax_forward(x, axis=-1):
    """Forward pass of :func:`softmax`: its output and the cache :func:`softmax_backward` needs.

    Parameters
    ----------
    x : ndarray
        Input of any shape; integer and bool inputs are computed in float32.
    axis : int, default -1
        The axis the values are normalised along.

    Returns
    -------
    out : ndarray
        What :func:`softmax` returns.
    cache : tuple or ndarray
        What :func:`softmax_backward` needs; opaque to the caller.

    Examples
    --------
    >>> out, cache = softmax_forward(np.array([0.0, 0.0]))
    >>> out
    array([0.5, 0.5])
    """
    x = as_float_array("x", x)
    axis = _check_axis(x, axis)
    rows = x.reshape(x.shape or (1,))  # a 0-d x is one row of one value
    if rows.shape[axis] == 0:  # nothing to normalise: empty, as in PyTorch
        return x.copy(), (x.copy(), axis)
    e = np.exp(rows - rows.max(axis=axis, keepdims=True))
    out = (e / e.sum(axis=axis, keepdims=True)).reshape(x.shape)
    return out, (out, axis)


def softmax_backward(grad_output, cache):
    """Gradient of :func:`softmax`: ``s * (g - sum(g * s))`` along the axis.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the output, of the output's shape.
    cache : tuple or ndarray
        The cache :func:`softmax_forward` returned.

    Returns
    -------
    grad_x : ndarray
        Gradient of the loss with respect to `x`, of the shape and dtype of `x`.

    Examples
    --------
    >>> out, cache = softmax_forward(np.array([0.0, 0.0]))
    >>> softmax_backward(np.array([1.0, 0.0]), cache)
    array([ 0.25, -0.25])
    """
    out, axis = cache
    grad = check_grad(grad_output, out.shape, out.dtype)
    rows, grad_rows = out.reshape(out.shape or (1,)), grad.reshape(out.shape or (1,))
    dx = rows * (grad_rows - (grad_rows * rows).sum(axis=axis, keepdims=True))
    return dx.reshape(out.shape)


def softmax(x, axis=-1):
    """Softmax along `axis`: ``exp(x) / sum(exp(x))``, stable for any finite input.

    The maximum is subtracted first, so no exponential overflows.

    Parameters
    ----------
    x : ndarray
        Input of any shape; integer and bool inputs are computed in float32.
    axis : int, default -1
        The axis the values are normalised along.

    Returns
    -------
    ndarray
        Positive values summing to 1 along `axis`, of the shape and float dtype of `x`.

    Examples
    --------
    >>> import numpy as np
    >>> softmax(np.array([1000.0, 1000.0]))
    array([0.5, 0.5])
    """
    return softmax_forward(x, axis)[0]


def log_softmax_forward(x, axis=-1):
    """Forward pass of :func:`log_softmax`: its output and the cache :func:`log_softmax_backward` needs.

    Parameters
    ----------
    x : ndarray
        Input of any shape; integer and bool inputs are computed in float32.
    axis : int, default -1
        The axis the values are normalised along.

    Returns
    -------
    out : ndarray
        What :func:`log_softmax` returns.
    cache : tuple or ndarray
        What :func:`log_softmax_backward` needs; opaque to the caller.

    Examples
    --------
    >>> out, cache = log_softmax_forward(np.array([0.0, 0.0]))
    >>> out
    array([-0.69314718, -0.69314718])
    """
    x = as_float_array("x", x)
    axis = _check_axis(x, axis)
    rows = x.reshape(x.shape or (1,))  # a 0-d x is one row of one value
    if rows.shape[axis] == 0:  # nothing to normalise: empty, as in PyTorch
        return x.copy(), (x.copy(), axis)
    shifted = rows - rows.max(axis=axis, keepdims=True)
    out = (shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))).reshape(x.shape)
    return out, (out, axis)


def log_softmax_backward(grad_output, cache):
    """Gradient of :func:`log_softmax`: ``g - softmax * sum(g)`` along the axis.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the output, of the output's shape.
    cache : tuple or ndarray
        The cache :func:`log_softmax_forward` returned.

    Returns
    -------
    grad_x : ndarray
        Gradient of the loss with respect to `x`, of the shape and dtype of `x`.

    Examples
    --------
    >>> out, cache = log_softmax_forward(np.array([0.0, 0.0]))
    >>> log_softmax_backward(np.array([1.0, 0.0]), cache)
    array([ 0.5, -0.5])
    """
    out, axis = cache
    grad = check_grad(grad_output, out.shape, out.dtype)
    rows, grad_rows = out.reshape(out.shape or (1,)), grad.reshape(out.shape or (1,))
    return (grad_rows - np.exp(rows) * grad_rows.sum(axis=axis, keepdims=True)).reshape(out.shape)


def log_softmax(x, axis=-1):
    """Logarithm of :func:`softmax`, computed without forming the softmax.

    Parameters
    ----------
    x : ndarray
        Input of any shape; integer and bool inputs are computed in float32.
    axis : int, default -1
        The axis the values are normalised along.

    Returns
    -------
    ndarray
        ``log(softmax(x, axis))``, of the shape and float dtype of `x`.

    Examples
    --------
    >>> import numpy as np
    >>> log_softmax(np.array([0.0, 0.0]))
    array([-0.69314718, -0.69314718])
    """
    return log_softmax_forward(x, axis)[0]
