"""ONNX import and export against independent oracles: PyTorch models exported with
``torch.onnx.export`` (same logits, gradients equal to torch autograd), onnxruntime
running cnnkit's exports, and bad files refused clearly."""

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

import cnnkit.onnx
from cnnkit import nn, optim


def export_torch(model, shape, *, dynamic=True):
    """`model` as ONNX bytes, from PyTorch's legacy (offline) exporter."""
    buffer = io.BytesIO()
    axes = {"image": {0: "N"}, "logits": {0: "N"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        torch.onnx.export(
            model,
            torch.zeros(1, *shape),
            buffer,
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=17,
        )
    return buffer.getvalue()


def run_ort(payload, x):
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


class Block(torch.nn.Module):
    """A ResNet basic block."""

    def __init__(self, cin, cout, stride, norm=True):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=not norm)
        self.bn1 = torch.nn.BatchNorm2d(cout) if norm else torch.nn.Identity()
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1)
        self.down = torch.nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.conv2(torch.relu(self.bn1(self.conv1(x))))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet(torch.nn.Module):
    def __init__(self, norm=True, classes=4):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = torch.nn.Sequential(Block(8, 8, 1, norm), Block(8, 16, 2, norm))
        self.fc = torch.nn.Linear(16, classes)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(self.layer1(torch.relu(self.stem(x))), 3, 2, 1)
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        return self.fc(x.view(x.size(0), -1))


