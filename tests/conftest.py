"""Shared test setup: a headless matplotlib, PyTorch as a required reference, and the
`slow` mark on doctests that train (`pytest -m "not slow"` is the quick loop)."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def rng():
    """A seeded generator, fresh for each test."""
    return np.random.default_rng(12345)


# Doctests cannot carry a decorator: these train a model and are marked here.
SLOW_DOCTESTS = {"cnnkit.train.fit"}


def pytest_collection_modifyitems(items):
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.name in SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request, monkeypatch):
    """Run with 1 and with 2 threads, on blocks small enough that small inputs split."""
    import cnnkit as ck
    from cnnkit import _threads

    before = ck.get_num_threads()
    monkeypatch.setattr(_threads, "BLOCK_BYTES", 4096)
    ck.set_num_threads(request.param)
    yield request.param
    ck.set_num_threads(before)
