"""Networks, chain states and solver wrappers shared by several test files (test_images,
test_scan; PoisonOnce: test_training, test_pin_orchestration; the host's arithmetic for the
bit pins: test_bit_reference, test_pin_orchestration)."""

import functools

import llvmlite.binding
import numpy as np
import pytest

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


@functools.lru_cache(maxsize=None)
def arithmetic():
    """``(name, description)`` of this host's floating-point arithmetic, as far as the bit pins
    see it.

    The same code gives different last bits on different CPUs: numba compiles for the host's
    CPU model (LLVM picks vector widths and where to fuse multiply-adds per model) and NumPy's
    OpenBLAS picks its matrix kernels by CPU. AMD Zen 3 and Zen 5 hosts gave the same bits
    (name ``"zen"``); other hosts are named by LLVM's CPU name and OpenBLAS's kernel set.
    """
    cpu = llvmlite.binding.get_host_cpu_name()
    try:
        import threadpoolctl
        np.ones(2) @ np.ones(2)  # load NumPy's BLAS
        blas = next((i.get("architecture") for i in threadpoolctl.threadpool_info()
                     if i.get("internal_api") == "openblas"), None)
    except ImportError:
        blas = None
    described = f"LLVM CPU {cpu}, OpenBLAS {blas or 'unknown'}"
    return ("zen" if cpu.startswith("znver") else f"{cpu}/{blas}"), described


def pinned(tables):
    """The reference table recorded for this host's :func:`arithmetic`; skips where none was
    recorded (the pins guard refactorings against a reference taken on the same arithmetic:
    ``python tests/<file>.py`` prints the table of the current code)."""
    name, described = arithmetic()
    if name not in tables:
        pytest.skip(f"no bit reference recorded for this host's arithmetic ({described}; "
                    f"recorded: {sorted(tables)})")
    return tables[name]
