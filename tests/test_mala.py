"""MALA (mme_numba.kernels.moves.mala): compiled ∂H/∂x, the folded proposal, exact targets.

Oracles: ``naive.naive_mala`` (the chains, one proposal at a time), the NumPy backprop of
the networks and central differences for the gradient, quadrature for the proposal density's
normalization, and exact densities (quadrature on a grid) for the stationary distribution
with both boundary rules.
"""

import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mme_numba import kernels as K
from mme_numba.kernels.moves import mala as M
from mme_numba.nn import Conv2D, Dense, Sequential, activation, mlp, paper_cnn
import naive

EMPTY = K.empty_term()


def _networks(kind):
    """A network with 5 observables and a second term with 3 on 20 inputs (5x4 images)."""
    if kind == "cnn":
        net = paper_cnn(5, image_shape=(5, 4), channels=(3, 2), random_state=1)
        second = Sequential([Conv2D(1, 2, 3, (5, 4)), activation("softplus"), Dense(40, 3),
                             activation("logsoftmax")], random_state=2)
    else:
        net = Sequential([Dense(20, 6), activation("sigmoid"), Dense(6, 4), activation("relu"),
                          Dense(4, 5)], random_state=1)
        second = Sequential([Dense(20, 3), activation("square"), Dense(3, 3)], random_state=2)
    return net, second


@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
@pytest.mark.parametrize("kind", ["cnn", "mlp_powers"])
def test_chains_replay_the_naive_oracle(kind, boundary):
    """``mala_sweeps`` against ``naive.naive_mala`` (NumPy chain-rule gradient, the folded
    density summed over 121 preimages per family): the same random numbers consumed and the
    same decisions, states and energies to rounding."""
    rng = np.random.default_rng(3)
    net, second = _networks(kind)
    spec, params = net.describe(), net.kernel_params()
    lam = 3.0 * rng.normal(size=5)
    term2 = (second.describe(), second.kernel_params(), rng.normal(size=3))
    x = 0.1 + 0.8 * rng.random((6, 20))
    state = (x, K.energy_batch(spec, params, lam, x, *term2), K.seed_states(7, 6),
             np.zeros(6, np.int64))
    step = np.linspace(0.02, 0.2, 6)
    got = [a.copy() for a in state]
    M.mala_sweeps(spec, params, lam, *term2, got[0], got[1], 0.0, 1.0, step, 8, boundary,
                  got[2], got[3])
    want = naive.naive_mala(spec, params, lam, *term2, *state[:2], 0.0, 1.0, step, 8, boundary,
                            *state[2:])
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_array_equal(got[3], want[3])
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-11)
    assert 0 < got[3].sum() < 6 * 8


@pytest.mark.parametrize("kind", ["cnn", "mlp_powers"])
def test_gradient_matches_numpy_backprop_and_central_differences(kind):
    rng = np.random.default_rng(0)
    net, second = _networks(kind)
    spec, params = net.describe(), net.kernel_params()
    lam = rng.normal(size=5)
    term2 = (second.describe(), second.kernel_params(), rng.normal(size=3))
    X = rng.random((7, 20))
    energy, grad = M.energy_grad_batch(spec, params, lam, X, *term2)
    np.testing.assert_allclose(energy, K.energy_batch(spec, params, lam, X, *term2),
                               rtol=1e-13, atol=1e-13)
    _, dX1 = net.backward(X, np.tile(lam, (7, 1)))
    _, dX2 = second.backward(X, np.tile(term2[2], (7, 1)))
    np.testing.assert_allclose(grad, dX1 + dX2, rtol=1e-10, atol=1e-12)
    h = 1e-6
    for k in (0, 7, 19):
        e = np.zeros(20)
        e[k] = h
        fd = (K.energy_batch(spec, params, lam, X + e, *term2)
              - K.energy_batch(spec, params, lam, X - e, *term2)) / (2 * h)
        np.testing.assert_allclose(grad[:, k], fd, rtol=1e-6, atol=1e-7)


def test_powers_gradient():
    spec = np.array([[K.POWERS, 2, 6, 0, 3, 0, 0, 0]])
    lam = np.array([0.5, -1.0, 2.0, 0.1, 0.3, -0.7])
    X = np.array([[0.3, -1.2], [2.0, 0.0]])
    _, grad = M.energy_grad_batch(spec, np.zeros(0), lam, X, *EMPTY)
    exact = np.stack([lam[0] + 2 * lam[1] * X[:, 0] + 3 * lam[2] * X[:, 0] ** 2,
                      lam[3] + 2 * lam[4] * X[:, 1] + 3 * lam[5] * X[:, 1] ** 2], axis=1)
    np.testing.assert_allclose(grad, exact, rtol=1e-14, atol=1e-14)


