"""Sequential networks over one flat parameter vector θ, and the stock architectures."""

import numpy as np

from ..spec import SPEC_WIDTH
from .layers import (
    Conv2D,
    Dense,
    Flatten,
    Layer,
    LogSoftmax,
    _Elementwise,
    _positive_int,
    activation as _activation,
    layer_from_config,
)
from .params import FlatParameters

_MLP_ACTIVATIONS = ("tanh", "softplus", "sigmoid", "relu")


def _as_rng(random_state):
    from .._validation import as_generator

    return as_generator(random_state)


class Sequential(FlatParameters):
    """A chain of layers whose parameters all live in one flat float64 vector ``theta``.

    Parameters
    ----------
    layers : sequence of Layer
        Applied in order. Size-less layers (activations, ``Flatten``) take their size from
        the previous layer; they are bound as sized copies, the given objects are untouched.
    n_features : int, optional
        Input dimension ``d``; inferred from the first layer if ``None``.
    random_state : int or numpy.random.Generator, default 0
        Seeds the initial θ (each layer's ``init_params`` in order).

    Attributes
    ----------
    layers : list of Layer
    n_features : int
        Input dimension ``d``.
    n_observables : int
        Output dimension ``m``.
    n_params : int
        Size of ``theta``.
    theta : ndarray, shape (n_params,)
        The parameters; each layer's parameters are views into it (see :meth:`params`).
        Assigning ``net.theta = v`` copies ``v`` in (like :meth:`set_theta`).
    """

    def __init__(self, layers, n_features=None, random_state=0):
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for layer in layers:
            if not isinstance(layer, Layer):
                raise ValueError(f"Sequential layers must be Layer instances, got {layer!r}")
        if n_features is None:
            n_features = layers[0].input_size
            if n_features is None:
                raise ValueError(
                    f"cannot infer n_features: the first layer {layers[0]!r} has no input "
                    "size; pass n_features"
                )
        if isinstance(n_features, (bool, np.bool_)) or not isinstance(
                n_features, (int, np.integer)) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        size = int(n_features)
        bound = []
        for i, layer in enumerate(layers):
            if isinstance(layer, _Elementwise):
                layer = layer.bind(size)
            elif layer.input_size != size:
                raise ValueError(
                    f"layer {i} ({layer!r}) expects input size {layer.input_size} but receives "
                    f"{size}"
                )
            bound.append(layer)
            size = layer.output_size
        self.layers = bound
        self.n_features = int(n_features)
        self.n_observables = int(size)

        self._offsets = np.cumsum([0] + [layer.n_params for layer in bound]).tolist()
        self.n_params = self._offsets[-1]
        rng = _as_rng(random_state)
        self._theta = np.empty(self.n_params)
        self._views = [self._theta[a:b] for a, b in zip(self._offsets[:-1], self._offsets[1:])]
        for layer, view in zip(bound, self._views):
            view[:] = layer.init_params(rng)

    # -- parameters ------------------------------------------------------------------------

    def params(self):
        """Per-layer parameter views into ``theta``: a list of ``(layer.n_params,)`` arrays."""
        return list(self._views)

    def kernel_params(self):
        """The float64 vector the compiled interpreter reads: ``theta`` itself, no copy."""
        return self._theta

    # -- forward and backward --------------------------------------------------------------

    def _check_X(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, {self.n_features}), got shape {X.shape}")
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} columns but the network expects {self.n_features} features"
            )
        return X

    def _layer_params(self, theta):
        if theta is None:
            return self._views
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (self.n_params,):
            raise ValueError(f"theta must have shape ({self.n_params},), got {theta.shape}")
        return [theta[a:b] for a, b in zip(self._offsets[:-1], self._offsets[1:])]

    def forward(self, X, theta=None):
        """Observables ``O(X; θ)``.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        theta : array_like, shape (n_params,), optional
            Evaluate at these parameters instead of ``self.theta`` (which is not modified).

        Returns
        -------
        O : ndarray, shape (n, n_observables)
        """
        h = self._check_X(X)
        for layer, p in zip(self.layers, self._layer_params(theta)):
            h, _ = layer.forward(p, h)
        return h

    def forward_cached(self, X):
        """Forward pass at ``self.theta`` keeping what :meth:`backward_cached` needs.

        Returns
        -------
        O : ndarray, shape (n, n_observables)
        caches : list
            One opaque entry per layer.
        """
        h = self._check_X(X)
        caches = []
        for layer, p in zip(self.layers, self._views):
            h, cache = layer.forward(p, h)
            caches.append(cache)
        return h, caches

    def backward_cached(self, caches, dO):
        """Gradient of ``sum(dO * O)`` from the caches of :meth:`forward_cached`.

        Parameters
        ----------
        caches : list
            From :meth:`forward_cached` (with ``theta`` unchanged since).
        dO : array_like, shape (n, n_observables)
            Upstream gradient.

        Returns
        -------
        dtheta : ndarray, shape (n_params,)
            Summed over the samples.
        dX : ndarray, shape (n, n_features)
        """
        dh = np.asarray(dO, dtype=np.float64)
        if dh.ndim != 2 or dh.shape[1] != self.n_observables:
            raise ValueError(
                f"dO must have shape (n, {self.n_observables}), got {dh.shape}"
            )
        if len(caches) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} caches, got {len(caches)}")
        dtheta = np.empty(self.n_params)
        for i in range(len(self.layers) - 1, -1, -1):
            dp, dh = self.layers[i].backward(self._views[i], caches[i], dh)
            dtheta[self._offsets[i]:self._offsets[i + 1]] = dp
        return dtheta, dh

    def backward(self, X, dO):
        """Gradient of ``sum(dO * O(X; θ))`` with respect to θ and X (recomputes forward).

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        dO : array_like, shape (n, n_observables)

        Returns
        -------
        dtheta : ndarray, shape (n_params,)
        dX : ndarray, shape (n, n_features)
        """
        X = self._check_X(X)
        dO = np.asarray(dO, dtype=np.float64)
        if dO.shape != (X.shape[0], self.n_observables):
            raise ValueError(
                f"dO must have shape ({X.shape[0]}, {self.n_observables}), got {dO.shape}"
            )
        _, caches = self.forward_cached(X)
        return self.backward_cached(caches, dO)

    # -- description, serialization --------------------------------------------------------

    def describe(self):
        """The compiled network description.

        Returns
        -------
        spec : ndarray of int64, shape (n_rows, 8)
            ``[code, in_size, out_size, param_offset, a, b, c, d]`` per operation
            (``docs/architecture.md``); offsets index :meth:`kernel_params`.
        """
        rows = []
        for layer, offset in zip(self.layers, self._offsets):
            rows.extend(layer.spec_rows(offset))
        return np.array(rows, dtype=np.int64).reshape(-1, SPEC_WIDTH)

    def get_config(self):
        """JSON-able architecture description (no parameters)."""
        return {"type": "Sequential", "n_features": self.n_features,
                "layers": [layer.get_config() for layer in self.layers]}

    @classmethod
    def from_config(cls, cfg):
        """Rebuild a network from :meth:`get_config` output (θ freshly initialized).

        Set the saved parameters afterwards with :meth:`set_theta`.
        """
        if not isinstance(cfg, dict) or "layers" not in cfg:
            raise ValueError("Sequential config must be a dict with a 'layers' list")
        if cfg.get("type", "Sequential") != "Sequential":
            raise ValueError(f"not a Sequential config: type {cfg.get('type')!r}")
        layers = [layer_from_config(c) for c in cfg["layers"]]
        return cls(layers, n_features=cfg.get("n_features"))

    def copy(self):
        """Deep copy, parameters included; shares no memory with ``self``."""
        new = type(self).from_config(self.get_config())
        new.set_theta(self._theta)
        return new

    def __repr__(self):
        lines = [f"Sequential(n_features={self.n_features}, n_observables="
                 f"{self.n_observables}, n_params={self.n_params})"]
        for i, layer in enumerate(self.layers):
            lines.append(f"  ({i}) {layer!r}: {layer.input_size} -> {layer.output_size}, "
                         f"{layer.n_params} params")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Stock architectures
