"""Dense (fully connected, `linear`) layer: forward and backward."""

from __future__ import annotations

import numpy as np

from cnnkit._matmul import matmul
from cnnkit._validation import as_float_array, check_grad

__all__ = ["linear", "linear_forward", "linear_backward"]


def linear_forward(x, weight, bias=None):
    """Forward pass of :func:`linear`: its output and the cache :func:`linear_backward` needs.

    Parameters
    ----------
    x : ndarray of shape (..., in_features)
        Input; integer and bool inputs are computed in float32.
    weight : ndarray of shape (out_features, in_features)
        Weights, as in ``torch.nn.Linear``.
    bias : ndarray of shape (out_features,), optional
        Added to every output row.

    Returns
    -------
    out : ndarray of shape (..., out_features)
        What :func:`linear` returns.
    cache : tuple
        What :func:`linear_backward` needs; opaque to the caller.

    Examples
    --------
    >>> out, cache = linear_forward(np.array([[1.0, 2.0]]), np.array([[1.0, 1.0], [0.0, 1.0]]))
    >>> out
    array([[3., 2.]])
    """
    x = as_float_array("x", x)
    weight = as_float_array("weight", weight)
    bias = as_float_array("bias", bias, allow_none=True)
    if weight.ndim != 2:
        raise ValueError(
            f"weight must have shape (out_features, in_features), got shape {weight.shape}"
        )
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"x must have {weight.shape[1]} features in its last axis for weight of shape "
            f"{weight.shape}, got x of shape {x.shape}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got shape {bias.shape}")
    dtype = np.result_type(x, weight, *([] if bias is None else [bias]))
    weight = weight.astype(dtype, copy=False)
    out = matmul(x.astype(dtype, copy=False), weight.T)
    if bias is not None:
        out += bias
    return out, (x, weight, bias is not None)


def linear_backward(grad_output, cache):
    """Gradients of :func:`linear` with respect to `x`, `weight` and `bias`.

    Parameters
    ----------
    grad_output : ndarray of shape (..., out_features)
        Gradient of the loss with respect to the output.
    cache : tuple
        The cache :func:`linear_forward` returned.

    Returns
    -------
    grad_x : ndarray of shape (..., in_features)
        Gradient with respect to `x`.
    grad_weight : ndarray of shape (out_features, in_features)
        Gradient with respect to `weight`.
    grad_bias : ndarray of shape (out_features,) or None
        Gradient with respect to `bias`; None when there was no bias.

    Examples
    --------
    >>> x, weight, bias = np.array([[1.0, 2.0]]), np.eye(2), np.zeros(2)
    >>> out, cache = linear_forward(x, weight, bias)
    >>> grad_x, grad_weight, grad_bias = linear_backward(np.array([[1.0, 0.0]]), cache)
    >>> grad_weight
    array([[1., 2.],
           [0., 0.]])
    >>> grad_bias
    array([1., 0.])
    """
    x, weight, has_bias = cache
    expected = (*x.shape[:-1], weight.shape[0])
    grad = check_grad(grad_output, expected, weight.dtype)
    grad_2d = grad.reshape(-1, weight.shape[0])  # (rows, out)
    x_2d = x.reshape(-1, weight.shape[1]).astype(weight.dtype, copy=False)  # (rows, in)
    grad_x = matmul(grad, weight)
    grad_weight = matmul(grad_2d.T, x_2d)
    grad_bias = grad_2d.sum(axis=0) if has_bias else None
    return grad_x, grad_weight, grad_bias


def linear(x, weight, bias=None):
    """Affine map ``x @ weight.T + bias`` over the last axis.

    Parameters
    ----------
    x : ndarray of shape (..., in_features)
        Input; integer and bool inputs are computed in float32.
    weight : ndarray of shape (out_features, in_features)
        Weights, as in ``torch.nn.Linear``.
    bias : ndarray of shape (out_features,), optional
        Added to every output row.

    Returns
    -------
    ndarray of shape (..., out_features)
        In the dtype NumPy promotes the inputs to.

    Examples
    --------
    >>> import numpy as np
    >>> linear(np.array([1.0, 2.0]), np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([0.5, 0.0]))
    array([3.5, 2. ])
    """
    return linear_forward(x, weight, bias)[0]
