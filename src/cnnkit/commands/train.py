"""``cnnkit train``: train a CNN on the digits or a folder of images and save it as ``.npz``.

Prints the metrics of every epoch and the final test accuracy, and writes the training
curves (``MODEL_history.png``) and the test confusion matrix (``MODEL_confusion.png``)
next to the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnkit.commands._common import (
    UsageError,
    add_force,
    add_quiet,
    check_new,
    check_not_input,
    check_writable,
    int_or_pair,
    nonnegative_int,
    output_file,
    positive_int,
)

HELP = "train a CNN on the 8x8 digits or a folder of images and save it as MODEL.npz"

EPILOG = """\
--data digits (the default) trains on scikit-learn's 8x8 handwritten digits (shipped
with scikit-learn, nothing is downloaded). --data DIR trains on your own pictures: DIR
holds one sub-folder per class (DIR/cat/*.jpg, DIR/dog/*.jpg, ...); every picture is
resized to --size. In both cases a stratified --test-size share of each class (20 % by
default, always the same images) is held out as the test set, evaluated after every
epoch and at the end; its accuracy is printed last.

The model: blocks of 3x3 convolution, batch normalisation, ReLU and 2x2 max pooling
(--channels), global average pooling and a linear layer. Besides MODEL.npz (load it with
cnnkit.load), the run writes MODEL_history.png and MODEL_confusion.png. An existing
MODEL.npz is only replaced with --force. Files in DIR that are not readable images
(Thumbs.db, notes.txt, an empty .png) are skipped with a warning that names them.

example: cnnkit train -o digits.npz && cnnkit predict digits.npz my_seven.png"""

#: The train/test split never changes with --seed, so test accuracies stay comparable.
SPLIT_SEED = 0

#: The largest --size: a side beyond this would only make training slower than useful.
MAX_SIZE = 1024


def _channels(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated positive ints."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected channels separated by commas (like 32,64), got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"channels must be >= 1, got {text!r}")
    return values


def _finite_float(minimum: float, *, strict: bool):
    """An argparse type: a finite number above `minimum` (or at least it, unless `strict`)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        below = not value > minimum if strict else not value >= minimum
        if below or value == float("inf"):
            bound = f"{'>' if strict else '>='} {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text!r}")
        return value

    parse.__name__ = "number"  # argparse names the type in its error message
    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnkit train``."""
    from cnnkit.models import DIGITS_CHANNELS
    from cnnkit.train import DEFAULT_BATCH_SIZE, MIN_STEPS, TrainConfig

    defaults = TrainConfig()
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--data",
        default="digits",
        metavar="digits|DIR",
        help="'digits' or a folder with one sub-folder of images per class "
        "(default digits; a folder named digits: ./digits)",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="MODEL.npz",
        type=output_file((".npz",)),
        help="the model file to write",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=defaults.epochs,
        help=f"passes over the training images (default {defaults.epochs})",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help=f"images per optimiser step (default {DEFAULT_BATCH_SIZE}; for "
        "a folder with few images, smaller, so that each epoch takes "
        f"at least {MIN_STEPS} steps)",
    )
    parser.add_argument(
        "--lr",
        type=_finite_float(0, strict=True),
        default=defaults.lr,
        help=f"learning rate (default {defaults.lr:g})",
    )
    parser.add_argument(
        "--optimizer",
        choices=("adam", "sgd"),
        default=defaults.optimizer,
        help=f"adam, or sgd with momentum {defaults.momentum:g} (default {defaults.optimizer})",
    )
    parser.add_argument(
        "--weight-decay",
        type=_finite_float(0, strict=False),
        default=defaults.weight_decay,
        help=f"L2 penalty (default {defaults.weight_decay:g})",
    )
    parser.add_argument(
        "--seed",
        type=nonnegative_int,
        default=defaults.seed,
        help="seeds the initial weights and the batch order; the same seed "
        f"gives the same model (default {defaults.seed})",
    )
    parser.add_argument(
        "--channels",
        type=_channels,
        default=DIGITS_CHANNELS,
        metavar="C1,C2,...",
        help="output channels of each convolution block (default "
        f"{','.join(map(str, DIGITS_CHANNELS))}; a folder's model gets "
        "at most one block per halving of --size)",
    )
    parser.add_argument(
        "--size",
        type=int_or_pair(1, MAX_SIZE),
        default=None,
        metavar="H,W",
        help="with --data DIR: resize every picture to this (default 32)",
    )
    parser.add_argument(
        "--gray",
        action="store_true",
        help="with --data DIR: train on one luminance channel instead of RGB",
    )
    parser.add_argument(
        "--test-size",
        type=_fraction,
        default=0.2,
        metavar="FRACTION",
        help="fraction of each class held out for testing (default 0.2)",
    )
    add_force(parser, "MODEL.npz")
    add_quiet(parser)


def sidecar_paths(model_path) -> tuple[Path, Path]:
    """The training-curve and confusion-matrix pictures written next to `model_path`."""
    model_path = Path(model_path)
    stem = model_path.stem
    return (
        model_path.with_name(f"{stem}_history.png"),
        model_path.with_name(f"{stem}_confusion.png"),
    )


def _load_data(args):
    """(train, test, metadata) for ``--data``."""
    from cnnkit import data

    if args.data == "digits":  # a folder named digits is ./digits
        train, test = data.load_digits(test_size=args.test_size, seed=SPLIT_SEED)
        return train, test, {"data": "digits"}
    size = args.size or 32
    everything = data.load_image_folder(args.data, size=size, gray=args.gray)
    train, test = data.split(everything, test_size=args.test_size, seed=SPLIT_SEED)
    return train, test, {"data": str(args.data)}


def _check_arguments(args) -> None:
    """Usage errors argparse cannot see alone, before any work."""
    if args.data == "digits":
        for option, given in (("--size", args.size is not None), ("--gray", args.gray)):
            if given:
                raise UsageError(
                    option, "applies only to --data DIR; the digits are always 8x8 and gray"
                )
    elif not Path(args.data).exists():
        raise UsageError(
            "--data", f"must be 'digits' or an image folder; {args.data!r} does not exist"
        )


def _check_outputs(outputs, args) -> None:
    """Refuse outputs that are inputs or would land inside the training folder."""
    for output in outputs:
        check_not_input(output, [args.data] if Path(args.data).is_file() else [])
        if args.data != "digits" and Path(args.data).is_dir():
            folder = Path(args.data).resolve()
            if folder in Path(output).resolve().parents:
                raise ValueError(
                    f"refusing to write {output} inside the training folder {args.data} "
                    "(it would be read as a training image next time); choose another path"
                )


def _print_epoch(total: int):
    def callback(epoch, logs):
        print(
            f"epoch {epoch:>{len(str(total))}}/{total}  loss {logs['loss']:.4f}  "
            f"accuracy {logs['accuracy']:.2%}  test loss {logs['val_loss']:.4f}  "
            f"test accuracy {logs['val_accuracy']:.2%}  ({logs['time']:.1f} s)",
            flush=True,
        )

    return callback


def run(args: argparse.Namespace) -> int:
    """Train, evaluate, save the model and its pictures; return the exit status."""
    import numpy as np

    from cnnkit import plot
    from cnnkit.commands._common import save_figure
    from cnnkit.models import simple_cnn
    from cnnkit.serialization import save
    from cnnkit.train import (
        TrainConfig,
        confusion_matrix,
        evaluate,
        fit,
        predict,
        seed_generators,
    )

    _check_arguments(args)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        seed=args.seed,
    )
    history_png, confusion_png = sidecar_paths(args.output)
    _check_outputs([args.output, history_png, confusion_png], args)
    check_new([args.output], "-o/--output", args.force)
    for path in (args.output, history_png, confusion_png):
        check_writable(path, "-o/--output")
    train, test, meta = _load_data(args)
    c, h, w = train.input_shape
    model = simple_cnn(
        train.num_classes,
        c,
        args.channels,
        input_size=(h, w),
        rng=seed_generators(config.seed).weights,
    )
    if not args.quiet:
        n_params = sum(p.data.size for p in model.parameters())
        print(
            f"training on {len(train)} images {train.input_shape} of {train.num_classes} "
            f"classes ({meta['data']}), testing on {len(test)}; {n_params} parameters; "
            f"{config.optimizer} lr {config.lr:g}, batch {config.batch_size_for(len(train))}, "
            f"{config.epochs} epochs, seed {config.seed}",
            flush=True,
        )
    history = fit(
        model,
        train,
        config,
        val=test,
        callbacks=() if args.quiet else (_print_epoch(config.epochs),),
        progress=False if args.quiet else None,
    )
    loss, accuracy = evaluate(model, test)
    predictions = predict(model, test)
    matrix = confusion_matrix(test.y, predictions, test.num_classes)
    correct = int(np.trace(matrix))

    history_fig = plot.show_history(history, val_label="test")
    history_fig.suptitle(f"training on {meta['data']}: final test accuracy {accuracy:.2%}")
    confusion_fig = plot.show_confusion_matrix(matrix, labels=test.classes)
    metadata = {
        **meta,
        "train_config": {
            **{k: getattr(config, k) for k in config.__dataclass_fields__},
            "batch_size": config.batch_size_for(len(train)),
        },
        "test_accuracy": accuracy,
        "test_loss": loss,
        "history": history,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    save(model, args.output, metadata=metadata)  # fit recorded classes, shape, preparation
    save_figure(history_fig, history_png)
    save_figure(confusion_fig, confusion_png)
    print(f"test accuracy: {accuracy:.2%} ({correct}/{len(test)} images), test loss {loss:.4f}")
    if not args.quiet:
        print(f"wrote {args.output}, {history_png}, {confusion_png}")
    return 0
