"""The explorer's JSON API against a real server in this process, checked against cnnkit's
own layers run one by one and against PyTorch autograd."""

import numpy as np
import pytest
import torch
from explore_models import CLASSES, INPUT_SHAPE, Client, png_bytes, torch_twin, varied_model

import cnnkit as ck
from cnnkit import nn
from cnnkit.explore import server as server_module
from cnnkit.explore.session import Session
from cnnkit.preprocessing import prepare_image
from cnnkit.train import predict_proba


@pytest.fixture
def picture(rng):
    return rng.uniform(0, 1, (20, 30, 3)).astype(np.float32)


@pytest.fixture
def model():
    return varied_model()


@pytest.fixture
def explorer(model):
    with ck.explore(model, open_browser=False, input_shape=INPUT_SHAPE, classes=CLASSES) as running:
        yield running


@pytest.fixture
def client(explorer):
    return Client(explorer.url)


def layer_outputs(model, x):
    """Each layer's output, by running the layers one after the other."""
    outputs = []
    for layer in model:
        x = layer(x)
        outputs.append(x)
    return outputs


def upload(client, picture, tmp_path):
    """POST a picture; return the response and the input cnnkit predict would prepare."""
    data = png_bytes(picture)
    path = tmp_path / "picture.png"
    path.write_bytes(data)
    prepared = prepare_image(ck.load_image(str(path)), INPUT_SHAPE)
    return client.post("/api/input", data), prepared


def test_url_is_local_with_a_token(explorer):
    """The address is 127.0.0.1 with a random token."""
    assert explorer.url.startswith("http://127.0.0.1:")
    assert len(explorer.url.partition("token=")[2]) >= 20


def test_model_lists_layers_in_forward_order(client, model):
    """/api/model: names as state_dict prefixes, types and output shapes."""
    info = client.get("/api/model")
    outputs = layer_outputs(model, np.zeros((1, *INPUT_SHAPE), np.float32))
    assert info["input_shape"] == list(INPUT_SHAPE)
    assert info["classes"] == CLASSES
    assert [layer["name"] for layer in info["layers"]] == [str(i) for i in range(len(model))]
    assert [layer["type"] for layer in info["layers"]] == [type(m).__name__ for m in model]
    assert [layer["output_shape"] for layer in info["layers"]] == [
        list(o.shape[1:]) for o in outputs
    ]


def test_upload_prepares_as_predict_and_gives_its_probabilities(client, model, picture, tmp_path):
    """POST /api/input: the input and probabilities equal predict's on the same file."""
    answer, prepared = upload(client, picture, tmp_path)
    assert answer["input_shape"] == list(INPUT_SHAPE)
    expected = predict_proba(model, prepared[None])[0]
    np.testing.assert_allclose(answer["probabilities"], expected, rtol=1e-5, atol=1e-7)
    shown = client.get("/api/input")
    assert shown["shape"] == list(INPUT_SHAPE)
    np.testing.assert_array_equal(np.array(shown["values"], np.float32), prepared)


def test_packed_input_equals_the_prepared_input(client, picture, tmp_path):
    """GET /api/prepared (the page's fast path) decodes to the prepared input."""
    import base64

    _, prepared = upload(client, picture, tmp_path)
    answer = client.get("/api/prepared")
    values = np.frombuffer(base64.b64decode(answer["data"]), "<f4").reshape(answer["shape"])
    np.testing.assert_array_equal(values, prepared)


def test_activations_equal_the_layers_run_one_by_one(client, model, picture, tmp_path):
    """GET /api/activation for every layer and channel equals cnnkit's forward pass."""
    _, prepared = upload(client, picture, tmp_path)
    outputs = layer_outputs(model, prepared[None])
    for index, out in enumerate(outputs):
        channels = range(out.shape[1]) if out.ndim == 4 else [0]
        for k in channels:
            answer = client.get(f"/api/activation?layer={index}&channel={k}")
            expected = out[0, k] if out.ndim == 4 else out[0]
            assert answer["shape"] == list(expected.shape)
            np.testing.assert_allclose(answer["values"], expected, rtol=1e-6, atol=1e-7)


