"""The real architectures shipped with the onnx package (``onnx/backend/test/data/light``:
AlexNet, VGG-19, ResNet-50, Inception v1/v2, SqueezeNet, DenseNet-121, ShuffleNet,
ZFNet) loaded by cnnkit and run to their reference outputs, and, with random weights
in place of their constant ones, to onnxruntime's outputs."""

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import cnnkit.onnx

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
SLOW = {
    "vgg19",
    "densenet121",
    "resnet50",
    "zfnet512",
    "bvlc_alexnet",
    "inception_v1",
    "inception_v2",
}
MODELS = [
    pytest.param(name, marks=[pytest.mark.slow] if name in SLOW else [], id=name)
    for name in (
        "bvlc_alexnet",
        "vgg19",
        "resnet50",
        "inception_v1",
        "inception_v2",
        "squeezenet",
        "densenet121",
        "shufflenet",
        "zfnet512",
    )
]


def image_input(model):
    """The graph input that is not an initializer."""
    initializers = {t.name for t in model.graph.initializer}
    return next(i for i in model.graph.input if i.name not in initializers)


def light_input(model):
    """The input onnx's backend test runner feeds these models: arange(n) / n, float32."""
    dims = [d.dim_value for d in image_input(model).type.tensor_type.shape.dim]
    n = int(np.prod(dims))
    return (np.arange(n).reshape(dims) / n).astype(np.float32)


@pytest.mark.parametrize("name", MODELS)
def test_light_model_reaches_its_reference_output(name):
    """Loaded and run, each architecture gives the output stored next to it."""
    path = os.path.join(LIGHT, f"light_{name}.onnx")
    model = onnx.load(path)
    expected = numpy_helper.to_array(
        onnx.load_tensor(os.path.join(LIGHT, f"light_{name}_output_0.pb"))
    )
    out = cnnkit.onnx.load(path)(light_input(model))
    assert out.dtype == np.float32 and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-6)


def with_random_weights(model, rng):
    """The model with each constant weight (a ConstantOfShape here) drawn at random.

    The light models' weights are constants, so their outputs are nearly uniform; random
    weights (scaled by fan-in, positive variances) make every layer matter.
    """
    graph = model.graph
    shapes = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:  # a weight
            shape = tuple(int(s) for s in shapes[node.input[0]])
            if len(shape) >= 2:
                value = rng.standard_normal(shape, np.float32) * np.sqrt(2.0 / np.prod(shape[1:]))
            else:
                value = rng.uniform(0.5, 1.5, shape).astype(np.float32)
            graph.initializer.append(
                numpy_helper.from_array(value.astype(np.float32), node.output[0])
            )
            if model.ir_version < 4:  # initializers are listed as inputs too
                graph.input.append(
                    helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, shape)
                )
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    return model


def convolutional_trunk(model):
    """The model up to the input of its first fully connected layer (Gemm), if it has one.

    The fully connected layers of AlexNet, VGG and ZFNet hold most of their weights
    (100 million for VGG-19); Gemm is checked on its own by onnx's operator cases, and the
    reference-output test runs the whole models.
    """
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    gemm = next((node for node in graph.node if node.op_type == "Gemm"), None)
    if gemm is None:
        return model
    cut = gemm.input[0]
    while producers[cut].op_type in ("Reshape", "Flatten", "Dropout"):
        cut = producers[cut].input[0]
    needed, stack = set(), [cut]
    while stack:
        name = stack.pop()
        if name in producers and name not in needed:
            needed.add(name)
            stack.extend(producers[name].input)
    kept = [node for node in graph.node if node.output[0] in needed]
    shape = next(
        i for i in onnx.shape_inference.infer_shapes(model).graph.value_info if i.name == cut
    )
    del graph.node[:]
    graph.node.extend(kept)
    del graph.output[:]
    graph.output.append(shape)
    return model


@pytest.mark.parametrize("name", MODELS)
def test_light_model_with_random_weights_matches_onnxruntime(name):
    """With random weights, cnnkit's output equals onnxruntime's."""
    model = onnx.load(os.path.join(LIGHT, f"light_{name}.onnx"))
    model = with_random_weights(convolutional_trunk(model), np.random.default_rng(0))
    payload = model.SerializeToString()
    x = light_input(model)
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    expected = session.run(None, {image_input(model).name: x})[0]
    out = cnnkit.onnx.load(payload)(x)
    assert expected.std() > 1e-4  # the outputs are no longer uniform
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
