"""Every supported ONNX operator against the onnx package's own operator test cases
(``onnx.backend.test.case.node``): loaded by cnnkit, same outputs as the cases' expected
ones, and (float64) gradients equal to central differences."""

import warnings

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.backend.test.case import node as node_cases

import cnnkit.onnx

with warnings.catch_warnings():  # the case generators divide by zero on purpose
    warnings.simplefilter("ignore")
    ALL_CASES = node_cases.collect_testcases(None)

SUPPORTED = set(cnnkit.onnx.supported_operators())


def _array(value):
    return (
        numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)
    )


def _excluded(case) -> str:
    """Why a case of a supported operator is left out ("" when it runs)."""
    graph, name = case.model.graph, case.name
    if len(graph.output) != 1:
        return "several outputs (a mask, argmax indices, batch statistics): cnnkit loads one"
    if any(not i.type.HasField("tensor_type") for i in graph.input):
        return "a sequence or optional input, not a tensor"
    inputs, outputs = case.data_sets[0]
    if any(_array(a).dtype.type.__module__ != "numpy" for a in (*inputs, *outputs)):
        return "a float8/int4/bfloat16 type NumPy does not have"
    attributes = {a.name: helper.get_attribute_value(a) for a in graph.node[0].attribute}
    if "kernel_shape" in attributes and len(attributes["kernel_shape"]) != 2:
        return "1-D or 3-D pooling: cnnkit pools images"
    if graph.node[0].op_type in ("MaxPool", "AveragePool") and _array(inputs[0]).dtype.kind != "f":
        return "pooling of integers: cnnkit computes on floats"
    if name.startswith("test_training_dropout") and "zero_ratio" not in name:
        return "dropout in training mode draws random masks"
    return ""


def _cases():
    chosen = []
    for case in ALL_CASES:
        nodes = case.model.graph.node
        if len(nodes) == 1 and nodes[0].op_type in SUPPORTED and not _excluded(case):
            chosen.append(pytest.param(case, id=case.name))
    return chosen


CASES = _cases()


def _as_cnnkit_model(case):
    """The case's model with every input but the first as a constant, and the first input."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    graph = model.graph
    inputs = [_array(v) for v in case.data_sets[0][0]]
    if not inputs:  # Constant: feed a zero array to add it to
        expected = _array(case.data_sets[0][1][0])
        node = graph.node[0]
        node.output[0] = "constant"
        graph.node.append(helper.make_node("Add", ["zeros", "constant"], [graph.output[0].name]))
        graph.input.append(
            helper.make_tensor_value_info(
                "zeros", helper.np_dtype_to_tensor_dtype(expected.dtype), expected.shape
            )
        )
        return model, np.zeros_like(expected)
    for info, value in list(zip(graph.input, inputs))[1:]:
        graph.initializer.append(numpy_helper.from_array(value, info.name))
    return model, inputs[0]


def test_every_supported_operator_has_cases():
    """Each operator cnnkit loads is checked by at least one of onnx's own cases."""
    covered = {case.values[0].model.graph.node[0].op_type for case in CASES}
    assert covered == SUPPORTED


@pytest.mark.parametrize("case", CASES)
def test_operator_case_output(case):
    """cnnkit's output equals the case's expected output (values and dtype)."""
    model, x = _as_cnnkit_model(case)
    out = cnnkit.onnx.load(model.SerializeToString())(x)
    expected = _array(case.data_sets[0][1][0])
    assert np.asarray(out).dtype == expected.dtype
    # some cases store their expected values rounded to 4 decimals
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


NOT_DIFFERENTIABLE = {"Shape", "Cast", "ConstantOfShape", "Constant"}


def _gradient_cases():
    chosen = []
    for param in CASES:
        case = param.values[0]
        op = case.model.graph.node[0].op_type
        inputs = case.data_sets[0][0]
        if op in NOT_DIFFERENTIABLE or not inputs or _array(inputs[0]).dtype.kind != "f":
            continue
        if _array(case.data_sets[0][1][0]).dtype.kind != "f" or _array(inputs[0]).size == 0:
            continue
        chosen.append(param)
    return chosen


@pytest.mark.parametrize("case", _gradient_cases())
def test_operator_case_gradient(case):
    """In float64, <J u, v> by central differences equals <u, backward(v)>."""
    model, x = _as_cnnkit_model(case)
    net = cnnkit.onnx.load(model.SerializeToString()).astype(np.float64)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x.shape)  # away from kinks and ties, unlike some cases' inputs
    out = net(x)
    v = rng.standard_normal(np.shape(out))
    analytic = net.backward(v)
    u = rng.standard_normal(x.shape)
    eps = 1e-6
    numeric = (net(x + eps * u) - net(x - eps * u)) / (2 * eps)
    np.testing.assert_allclose(np.sum(numeric * v), np.sum(u * analytic), rtol=1e-5, atol=1e-7)
