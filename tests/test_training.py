"""Training that needs no tuning: exact oracles for the steps, the guard, the stopping rule.

Exact checks use quadrature grids as "samples" (weights = the density), so the Monte Carlo
estimators reduce to exact integrals; the statistical ones state their seed and tolerance.
"""

import numpy as np
import pytest

import mme_numba as mme
from cases import PoisonOnce as _PoisonOnce
from mme_numba import settings
from mme_numba import core, fitting, quadrature, solvers, training

LO, HI = -6.0, 6.0


def _grid(n=4001):
    x, w = quadrature.simpson_weights(LO, HI, n)
    return x[:, None], np.log(w)


def _exact_moments(O, logp):
    p = np.exp(logp - logp.max())
    p /= p.sum()
    mean = p @ O
    dev = O - mean
    return mean, (dev * p[:, None]).T @ dev


# --------------------------------------------------------------------- θ gradient
def test_theta_gradient_with_lambda_moved_in_the_step_matches_the_exact_entropy():
    """dS/dθ from samples drawn at λ0 and reweighted to λ* (as a training step does after its
    λ update) equals the central difference of the exact MaxEnt entropy S(θ) = min_λ F.
    Samples are a Simpson grid weighted by p_λ0, so both sides are quadratures; tolerance
    1e-5 relative."""
    X = mme.datasets.gaussian_mixture(400, means=(-2, 1.5), scales=(0.6, 0.8), seed=3)
    obs = mme.nn.mlp([1, 6, 2], random_state=4)
    theta = obs.theta.copy()

    def S(t):
        obs.set_theta(t)
        return quadrature.maxent_entropy(obs.forward, obs.forward(X).mean(0), LO, HI)

    S0, lam_star = S(theta)
    obs.set_theta(theta)
    pts, logq = _grid()
    O = obs.forward(pts)
    lam0 = lam_star + np.array([0.3, -0.2])                    # where the chains were drawn
    logw = logq - O @ lam0 + solvers.log_weights(O, lam_star - lam0)
    grad = core.entropy_gradient(obs, lam_star, X, pts, sample_logw=logw)

    rng = np.random.default_rng(5)
    for _ in range(3):
        v = rng.standard_normal(theta.size)
        h = 1e-5
        fd = (S(theta + h * v)[0] - S(theta - h * v)[0]) / (2 * h)
        assert grad @ v == pytest.approx(fd, rel=1e-5, abs=1e-9)


