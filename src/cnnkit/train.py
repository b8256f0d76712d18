"""Train and evaluate a classifier: :class:`TrainConfig`, :func:`fit`, :func:`evaluate`.

``fit(model, train, config)`` runs mini-batch training with cross-entropy loss and Adam
or SGD, and returns the history of loss and accuracy per epoch. Training is
deterministic: the same initial weights, data and ``config.seed`` give bit-for-bit the
same weights. Every random draw of a training run comes from one
``numpy.random.SeedSequence(config.seed)`` (see :func:`seed_generators`): the initial
weights (when the model is built with ``seed_generators(seed).weights``), the batch order
and the dropout masks. cnnkit's default generator is left alone.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from cnnkit._validation import check_choice, check_positive_int, check_real, to_int
from cnnkit.data import Dataset, batches
from cnnkit.nn.module import forward_only

__all__ = [
    "TrainConfig",
    "seed_generators",
    "SeedGenerators",
    "fit",
    "evaluate",
    "predict_proba",
    "predict",
    "confusion_matrix",
    "make_optimizer",
    "EVAL_BATCH_SIZE",
    "DEFAULT_BATCH_SIZE",
    "MIN_STEPS",
]

#: Images per forward pass in :func:`evaluate` and :func:`predict_proba`.
EVAL_BATCH_SIZE = 256

OPTIMIZERS = ("adam", "sgd")

#: Images per optimiser step when :class:`TrainConfig` is given no ``batch_size``.
DEFAULT_BATCH_SIZE = 64

#: Without a ``batch_size``, a small training set gets batches small enough for at least
#: this many steps per epoch (and at least 2 images, for batch normalisation).
MIN_STEPS = 8


class SeedGenerators(NamedTuple):
    """Independent generators of one training run, spawned from one seed.

    Parameters
    ----------
    weights : numpy.random.Generator
        Draws the initial weights of a model built for the run.
    order : numpy.random.Generator
        Orders the batches of every epoch.
    dropout : numpy.random.Generator
        Draws the dropout masks.

    Examples
    --------
    >>> from cnnkit.train import seed_generators
    >>> list(seed_generators(0)._fields)
    ['weights', 'order', 'dropout']
    """

    weights: np.random.Generator
    order: np.random.Generator
    dropout: np.random.Generator


def seed_generators(seed: int) -> SeedGenerators:
    """The generators of a training run: initial weights, batch order and dropout masks.

    They are spawned from ``numpy.random.SeedSequence(seed)``, so they are independent
    streams and the same seed always gives the same three. :func:`fit` draws the batch
    order and the dropout masks from theirs; build the model with ``.weights`` (as
    ``cnnkit train`` does) and one seed decides the whole run.

    Parameters
    ----------
    seed : int
        A seed >= 0 (``TrainConfig.seed``).

    Returns
    -------
    SeedGenerators
        The named generators ``weights``, ``order`` and ``dropout``.

    Examples
    --------
    >>> from cnnkit.models import simple_cnn
    >>> from cnnkit.train import seed_generators
    >>> a = simple_cnn(2, rng=seed_generators(0).weights).state_dict()["0.weight"]
    >>> b = simple_cnn(2, rng=seed_generators(0).weights).state_dict()["0.weight"]
    >>> bool((a == b).all()), int(seed_generators(0).order.integers(100))
    (True, 66)
    """
    seed = to_int("seed", seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return SeedGenerators(
        *(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    )


@dataclass
class TrainConfig:
    """How to train: the defaults are those of ``cnnkit train``.

    Parameters
    ----------
    epochs : int, default 10
        Passes over the training data.
    batch_size : int or None, default None
        Images per optimiser step. None: 64, or for a small training set fewer, so that
        an epoch takes at least 8 steps (see :meth:`batch_size_for`).
    optimizer : {"adam", "sgd"}, default "adam"
        The :mod:`cnnkit.optim` optimiser to train with.
    lr : float, default 3e-3
        Learning rate.
    weight_decay : float, default 0.0
        L2 penalty added to the gradients (PyTorch's ``weight_decay``).
    momentum : float, default 0.9
        SGD momentum (ignored by Adam).
    seed : int, default 0
        Seeds the batch order and the dropout masks of :func:`fit` (and the initial
        weights of a model built with :func:`seed_generators`).

    Examples
    --------
    >>> from cnnkit.train import TrainConfig
    >>> TrainConfig(epochs=2, lr=0.01).optimizer
    'adam'
    >>> TrainConfig(batch_size=0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be >= 1, got 0
    """

    epochs: int = 10
    batch_size: int | None = None
    optimizer: str = "adam"
    lr: float = 3e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if name == "batch_size" and self.batch_size is None:
                continue
            setattr(self, name, check_positive_int(name, getattr(self, name)))
        self.seed = to_int("seed", self.seed)
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        self.optimizer = check_choice("optimizer", self.optimizer, OPTIMIZERS)
        self.lr = check_real("lr", self.lr, minimum=0.0, exclusive=True)
        self.weight_decay = check_real("weight_decay", self.weight_decay, minimum=0.0)
        self.momentum = check_real("momentum", self.momentum, minimum=0.0)
        if self.momentum >= 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")

    def batch_size_for(self, n_train: int) -> int:
        """The batch size for `n_train` training images: ``batch_size``, or the default.

        Examples
        --------
        >>> from cnnkit.train import TrainConfig
        >>> TrainConfig().batch_size_for(1437), TrainConfig().batch_size_for(100)
        (64, 12)
        >>> TrainConfig(batch_size=5).batch_size_for(100)
        5
        """
        if self.batch_size is not None:
            return self.batch_size
        return min(DEFAULT_BATCH_SIZE, max(2, int(n_train) // MIN_STEPS))


def make_optimizer(params, config: TrainConfig):
    """The :mod:`cnnkit.optim` optimiser that `config` describes, over `params`.

    Parameters
    ----------
    params : iterable of cnnkit.nn.Parameter
        The parameters to train (``model.parameters()``).
    config : TrainConfig
        Its `optimizer`, `lr`, `weight_decay` and `momentum` are used.

    Returns
    -------
    cnnkit.optim.Optimizer
        An :class:`~cnnkit.optim.Adam` or :class:`~cnnkit.optim.SGD`.

    Examples
    --------
    >>> from cnnkit import nn
    >>> from cnnkit.train import TrainConfig, make_optimizer
    >>> optimizer = make_optimizer(
    ...     nn.Linear(2, 1, rng=0).parameters(), TrainConfig(optimizer="sgd")
    ... )
    >>> type(optimizer).__name__, optimizer.momentum
    ('SGD', 0.9)
    """
    from cnnkit import optim

    if config.optimizer == "adam":
        return optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def _check_model(model) -> None:
    """Raise TypeError unless `model` looks like a cnnkit Module."""
    for attribute in ("forward", "backward", "parameters", "train", "eval"):
        if not callable(getattr(model, attribute, None)):
            raise TypeError(
                f"model must be a cnnkit.nn.Module, got {type(model).__name__} (no {attribute}())"
            )


def _check_data(name: str, data, *, allow_none: bool = False) -> None:
    """Raise TypeError unless `data` is a non-empty Dataset."""
    if data is None and allow_none:
        return
    if not isinstance(data, Dataset):
        raise TypeError(f"{name} must be a cnnkit.data.Dataset, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{name} must hold at least one sample, got 0")


def _progress_enabled(progress) -> bool:
    """`progress` as a bool; None means on when stderr is a terminal."""
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be a bool or None, got {progress!r}")
    return bool(progress)


def fit(
    model,
    train: Dataset,
    config: TrainConfig | None = None,
    val: Dataset | None = None,
    callbacks=(),
    *,
    progress=None,
) -> dict:
    """Train `model` on `train` with cross-entropy loss; return the history.

    Each epoch visits every training image once, in batches of
    ``config.batch_size_for(len(train))`` drawn in an order seeded by ``config.seed``
    (``cnnkit.data.batches`` with ``seed_generators(config.seed).order``, one permutation
    per epoch). Dropout layers built without their own `rng` draw their masks from
    ``seed_generators(config.seed).dropout`` during the fit. The model is in training
    mode during the epoch (batch statistics, dropout) and left in evaluation mode at the
    end.

    The model records what it was trained on in its ``metadata``: the class names, the
    input shape and how the images were prepared (``train.preprocessing``), so
    ``cnnkit.save(model, path)`` writes a file every ``cnnkit`` command can use.

    As in PyTorch, a batch-normalisation layer that sees a single value per channel (a
    last batch of one image reaching a 1x1 feature map) raises ValueError: pick another
    batch size.

    Parameters
    ----------
    model : cnnkit.nn.Module
        Maps ``(N, C, H, W)`` images to logits ``(N, K)``. Trained in place.
    train : Dataset
        The training images and labels.
    config : TrainConfig, optional
        Defaults to ``TrainConfig()``.
    val : Dataset, optional
        Evaluated after each epoch (in evaluation mode) for ``val_loss`` and
        ``val_accuracy``.
    callbacks : sequence of callables
        Each is called after every epoch as ``callback(epoch, logs)``: `epoch` counts from
        1, `logs` holds this epoch's ``loss``, ``accuracy`` (and ``val_loss``,
        ``val_accuracy``) and ``time``, its wall time in seconds (evaluation included).
    progress : bool or None, default None
        Show a tqdm progress bar with the running loss and accuracy; None shows it only
        when stderr is a terminal.

    Returns
    -------
    history : dict of str to list of float
        Per epoch: ``loss`` and ``accuracy`` (mean over the training batches, as trained)
        and, with `val`, ``val_loss`` and ``val_accuracy``.

    Examples
    --------
    >>> from cnnkit.data import load_digits
    >>> from cnnkit.models import digits_cnn
    >>> from cnnkit.train import TrainConfig, fit
    >>> train, test = load_digits()
    >>> model = digits_cnn(channels=(8,), rng=0)
    >>> history = fit(model, train[:256], TrainConfig(epochs=2), val=test[:64])
    >>> sorted(history), len(history["loss"])
    (['accuracy', 'loss', 'val_accuracy', 'val_loss'], 2)
    """
    from cnnkit import nn

    _check_model(model)
    _check_data("train", train)
    _check_data("val", val, allow_none=True)
    if config is None:
        config = TrainConfig()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if callable(callbacks):
        callbacks = (callbacks,)
    callbacks = tuple(callbacks)
    for callback in callbacks:
        if not callable(callback):
            raise TypeError(f"callbacks must be callables, got {callback!r}")
    show = _progress_enabled(progress)

    generators = seed_generators(config.seed)
    batch_size = config.batch_size_for(len(train))
    criterion = nn.CrossEntropyLoss()
    optimizer = make_optimizer(model.parameters(), config)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    if val is not None:
        history.update(val_loss=[], val_accuracy=[])
    n_batches = -(-len(train) // batch_size)
    with _dropout_drawing_from(model, generators.dropout):
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            model.train()
            total_loss, correct, seen = 0.0, 0, 0
            bar = _progress_bar(n_batches, f"epoch {epoch}/{config.epochs}", show)
            try:
                for x, y in batches(train, batch_size, shuffle=True, rng=generators.order):
                    optimizer.zero_grad()
                    logits = model(x)
                    loss = float(criterion(logits, y))
                    if not np.isfinite(loss):  # stop before the step spoils the weights
                        raise FloatingPointError(
                            f"the training loss became {loss} in epoch {epoch}; "
                            f"try a smaller learning rate than lr={config.lr}"
                        )
                    model.backward(criterion.backward())
                    optimizer.step()
                    total_loss += loss * len(y)
                    correct += int((np.argmax(logits, axis=1) == y).sum())
                    seen += len(y)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(
                            loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}"
                        )
            finally:
                if bar is not None:
                    bar.close()
            logs = {"loss": total_loss / seen, "accuracy": correct / seen}
            if val is not None:
                logs["val_loss"], logs["val_accuracy"] = evaluate(model, val)
            for key in history:
                history[key].append(logs[key])
            logs["time"] = time.perf_counter() - start
            for callback in callbacks:
                callback(epoch, dict(logs))
    model.eval()
    _record(model, train)
    return history


@contextlib.contextmanager
def _dropout_drawing_from(model, generator):
    """Dropout layers without a generator of their own draw from `generator` meanwhile."""
    from cnnkit import nn

    unseeded = [m for m in _modules(model) if isinstance(m, nn.Dropout) and m.rng is None]
    for layer in unseeded:
        layer.rng = generator
    try:
        yield
    finally:
        for layer in unseeded:
            layer.rng = None


def _modules(model):
    """Every module inside `model` (itself included), or just `model` for a duck type."""
    named = getattr(model, "named_modules", None)
    return [m for _, m in named()] if callable(named) else [model]


def _record(model, train: Dataset) -> None:
    """Note on `model` what it was trained on, for :func:`cnnkit.save`."""
    from cnnkit.preprocessing import preprocessing_metadata

    metadata = getattr(model, "metadata", None)
    if not isinstance(metadata, dict):
        return  # a duck-typed model keeps no metadata
    metadata.update(
        classes=list(train.classes),
        input_shape=list(train.input_shape),
        preprocessing=dict(train.preprocessing or preprocessing_metadata()),
    )


def _progress_bar(total: int, description: str, show: bool):
    """A tqdm bar over `total` batches, or None when hidden."""
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="batch", leave=False, file=sys.stderr)


def _logits(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits of `model` in evaluation mode, in batches; the mode is restored after. No
    backward follows these forwards: layers keep no caches for one."""
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        with forward_only():
            return np.concatenate(
                [np.asarray(model(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
            )  # (N, K)
    finally:
        model.train(was_training)


def evaluate(model, data: Dataset, *, batch_size: int = EVAL_BATCH_SIZE):
    """Mean cross-entropy loss and accuracy of `model` on `data`, in evaluation mode.

    No backward pass follows these forwards, so the model's convolutions keep nothing for
    one (see :func:`cnnkit.nn.module.forward_only`).

    Parameters
    ----------
    model : cnnkit.nn.Module
        Maps ``(N, C, H, W)`` images to logits ``(N, K)``; left in evaluation mode.
    data : Dataset
        The images and their labels.
    batch_size : int, default 256
        Images per forward pass (memory only; the result does not depend on it).

    Returns
    -------
    loss : float
        The mean cross-entropy over `data`.
    accuracy : float
        The fraction of images whose largest logit is their class.

    Examples
    --------
    >>> from cnnkit import nn
    >>> from cnnkit.data import load_digits
    >>> from cnnkit.train import evaluate
    >>> _, test = load_digits()
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10, rng=0))
    >>> model[1].weight.data[:] = 0  # every logit 0: uniform probabilities, class 0 predicted
    >>> model[1].bias.data[:] = 0
    >>> loss, accuracy = evaluate(model, test)
    >>> round(loss, 4), accuracy  # log(10), and the test set's share of zeros
    (2.3026, 0.1)
    """
    from cnnkit import functional as F

    _check_model(model)
    _check_data("data", data)
    batch_size = check_positive_int("batch_size", batch_size)
    logits = _logits(model, data.x, batch_size)
    loss = float(F.cross_entropy(logits, data.y))
    accuracy = float(np.mean(np.argmax(logits, axis=1) == data.y))
    return loss, accuracy


def _images(x) -> np.ndarray:
    """A Dataset's images or an image array as ``(N, C, H, W)``."""
    if isinstance(x, Dataset):
        return x.x
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy.ndarray or a Dataset, got {type(x).__name__}")
    if x.ndim == 3:
        return x[None]  # (1, C, H, W)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W) or (C, H, W), got shape {x.shape}")
    return x


def predict_proba(model, x, *, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """Class probabilities (softmax of the logits) in evaluation mode.

    No backward pass follows these forwards, so the model's convolutions keep nothing for
    one (see :func:`cnnkit.nn.module.forward_only`).

    Parameters
    ----------
    model : cnnkit.nn.Module
        Maps images to logits; left in evaluation mode.
    x : ndarray of shape (N, C, H, W) or (C, H, W), or a Dataset
        The images.
    batch_size : int, default 256
        Images per forward pass (memory only; the result does not depend on it).

    Returns
    -------
    ndarray of shape (N, K)
        Each row sums to 1 (a single image gives ``N = 1``).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.models import digits_cnn
    >>> from cnnkit.train import predict_proba
    >>> p = predict_proba(digits_cnn(rng=0), np.zeros((3, 1, 8, 8), np.float32))
    >>> p.shape, bool(np.allclose(p.sum(axis=1), 1))
    ((3, 10), True)
    """
    from cnnkit import functional as F

    _check_model(model)
    images = _images(x)
    batch_size = check_positive_int("batch_size", batch_size)
    return F.softmax(_logits(model, images, batch_size), axis=1)


def predict(model, x, *, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """The most probable class index of each image, ``(N,)`` int64.

    Parameters
    ----------
    model : cnnkit.nn.Module
        Maps images to logits; left in evaluation mode.
    x : ndarray of shape (N, C, H, W) or (C, H, W), or a Dataset
        The images.
    batch_size : int, default 256
        Images per forward pass (memory only; the result does not depend on it).

    Returns
    -------
    ndarray of int64, shape (N,)
        The index of each image's largest logit.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.models import digits_cnn
    >>> from cnnkit.train import predict
    >>> predict(digits_cnn(rng=0), np.zeros((2, 1, 8, 8), np.float32)).shape
    (2,)
    """
    return np.argmax(predict_proba(model, x, batch_size=batch_size), axis=1).astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts ``m[i, j]`` of images of class ``i`` predicted as class ``j``.

    Parameters
    ----------
    y_true : array_like of int, shape (N,)
        The true classes.
    y_pred : array_like of int, shape (N,)
        The predicted classes.
    num_classes : int
        The number of classes K.

    Returns
    -------
    ndarray of int64, shape (K, K)
        Rows are true classes, columns predicted ones; the diagonal counts the hits.

    Examples
    --------
    >>> from cnnkit.train import confusion_matrix
    >>> confusion_matrix([0, 1, 1], [0, 1, 0], 2)
    array([[1, 0],
           [1, 1]])
    """
    num_classes = to_int("num_classes", num_classes)
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-d of the same length, got shapes "
            f"{y_true.shape} and {y_pred.shape}"
        )
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} must hold class indices in [0, {num_classes - 1}]")
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix
