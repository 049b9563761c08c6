"""Compiled kernels against their naive twins, exact densities and themselves.

Tolerances: network outputs and energies agree with ``tests/naive.py`` to 1e-12
(relative, and absolute in units of the largest activation in the network, at least 1); random streams agree bit for bit; the sampler agrees with the
naive sampler step for step (states bit-identical, positions/energies to 1e-12). The
lock-step kernels (several rows or chains per loop, lanes innermost) equal the one-at-a-time
kernels bit for bit, for any number of lanes.
Statistical tests use fixed seeds and reject at p < 1e-3.
"""

import math
import os
import sys

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

sys.path.insert(0, os.path.dirname(__file__))
import naive  # noqa: E402

from mme_numba import kernels as K  # noqa: E402
from mme_numba.kernels import interpret as N  # noqa: E402
from mme_numba.kernels import rng as R  # noqa: E402

TOL = dict(rtol=1e-12, atol=1e-12)
EMPTY = K.empty_term()


# --- building specs by hand ------------------------------------------------------------

def build(d, layers, seed=0, scale=0.7):
    """Spec and random params from a list of layer tuples.

    ``("dense", n_out, bias)``, ``("conv", c_in, h, w, k, c_out)``, ``("act", code)``,
    ``("powers", degree)``.
    """
    rng = np.random.default_rng(seed)
    rows, n_params, size = [], 0, d
    for layer in layers:
        kind = layer[0]
        if kind == "dense":
            _, n_out, bias = layer
            rows.append([K.DENSE, size, n_out, n_params, int(bias), 0, 0, 0])
            n_params += n_out * size + (n_out if bias else 0)
            size = n_out
        elif kind == "conv":
            _, c_in, h, w, k, c_out = layer
            assert size == c_in * h * w
            rows.append([K.CONV2D, size, c_out * h * w, n_params, c_in, h, w, k])
            n_params += c_out * c_in * k * k + c_out
            size = c_out * h * w
        elif kind == "act":
            rows.append([layer[1], size, size, 0, 0, 0, 0, 0])
        elif kind == "powers":
            rows.append([K.POWERS, size, size * layer[1], 0, layer[1], 0, 0, 0])
            size *= layer[1]
    spec = np.array(rows, dtype=np.int64).reshape(-1, 8)
    return spec, scale * rng.standard_normal(n_params)


def _magnitude(spec, params, X):
    """Largest |activation| anywhere in the network over the rows of ``X``, at least 1.

    Absolute rounding errors of the outputs scale with it: LOGSOFTMAX of activations near
    5e5 returns values near -0.7 whose last bits are those of 5e5 (~6e-11), whatever the
    summation order. The 1e-12 absolute tolerance is taken relative to this scale.
    """
    w = max(K.max_width(spec), X.shape[1])
    wa, wb = np.empty(w), np.empty(w)
    m = max(1.0, float(np.abs(X).max(initial=0.0)))
    for r in range(spec.shape[0]):
        for x in X:
            m = max(m, float(np.abs(K.forward_one(spec[:r + 1], params, x, wa, wb)).max()))
    return m


def check_against_naive(spec, params, X, lam=None, term2=EMPTY):
    naive_O = np.array([naive.naive_forward(spec, params, x) for x in X])
    tol = dict(rtol=1e-12, atol=1e-12 * _magnitude(spec, params, X))
    wa, wb = np.empty(K.max_width(spec)), np.empty(K.max_width(spec))
    for x, o in zip(X, naive_O):
        np.testing.assert_allclose(K.forward_one(spec, params, x, wa, wb), o, **tol)
    np.testing.assert_allclose(K.observables_batch(spec, params, X), naive_O, **tol)
    lam = np.linspace(-1.0, 1.5, naive_O.shape[1]) if lam is None else lam
    naive_H = [naive.naive_energy(spec, params, lam, x, *term2) for x in X]
    tol["atol"] *= max(1.0, float(np.abs(lam).sum()))
    if term2[0].shape[0]:
        tol["atol"] += 1e-12 * _magnitude(term2[0], term2[1], X) * float(np.abs(term2[2]).sum())
    np.testing.assert_allclose(K.energy_batch(spec, params, lam, X, *term2), naive_H, **tol)


