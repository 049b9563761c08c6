"""λ solvers and ADAM: exact checks on samples whose moments are known."""

import numpy as np
import pytest

from mme_numba import solvers


def test_weighted_moments_match_numpy():
    rng = np.random.default_rng(0)
    O = rng.normal(size=(500, 3))
    logw = rng.normal(size=500)
    mean, cov, ess = solvers.weighted_moments(O, logw)
    w = np.exp(logw) / np.exp(logw).sum()
    np.testing.assert_allclose(mean, w @ O, rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(O.T, aweights=w, bias=True), rtol=1e-10)
    assert ess == pytest.approx(1.0 / (500 * np.sum(w * w)), rel=1e-12)
    mean0, cov0, ess0 = solvers.weighted_moments(O)
    np.testing.assert_allclose(cov0, np.cov(O.T, bias=True), rtol=1e-10)
    assert ess0 == 1.0


def test_dual_change_is_exact_for_an_exponential_family_on_a_grid():
    # Samples = a grid with quadrature weights: the reweighting estimate becomes exact.
    x = np.linspace(-5, 5, 20001)
    O = np.stack([x, x * x], axis=1)
    lam0 = np.array([0.3, 0.5])
    logw = -(O @ lam0)
    obar = np.array([0.1, 1.2])
    delta = np.array([-0.2, 0.1])

    def F(lam):
        a = -(O @ lam)
        return np.log(np.sum(np.exp(a - a.max()))) + a.max() + lam @ obar

    est = solvers.dual_change(O, delta, obar, logw)
    assert est == pytest.approx(F(lam0 + delta) - F(lam0), abs=1e-10)


def _gaussian_samples(lam, n, seed):
    """Exact samples of p ∝ exp(-l1 x - l2 x²) and their observables (x, x²)."""
    var = 1.0 / (2 * lam[1])
    mu = -lam[0] * var
    x = np.random.default_rng(seed).normal(mu, np.sqrt(var), size=n)
    return np.stack([x, x * x], axis=1)


@pytest.mark.parametrize("name", ["newton", "adam"])
def test_solvers_converge_to_the_gaussian_multipliers(name):
    """Iterating solver steps on exact samples reaches λ = (-μ/σ², 1/(2σ²))."""
    mu, s2 = 0.7, 0.5
    obar = np.array([mu, s2 + mu * mu])
    var = np.array([s2, 2 * s2 * s2 + 4 * mu * mu * s2])  # data variances of x and x²
    target = np.array([-mu / s2, 1 / (2 * s2)])
    solver = solvers.make_lambda_solver(name, lr=0.05, n_steps=3)
    lam = np.array([0.0, 0.3])
    iters = 60 if name == "newton" else 600
    for it in range(iters):
        O = _gaussian_samples(lam, 20000, seed=it)
        lam, info = solver.fit(lam, O, obar, var, np.ones(2, bool))
    # Tolerance: a few Monte Carlo standard errors of the last step (20k samples).
    np.testing.assert_allclose(lam, target, rtol=0.05)


def test_newton_trust_region_bounds_the_step():
    O = _gaussian_samples(np.array([0.0, 0.5]), 5000, seed=1)
    obar = np.array([3.0, 10.0])  # far away: a full Newton step would be huge
    solver = solvers.NewtonSolver(max_step=0.5)
    lam, _ = solver.fit(np.array([0.0, 0.5]), O, obar, np.ones(2), np.ones(2, bool))
    _, cov, _ = solvers.weighted_moments(O)
    delta = lam - np.array([0.0, 0.5])
    assert np.sqrt(delta @ cov @ delta) <= 0.5 + 1e-12


def test_newton_handles_collinear_observables():
    """Exactly duplicated observables make C singular; the LM ridge keeps the step finite."""
    O1 = _gaussian_samples(np.array([0.0, 0.5]), 5000, seed=2)
    O = np.concatenate([O1, O1[:, :1]], axis=1)  # x twice
    obar = np.array([0.2, 1.1, 0.2])
    lam, info = solvers.NewtonSolver().fit(np.array([0.0, 0.5, 0.0]), O, obar, np.ones(3),
                                           np.ones(3, bool))
    assert np.all(np.isfinite(lam))
    assert info["steps"] == 1


def test_inactive_observables_are_frozen():
    O = _gaussian_samples(np.array([0.0, 0.5]), 2000, seed=3)
    active = np.array([True, False])
    for name in ["newton", "adam"]:
        lam, _ = solvers.make_lambda_solver(name).fit(np.array([0.0, 0.5]), O,
                                                      np.array([0.5, 1.0]), np.ones(2), active)
        assert lam[1] == 0.5


@pytest.mark.parametrize("name", ["newton", "adam"])
def test_all_observables_frozen_is_no_step_and_no_warning(name):
    # every observable constant on the data: nothing to fit (Newton used to divide 0 by 0
    # for its ridge, then backtrack twelve times on an empty step)
    O = _gaussian_samples(np.array([0.0, 0.5]), 500, seed=4)
    lam0 = np.array([0.3, 0.5])
    with np.errstate(all="raise"):
        lam, info = solvers.make_lambda_solver(name).fit(lam0, O, np.array([0.5, 1.0]),
                                                         np.ones(2), np.zeros(2, bool))
    np.testing.assert_array_equal(lam, lam0)
    assert info["steps"] == 0 and info["chi2"] == 0.0


def test_adam_matches_reference_formula():
    adam = solvers.Adam(lr=0.1)
    p = np.array([1.0, -2.0])
    g = np.array([0.5, -1.0])
    p1 = adam.step(p, g)
    # First ADAM step moves each coordinate by lr·sign(g) (bias-corrected m/sqrt(v) = ±1).
    np.testing.assert_allclose(p1, p - 0.1 * np.sign(g) * np.abs(g) / (np.abs(g) + 1e-8))
    state = adam.get_state("a")
    other = solvers.Adam(lr=0.1)
    other.set_state(state, "a")
    np.testing.assert_array_equal(adam.step(p1, g), other.step(p1, g))


@pytest.mark.parametrize("bad", [dict(name="lbfgs"), dict(name="adam", n_steps=0),
                                 dict(name="newton", min_ess=0.0)])
def test_bad_solver_arguments_are_named(bad):
    with pytest.raises(ValueError):
        solvers.make_lambda_solver(**bad)


def test_newton_bounds_steps_along_observables_the_samples_do_not_resolve():
    # observable 0 is constant over the model's samples (a dead ReLU unit on every chain)
    # but not on the data: C has a zero row, and the step along it used to be unbounded
    # (λ0 jumped by 4e8) or, with C = 0, infinite
    rng = np.random.default_rng(0)
    varying = np.column_stack([np.full(500, 0.5), rng.normal(0.0, 0.03, 500)])
    obar, var = np.array([0.7, 0.01]), np.array([0.04, 0.01])
    solver = solvers.NewtonSolver(max_step=1.0)
    for O in (varying, np.zeros((500, 2))):
        with np.errstate(all="raise"):
            lam, info = solver.fit(np.zeros(2), O, obar, var, np.ones(2, bool))
        assert info["steps"] == 1 and np.all(np.isfinite(lam))
        # the floored metric: |δ_i| sqrt(MIN_VARIANCE var_i) <= max_step
        assert np.all(np.abs(lam) * np.sqrt(solver.MIN_VARIANCE * var) <= 1.0 + 1e-9)
        assert lam[0] < 0.0  # toward the data: the model's mean 0.5 is below 0.7
