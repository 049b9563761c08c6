"""Layers with hand-written backpropagation, forward and backward side by side.

Every layer is stateless with respect to its parameters: ``forward(p, x)`` and
``backward(p, cache, dy)`` receive ``p``, the layer's slice of the network's one flat
float64 parameter vector θ (a view, shape ``(n_params,)``). Activations are always flat
rows ``(n_samples, size)``; images travel flattened channel-major ``(C, H, W)``.

Each layer also emits its rows of the int64 network description (``spec``) that the
compiled interpreter reads; see ``docs/architecture.md`` section 2 for the layout.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..spec import CONV2D, DENSE, LOGSOFTMAX, RELU, SIGMOID, SOFTPLUS, SQUARE, TANH


def _spec_row(code, in_size, out_size, offset=0, a=0, b=0, c=0, d=0):
    return [int(code), int(in_size), int(out_size), int(offset), int(a), int(b), int(c), int(d)]


def _positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class Layer:
    """Base class and protocol of a layer.

    Attributes
    ----------
    input_size, output_size : int
        Flattened sizes of the activation rows entering and leaving the layer.
    n_params : int
        Number of entries of θ owned by the layer.
    """

    input_size = None
    output_size = None
    n_params = 0

    def init_params(self, rng):
        """Initial parameter values, shape ``(n_params,)`` float64."""
        return np.zeros(self.n_params)

    def forward(self, p, x):
        """Map ``x (n, input_size)`` to ``(y (n, output_size), cache)``."""
        raise NotImplementedError

    def backward(self, p, cache, dy):
        """Gradients ``(dp (n_params,), dx (n, input_size))`` of ``sum(dy * y)``.

        ``dp`` is summed over the batch.
        """
        raise NotImplementedError

    def spec_rows(self, offset):
        """Rows of the int64 network description; ``offset`` is the layer's start in θ."""
        raise NotImplementedError

    def get_config(self):
        """JSON-able description of the layer (no parameters), including ``"type"``."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg):
        """Rebuild a layer from :meth:`get_config` output."""
        cfg = dict(cfg)
        cfg.pop("type", None)
        return cls(**cfg)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({args})"


# ---------------------------------------------------------------------------------------
# Dense
# ---------------------------------------------------------------------------------------


class Dense(Layer):
    """Affine layer ``y = x W^T + b``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output sizes.
    bias : bool, default True
        Whether the layer has a bias ``b (n_out,)``.

    Notes
    -----
    Parameter layout in θ: ``W (n_out, n_in)`` row-major, then ``b (n_out,)`` — exactly the
    spec's DENSE layout. Initialization: Glorot/Xavier uniform ``W``, zero ``b``.
    """

    def __init__(self, n_in, n_out, bias=True):
        self.n_in = _positive_int(n_in, "Dense n_in")
        self.n_out = _positive_int(n_out, "Dense n_out")
        self.bias = bool(bias)
        self.input_size = self.n_in
        self.output_size = self.n_out
        self.n_params = self.n_out * self.n_in + (self.n_out if self.bias else 0)

    def _unpack(self, p):
        W = p[: self.n_out * self.n_in].reshape(self.n_out, self.n_in)
        b = p[self.n_out * self.n_in :] if self.bias else None
        return W, b

    def init_params(self, rng):
        limit = np.sqrt(6.0 / (self.n_in + self.n_out))
        W = rng.uniform(-limit, limit, size=self.n_out * self.n_in)
        return np.concatenate([W, np.zeros(self.n_params - W.size)])

    def forward(self, p, x):
        W, b = self._unpack(p)
        y = x @ W.T
        if b is not None:
            y += b
        return y, x

    def backward(self, p, cache, dy):
        x = cache
        W, _ = self._unpack(p)
        dW = dy.T @ x
        parts = [dW.ravel()]
        if self.bias:
            parts.append(dy.sum(axis=0))
        return np.concatenate(parts), dy @ W

    def spec_rows(self, offset):
        return [_spec_row(DENSE, self.n_in, self.n_out, offset, a=int(self.bias))]

    def get_config(self):
        return {"type": "Dense", "n_in": self.n_in, "n_out": self.n_out, "bias": self.bias}


# ---------------------------------------------------------------------------------------
# Conv2D
# ---------------------------------------------------------------------------------------


def _im2col(x, k):
    """Patches of the zero-padded input, one row per output pixel.

    ``x (n, C, H, W)`` -> ``cols (n*H*W, C*k*k)`` with
    ``cols[(s*H + h)*W + w, (c*k + i)*k + j] = x[s, c, h + i - k//2, w + j - k//2]``
    (zero outside the image), so a "same" correlation is one matrix product.
    """
    n, C, H, W = x.shape
    pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(xp, (k, k), axis=(2, 3))  # (n, C, H, W, k, k), no copy
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * H * W, C * k * k)


def _col2im(cols, shape, k):
    """Adjoint of :func:`_im2col`: scatter-add patch rows back onto ``(n, C, H, W)``."""
    n, C, H, W = shape
    pad = k // 2
    patches = cols.reshape(n, H, W, C, k, k)
    xp = np.zeros((n, C, H + 2 * pad, W + 2 * pad))
    for i in range(k):  # k*k vectorized slice-adds, no loop over samples
        for j in range(k):
            xp[:, :, i:i + H, j:j + W] += patches[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return xp[:, :, pad:pad + H, pad:pad + W]


class Conv2D(Layer):
    """2-d convolution (cross-correlation), stride 1, zero "same" padding ``k // 2``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts ``C_in`` and ``C_out``.
    kernel_size : int
        Odd kernel side ``k``.
    input_shape : tuple of int
        Spatial shape ``(H, W)``; input rows have size ``C_in*H*W`` and output rows
        ``C_out*H*W``, both flattened channel-major ``(C, H, W)``.

    Notes
    -----
    Parameter layout in θ: ``W (C_out, C_in, k, k)`` row-major, then ``b (C_out,)``.
    Initialization: Glorot uniform with ``fan_in = C_in k²``, ``fan_out = C_out k²``;
    zero ``b``. Vectorized over samples: im2col patches and one matrix product.
    """

    def __init__(self, in_channels, out_channels, kernel_size, input_shape):
        self.in_channels = _positive_int(in_channels, "Conv2D in_channels")
        self.out_channels = _positive_int(out_channels, "Conv2D out_channels")
        self.kernel_size = _positive_int(kernel_size, "Conv2D kernel_size")
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"Conv2D kernel_size must be odd (same padding k//2), got {kernel_size}"
            )
        try:
            H, W = input_shape
        except (TypeError, ValueError):
            raise ValueError(
                f"Conv2D input_shape must be a pair (H, W), got {input_shape!r}"
            ) from None
        self.input_shape = (_positive_int(H, "Conv2D input height"),
                            _positive_int(W, "Conv2D input width"))
        hw = self.input_shape[0] * self.input_shape[1]
        self.input_size = self.in_channels * hw
        self.output_size = self.out_channels * hw
        self._n_weights = self.out_channels * self.in_channels * self.kernel_size ** 2
        self.n_params = self._n_weights + self.out_channels

    def _unpack(self, p):
        k = self.kernel_size
        W = p[: self._n_weights].reshape(self.out_channels, self.in_channels, k, k)
        return W, p[self._n_weights :]

    def init_params(self, rng):
        k2 = self.kernel_size ** 2
        limit = np.sqrt(6.0 / ((self.in_channels + self.out_channels) * k2))
        W = rng.uniform(-limit, limit, size=self._n_weights)
        return np.concatenate([W, np.zeros(self.out_channels)])

    def forward(self, p, x):
        W, b = self._unpack(p)
        n = x.shape[0]
        H, Wd = self.input_shape
        cols = _im2col(x.reshape(n, self.in_channels, H, Wd), self.kernel_size)
        y = cols @ W.reshape(self.out_channels, -1).T + b  # (n*H*W, C_out)
        y = y.reshape(n, H * Wd, self.out_channels).transpose(0, 2, 1)
        return y.reshape(n, self.output_size), cols

    def backward(self, p, cache, dy):
        cols = cache
        W, _ = self._unpack(p)
        n = dy.shape[0]
        H, Wd = self.input_shape
        # Rows of dy in the im2col order: one per output pixel, channels last.
        dy_rows = dy.reshape(n, self.out_channels, H * Wd).transpose(0, 2, 1)
        dy_rows = dy_rows.reshape(n * H * Wd, self.out_channels)
        dW = dy_rows.T @ cols  # (C_out, C_in*k*k)
        db = dy_rows.sum(axis=0)
        dcols = dy_rows @ W.reshape(self.out_channels, -1)
        dx = _col2im(dcols, (n, self.in_channels, H, Wd), self.kernel_size)
        return np.concatenate([dW.ravel(), db]), dx.reshape(n, self.input_size)

    def spec_rows(self, offset):
        H, W = self.input_shape
        return [_spec_row(CONV2D, self.input_size, self.output_size, offset,
                          a=self.in_channels, b=H, c=W, d=self.kernel_size)]

    def get_config(self):
        return {"type": "Conv2D", "in_channels": self.in_channels,
                "out_channels": self.out_channels, "kernel_size": self.kernel_size,
                "input_shape": list(self.input_shape)}


# ---------------------------------------------------------------------------------------
# Size-preserving layers: Flatten and the activations
# ---------------------------------------------------------------------------------------


class _Elementwise(Layer):
    """A parameter-free layer whose size is taken from the previous layer.

    ``size`` may be left ``None``; :class:`~mme_numba.nn.Sequential` binds it with
    :meth:`bind`, which returns a sized copy.
    """

    code = None

    def __init__(self, size=None):
        self.size = None if size is None else _positive_int(size, f"{type(self).__name__} size")

    @property
    def input_size(self):
        return self.size

    @property
    def output_size(self):
        return self.size

    def bind(self, size):
        """Return this layer sized to ``size`` (itself if already that size)."""
        if self.size == size:
            return self
        if self.size is not None:
            raise ValueError(
                f"{type(self).__name__} has size {self.size} but follows a layer of size {size}"
            )
        return type(self)(size)

    def spec_rows(self, offset):
        return [_spec_row(self.code, self.size, self.size)]

    def get_config(self):
        return {"type": type(self).__name__, "size": self.size}


class Flatten(_Elementwise):
    """No-op: activations are always flat. Emits no spec row; exists for readability."""

    def forward(self, p, x):
        return x, None

    def backward(self, p, cache, dy):
        return np.zeros(0), dy

    def spec_rows(self, offset):
        return []


class Tanh(_Elementwise):
    """``y = tanh(z)``."""

    code = TANH

    def forward(self, p, x):
        y = np.tanh(x)
        return y, y

    def backward(self, p, cache, dy):
        y = cache
        return np.zeros(0), dy * (1.0 - y * y)


def _sigmoid(z):
    # Stable for any z: only exp of non-positive numbers.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class Softplus(_Elementwise):
    """``y = log(1 + exp(z))``, computed stably (no overflow for large ``|z|``)."""

    code = SOFTPLUS

    def forward(self, p, x):
        return np.logaddexp(0.0, x), x

    def backward(self, p, cache, dy):
        return np.zeros(0), dy * _sigmoid(cache)


class Sigmoid(_Elementwise):
    """``y = 1 / (1 + exp(-z))``, computed stably."""

    code = SIGMOID

    def forward(self, p, x):
        y = _sigmoid(x)
        return y, y

    def backward(self, p, cache, dy):
        y = cache
        return np.zeros(0), dy * y * (1.0 - y)


class ReLU(_Elementwise):
    """``y = max(z, 0)`` (derivative 0 at ``z = 0``)."""

    code = RELU

    def forward(self, p, x):
        return np.maximum(x, 0.0), x > 0

    def backward(self, p, cache, dy):
        return np.zeros(0), dy * cache


class Square(_Elementwise):
    """``y = z**2``."""

    code = SQUARE

    def forward(self, p, x):
        return x * x, x

    def backward(self, p, cache, dy):
        return np.zeros(0), 2.0 * cache * dy


class LogSoftmax(_Elementwise):
    """``y = z - logsumexp(z)`` along the features (log-probabilities of a classifier)."""

    code = LOGSOFTMAX

    def forward(self, p, x):
        m = np.max(x, axis=1, keepdims=True)
        shifted = x - m
        y = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        return y, y

    def backward(self, p, cache, dy):
        softmax = np.exp(cache)
        return np.zeros(0), dy - softmax * dy.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------

LAYER_TYPES = {cls.__name__: cls for cls in
               (Dense, Conv2D, Flatten, Tanh, Softplus, Sigmoid, ReLU, Square, LogSoftmax)}

ACTIVATIONS = {"tanh": Tanh, "softplus": Softplus, "sigmoid": Sigmoid, "relu": ReLU,
               "square": Square, "logsoftmax": LogSoftmax}


def activation(name):
    """A new activation layer from its name.

    Parameters
    ----------
    name : str
        One of ``"tanh"``, ``"softplus"``, ``"sigmoid"``, ``"relu"``, ``"square"``,
        ``"logsoftmax"`` (case-insensitive).

    Returns
    -------
    Layer
        An unsized activation layer (its size is bound by ``Sequential``).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[key]()


def layer_from_config(cfg):
    """Rebuild any registered layer from its :meth:`Layer.get_config` dictionary."""
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ValueError(f"layer config must be a dict with a 'type' key, got {cfg!r}")
    if cfg["type"] not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {cfg['type']!r}; known: {sorted(LAYER_TYPES)}")
    return LAYER_TYPES[cfg["type"]].from_config(cfg)