# --------------------------------------------------------------------- λ solvers
def test_chi2_gradient_matches_central_differences_of_the_exact_chi2():
    """The ADAM solver's gradient −2 (r/σ²)·C against central differences of the exact
    χ²(λ) = Σ (⟨O⟩_λ − ō)²/σ², moments by quadrature; tolerance 1e-6 relative."""
    pts, logq = _grid()
    x = pts[:, 0]
    O = np.stack([np.tanh(x), np.tanh(0.7 * x - 1.0), x * x / 10], axis=1)
    obar, var = np.array([0.1, -0.3, 0.5]), np.array([0.4, 0.2, 0.3])
    lam = np.array([0.4, -0.8, 0.6])

    def chi2(l):
        mean, _ = _exact_moments(O, logq - O @ l)
        return solvers.chi2(mean - obar, var)

    mean, cov = _exact_moments(O, logq - O @ lam)
    grad = solvers.chi2_gradient(mean - obar, cov, var)
    h = 1e-6
    fd = np.array([(chi2(lam + h * e) - chi2(lam - h * e)) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-10)


def test_adam_solver_steps_along_the_exact_chi2_gradient():
    """With equal halves the ADAM solver's first step is −lr·sign(∂χ²/∂λ)/max(σ_i, 1) (ADAM's
    first step has unit size per coordinate), the gradient from the samples' exact moments."""
    rng = np.random.default_rng(0)
    O = rng.normal(size=(2000, 3)) * [1.0, 0.5, 2.0] + [0.2, -0.1, 0.3]
    O = np.repeat(O, 2, axis=0)                 # even and odd rows identical: halves agree
    obar, var = np.array([0.0, 0.1, 0.0]), np.array([1.0, 0.3, 2.0])
    lam = np.zeros(3)
    solver = solvers.AdamSolver(lr=0.01)
    new, _ = solver.fit(lam, O, obar, var, np.ones(3, bool))
    mean, cov, _ = solvers.weighted_moments(O)
    # ... divided by max(σ_i, 1), so that no step moves the energy by more than lr data σ
    expected = -0.01 * np.sign(solvers.chi2_gradient(mean - obar, cov, var)) / np.maximum(
        np.sqrt(var), 1.0)
    np.testing.assert_allclose(new - lam, expected, rtol=1e-6)


def test_newton_step_is_the_exact_covariance_solve():
    """An unconstrained Newton step equals C⁻¹r (the ridge is 1e-6 of the mean eigenvalue);
    samples from a Gaussian whose dual decreases along the step; tolerance 1e-5 relative."""
    rng = np.random.default_rng(1)
    O = rng.multivariate_normal([0.1, 0.2], [[1.0, 0.3], [0.3, 0.5]], size=20000)
    mean, cov, _ = solvers.weighted_moments(O)
    obar = mean - np.array([0.02, -0.01])             # a small residual r = <O> − ō
    solver = solvers.NewtonSolver(max_step=10.0)
    new, info = solver.fit(np.zeros(2), O, obar, np.ones(2), np.ones(2, bool))
    assert info["steps"] == 1
    np.testing.assert_allclose(new, np.linalg.solve(cov, mean - obar), rtol=1e-5)


# --------------------------------------------------------------------- sampler
@pytest.mark.parametrize("move", ["all", "single", "scan", "mala"])
@pytest.mark.parametrize("boundary", ["reflect", "reject"])
def test_metropolis_samples_an_exponential_on_the_unit_box_with_steps_wider_than_it(move, boundary):
    """p(x) ∝ e^{a x} on [0, 1], a = 2, proposal step 2.5 (wider than the box, so reflected
    proposals fold several times and rejected ones are common): every move kind and boundary
    rule gives the exact mean 1/(1−e^{−a}) − 1/a and the exact variance, within 5 standard
    errors (4096 chains started uniform, 300 sweeps, seed 0). MALA uses step 0.5."""
    a = 2.0
    obs = mme.observables.polynomial(1, n_features=1)
    lam = np.array([-a])
    state = core.init_chains(obs, (0.0, 1.0), 4096, seed=0)
    step = 0.5 if move == "mala" else 2.5         # MALA's drift term scales with step²
    state = core.metropolis(obs, lam, state, (0.0, 1.0), step, 300, move=move, boundary=boundary)
    x = state.x
    mean = 1.0 / (1.0 - np.exp(-a)) - 1.0 / a
    second = (np.exp(a) * (a * a - 2 * a + 2) - 2) / (a * a * (np.exp(a) - 1))
    var = second - mean * mean
    se = np.sqrt(var / len(x))
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se), (x.mean(0), mean)
    assert np.all(np.abs(x.var(0) - var) < 5 * np.sqrt(2.0 / len(x)) * var), (x.var(0), var)
    assert np.all((x >= 0) & (x <= 1))


# --------------------------------------------------------------------- controls
def test_reweighted_kl_is_exact_on_a_grid_and_never_negative():
    pts, logq = _grid()
    x = pts[:, 0]
    dh = 0.3 * np.tanh(x) + 0.05 * x
    h0 = 0.2 * x * x
    logp = logq - h0
    p = np.exp(logp - logp.max())
    p /= p.sum()
    q = p * np.exp(-dh)
    q /= q.sum()
    exact = float(np.sum(p * np.log(p / q)))
    assert training.reweighted_kl(dh, logp) == pytest.approx(exact, rel=1e-10)
    assert training.reweighted_kl(np.zeros(10)) == 0.0


def test_plateau_declares_flat_signals_and_not_falling_ones():
    rng = np.random.default_rng(0)
    falling = training.Plateau(window=50, tol=2e-3, patience=3, min_epochs=0)
    for t in range(2000):
        assert not falling.update(5.0 - 1e-3 * t + 1e-3 * rng.standard_normal(), t)
    flat = training.Plateau(window=50, tol=2e-3, patience=3, min_epochs=0)
    declared = [t for t in range(400) if flat.update(1.0 + 1e-3 * rng.standard_normal(), t)]
    assert len(declared) >= 3 and flat.done