def test_maps_route_packs_the_same_values(client, model):
    """GET /api/maps (the page's fast path) decodes to the same channels."""
    import base64

    outputs = layer_outputs(model, np.zeros((1, *INPUT_SHAPE), np.float32))
    answer = client.get("/api/maps?layer=4&start=2&count=3")
    values = np.frombuffer(base64.b64decode(answer["data"]), "<f4").reshape(answer["shape"])
    np.testing.assert_array_equal(values, outputs[4][0, 2:5])


@pytest.mark.parametrize("final_softmax", [False, True])
def test_saliency_equals_torch_autograd_of_the_logit(final_softmax, picture, tmp_path):
    """GET /api/saliency: d logit_K / d input, before any final softmax (PyTorch oracle)."""
    model = varied_model(final_softmax)
    twin = torch_twin(model)
    with ck.explore(model, open_browser=False, input_shape=INPUT_SHAPE) as running:
        client = Client(running.url)
        _, prepared = upload(client, picture, tmp_path)
        for k in (0, 3):
            answer = client.get(f"/api/saliency?class={k}")
            x = torch.tensor(prepared[None], dtype=torch.float64, requires_grad=True)
            logits = twin[:-1](x) if final_softmax else twin(x)
            logits[0, k].backward()
            assert answer["shape"] == list(INPUT_SHAPE)
            np.testing.assert_allclose(answer["values"], x.grad[0].numpy(), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("layer", [0, 2, 4, 6])
def test_gradcam_equals_a_direct_torch_computation(client, model, picture, tmp_path, layer):
    """GET /api/gradcam: relu(sum_k alpha_k A_k), alpha_k the mean gradient (PyTorch oracle)."""
    _, prepared = upload(client, picture, tmp_path)
    twin = torch_twin(model)
    x = torch.tensor(prepared[None], dtype=torch.float64)
    activations = twin[: layer + 1](x).detach().requires_grad_(True)
    logits = twin[layer + 1 :](activations)
    logits[0, 1].backward()
    alpha = activations.grad[0].mean(dim=(1, 2))
    expected = torch.relu((alpha[:, None, None] * activations[0]).sum(0)).detach().numpy()
    answer = client.get(f"/api/gradcam?layer={layer}&class=1")
    assert answer["shape"] == list(expected.shape)
    np.testing.assert_allclose(answer["values"], expected, rtol=1e-3, atol=1e-6)


def test_kernel_edit_changes_the_model_for_the_session_only(client, model, picture, tmp_path):
    """POST /api/kernel then /api/kernel/reset; the caller's model is never changed."""
    _, prepared = upload(client, picture, tmp_path)
    before = model[0].weight.data.copy()
    answer = client.post("/api/kernel", {"layer": "0", "index": [1, 2, 0, 1], "value": 2.5})
    edited = varied_model()
    edited[0].weight.data[1, 2, 0, 1] = 2.5
    np.testing.assert_allclose(
        answer["probabilities"], predict_proba(edited, prepared[None])[0], rtol=1e-5, atol=1e-7
    )
    after = client.get("/api/activation?layer=0&channel=1")
    np.testing.assert_allclose(
        after["values"], edited[0](prepared[None])[0, 1], rtol=1e-6, atol=1e-6
    )
    reset = client.post("/api/kernel/reset", b"")
    np.testing.assert_allclose(
        reset["probabilities"], predict_proba(model, prepared[None])[0], rtol=1e-6, atol=1e-7
    )
    np.testing.assert_array_equal(model[0].weight.data, before)


@pytest.mark.parametrize(
    "body",
    [
        {"layer": "2", "index": [0, 0, 0, 0], "value": 1.0},  # a ReLU has no kernel
        {"layer": "0", "index": [0, 0, 0], "value": 1.0},
        {"layer": "0", "index": [0, 0, 0, 0], "value": "big"},
        {"layer": "0", "index": [0, 0, 0, 0], "value": float("inf")},
    ],
)
def test_bad_kernel_edits_are_400(client, body):
    """Kernel edits that make no sense are refused with a message."""
    import json

    status, answer = client.request("POST", "/api/kernel", json.dumps(body).encode())
    assert status == 400 and answer["error"]


def test_kernel_edit_out_of_range_is_404(client):
    status, answer = client.request(
        "POST", "/api/kernel", {"layer": "0", "index": [9, 0, 0, 0], "value": 1.0}
    )
    assert status == 404 and "index[0]" in answer["error"]


@pytest.mark.parametrize("how", ["none", "wrong", "wrong-query"])
def test_requests_without_the_token_are_403(client, how):
    """Every /api/ request must carry the token."""
    path = "/api/model?token=nope" if how == "wrong-query" else "/api/model"
    headers = {"X-Cnnkit-Token": "nope"} if how == "wrong" else None
    status, answer = client.request("GET", path, token=False, headers=headers)
    assert status == 403 and "token" in answer["error"]


def test_token_in_the_query_is_accepted(client):
    status, _ = client.request("GET", f"/api/model?token={client.token}", token=False)
    assert status == 200


@pytest.mark.parametrize(
    "host", ["evil.example:{port}", "127.0.0.1:1", "localhost", "192.168.0.1:{port}"]
)
def test_foreign_host_headers_are_403(client, host):
    """DNS rebinding: a Host other than the local address with this port is refused."""
    status, answer = client.request("GET", "/api/model", host=host.format(port=client.port))
    assert status == 403 and "Host" in answer["error"]
    status, _ = client.request("GET", "/", host=host.format(port=client.port))
    assert status == 403


@pytest.mark.parametrize("host", ["localhost:{port}", "[::1]:{port}", "127.0.0.1:{port}"])
def test_local_host_headers_are_accepted(client, host):
    status, _ = client.request("GET", "/api/model", host=host.format(port=client.port))
    assert status == 200


@pytest.mark.parametrize("body", [b"", b"this is not an image", b"\x89PNG\r\n\x1a\n truncated"])
def test_bad_uploads_are_400_with_a_message(client, body):
    """An empty or undecodable body is refused; the current input stays."""
    before = client.get("/api/input")
    status, answer = client.request("POST", "/api/input", body)
    assert status == 400 and answer["error"]
    assert "cnnkit-explore-" not in answer["error"]  # the temporary file is not named
    assert client.get("/api/input") == before


def test_too_large_uploads_are_413(client, monkeypatch):
    """A body over the cap is refused before it is read."""
    monkeypatch.setattr(server_module, "MAX_UPLOAD_BYTES", 1000)
    status, answer = client.request("POST", "/api/input", b"x" * 1001)
    assert status == 413 and "1000" in answer["error"]


@pytest.mark.parametrize(
    "path, status",
    [
        ("/api/activation?layer=99&channel=0", 404),
        ("/api/activation?layer=0&channel=4", 404),
        ("/api/activation?layer=0&channel=x", 400),
        ("/api/activation", 400),
        ("/api/gradcam?layer=11&class=0", 400),
        ("/api/gradcam?layer=0&class=5", 404),
        ("/api/saliency?class=-1", 404),
        ("/api/saliency", 400),
        ("/api/nothing", 404),
        ("/static/../session.py", 404),
        ("/etc/passwd", 404),
    ],
)
def test_errors_are_json_with_the_right_status(client, path, status):
    got, answer = client.request("GET", path)
    assert got == status
    assert isinstance(answer, dict) and answer["error"] and "Traceback" not in answer["error"]


def test_page_and_modules_are_served_with_a_strict_policy(client):
    """The page loads only from this server: its policy says so."""
    import http.client

    connection = http.client.HTTPConnection(client.host, client.port, timeout=10)
    connection.request("GET", "/", headers={"Host": f"127.0.0.1:{client.port}"})
    response = connection.getresponse()
    page = response.read().decode()
    assert response.status == 200 and "default-src 'self'" in response.getheader(
        "Content-Security-Policy"
    )
    assert "http://" not in page and "https://" not in page
    connection.close()


def test_details_equal_the_layer_values(client, model, picture, tmp_path):
    """GET /api/detail: every layer's total is the value of its map at that cell."""
    _, prepared = upload(client, picture, tmp_path)
    outputs = layer_outputs(model, prepared[None])
    for index, out in enumerate(outputs):
        position = (1, out.shape[2] - 1, 0) if out.ndim == 4 else (2,)
        query = f"channel={position[0]}" + (
            f"&y={position[1]}&x={position[2]}" if out.ndim == 4 else ""
        )
        detail = client.get(f"/api/detail?layer={index}&{query}")
        expected = float(out[0][position])
        assert detail["value"] == pytest.approx(expected, rel=1e-6, abs=1e-7)
        assert detail["total"] == pytest.approx(expected, rel=1e-4, abs=1e-5), detail["kind"]


def test_conv_detail_windows_kernel_and_partial_sums(client, model, picture, tmp_path):
    """A convolution's detail: padded windows, the kernel, per-channel sums, bias and total."""
    _, prepared = upload(client, picture, tmp_path)
    x = layer_outputs(model, prepared[None])[3][0]  # the input of layer 4: (4, 6, 6)
    conv = model[4]
    detail = client.get("/api/detail?layer=4&channel=5&y=0&x=2")
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    windows = padded[:, 0:3, 4:7]  # output (0, 2), stride 2: rows 0..2, columns 4..6
    np.testing.assert_allclose(detail["windows"], windows, rtol=1e-7)
    np.testing.assert_array_equal(detail["inside"], [[False] * 3, [True] * 3, [True] * 3])
    np.testing.assert_allclose(detail["kernel"], conv.weight.data[5], rtol=1e-7)
    partial = (windows * conv.weight.data[5]).sum(axis=(1, 2))
    np.testing.assert_allclose(detail["partial_sums"], partial, rtol=1e-6)
    assert detail["bias"] == pytest.approx(float(conv.bias.data[5]))
    assert detail["total"] == pytest.approx(partial.sum() + conv.bias.data[5], rel=1e-6)
    assert detail["geometry"]["origin"] == [-1, 3]
    assert detail["channels"] == [0, 1, 2, 3]


def test_grouped_dilated_conv_detail_uses_its_group(client):
    """With groups=2, output channel 4 reads input channels 3..5; dilation 2 spreads taps."""
    detail = client.get("/api/detail?layer=6&channel=4&y=1&x=1")
    assert detail["channels"] == [3, 4, 5]
    assert detail["geometry"]["dilation"] == [2, 2]
    assert detail["total"] == pytest.approx(detail["value"], rel=1e-4, abs=1e-6)


class Chain(nn.Module):
    """A composite module calling its children through their public forward/backward."""

    def __init__(self, *layers):
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)

    def backward(self, grad_output):
        return self.body.backward(grad_output)


