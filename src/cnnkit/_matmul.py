"""``np.matmul`` with floating-point warnings off, as in PyTorch's products.

NumPy reads the CPU's floating-point flags after a product and warns "invalid value
encountered in matmul" when one is set. Whether one is set depends on which thread did
the arithmetic (OpenBLAS's own threads' flags are never read) and, with some OpenBLAS
kernels, on padding lanes that never reach the result (numpy/numpy#24067, #13173). So
the same product of the same arrays could warn or not from one call to the next. The
products of cnnkit's layers go through :func:`matmul`, which silences invalid and overflow: an
inf or NaN in the input still gives inf or NaN in the output, as in PyTorch, without a
warning that depends on the thread count.
"""

from __future__ import annotations

import numpy as np

__all__ = ["matmul"]


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.matmul(a, b, out=out)`` without invalid or overflow warnings."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.matmul(a, b, out=out)
