"""The functional core: pure functions, no mutation, same numbers as the model classes."""

import numpy as np

import mme_numba as mme
from mme_numba import core


def test_metropolis_is_pure_and_matches_the_model_sampler():
    obs = mme.observables.polynomial(2, n_features=1)
    lam = np.array([0.0, 0.5])
    state = core.init_chains(obs, (-5.0, 5.0), n_chains=256, seed=3)
    x0, r0 = state.x.copy(), state.rng_state.copy()
    new = core.metropolis(obs, lam, state, (-5.0, 5.0), step=1.0, sweeps=5)
    np.testing.assert_array_equal(state.x, x0)
    np.testing.assert_array_equal(state.rng_state, r0)
    assert not np.array_equal(new.x, x0) and 0.3 < new.acceptance.mean() < 1.0
    again = core.metropolis(obs, lam, state, (-5.0, 5.0), step=1.0, sweeps=5)
    np.testing.assert_array_equal(new.x, again.x)  # same input state, same output


def test_functional_loop_fits_the_gaussian_multipliers():
    """λ-only MaxEnt written with the core functions: λ → (−μ/σ², 1/(2σ²)) within 5 %
    (1024 chains, average of the last 20 of 60 iterations, seed 0)."""
    X = np.random.default_rng(0).normal(0.5, 1.0, size=(2000, 1))
    obs = mme.observables.polynomial(2, n_features=1)
    state = core.init_chains(obs, (-6.0, 6.0), n_chains=1024, seed=0)
    lam = np.zeros(2)
    trace = []
    for _ in range(60):
        state = core.metropolis(obs, lam, state, (-6.0, 6.0), step=1.5, sweeps=5)
        lam = core.lambda_step(obs, lam, X, state.x)
        trace.append(lam)
    target = np.array([-X.mean() / X.var(), 0.5 / X.var()])
    np.testing.assert_allclose(np.mean(trace[-20:], axis=0), target, rtol=0.05)


def test_entropy_gradient_and_energy_agree_with_the_model():
    X = mme.datasets.gaussian_mixture(100, seed=0)
    m = mme.MinMaxEnt(mme.nn.mlp([1, 6, 2], random_state=0), support=(-6.0, 6.0), n_chains=32,
                      sweeps=2, burn_in=4, random_state=0).fit(X, epochs=2)
    s = m.sample(32)
    np.testing.assert_array_equal(core.entropy_gradient(m.observables_, m.lambda_, X, s),
                                  m.entropy_gradient(X, s))
    np.testing.assert_array_equal(core.energy(m.observables_, m.lambda_, X), m.energy(X))
