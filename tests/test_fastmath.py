"""The vectorizable tanh, log and cos_2pi against extended precision.

Tolerances: ``fastmath.tanh`` within 5e-16 and ``fastmath.log`` within 4e-16 relative of the
function computed in x87 extended precision (``np.longdouble``, 64-bit mantissa), at every tested
float64 including subnormals (tanh), branch points and non-finite values;
``fastmath.cos_2pi`` within 4e-16 absolute (the C library's ``cos(2*pi*u)`` is off by
4.6e-16). Energies of the paper's MLP within 1e-12 relative of the same network with the
C library's ``tanh``; the sampler's normal deviates within 1e-15 of ``rng.normal``.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from mme_numba.kernels import fastmath as F
from mme_numba.kernels import interpret as N
from mme_numba.kernels import rng as R
from mme_numba.kernels.moves import box as S

REL = 4e-16
REL_TANH = 5e-16  # one formula for every argument: about 2 ulp (libm: 3e-16)


@njit(cache=True)
def _tanh_all(z):
    out = np.empty_like(z)
    for k in range(z.shape[0]):
        out[k] = F.tanh(z[k])
    return out


def _reference(z):
    return np.tanh(z.astype(np.longdouble))


def _max_rel_error(z):
    got = _tanh_all(z).astype(np.longdouble)
    ref = _reference(z)
    scale = np.where(ref == 0, 1, np.abs(ref))
    return float(np.max(np.abs(got - ref) / scale))


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 60, reason="needs x87 extended precision")
def test_tanh_is_exact_on_every_scale():
    rng = np.random.default_rng(0)
    scales = [1e-300, 1e-12, 1e-6, 1e-3, 0.1, 0.3, 0.6, 1.0, 2.0, 5.0, 12.0, 25.0]
    z = np.concatenate([s * rng.standard_normal(20_000) for s in scales])
    edges = np.array([0.625, np.nextafter(0.625, 0), np.nextafter(0.625, 1), 20.0,
                      np.nextafter(20.0, 0), 19.06, 18.0, 5e-324, 2.2250738585072014e-308,
                      1e-8, 0.5 * math.log(3), 1.0])
    z = np.concatenate([z, edges, -edges])
    assert _max_rel_error(z) < REL_TANH


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 60, reason="needs x87 extended precision")
@settings(deadline=None, max_examples=200)
@given(st.floats(min_value=-40.0, max_value=40.0, allow_nan=False))
def test_tanh_matches_extended_precision(z):
    assert _max_rel_error(np.array([z])) < REL_TANH


def test_tanh_special_values():
    z = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e308, -1e308])
    out = _tanh_all(z)
    np.testing.assert_array_equal(out[:4], [0.0, -0.0, 1.0, -1.0])
    assert math.copysign(1.0, out[1]) == -1.0   # the sign of zero is kept
    assert math.isnan(out[4])
    np.testing.assert_array_equal(out[5:], [1.0, -1.0])
    # odd function, monotone and bounded on a fine grid through both branches
    g = np.linspace(-3.0, 3.0, 200_001)
    t = _tanh_all(g)
    np.testing.assert_array_equal(t, -_tanh_all(-g))
    assert np.all(np.diff(t) >= 0) and np.all(np.abs(t) <= 1.0)


def test_network_tanh_is_the_fast_one():
    # the interpreter's TANH rows (one-input and lock-step) use fastmath.tanh, bit for bit
    z = np.random.default_rng(1).normal(0, 2, 97)
    spec = np.array([[N.TANH, 97, 97, 0, 0, 0, 0, 0]])
    wa, wb = np.empty(97), np.empty(97)
    np.testing.assert_array_equal(N.forward_one(spec, np.zeros(0), z, wa, wb), _tanh_all(z))
    np.testing.assert_array_equal(N.observables_batch(spec, np.zeros(0), z[None, :])[0],
                                  _tanh_all(z))


def test_mlp_energies_within_1e12_of_libm_tanh():
    # The paper's 1 -> 32 -> 32 -> 2 tanh MLP with O(1) weights: energies with fastmath.tanh
    # against the same network evaluated in NumPy with the C library's tanh.
    rng = np.random.default_rng(2)
    sizes = [1, 32, 32, 2]
    rows, params, off = [], [], 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        rows.append([N.DENSE, a, b, off, 1, 0, 0, 0])
        params.append(rng.normal(0, 1.5 / math.sqrt(a), a * b + b))
        off += a * b + b
        if i < len(sizes) - 2:
            rows.append([N.TANH, b, b, 0, 0, 0, 0, 0])
    spec, params = np.array(rows, dtype=np.int64), np.concatenate(params)
    lam = np.array([1.3, -0.7])
    X = rng.uniform(-6, 6, (4096, 1))
    h = X
    for row in spec:
        if row[0] == N.DENSE:
            n_in, n_out, o = row[1], row[2], row[3]
            W = params[o:o + n_in * n_out].reshape(n_out, n_in)
            h = h @ W.T + params[o + n_in * n_out:o + n_in * n_out + n_out]
        else:
            h = np.tanh(h)
    exact = h @ lam
    got = N.energy_batch(spec, params, lam, X, *N.empty_term())
    np.testing.assert_allclose(got, exact, rtol=1e-12, atol=1e-12 * np.abs(exact).max())


EXTENDED = pytest.mark.skipif(np.finfo(np.longdouble).nmant < 60,
                              reason="needs x87 extended precision")


@njit(cache=True)
def _log_cos_all(x, u):
    a = np.empty_like(x)
    b = np.empty_like(u)
    for k in range(x.shape[0]):
        a[k] = F.log(x[k])
    for k in range(u.shape[0]):
        b[k] = F.cos_2pi(u[k])
    return a, b


def _sampler_uniforms(n, seed):
    # what the sampler feeds them: multiples of 2**-53 in [0, 1), plus the edges
    u = np.floor(np.random.default_rng(seed).random(n) * 2.0 ** 53) / 2.0 ** 53
    edges = [0.0, 2.0 ** -53, 0.125, 0.25, 0.5, 0.75, 1 - 2.0 ** -53,
             0.25 - 2.0 ** -53, 0.25 + 2.0 ** -53, 0.75 - 2.0 ** -53, 0.5 - 2.0 ** -53]
    return np.concatenate([u, edges])


@EXTENDED
def test_log_is_exact():
    rng = np.random.default_rng(3)
    u = _sampler_uniforms(300_000, 4)
    x = np.concatenate([1.0 - u, u[u > 0], np.exp(rng.uniform(-700, 700, 50_000)),
                        [1.0, 2.0, 0.5, np.sqrt(0.5), np.nextafter(np.sqrt(0.5), 1),
                         2.2250738585072014e-308, 1.7976931348623157e308]])
    got, _ = _log_cos_all(x, np.zeros(0))
    ref = np.log(x.astype(np.longdouble))
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), np.finfo(float).tiny)
    assert float(rel.max()) < REL
    assert got[np.flatnonzero(x == 1.0)[0]] == 0.0
    assert _log_cos_all(np.array([0.0]), np.zeros(0))[0][0] == -np.inf


@EXTENDED
def test_cos_2pi_is_exact_on_the_turn():
    u = _sampler_uniforms(300_000, 5)
    _, got = _log_cos_all(np.zeros(0), u)
    ref = np.cos(2 * np.pi * np.longdouble(1) * u.astype(np.longdouble))
    assert float(np.max(np.abs(got - ref))) < REL
    # exact at the quarter turns, where cos(2 pi u) through a rounded angle is not
    _, q = _log_cos_all(np.zeros(0), np.array([0.0, 0.25, 0.5, 0.75]))
    np.testing.assert_array_equal(q, [1.0, 0.0, -1.0, 0.0])


@njit(cache=True)
def _normals(state, n):
    fast = np.empty(n)
    for k in range(n):
        fast[k] = S._normal_all(state, 0)
    return fast


@njit(cache=True)
def _libm_normals(state, n):
    out = np.empty(n)
    for k in range(n):
        out[k] = R.normal(state, 0)
    return out


def test_sampler_normal_matches_rng_normal():
    # same two uniforms, same formula; fastmath's log and cos instead of the C library's
    state = R.seed_states(11, 1)
    fast = _normals(state.copy(), 100_000)
    slow = _libm_normals(state.copy(), 100_000)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-15 * np.abs(slow).max())
