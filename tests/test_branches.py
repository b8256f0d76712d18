"""Branches (Residual, Concat, ChannelShuffle), local response normalisation and the
Graph module, against PyTorch's forward and autograd and float64 finite differences."""

import numpy as np
import pytest
import torch

from cnnkit import functional as F
from cnnkit import nn


def t(x):
    return torch.tensor(np.asarray(x), requires_grad=True)


def load_torch_weights(model, torch_model):
    model.load_state_dict({k: v.detach().numpy() for k, v in torch_model.state_dict().items()})


# -- local response normalisation -----------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("shape", [(2, 6, 3, 4), (2, 9, 5), (1, 3, 2, 2, 2)])
def test_local_response_norm_matches_torch(size, shape, rng):
    """F.local_response_norm and its backward equal torch's LocalResponseNorm."""
    x = rng.standard_normal(shape).astype(np.float32) * 3
    grad = rng.standard_normal(shape).astype(np.float32)
    layer = nn.LocalResponseNorm(size, alpha=0.3, beta=0.8, k=1.5)
    expected = torch.nn.LocalResponseNorm(size, alpha=0.3, beta=0.8, k=1.5)(xt := t(x))
    expected.backward(torch.from_numpy(grad))
    out = layer(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.backward(grad), xt.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_local_response_norm_gradient_finite_differences(rng):
    """The float64 LRN gradient agrees with central differences, for an even window."""
    x = rng.standard_normal((1, 5, 2, 2))
    u = rng.standard_normal(x.shape)
    v = rng.standard_normal(x.shape)
    _, cache = F.local_response_norm_forward(x, 4, alpha=0.5, beta=0.6, k=1.2)
    eps = 1e-6
    numeric = (
        F.local_response_norm(x + eps * u, 4, 0.5, 0.6, 1.2)
        - F.local_response_norm(x - eps * u, 4, 0.5, 0.6, 1.2)
    ) / (2 * eps)
    analytic = F.local_response_norm_backward(v, cache)
    np.testing.assert_allclose(np.sum(numeric * v), np.sum(analytic * u), rtol=1e-7)


def test_local_response_norm_refuses_bad_arguments():
    """size must be a positive int; x needs (N, C, ...)."""
    with pytest.raises(ValueError, match="size"):
        nn.LocalResponseNorm(0)
    with pytest.raises(ValueError, match="shape"):
        F.local_response_norm(np.ones((3, 4)), 3)


# -- torch models with branches --------------------------------------------------------
class TorchBlock(torch.nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            torch.nn.BatchNorm2d(cout),
            torch.nn.ReLU(),
            torch.nn.Conv2d(cout, cout, 3, 1, 1),
        )
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = torch.nn.Conv2d(cin, cout, 1, stride)

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


class TorchConcat(torch.nn.ModuleList):
    def __init__(self, *branches):
        super().__init__(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self], 1)


def torch_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        TorchBlock(8, 8, 1),
        TorchBlock(8, 12, 2),
        TorchConcat(
            torch.nn.Conv2d(12, 4, 1),
            torch.nn.Sequential(torch.nn.Conv2d(12, 4, 3, padding=1), torch.nn.ReLU()),
        ),
        torch.nn.ChannelShuffle(2),
        torch.nn.LocalResponseNorm(3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
    )


def block(cin, cout, stride):
    body = nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, 1, 1),
    )
    shortcut = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None
    return nn.Residual(body, shortcut)


def cnnkit_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        block(8, 8, 1),
        block(8, 12, 2),
        nn.Concat(nn.Conv2d(12, 4, 1), nn.Sequential(nn.Conv2d(12, 4, 3, padding=1), nn.ReLU())),
        nn.ChannelShuffle(2),
        nn.LocalResponseNorm(3),
        nn.GlobalAvgPool2d(),
        nn.Flatten(),
        nn.Linear(8, 5),
    )