ACTIVATIONS = [K.TANH, K.SOFTPLUS, K.SIGMOID, K.RELU, K.SQUARE, K.LOGSOFTMAX]


@pytest.mark.parametrize("code", ACTIVATIONS)
@pytest.mark.parametrize("bias", [False, True])
def test_dense_activation_dense_matches_naive(code, bias):
    spec, params = build(3, [("dense", 5, bias), ("act", code), ("dense", 2, True)], seed=code)
    X = 3.0 * np.random.default_rng(1).standard_normal((17, 3))
    check_against_naive(spec, params, X)


def test_activations_are_stable_at_extremes():
    # 800 overflows exp; the stable forms must stay finite and exact.
    z = np.array([-800.0, -40.0, -1e-3, 0.0, 1e-3, 40.0, 800.0])
    for code, expect in [(K.SOFTPLUS, np.logaddexp(0.0, z)),
                         (K.SIGMOID, np.exp(-np.logaddexp(0.0, -z))),
                         (K.LOGSOFTMAX, z - np.logaddexp.reduce(z))]:
        spec = np.array([[code, 7, 7, 0, 0, 0, 0, 0]])
        got = K.forward_one(spec, np.zeros(0), z, np.empty(7), np.empty(7))
        np.testing.assert_allclose(got, expect, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv_matches_naive(k):
    spec, params = build(2 * 4 * 5, [("conv", 2, 4, 5, k, 3), ("act", K.TANH),
                                     ("conv", 3, 4, 5, 3, 2), ("dense", 4, True)], seed=k)
    X = np.random.default_rng(2).uniform(0, 1, (9, 40))
    check_against_naive(spec, params, X)


def test_powers_and_logsoftmax_match_naive():
    spec, params = build(3, [("powers", 4), ("dense", 5, True), ("act", K.LOGSOFTMAX)])
    X = np.random.default_rng(3).uniform(-2, 2, (11, 3))
    check_against_naive(spec, params, X)
    # POWERS layout: out[j*degree + (p-1)] = x_j**p
    x = np.array([2.0, -3.0])
    got = K.forward_one(np.array([[K.POWERS, 2, 6, 0, 3, 0, 0, 0]]), np.zeros(0), x,
                        np.empty(6), np.empty(6))
    np.testing.assert_array_equal(got, [2.0, 4.0, 8.0, -3.0, 9.0, -27.0])


def test_two_term_energy_matches_naive():
    spec, params = build(4, [("dense", 6, True), ("act", K.SOFTPLUS), ("dense", 3, False)])
    spec2, params2 = build(4, [("dense", 5, True), ("act", K.TANH), ("dense", 3, True),
                               ("act", K.LOGSOFTMAX)], seed=9)
    lam2 = -2.0 * np.eye(3)[1]          # -h log P(c=1 | x)
    X = np.random.default_rng(4).uniform(-1, 1, (13, 4))
    check_against_naive(spec, params, X, lam=np.array([0.3, -1.0, 2.0]),
                        term2=(spec2, params2, lam2))
    h1 = K.energy_batch(spec, params, np.array([0.3, -1.0, 2.0]), X, *EMPTY)
    h2 = K.energy_batch(spec2, params2, lam2, X, *EMPTY)
    h = K.energy_batch(spec, params, np.array([0.3, -1.0, 2.0]), X, spec2, params2, lam2)
    np.testing.assert_allclose(h, h1 + h2, **TOL)


_LAYER = st.one_of(
    st.tuples(st.just("dense"), st.integers(1, 6), st.booleans()),
    st.tuples(st.just("act"), st.sampled_from(ACTIVATIONS)),
    st.tuples(st.just("powers"), st.integers(1, 3)),
)


@settings(deadline=None, max_examples=25)
@given(d=st.integers(1, 5), layers=st.lists(_LAYER, min_size=1, max_size=5),
       conv=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_random_architectures_match_naive(d, layers, conv, seed):
    if conv:  # an image front end: d channels of 3x2 pixels
        layers = [("conv", d, 3, 2, 3, 2)] + layers
        d = 6 * d
    spec, params = build(d, layers, seed=seed)
    X = np.random.default_rng(seed).uniform(-1.5, 1.5, (5, d))
    check_against_naive(spec, params, X)


def test_sequential_networks_match_interpreter():
    nn = pytest.importorskip("mme_numba.nn")
    rng = np.random.default_rng(5)
    for net, d in [(nn.mlp([3, 8, 8, 2], activation="softplus"), 3),
                   (nn.paper_cnn(4), 64),
                   (nn.classifier_cnn(10, hidden=16), 64)]:
        X = rng.uniform(0, 1, (7, d))
        np.testing.assert_allclose(K.observables_batch(net.describe(), net.kernel_params(), X),
                                   net.forward(X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 7), np.int64), "shape"),
    (np.array([[9, 2, 2, 0, 0, 0, 0, 0]]), "unknown op code"),
    (np.array([[K.DENSE, 2, 3, 0, 1, 0, 0, 0], [K.TANH, 2, 2, 0, 0, 0, 0, 0]]), "previous"),
    (np.array([[K.DENSE, 2, 3, 4, 1, 0, 0, 0]]), "exceed"),
    (np.array([[K.DENSE, 2, 3, 0, 2, 0, 0, 0]]), "has_bias"),
    (np.array([[K.CONV2D, 8, 8, 0, 2, 2, 2, 2]]), "odd"),
    (np.array([[K.CONV2D, 9, 8, 0, 2, 2, 2, 1]]), "C_in"),
    (np.array([[K.POWERS, 2, 5, 0, 2, 0, 0, 0]]), "degree"),
    (np.array([[K.LOGSOFTMAX, 2, 3, 0, 0, 0, 0, 0]]), "elementwise"),
    (np.array([[K.DENSE, 0, 3, 0, 0, 0, 0, 0]]), "positive"),
])
def test_validate_spec_rejects(bad, match):
    with pytest.raises(ValueError, match=match):
        K.validate_spec(bad, 10)