def test_theta_step_control_moves_the_model_by_the_budget():
    """KL grows with the square of the step: a trial 16x over budget is cut to a quarter."""
    ctl = training.ThetaStepControl(kl_step=1e-2, warmup=0)
    assert ctl.scale == 1e-3
    applied = ctl.choose(0.16, epoch=10)
    assert applied == pytest.approx(0.25)
    assert ctl.last_kl == pytest.approx(1e-2)
    assert ctl.scale == pytest.approx(2.5e-4)          # the next trial starts there
    assert ctl.choose(1e-4, epoch=10) == 1.0           # far under budget: taken whole ...
    assert ctl.scale == pytest.approx(5e-4)            # ... and the next trial twice as far
    assert ctl.choose(float("nan"), epoch=10) == pytest.approx(0.1)
    warm = training.ThetaStepControl(kl_step=1e-2, warmup=20)
    assert warm.budget(0) == pytest.approx(1e-3) and warm.budget(20) == pytest.approx(1e-2)


def _explicit_fisher(obs, lam, samples, w):
    """``F = Jᵀ diag(w) J − (Jᵀw)(wᵀJ)`` from the exact per-sample gradients ``∂E(x_k)/∂θ``
    (one backward pass per sample)."""
    J = np.array([obs.backward(samples[k:k + 1], lam[None, :])[0] for k in range(len(samples))])
    m = J.T @ w
    return J.T @ (w[:, None] * J) - np.outer(m, m)


def test_fisher_products_match_the_explicit_fisher_matrix():
    """The finite-difference Jv and the backward pass Jᵀc give F v of the exact per-sample
    Jacobian, to the finite difference's 1e-5, for random weights and directions."""
    rng = np.random.default_rng(0)
    obs = mme.nn.mlp([2, 4, 3], random_state=1)
    lam = np.array([0.7, -1.3, 0.4])
    samples = rng.normal(size=(40, 2))
    w = rng.random(40)
    w /= w.sum()
    F = _explicit_fisher(obs, lam, samples, w)
    theta = obs.theta.copy()
    product = training.fisher_product(obs, lam, samples, w)
    for _ in range(3):
        v = rng.normal(size=obs.n_params)
        np.testing.assert_allclose(product(v), F @ v, rtol=1e-4, atol=1e-6 * np.abs(F).max())
    np.testing.assert_array_equal(obs.theta, theta)          # θ left as it was
    np.testing.assert_array_equal(product(np.zeros(obs.n_params)), 0.0)


def test_natural_direction_is_the_damped_fisher_solve():
    """With as many CG steps as parameters, the direction is (F + δI)⁻¹ g exactly, δ the
    damping fraction of the curvature along g; a flat F returns g itself."""
    rng = np.random.default_rng(2)
    A = rng.normal(size=(6, 6))
    F = A @ A.T + 0.1 * np.eye(6)
    g = rng.normal(size=6)
    delta = 1e-3 * (g @ F @ g) / (g @ g)
    v = training.natural_direction(lambda u: F @ u, g, iters=6)
    np.testing.assert_allclose(v, np.linalg.solve(F + delta * np.eye(6), g), rtol=1e-8)
    np.testing.assert_array_equal(training.natural_direction(lambda u: 0 * u, g), g)
    np.testing.assert_array_equal(training.natural_direction(lambda u: F @ u, 0 * g), 0 * g)
    # the direction the fit takes: F's ill-conditioning undone, unlike the gradient's
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    exact = np.linalg.solve(F, g)
    assert cos(v, exact) > 0.999 > cos(g, exact)


