"""Shared test setup: a headless matplotlib, and PyTorch as a required reference."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest
import torch  # noqa: F401  - a required test dependency; its absence must fail, not skip

torch.set_num_threads(2)


@pytest.fixture
def rng():
    """A seeded generator, fresh for each test."""
    return np.random.default_rng(12345)