def test_validate_spec_accepts_and_entry_points_check_shapes():
    spec, params = build(3, [("dense", 4, True), ("act", K.TANH)])
    assert K.validate_spec(spec, params.size).dtype == np.int64
    assert K.validate_spec(np.zeros((0, 8)), 0).shape == (0, 8)
    assert K.max_width(spec) == 4
    with pytest.raises(ValueError, match="input features"):
        K.observables_batch(spec, params, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="lam"):
        K.energy_batch(spec, params, np.ones(3), np.zeros((2, 3)), *EMPTY)


# --- random streams ---------------------------------------------------------------------

def test_rng_known_answers_and_naive_twin():
    # splitmix64 from state 0 and xoshiro256** from state (1, 2, 3, 4): reference values.
    assert naive.mix64(naive.GOLDEN) == 0xE220A8397B1DCDAF
    state = np.array([[1, 2, 3, 4]], dtype=np.uint64)
    assert [int(R.next_u64(state, 0)) for _ in range(2)] == [11520, 0]
    np.testing.assert_array_equal(K.seed_states(12345, 5), naive.naive_seed_states(12345, 5))
    np.testing.assert_array_equal(K.seed_states(-7, 2), naive.naive_seed_states(-7, 2))
    states = K.seed_states(3, 2)
    twin = naive.Xoshiro(states[1])
    for _ in range(50):
        assert int(R.next_u64(states, 1)) == twin.next_u64()
        assert R.uniform(states, 1) == twin.uniform()
        assert abs(R.normal(states, 1) - twin.normal()) <= 1e-15
    np.testing.assert_array_equal(states[1], twin.state())


def test_seed_states_slices_and_distinct_chains():
    full = K.seed_states(42, 100)
    np.testing.assert_array_equal(K.seed_states(42, 30, first_chain=50), full[50:80])
    assert len({tuple(r) for r in full}) == 100
    assert not np.array_equal(K.seed_states(43, 1), full[:1])
    first = [R.next_u64(full, i) for i in range(100)]
    assert len(set(first)) == 100
    with pytest.raises(ValueError):
        K.seed_states(0, -1)


@numba.njit(cache=True)
def _draw(state, n):
    u = np.empty(n)
    z = np.empty(n)
    for k in range(n):
        u[k] = R.uniform(state, 0)
        z[k] = R.normal(state, 0)
    return u, z


