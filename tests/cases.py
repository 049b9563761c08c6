"""Networks, chain states and solver wrappers shared by several test files (test_images,
test_scan; PoisonOnce: test_training, test_pin_orchestration)."""

import numpy as np

from mme_numba import kernels as K
from mme_numba.nn import Conv2D, Dense, Sequential, activation


def chain_state(spec, params, lam, term2, n, d, seed, lo=0.0, hi=1.0):
    """``(x, energy, rng_state, accepted)`` for ``n`` chains in ``[lo, hi]^d``, with every
    third coordinate exactly at the lower face, as many pixels of the digits are."""
    rng = np.random.default_rng(seed)
    x = lo + (hi - lo) * rng.random((n, d))
    x[:, ::3] = lo
    energy = K.energy_batch(spec, params, lam, x, *term2)
    return x, energy, K.seed_states(seed, n), np.zeros(n, np.int64)


def conv_net(shape, c1, c2, k, act, n_out, seed, tail=(), c0=1):
    """conv(c0 -> c1) act conv(c1 -> c2) act dense(-> n_out) + ``tail``, biases non-zero so
    every term of an incremental update is exercised."""
    H, W = shape
    layers = [Conv2D(c0, c1, k, shape), activation(act), Conv2D(c1, c2, k, shape),
              activation(act), Dense(c2 * H * W, n_out)] + list(tail)
    net = Sequential(layers, random_state=seed)
    net.set_theta(net.theta + 0.1 * np.random.default_rng(seed).standard_normal(net.n_params))
    return net


def conv_only_square():
    """``(spec, params, lam)`` of a network without DENSE: two 3x3 convs with tanh on 3x4
    images, then a square; the observables are the last activations, channel-major."""
    net = Sequential([Conv2D(1, 2, 3, (3, 4)), activation("tanh"), Conv2D(2, 2, 3, (3, 4)),
                      activation("tanh")], random_state=4)
    net.set_theta(net.theta + 0.2)
    spec = np.vstack([net.describe(), [[K.SQUARE, 24, 24, 0, 0, 0, 0, 0]]])
    return spec, net.kernel_params(), np.random.default_rng(0).normal(size=24)


class PoisonOnce:
    """A λ solver wrapper that returns NaN at chosen calls: a divergence on demand."""

    def __init__(self, solver, bad_calls):
        self.solver, self.bad, self.calls = solver, set(bad_calls), 0
        self.adam = getattr(solver, "adam", None)

    def fit(self, lam, *args):
        self.calls += 1
        new, info = self.solver.fit(lam, *args)
        if self.calls in self.bad:
            new = np.full_like(new, np.nan)
        return new, info
