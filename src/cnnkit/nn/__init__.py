"""Layers with parameters, buffers and backward passes, built on :mod:`cnnkit.functional`."""

from cnnkit.nn.activation import Dropout, LeakyReLU, ReLU, Sigmoid, Softmax
from cnnkit.nn.branch import ChannelShuffle, Concat, Residual
from cnnkit.nn.conv import Conv2d
from cnnkit.nn.graph import Add, Cat, Constant, Div, Graph, Mul, Reshape, Sub, Transpose
from cnnkit.nn.linear import Flatten, Linear
from cnnkit.nn.loss import CrossEntropyLoss
from cnnkit.nn.module import Module, Parameter, Sequential
from cnnkit.nn.norm import BatchNorm2d, LocalResponseNorm
from cnnkit.nn.pool import AvgPool2d, GlobalAvgPool2d, MaxPool2d

__all__ = [
    "Parameter", "Module", "Sequential",
    "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d",
    "ReLU", "LeakyReLU", "Sigmoid", "Softmax", "Dropout",
    "BatchNorm2d", "Flatten", "Linear", "CrossEntropyLoss",
    "Residual", "Concat", "ChannelShuffle", "LocalResponseNorm",
    "Graph", "Constant", "Add", "Sub", "Mul", "Div", "Cat", "Reshape", "Transpose",
]  # fmt: skip