def test_uniform_and_normal_moments():
    n = 200_000
    u, z = _draw(K.seed_states(2024, 1), n)
    assert u.min() >= 0.0 and u.max() < 1.0
    # 5-sigma bounds: mean 1/2 (sd 0.2887/sqrt n), var of N(0,1) (sd sqrt(2/n)).
    assert abs(u.mean() - 0.5) < 5 * 0.2887 / math.sqrt(n)
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1.0) < 5 * math.sqrt(2.0 / n)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert stats.kstest(u, "uniform").pvalue > 1e-3


# --- sampler step for step ------------------------------------------------------------

def _chains(spec, params, lam, term2, n_chains, d, lo, hi, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, (n_chains, d))
    energy = K.energy_batch(spec, params, lam, x, *term2)
    return x, energy, K.seed_states(seed, n_chains), np.zeros(n_chains, np.int64)


def _run(spec, params, lam, term2, state, lo, hi, step, n_sweeps, move, boundary,
         incremental=True):
    x, energy, rs, acc = (a.copy() for a in state)
    K.metropolis_sweeps(spec, params, lam, *term2, x, energy, lo, hi, step, n_sweeps, move,
                        boundary, rs, acc, incremental=incremental)
    return x, energy, rs, acc


SMALL_NETS = {
    "dense_first": ([("dense", 4, True), ("act", K.TANH), ("dense", 2, True)], EMPTY),
    "powers_first": ([("powers", 2), ("dense", 3, True), ("act", K.SOFTPLUS)], EMPTY),
    "two_terms": ([("dense", 3, False), ("act", K.SQUARE)],
                  build(3, [("dense", 4, True), ("act", K.LOGSOFTMAX)], seed=11)
                  + (np.array([0.0, -1.5, 0.0, 0.0]),)),
}


@pytest.mark.parametrize("net", sorted(SMALL_NETS))
@pytest.mark.parametrize("move", [K.MOVE_ALL, K.MOVE_SINGLE])
@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_sampler_equals_naive_step_for_step(net, move, boundary):
    layers, term2 = SMALL_NETS[net]
    spec, params = build(3, layers, seed=1)
    lam = np.linspace(0.5, 1.5, spec[-1, 2])
    lo, hi = np.array([-1.0, -0.5, 0.0]), np.array([1.0, 1.5, 0.5])
    step = np.array([0.3, 0.8, 1.5, 4.0])  # wide steps exercise the walls
    state = _chains(spec, params, lam, term2, 4, 3, lo, hi, seed=7)
    got = _run(spec, params, lam, term2, state, lo, hi, step, 6, move, boundary)
    want = naive.naive_metropolis(spec, params, lam, *term2, state[0], state[1], lo, hi, step,
                                  6, move, boundary, state[2], state[3])
    np.testing.assert_array_equal(got[2], want[2])   # same number of draws per chain
    np.testing.assert_array_equal(got[3], want[3])   # same accept decisions
    np.testing.assert_allclose(got[0], want[0], **TOL)
    np.testing.assert_allclose(got[1], want[1], **TOL)
    assert np.all((got[0] >= lo) & (got[0] <= hi))
    assert 0 < got[3].sum() < 6 * (3 if move else 1) * 4  # some accepted, some rejected