@settings(deadline=None, max_examples=20)
@given(mu=st.floats(-1.5, 2.5), eps=st.floats(0.01, 3.0), lo=st.floats(-1.0, 0.5),
       width=st.floats(0.2, 2.0))
def test_folded_proposal_density_is_normalized(mu, eps, lo, width):
    hi = lo + width
    y = np.linspace(lo, hi, 4001)
    p = np.exp(M.log_proposal_1d(y, mu, eps, lo, hi, K.BOUNDARY_REFLECT))
    mass = np.sum((p[1:] + p[:-1]) / 2 * np.diff(y))
    # trapezoid error on a Gaussian of width eps sampled with spacing width/4000
    assert abs(mass - 1.0) < 1e-4 + 2e-6 * (width / eps) ** 2, mass


def test_folded_proposal_density_matches_folded_draws():
    rng = np.random.default_rng(3)
    mu, eps, lo, hi = 0.05, 0.4, 0.0, 1.0
    z = mu + eps * rng.standard_normal(400_000)
    t = (z - lo) % (2 * (hi - lo))
    y = lo + np.where(t > hi - lo, 2 * (hi - lo) - t, t)
    counts, edges = np.histogram(y, bins=20, range=(lo, hi))
    fine = np.linspace(lo, hi, 20 * 200 + 1)
    p = np.exp(M.log_proposal_1d(fine, mu, eps, lo, hi))
    cell = (p[1:] + p[:-1]) / 2 * np.diff(fine)
    expected = cell.reshape(20, 200).sum(axis=1) * len(y)
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 50.0, chi2  # 19 d.o.f.


def _chains(spec, params, lam, term2, n, d, lo, hi, seed):
    rng = np.random.default_rng(seed)
    x = lo + (hi - lo) * rng.random((n, d))
    return (x, K.energy_batch(spec, params, lam, x, *term2), K.seed_states(seed, n),
            np.zeros(n, np.int64))


def test_carried_energy_and_thread_independence():
    net = paper_cnn(4, channels=(2, 3), random_state=5)
    spec, params = net.describe(), net.kernel_params()
    lam = np.array([2.0, -1.0, 0.5, 1.5])
    state = _chains(spec, params, lam, EMPTY, 17, 64, 0.0, 1.0, seed=4)
    state[0][:, ::2] = 0.0  # pixels at the face
    state = (state[0], K.energy_batch(spec, params, lam, state[0], *EMPTY)) + state[2:]
    n_threads = (1, 2) if numba.config.NUMBA_NUM_THREADS >= 2 else (1,)
    before = numba.get_num_threads()
    runs = []
    try:
        for t in n_threads:
            numba.set_num_threads(t)
            x, e, rs, acc = (a.copy() for a in state)
            M.mala_sweeps(spec, params, lam, *EMPTY, x, e, 0.0, 1.0, 0.08, 30,
                          K.BOUNDARY_REFLECT, rs, acc)
            runs.append((x, e, rs, acc))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(runs[0], runs[-1]):
        np.testing.assert_array_equal(a, b)
    x, e, _, acc = runs[0]
    np.testing.assert_allclose(e, K.energy_batch(spec, params, lam, x, *EMPTY), rtol=0,
                               atol=1e-12)
    assert 0.3 < acc.mean() / 30 < 1.0
    assert np.all(x > 0.0)  # reflection moved every pixel off the face
    assert np.all((x >= 0.0) & (x <= 1.0))


@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_box_gaussian_matches_quadrature(boundary):
    # H = (x - m).P.(x - m) / 2 with the mean near a face: many proposals cross it.
    cov = np.array([[0.3, 0.2], [0.2, 0.4]])
    prec = np.linalg.inv(cov)
    L = np.linalg.cholesky(prec).T
    m = np.array([0.1, 0.6])
    spec = np.array([[K.DENSE, 2, 2, 0, 1, 0, 0, 0], [K.SQUARE, 2, 2, 0, 0, 0, 0, 0]])
    params = np.concatenate([L.ravel(), -L @ m])
    lam = np.array([0.5, 0.5])
    lo, hi = np.array([0.0, -0.5]), np.array([1.5, 1.5])
    n = 4000
    x, e, rs, acc = _chains(spec, params, lam, EMPTY, n, 2, lo, hi, seed=10 + boundary)
    M.mala_sweeps(spec, params, lam, *EMPTY, x, e, lo, hi, 0.5, 150, boundary, rs, acc)
    assert 0.2 < acc.mean() / 150 < 0.95
    nb, sub = 8, 40
    gx = lo[0] + (np.arange(nb * sub) + 0.5) * (hi[0] - lo[0]) / (nb * sub)
    gy = lo[1] + (np.arange(nb * sub) + 0.5) * (hi[1] - lo[1]) / (nb * sub)
    G = np.stack(np.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 2)
    dens = np.exp(-K.energy_batch(spec, params, lam, G, *EMPTY)).reshape(nb, sub, nb, sub)
    expected = dens.sum(axis=(1, 3))
    expected = expected / expected.sum() * n
    observed, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=nb,
                                    range=[[lo[0], hi[0]], [lo[1], hi[1]]])
    keep = expected > 5  # pool the near-empty corner cells
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    chi2 = np.sum((obs - exp) ** 2 / exp)
    dof = obs.size - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof), (chi2, dof)