def test_auto_direction_is_natural_on_dense_networks_and_adam_on_convolutions(monkeypatch):
    """settings.THETA_DIRECTION="auto" (the default): the natural direction where it was
    measured (dense networks), ADAM's on observables with a CONV2D row."""
    assert settings.THETA_DIRECTION == "auto"
    calls, real = [], fitting.natural_direction
    monkeypatch.setattr(fitting, "natural_direction",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    X, _ = mme.datasets.digits()
    cnn = mme.nn.paper_cnn(4, channels=(2, 3), random_state=0)
    mme.MinMaxEnt(cnn, (0.0, 1.0), n_chains=16, burn_in=5, sweeps=2,
                  random_state=0).fit(X[:50], epochs=2)
    assert calls == []
    X1 = mme.datasets.gaussian_mixture(200, means=(-2, 2), scales=(0.5, 0.5), seed=0)
    mme.MinMaxEnt(mme.nn.mlp([1, 8, 2], random_state=0), (-6.0, 6.0), n_chains=64,
                  random_state=0).fit(X1, epochs=2)
    assert len(calls) == 2


# --------------------------------------------------------------------- the estimator
def _bimodal():
    X = mme.datasets.gaussian_mixture(1000, means=(-2, 2), scales=(0.5, 0.5), seed=0)
    true = mme.datasets.truncated_logpdf(
        lambda x: mme.datasets.gaussian_mixture_logpdf(x, means=(-2, 2), scales=(0.5, 0.5)),
        LO, HI)
    return X, true


def test_default_fit_learns_the_bimodal_and_tracks_its_entropy():
    """``MinMaxEnt(net, support).fit(X)`` with nothing else set (seed 0): KL(true‖model) by
    quadrature below 0.03 (Gaussian MaxEnt: 0.72), stops on its own before ``max_epochs``,
    and the tracked entropy agrees with the quadrature cross-entropy within 0.1 nats."""
    X, true = _bimodal()
    model = mme.MinMaxEnt(mme.nn.mlp([1, 32, 32, 3], random_state=0), support=(LO, HI),
                          random_state=0).fit(X)
    lnz = quadrature.log_partition(model.energy, LO, HI)
    kl = quadrature.kl_divergence(true, lambda x: -model.energy(x) - lnz, LO, HI)
    assert kl < 0.03, kl
    assert model.epoch_ < model.default_max_epochs
    assert model.move_ == "all"
    cross = quadrature.cross_entropy(model.energy, X, LO, HI)
    assert abs(model.history_[-1]["entropy_estimate"] - cross) < 0.1, (model.history_[-1]["entropy_estimate"], cross)


def test_maxent_auto_epochs_stop_once_the_dual_is_flat():
    """MaxEnt with x, x² on Gaussian data: ``epochs="auto"`` stops after its plateaus, well
    before ``max_epochs``, with λ at the closed form within 5 % (seed 0). The tracked entropy
    is a random walk of per-epoch Bennett estimates on 128 monitor chains: measured within
    0.09–0.17 nats of the exact value at 512 chains over 350–450 epochs (tolerance 0.25)."""
    rng = np.random.default_rng(0)
    X = rng.normal(0.5, 0.8, size=(2000, 1))
    model = mme.MaxEnt(mme.observables.polynomial(2), support=(LO, HI), n_chains=512,
                       random_state=0).fit(X)
    assert model.epoch_ < 500 and model.lambda_solver_ == "newton"
    mu, s2 = X.mean(), X.var()
    lam = np.mean([r["lambda"] for r in model.history_[-50:]], axis=0)
    np.testing.assert_allclose(lam, [-mu / s2, 1 / (2 * s2)], rtol=0.05)
    assert abs(model.history_[-1]["entropy_estimate"] - 0.5 * np.log(2 * np.pi * np.e * s2)) < 0.25


def _small_model(**kw):
    return mme.MinMaxEnt(mme.nn.mlp([1, 8, 2], random_state=0), support=(LO, HI), n_chains=128,
                         sweeps=2, burn_in=20, random_state=0, **kw)


def test_a_diverged_epoch_is_rolled_back_and_recorded():
    X, _ = _bimodal()
    model = _small_model().fit(X, epochs=3)
    model._lambda_solver = _PoisonOnce(model._lambda_solver, bad_calls={2})
    model.fit(X, epochs=10)
    assert model.epoch_ == 13 and len(model.history_) == 13      # exactly the epochs asked for
    assert np.all(np.isfinite(model.lambda_)) and np.all(np.isfinite(model.observables_.theta))
    events = [e for r in model.history_ for e in r.get("events", [])]
    assert len(events) == 1 and events[0]["event"] == "rollback"
    assert "lambda is not finite" in events[0]["reason"]
    assert model.history_[-1]["rollbacks"] == 1


def test_the_halved_steps_of_a_rollback_come_back_after_good_epochs():
    """A rollback halves λ's and θ's steps (the θ KL budget by 4); after ``recover`` (20)
    good epochs in a row the halving is undone, so one bad epoch does not slow the rest of
    the fit. Checked on the optimizers themselves, and through a checkpoint round trip."""
    X, _ = _bimodal()
    model = _small_model().fit(X, epochs=3)
    adam_lr, budget = model._lambda_solver.adam.lr, model._theta_control.factor
    model._lambda_solver = _PoisonOnce(model._lambda_solver, bad_calls={2})
    model.fit(X, epochs=10)
    assert model.history_[-1]["rollbacks"] == 1
    assert model._lambda_solver.adam.lr == pytest.approx(adam_lr / 2)
    assert model._theta_control.factor == pytest.approx(budget / 4)
    model.fit(X, epochs=10)            # 20 good epochs since the rollback by now
    assert model._lambda_solver.adam.lr == pytest.approx(adam_lr)
    assert model._theta_control.factor == pytest.approx(budget)
    model.fit(X, epochs=30)            # nothing left to undo: the steps stay where they were
    assert model._lambda_solver.adam.lr == pytest.approx(adam_lr)


def test_guard_recovery_survives_its_state_round_trip():
    g = training.DivergenceGuard(recover=3)
    g.failed(5, "lambda is not finite")
    g.failed(6, "lambda is not finite")
    rec = {"chi2": 0.1, "lambda_norm": 1.0}
    assert [g.accept(rec) for _ in range(2)] == [1.0, 1.0]
    h = training.DivergenceGuard(recover=3)
    h.set_state(g.state())
    assert [h.accept(rec) for _ in range(7)] == [2.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]


def test_persistent_divergence_stops_with_a_clear_error_and_keeps_the_last_good_state():
    X, _ = _bimodal()
    model = _small_model().fit(X, epochs=3)
    lam, theta = model.lambda_.copy(), model.observables_.theta.copy()
    model._lambda_solver = _PoisonOnce(model._lambda_solver, bad_calls=range(1, 100))
    with pytest.raises(training.TrainingDivergedError, match=r"epoch 4: lambda is not finite"):
        model.fit(X, epochs=10)
    assert model.epoch_ == 3
    np.testing.assert_array_equal(model.lambda_, lam)
    np.testing.assert_array_equal(model.observables_.theta, theta)


def test_default_move_follows_the_observables():
    cnn = mme.MinMaxEnt(mme.nn.paper_cnn(4), support=(0.0, 1.0))
    mlp = mme.MinMaxEnt(mme.nn.mlp([2, 4, 2]), support=(0.0, 1.0))
    assert cnn.move_ == "scan" and mlp.move_ == "all"
    assert mme.MinMaxEnt(mme.nn.mlp([2, 4, 2]), support=(0, 1), move="single").move_ == "single"


def test_step_ladder_carries_chains_between_wells_the_adapted_step_does_not_cross():
    """Double well H = 4x⁴ − 12x² on [−3, 3] (barrier 9 nats, symmetric), every chain started
    in the left well at x = −1.2, adapted step 0.3, 100 sweeps (seed 0). With the ladder
    (``step_size="auto"``) the mass right of 0 is ½ within 5 standard errors; with the same
    fixed step and no ladder the chains stay put (below 1 %)."""
    X = np.linspace(-2, 2, 50)[:, None]
    lam = np.array([0.0, -12.0, 0.0, 4.0])
    right = {}
    for step in ("auto", 0.3):
        model = mme.MaxEnt(mme.observables.polynomial(4), support=(-3.0, 3.0), n_chains=2048,
                           burn_in=0, step_size=step, random_state=0).fit(X, epochs=1)
        model.lambda_ = lam.copy()
        model.chains_ = np.full_like(model.chains_, -1.2)
        model.step_ = np.full_like(model.step_, 0.3)
        right[step] = float(np.mean(model.sample(2048, sweeps=100) > 0))
    assert abs(right["auto"] - 0.5) < 5 * np.sqrt(0.25 / 2048), right
    assert right[0.3] < 0.01, right


class _InterruptAt(_PoisonOnce):
    """Ctrl-C inside the λ step of a chosen call: mid-epoch, after the chains have moved."""

    def fit(self, lam, *args):
        self.calls += 1
        if self.calls in self.bad:
            raise KeyboardInterrupt
        return self.solver.fit(lam, *args)


def test_ctrl_c_mid_epoch_leaves_the_last_whole_epoch_and_training_continues_identically():
    X, _ = _bimodal()
    ref = _small_model().fit(X, epochs=6)
    model = _small_model().fit(X, epochs=3)
    model._lambda_solver = _InterruptAt(model._lambda_solver, bad_calls={2})
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, epochs=3)
    assert model.epoch_ == 4 and len(model.history_) == 4       # the interrupted epoch undone
    model._lambda_solver = model._lambda_solver.solver
    model.fit(X, epochs=2)
    np.testing.assert_array_equal(model.lambda_, ref.lambda_)   # as if never interrupted
    np.testing.assert_array_equal(model.chains_, ref.chains_)
    np.testing.assert_array_equal(model.observables_.theta, ref.observables_.theta)


