"""Incremental single-pixel Metropolis for conv observables (mme_numba.kernels.moves.single).

Oracles: the full-recompute single-move kernel (same draw order, so the same chain step for
step), a fresh full forward for the carried energies, and an exact 2-pixel density by
quadrature on a grid.
"""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mme_numba import kernels as K
from mme_numba.kernels.moves import single as I
from mme_numba.nn import Dense, Sequential, activation, paper_cnn
import naive
from cases import chain_state, conv_net, conv_only_square

EMPTY = K.empty_term()


def _run(kernel, spec, params, lam, term2, state, step, n_sweeps, boundary):
    x, energy, rs, acc = (a.copy() for a in state)
    d = x.shape[1]
    if kernel == "incremental":
        I.single_pixel_sweeps(spec, params, lam, *term2, x, energy, 0.0, 1.0, step, n_sweeps,
                              boundary, rs, acc)
    else:
        K.metropolis_sweeps(spec, params, lam, *term2, x, energy, np.zeros(d), np.ones(d),
                            step, n_sweeps, K.MOVE_SINGLE, boundary, rs, acc, incremental=False)
    return x, energy, rs, acc


@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_equals_full_recompute_step_for_step(boundary):
    net = paper_cnn(16, random_state=3)
    spec, params = net.describe(), net.kernel_params()
    lam = np.random.default_rng(1).normal(size=16)
    state = chain_state(spec, params, lam, EMPTY, 24, 64, seed=5)
    step = np.linspace(0.05, 0.8, 24)
    inc = _run("incremental", spec, params, lam, EMPTY, state, step, 6, boundary)
    full = _run("full", spec, params, lam, EMPTY, state, step, 6, boundary)
    np.testing.assert_array_equal(inc[2], full[2])  # same random numbers consumed
    np.testing.assert_array_equal(inc[3], full[3])  # same accept/reject decisions
    np.testing.assert_array_equal(inc[0], full[0])
    np.testing.assert_allclose(inc[1], full[1], rtol=0, atol=1e-10)
    assert 0.2 < inc[3].mean() / (6 * 64) < 0.99


@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_replays_the_naive_random_scan(boundary):
    """Against ``naive.naive_metropolis`` (one proposal at a time, NumPy forwards), with a
    steering term that is itself a CNN: the same draws and decisions, states to rounding."""
    net = conv_net((3, 3), 2, 2, 3, "tanh", 3, seed=7)
    field = conv_net((3, 3), 1, 2, 3, "softplus", 2, seed=8,
                     tail=[activation("logsoftmax")])
    spec, params = net.describe(), net.kernel_params()
    lam = np.array([5.0, -6.0, 2.0])
    term2 = (field.describe(), field.kernel_params(), np.array([-2.0, 0.0]))
    state = chain_state(spec, params, lam, term2, 7, 9, seed=9)
    step = np.linspace(0.1, 0.9, 7)
    got = _run("incremental", spec, params, lam, term2, state, step, 3, boundary)
    want = naive.naive_metropolis(spec, params, lam, *term2, *state[:2], np.zeros(9),
                                  np.ones(9), step, 3, K.MOVE_SINGLE, boundary, *state[2:])
    np.testing.assert_array_equal(got[2], want[2])  # the same random numbers consumed
    np.testing.assert_array_equal(got[3], want[3])  # the same decisions
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-11)
    assert 0.1 < got[3].sum() / (7 * 3 * 9) < 0.95


def test_carried_energy_equals_fresh_forward_after_many_moves():
    net = paper_cnn(16, random_state=4)
    spec, params = net.describe(), net.kernel_params()
    lam = 3.0 * np.random.default_rng(2).normal(size=16)
    state = chain_state(spec, params, lam, EMPTY, 8, 64, seed=6)
    x, energy, rs, acc = _run("incremental", spec, params, lam, EMPTY, state, 0.3, 60,
                              K.BOUNDARY_REFLECT)
    assert acc.min() > 1000  # thousands of accepted incremental updates per chain
    fresh = K.energy_batch(spec, params, lam, x, *EMPTY)
    np.testing.assert_allclose(energy, fresh, rtol=0, atol=1e-9)


