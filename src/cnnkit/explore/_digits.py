"""The small digits model `cnnkit explore` opens when no model is given.

It ships as ``digits.npz`` beside this module (so ``cnnkit explore`` works offline in a
second on a fresh machine); :func:`build_digits_model` is how that file was made:
``python -m cnnkit.explore._digits src/cnnkit/explore/digits.npz``.
"""

from __future__ import annotations

import os
import sys

#: Output channels of the two blocks: few enough that every map fits on one screen.
CHANNELS = (8, 16)

#: Training settings of the shipped model.
EPOCHS = 30
SEED = 0

#: The shipped model file.
PATH = os.path.join(os.path.dirname(__file__), "digits.npz")


def build_digits_model(path: str) -> float:
    """Train the explorer's digits model on the bundled digits, save it; return test accuracy."""
    import numpy as np

    from cnnkit import data
    from cnnkit._random import manual_seed
    from cnnkit.models import simple_cnn
    from cnnkit.serialization import save
    from cnnkit.train import TrainConfig, evaluate, fit

    train, test = data.load_digits(seed=SEED)
    manual_seed(SEED)
    model = simple_cnn(10, 1, CHANNELS, rng=np.random.default_rng(SEED))
    config = TrainConfig(epochs=EPOCHS, seed=SEED)
    fit(model, train, config, val=test, progress=False)
    _, accuracy = evaluate(model, test)
    # fit recorded the classes, the input shape and the digits' preparation, as for
    # ``cnnkit train``; "data" tells the explorer to offer the bundled digits as samples.
    save(model, path, metadata={"data": "digits", "test_accuracy": accuracy})
    return accuracy


if __name__ == "__main__":
    print(f"test accuracy {build_digits_model(sys.argv[1]):.2%}")
