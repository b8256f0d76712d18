"""cnnkit against the libraries people would otherwise pick, timed in the same run.

    pip install -e '.[bench]'        # numpy-ml, MyGrad, tinygrad (PyTorch: the test extra)
    python benchmarks/peers.py [--quick]

Two tasks, each in every library:
- conv2d forward + backward, (8, 16, 32, 32) -> 32 channels, 3x3, padding 1;
- one training step (forward, cross-entropy, backward, SGD update) of the same small CNN
  on a (32, 1, 28, 28) batch: conv 1->16, ReLU, max pool 2, conv 16->32, ReLU, max pool 14 (global),
  flatten, linear 32->10.

Before a peer is timed, it is run on the same inputs and weights as cnnkit and its
results (outputs and gradients; the loss and every updated weight) are compared with
cnnkit's: the table compares equal work. Each ratio is cnnkit's time / the peer's (below
1 means cnnkit is faster), the median of rounds that alternate the two sides (the paired
harness of run.py). float32 everywhere except numpy-ml, which computes in float64
whatever it is given. PyTorch runs on 2 threads; tinygrad on its CPU backend (it compiles
its kernels with clang: `apt-get install clang`), with TinyJit as its docs train.
"""

from __future__ import annotations

import argparse
import collections
import collections.abc
import os
import sys
import warnings

os.environ.setdefault("DEV", "CPU")  # tinygrad: the CPU backend, never a GPU or a download

import numpy as np
from run import paired  # the same paired, alternating harness as benchmarks/run.py

CONV = dict(n=8, c=16, h=32, w=32, o=32, k=3, padding=1)
BATCH, SIZE, CLASSES, LR = 32, 28, 10, 0.1
CHANNELS = (16, 32)


def _conv_inputs(rng):
    x = rng.standard_normal((CONV["n"], CONV["c"], CONV["h"], CONV["w"]), dtype=np.float32)
    w = rng.standard_normal((CONV["o"], CONV["c"], CONV["k"], CONV["k"]), dtype=np.float32)
    w *= np.float32(1 / np.sqrt(w[0].size))
    b = rng.standard_normal(CONV["o"], dtype=np.float32)
    g = rng.standard_normal((CONV["n"], CONV["o"], CONV["h"], CONV["w"]), dtype=np.float32)
    return x, w, b, g


def _cnn_inputs(rng):
    """A batch, its labels and the initial weights (PyTorch's layout) shared by everyone."""
    weights = {k: v.copy() for k, v in _cnnkit_model().state_dict().items()}
    x = rng.random((BATCH, 1, SIZE, SIZE), dtype=np.float32)
    y = rng.integers(0, CLASSES, BATCH)
    return x, y, weights


# -- cnnkit ---------------------------------------------------------------------------------


def _cnnkit_model():
    from cnnkit import nn

    c1, c2 = CHANNELS
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1, rng=0),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1, rng=1),
        nn.ReLU(),
        nn.MaxPool2d(14),
        nn.Flatten(),
        nn.Linear(c2, CLASSES, rng=2),
    )


def cnnkit_conv(x, w, b, g):
    import cnnkit.functional as F

    def run():
        out, cache = F.conv2d_forward(x, w, b, padding=CONV["padding"])
        return (out, *F.conv2d_backward(g, cache))

    return run


def cnnkit_step(x, y, weights):
    from cnnkit import nn, optim

    model = _cnnkit_model()
    model.load_state_dict(weights)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=LR)

    def step():
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        model.backward(criterion.backward())
        optimizer.step()
        return float(loss)

    return step, lambda: model.state_dict()


# -- PyTorch --------------------------------------------------------------------------------


def torch_conv(x, w, b, g):
    import torch

    xt, wt, bt = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
    gt = torch.from_numpy(g)

    def run():
        for t in (xt, wt, bt):
            t.grad = None
        out = torch.nn.functional.conv2d(xt, wt, bt, padding=CONV["padding"])
        out.backward(gt)
        return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()

    return run


def torch_step(x, y, weights):
    import torch

    c1, c2 = CHANNELS
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, c1, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(c1, c2, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(14),
        torch.nn.Flatten(),
        torch.nn.Linear(c2, CLASSES),
    )
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, lambda: {k: v.detach().numpy() for k, v in model.state_dict().items()}


# -- MyGrad ---------------------------------------------------------------------------------


def mygrad_conv(x, w, b, g):
    import mygrad as mg
    from mygrad.nnet.layers import conv_nd

    p = CONV["padding"]
    xt, wt, bt = mg.tensor(x), mg.tensor(w), mg.tensor(b)

    def run():
        out = conv_nd(xt, wt, stride=1, padding=(p, p)) + bt[None, :, None, None]
        out.backward(g)
        return out.data, xt.grad, wt.grad, bt.grad

    return run


