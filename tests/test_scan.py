"""Systematic-scan single-coordinate Metropolis in lock-step (mme_numba.kernels.moves.scan).

Oracles: a pure-Python replay of the documented scan and draw order (tests/naive.py's
``naive_scan``), the kernel's own full-recompute path (the incremental updates must
give the same chain), one-lane blocks and one thread (bit-identity), and exact densities
by quadrature on a grid for the stationary distribution.
"""

import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mme_numba import kernels as K
from mme_numba.kernels.moves import scan as S
from mme_numba.nn import Conv2D, Dense, Sequential, activation, mlp, paper_cnn
from cases import chain_state, conv_net, conv_only_square
from naive import naive_scan

EMPTY = K.empty_term()


def _scan(spec, params, lam, term2, state, step, n_sweeps, boundary, lo=0.0, hi=1.0,
          **kw):
    x, energy, rs, acc = (a.copy() for a in state)
    K.metropolis_sweeps(spec, params, lam, *term2, x, energy, lo, hi, step, n_sweeps,
                        K.MOVE_SCAN, boundary, rs, acc, **kw)
    return x, energy, rs, acc


@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_replays_the_documented_scan_and_draw_order(boundary):
    net = conv_net((3, 3), 2, 2, 3, "tanh", 3, seed=1)
    spec, params = net.describe(), net.kernel_params()
    lam = np.array([6.0, -8.0, 3.0])
    state = chain_state(spec, params, lam, EMPTY, 11, 9, seed=4)
    step = np.linspace(0.1, 0.9, 11)
    got = _scan(spec, params, lam, EMPTY, state, step, 4, boundary)
    want = naive_scan(spec, params, lam, EMPTY, state, step, 4, boundary, 0.0, 1.0)
    np.testing.assert_array_equal(got[2], want[2])  # the same random numbers consumed
    np.testing.assert_array_equal(got[3], want[3])  # the same decisions
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-12)
    assert 0.1 < got[3].sum() / (11 * 4 * 9) < 0.95


@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_incremental_conv_equals_full_recompute_step_for_step(boundary):
    net = paper_cnn(16, random_state=3)
    spec, params = net.describe(), net.kernel_params()
    lam = np.random.default_rng(1).normal(size=16)
    state = chain_state(spec, params, lam, EMPTY, 24, 64, seed=5)
    step = np.linspace(0.05, 0.8, 24)
    inc = _scan(spec, params, lam, EMPTY, state, step, 6, boundary)
    full = _scan(spec, params, lam, EMPTY, state, step, 6, boundary, incremental=False)
    np.testing.assert_array_equal(inc[2], full[2])
    np.testing.assert_array_equal(inc[3], full[3])
    np.testing.assert_array_equal(inc[0], full[0])
    np.testing.assert_allclose(inc[1], full[1], rtol=0, atol=1e-10)
    assert 0.2 < inc[3].sum() / (24 * 6 * 64) < 0.99


def test_term_plans():
    cnn = paper_cnn(5, channels=(2, 3))
    spec, params = cnn.describe(), cnn.kernel_params()
    kind, n_pre, fold, tw, toff, v = S.term_plan(spec, params, np.arange(5.0))
    assert (kind, n_pre, fold) == (S.TERM_CONV, 4, True) and v.shape == (3 * 64,)
    # v = W^T lam re-laid channel-last: lam . (W a) == v . a_channel_last
    a = np.random.default_rng(0).normal(size=(3, 8, 8))
    W = params[spec[4, 3]:spec[4, 3] + 5 * 192].reshape(5, 192)
    assert np.isclose(np.arange(5.0) @ (W @ a.ravel()), v @ a.transpose(1, 2, 0).ravel())
    # kept: conv and tanh rows of layer 1 (2 channels), layer 2's conv (3 channels), and one
    # energy per position for layer 2's tanh, whose activations only the energy reads
    assert S._kept_rows(kind, n_pre, fold, spec) == 64 * (2 + 2 + 3 + 1)
    head = conv_net((4, 4), 2, 2, 3, "tanh", 3, 0, [activation("tanh"), Dense(3, 2)])
    assert S.term_plan(head.describe(), head.kernel_params(), np.ones(2))[:3] == \
        (S.TERM_CONV, 5, False)
    dense = mlp([4, 8, 2])
    assert S.term_plan(dense.describe(), dense.kernel_params(), np.ones(2))[:2] == \
        (S.TERM_DENSE, 1)
    assert S.term_plan(spec, params, np.ones(5), incremental=False)[0] == S.TERM_FULL
    # a conv prefix followed by a non-local row without a DENSE: evaluated in full
    soft = np.vstack([Sequential([Conv2D(1, 2, 3, (2, 2))]).describe(),
                      [[K.LOGSOFTMAX, 8, 8, 0, 0, 0, 0, 0]]])
    assert S.term_plan(soft, np.zeros(20), np.ones(8))[0] == S.TERM_FULL