@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_incremental_dense_path_equals_full_forward(boundary):
    spec, params = build(8, [("dense", 16, True), ("act", K.TANH), ("dense", 4, True)])
    term2 = build(8, [("dense", 3, True), ("act", K.LOGSOFTMAX)], seed=3) + (-np.eye(3)[0],)
    lam = np.array([1.0, -0.5, 0.7, 0.2])
    lo, hi = -np.ones(8), np.ones(8)
    state = _chains(spec, params, lam, term2, 32, 8, lo, hi, seed=8)
    step = np.full(32, 0.6)
    inc = _run(spec, params, lam, term2, state, lo, hi, step, 40, K.MOVE_SINGLE, boundary)
    full = _run(spec, params, lam, term2, state, lo, hi, step, 40, K.MOVE_SINGLE, boundary,
                incremental=False)
    np.testing.assert_array_equal(inc[2], full[2])
    np.testing.assert_array_equal(inc[3], full[3])
    np.testing.assert_allclose(inc[0], full[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(inc[1], full[1], rtol=1e-11, atol=1e-11)
    # the energies carried along equal a fresh evaluation
    np.testing.assert_allclose(inc[1], K.energy_batch(spec, params, lam, inc[0], *term2),
                               rtol=1e-11, atol=1e-11)


def test_sampler_is_thread_count_independent():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    spec, params = build(5, [("dense", 8, True), ("act", K.TANH), ("dense", 3, True)])
    lam = np.array([1.0, -2.0, 0.5])
    lo, hi = -np.ones(5), 2 * np.ones(5)
    state = _chains(spec, params, lam, EMPTY, 257, 5, lo, hi, seed=9)
    step = np.linspace(0.1, 2.0, 257)
    before = numba.get_num_threads()
    results = []
    try:
        for n_threads in (1, 2):
            numba.set_num_threads(n_threads)
            runs = [_run(spec, params, lam, EMPTY, state, lo, hi, step, 7, move, b)
                    for move in (K.MOVE_ALL, K.MOVE_SINGLE) for b in (0, 1)]
            runs.append((K.energy_batch(spec, params, lam, runs[0][0], *EMPTY),
                         K.observables_batch(spec, params, runs[1][0])))
            results.append(runs)
    finally:
        numba.set_num_threads(before)
    for one, two in zip(*results):
        for a, b in zip(one, two):
            np.testing.assert_array_equal(a, b)


def test_sampler_rejects_bad_inplace_arrays():
    spec, params = build(2, [("dense", 2, True)])
    x, energy, rs, acc = _chains(spec, params, np.ones(2), EMPTY, 3, 2, -1.0, 1.0, seed=0)
    args = (spec, params, np.ones(2), *EMPTY)
    with pytest.raises(ValueError, match="accepted"):
        K.metropolis_sweeps(*args, x, energy, -np.ones(2), np.ones(2), np.ones(3), 1, 0, 0,
                            rs, acc.astype(np.int32))
    with pytest.raises(ValueError, match="x must be"):
        K.metropolis_sweeps(*args, x.T, energy, -np.ones(2), np.ones(2), np.ones(3), 1, 0, 0,
                            rs, acc)
    with pytest.raises(ValueError, match="move"):
        K.metropolis_sweeps(*args, x, energy, -np.ones(2), np.ones(2), np.ones(3), 1, 2, 0,
                            rs, acc)


# --- sampler against exact densities ---------------------------------------------------

def _equilibrate(spec, params, lam, lo, hi, n_chains, n_sweeps, step, move, boundary, seed):
    """One independent draw per chain after ``n_sweeps`` from uniform starts."""
    d = lo.size
    x, energy, rs, acc = _chains(spec, params, lam, EMPTY, n_chains, d, lo, hi, seed)
    K.metropolis_sweeps(spec, params, lam, *EMPTY, x, energy, lo, hi, np.full(n_chains, step),
                        n_sweeps, move, boundary, rs, acc)
    return x


def _assert_mean(values, exact, n_sigma=4.0):
    """The sample mean within ``n_sigma`` standard errors of the exact mean.

    Sharper than KS against a wrong temperature (e.g. a mis-scaled acceptance rule).
    """
    se = values.std() / math.sqrt(values.size)
    assert abs(values.mean() - exact) < n_sigma * se, (values.mean(), exact, se)


DOUBLE_WELL_A = 2.0
DW_GRID = np.linspace(-2.5, 2.5, 20001)
DW_DENS = np.exp(-DOUBLE_WELL_A * (DW_GRID ** 2 - 1) ** 2)


def _double_well_cdf(t):
    g, p = DW_GRID, DW_DENS
    cdf = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) / 2 * np.diff(g))])
    return np.interp(t, g, cdf / cdf[-1])


