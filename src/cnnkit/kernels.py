"""A bank of named 2-D kernels (edge detectors, blurs, sharpen, emboss) and kernel builders.

Every kernel here is meant for cross-correlation, the operation ``conv2d`` and
``filter2d`` compute: the output at a pixel is the sum of the kernel times the window
centred on it, with no flip. A directional kernel is named by the side of the window
that gets the positive weights, so it responds positively where that side is the
brighter one: ``sobel_top`` is positive on an edge whose top side is brighter than its
bottom (the lower edge of a bright object), and negative on the opposite edge.

Edge kernels are unscaled integers (Sobel ``1 2 1``, Scharr ``3 10 3``, Prewitt
``1 1 1``); scikit-image divides its versions by their weight sum (4, 16, 3).

Kernels are float32, as images and layer parameters are, so filtering a float32 image
stays in float32 (a float64 image still computes in float64: NumPy promotes). The
builders take ``dtype=np.float64`` for full precision. The constants (``SOBEL_TOP``,
``LAPLACIAN`` ...) are read-only; :func:`get` returns a fresh, writable copy.

>>> from cnnkit import kernels
>>> kernels.get("sobel_top")
array([[ 1.,  2.,  1.],
       [ 0.,  0.,  0.],
       [-1., -2., -1.]], dtype=float32)
"""

from __future__ import annotations

import difflib
import numbers

import numpy as np

from cnnkit._validation import check_positive

__all__ = [
    "get",
    "available",
    "describe",
    "gaussian",
    "box",
    "laplacian_of_gaussian",
    "IDENTITY",
    "SOBEL_TOP",
    "SOBEL_BOTTOM",
    "SOBEL_LEFT",
    "SOBEL_RIGHT",
    "SCHARR_TOP",
    "SCHARR_BOTTOM",
    "SCHARR_LEFT",
    "SCHARR_RIGHT",
    "PREWITT_TOP",
    "PREWITT_BOTTOM",
    "PREWITT_LEFT",
    "PREWITT_RIGHT",
    "LAPLACIAN",
    "SHARPEN",
    "BOX_BLUR",
    "GAUSSIAN_BLUR",
    "EMBOSS",
    "OUTLINE",
]


#: The dtype of the named kernels and the default of the builders.
DTYPE = np.float32


def _const(rows, scale: float = 1.0) -> np.ndarray:
    """A read-only float32 kernel from nested lists (divided by `scale` in float64 first)."""
    array = (np.array(rows, dtype=np.float64) / scale).astype(DTYPE)
    array.flags.writeable = False
    return array