def test_composite_models_are_recorded_by_qualified_name(rng):
    """Leaves inside composite modules are named as state_dict prefixes ("0.body.1")."""
    model = nn.Sequential(
        Chain(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU()), nn.Flatten(), nn.Linear(8, 3, rng=0)
    )
    session = Session(model, {"input_shape": [1, 4, 4]})
    assert session.layers == ["0.body.0", "0.body.1", "1", "2"]
    x = rng.normal(size=(1, 4, 4)).astype(np.float32)
    session.set_input(x)
    np.testing.assert_array_equal(
        session.activation("0.body.0", 1), model[0].body[0](x[None])[0, 1]
    )


def test_receptive_field_geometry_matches_the_gradient_support(rng):
    """The geometric box equals the support of the gradient of a linear chain."""

    def layers():
        return [
            nn.Conv2d(1, 2, 3, padding=1, rng=0),
            nn.AvgPool2d(2),
            nn.Conv2d(2, 2, 3, stride=2, dilation=2, padding=1, rng=1),
        ]

    geometric = Session(nn.Sequential(*layers()), {"input_shape": [1, 16, 16]})
    by_gradient = Session(nn.Sequential(Chain(*layers())), {"input_shape": [1, 16, 16]})
    x = rng.uniform(0.1, 1, (1, 16, 16)).astype(np.float32)
    geometric.set_input(x)
    by_gradient.set_input(x)
    out = geometric.activation("2", 0)
    for y in range(out.shape[0]):
        for col in range(out.shape[1]):
            a = geometric.receptive_field("2", y, col)
            b = by_gradient.receptive_field("0.body.2", y, col)
            assert (a["method"], b["method"]) == ("geometry", "gradient")
            assert a["box"] == b["box"]


