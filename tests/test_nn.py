"""Tests of mme_numba.nn: hand-written backprop against autograd and central differences.

The autograd oracle is an interpreter of the int64 network description (``describe()``)
over ``kernel_params()``, written independently of the layer code, so the same tests check
the gradients and the spec contract of docs/architecture.md.
"""

import json

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.scipy.special import logsumexp as ag_logsumexp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import correlate2d

from mme_numba import nn
from mme_numba.nn.layers import (CONV2D, DENSE, LOGSOFTMAX, RELU, SIGMOID, SOFTPLUS, SQUARE,
                                 TANH)

RTOL_AUTOGRAD = 1e-10  # same arithmetic up to summation order
RTOL_FD = 1e-7  # central differences with step 1e-5: truncation ~1e-10, rounding ~1e-11
FD_STEP = 1e-5


# ---------------------------------------------------------------------------------------
# Oracles
# ---------------------------------------------------------------------------------------


def spec_forward(spec, theta, X):
    """Interpret ``spec`` with autograd.numpy: an independent forward pass."""
    h = X
    for code, n_in, n_out, off, a, b, c, d in spec.tolist():
        assert h.shape[1] == n_in
        if code == DENSE:
            W = anp.reshape(theta[off:off + n_out * n_in], (n_out, n_in))
            h = anp.dot(h, W.T)
            if a:
                h = h + theta[off + n_out * n_in:off + n_out * n_in + n_out]
        elif code == CONV2D:
            c_in, H, Wd, k = a, b, c, d
            c_out = n_out // (H * Wd)
            nw = c_out * c_in * k * k
            K = anp.reshape(theta[off:off + nw], (c_out, c_in, k, k))
            bias = theta[off + nw:off + nw + c_out]
            x4 = anp.reshape(h, (h.shape[0], c_in, H, Wd))
            pad = k // 2
            xp = anp.pad(x4, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
            y = 0.0
            for i in range(k):
                for j in range(k):
                    y = y + anp.einsum("oc,nchw->nohw", K[:, :, i, j],
                                       xp[:, :, i:i + H, j:j + Wd])
            y = y + anp.reshape(bias, (1, c_out, 1, 1))
            h = anp.reshape(y, (h.shape[0], n_out))
        elif code == TANH:
            h = anp.tanh(h)
        elif code == SOFTPLUS:
            h = anp.logaddexp(0.0, h)
        elif code == SIGMOID:
            h = 0.5 * (anp.tanh(0.5 * h) + 1.0)
        elif code == RELU:
            h = anp.maximum(h, 0.0)
        elif code == SQUARE:
            h = h * h
        elif code == LOGSOFTMAX:
            h = h - ag_logsumexp(h, axis=1, keepdims=True)
        else:  # pragma: no cover - a code the oracle does not know is a test failure
            raise AssertionError(f"unknown spec code {code}")
    return h


def autograd_grads(net, X, dO):
    spec, theta = net.describe(), net.kernel_params().copy()

    def loss(th, x):
        return anp.sum(dO * spec_forward(spec, th, x))

    # A parameter-free net gives a zero θ gradient (autograd would warn on an unused input).
    g_theta = autograd.grad(loss, 0)(theta, X) if theta.size else np.zeros(0)
    return g_theta, autograd.grad(loss, 1)(theta, X)


def central_differences(f, v, h=FD_STEP):
    """Gradient of scalar ``f`` at ``v`` by central differences, coordinate by coordinate."""
    g = np.empty_like(v)
    for i in range(v.size):
        vp, vm = v.copy(), v.copy()
        vp.flat[i] += h
        vm.flat[i] -= h
        g.flat[i] = (f(vp) - f(vm)) / (2 * h)
    return g


def assert_close(actual, expected, rtol):
    """Max-norm relative agreement: ``max|a - e| <= rtol * max(max|e|, 1)``."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(np.max(np.abs(expected), initial=0.0), 1.0)
    err = np.max(np.abs(actual - expected), initial=0.0)
    assert err <= rtol * scale, f"max abs error {err:.3e} > {rtol:.1e} * {scale:.3e}"


def check_gradients(net, X, seed=0, fd=True):
    """Hand-written backward == autograd == central differences, for θ and for X."""
    rng = np.random.default_rng(seed)
    dO = rng.normal(size=(X.shape[0], net.n_observables))
    dtheta, dX = net.backward(X, dO)
    assert dtheta.shape == (net.n_params,) and dX.shape == X.shape

    # The oracle's forward agrees with the network's forward.
    assert_close(net.forward(X), spec_forward(net.describe(), net.theta, X), RTOL_AUTOGRAD)

    ag_theta, ag_X = autograd_grads(net, X, dO)
    assert_close(dtheta, ag_theta, RTOL_AUTOGRAD)
    assert_close(dX, ag_X, RTOL_AUTOGRAD)

    # The cached pair gives the same numbers as backward().
    O, caches = net.forward_cached(X)
    dtheta_c, dX_c = net.backward_cached(caches, dO)
    np.testing.assert_array_equal(dtheta_c, dtheta)
    np.testing.assert_array_equal(dX_c, dX)

    if fd:
        theta0 = net.theta.copy()
        fd_theta = central_differences(lambda t: np.sum(dO * net.forward(X, theta=t)), theta0)
        fd_X = central_differences(lambda x: np.sum(dO * net.forward(x)), X.copy())
        np.testing.assert_array_equal(net.theta, theta0)  # forward(theta=) left θ alone
        assert_close(dtheta, fd_theta, RTOL_FD)
        assert_close(dX, fd_X, RTOL_FD)


# ---------------------------------------------------------------------------------------
# Gradients: every layer, then random architectures
# ---------------------------------------------------------------------------------------

SINGLE_LAYERS = {
    "dense": lambda: nn.Sequential([nn.Dense(4, 3)]),
    "dense_nobias": lambda: nn.Sequential([nn.Dense(4, 3, bias=False)]),
    "conv_k1": lambda: nn.Sequential([nn.Conv2D(2, 3, 1, (3, 4))]),
    "conv_k3": lambda: nn.Sequential([nn.Conv2D(2, 3, 3, (4, 3))]),
    "conv_k5": lambda: nn.Sequential([nn.Conv2D(2, 2, 5, (3, 4))]),
    "flatten": lambda: nn.Sequential([nn.Flatten()], n_features=5),
    **{name: (lambda name=name: nn.Sequential([nn.activation(name)], n_features=5))
       for name in ("tanh", "softplus", "sigmoid", "relu", "square", "logsoftmax")},
}


@pytest.mark.parametrize("name", sorted(SINGLE_LAYERS))
def test_each_layer_backward_matches_autograd_and_central_differences(name):
    net = SINGLE_LAYERS[name]()
    rng = np.random.default_rng(1)
    # Random biases too, so that a bias gradient bug cannot hide behind zero init.
    net.set_theta(rng.normal(size=net.n_params))
    X = 2.0 * rng.normal(size=(4, net.n_features))
    check_gradients(net, X, seed=2)


ACTS = ["tanh", "softplus", "sigmoid", "relu"]


@settings(deadline=None, max_examples=30, derandomize=True)
@given(sizes=st.lists(st.integers(1, 5), min_size=2, max_size=5),
       act=st.sampled_from(ACTS),
       out_act=st.sampled_from([None, "tanh", "square", "logsoftmax", "sigmoid"]),
       n=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_random_mlp_backward(sizes, act, out_act, n, seed):
    net = nn.mlp(sizes, activation=act, output_activation=out_act, random_state=seed)
    rng = np.random.default_rng(seed)
    net.set_theta(net.theta + 0.1 * rng.normal(size=net.n_params))
    X = rng.normal(size=(n, sizes[0]))
    check_gradients(net, X, seed=seed)


@st.composite
def conv_nets(draw):
    c_in = draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    k1, k2 = draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 3, 5]))
    c1, c2 = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    act = draw(st.sampled_from(ACTS + ["square"]))
    layers = [nn.Conv2D(c_in, c1, k1, (H, W)), nn.activation(act)]
    if draw(st.booleans()):
        layers += [nn.Conv2D(c1, c2, k2, (H, W)), nn.activation(act)]
    else:
        c2 = c1
    layers += [nn.Flatten(), nn.Dense(c2 * H * W, draw(st.integers(1, 4)))]
    if draw(st.booleans()):
        layers.append(nn.LogSoftmax())
    return nn.Sequential(layers, random_state=draw(st.integers(0, 2**16)))


@settings(deadline=None, max_examples=30, derandomize=True)
@given(net=conv_nets(), n=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_random_conv_net_backward(net, n, seed):
    rng = np.random.default_rng(seed)
    net.set_theta(net.theta + 0.1 * rng.normal(size=net.n_params))
    X = rng.uniform(0.0, 1.0, size=(n, net.n_features))
    check_gradients(net, X, seed=seed)


def test_stock_cnns_backward_match_autograd():
    rng = np.random.default_rng(3)
    for net in (nn.paper_cnn(4, image_shape=(5, 6), channels=(2, 3)),
                nn.classifier_cnn(3, image_shape=(4, 4), channels=(2, 2), hidden=5)):
        X = rng.uniform(size=(3, net.n_features))
        check_gradients(net, X, seed=4, fd=False)


# ---------------------------------------------------------------------------------------
# Conv2D forward against naive oracles
# ---------------------------------------------------------------------------------------


def naive_conv(x, K, b):
    n, c_in, H, W = x.shape
    c_out, _, k, _ = K.shape
    pad = k // 2
    y = np.zeros((n, c_out, H, W))
    for s in range(n):
        for o in range(c_out):
            for h in range(H):
                for w in range(W):
                    acc = b[o]
                    for c in range(c_in):
                        for i in range(k):
                            for j in range(k):
                                hh, ww = h + i - pad, w + j - pad
                                if 0 <= hh < H and 0 <= ww < W:
                                    acc += K[o, c, i, j] * x[s, c, hh, ww]
                    y[s, o, h, w] = acc
    return y


@pytest.mark.parametrize("c_in,c_out,k,H,W", [(1, 1, 1, 3, 3), (2, 3, 3, 4, 5),
                                              (3, 2, 5, 5, 4), (1, 2, 5, 2, 3),
                                              (2, 1, 3, 1, 1)])
def test_conv_forward_equals_naive_loop_and_correlate2d(c_in, c_out, k, H, W):
    layer = nn.Conv2D(c_in, c_out, k, (H, W))
    rng = np.random.default_rng(5)
    p = rng.normal(size=layer.n_params)
    x = rng.normal(size=(3, layer.input_size))
    y, _ = layer.forward(p, x)
    assert y.shape == (3, c_out * H * W)
    K = p[:c_out * c_in * k * k].reshape(c_out, c_in, k, k)
    b = p[c_out * c_in * k * k:]
    x4 = x.reshape(3, c_in, H, W)
    y4 = y.reshape(3, c_out, H, W)
    np.testing.assert_allclose(y4, naive_conv(x4, K, b), rtol=1e-12, atol=1e-12)
    for s in range(3):
        for o in range(c_out):
            ref = b[o] + sum(correlate2d(x4[s, c], K[o, c], mode="same") for c in range(c_in))
            np.testing.assert_allclose(y4[s, o], ref, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------
# Activations at extreme inputs
# ---------------------------------------------------------------------------------------


def test_activations_are_stable_at_extreme_inputs():
    z = np.array([[-1000.0, -40.0, 0.0, 40.0, 1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        sp, _ = nn.Softplus(5).forward(None, z)
        sg, _ = nn.Sigmoid(5).forward(None, z)
        ls, _ = nn.LogSoftmax(5).forward(None, z)
        _, dsp = nn.Softplus(5).backward(None, z, np.ones_like(z))
    np.testing.assert_allclose(sp, [[0.0, np.exp(-40.0), np.log(2.0), 40.0, 1000.0]],
                               rtol=1e-15, atol=0)
    np.testing.assert_allclose(sg, [[0.0, np.exp(-40.0), 0.5, 1.0, 1.0]], rtol=1e-15, atol=0)
    np.testing.assert_allclose(dsp, sg, rtol=1e-15, atol=0)
    np.testing.assert_allclose(ls, [[-2000.0, -1040.0, -1000.0, -960.0, 0.0]], rtol=1e-15)


# ---------------------------------------------------------------------------------------
# One flat θ: views, set_theta, copy, config round trip, seeding
# ---------------------------------------------------------------------------------------


def test_layer_params_are_views_into_theta():
    net = nn.mlp([3, 4, 2])
    X = np.random.default_rng(6).normal(size=(5, 3))
    params = net.params()
    assert [p.size for p in params] == [16, 0, 10]
    assert all(np.shares_memory(p, net.theta) for p in params if p.size)
    assert net.kernel_params() is net.theta
    before = net.forward(X)
    params[2][-1] += 1.0  # last bias of the output layer, through the view
    assert net.theta[-1] == pytest.approx(params[2][-1])
    after = net.forward(X)
    np.testing.assert_allclose(after[:, 1] - before[:, 1], 1.0, rtol=1e-12)
    np.testing.assert_array_equal(after[:, 0], before[:, 0])
    net.theta[0] += 0.5  # writing θ changes the output
    assert not np.allclose(net.forward(X), after)


def test_set_theta_keeps_views_and_matches_explicit_theta():
    net = nn.paper_cnn(3, image_shape=(4, 4), channels=(2, 2))
    X = np.random.default_rng(7).uniform(size=(2, 16))
    new = np.random.default_rng(8).normal(size=net.n_params)
    expected = net.forward(X, theta=new)
    theta_obj, params = net.theta, net.params()
    net.set_theta(new)
    assert net.theta is theta_obj
    np.testing.assert_array_equal(params[0], new[:params[0].size])
    np.testing.assert_array_equal(net.forward(X), expected)
    net.theta = np.zeros(net.n_params)  # assignment copies in too
    assert net.theta is theta_obj and not params[0].any()
    net.theta -= 1.0  # in-place update keeps the same array
    assert net.theta is theta_obj and np.all(params[0] == -1.0)


def test_copy_is_independent():
    net = nn.classifier_cnn(3, image_shape=(4, 4), channels=(2, 2), hidden=5)
    X = np.random.default_rng(9).uniform(size=(3, 16))
    twin = net.copy()
    assert not np.shares_memory(twin.theta, net.theta)
    np.testing.assert_array_equal(twin.forward(X), net.forward(X))
    before = net.forward(X)
    twin.theta[:] += 0.3
    np.testing.assert_array_equal(net.forward(X), before)
    assert not np.allclose(twin.forward(X), before)


@pytest.mark.parametrize("make", [
    lambda: nn.mlp([2, 5, 3], activation="softplus", output_activation="square"),
    lambda: nn.Sequential([nn.Dense(3, 4, bias=False), nn.Sigmoid(), nn.Dense(4, 2),
                           nn.ReLU(), nn.Dense(2, 2), nn.LogSoftmax()]),
    lambda: nn.paper_cnn(4, image_shape=(5, 3), channels=(2, 3), kernel_size=5),
    lambda: nn.classifier_cnn(4, image_shape=(4, 4), channels=(2, 2), hidden=6,
                              activation="relu"),
])
def test_config_json_round_trip_gives_identical_outputs(make):
    net = make()
    net.set_theta(np.random.default_rng(10).normal(size=net.n_params))
    cfg = json.loads(json.dumps(net.get_config()))
    rebuilt = nn.Sequential.from_config(cfg)
    assert rebuilt.get_config() == net.get_config()
    np.testing.assert_array_equal(rebuilt.describe(), net.describe())
    rebuilt.set_theta(net.theta)
    X = np.random.default_rng(11).uniform(size=(4, net.n_features))
    np.testing.assert_array_equal(rebuilt.forward(X), net.forward(X))


def test_random_state_fixes_initial_theta_and_init_scheme():
    a, b = nn.mlp([3, 6, 2], random_state=1), nn.mlp([3, 6, 2], random_state=1)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert not np.array_equal(a.theta, nn.mlp([3, 6, 2], random_state=2).theta)
    g = nn.mlp([3, 6, 2], random_state=np.random.default_rng(1))
    np.testing.assert_array_equal(g.theta, a.theta)
    W1, b1 = a.params()[0][:18], a.params()[0][18:]
    assert np.all(np.abs(W1) <= np.sqrt(6.0 / 9.0)) and np.all(b1 == 0.0)
    conv = nn.Conv2D(2, 3, 3, (4, 4))
    p = conv.init_params(np.random.default_rng(0))
    assert np.all(np.abs(p[:54]) <= np.sqrt(6.0 / (5 * 9))) and np.all(p[54:] == 0.0)
    assert np.std(p[:54]) > 0.2 * np.sqrt(6.0 / (5 * 9))  # not degenerate


def test_user_layers_are_not_mutated_when_bound():
    act = nn.Tanh()
    net = nn.Sequential([nn.Dense(2, 3), act, nn.Dense(3, 4), act])
    assert act.size is None
    assert [layer.output_size for layer in net.layers] == [3, 3, 4, 4]


# ---------------------------------------------------------------------------------------
# describe(): the compiled network description
# ---------------------------------------------------------------------------------------


def assert_spec_consistent(net, spec):
    assert spec.dtype == np.int64 and spec.ndim == 2 and spec.shape[1] == 8
    assert spec[0, 1] == net.n_features and spec[-1, 2] == net.n_observables
    np.testing.assert_array_equal(spec[1:, 1], spec[:-1, 2])  # sizes chain up


def test_describe_mlp():
    net = nn.mlp([2, 3, 4, 1], activation="relu", output_activation="sigmoid")
    expected = [[DENSE, 2, 3, 0, 1, 0, 0, 0],
                [RELU, 3, 3, 0, 0, 0, 0, 0],
                [DENSE, 3, 4, 9, 1, 0, 0, 0],
                [RELU, 4, 4, 0, 0, 0, 0, 0],
                [DENSE, 4, 1, 25, 1, 0, 0, 0],
                [SIGMOID, 1, 1, 0, 0, 0, 0, 0]]
    spec = net.describe()
    np.testing.assert_array_equal(spec, expected)
    assert_spec_consistent(net, spec)
    assert net.n_params == 30
    no_bias = nn.Sequential([nn.Dense(2, 3, bias=False), nn.Square(), nn.Dense(3, 1)])
    np.testing.assert_array_equal(no_bias.describe(), [[DENSE, 2, 3, 0, 0, 0, 0, 0],
                                                       [SQUARE, 3, 3, 0, 0, 0, 0, 0],
                                                       [DENSE, 3, 1, 6, 1, 0, 0, 0]])


def test_describe_paper_cnn():
    net = nn.paper_cnn()
    expected = [[CONV2D, 64, 512, 0, 1, 8, 8, 3],
                [TANH, 512, 512, 0, 0, 0, 0, 0],
                [CONV2D, 512, 1024, 80, 8, 8, 8, 3],
                [TANH, 1024, 1024, 0, 0, 0, 0, 0],
                [DENSE, 1024, 16, 80 + 1168, 1, 0, 0, 0]]
    spec = net.describe()
    np.testing.assert_array_equal(spec, expected)
    assert_spec_consistent(net, spec)
    assert net.n_params == 80 + 1168 + 16400
    odd = nn.paper_cnn(5, image_shape=(6, 4), channels=(3, 2), kernel_size=5,
                       activation="softplus")
    np.testing.assert_array_equal(odd.describe(), [
        [CONV2D, 24, 72, 0, 1, 6, 4, 5],
        [SOFTPLUS, 72, 72, 0, 0, 0, 0, 0],
        [CONV2D, 72, 48, 3 * 25 + 3, 3, 6, 4, 5],
        [SOFTPLUS, 48, 48, 0, 0, 0, 0, 0],
        [DENSE, 48, 5, 78 + 2 * 3 * 25 + 2, 1, 0, 0, 0]])


def test_describe_classifier_cnn():
    net = nn.classifier_cnn()
    dense1 = 80 + 1168
    dense2 = dense1 + 1024 * 64 + 64
    expected = [[CONV2D, 64, 512, 0, 1, 8, 8, 3],
                [TANH, 512, 512, 0, 0, 0, 0, 0],
                [CONV2D, 512, 1024, 80, 8, 8, 8, 3],
                [TANH, 1024, 1024, 0, 0, 0, 0, 0],
                [DENSE, 1024, 64, dense1, 1, 0, 0, 0],
                [TANH, 64, 64, 0, 0, 0, 0, 0],
                [DENSE, 64, 10, dense2, 1, 0, 0, 0],
                [LOGSOFTMAX, 10, 10, 0, 0, 0, 0, 0]]
    spec = net.describe()
    np.testing.assert_array_equal(spec, expected)
    assert_spec_consistent(net, spec)
    assert net.n_params == dense2 + 64 * 10 + 10
    X = np.random.default_rng(12).uniform(size=(4, 64))
    np.testing.assert_allclose(np.exp(net.forward(X)).sum(axis=1), 1.0, rtol=1e-12)


def test_repr_names_layers_and_sizes():
    text = repr(nn.paper_cnn())
    assert "n_params=17648" in text and "Conv2D" in text and "64 -> 512" in text


# ---------------------------------------------------------------------------------------
# Clear errors
# ---------------------------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    net = nn.mlp([3, 4, 2])
    with pytest.raises(ValueError, match="3 features"):
        net.forward(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="2-D"):
        net.forward(np.zeros(3))
    with pytest.raises(ValueError, match="dO must have shape"):
        net.backward(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="theta must have shape"):
        net.set_theta(np.zeros(net.n_params + 1))
    with pytest.raises(ValueError, match="theta must have shape"):
        net.forward(np.zeros((1, 3)), theta=np.zeros(2))
    for bad in (np.nan, np.inf):
        theta = net.theta.copy()
        theta[3] = bad
        with pytest.raises(ValueError, match="non-finite"):
            net.set_theta(theta)
        with pytest.raises(ValueError, match="non-finite"):
            net.theta = theta
    assert np.all(np.isfinite(net.theta))

    with pytest.raises(ValueError, match="odd"):
        nn.Conv2D(1, 2, 4, (8, 8))
    with pytest.raises(ValueError, match="input_shape"):
        nn.Conv2D(1, 2, 3, 8)
    with pytest.raises(ValueError, match="positive integer"):
        nn.Dense(0, 3)
    with pytest.raises(ValueError, match="unknown activation"):
        nn.activation("swish")
    with pytest.raises(ValueError, match="unknown activation"):
        nn.mlp([2, 3, 1], activation="square")
    with pytest.raises(ValueError, match="at least"):
        nn.mlp([2])
    with pytest.raises(ValueError, match="expects input size 4 but receives 3"):
        nn.Sequential([nn.Dense(2, 3), nn.Dense(4, 1)])
    with pytest.raises(ValueError, match="n_features"):
        nn.Sequential([nn.Tanh()])
    with pytest.raises(ValueError, match="has size 5 but follows a layer of size 3"):
        nn.Sequential([nn.Dense(2, 3), nn.Tanh(5)])
    with pytest.raises(ValueError, match="channels must be a pair"):
        nn.paper_cnn(channels=(8,))
    with pytest.raises(ValueError, match="unknown activation"):
        nn.classifier_cnn(activation="gelu")
    with pytest.raises(ValueError, match="unknown layer type"):
        nn.Sequential.from_config({"n_features": 2, "layers": [{"type": "Dropout"}]})
