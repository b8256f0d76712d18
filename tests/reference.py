"""Deliberately naive loop implementations: an oracle that shares no code with cnnkit."""

from __future__ import annotations

import math

import numpy as np

NP_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def tie_free(rng, shape, dtype=np.float64):
    """A shuffled arange: no two values equal, so the maximum of every window is unique."""
    return rng.permutation(np.prod(shape)).reshape(shape).astype(dtype) / 7.0


def away_from_zero(rng, shape, dtype=np.float64):
    """Values with |x| >= 0.1, so a finite difference never straddles a kink of ReLU."""
    x = rng.uniform(0.1, 3.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return x.astype(dtype)


def same_pads(size, kernel, stride, dilation):
    """TensorFlow's "same" rule: (before, after) with the odd one after.

    Not an independent oracle at stride > 1: PyTorch refuses padding="same" there, so
    this rule (and cnnkit's) are both read from TensorFlow's documentation. At stride 1
    PyTorch's own padding="same" checks it (test_conv.py).
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv2d(
    x, weight, bias=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1, mode="zeros"
):
    """Loop over every output element; `pads` is (top, bottom, left, right)."""
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    n, _c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=NP_PAD_MODES[mode])
    sh, sw = stride
    dh, dw = dilation
    ho = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    wo = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    out = np.zeros((n, o, ho, wo))
    for b in range(n):
        for oc in range(o):
            g = oc // og
            for i in range(ho):
                for j in range(wo):
                    total = 0.0
                    for ci in range(cg):
                        for p in range(kh):
                            for q in range(kw):
                                total += (
                                    weight[oc, ci, p, q]
                                    * xp[b, g * cg + ci, i * sh + p * dh, j * sw + q * dw]
                                )
                    out[b, oc, i, j] = total + (0.0 if bias is None else bias[oc])
    return out


def _pool_out(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def max_pool2d(x, kernel, stride, padding, dilation=(1, 1), ceil_mode=False):
    """Returns (out, flat indices); ties go to the first maximum in row-major order."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    ho = _pool_out(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    wo = _pool_out(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    out = np.zeros((n, c, ho, wo))
    idx = np.zeros((n, c, ho, wo), dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    best, where = -np.inf, -1
                    for p in range(kernel[0]):
                        for q in range(kernel[1]):
                            r = i * stride[0] - padding[0] + p * dilation[0]
                            s = j * stride[1] - padding[1] + q * dilation[1]
                            if 0 <= r < h and 0 <= s < w and x[b, ch, r, s] > best:
                                best, where = x[b, ch, r, s], r * w + s
                    out[b, ch, i, j], idx[b, ch, i, j] = best, where
    return out, idx


def avg_pool2d(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True):
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    ho = _pool_out(h, kernel[0], stride[0], padding[0], 1, ceil_mode)
    wo = _pool_out(w, kernel[1], stride[1], padding[1], 1, ceil_mode)
    out = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            r0, s0 = i * stride[0] - padding[0], j * stride[1] - padding[1]
            r1, s1 = min(r0 + kernel[0], h + padding[0]), min(s0 + kernel[1], w + padding[1])
            size = (r1 - r0) * (s1 - s0)
            r0c, s0c, r1c, s1c = max(r0, 0), max(s0, 0), min(r1, h), min(s1, w)
            if not count_include_pad:
                size = (r1c - r0c) * (s1c - s0c)
            for b in range(n):
                for ch in range(c):
                    out[b, ch, i, j] = x[b, ch, r0c:r1c, s0c:s1c].sum() / size
    return out


def batch_norm_train(x, gamma, beta, eps):
    """Per channel, with explicit loops over channels."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    means, variances = [], []
    for ch in range(x.shape[1]):
        values = x[:, ch].ravel()
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / len(values)
        out[:, ch] = (x[:, ch] - mean) / math.sqrt(var + eps) * gamma[ch] + beta[ch]
        means.append(mean)
        variances.append(var * len(values) / (len(values) - 1))
    return out, np.array(means), np.array(variances)


def softmax_1d(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / sum(e) for v in e]


def sigmoid_scalar(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def directional_check(f, x, u, v, eps=1e-6):
    """Central-difference <J u, v> of f at x: what <u, J^T v> from a backward must equal."""
    return float(np.sum((f(x + eps * u) - f(x - eps * u)) * v) / (2 * eps))