def _check_dtype(dtype) -> np.dtype:
    """`dtype` as a floating NumPy dtype; TypeError otherwise."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a floating dtype, got {dtype!r}") from None
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    return dtype


IDENTITY = _const([[0, 0, 0], [0, 1, 0], [0, 0, 0]])

SOBEL_TOP = _const([[1, 2, 1], [0, 0, 0], [-1, -2, -1]])
SOBEL_BOTTOM = _const(SOBEL_TOP[::-1, :])
SOBEL_LEFT = _const([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
SOBEL_RIGHT = _const(SOBEL_LEFT[:, ::-1])

SCHARR_TOP = _const([[3, 10, 3], [0, 0, 0], [-3, -10, -3]])
SCHARR_BOTTOM = _const(SCHARR_TOP[::-1, :])
SCHARR_LEFT = _const([[3, 0, -3], [10, 0, -10], [3, 0, -3]])
SCHARR_RIGHT = _const(SCHARR_LEFT[:, ::-1])

PREWITT_TOP = _const([[1, 1, 1], [0, 0, 0], [-1, -1, -1]])
PREWITT_BOTTOM = _const(PREWITT_TOP[::-1, :])
PREWITT_LEFT = _const([[1, 0, -1], [1, 0, -1], [1, 0, -1]])
PREWITT_RIGHT = _const(PREWITT_LEFT[:, ::-1])

LAPLACIAN = _const([[0, 1, 0], [1, -4, 1], [0, 1, 0]])
SHARPEN = _const([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
BOX_BLUR = _const(np.ones((3, 3)), 9.0)
GAUSSIAN_BLUR = _const([[1, 2, 1], [2, 4, 2], [1, 2, 1]], 16.0)
EMBOSS = _const([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
OUTLINE = _const([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])

# name -> (kernel, what it responds to); the descriptions are what `cnnkit kernels` prints.
_BANK: dict[str, tuple[np.ndarray, str]] = {
    "identity": (IDENTITY, "returns the input unchanged (a single 1 at the centre)"),
    "sobel_top": (SOBEL_TOP, "horizontal edges, positive where the top side is brighter"),
    "sobel_bottom": (SOBEL_BOTTOM, "horizontal edges, positive where the bottom side is brighter"),
    "sobel_left": (SOBEL_LEFT, "vertical edges, positive where the left side is brighter"),
    "sobel_right": (SOBEL_RIGHT, "vertical edges, positive where the right side is brighter"),
    "scharr_top": (
        SCHARR_TOP,
        "horizontal edges, top side brighter; Scharr weights 3-10-3, more rotation-invariant",
    ),
    "scharr_bottom": (
        SCHARR_BOTTOM,
        "horizontal edges, bottom side brighter; Scharr weights 3-10-3",
    ),
    "scharr_left": (SCHARR_LEFT, "vertical edges, left side brighter; Scharr weights 3-10-3"),
    "scharr_right": (SCHARR_RIGHT, "vertical edges, right side brighter; Scharr weights 3-10-3"),
    "prewitt_top": (
        PREWITT_TOP,
        "horizontal edges, top side brighter; Prewitt: equal weights, no smoothing bias",
    ),
    "prewitt_bottom": (PREWITT_BOTTOM, "horizontal edges, bottom side brighter; Prewitt weights"),
    "prewitt_left": (PREWITT_LEFT, "vertical edges, left side brighter; Prewitt weights"),
    "prewitt_right": (PREWITT_RIGHT, "vertical edges, right side brighter; Prewitt weights"),
    "laplacian": (
        LAPLACIAN,
        "edges and fine detail in every direction (second derivative); 0 on flat and linear ramps",
    ),
    "sharpen": (SHARPEN, "the input with its edges boosted (identity minus the Laplacian)"),
    "box_blur": (BOX_BLUR, "blurs: the mean of the 3x3 neighbourhood"),
    "gaussian_blur": (GAUSSIAN_BLUR, "blurs smoothly: 3x3 binomial weights 1-2-1, summing to 1"),
    "emboss": (
        EMBOSS,
        "embossed relief: diagonal edges added to the input, lit from the bottom right",
    ),
    "outline": (
        OUTLINE,
        "edges and spots in all directions; 0 on flat regions (8 x centre minus neighbours)",
    ),
}


def available() -> list[str]:
    """Return the names of the named kernels, sorted.

    Returns
    -------
    list of str
        Every name :func:`get` and :func:`describe` accept.

    Examples
    --------
    >>> from cnnkit import kernels
    >>> names = kernels.available()
    >>> names[:3]
    ['box_blur', 'emboss', 'gaussian_blur']
    >>> "sobel_top" in names
    True
    """
    return sorted(_BANK)


def _lookup(name) -> tuple[np.ndarray, str]:
    """The (kernel, description) entry for `name`, or a ValueError listing the names."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a kernel name (str), got {type(name).__name__}: {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key not in _BANK:
        close = difflib.get_close_matches(key, _BANK, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown kernel name {name!r}{hint}; available: {', '.join(available())}")
    return _BANK[key]


def get(name: str) -> np.ndarray:
    """Return a named kernel as a fresh float32 array.

    Parameters
    ----------
    name : str
        One of :func:`available` (case-insensitive; ``-`` reads as ``_``).

    Returns
    -------
    kernel : ndarray of shape (3, 3), float32
        A writable copy: changing it does not change the bank. float32 keeps a float32
        image float32 through :func:`cnnkit.filter2d`; a float64 image gives float64.

    Raises
    ------
    ValueError
        An unknown name; the message lists the available ones.
    TypeError
        ``name`` is not a string.

    Examples
    --------
    >>> from cnnkit import kernels
    >>> kernels.get("sobel_left")
    array([[ 1.,  0., -1.],
           [ 2.,  0., -2.],
           [ 1.,  0., -1.]], dtype=float32)
    >>> round(float(kernels.get("box_blur").sum()), 6)
    1.0
    """
    return np.array(_lookup(name)[0], dtype=DTYPE, copy=True)


def describe(name: str) -> str:
    """Return a one-line description of what a named kernel responds to.

    Parameters
    ----------
    name : str
        One of :func:`available`.

    Returns
    -------
    str
        One line, no trailing period, as printed by ``cnnkit kernels``.

    Examples
    --------
    >>> from cnnkit import kernels
    >>> kernels.describe("sobel_top")
    'horizontal edges, positive where the top side is brighter'
    """
    return _lookup(name)[1]


def _check_sigma(sigma) -> tuple[float, float]:
    """Return `sigma` (a positive number or a pair of them) as a pair of floats."""
    values = sigma if isinstance(sigma, (tuple, list)) else (sigma, sigma)
    if len(values) != 2 or not all(
        isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values
    ):
        raise TypeError(f"sigma must be a positive number or a pair of them, got {sigma!r}")
    pair = (float(values[0]), float(values[1]))
    if not all(np.isfinite(v) and v > 0 for v in pair):
        raise ValueError(f"sigma must be > 0 and finite, got {sigma!r}")
    return pair


def _offsets(size: int) -> np.ndarray:
    """Distances of the `size` taps from the kernel's centre."""
    return np.arange(size, dtype=np.float64) - (size - 1) / 2


def gaussian(size, sigma, *, dtype=DTYPE) -> np.ndarray:
    """Build a Gaussian blur kernel, normalised to sum to 1.

    Parameters
    ----------
    size : int or (int, int)
        Kernel height and width, each >= 1. Odd sizes have a centre tap; even sizes
        are centred between taps.
    sigma : float or (float, float)
        Standard deviation along rows and columns, in pixels, > 0.
    dtype : floating dtype, default float32
        Computed in float64, returned in this dtype.

    Returns
    -------
    kernel : ndarray of shape (size_h, size_w)
        Non-negative weights that sum to 1, in `dtype`.

    Notes
    -----
    ``k[i, j] = g(i - c_h; sigma_h) g(j - c_w; sigma_w) / Z`` with
    ``g(d; s) = exp(-d^2 / (2 s^2))``, ``c = (size - 1) / 2`` and ``Z`` the sum of the
    unnormalised weights: the sampled Gaussian, truncated to the window, as
    ``scipy.ndimage.gaussian_filter`` with ``radius = (size - 1) // 2`` for odd sizes.
    It responds to nothing in particular: it averages, weighting near pixels most.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit import kernels
    >>> k = kernels.gaussian(5, 1.0, dtype=np.float64)
    >>> k.shape, round(float(k.sum()), 12), bool(k[2, 2] == k.max())
    ((5, 5), 1.0, True)
    >>> kernels.gaussian(5, 1.0).dtype
    dtype('float32')
    """
    dtype = _check_dtype(dtype)
    return _gaussian(size, sigma).astype(dtype)


def _gaussian(size, sigma) -> np.ndarray:
    """:func:`gaussian` in float64."""
    size_h, size_w = check_positive("size", size)
    sigma_h, sigma_w = _check_sigma(sigma)
    rows = np.exp(-(_offsets(size_h) ** 2) / (2 * sigma_h**2))  # (size_h,)
    cols = np.exp(-(_offsets(size_w) ** 2) / (2 * sigma_w**2))  # (size_w,)
    kernel = np.outer(rows, cols)  # (size_h, size_w)
    return kernel / kernel.sum()


def box(size, *, dtype=DTYPE) -> np.ndarray:
    """Build a box (mean) blur kernel: all weights equal, summing to 1.

    Parameters
    ----------
    size : int or (int, int)
        Kernel height and width, each >= 1.
    dtype : floating dtype, default float32
        The dtype of the returned kernel.

    Returns
    -------
    kernel : ndarray of shape (size_h, size_w)
        ``1 / (size_h * size_w)`` everywhere; the output is the mean of each window.

    Examples
    --------
    >>> from cnnkit import kernels
    >>> kernels.box(2)
    array([[0.25, 0.25],
           [0.25, 0.25]], dtype=float32)
    """
    dtype = _check_dtype(dtype)
    size_h, size_w = check_positive("size", size)
    return np.full((size_h, size_w), 1.0 / (size_h * size_w), dtype=dtype)


def laplacian_of_gaussian(size, sigma, *, dtype=DTYPE) -> np.ndarray:
    """Build a Laplacian-of-Gaussian (blob and edge) kernel whose weights sum to 0.

    Parameters
    ----------
    size : int or (int, int)
        Kernel height and width, each >= 1 (odd sizes keep it centred).
    sigma : float or (float, float)
        Standard deviation of the Gaussian, in pixels, > 0.
    dtype : floating dtype, default float32
        Computed in float64, returned in this dtype.

    Returns
    -------
    kernel : ndarray of shape (size_h, size_w)
        Negative at the centre: it responds most (negatively) to a bright blob of
        radius about ``sigma * sqrt(2)`` and positively to a dark one; 0 on flat regions.

    Notes
    -----
    The sampled ``(x^2 / s_w^4 + y^2 / s_h^4 - 1 / s_h^2 - 1 / s_w^2) g(x, y)`` with
    ``g`` the :func:`gaussian` weights, then shifted by its mean so a flat input gives 0.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit import kernels
    >>> k = kernels.laplacian_of_gaussian(7, 1.0, dtype=np.float64)
    >>> abs(float(k.sum())) < 1e-12, bool(k[3, 3] == k.min())
    (True, True)
    """
    dtype = _check_dtype(dtype)
    size_h, size_w = check_positive("size", size)
    sigma_h, sigma_w = _check_sigma(sigma)
    y = _offsets(size_h)[:, None]  # (size_h, 1)
    x = _offsets(size_w)[None, :]  # (1, size_w)
    g = _gaussian((size_h, size_w), (sigma_h, sigma_w))  # (size_h, size_w)
    kernel = (y**2 / sigma_h**4 + x**2 / sigma_w**4 - 1 / sigma_h**2 - 1 / sigma_w**2) * g
    return (kernel - kernel.mean()).astype(dtype)