def test_exponential_tilt_toward_a_face_matches_exact_mean():
    # p ∝ e^{4x} on [0, 1] piles mass at the face x = 1 where most reflected proposals
    # fold back: with a large step the fold's asymmetry is large, and treating it as a plain
    # Gaussian around mu would bias the mean by many standard errors.
    spec = np.array([[K.POWERS, 1, 3, 0, 3, 0, 0, 0]])
    lam = np.array([-4.0, 0.0, 0.0])  # H = -4 x on [0, 1]: p ∝ e^{4x}
    n = 6000
    x, e, rs, acc = _chains(spec, np.zeros(0), lam, EMPTY, n, 1, 0.0, 1.0, seed=21)
    M.mala_sweeps(spec, np.zeros(0), lam, *EMPTY, x, e, 0.0, 1.0, 0.6, 120,
                  K.BOUNDARY_REFLECT, rs, acc)
    exact_mean = (3 * math.exp(4) + 1) / (4 * (math.exp(4) - 1))  # E[x] for p ∝ e^{4x}
    se = x[:, 0].std() / math.sqrt(n)
    assert abs(x[:, 0].mean() - exact_mean) < 4 * se, (x[:, 0].mean(), exact_mean, se)


def test_rejects_bad_arguments():
    net = mlp([2, 3, 1])
    args = (net.describe(), net.theta, np.ones(1), *EMPTY)
    x = np.zeros((2, 2))
    with pytest.raises(ValueError, match="positive step"):
        M.mala_sweeps(*args, x, np.zeros(2), 0.0, 1.0, 0.0, 1, 1, K.seed_states(0, 2),
                      np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="boundary"):
        M.mala_sweeps(*args, x, np.zeros(2), 0.0, 1.0, 0.1, 1, 7, K.seed_states(0, 2),
                      np.zeros(2, np.int64))


def test_model_trains_with_mala_moves():
    import mme_numba as mme

    X, _ = mme.datasets.digits(n=30, seed=0)
    model = mme.MinMaxEnt(paper_cnn(3, channels=(2, 2), random_state=0), support=(0.0, 1.0),
                          n_chains=16, sweeps=3, burn_in=6, move="mala", step_size=0.05,
                          random_state=0)
    model.fit(X, epochs=3)
    assert len(model.history_) == 3
    assert all(0.0 < r["acceptance"] <= 1.0 for r in model.history_)
    assert np.all((model.chains_ >= 0.0) & (model.chains_ <= 1.0))
    np.testing.assert_allclose(model.energy(model.chains_),
                               M.energy_grad_batch(model.observables_.describe(),
                                                   model.observables_.theta, model.lambda_,
                                                   model.chains_, *EMPTY)[0], rtol=1e-12)


def test_mala_and_single_pixel_moves_agree_on_a_conv_model():
    # Two independently validated samplers, one 9-pixel conv energy: the equilibrium
    # energy and every pixel mean must agree within sampling error.
    from mme_numba.kernels.moves import single as images

    net = paper_cnn(4, image_shape=(3, 3), channels=(4, 4), random_state=3)
    net.set_theta(3.0 * net.theta)
    spec, params = net.describe(), net.kernel_params()
    lam = np.array([3.0, -4.0, 2.0, 5.0])
    n = 1000
    out = {}
    for kind in ("single", "mala"):
        x, e, rs, acc = _chains(spec, params, lam, EMPTY, n, 9, 0.0, 1.0, seed=30)
        if kind == "single":
            images.single_pixel_sweeps(spec, params, lam, *EMPTY, x, e, 0.0, 1.0, 0.3, 100,
                                       K.BOUNDARY_REFLECT, rs, acc)
        else:
            M.mala_sweeps(spec, params, lam, *EMPTY, x, e, 0.0, 1.0, 0.1, 500,
                          K.BOUNDARY_REFLECT, rs, acc)
        out[kind] = (x, e)
    (xs, es), (xm, em) = out["single"], out["mala"]
    z_energy = (es.mean() - em.mean()) / math.sqrt(es.var() / n + em.var() / n)
    z_pixels = (xs.mean(0) - xm.mean(0)) / np.sqrt(xs.var(0) / n + xm.var(0) / n)
    assert abs(z_energy) < 4.0, z_energy
    assert np.all(np.abs(z_pixels) < 4.0), z_pixels
    assert xs.mean(0).std() > 0.1  # the pixels' means differ: a non-trivial target
