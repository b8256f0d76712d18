"""Train the default digits CNN with cnnkit and with PyTorch on the same run; compare.

Both frameworks start from the same initial weights (cnnkit's, copied into the PyTorch
twin), see the same batches in the same order (``cnnkit.data.batches`` seeded as
``cnnkit.train.fit`` seeds it) and use the same optimiser settings (the defaults of
``cnnkit train``: Adam, learning rate 3e-3, batch 64, 10 epochs), in float32 on the CPU.
Epochs alternate between the two, so load on the machine slows both alike; the times
are of training only (evaluation excluded). The script prints each framework's test
accuracy per epoch and at the end, and the median epoch time of cnnkit divided by
PyTorch's.

Usage::

    python benchmarks/train_digits.py [--epochs 10] [--seed 0] [--threads N]

Needs torch (a test dependency). Timings depend on the machine and its load; the
numbers are a report, not a test.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def torch_twin(model):
    """The PyTorch Sequential equal to a cnnkit ``simple_cnn``, with its weights."""
    import torch

    from cnnkit import nn

    layers = []
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            layers.append(
                torch.nn.Conv2d(
                    layer.in_channels,
                    layer.out_channels,
                    layer.kernel_size,
                    padding=layer.padding,
                    bias=layer.bias is not None,
                )
            )
        elif isinstance(layer, nn.BatchNorm2d):
            layers.append(torch.nn.BatchNorm2d(layer.num_features, layer.eps, layer.momentum))
        elif isinstance(layer, nn.ReLU):
            layers.append(torch.nn.ReLU())
        elif isinstance(layer, nn.MaxPool2d):
            layers.append(torch.nn.MaxPool2d(layer.kernel_size))
        elif isinstance(layer, nn.GlobalAvgPool2d):  # followed by Flatten in simple_cnn
            layers.append(torch.nn.AdaptiveAvgPool2d(1))
        elif isinstance(layer, nn.Flatten):
            layers.append(torch.nn.Flatten())
        elif isinstance(layer, nn.Linear):
            layers.append(torch.nn.Linear(layer.in_features, layer.out_features))
        else:
            raise TypeError(f"no PyTorch twin for {type(layer).__name__}")
    twin = torch.nn.Sequential(*layers)
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    return twin


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="PyTorch intra-op threads (NumPy's BLAS uses its own default)",
    )
    args = parser.parse_args(argv)

    import torch

    from cnnkit import nn
    from cnnkit._random import manual_seed
    from cnnkit.data import batches, load_digits
    from cnnkit.models import digits_cnn
    from cnnkit.train import TrainConfig, evaluate, make_optimizer

    torch.set_num_threads(args.threads)
    train, test = load_digits()
    config = TrainConfig(epochs=args.epochs, seed=args.seed)
    manual_seed(config.seed)
    model = digits_cnn(rng=np.random.default_rng(config.seed))  # as `cnnkit train` builds it
    twin = torch_twin(model)
    print(
        f"digits: {len(train)} train / {len(test)} test images; {config}; "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads"
    )

    # Epochs alternate between the two, so a busy machine slows both alike. The cnnkit
    # epoch is fit()'s loop (tests/test_train.py checks fit against this loop).
    criterion = nn.CrossEntropyLoss()
    optimizer = make_optimizer(model.parameters(), config)
    reference_optimizer = torch.optim.Adam(twin.parameters(), lr=config.lr)
    ours_order, theirs_order = (np.random.default_rng(config.seed) for _ in range(2))
    x_test, y_test = torch.from_numpy(test.x), test.y
    ours, theirs = [], []
    for _ in range(config.epochs):
        start = time.perf_counter()
        model.train()
        for x, y in batches(train, config.batch_size, rng=ours_order):
            optimizer.zero_grad()
            criterion(model(x), y)
            model.backward(criterion.backward())
            optimizer.step()
        elapsed = time.perf_counter() - start
        ours.append((elapsed, evaluate(model, test)[1]))

        start = time.perf_counter()
        twin.train()
        for x, y in batches(train, config.batch_size, rng=theirs_order):
            reference_optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
            loss.backward()
            reference_optimizer.step()
        elapsed = time.perf_counter() - start
        twin.eval()
        with torch.no_grad():
            accuracy = float((twin(x_test).argmax(1).numpy() == y_test).mean())
        theirs.append((elapsed, accuracy))

    print(f"{'epoch':>5}  {'cnnkit s':>9}  {'torch s':>8}  {'cnnkit acc':>10}  {'torch acc':>9}")
    for epoch, ((t1, a1), (t2, a2)) in enumerate(zip(ours, theirs, strict=True), start=1):
        print(f"{epoch:>5}  {t1:>9.3f}  {t2:>8.3f}  {a1:>10.2%}  {a2:>9.2%}")
    # The median: the first epoch includes warm-up (allocations, torch's lazy init).
    ours_time = float(np.median([t for t, _ in ours]))
    theirs_time = float(np.median([t for t, _ in theirs]))
    print(f"final test accuracy: cnnkit {ours[-1][1]:.2%}, PyTorch {theirs[-1][1]:.2%}")
    print(
        f"median epoch time: cnnkit {ours_time:.3f} s, PyTorch {theirs_time:.3f} s, "
        f"ratio cnnkit/PyTorch {ours_time / theirs_time:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
