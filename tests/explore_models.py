"""Models, HTTP helpers and PyTorch twins shared by the explorer's tests."""

import http.client
import json
from urllib.parse import urlsplit

import numpy as np
import torch

from cnnkit import nn

INPUT_SHAPE = (3, 12, 12)
CLASSES = ["cat", "dog", "bird", "fish", "frog"]


def varied_model(final_softmax=False):
    """A Sequential with every layer type the detail view explains, non-trivial statistics."""
    rng = np.random.default_rng(7)
    layers = [
        nn.Conv2d(3, 4, 3, padding=1, rng=rng),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, rng=rng),
        nn.LeakyReLU(0.1),
        nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=2, rng=rng),
        nn.Sigmoid(),
        nn.AvgPool2d(2, stride=1),
        nn.GlobalAvgPool2d(),
        nn.Flatten(),
        nn.Linear(6, 5, rng=rng),
    ]
    if final_softmax:
        layers.append(nn.Softmax())
    model = nn.Sequential(*layers)
    model[1].running_mean[...] = rng.normal(0, 0.3, 4)
    model[1].running_var[...] = rng.uniform(0.5, 2.0, 4)
    model[1].weight.data[...] = rng.uniform(0.5, 1.5, 4)
    model[1].bias.data[...] = rng.normal(0, 0.2, 4)
    return model.eval()


def torch_twin(model):
    """The PyTorch module with the same layers and weights (float64)."""
    layers = []
    for layer in model:
        kind = type(layer).__name__
        if kind == "Conv2d":
            layers.append(
                torch.nn.Conv2d(
                    layer.in_channels,
                    layer.out_channels,
                    layer.kernel_size,
                    layer.stride,
                    layer.padding,
                    layer.dilation,
                    layer.groups,
                    layer.bias is not None,
                )
            )
        elif kind == "BatchNorm2d":
            layers.append(torch.nn.BatchNorm2d(layer.num_features, layer.eps))
        elif kind == "ReLU":
            layers.append(torch.nn.ReLU())
        elif kind == "LeakyReLU":
            layers.append(torch.nn.LeakyReLU(layer.negative_slope))
        elif kind == "Sigmoid":
            layers.append(torch.nn.Sigmoid())
        elif kind == "MaxPool2d":
            layers.append(torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding))
        elif kind == "AvgPool2d":
            layers.append(torch.nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding))
        elif kind == "GlobalAvgPool2d":
            layers.append(torch.nn.AdaptiveAvgPool2d(1))
        elif kind == "Flatten":
            layers.append(torch.nn.Flatten())
        elif kind == "Linear":
            layers.append(torch.nn.Linear(layer.in_features, layer.out_features))
        elif kind == "Softmax":
            layers.append(torch.nn.Softmax(-1))
        else:
            raise AssertionError(kind)
    twin = torch.nn.Sequential(*layers).double().eval()
    twin.load_state_dict(
        {k: torch.from_numpy(np.asarray(v)) for k, v in model.state_dict().items()}
    )
    return twin


def branchy():
    """A residual block and a two-branch concatenation between plain layers."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0),
        nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, rng=1), nn.ReLU())),
        nn.Concat(
            nn.Conv2d(4, 2, 1, rng=2),
            nn.Sequential(nn.Conv2d(4, 3, 3, padding=1, rng=3), nn.ReLU()),
        ),
        nn.GlobalAvgPool2d(),
        nn.Flatten(),
        nn.Linear(5, 3, rng=4),
    ).eval()


class Client:
    """Requests to an explorer server, with the token and a Host header of our choice."""

    def __init__(self, url):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.token = parts.query.removeprefix("token=")

    def request(self, method, path, body=None, *, token=True, host=None, headers=None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        all_headers = {"Host": host or f"127.0.0.1:{self.port}", **(headers or {})}
        if token:
            all_headers["X-Cnnkit-Token"] = self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        payload = response.read()
        connection.close()
        content = (
            json.loads(payload)
            if response.getheader("Content-Type", "").startswith("application/json")
            else payload
        )
        return response.status, content

    def get(self, path, **kwargs):
        status, content = self.request("GET", path, **kwargs)
        assert status == 200, (status, content)
        return content

    def post(self, path, body, **kwargs):
        status, content = self.request("POST", path, body, **kwargs)
        assert status == 200, (status, content)
        return content


def png_bytes(picture):
    """A float picture in [0, 1] as PNG file bytes."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(picture, 0, 1) * 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()