def mygrad_step(x, y, weights):
    import mygrad as mg
    from mygrad.nnet.activations import relu
    from mygrad.nnet.layers import conv_nd, max_pool
    from mygrad.nnet.losses import softmax_crossentropy

    params = {k: mg.tensor(v.copy()) for k, v in weights.items()}

    def conv(z, name):
        bias = params[f"{name}.bias"]
        return (
            conv_nd(z, params[f"{name}.weight"], stride=1, padding=(1, 1))
            + bias[None, :, None, None]
        )

    def step():
        z = max_pool(relu(conv(x, "0")), (2, 2), (2, 2))
        z = max_pool(relu(conv(z, "3")), (14, 14), (14, 14))
        logits = z.reshape(len(x), -1) @ params["7.weight"].T + params["7.bias"]
        loss = softmax_crossentropy(logits, y)
        loss.backward()
        for p in params.values():
            p.data -= LR * p.grad  # MyGrad has no optimisers: its docs update .data by hand
        return float(loss.item())

    return step, lambda: {k: v.data for k, v in params.items()}


# -- tinygrad -------------------------------------------------------------------------------


def tinygrad_conv(x, w, b, g):
    from tinygrad import Tensor, TinyJit

    xt, wt, bt = (Tensor(a.copy()).realize() for a in (x, w, b))
    gt = Tensor(g).realize()

    @TinyJit
    def run_jit():
        out = xt.conv2d(wt, bt, padding=CONV["padding"])
        grads = out.gradient(xt, wt, bt, gradient=gt)
        return [t.realize() for t in (out, *grads)]

    def run():
        return [t.numpy() for t in run_jit()]

    return run


def tinygrad_step(x, y, weights):
    from tinygrad import Context, Tensor, TinyJit, nn

    c1, c2 = CHANNELS

    class Net:
        def __init__(self):
            self.conv1, self.conv2 = nn.Conv2d(1, c1, 3, padding=1), nn.Conv2d(c1, c2, 3, padding=1)
            self.fc = nn.Linear(c2, CLASSES)

        def __call__(self, z):
            z = self.conv1(z).relu().max_pool2d(2)
            z = self.conv2(z).relu().max_pool2d(14)
            return self.fc(z.flatten(1))

    net = Net()
    layers = {"0": net.conv1, "3": net.conv2, "7": net.fc}
    for key, value in weights.items():
        layer, kind = key.split(".")
        setattr(layers[layer], kind, Tensor(value.copy()).realize())
    params = nn.state.get_parameters(net)
    optimizer = nn.optim.SGD(params, lr=LR)
    xt, yt = Tensor(x).realize(), Tensor(y.astype(np.int32)).realize()

    @TinyJit
    def step_jit():
        with Context(TRAINING=1):  # tinygrad's optimisers refuse to step outside training
            optimizer.zero_grad()
            loss = net(xt).sparse_categorical_crossentropy(yt).backward()
            return loss.realize(*optimizer.schedule_step())  # the loss before the update

    def state():
        return {
            f"{name}.{kind}": getattr(layer, kind).numpy()
            for name, layer in layers.items()
            for kind in ("weight", "bias")
        }

    return (lambda: float(step_jit().item())), state


# -- numpy-ml -------------------------------------------------------------------------------