@pytest.mark.parametrize("first", ["powers", "dense"])
@pytest.mark.parametrize("move", [K.MOVE_ALL, K.MOVE_SINGLE])
@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_double_well_matches_quadrature(first, move, boundary):
    # H = a (x^2 - 1)^2 = a x^4 - 2a x^2 + const, from POWERS(4) (via an identity DENSE
    # first row in the "dense" case, which takes the incremental single-move path).
    a = DOUBLE_WELL_A
    spec = np.array([[K.POWERS, 1, 4, 0, 4, 0, 0, 0]])
    params = np.zeros(0)
    if first == "dense":
        spec = np.array([[K.DENSE, 1, 1, 0, 0, 0, 0, 0], [K.POWERS, 1, 4, 0, 4, 0, 0, 0]])
        params = np.ones(1)
    lam = np.array([0.0, -2 * a, 0.0, a])
    lo, hi = np.array([-2.5]), np.array([2.5])
    x = _equilibrate(spec, params, lam, lo, hi, 4000, 150, 1.5, move, boundary,
                     seed=100 + 10 * move + boundary)[:, 0]
    assert stats.kstest(x, _double_well_cdf).pvalue > 1e-3
    f = (DW_GRID ** 2 - 1) ** 2
    _assert_mean((x ** 2 - 1) ** 2, np.sum(f * DW_DENS) / np.sum(DW_DENS))
    _assert_mean(x, 0.0)


@pytest.mark.parametrize("move", [K.MOVE_ALL, K.MOVE_SINGLE])
@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_box_gaussian_matches_quadrature(move, boundary):
    # H = x.P.x / 2 = |L^T x|^2 / 2 with P = L L^T: DENSE (W = L^T, no bias) then SQUARE.
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    prec = np.linalg.inv(cov)
    W = np.linalg.cholesky(prec).T
    spec = np.array([[K.DENSE, 2, 2, 0, 0, 0, 0, 0], [K.SQUARE, 2, 2, 0, 0, 0, 0, 0]])
    lam = np.array([0.5, 0.5])
    lo, hi = np.array([-2.0, -1.5]), np.array([2.0, 2.5])
    x = _equilibrate(spec, W.ravel(), lam, lo, hi, 5000, 150, 1.0, move, boundary,
                     seed=200 + 10 * move + boundary)
    # expected bin masses by a midpoint rule on a 400x400 grid (8x8 bins of 50x50 cells)
    nb, sub = 8, 50
    ex = np.linspace(lo[0], hi[0], nb + 1)
    ey = np.linspace(lo[1], hi[1], nb + 1)
    gx = lo[0] + (np.arange(nb * sub) + 0.5) * (hi[0] - lo[0]) / (nb * sub)
    gy = lo[1] + (np.arange(nb * sub) + 0.5) * (hi[1] - lo[1]) / (nb * sub)
    G = np.stack(np.meshgrid(gx, gy, indexing="ij"), -1)
    h_grid = 0.5 * np.einsum("...i,ij,...j->...", G, prec, G)
    dens = np.exp(-h_grid)
    mass = dens.reshape(nb, sub, nb, sub).sum(axis=(1, 3))
    expected = mass / mass.sum() * len(x)
    _assert_mean(0.5 * np.einsum("ni,ij,nj->n", x, prec, x), np.sum(h_grid * dens) / dens.sum())
    observed, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[ex, ey])
    keep = expected >= 5
    chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    pvalue = stats.chi2.sf(chi2, keep.sum() - 1)
    assert pvalue > 1e-3, (chi2, keep.sum())


# --- lock-step kernels against the one-at-a-time kernels, bit for bit --------------------

def _one_at_a_time(spec, params, lam, term2, X):
    w = max(K.max_width(spec), K.max_width(term2[0]))
    bufs = [np.empty(w) for _ in range(4)]
    O = np.array([K.forward_one(spec, params, x, bufs[0], bufs[1]).copy() for x in X])
    H = np.array([N.energy_one(spec, params, lam, *term2, x, *bufs) for x in X])
    return O, H


@settings(deadline=None, max_examples=20)
@given(d=st.integers(1, 5), layers=st.lists(_LAYER, min_size=1, max_size=5),
       conv=st.booleans(), n=st.integers(1, 70), seed=st.integers(0, 2 ** 16))
