"""Squared-projection observables and PCA as the minimiser of the MaxEnt entropy (docs/method.md §6)."""

import json

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from hypothesis import given, settings, strategies as st

from mme_numba.observables.projections import (
    SquaredProjections, gaussian_maxent_entropy, gaussian_maxent_entropy_gradient,
    pca_by_entropy, squared_projections)


def _data(d, n=2000, seed=0):
    """Correlated Gaussian data with well separated covariance eigenvalues."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = np.linspace(2.0, 0.5, d)
    return rng.standard_normal((n, d)) * scales @ Q.T + rng.normal(size=d)


def _num_grad(f, theta, eps=1e-6):
    g = np.zeros_like(theta)
    for i in range(len(theta)):
        e = np.zeros_like(theta)
        e[i] = eps
        g[i] = (f(theta + e) - f(theta - e)) / (2 * eps)
    return g


def test_two_d_basis_is_the_rotation_by_theta():
    obs = squared_projections(2, random_state=3)
    a = obs.theta[0]
    assert np.allclose(obs.basis(), [[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]], atol=1e-14)
    X = np.random.default_rng(0).normal(size=(5, 2))
    assert np.allclose(obs.forward(X), (X @ obs.basis().T) ** 2, atol=1e-14)


@settings(max_examples=15, deadline=None)
@given(d=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_basis_orthogonal_and_backward_matches_central_differences(d, seed):
    rng = np.random.default_rng(seed)
    obs = squared_projections(d, random_state=seed)
    U = obs.basis()
    assert np.allclose(U @ U.T, np.eye(d), atol=1e-12)
    X = rng.normal(size=(7, d))
    dO = rng.normal(size=(7, d))
    dtheta, dX = obs.backward(X, dO)

    def loss_theta(t):
        o = obs.copy()
        o.set_theta(t)
        return np.sum(dO * o.forward(X))

    assert np.allclose(dtheta, _num_grad(loss_theta, obs.theta.copy()), rtol=1e-6, atol=1e-6)
    num_dX = _num_grad(lambda x: np.sum(dO * obs.forward(x.reshape(7, d))), X.ravel()).reshape(7, d)
    assert np.allclose(dX, num_dX, rtol=1e-6, atol=1e-6)


def _autograd_expm(A, terms=40, squarings=6):
    """expm by scaling and squaring of a Taylor series: differentiable by autograd."""
    B = A / 2.0 ** squarings
    term, out = anp.eye(A.shape[0]), anp.eye(A.shape[0])
    for k in range(1, terms):
        term = anp.dot(term, B) / k
        out = out + term
    for _ in range(squarings):
        out = anp.dot(out, out)
    return out


def test_theta_gradient_matches_autograd():
    d = 4
    obs = squared_projections(d, random_state=1)
    rng = np.random.default_rng(1)
    X, dO = rng.normal(size=(9, d)), rng.normal(size=(9, d))
    iu = np.triu_indices(d, 1)

    def loss(theta):
        T = anp.zeros((d, d))
        for p, (i, j) in enumerate(zip(*iu)):
            E = np.zeros((d, d))
            E[i, j], E[j, i] = 1.0, -1.0
            T = T + theta[p] * E
        U = _autograd_expm(T)
        return anp.sum(dO * anp.dot(X, U.T) ** 2)

    assert loss(obs.theta) == pytest.approx(np.sum(dO * obs.forward(X)), rel=1e-12)
    assert np.allclose(obs.backward(X, dO)[0], grad(loss)(obs.theta.copy()), rtol=1e-9, atol=1e-9)


def test_in_place_theta_update_refreshes_basis_and_kernel_params():
    obs = squared_projections(3, random_state=0)
    U0 = obs.basis()
    obs.theta -= 0.1                       # what an optimizer does
    assert not np.allclose(obs.basis(), U0)
    assert np.array_equal(obs.kernel_params(), obs.basis().ravel())
    obs.theta = np.zeros(3)
    assert np.allclose(obs.basis(), np.eye(3))
    with pytest.raises(ValueError):
        obs.set_theta(np.zeros(2))


def test_describe_config_copy():
    obs = squared_projections(3, random_state=5)
    spec = obs.describe()
    assert spec.dtype == np.int64 and spec.shape == (2, 8)
    assert spec[0].tolist() == [0, 3, 3, 0, 0, 0, 0, 0]   # DENSE, no bias
    assert spec[1].tolist() == [6, 3, 3, 0, 0, 0, 0, 0]   # SQUARE
    cfg = json.loads(json.dumps(obs.get_config()))
    new = SquaredProjections.from_config(cfg)
    new.set_theta(obs.theta)
    assert np.array_equal(new.basis(), obs.basis())
    c = obs.copy()
    c.theta += 1.0
    assert not np.allclose(c.theta, obs.theta)


def test_entropy_gradient_matches_central_differences():
    X = _data(4) - _data(4).mean(0)
    obs = squared_projections(4, random_state=2)
    S, g = gaussian_maxent_entropy_gradient(obs, X)
    assert S == pytest.approx(gaussian_maxent_entropy(obs.basis(), X), rel=1e-13)

    def f(t):
        o = obs.copy()
        o.set_theta(t)
        return gaussian_maxent_entropy(o.basis(), X)

    assert np.allclose(g, _num_grad(f, obs.theta.copy()), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pca_angle_in_two_d(seed):
    X = _data(2, seed=seed)
    Xc = X - X.mean(0)
    (a, c), (_, b) = Xc.T @ Xc / len(Xc)
    obs = pca_by_entropy(X, random_state=seed)
    phi = obs.theta[0]                              # u_1 = (cos φ, sin φ)
    # tan 2φ = 2c/(a−b), i.e. 2φ ≡ atan2(2c, a−b) modulo π
    resid = np.angle(np.exp(1j * (2 * phi - np.arctan2(2 * c, a - b))) ** 2) / 2
    assert abs(resid) < 1e-7
    # at the optimum the entropy reaches the Gaussian bound ½ ln((2πe)² det Σ)
    S = gaussian_maxent_entropy(obs.basis(), Xc)
    assert S == pytest.approx(0.5 * np.log((2 * np.pi * np.e) ** 2 * (a * b - c * c)), abs=1e-10)


@pytest.mark.parametrize("d", [3, 5, 8])
def test_pca_axes_are_covariance_eigenvectors(d):
    X = _data(d, seed=d)
    Xc = X - X.mean(0)
    cov = Xc.T @ Xc / len(Xc)
    evals, evecs = np.linalg.eigh(cov)
    obs = pca_by_entropy(X, random_state=d)
    U = obs.basis()
    overlap = np.abs(U @ evecs)                     # a permutation matrix at the optimum
    assert np.allclose(np.sort(overlap.max(axis=1)), 1.0, atol=1e-6)
    assert np.allclose(np.sort(overlap.max(axis=0)), 1.0, atol=1e-6)
    S_min = 0.5 * np.sum(np.log(2 * np.pi * np.e * evals))
    assert gaussian_maxent_entropy(U, Xc) == pytest.approx(S_min, abs=1e-10)
    # Hadamard: any other rotation has a larger entropy
    assert gaussian_maxent_entropy(squared_projections(d, 99).basis(), Xc) > S_min


def test_sampler_trainer_recovers_pca_angle_in_two_d():
    """The full Min-MaxEnt trainer (Metropolis samples, Newton λ, ADAM θ) finds φ*.

    Measured (seed 0, 120 epochs): |φ_avg − φ*| = 0.0025 rad, per-epoch std 0.006 rad; λ·2s = 1.01, 1.05.
    """
    import mme_numba as mme

    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([0, 0], [[3.0, 1.2], [1.2, 1.0]], size=2000)
    X -= X.mean(0)
    (a, c), (_, b) = X.T @ X / len(X)
    phi_star = 0.5 * np.arctan2(2 * c, a - b)
    obs = squared_projections(2, random_state=0)
    model = mme.MinMaxEnt(obs, support=(-10.0, 10.0), n_chains=1024, sweeps=5, lr_theta=2e-2,
                          lambda_solver="newton", random_state=0)
    phis = []
    model.fit(X, epochs=120, callback=lambda m, r: phis.append(m.observables_.theta[0]))
    assert model.observables is obs  # untouched: fit trains its own copy
    U = model.observables_.basis()
    assert np.allclose(U @ U.T, np.eye(2))
    phi_avg = np.mean(phis[-40:])
    assert abs(np.angle(np.exp(4j * (phi_avg - phi_star))) / 4) < 0.02
    # λ_k → 1/(2 s_k), the Gaussian MaxEnt multipliers, within sampling noise (10 %)
    s = np.einsum("ki,ij,kj->k", U, X.T @ X / len(X), U)
    assert np.allclose(model.lambda_, 1 / (2 * s), rtol=0.1)