def _import_numpy_ml():
    """numpy-ml 0.1.2 (its last release, 2020) imports names Python 3.10 moved to
    collections.abc; alias them, and silence its warnings about optional extras."""
    for name in ("Hashable", "Iterable", "Mapping", "MutableMapping", "Sequence", "Callable"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import numpy_ml.neural_nets as numpy_ml_nets
    return numpy_ml_nets


def numpy_ml_conv(x, w, b, g):
    layers = _import_numpy_ml().layers
    conv = layers.Conv2D(CONV["o"], (CONV["k"], CONV["k"]), pad=CONV["padding"], stride=1)
    x_nhwc, g_nhwc = x.transpose(0, 2, 3, 1), g.transpose(0, 2, 3, 1)  # numpy-ml is NHWC
    conv.forward(x_nhwc)  # initialises its parameters; then cnnkit's weights go in
    conv.parameters["W"] = w.transpose(2, 3, 1, 0)  # (kH, kW, C, O)
    conv.parameters["b"] = b.reshape(1, 1, 1, -1)
    conv.flush_gradients()  # forget the first input: each forward appends one to backward's work

    def run():
        out = conv.forward(x_nhwc)
        dx = conv.backward(g_nhwc)
        grads = dict(conv.gradients)  # flush_gradients() replaces the dict's values
        conv.flush_gradients()
        return (
            out.transpose(0, 3, 1, 2),
            dx.transpose(0, 3, 1, 2),
            grads["W"].transpose(3, 2, 0, 1),
            grads["b"].reshape(-1),
        )

    return run


def numpy_ml_step(x, y, weights):
    nets = _import_numpy_ml()
    layers, optimizers, losses = nets.layers, nets.optimizers, nets.losses
    c1, c2 = CHANNELS

    def sgd():
        return optimizers.SGD(lr=LR)

    net = [
        layers.Conv2D(c1, (3, 3), pad=1, act_fn="ReLU", optimizer=sgd()),
        layers.Pool2D((2, 2), stride=2, mode="max", optimizer=sgd()),
        layers.Conv2D(c2, (3, 3), pad=1, act_fn="ReLU", optimizer=sgd()),
        layers.Pool2D((14, 14), stride=14, mode="max", optimizer=sgd()),
        layers.Flatten(optimizer=sgd()),  # (N, 1, 1, C) -> (N, C): the same order as NCHW
        layers.FullyConnected(CLASSES, optimizer=sgd()),
    ]
    x_nhwc = x.transpose(0, 2, 3, 1)
    z = x_nhwc
    for layer in net:
        z = layer.forward(z)  # initialises the parameters; then the shared weights go in
    for index, name in ((0, "0"), (2, "3")):
        net[index].parameters["W"] = (
            weights[f"{name}.weight"].transpose(2, 3, 1, 0).astype(np.float64)
        )
        net[index].parameters["b"] = weights[f"{name}.bias"].reshape(1, 1, 1, -1).astype(np.float64)
    net[5].parameters["W"] = weights["7.weight"].T.astype(np.float64)
    net[5].parameters["b"] = weights["7.bias"].reshape(1, -1).astype(np.float64)
    for layer in net:
        layer.flush_gradients()
    onehot = np.eye(CLASSES)[y]
    softmax, cross_entropy = layers.Softmax(), losses.CrossEntropy()

    def step():
        z = x_nhwc
        for layer in net:
            z = layer.forward(z)
        probs = softmax.forward(z, retain_derived=False)
        loss = cross_entropy.loss(onehot, probs) / len(x)  # numpy-ml sums over the batch
        grad = cross_entropy.grad(onehot, probs) / len(x)  # d(mean loss)/d(logits)
        for layer in reversed(net):
            grad = layer.backward(grad)
        for layer in net:
            if layer.parameters:
                layer.update()
            else:
                layer.flush_gradients()
        return float(loss)

    def state():
        return {
            "0.weight": net[0].parameters["W"].transpose(3, 2, 0, 1),
            "0.bias": net[0].parameters["b"].ravel(),
            "3.weight": net[2].parameters["W"].transpose(3, 2, 0, 1),
            "3.bias": net[2].parameters["b"].ravel(),
            "7.weight": net[5].parameters["W"].T,
            "7.bias": net[5].parameters["b"].ravel(),
        }

    return step, state


PEERS = {
    "PyTorch": (torch_conv, torch_step),
    "tinygrad": (tinygrad_conv, tinygrad_step),
    "MyGrad": (mygrad_conv, mygrad_step),
    "numpy-ml": (numpy_ml_conv, numpy_ml_step),
}


def _check_equal(what, peer, mine, theirs, rtol=2e-4, atol=2e-4):
    """Stop with a message unless the peer computed cnnkit's numbers (dicts name -> array)."""
    for name in mine:
        a, b = mine[name], theirs[name]
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol):
            error = np.max(np.abs(a - b)) if a.shape == b.shape else f"shape {b.shape} vs {a.shape}"
            sys.exit(
                f"{peer} does not compute cnnkit's {what} ({name}: max difference {error}); not timed"
            )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "peers",
        nargs="*",
        metavar="PEER",
        help=f"peers to compare with (default all: {', '.join(PEERS)})",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.peers) - set(PEERS))
    if unknown:
        parser.error(f"unknown peer {unknown[0]!r}; choose from {', '.join(PEERS)}")
    import torch

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    conv_inputs = _conv_inputs(rng)
    cnn_inputs = _cnn_inputs(rng)
    mine_conv = cnnkit_conv(*conv_inputs)
    expected_conv = mine_conv()
    mine_step, mine_state = cnnkit_step(*cnn_inputs)
    expected_loss = mine_step()
    expected_state = {k: v.copy() for k, v in mine_state().items()}

    print(f"{'task':<44} {'peer':<9} {'ratio':>7}  {'cnnkit':>9} {'peer':>9}")
    for peer in args.peers or list(PEERS):
        make_conv, make_step = PEERS[peer]
        theirs = make_conv(*conv_inputs)
        for _ in range(3):  # the third call: tinygrad's TinyJit replays from then on
            results = theirs()
        names = ("out", "dx", "dw", "db")
        _check_equal(
            "conv2d output and gradients",
            peer,
            dict(zip(names, expected_conv)),
            dict(zip(names, results)),
        )
        ratio, t_mine, t_peer = paired(mine_conv, theirs)
        name = "conv2d fwd+bwd (8,16,32,32)->32 k3 p1"
        print(
            f"{name:<44} {peer:<9} {ratio:6.2f}x  {t_mine * 1e3:9.2f} {t_peer * 1e3:9.2f} ms",
            flush=True,
        )

        their_step, their_state = make_step(*cnn_inputs)
        loss = their_step()
        _check_equal(
            "training step",
            peer,
            {"loss": expected_loss, **expected_state},
            {"loss": loss, **their_state()},
        )
        # Timing continues from here on both sides: the same work, from slightly different weights.
        ratio, t_mine, t_peer = paired(mine_step, their_step)
        name = "CNN training step, batch (32,1,28,28)"
        print(
            f"{name:<44} {peer:<9} {ratio:6.2f}x  {t_mine * 1e3:9.2f} {t_peer * 1e3:9.2f} ms",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