def test_lockstep_batches_equal_one_at_a_time(d, layers, conv, n, seed):
    # observables_batch / energy_batch evaluate rows in lock-step blocks; every row must
    # get the exact arithmetic of forward_one / energy_one, for any block fill.
    if conv:
        layers = [("conv", d, 3, 2, 3, 2)] + layers
        d = 6 * d
    spec, params = build(d, layers, seed=seed)
    term2 = build(d, [("dense", 3, True), ("act", K.LOGSOFTMAX)], seed=seed + 1) \
        + (np.array([0.2, -1.0, 0.4]),)
    X = np.random.default_rng(seed).uniform(-1.5, 1.5, (n, d))
    lam = np.linspace(-1.0, 1.5, spec[-1, 2])
    O, H = _one_at_a_time(spec, params, lam, term2, X)
    np.testing.assert_array_equal(K.observables_batch(spec, params, X), O)
    np.testing.assert_array_equal(K.energy_batch(spec, params, lam, X, *term2), H)


@pytest.mark.parametrize("net", sorted(SMALL_NETS))
@pytest.mark.parametrize("move", [K.MOVE_ALL, K.MOVE_SINGLE])
@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_lockstep_sampler_equals_one_chain_kernel(net, move, boundary):
    # 21 chains: full and partial blocks for every lane count; lanes=1 is the one-chain
    # kernel. States, draws, accept counts and energies identical bit for bit.
    layers, term2 = SMALL_NETS[net]
    spec, params = build(3, layers, seed=2)
    lam = np.linspace(0.5, 1.5, spec[-1, 2])
    lo, hi = np.array([-1.0, -0.5, 0.0]), np.array([1.0, 1.5, 0.5])
    state = _chains(spec, params, lam, term2, 21, 3, lo, hi, seed=12)
    step = np.linspace(0.2, 3.0, 21)
    runs = []
    for lanes in (1, 3, 8, 64):
        x, energy, rs, acc = (a.copy() for a in state)
        K.metropolis_sweeps(spec, params, lam, *term2, x, energy, lo, hi, step, 9, move,
                            boundary, rs, acc, lanes=lanes)
        runs.append((x, energy, rs, acc))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)
    assert 0 < runs[0][3].sum() < 9 * (3 if move else 1) * 21


def test_lockstep_sampler_rejects_bad_lanes():
    spec, params = build(2, [("dense", 2, True)])
    x, energy, rs, acc = _chains(spec, params, np.ones(2), EMPTY, 3, 2, -1.0, 1.0, seed=0)
    with pytest.raises(ValueError, match="lanes"):
        K.metropolis_sweeps(spec, params, np.ones(2), *EMPTY, x, energy, -np.ones(2),
                            np.ones(2), np.ones(3), 1, 0, 0, rs, acc, lanes=0)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_lockstep_conv_blocks_equal_one_at_a_time(k):
    # 6 output channels: one four-channel block and two left over; 5x4 images so that
    # every pixel class (corner, edge, interior; 1-3 taps per kernel row) occurs.
    spec, params = build(2 * 5 * 4, [("conv", 2, 5, 4, k, 6), ("act", K.TANH),
                                     ("conv", 6, 5, 4, 3, 5), ("dense", 3, True)], seed=k)
    X = np.random.default_rng(k).uniform(-1, 1, (37, 40))
    O, H = _one_at_a_time(spec, params, np.array([0.5, -1.0, 2.0]), EMPTY, X)
    np.testing.assert_array_equal(K.observables_batch(spec, params, X), O)
    check_against_naive(spec, params, X)


@pytest.mark.parametrize("shape", [(1, 8), (3, 5, 64), (2, 7, 3, 256), (0, 8)])
def test_lane_buffers_start_on_a_cache_line(shape):
    # every lock-step row of 8k lanes then starts on a 64-byte boundary (an AVX-512 load
    # or store never spans two cache lines)
    from mme_numba.kernels import interpret as N

    bufs = [N.aligned_empty(shape)]
    if len(shape) == 2:
        bufs.append(N.empty_rows(*shape))
    if len(shape) == 3:
        bufs.append(N.empty_slabs(*shape))
    for a in bufs:
        assert a.shape == shape and a.dtype == np.float64 and a.flags.c_contiguous
        assert a.size == 0 or a.ctypes.data % N.ALIGN == 0
        a.fill(1.5)  # the whole view is writable memory
        assert a.sum() == 1.5 * a.size