def test_auto_sweeps_grow_while_chains_lag_and_stay_put_when_they_mix():
    m = mme.MaxEnt(mme.observables.polynomial(2), support=(-5, 5), n_chains=64, burn_in=2,
                   random_state=0).fit(np.random.default_rng(0).normal(size=(100, 1)), epochs=2)
    assert m.sweeps == "auto" and m.sweeps_ == 10

    def adapt(before, after):       # what an epoch does with the energies it measured
        return m._chains.adapt_sweeps(before, after, m.sweeps == "auto")

    rng = np.random.default_rng(1)
    h = rng.normal(size=500)
    lagging = h + 0.3 * rng.normal(size=500)             # correlation ~0.96
    assert adapt(h, lagging) > 0.9 and m.sweeps_ == 13
    adapt(h, lagging)
    assert m.sweeps_ == 17
    assert abs(adapt(h, rng.normal(size=500))) < 0.1 and m.sweeps_ == 13
    for _ in range(30):
        adapt(h, lagging)
    assert m.sweeps_ == settings.SWEEPS_MAX
    for _ in range(30):
        adapt(h, rng.normal(size=500))
    assert m.sweeps_ == settings.SWEEPS_MIN
    m.set_params(sweeps=7)                                # a fixed count is left alone
    adapt(h, lagging)
    assert m.sweeps_ == 7
    assert adapt(np.zeros(10), h[:10]) is None  # λ = 0: no energy spread yet