def test_sessions_do_not_touch_the_callers_model(model, rng):
    """Mode, gradients and weights of the model given stay as they were."""
    model.train()
    session = Session(model, {"input_shape": list(INPUT_SHAPE)})
    session.saliency(0)
    session.set_weight("0", [0, 0, 0, 0], 5.0)
    assert (
        model.training and model[0].weight.grad is None and model[0].weight.data[0, 0, 0, 0] != 5.0
    )


def test_explorer_closes_its_port(model):
    """Leaving the context stops the server: the port no longer answers."""
    with ck.explore(model, open_browser=False, input_shape=INPUT_SHAPE) as running:
        client = Client(running.url)
        assert client.get("/api/model")["input_shape"] == list(INPUT_SHAPE)
    with pytest.raises(ConnectionError):
        client.request("GET", "/api/model")


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"port": -1}, ValueError),
        ({"port": 70000}, ValueError),
        ({"port": "80"}, ValueError),
        ({"open_browser": "no"}, TypeError),
    ],
)
def test_explore_validates_its_arguments(model, kwargs, error):
    with pytest.raises(error):
        ck.explore(model, **{"open_browser": False, **kwargs})


def test_explore_refuses_a_busy_port(model):
    with ck.explore(model, open_browser=False, input_shape=INPUT_SHAPE) as first:
        port = Client(first.url).port
        with pytest.raises(ValueError, match=f"port {port}"):
            ck.explore(model, open_browser=False, input_shape=INPUT_SHAPE, port=port)


