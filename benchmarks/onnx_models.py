"""ONNX model inference: cnnkit against onnxruntime and onnx's ReferenceEvaluator.

    python benchmarks/onnx_models.py

A ResNet-style model (basic residual blocks with batch norm, CIFAR-sized input) and a
SqueezeNet-style one (fire modules: squeeze, then concatenated 1x1 and 3x3 expands) are
built in PyTorch, exported to ONNX with the legacy offline exporter, and run from the same
bytes by cnnkit (``cnnkit.onnx.load``), onnxruntime (CPU, 2 threads) and
``onnx.reference.ReferenceEvaluator`` (onnx's pure-NumPy interpreter). Each case
alternates the runners in rounds and reports the median of the per-round ratios
(cnnkit / peer: below 1 means cnnkit is faster) and the median times. The machine is
shared and noisy: compare ratios from one run, not absolute times across runs.
"""

from __future__ import annotations

import io
import statistics
import time
import warnings

import numpy as np

THREADS = 2
TARGET_SECONDS = 2.0  # per case and runner, at least MIN_ROUNDS rounds
MIN_ROUNDS = 3


def resnet_style():
    import torch

    class Block(torch.nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(cout)
            self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = torch.nn.Sequential(
                    torch.nn.Conv2d(cin, cout, 1, stride, bias=False), torch.nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, 1, 1, bias=False),
        torch.nn.BatchNorm2d(32),
        torch.nn.ReLU(),
        Block(32, 32, 1),
        Block(32, 32, 1),
        Block(32, 64, 2),
        Block(64, 64, 1),
        Block(64, 128, 2),
        Block(128, 128, 1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(128, 10),
    )


def squeezenet_style():
    import torch

    class Fire(torch.nn.Module):
        def __init__(self, cin, squeeze, expand):
            super().__init__()
            self.squeeze = torch.nn.Conv2d(cin, squeeze, 1)
            self.expand1 = torch.nn.Conv2d(squeeze, expand, 1)
            self.expand3 = torch.nn.Conv2d(squeeze, expand, 3, padding=1)

        def forward(self, x):
            x = torch.relu(self.squeeze(x))
            return torch.cat([torch.relu(self.expand1(x)), torch.relu(self.expand3(x))], 1)

    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 64, 3, 2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(64, 16, 64),
        Fire(128, 16, 64),
        torch.nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(128, 32, 128),
        Fire(256, 32, 128),
        torch.nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(256, 48, 192),
        Fire(384, 64, 256),
        torch.nn.Dropout(0.5),
        torch.nn.Conv2d(512, 10, 1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    )


CASES = [
    ("ResNet-style, 8x3x32x32", resnet_style, (8, 3, 32, 32)),
    ("SqueezeNet-style, 4x3x96x96", squeezenet_style, (4, 3, 96, 96)),
]


def export(model, shape) -> bytes:
    import torch

    torch.manual_seed(0)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            torch.zeros(1, *shape[1:]),
            buffer,
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
            opset_version=17,
        )
    return buffer.getvalue()


def runners(payload):
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    import cnnkit as ck
    import cnnkit.onnx

    ck.set_num_threads(THREADS)
    model = cnnkit.onnx.load(payload)
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    reference = ReferenceEvaluator(payload)
    return {
        "cnnkit": model,
        "onnxruntime": lambda x: session.run(None, {"input": x})[0],
        "ReferenceEvaluator": lambda x: reference.run(None, {"input": x})[0],
    }


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'case':<30} {'peer':<20} {'cnnkit/peer':>12} {'cnnkit ms':>10} {'peer ms':>10}")
    for title, make, shape in CASES:
        run = runners(export(make(), shape))
        x = rng.standard_normal(shape).astype(np.float32)
        outputs = {name: np.asarray(f(x)) for name, f in run.items()}  # warm up, and check
        for name, out in outputs.items():
            np.testing.assert_allclose(
                out, outputs["onnxruntime"], rtol=1e-3, atol=1e-4, err_msg=name
            )
        times = {name: [] for name in run}
        start = time.perf_counter()
        while len(times["cnnkit"]) < MIN_ROUNDS or time.perf_counter() - start < TARGET_SECONDS * 3:
            for name, f in run.items():
                begin = time.perf_counter()
                f(x)
                times[name].append(time.perf_counter() - begin)
        ours = times["cnnkit"]
        for peer in ("onnxruntime", "ReferenceEvaluator"):
            ratio = statistics.median(a / b for a, b in zip(ours, times[peer], strict=True))
            print(
                f"{title:<30} {peer:<20} {ratio:>12.2f} {statistics.median(ours) * 1e3:>10.1f} "
                f"{statistics.median(times[peer]) * 1e3:>10.1f}"
            )


if __name__ == "__main__":
    main()
