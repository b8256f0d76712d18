"""``cnnkit features``: which tensor each picture shows, checked against the model's own slices."""

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import nn
from cnnkit.commands.features import conv_blocks, layer_outputs


@pytest.fixture(scope="module")
def model():
    """The digits CNN with non-trivial batch-norm statistics, in training mode."""
    model = ck.models.digits_cnn(channels=(4, 6), rng=0)
    for layer in model:
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean[:] = np.linspace(-0.2, 0.3, layer.running_mean.size)
            layer.running_var[:] = np.linspace(0.5, 2.0, layer.running_var.size)
    return model


def test_block_output_is_conv_batch_norm_relu(model, rng):
    """By default each conv's maps are its block's output: model[:3] and model[:7] on the input."""
    x = rng.random((1, 8, 8)).astype(np.float32)
    (first, _, maps1, what1), (second, _, maps2, what2) = conv_blocks(model, x)
    model.eval()
    np.testing.assert_array_equal(maps1, model[:3](x[None])[0])
    np.testing.assert_array_equal(maps2, model[:7](x[None])[0])
    assert (first, second) == ("0", "4")
    assert what1 == what2 == "Conv2d \u2192 BatchNorm2d \u2192 ReLU"
    assert (maps1 >= 0).all() and (maps1 == 0).any()


def test_conv_tensor_is_the_raw_convolution(model, rng):
    """--tensor conv shows the convolution's own output, negative values included."""
    x = rng.random((1, 8, 8)).astype(np.float32)
    blocks = conv_blocks(model, x, "conv")
    model.eval()
    np.testing.assert_array_equal(blocks[0][2], model[:1](x[None])[0])
    assert blocks[0][3] == "Conv2d" and (blocks[0][2] < 0).any()


class _Reversed(nn.Module):
    """Runs its two children in the opposite order to their registration."""

    def __init__(self, first, second):
        super().__init__()
        self.first, self.second = first, second

    def forward(self, x):
        return self.first(self.second(x))


def test_layer_outputs_follow_the_run_order_and_leave_the_model_as_it_was(rng):
    """Leaves are recorded in the order they run, not as registered; nothing stays patched."""
    model = nn.Sequential(_Reversed(nn.ReLU(), nn.Conv2d(1, 2, 3, padding=1)), nn.Flatten())
    model.train()
    x = rng.random((1, 1, 5, 5)).astype(np.float32)
    calls = layer_outputs(model, x)
    assert [type(m).__name__ for _, m, _ in calls] == ["Conv2d", "ReLU", "Flatten"]
    assert [name for name, _, _ in calls] == ["0.second", "0.first", "1"]
    assert model.training and all("forward" not in m.__dict__ for _, m in model.named_modules())
    np.testing.assert_array_equal(calls[-1][2], model(x))