def test_auto_sweeps_follow_the_lag_in_a_fit_and_survive_a_checkpoint(tmp_path):
    # 6-d Gaussian, variances 4 ... 0.25 (seed 0): ten all-coordinate sweeps leave the chains'
    # energies correlated, so the count grows; it is recorded and restored with the model
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6)) * np.geomspace(2.0, 0.5, 6)
    m = mme.MaxEnt(mme.observables.polynomial(2), support=(-10, 10), n_chains=256,
                   random_state=0).fit(X, epochs=15)
    sweeps = [r["sweeps"] for r in m.history_]
    assert sweeps[0] == 10 and max(sweeps) > 10, sweeps
    assert all(r["lag_correlation"] is None or -1 <= r["lag_correlation"] <= 1
               for r in m.history_)
    m.save(tmp_path / "m.npz")
    assert mme.load(tmp_path / "m.npz").sweeps_ == m.sweeps_


class _OverflowingTheta:
    """θ's ADAM wrapped to overflow at chosen calls, as a θ that grew until inf does."""

    def __init__(self, adam, bad_calls):
        self.adam, self.bad, self.calls = adam, set(bad_calls), 0

    def step(self, theta, grad):
        self.calls += 1
        new = self.adam.step(theta, grad)
        return np.full_like(new, np.inf) if self.calls in self.bad else new

    def __getattr__(self, name):
        return getattr(self.adam, name)


@pytest.mark.parametrize("direction", ["natural", "adam"])
def test_a_theta_step_that_overflows_is_rolled_back_not_raised(direction, monkeypatch):
    # Measured: a checkerboard fit with theta_kl_step=3e-2 raised "theta contains non-finite
    # values" at epoch 1076; it must be a rollback, and the model keeps finite θ.
    monkeypatch.setattr(settings, "THETA_DIRECTION", direction)
    X, _ = _bimodal()
    model = _small_model().fit(X, epochs=3)
    if direction == "adam":
        model._theta_adam = _OverflowingTheta(model._theta_adam, bad_calls={2})
    else:
        calls, real = [], fitting.natural_direction

        def overflowing(*args, **kwargs):
            calls.append(1)
            v = real(*args, **kwargs)
            return np.full_like(v, np.inf) if len(calls) == 2 else v

        monkeypatch.setattr(fitting, "natural_direction", overflowing)
    model.fit(X, epochs=6)
    assert model.epoch_ == 9 and np.all(np.isfinite(model.observables_.theta))
    events = [e for r in model.history_ for e in r.get("events", [])]
    assert [e["event"] for e in events] == ["rollback"]
    assert ("θ step left the finite numbers" if direction == "adam" else
            "natural θ direction is not finite") in events[0]["reason"]