@settings(deadline=None, max_examples=8)
@given(h=st.integers(2, 6), w=st.integers(1, 6), c0=st.integers(1, 2), c1=st.integers(1, 5),
       c2=st.integers(1, 6), k=st.sampled_from([1, 3, 5]),
       act=st.sampled_from(["tanh", "softplus", "relu"]), head=st.booleans(),
       seed=st.integers(0, 100))
def test_random_conv_nets_and_conv_field_equal_full_recompute(h, w, c0, c1, c2, k, act, head,
                                                              seed):
    # c0 input channels: the scan visits channel 0's pixels, then channel 1's
    tail = [activation("tanh"), Dense(3, 2)] if head else []
    net = conv_net((h, w), c1, c2, k, act, 3, seed, tail, c0=c0)
    spec, params = net.describe(), net.kernel_params()
    lam = np.random.default_rng(seed).normal(size=net.n_observables)
    # second term: a conv classifier (kept DENSE outputs, then log-softmax in full)
    clf = conv_net((h, w), 2, 1, 3, "tanh", 3, seed + 1, [activation("logsoftmax")], c0=c0)
    term2 = (clf.describe(), clf.kernel_params(), np.array([-1.5, 0.0, 0.0]))
    state = chain_state(spec, params, lam, term2, 5, c0 * h * w, seed)
    inc = _scan(spec, params, lam, term2, state, 0.4, 5, K.BOUNDARY_REFLECT)
    full = _scan(spec, params, lam, term2, state, 0.4, 5, K.BOUNDARY_REFLECT,
                 incremental=False)
    np.testing.assert_array_equal(inc[2], full[2])
    np.testing.assert_array_equal(inc[3], full[3])
    np.testing.assert_allclose(inc[0], full[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(inc[1], K.energy_batch(spec, params, lam, inc[0], *term2),
                               rtol=0, atol=1e-10)


def test_dense_first_network_and_mlp_field_equal_full_recompute():
    net = mlp([6, 16, 16, 3], random_state=2)
    spec, params = net.describe(), net.kernel_params()
    lam = np.array([1.0, -0.5, 2.0])
    field = mlp([6, 4, 2], random_state=3)
    term2 = (field.describe(), field.kernel_params(), np.array([0.5, -1.0]))
    for t2 in (EMPTY, term2):
        state = chain_state(spec, params, lam, t2, 13, 6, seed=8, lo=-2.0, hi=2.0)
        inc = _scan(spec, params, lam, t2, state, 0.7, 5, K.BOUNDARY_REFLECT, -2.0, 2.0)
        full = _scan(spec, params, lam, t2, state, 0.7, 5, K.BOUNDARY_REFLECT, -2.0, 2.0,
                     incremental=False)
        np.testing.assert_array_equal(inc[3], full[3])
        np.testing.assert_allclose(inc[0], full[0], rtol=0, atol=1e-12)


def test_conv_only_network_folds_lambda():
    # no DENSE: the observables are the last conv activations (channel-major), and a final
    # square is still local, so the whole network is updated incrementally
    spec, params, lam = conv_only_square()
    assert S.term_plan(spec, params, lam)[:3] == (S.TERM_CONV, 5, True)
    state = chain_state(spec, params, lam, EMPTY, 6, 12, seed=2)
    inc = _scan(spec, params, lam, EMPTY, state, 0.4, 8, K.BOUNDARY_REFLECT)
    full = _scan(spec, params, lam, EMPTY, state, 0.4, 8, K.BOUNDARY_REFLECT,
                 incremental=False)
    np.testing.assert_array_equal(inc[3], full[3])
    np.testing.assert_allclose(inc[0], full[0], rtol=0, atol=1e-12)


def test_bit_identical_for_any_lanes_and_threads():
    net = paper_cnn(4, channels=(3, 5), random_state=7)
    spec, params = net.describe(), net.kernel_params()
    lam = np.array([1.0, -2.0, 0.5, 0.3])
    state = chain_state(spec, params, lam, EMPTY, 37, 64, seed=9)  # a partial last block
    ref = _scan(spec, params, lam, EMPTY, state, 0.3, 3, K.BOUNDARY_REFLECT, lanes=1)
    runs = [_scan(spec, params, lam, EMPTY, state, 0.3, 3, K.BOUNDARY_REFLECT, lanes=L)
            for L in (8, 16, 64)]
    if numba.config.NUMBA_NUM_THREADS >= 2:
        before = numba.get_num_threads()
        try:
            for n_threads in (1, 2):
                numba.set_num_threads(n_threads)
                runs.append(_scan(spec, params, lam, EMPTY, state, 0.3, 3, K.BOUNDARY_REFLECT))
        finally:
            numba.set_num_threads(before)
    for run in runs:
        for a, b in zip(ref, run):
            np.testing.assert_array_equal(a, b)


def test_reused_workspace_carries_nothing_between_calls():
    # the per-thread scratch is reused across calls: filled with NaN (what any read before
    # a write would pick up) or holding another call's rows, the result is the fresh one
    net = paper_cnn(4, channels=(3, 5), random_state=7)
    spec, params = net.describe(), net.kernel_params()
    lam = np.array([1.0, -2.0, 0.5, 0.3])
    clf = conv_net((8, 8), 2, 1, 3, "tanh", 3, 1, [activation("logsoftmax")])
    term2 = (clf.describe(), clf.kernel_params(), np.array([-1.5, 0.0, 0.0]))
    state = chain_state(spec, params, lam, term2, 19, 64, seed=3)
    other = chain_state(spec, params, lam, term2, 19, 64, seed=4)
    S.release_scratch()
    assert S._scratch.arrays is None
    fresh = _scan(spec, params, lam, term2, state, 0.3, 2, K.BOUNDARY_REFLECT, lanes=8)
    for arr in S._scratch.arrays:
        arr.fill(np.nan)
    poisoned = _scan(spec, params, lam, term2, state, 0.3, 2, K.BOUNDARY_REFLECT, lanes=8)
    _scan(spec, params, lam, term2, other, 0.3, 2, K.BOUNDARY_REFLECT, lanes=8)
    after_other = _scan(spec, params, lam, term2, state, 0.3, 2, K.BOUNDARY_REFLECT, lanes=8)
    for run in (poisoned, after_other):
        for a, b in zip(fresh, run):
            np.testing.assert_array_equal(a, b)


def test_carried_energy_equals_fresh_evaluation_after_many_moves():
    net = paper_cnn(16, random_state=4)
    spec, params = net.describe(), net.kernel_params()
    lam = 3.0 * np.random.default_rng(2).normal(size=16)
    state = chain_state(spec, params, lam, EMPTY, 8, 64, seed=6)
    x, energy, rs, acc = _scan(spec, params, lam, EMPTY, state, 0.3, 60, K.BOUNDARY_REFLECT)
    assert acc.min() > 1000  # thousands of accepted incremental updates per chain
    fresh = K.energy_batch(spec, params, lam, x, *EMPTY)
    np.testing.assert_allclose(energy, fresh, rtol=0, atol=1e-10)
    # the energy passed in is not read: a call starts from a full evaluation of its chains
    junk = [a.copy() for a in state]
    junk[1][:] = np.nan
    again = _scan(spec, params, lam, EMPTY, junk, 0.3, 60, K.BOUNDARY_REFLECT)
    for a, b in zip((x, energy, rs, acc), again):
        np.testing.assert_array_equal(a, b)
    # the carried energies the decisions used agree with the fresh ones too: the same
    # decisions as the full path over those 60 sweeps
    full = _scan(spec, params, lam, EMPTY, state, 0.3, 60, K.BOUNDARY_REFLECT,
                 incremental=False)
    np.testing.assert_array_equal(acc, full[3])


def _chi2_2d(x, energy_fn, lo, hi, nb=6, sub=40):
    g = lo + (hi - lo) * (np.arange(nb * sub) + 0.5) / (nb * sub)
    G = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dens = np.exp(-energy_fn(G)).reshape(nb, sub, nb, sub)
    expected = dens.sum(axis=(1, 3))
    expected = expected / expected.sum() * len(x)
    observed, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=nb, range=[[lo, hi], [lo, hi]])
    return np.sum((observed - expected) ** 2 / expected), expected


@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_two_pixel_conv_image_matches_quadrature(boundary):
    # A 1x2 "image" through a 3x3 conv net: d = 2, so the exact density is a 2-d grid.
    net = conv_net((1, 2), 3, 2, 3, "tanh", 3, seed=11)
    spec, params = net.describe(), net.kernel_params()
    lam = np.array([2.5, -3.0, 1.5])
    n = 4000
    state = chain_state(spec, params, lam, EMPTY, n, 2, seed=12)
    x = _scan(spec, params, lam, EMPTY, state, 0.5, 60, boundary)[0]
    chi2, expected = _chi2_2d(x, lambda G: K.energy_batch(spec, params, lam, G, *EMPTY),
                              0.0, 1.0)
    # seed 12, 35 degrees of freedom: P(chi2 > 75) ~ 1e-4 under the null
    assert chi2 < 75.0, chi2
    assert expected.max() / expected.min() > 3.0  # the target is far from uniform


def test_correlated_gaussian_matches_quadrature_and_detects_a_wrong_target():
    # H = |L^T x|^2 / 2 = x^T P x / 2 through Dense(2, 2) + square: a correlated Gaussian
    # cut to the box, with the dense first row updated incrementally
    P = np.array([[2.0, 1.4], [1.4, 2.0]])
    net = Sequential([Dense(2, 2), activation("square")])
    net.set_theta(np.concatenate([np.linalg.cholesky(P).T.ravel(), np.zeros(2)]))
    spec, params, lam = net.describe(), net.kernel_params(), np.array([0.5, 0.5])
    G = np.random.default_rng(0).normal(size=(5, 2))
    np.testing.assert_allclose(K.energy_batch(spec, params, lam, G, *EMPTY),
                               0.5 * np.einsum("ni,ij,nj->n", G, P, G))
    n = 4000
    state = chain_state(spec, params, lam, EMPTY, n, 2, seed=3, lo=-3.0, hi=3.0)
    x = _scan(spec, params, lam, EMPTY, state, 1.0, 80, K.BOUNDARY_REFLECT, -3.0, 3.0)[0]
    chi2, _ = _chi2_2d(x, lambda G: K.energy_batch(spec, params, lam, G, *EMPTY), -3.0, 3.0)
    assert chi2 < 75.0, chi2  # seed 3, 35 degrees of freedom, P ~ 1e-4 under the null
    # the same samples against the uncorrelated Gaussian: the test has power
    chi2_wrong, _ = _chi2_2d(x, lambda G: np.sum(G ** 2, axis=1), -3.0, 3.0)
    assert chi2_wrong > 300.0, chi2_wrong


def test_model_and_backend_accept_scan():
    from mme_numba import MaxEnt
    from mme_numba.backends import MOVES

    assert MOVES["scan"] == K.MOVE_SCAN
    rng = np.random.default_rng(0)
    X = rng.normal(0.0, 0.5, size=(400, 3))
    m = MaxEnt(observables=mlp([3, 8, 2], random_state=0), support=(-3, 3), n_chains=64,
               sweeps=2, move="scan", random_state=0)
    m.fit(X, epochs=5)
    # acceptance per proposal: a sweep is d = 3 proposals (per sweep it would exceed 1 here)
    rate = m._run_chains(4)
    assert rate.max() <= 1.0 and rate.mean() > 0.5, rate
    assert m.sample(50).shape == (50, 3)


def test_bad_move_is_named():
    x = np.zeros((2, 2))
    net = mlp([2, 3, 1])
    with pytest.raises(ValueError, match="MOVE_SCAN"):
        K.metropolis_sweeps(net.describe(), net.kernel_params(), np.ones(1), *EMPTY, x,
                            np.zeros(2), -1.0, 1.0, 0.1, 1, 7, K.BOUNDARY_REFLECT,
                            K.seed_states(0, 2), np.zeros(2, np.int64))
