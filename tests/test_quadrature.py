"""Quadrature against closed forms, and the mixture datasets against their exact densities."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats
from scipy.special import ndtr

from mme_numba import quadrature as q
from mme_numba.datasets import mixtures as mx


def _gauss_energy(mu, sigma):
    return lambda x: 0.5 * np.sum(((x - mu) / sigma) ** 2, axis=1)


def _truncnorm_entropy(mu, sigma, lo, hi):
    """Closed form: ln(sqrt(2πe) σ Z) + (α φ(α) − β φ(β)) / (2 Z)."""
    a, b = (lo - mu) / sigma, (hi - mu) / sigma
    z = ndtr(b) - ndtr(a)
    phi = lambda t: np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi)
    return np.log(np.sqrt(2 * np.pi * np.e) * sigma * z) + (a * phi(a) - b * phi(b)) / (2 * z)


@settings(max_examples=20, deadline=None)
@given(mu=st.floats(-1.0, 1.0), sigma=st.floats(0.3, 3.0))
def test_truncated_gaussian_entropy_matches_closed_form(mu, sigma):
    lo, hi = -2.0, 1.5
    s = q.entropy(_gauss_energy(mu, sigma), lo, hi, n_grid=2001)
    assert s == pytest.approx(_truncnorm_entropy(mu, sigma, lo, hi), abs=1e-8)
    ref = stats.truncnorm((lo - mu) / sigma, (hi - mu) / sigma, loc=mu, scale=sigma).entropy()
    assert s == pytest.approx(ref, abs=1e-7)


def test_log_partition_of_gaussian_and_uniform():
    # untruncated Gaussian on a wide box: ln Z = ln(sqrt(2π) σ)
    assert q.log_partition(_gauss_energy(0.3, 0.7), -10, 10, 4001) == pytest.approx(
        np.log(np.sqrt(2 * np.pi) * 0.7), abs=1e-10)
    # H = 0 on a 2-d box: Z = area, S = ln(area)
    zero = lambda x: np.zeros(len(x))
    lo, hi = np.array([-1.0, 0.0]), np.array([2.0, 0.5])
    assert q.log_partition(zero, lo, hi, 21) == pytest.approx(np.log(1.5), abs=1e-12)
    assert q.entropy(zero, lo, hi, 21) == pytest.approx(np.log(1.5), abs=1e-12)


def test_two_dimensional_gaussian_entropy():
    cov = np.array([[1.0, 0.6], [0.6, 0.8]])
    prec = np.linalg.inv(cov)
    energy = lambda x: 0.5 * np.einsum("ni,ij,nj->n", x, prec, x)
    s = q.entropy(energy, -8.0 * np.ones(2), 8.0 * np.ones(2), 301)
    assert s == pytest.approx(0.5 * np.log((2 * np.pi * np.e) ** 2 * np.linalg.det(cov)), abs=1e-7)


def test_kl_between_gaussians_on_wide_box():
    m1, s1, m2, s2 = 0.2, 0.8, -0.5, 1.3
    exact = np.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5
    kl = q.kl_divergence(lambda x: -_gauss_energy(m1, s1)(x), lambda x: -_gauss_energy(m2, s2)(x),
                         -15, 15, 4001)
    assert kl == pytest.approx(exact, abs=1e-9)
    assert q.kl_divergence(lambda x: -_gauss_energy(m1, s1)(x), lambda x: -_gauss_energy(m1, s1)(x),
                           -15, 15, 4001) == pytest.approx(0.0, abs=1e-12)


def test_kl_is_infinite_when_q_vanishes_on_support_of_p():
    logp = lambda x: np.zeros(len(x))
    logq = lambda x: np.where(x[:, 0] > 0, 0.0, -np.inf)
    assert q.kl_divergence(logp, logq, -1, 1, 101) == np.inf
    # a jump inside the box costs Simpson its order: O(h) error, h = 0.02
    assert q.kl_divergence(logq, logp, -1, 1, 101) == pytest.approx(np.log(2.0), abs=2e-2)


def test_cross_entropy_equals_entropy_for_maxent_gaussian():
    # MaxEnt with O = (x, x²) on data: Gaussian with the data mean/variance; on a wide box its
    # cross-entropy on the data equals its entropy (docs/method.md §12) up to the box truncation.
    X = np.random.default_rng(0).normal(1.0, 2.0, size=(500, 1))
    mu, sd = X.mean(), X.std()
    energy = _gauss_energy(mu, sd)
    ce = q.cross_entropy(energy, X, -30, 30, 4001)
    assert ce == pytest.approx(q.entropy(energy, -30, 30, 4001), abs=1e-9)
    assert q.cross_entropy(energy, np.array([[40.0]]), -30, 30, 101) == np.inf


def test_log_density_grid_is_normalised_and_reshapes():
    pts, logp = q.log_density_grid(_gauss_energy(0.0, 1.0), [-3, -2], [3, 2], 41)
    _, logw, axes = q.grid([-3, -2], [3, 2], 41)
    assert pts.shape == (41 * 41, 2) and logp.shape == (41 * 41,)
    assert np.exp(logp + logw).sum() == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(pts.reshape(41, 41, 2)[:, 0, 0], axes[0])


def test_grid_validation():
    with pytest.raises(ValueError):
        q.simpson_weights(0, 1, 10)
    with pytest.raises(ValueError):
        q.as_box(1.0, 0.0)
    with pytest.raises(ValueError):
        q.grid(np.zeros(4), np.ones(4))


# --- mixtures -----------------------------------------------------------------------------

def test_mixture_logpdfs_match_scipy():
    x = np.linspace(-6, 6, 101)
    g = mx.gaussian_mixture_logpdf(x, means=(-2, 2), scales=(0.5, 1.0), weights=(0.3, 0.7))
    ref = np.log(0.3 * stats.norm.pdf(x, -2, 0.5) + 0.7 * stats.norm.pdf(x, 2, 1.0))
    assert np.allclose(g, ref, atol=1e-12)
    c = mx.cauchy_mixture_logpdf(x[:, None], medians=(-2, 2), scales=(0.5, 0.5))
    ref = np.log(0.5 * stats.cauchy.pdf(x, -2, 0.5) + 0.5 * stats.cauchy.pdf(x, 2, 0.5))
    assert np.allclose(c, ref, atol=1e-12)


def test_mixture_samplers_shapes_seeds_and_statistics():
    X = mx.gaussian_mixture(20000, means=(-2, 2), scales=(0.5, 0.5), seed=1)
    assert X.shape == (20000, 1)
    assert np.array_equal(X, mx.gaussian_mixture(20000, seed=1))
    # mixture variance = σ² + μ² = 4.25; std of the sample variance ~ 0.03
    assert X.var() == pytest.approx(4.25, abs=0.15)
    assert np.mean(X > 0) == pytest.approx(0.5, abs=0.02)
    C = mx.cauchy_mixture(20000, seed=np.random.default_rng(2))
    # medians of each half: the component medians ±2 (quartiles of a Cauchy are μ ± γ)
    assert np.median(C[C > 0]) == pytest.approx(2.0, abs=0.1)
    X2 = mx.gaussian_mixture(50, means=[[0, 0], [3, 3]], scales=[[1, 2], [1, 2]], seed=0)
    assert X2.shape == (50, 2)
    assert mx.gaussian_mixture_logpdf(X2, means=[[0, 0], [3, 3]], scales=[[1, 2], [1, 2]]).shape == (50,)


def test_truncated_logpdf_mass_matches_cdf():
    logpdf = functools.partial(mx.cauchy_mixture_logpdf, medians=(-2, 2), scales=(0.5, 0.5))
    tr = mx.truncated_logpdf(logpdf, -6.0, 6.0)
    mass = 0.5 * sum(stats.cauchy.cdf(6, m, 0.5) - stats.cauchy.cdf(-6, m, 0.5) for m in (-2, 2))
    assert tr.log_mass == pytest.approx(np.log(mass), abs=1e-9)
    assert q.log_partition(lambda x: -tr(x), -6, 6) == pytest.approx(0.0, abs=1e-9)
    assert tr(np.array([[7.0]]))[0] == -np.inf


def test_maxent_entropy_with_moments_is_the_gaussian():
    X = np.random.default_rng(3).normal(0.5, 1.5, size=(400, 1))
    obs = lambda x: np.concatenate([x, x ** 2], axis=1)
    S, lam = q.maxent_entropy(obs, obs(X).mean(0), -20, 20, 4001)
    mu, var = X.mean(), X.var()
    assert S == pytest.approx(0.5 * np.log(2 * np.pi * np.e * var), abs=1e-9)
    assert np.allclose(lam, [-mu / var, 1 / (2 * var)], rtol=1e-7)
    # warm start from the answer: no iterations needed, same value
    assert q.maxent_entropy(obs, obs(X).mean(0), -20, 20, 4001, lam0=lam)[0] == pytest.approx(S, abs=1e-12)


def test_a_huge_constant_energy_keeps_the_weights():
    # 7.7e48 at every point (a saturated network): without the shift in log_normalise,
    # -H + ln w rounds to -H and the entropy of this uniform density came out wrong.
    flat = q.entropy(lambda x: np.zeros(len(x)), 0.0, 2.0, n_grid=101)
    assert flat == pytest.approx(np.log(2.0), abs=1e-12)
    for c in (-1e48, 7.7e48):
        assert q.entropy(lambda x, c=c: np.full(len(x), c), 0.0, 2.0,
                         n_grid=101) == pytest.approx(flat, abs=1e-12)
        points, log_p = q.log_density_grid(lambda x, c=c: np.full(len(x), c),
                                           0.0, 2.0, n_grid=101)
        assert np.allclose(log_p, -np.log(2.0))