@settings(deadline=None, max_examples=6)
@given(h=st.integers(2, 6), w=st.integers(1, 6), c1=st.integers(1, 3), c2=st.integers(1, 3),
       k=st.sampled_from([1, 3, 5]), act=st.sampled_from(["tanh", "softplus", "relu"]),
       head=st.booleans(), seed=st.integers(0, 100))
def test_random_conv_nets_and_second_term_equal_full_recompute(h, w, c1, c2, k, act, head,
                                                               seed):
    tail = [activation("tanh"), Dense(3, 2)] if head else []
    net = conv_net((h, w), c1, c2, k, act, 3, seed, tail)
    spec, params = net.describe(), net.kernel_params()
    lam = np.random.default_rng(seed).normal(size=net.n_observables)
    # second term: a conv classifier-like head (incremental too) ending in log-softmax
    clf = conv_net((h, w), 2, 1, 3, "tanh", 3, seed + 1, [activation("logsoftmax")])
    term2 = (clf.describe(), clf.kernel_params(), np.array([-1.5, 0.0, 0.0]))
    d = h * w
    state = chain_state(spec, params, lam, term2, 5, d, seed)
    inc = _run("incremental", spec, params, lam, term2, state, 0.4, 5, K.BOUNDARY_REFLECT)
    full = _run("full", spec, params, lam, term2, state, 0.4, 5, K.BOUNDARY_REFLECT)
    np.testing.assert_array_equal(inc[3], full[3])
    np.testing.assert_allclose(inc[0], full[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(inc[1], K.energy_batch(spec, params, lam, inc[0], *term2),
                               rtol=0, atol=1e-10)


def test_prefix_detection():
    net = paper_cnn(16)
    assert I.incremental_prefix(net.describe()) == 5  # conv, tanh, conv, tanh, dense
    assert I.supports_incremental(net.describe())
    tail = conv_net((4, 4), 2, 2, 3, "tanh", 3, 0, [activation("tanh"), Dense(3, 2)])
    assert I.incremental_prefix(tail.describe()) == 5  # the rows after DENSE run in full
    dense_first = Sequential([Dense(4, 3)])
    assert not I.supports_incremental(dense_first.describe())
    assert I.incremental_prefix(dense_first.describe()) == 0
    with pytest.raises(ValueError, match="CONV2D"):
        x = np.zeros((2, 4))
        I.single_pixel_sweeps(dense_first.describe(), dense_first.theta, np.ones(3), *EMPTY, x,
                              np.zeros(2), 0.0, 1.0, 0.1, 1, 1, K.seed_states(0, 2),
                              np.zeros(2, np.int64))


def test_thread_count_independent():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    net = paper_cnn(4, channels=(2, 3), random_state=7)
    spec, params = net.describe(), net.kernel_params()
    lam = np.array([1.0, -2.0, 0.5, 0.3])
    state = chain_state(spec, params, lam, EMPTY, 33, 64, seed=9)
    before = numba.get_num_threads()
    runs = []
    try:
        for n_threads in (1, 2):
            numba.set_num_threads(n_threads)
            runs.append(_run("incremental", spec, params, lam, EMPTY, state, 0.3, 3,
                             K.BOUNDARY_REFLECT))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_two_pixel_image_matches_quadrature():
    # A 1x2 "image" through a 3x3 conv net: d = 2, so the exact density is a 2-d grid.
    net = conv_net((1, 2), 3, 2, 3, "tanh", 3, seed=11)
    spec, params = net.describe(), net.kernel_params()
    lam = np.array([2.5, -3.0, 1.5])
    n = 4000
    x, energy, rs, acc = chain_state(spec, params, lam, EMPTY, n, 2, seed=12)
    I.single_pixel_sweeps(spec, params, lam, *EMPTY, x, energy, 0.0, 1.0, 0.5, 60,
                          K.BOUNDARY_REFLECT, rs, acc)
    nb, sub = 6, 40
    g = (np.arange(nb * sub) + 0.5) / (nb * sub)
    G = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dens = np.exp(-K.energy_batch(spec, params, lam, G, *EMPTY)).reshape(nb, sub, nb, sub)
    expected = dens.sum(axis=(1, 3))
    expected = expected / expected.sum() * n
    observed, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=nb, range=[[0, 1], [0, 1]])
    chi2 = np.sum((observed - expected) ** 2 / expected)
    # 35 degrees of freedom: P(chi2 > 75) ~ 1e-4 under the null
    assert chi2 < 75.0, chi2
    assert expected.max() / expected.min() > 3.0  # the target is far from uniform


def test_backend_routes_single_moves_on_conv_specs_to_the_incremental_kernel():
    from mme_numba.backends import MOVES, get_backend

    assert "single" in MOVES and "mala" in MOVES
    net = paper_cnn(3, channels=(2, 2), random_state=2)
    spec, params = net.describe(), net.kernel_params()
    lam = np.array([1.0, -1.0, 0.5])
    state = chain_state(spec, params, lam, EMPTY, 6, 64, seed=3)
    direct = _run("incremental", spec, params, lam, EMPTY, state, 0.2, 2, K.BOUNDARY_REFLECT)
    x, energy, rs, acc = (a.copy() for a in state)
    get_backend("cpu").sweep(spec, params, lam, EMPTY, x, energy, np.zeros(64), np.ones(64),
                             np.full(6, 0.2), 2, "single", "reflect", rs, acc)
    for a, b in zip(direct, (x, energy, rs, acc)):
        np.testing.assert_array_equal(a, b)


def test_conv_only_network_without_dense_head():
    # The prefix ends on a conv activation: the observables are read channel-major from the
    # channel-last state, and the rows after the prefix (here a square) run in full.
    spec, params, lam = conv_only_square()
    state = chain_state(spec, params, lam, EMPTY, 6, 12, seed=2)
    inc = _run("incremental", spec, params, lam, EMPTY, state, 0.4, 8, K.BOUNDARY_REFLECT)
    full = _run("full", spec, params, lam, EMPTY, state, 0.4, 8, K.BOUNDARY_REFLECT)
    np.testing.assert_array_equal(inc[3], full[3])
    np.testing.assert_allclose(inc[0], full[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(inc[1], full[1], rtol=0, atol=1e-10)


def test_paper_cnn_hidden_layer_sees_the_whole_image():
    """``hidden=h`` puts Dense(c2·H·W → h) and the activation before the output layer; the
    incremental prefix still ends at that first dense row, and the energy is then no longer a
    sum of window terms: changing two far-apart pixels together differs from the sum of the
    single changes (it is exactly that sum without the hidden layer)."""
    x = np.random.default_rng(0).uniform(size=(1, 64))
    lam = np.linspace(-1.0, 1.0, 4)

    def interaction(net):
        spec, params = net.describe(), net.kernel_params()

        def e(z):
            return K.energy_batch(spec, params, lam, z, *EMPTY)[0]
        a, b, ab = x.copy(), x.copy(), x.copy()
        a[0, 0] += 0.5
        b[0, 63] += 0.5
        ab[0, [0, 63]] += 0.5
        return e(ab) - e(a) - e(b) + e(x)

    flat, deep = paper_cnn(4, random_state=1), paper_cnn(4, hidden=8, random_state=1)
    assert deep.n_params == flat.n_params - (1024 * 4 + 4) + (1024 * 8 + 8) + (8 * 4 + 4)
    assert I.incremental_prefix(deep.describe()) == 5
    assert abs(interaction(flat)) < 1e-12
    assert abs(interaction(deep)) > 1e-6
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        paper_cnn(4, hidden=0)