def test_digits_model_opens_by_default_and_classifies_digits():
    """No model: the bundled digits model, at least 95 % right on the held-out digits."""
    from cnnkit.data import load_digits
    from cnnkit.explore import DIGITS_MODEL
    from cnnkit.train import evaluate

    with ck.explore(open_browser=False) as running:
        client = Client(running.url)
        assert client.get("/api/model")["input_shape"] == [1, 8, 8]
        samples = client.get("/api/samples")["samples"]
        assert samples[0]["name"] == "digit:0"
        answer = client.post("/api/sample", {"name": "digit:7"})
        assert int(np.argmax(answer["probabilities"])) == 7
    _, test = load_digits()
    _, accuracy = evaluate(ck.load(DIGITS_MODEL), test)
    assert accuracy > 0.95


def test_ck_explore_is_callable_after_importing_the_package(model):
    """`import cnnkit.explore` (as the command line does) keeps `ck.explore(...)` working."""
    import cnnkit.explore

    assert callable(ck.explore) and callable(cnnkit.explore)
    with ck.explore(model, open_browser=False, input_shape=INPUT_SHAPE) as running:
        assert Client(running.url).get("/api/model")["input_shape"] == list(INPUT_SHAPE)


class Add(nn.Module):
    """A graph-style node with two inputs (as ONNX import builds them)."""

    def forward(self, a, b):
        self._cache = True
        return a + b

    def backward(self, grad_output):
        self._last_cache()
        return grad_output, grad_output


class Skip(nn.Module):
    """conv(x) + x through a two-input child, each called through its public methods."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1, rng=0)
        self.add = Add()

    def forward(self, x):
        return self.add.forward(self.conv(x), x)

    def backward(self, grad_output):
        grad_conv, grad_skip = self.add.backward(grad_output)
        return self.conv.backward(grad_conv) + grad_skip


def test_two_input_layers_are_recorded_and_explained(rng):
    """A layer called with two inputs: recorded in order, its value explained as a + b."""
    model = nn.Sequential(Skip(), nn.ReLU(), nn.GlobalAvgPool2d(), nn.Linear(2, 3, rng=1))
    session = Session(model, {"input_shape": [2, 5, 5]})
    assert session.layers == ["0.conv", "0.add", "1", "2", "3"]
    x = rng.normal(size=(2, 5, 5)).astype(np.float32)
    session.set_input(x)
    conv = model[0].conv(x[None])[0]
    detail = session.detail("0.add", 1, 2, 3)
    assert detail["kind"] == "binary" and detail["symbol"] == "+"
    assert detail["a"] == pytest.approx(float(conv[1, 2, 3]))
    assert detail["b"] == pytest.approx(float(x[1, 2, 3]))
    assert detail["total"] == pytest.approx(detail["value"])
    # The gradient flows through both inputs: central differences in float64.
    reference = nn.Sequential(Skip(), nn.ReLU(), nn.GlobalAvgPool2d(), nn.Linear(2, 3, rng=1))
    reference.astype(np.float64)
    grad = session.saliency(2)
    for index in [(0, 0, 0), (1, 2, 3), (0, 4, 1)]:
        step = np.zeros((1, 2, 5, 5))
        step[(0, *index)] = 1e-6
        x64 = x[None].astype(np.float64)
        numeric = (reference(x64 + step)[0, 2] - reference(x64 - step)[0, 2]) / 2e-6
        assert grad[index] == pytest.approx(numeric, rel=1e-3, abs=1e-5)