# ---------------------------------------------------------------------------------------


def mlp(sizes, activation="tanh", output_activation=None, random_state=0):
    """Multi-layer perceptron observables.

    Parameters
    ----------
    sizes : sequence of int
        ``[d, h1, ..., m]``: Dense layers ``d -> h1 -> ... -> m``.
    activation : str, default "tanh"
        Between Dense layers: ``"tanh"``, ``"softplus"``, ``"sigmoid"`` or ``"relu"``.
    output_activation : str, optional
        Applied after the last Dense layer (any name :func:`activation` accepts); none if
        ``None``.
    random_state : int or numpy.random.Generator, default 0

    Returns
    -------
    Sequential
        Maps ``(n, d) -> (n, m)``.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"mlp sizes needs at least [d, m], got {sizes!r}")
    if not isinstance(activation, str) or activation.lower() not in _MLP_ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; expected one of {list(_MLP_ACTIVATIONS)}"
        )
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(_activation(activation))
    if output_activation is not None:
        layers.append(_activation(output_activation))
    return Sequential(layers, random_state=random_state)


def _conv_stack(image_shape, channels, kernel_size, activation):
    try:
        H, W = image_shape
    except (TypeError, ValueError):
        raise ValueError(f"image_shape must be a pair (H, W), got {image_shape!r}") from None
    try:
        c1, c2 = channels
    except (TypeError, ValueError):
        raise ValueError(f"channels must be a pair (c1, c2), got {channels!r}") from None
    _activation(activation)  # validate the name early
    layers = [Conv2D(1, c1, kernel_size, (H, W)), _activation(activation),
              Conv2D(c1, c2, kernel_size, (H, W)), _activation(activation), Flatten()]
    return layers, c2 * H * W


def paper_cnn(n_outputs=16, image_shape=(8, 8), channels=(8, 16), kernel_size=3,
              activation="tanh", random_state=0, hidden=None):
    """The paper's convolutional observables for single-channel images.

    Architecture (defaults for 8×8 digits in brackets)::

        Conv2D(1 -> c1 [8], k×k [3×3], same padding)  activation [tanh]
        Conv2D(c1 -> c2 [16], k×k [3×3], same padding) activation [tanh]
        Flatten
        Dense(c2*H*W [1024] -> n_outputs [16])          (linear)

    With the defaults θ has 80 + 1168 + 16400 = 17648 entries.

    The energy ``λ·O(x)`` of this network is linear in the flattened conv features, so it is
    a sum of terms that each see one 5×5 window (two 3×3 convolutions): a local random
    field. ``hidden=h`` inserts ``Dense(c2*H*W -> h)`` and the activation before the output
    layer, so that every observable can depend on the whole image at once
    (``docs/results.md``, digits).

    Parameters
    ----------
    n_outputs : int, default 16
        Number of observables ``m``.
    image_shape : (int, int), default (8, 8)
        ``(H, W)``; inputs are flattened rows of size ``H*W``.
    channels : (int, int), default (8, 16)
        Output channels ``(c1, c2)`` of the two convolutions.
    kernel_size : int, default 3
        Odd kernel side of both convolutions.
    activation : str, default "tanh"
        Any name :func:`activation` accepts.
    random_state : int or numpy.random.Generator, default 0
    hidden : int, optional
        Width of a hidden dense layer between the convolutions and the output layer
        (default: none, the paper's architecture).

    Returns
    -------
    Sequential
        Maps ``(n, H*W) -> (n, n_outputs)``.
    """
    layers, flat = _conv_stack(image_shape, channels, kernel_size, activation)
    if hidden is not None:
        hidden = _positive_int(hidden, "hidden")
        layers += [Dense(flat, hidden), _activation(activation)]
        flat = hidden
    layers.append(Dense(flat, n_outputs))
    return Sequential(layers, random_state=random_state)


def classifier_cnn(n_classes=10, image_shape=(8, 8), channels=(8, 16), hidden=64,
                   kernel_size=3, activation="tanh", random_state=0):
    """A CNN classifier returning class log-probabilities (used by steering fields).

    Architecture::

        Conv2D(1 -> c1, k×k) act, Conv2D(c1 -> c2, k×k) act, Flatten,
        Dense(c2*H*W -> hidden) act, Dense(hidden -> n_classes), LogSoftmax

    Parameters
    ----------
    n_classes : int, default 10
    image_shape : (int, int), default (8, 8)
    channels : (int, int), default (8, 16)
    hidden : int, default 64
    kernel_size : int, default 3
    activation : str, default "tanh"
    random_state : int or numpy.random.Generator, default 0

    Returns
    -------
    Sequential
        Maps ``(n, H*W) -> (n, n_classes)``, rows of ``log P(c | x)``.
    """
    layers, flat = _conv_stack(image_shape, channels, kernel_size, activation)
    layers += [Dense(flat, hidden), _activation(activation), Dense(hidden, n_classes),
               LogSoftmax()]
    return Sequential(layers, random_state=random_state)