class Mixer(torch.nn.Module):
    """Inception-like concatenation, ShuffleNet's channel shuffle, and assorted layers."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 1)
        self.b = torch.nn.Conv2d(3, 4, 3, padding=1, dilation=1)
        self.c = torch.nn.Conv2d(3, 4, 5, padding=2, groups=1)
        self.depthwise = torch.nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.pool = torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.fc = torch.nn.Linear(12 * 4 * 4, 6)

    def forward(self, x):
        x = torch.cat(
            [self.a(x), torch.nn.functional.leaky_relu(self.b(x), 0.1), torch.sigmoid(self.c(x))], 1
        )
        n, c, h, w = x.shape
        x = x.view(n, 3, c // 3, h, w).transpose(1, 2).reshape(n, c, h, w)  # channel shuffle
        x = self.pool(torch.clamp(self.depthwise(x), -1.0, 1.0))
        x = torch.nn.functional.max_pool2d(x, 2, 2, ceil_mode=True)
        return torch.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


def torch_grads(model, x, grad):
    xt = torch.tensor(x, requires_grad=True)
    out = model(xt)
    out.backward(torch.from_numpy(grad))
    return (
        out.detach().numpy(),
        xt.grad.numpy(),
        {k: p.grad.numpy() for k, p in model.named_parameters()},
    )


@pytest.mark.slow
@pytest.mark.parametrize("make, shape", [(ResNet, (3, 16, 16)), (Mixer, (3, 13, 13))])
def test_torch_export_loads_with_same_logits_and_gradients(make, shape, rng):
    """A PyTorch export loads with the same logits (1e-4) and torch autograd's gradients."""
    torch.manual_seed(0)
    reference = make().eval()
    if isinstance(reference, ResNet):  # running statistics that are not the defaults
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    model = cnnkit.onnx.load(export_torch(reference, shape))
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    out = model(x)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    expected, grad_x, grads = torch_grads(reference, x, grad)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.backward(grad), grad_x, rtol=1e-4, atol=1e-5)
    # Weights the exporter keeps as they are (it folds batch norms into convolutions)
    # carry PyTorch's names, and torch's gradients.
    ours = dict(model.named_parameters())
    weights = dict(reference.named_parameters())
    shared = [
        key
        for key in grads
        if key in ours and np.array_equal(ours[key].data, weights[key].detach().numpy())
    ]
    assert "fc.weight" in shared and "stem.weight" in shared if make is ResNet else len(shared) >= 8
    for key in shared:
        np.testing.assert_allclose(ours[key].grad, grads[key], rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.slow
def test_pytorch_user_round_trip_fine_tune_and_onnxruntime(rng, tmp_path):
    """PyTorch residual CNN, trained a little, -> ONNX -> cnnkit -> fine-tuned as torch
    fine-tunes it (same losses and weights) -> ONNX -> onnxruntime (same logits)."""
    torch.manual_seed(1)
    reference = ResNet(norm=False)
    images = rng.standard_normal((24, 3, 16, 16)).astype(np.float32)
    labels = rng.integers(0, 4, 24)
    opt = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    for _ in range(3):  # a few steps of training in PyTorch
        opt.zero_grad()
        torch.nn.functional.cross_entropy(
            reference(torch.from_numpy(images[:8])), torch.from_numpy(labels[:8])
        ).backward()
        opt.step()
    model = cnnkit.onnx.load(export_torch(reference.eval(), (3, 16, 16)))
    np.testing.assert_allclose(
        model(images), reference(torch.from_numpy(images)).detach().numpy(), rtol=1e-4, atol=1e-5
    )
    # One epoch of fine-tuning in both, batch by batch.
    names = [k for k, _ in model.named_parameters()]
    torch_params = dict(reference.named_parameters())
    assert sorted(names) == sorted(torch_params)
    ours = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    theirs = torch.optim.SGD([torch_params[k] for k in names], lr=0.05, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    model.train()
    reference.train()
    for start in range(0, 24, 8):
        x, y = images[start : start + 8], labels[start : start + 8]
        ours.zero_grad()
        loss = criterion(model(x), y)
        model.backward(criterion.backward())
        ours.step()
        theirs.zero_grad()
        torch_loss = torch.nn.functional.cross_entropy(
            reference(torch.from_numpy(x)), torch.from_numpy(y)
        )
        torch_loss.backward()
        theirs.step()
        assert loss == pytest.approx(torch_loss.item(), rel=1e-4)
    for key, parameter in model.named_parameters():
        np.testing.assert_allclose(
            parameter.data, torch_params[key].detach().numpy(), rtol=1e-3, atol=1e-5
        )
    model.eval()
    cnnkit.onnx.save(model, tmp_path / "tuned.onnx", (3, 16, 16))
    payload = (tmp_path / "tuned.onnx").read_bytes()
    logits = model(images)
    np.testing.assert_allclose(run_ort(payload, images), logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        logits, reference.eval()(torch.from_numpy(images)).detach().numpy(), rtol=1e-3, atol=1e-4
    )


def cnnkit_models():
    """Models built in cnnkit, covering every layer and container the exporter knows."""
    return {
        "sequential": (
            nn.Sequential(
                nn.Conv2d(3, 6, 3, padding=1, rng=0),
                nn.BatchNorm2d(6),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, 1, ceil_mode=True),
                nn.Conv2d(6, 6, 3, padding="same", padding_mode="reflect", rng=1),
                nn.LeakyReLU(0.2),
                nn.AvgPool2d(2, count_include_pad=False, padding=1),
                nn.Dropout(0.3),
                nn.Flatten(),
                nn.Linear(6 * 5 * 5, 5, rng=2),
                nn.Softmax(axis=1),
            ),
            (3, 15, 15),
        ),
        "branches": (
            nn.Sequential(
                nn.Conv2d(1, 8, 3, padding=1, rng=0),
                nn.Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, rng=1), nn.Sigmoid())),
                nn.Residual(
                    nn.Conv2d(8, 12, 3, stride=2, padding=1, rng=2),
                    nn.Conv2d(8, 12, 1, stride=2, rng=3),
                ),
                nn.Concat(
                    nn.Conv2d(12, 4, 1, rng=4),
                    nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(12, 4, 1, rng=5)),
                ),
                nn.ChannelShuffle(2),
                nn.LocalResponseNorm(3, alpha=0.01),
                nn.GlobalAvgPool2d(),
                nn.Linear(8, 3, rng=6),
            ),
            (1, 12, 12),
        ),
        "graph": (
            nn.Graph(
                [
                    ("stem", nn.Conv2d(3, 4, 3, padding=1, rng=0), "input"),
                    (
                        "scale",
                        nn.Constant(
                            np.linspace(0.5, 1.5, 4, dtype=np.float32).reshape(1, 4, 1, 1),
                            trainable=True,
                        ),
                        [],
                    ),
                    ("scaled", nn.Mul(), ["stem", "scale"]),
                    ("diff", nn.Sub(), ["scaled", "stem"]),
                    ("ratio", nn.Div(), ["diff", "scale"]),
                    ("sum", nn.Add(), ["ratio", "stem"]),
                    ("cat", nn.Cat(axis=1), ["sum", "stem"]),
                    ("nhwc", nn.Transpose((0, 2, 3, 1)), "cat"),
                    ("flat", nn.Reshape((-1, 8 * 6 * 6)), "nhwc"),
                ]
            ),
            (3, 6, 6),
        ),
    }


@pytest.mark.parametrize("name", list(cnnkit_models()))
def test_cnnkit_model_exports_and_runs_in_onnxruntime(name, tmp_path, rng):
    """cnnkit.onnx.save writes opset 17 that onnx.checker passes; onnxruntime gives the
    same outputs for any batch size; loading the file back gives the same model."""
    model, shape = cnnkit_models()[name]
    model.eval()
    path = cnnkit.onnx.save(model, tmp_path / f"{name}.onnx", shape, classes=["a", "b"])
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    for batch in (1, 3):
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        expected = model(x)
        np.testing.assert_allclose(
            run_ort(proto.SerializeToString(), x), expected, rtol=1e-4, atol=1e-5
        )
        again, metadata = cnnkit.onnx.load_model(path)
        np.testing.assert_allclose(again(x), expected, rtol=1e-5, atol=1e-6)
    assert metadata == {"classes": ["a", "b"], "input_shape": list(shape)}


