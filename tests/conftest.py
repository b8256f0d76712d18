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
