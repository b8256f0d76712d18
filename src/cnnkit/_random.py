"""The default random generator behind parameter initialisation and dropout."""

from __future__ import annotations

import numbers

import numpy as np

_default = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator used when no `rng` is given; return it.

    Parameters
    ----------
    seed : int
        Seed of the new default generator (:func:`numpy.random.default_rng`).

    Returns
    -------
    numpy.random.Generator
        The new default generator: weight initialisation, dropout and shuffling draw
        from it whenever their `rng` argument is None.

    Examples
    --------
    >>> import cnnkit as ck
    >>> a = ck.manual_seed(0).random()
    >>> b = ck.manual_seed(0).random()
    >>> a == b
    True
    """
    global _default
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r}")
    _default = np.random.default_rng(int(seed))
    return _default


def get_rng(rng=None) -> np.random.Generator:
    """`rng` as a Generator: a Generator as is, an int as a seed, None for the default."""
    if rng is None:
        return _default
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {rng!r}")
