"""Ready-made CNNs built from :mod:`cnnkit.nn` layers.

:func:`digits_cnn` is the default model of ``cnnkit train``: blocks of
convolution, batch normalisation, ReLU and 2x2 max pooling, then global average pooling
and a linear classifier. :func:`simple_cnn` builds the same kind of network for any
number of input channels, classes and blocks. Both return a plain
:class:`cnnkit.nn.Sequential`, so the layers are indexed as in PyTorch and the
``state_dict`` keys match ``torch.nn.Sequential`` built the same way. The PyTorch
equivalent of ``simple_cnn(num_classes, in_channels, channels)``::

    layers, previous = [], in_channels
    for out in channels:
        layers += [
            torch.nn.Conv2d(previous, out, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(out),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        ]
        previous = out
    layers += [
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(previous, num_classes),
    ]
    twin = torch.nn.Sequential(*layers)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
"""

from __future__ import annotations

import numbers

from cnnkit._random import get_rng
from cnnkit._validation import check_positive, check_positive_int, to_int

__all__ = ["simple_cnn", "digits_cnn", "DIGITS_CHANNELS", "DIGITS_INPUT_SHAPE"]

#: Output channels of the blocks of :func:`digits_cnn`; three 2x2 pools take 8x8 to 1x1.
DIGITS_CHANNELS = (32, 64, 128)

#: The input of :func:`digits_cnn`: one channel of 8x8 pixels.
DIGITS_INPUT_SHAPE = (1, 8, 8)


def simple_cnn(
    num_classes: int,
    in_channels: int = 1,
    channels=(32, 64),
    *,
    kernel_size=3,
    input_size=None,
    rng=None,
):
    """Build ``[Conv2d - BatchNorm2d - ReLU - MaxPool2d] * len(channels)``, GAP, Linear.

    Parameters
    ----------
    num_classes : int
        Outputs of the final linear layer (the logits).
    in_channels : int, default 1
        Channels of the input images.
    channels : sequence of int, default (32, 64)
        Output channels of each block. Each block halves the height and width (2x2 max
        pooling, floor), so inputs need at least ``2 ** len(channels)`` rows and columns.
    kernel_size : int, default 3
        Odd kernel size of the convolutions; padding ``kernel_size // 2`` keeps the size.
    input_size : int or (int, int), optional
        The height and width of the input. When given, blocks that would pool it below
        1x1 are left out: at most ``floor(log2(min(H, W)))`` blocks (at least one), so
        the first channel counts fit any picture size.
    rng : numpy.random.Generator, int or None
        Draws the initial weights (PyTorch's initialisation); None uses cnnkit's default
        generator (see :func:`cnnkit.manual_seed`).

    Returns
    -------
    cnnkit.nn.Sequential
        Input ``(N, in_channels, H, W)``, output logits ``(N, num_classes)``. The
        convolutions have no bias (batch normalisation's shift replaces it).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.models import simple_cnn
    >>> model = simple_cnn(3, in_channels=3, channels=(4, 8), rng=0)
    >>> model(np.zeros((2, 3, 16, 16), np.float32)).shape
    (2, 3)
    >>> [type(layer).__name__ for layer in model][:5]
    ['Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d', 'Conv2d']
    >>> len(simple_cnn(2, channels=(4, 8, 16), input_size=5, rng=0))  # 5x5 allows 2 blocks
    11
    """
    from cnnkit import nn

    num_classes = check_positive_int("num_classes", num_classes)
    in_channels = check_positive_int("in_channels", in_channels)
    kernel_size = to_int("kernel_size", kernel_size)
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
    if isinstance(channels, (str, bytes)) or not hasattr(channels, "__len__") or not channels:
        raise ValueError(f"channels must be a non-empty sequence of ints, got {channels!r}")
    if not all(
        isinstance(c, numbers.Integral) and not isinstance(c, bool) and int(c) >= 1
        for c in channels
    ):
        raise ValueError(f"channels must hold ints >= 1, got {channels!r}")
    if input_size is not None:
        h, w = check_positive("input_size", input_size)
        channels = tuple(channels)[: max(1, min(h, w).bit_length() - 1)]
    rng = get_rng(rng)
    layers, previous = [], in_channels
    for out in channels:
        layers += [
            nn.Conv2d(
                previous, int(out), kernel_size, padding=kernel_size // 2, bias=False, rng=rng
            ),
            nn.BatchNorm2d(int(out)),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        previous = int(out)
    # Flatten is a no-op after GlobalAvgPool2d ((N, C) already), but keeps the layer
    # indices of PyTorch's AdaptiveAvgPool2d(1) + Flatten, so state_dict keys match.
    layers += [nn.GlobalAvgPool2d(), nn.Flatten(), nn.Linear(previous, num_classes, rng=rng)]
    return nn.Sequential(*layers)


def digits_cnn(num_classes: int = 10, *, in_channels: int = 1, channels=DIGITS_CHANNELS, rng=None):
    """The default CNN for scikit-learn's 8x8 digits (:func:`cnnkit.data.load_digits`).

    Three blocks of 3x3 convolution (32, 64, 128 channels), batch normalisation, ReLU and
    2x2 max pooling take ``(N, 1, 8, 8)`` to ``(N, 128, 1, 1)``; global average pooling
    and a linear layer give the logits: 94 186 parameters. Trained with
    ``cnnkit train`` (Adam, learning rate 3e-3, batch 64, 10 epochs) it classifies
    about 99 % of the held-out digits correctly.

    Parameters
    ----------
    num_classes : int, default 10
        Outputs of the final linear layer (the digits 0-9).
    in_channels : int, default 1
        Channels of the input images (1: gray).
    channels : sequence of int, default (32, 64, 128)
        Output channels of each conv-batchnorm-ReLU block.
    rng : numpy.random.Generator, int or None
        Draws the initial weights; None uses cnnkit's default generator.

    Returns
    -------
    cnnkit.nn.Sequential
        The same layers as :func:`simple_cnn` with these arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.models import digits_cnn
    >>> model = digits_cnn(rng=0)
    >>> model(np.zeros((5, 1, 8, 8), np.float32)).shape
    (5, 10)
    """
    return simple_cnn(num_classes, in_channels, channels, rng=rng)