def compare_with_torch(model, reference, x, rng):
    """Same output and the same input and parameter gradients as torch autograd."""
    grad = rng.standard_normal((x.shape[0], 5)).astype(np.float32)
    xt = t(x)
    expected = reference(xt)
    expected.backward(torch.from_numpy(grad))
    out = model(x)
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.backward(grad), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    grads = {k: p.grad for k, p in model.named_parameters()}
    torch_grads = {k: p.grad.numpy() for k, p in reference.named_parameters()}
    assert set(grads) == set(torch_grads)
    for key, value in torch_grads.items():
        np.testing.assert_allclose(grads[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("training", [True, False])
def test_branchy_sequential_matches_torch(training, rng):
    """Residual, Concat, ChannelShuffle and LRN in one model: same keys, logits and gradients."""
    reference, model = torch_net(), cnnkit_net()
    assert list(model.state_dict()) == list(reference.state_dict())
    load_torch_weights(model, reference)
    reference.train(training)
    model.train(training)
    compare_with_torch(
        model, reference, rng.standard_normal((3, 3, 10, 10)).astype(np.float32), rng
    )


def graph_net():
    """cnnkit_net written as a Graph, with a value (stem) feeding three nodes."""
    b1, b2 = block(8, 8, 1), block(8, 12, 2)
    return nn.Graph(
        [
            (
                "head",
                nn.Sequential(nn.LocalResponseNorm(3), nn.GlobalAvgPool2d(), nn.Linear(8, 5)),
                "shuffle",
            ),
            ("0", nn.Conv2d(3, 8, 3, padding=1), "input"),
            ("body1", b1.body, "0"),
            ("sum1", nn.Add(), ["body1", "0"]),
            ("body2", b2.body, "sum1"),
            ("short2", b2.shortcut, "sum1"),
            ("sum2", nn.Add(), ["body2", "short2"]),
            ("left", nn.Conv2d(12, 4, 1), "sum2"),
            ("right", nn.Sequential(nn.Conv2d(12, 4, 3, padding=1), nn.ReLU()), "sum2"),
            ("cat", nn.Cat(axis=1), ["left", "right"]),
            ("shuffle", nn.ChannelShuffle(2), "cat"),
        ],
        output="head",
    )


def test_graph_matches_torch_and_runs_in_topological_order(rng):
    """A Graph given out of order runs topologically; fan-out gradients add up as torch's."""
    reference, model = torch_net(), graph_net()
    assert [name for name, _, _ in model.nodes()][:3] == ["0", "body1", "sum1"]
    mapping = dict(
        zip(
            list(model.state_dict()),
            [
                "0.weight",
                "0.bias",
                *[
                    f"1.body.{k}"
                    for k in (
                        "0.weight",
                        "1.weight",
                        "1.bias",
                        "1.running_mean",
                        "1.running_var",
                        "1.num_batches_tracked",
                        "3.weight",
                        "3.bias",
                    )
                ],
                *[
                    f"2.body.{k}"
                    for k in (
                        "0.weight",
                        "1.weight",
                        "1.bias",
                        "1.running_mean",
                        "1.running_var",
                        "1.num_batches_tracked",
                        "3.weight",
                        "3.bias",
                    )
                ],
                "2.shortcut.weight",
                "2.shortcut.bias",
                "3.0.weight",
                "3.0.bias",
                "3.1.0.weight",
                "3.1.0.bias",
                "8.weight",
                "8.bias",
            ],
        )
    )
    torch_state = {k: v.detach().numpy() for k, v in reference.state_dict().items()}
    model.load_state_dict({ours: torch_state[theirs] for ours, theirs in mapping.items()})
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    grad = rng.standard_normal((2, 5)).astype(np.float32)
    xt = t(x)
    (expected := reference(xt)).backward(torch.from_numpy(grad))
    np.testing.assert_allclose(model(x), expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.backward(grad), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    torch_grads = dict(reference.named_parameters())
    for ours, parameter in model.named_parameters():
        np.testing.assert_allclose(
            parameter.grad,
            torch_grads[mapping[ours]].grad.numpy(),
            rtol=1e-4,
            atol=1e-5,
            err_msg=ours,
        )


def test_graph_binary_ops_and_shapes_match_torch(rng):
    """Sub, Mul, Div with broadcasting, Reshape and Transpose: values and gradients as torch's."""
    graph = nn.Graph(
        [
            (
                "scale",
                nn.Constant(rng.uniform(1, 2, (1, 3, 1, 1)).astype(np.float32), trainable=True),
                [],
            ),
            ("mul", nn.Mul(), ["input", "scale"]),
            ("sub", nn.Sub(), ["mul", "input"]),
            ("div", nn.Div(), ["sub", "scale"]),
            ("square", nn.Mul(), ["div", "div"]),
            ("t", nn.Transpose((0, 2, 3, 1)), "square"),
            ("flat", nn.Reshape((2, -1)), "t"),
        ]
    )
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    scale = graph.scale.value.data
    grad = rng.standard_normal((2, 48)).astype(np.float32)
    xt, st = t(x), t(scale)
    y = ((xt * st - xt) / st) ** 2
    (expected := y.permute(0, 2, 3, 1).reshape(2, -1)).backward(torch.from_numpy(grad))
    np.testing.assert_allclose(graph(x), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(graph.backward(grad), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(graph.scale.value.grad, st.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_tied_weights_through_shared_parameters_sum_like_torch(rng):
    """Two modules sharing one Parameter get torch's summed weight gradient."""
    first = nn.Linear(4, 4, rng=0)
    second = nn.Linear(4, 4, rng=1)
    second.weight = first.weight
    model = nn.Sequential(first, nn.ReLU(), second)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    grad = rng.standard_normal((3, 4)).astype(np.float32)
    w, b1, b2 = (t(a) for a in (first.weight.data, first.bias.data, second.bias.data))
    y = torch.relu(t(x) @ w.T + b1) @ w.T + b2
    y.backward(torch.from_numpy(grad))
    model(x)
    model.backward(grad)
    assert len(model.parameters()) == 3
    np.testing.assert_allclose(first.weight.grad, w.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: nn.Sequential(m, nn.ReLU(), m),
        lambda m: nn.Residual(m, m),
        lambda m: nn.Concat(nn.Sequential(m), m),
        lambda m: nn.Graph([("a", m, "input"), ("b", m, "a")]),
    ],
)
def test_a_module_used_twice_is_refused_at_construction(make):
    """Reusing one module object would overwrite its cache: refused with a clear error."""
    with pytest.raises(ValueError, match="used twice"):
        make(nn.Conv2d(2, 2, 1, rng=0))


def test_graph_refuses_cycles_unknown_names_and_duplicates():
    """Bad graphs are refused when built, each with a message naming the culprit."""
    with pytest.raises(ValueError, match="cycle"):
        nn.Graph([("a", nn.ReLU(), "b"), ("b", nn.ReLU(), "a")])
    with pytest.raises(ValueError, match="'nowhere'"):
        nn.Graph([("a", nn.ReLU(), "nowhere")])
    with pytest.raises(ValueError, match="twice"):
        nn.Graph([("a", nn.ReLU(), "input"), ("a", nn.Sigmoid(), "input")])
    with pytest.raises(ValueError, match="output"):
        nn.Graph([("a", nn.ReLU(), "input")], output="b")


def test_graph_node_named_like_a_method_keeps_the_method(rng):
    """A node may be called 'eval' or 'forward' without hiding the Module's methods."""
    graph = nn.Graph([("forward", nn.ReLU(), "input"), ("eval", nn.Sigmoid(), "forward")])
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(graph.eval()(x), 1 / (1 + np.exp(-np.maximum(x, 0))), rtol=1e-6)


def test_residual_with_mismatched_shapes_is_a_clear_error():
    """A body that changes the shape needs a shortcut; the message says so."""
    with pytest.raises(ValueError, match="shortcut"):
        nn.Residual(nn.Conv2d(2, 3, 1, rng=0))(np.ones((1, 2, 2, 2), np.float32))


def test_channel_shuffle_matches_torch(rng):
    """ChannelShuffle forward equals torch's and backward is its inverse permutation."""
    x = rng.standard_normal((2, 12, 3, 3)).astype(np.float32)
    layer = nn.ChannelShuffle(3)
    np.testing.assert_array_equal(layer(x), torch.nn.ChannelShuffle(3)(torch.from_numpy(x)).numpy())
    np.testing.assert_array_equal(layer.backward(layer(x)), x)
    with pytest.raises(ValueError, match="divisible"):
        layer(np.ones((1, 4, 2, 2), np.float32))


@pytest.mark.parametrize("make", [cnnkit_net, graph_net], ids=["branches", "graph"])
def test_branch_and_graph_models_round_trip_through_npz(make, tmp_path, rng):
    """ck.save / ck.load rebuild Residual, Concat, ChannelShuffle, LRN and Graph models."""
    import cnnkit as ck

    model = make().eval()
    path = ck.save(model, tmp_path / "m.npz", input_shape=(3, 9, 9))
    again = ck.load(path)
    assert type(again) is type(model) and list(again.state_dict()) == list(model.state_dict())
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    np.testing.assert_array_equal(again(x), model(x))
