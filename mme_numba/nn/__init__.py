"""Neural-network observables with hand-written backpropagation over one flat θ.

A :class:`Sequential` network maps ``(n, d)`` inputs to ``(n, m)`` observables; all its
parameters live in one float64 vector ``theta`` and it exports the int64 description
(``describe()``) that the compiled kernels interpret.
"""

from .layers import (
    Conv2D,
    Dense,
    Flatten,
    Layer,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softplus,
    Square,
    Tanh,
    activation,
)
from .network import Sequential, classifier_cnn, mlp, paper_cnn

__all__ = [
    "Layer", "Dense", "Conv2D", "Flatten", "Tanh", "Softplus", "Sigmoid", "ReLU", "Square",
    "LogSoftmax", "Sequential", "mlp", "paper_cnn", "classifier_cnn", "activation",
]