def test_export_keeps_the_training_mode_and_a_pending_backward(rng, tmp_path):
    """Exporting runs the model in eval mode, then restores its mode and its last forward."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.BatchNorm2d(2), nn.ReLU())
    x = rng.standard_normal((2, 1, 5, 5)).astype(np.float32)
    grad = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    model(x)
    expected = model.backward(grad)
    model.zero_grad()
    model(x)
    cnnkit.onnx.save(model, tmp_path / "m.onnx", (1, 5, 5))
    assert model.training and model[1].training
    np.testing.assert_allclose(model.backward(grad), expected)


def test_metadata_round_trip_through_onnx(tmp_path):
    """Class names and the image preparation survive cnnkit -> ONNX -> cnnkit."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2, rng=0))
    metadata = {"background": "white", "crop": True}
    path = cnnkit.onnx.save(
        model, tmp_path / "m.onnx", (3, 2, 2), classes=["cat", "dog"], metadata=metadata
    )
    _, loaded = cnnkit.onnx.load_model(path)
    assert loaded == {
        "background": "white",
        "crop": True,
        "classes": ["cat", "dog"],
        "input_shape": [3, 2, 2],
    }


def test_save_refuses_bad_arguments(tmp_path):
    """input_shape, the folder and the model type are checked before any work."""
    model = nn.Sequential(nn.ReLU())
    with pytest.raises(ValueError, match="input_shape"):
        cnnkit.onnx.save(model, tmp_path / "m.onnx", (3, 4))
    with pytest.raises(FileNotFoundError, match="folder"):
        cnnkit.onnx.save(model, tmp_path / "missing" / "m.onnx", (1, 2, 2))

    class Mine(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="Mine"):
        cnnkit.onnx.save(Mine(), tmp_path / "m.onnx", (1, 2, 2))
    assert not (tmp_path / "m.onnx").exists()


# -- bad files ---------------------------------------------------------------------
def small_model(op="Relu", inputs=(("x", [1, 2, 4, 4]),), **attributes):
    graph = helper.make_graph(
        [helper.make_node(op, [name for name, _ in inputs], ["y"], **attributes)],
        "small",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims) for name, dims in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, inputs[0][1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_truncated_file_is_a_clear_error(tmp_path):
    payload = export_torch(ResNet().eval(), (3, 16, 16))
    path = tmp_path / "cut.onnx"
    path.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ValueError, match=r"cut\.onnx"):
        cnnkit.onnx.load(path)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        b"not a model at all",
        b"PK\x03\x04" + b"\x00" * 40,
        b"",
    ],
)
def test_wrong_magic_is_a_clear_error(payload):
    """Other formats, text and empty input are refused as not ONNX."""
    with pytest.raises(ValueError, match="ONNX"):
        cnnkit.onnx.load(payload)


def test_unsupported_operator_names_op_node_and_supported_set():
    model = small_model("Elu")
    model.graph.node[0].name = "my_elu"
    with pytest.raises(ValueError, match=r"'Elu'.*'my_elu'.*Conv") as info:
        cnnkit.onnx.load(model.SerializeToString())
    assert "MaxPool" in str(info.value)


def test_multiple_inputs_are_refused():
    model = small_model("Add", inputs=(("a", [1, 2]), ("b", [1, 2])))
    with pytest.raises(ValueError, match=r"2 inputs \['a', 'b'\]"):
        cnnkit.onnx.load(model.SerializeToString())


def test_dynamic_image_sizes_are_refused_but_a_dynamic_batch_is_not():
    dynamic = small_model(inputs=(("x", ["N", 3, "H", "W"]),))
    with pytest.raises(ValueError, match="dynamic shape"):
        cnnkit.onnx.load(dynamic.SerializeToString())
    batch = cnnkit.onnx.load(small_model(inputs=(("x", ["N", 3, 2, 2]),)).SerializeToString())
    assert batch(-np.ones((5, 3, 2, 2), np.float32)).shape == (5, 3, 2, 2)


def test_missing_file_and_wrong_source_type(tmp_path):
    with pytest.raises(FileNotFoundError):
        cnnkit.onnx.load(tmp_path / "none.onnx")
    with pytest.raises(TypeError, match="path or bytes"):
        cnnkit.onnx.load(42)


@pytest.mark.slow
def test_import_cnnkit_does_not_import_onnx():
    """`import cnnkit` needs NumPy only; onnx is imported when ONNX is used."""
    import subprocess
    import sys

    code = "import sys, cnnkit, cnnkit.nn; print('onnx' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )


def test_loaded_onnx_model_round_trips_through_npz(tmp_path, rng):
    """A loaded ONNX graph (ONNX operator modules included) saves to .npz and back."""
    import cnnkit as ck

    torch.manual_seed(0)
    model = cnnkit.onnx.load(export_torch(Mixer().eval(), (3, 13, 13)))
    path = ck.save(model, tmp_path / "mixer.npz", input_shape=(3, 13, 13))
    again = ck.load(path)
    x = rng.standard_normal((2, 3, 13, 13)).astype(np.float32)
    np.testing.assert_array_equal(again(x), model(x))
    assert [type(m).__name__ for _, m, _ in again.nodes()] == [
        type(m).__name__ for _, m, _ in model.nodes()
    ]
