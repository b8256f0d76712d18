"""The explorer on models with branches (Residual, Concat) and on ONNX files."""

import numpy as np
import pytest
import torch
from explore_models import Client, branchy

import cnnkit as ck
from cnnkit import nn
from cnnkit.explore.session import Session


@pytest.fixture
def session(rng):
    session = Session(branchy(), {"input_shape": [1, 6, 6]})
    session.set_input(rng.normal(size=(1, 6, 6)).astype(np.float32))
    return session


def test_blocks_are_layers_after_their_insides(session):
    """Layers inside blocks by qualified name; the block's own output after them."""
    assert session.layers == [
        "0",
        "1.body.0",
        "1.body.1",
        "1",
        "2.0",
        "2.1.0",
        "2.1.1",
        "2",
        "3",
        "4",
        "5",
    ]


def test_residual_and_concat_values_are_explained(session):
    """A residual sum is body + shortcut; a joined channel is its branch's channel."""
    model = branchy()
    x = session.x[None]
    a = model[0](x)
    body = model[1].body(a)
    detail = session.detail("1", 2, 3, 3)
    assert detail["kind"] == "residual" and detail["identity"]
    assert detail["body"] == pytest.approx(float(body[0, 2, 3, 3]))
    assert detail["shortcut"] == pytest.approx(float(a[0, 2, 3, 3]))
    assert detail["total"] == pytest.approx(detail["value"], rel=1e-6)
    r = model[1](a)
    second = model[2][1](r)
    detail = session.detail("2", 4, 1, 2)
    assert (detail["kind"], detail["branch"], detail["source"]) == ("concat", 1, [2, 1, 2])
    assert detail["total"] == pytest.approx(float(second[0, 2, 1, 2]))


def test_saliency_and_gradcam_through_branches_equal_torch(session):
    """Gradients through the residual sum and the concatenation (PyTorch oracle)."""
    model = branchy()
    w = {k: torch.from_numpy(np.asarray(v)).double() for k, v in model.state_dict().items()}
    x = torch.tensor(session.x[None], dtype=torch.float64, requires_grad=True)
    conv = torch.nn.functional.conv2d
    a = conv(x, w["0.weight"], w["0.bias"], padding=1)
    r = a + torch.relu(conv(a, w["1.body.0.weight"], w["1.body.0.bias"], padding=1))
    r.retain_grad()
    c = torch.cat(
        [
            conv(r, w["2.0.weight"], w["2.0.bias"]),
            torch.relu(conv(r, w["2.1.0.weight"], w["2.1.0.bias"], padding=1)),
        ],
        1,
    )
    logits = c.mean((2, 3)) @ w["5.weight"].T + w["5.bias"]
    logits[0, 2].backward()
    np.testing.assert_allclose(session.saliency(2), x.grad[0].numpy(), rtol=1e-4, atol=1e-6)
    alpha = r.grad[0].mean((1, 2))
    cam = torch.relu((alpha[:, None, None] * r[0]).sum(0)).detach().numpy()
    np.testing.assert_allclose(session.gradcam("1", 2), cam, rtol=1e-4, atol=1e-6)


def test_onnx_files_open_in_the_explorer(tmp_path, rng):
    """An .onnx file: the same layers' values as the model it was saved from."""
    import cnnkit.onnx

    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, rng=0),
        nn.ReLU(),
        nn.GlobalAvgPool2d(),
        nn.Flatten(),
        nn.Linear(4, 2, rng=1),
    ).eval()
    path = tmp_path / "model.onnx"
    cnnkit.onnx.save(model, path, (3, 10, 10))
    with ck.explore(path, open_browser=False) as running:
        client = Client(running.url)
        info = client.get("/api/model")
        assert info["input_shape"] == [3, 10, 10]
        probabilities = client.post("/api/sample", {"name": "chelsea"})["probabilities"]
        x = np.array(client.get("/api/input")["values"], np.float32)
        expected = ck.functional.softmax(model(x[None]).astype(np.float64))[0]
        np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-7)
