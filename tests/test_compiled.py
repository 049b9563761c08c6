"""Compiled user observables (``mme.observables.compiled``) in the sampler and the trainer.

The functions are module-level so that each kernel set compiles once for the whole module.
"""

import numpy as np
import pytest
from numba import njit

import mme_numba as mme
from mme_numba import core


@njit
def powers(x, theta, out):           # (x, x²): the observables of polynomial(2)
    out[0] = x[0]
    out[1] = x[0] * x[0]


@njit
def powers_grad_x(x, theta, w, g):
    g[0] += w[0] + 2.0 * w[1] * x[0]


@njit
def rotated_squares(x, theta, out):  # ((u·x)², (v·x)²), u = (cos θ, sin θ), v ⟂ u
    c, s = np.cos(theta[0]), np.sin(theta[0])
    z1 = c * x[0] + s * x[1]
    z2 = -s * x[0] + c * x[1]
    out[0] = z1 * z1
    out[1] = z2 * z2


@njit
def rotated_squares_grad(x, theta, w, g):
    c, s = np.cos(theta[0]), np.sin(theta[0])
    z1 = c * x[0] + s * x[1]
    z2 = -s * x[0] + c * x[1]
    g[0] += 2.0 * z1 * z2 * (w[0] - w[1])   # dz1/dθ = z2, dz2/dθ = −z1


@njit
def log_obs(x, theta, out):
    out[0] = np.log(x[0])


@njit
def two_args(x, theta):
    return x[0]


X1 = np.random.default_rng(0).normal(0.5, 1.0, size=(2000, 1))


def _gauss_model(obs, **kw):
    return mme.MaxEnt(obs, (-6.0, 6.0), n_chains=512, step_size=1.5, burn_in=50,
                      random_state=0, **kw)


def test_compiled_powers_give_the_gaussian_multipliers_like_polynomial():
    """λ of a compiled (x, x²) equals polynomial(2)'s and the closed form (−μ/σ², 1/(2σ²))
    within 5 %; with move="all" the chains are the same as the built-in sampler's."""
    m = _gauss_model(mme.observables.compiled(powers, 2)).fit(X1, epochs=40)
    ref = _gauss_model(mme.observables.polynomial(2)).fit(X1, epochs=40)
    np.testing.assert_allclose(m.lambda_, ref.lambda_, rtol=1e-9)
    np.testing.assert_allclose(m.chains_, ref.chains_, rtol=0, atol=1e-12)
    target = np.array([-X1.mean() / X1.var(), 0.5 / X1.var()])
    lam = np.mean([r["lambda"] for r in m.history_[-15:]], axis=0)
    np.testing.assert_allclose(lam, target, rtol=0.05)
    np.testing.assert_allclose(m.observe(X1[:5]), np.c_[X1[:5], X1[:5] ** 2])


@pytest.mark.parametrize("move", ["single", "scan", "mala"])
def test_every_move_samples_the_gaussian(move):
    obs = mme.observables.compiled(powers, 2, grad_x=powers_grad_x, n_features=1)
    lam = np.array([-0.5, 0.5])                   # N(0.5, 1)
    state = core.init_chains(obs, (-6.0, 6.0), n_chains=512, seed=1)
    state = core.metropolis(obs, lam, state, (-6.0, 6.0), step=1.0, sweeps=60, move=move)
    assert abs(state.x.mean() - 0.5) < 0.15 and abs(state.x.var() - 1.0) < 0.2
    assert 0.2 < state.acceptance.mean() < 1.0


def test_results_do_not_depend_on_the_thread_count(monkeypatch):
    """Chains split over 1 or 3 threads (each chain its own random stream): same bits."""
    import numba

    obs = mme.observables.compiled(powers, 2, theta=None, n_features=1)
    lam = np.array([-0.5, 0.5])
    state = core.init_chains(obs, (-6.0, 6.0), n_chains=64, seed=2)
    X = state.x.copy()
    runs = []
    for k in (1, 3):
        monkeypatch.setattr(numba, "get_num_threads", lambda k=k: k)
        runs.append((core.metropolis(obs, lam, state, (-6.0, 6.0), step=1.0, sweeps=5).x,
                     core.energy(obs, lam, X)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_a_trainable_compiled_observable_finds_the_principal_axes():
    """MinMaxEnt on ((u·x)², (v·x)²) learns the rotation of the data's principal axes
    (the exact answer φ*, as squared_projections(2) in tests/test_pca.py): within 0.02 rad."""
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([0, 0], [[3.0, 1.2], [1.2, 1.0]], size=2000)
    X -= X.mean(0)
    (a, c), (_, b) = X.T @ X / len(X)
    phi_star = 0.5 * np.arctan2(2 * c, a - b)
    obs = mme.observables.compiled(rotated_squares, 2, theta=[0.3],
                                   grad_theta=rotated_squares_grad)
    model = mme.MinMaxEnt(obs, support=(-10.0, 10.0), n_chains=1024, sweeps=5, lr_theta=2e-2,
                          lambda_solver="newton", random_state=0)
    phis = []
    model.fit(X, epochs=120, callback=lambda m, r: phis.append(m.observables_.theta[0]))
    assert obs.theta[0] == 0.3                       # fit trains its own copy
    phi = np.mean(phis[-40:])
    assert abs(np.angle(np.exp(4j * (phi - phi_star))) / 4) < 0.02
    # the θ gradient of the compiled kernels equals finite differences of the observables
    lam = model.lambda_
    w = np.r_[np.full(len(X), 1 / len(X))][:, None] * lam[None, :]
    g, _ = model.observables_.backward(X, w)
    o = model.observables_.copy()
    eps = 1e-6
    o.set_theta(model.observables_.theta + eps)
    up = np.sum(o.forward(X) * w)
    o.set_theta(model.observables_.theta - eps)
    down = np.sum(o.forward(X) * w)
    np.testing.assert_allclose(g[0], (up - down) / (2 * eps), rtol=1e-5)


def test_checkpoints_store_theta_and_ask_for_the_function(tmp_path):
    obs = mme.observables.compiled(rotated_squares, 2, theta=[0.3],
                                   grad_theta=rotated_squares_grad)
    X = np.random.default_rng(1).normal(size=(200, 2))
    m = mme.MinMaxEnt(obs, (-6.0, 6.0), n_chains=16, sweeps=2, burn_in=4,
                      random_state=0).fit(X, epochs=3)
    path = tmp_path / "m.npz"
    m.save(path)
    with pytest.raises(mme.ModelFileError, match=r"rotated_squares.*observables=mme_numba"):
        mme.load(path)
    back = mme.load(path, observables=obs)
    np.testing.assert_array_equal(back.observables_.theta, m.observables_.theta)
    assert obs.theta[0] == 0.3
    np.testing.assert_array_equal(back.energy(X[:4]), m.energy(X[:4]))
    m.fit(X, epochs=2)
    back.fit(X, epochs=2)                             # continues bit-identically
    np.testing.assert_array_equal(back.observables_.theta, m.observables_.theta)
    np.testing.assert_array_equal(back.chains_, m.chains_)
    with pytest.raises(ValueError, match="n_outputs=3"):
        mme.load(path, observables=mme.observables.compiled(powers, 3))
    poly = mme.MaxEnt(mme.observables.polynomial(2), (-6.0, 6.0), n_chains=8, burn_in=2,
                      random_state=0).fit(X, epochs=1)
    poly.save(tmp_path / "p.npz")
    with pytest.raises(ValueError, match="only for models of compiled observables"):
        mme.load(tmp_path / "p.npz", observables=obs)


@pytest.mark.parametrize("make, exc, match", [
    (lambda: mme.observables.compiled(powers.py_func, 2), TypeError,
     "func must be a numba @njit function.*decorate it"),
    (lambda: mme.observables.compiled(powers, 2, grad_theta=np.sin), TypeError,
     "grad_theta must be a numba @njit function"),
    (lambda: mme.observables.compiled(powers, 2.5), TypeError, "n_outputs must be an integer"),
    (lambda: mme.observables.compiled(powers, 2, theta=[np.nan]), ValueError, "non-finite"),
    (lambda: mme.observables.compiled(two_args, 1, n_features=1), TypeError,
     r"func .*two_args cannot be called as func\(x, theta, out\)"),
    (lambda: mme.observables.compiled(powers, 2, grad_theta=powers, n_features=1), TypeError,
     r"grad_theta .* cannot be called as grad_theta\(x, theta, w, g\)"),
])
def test_bad_functions_are_refused_with_a_clear_error(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_non_finite_values_and_unsupported_uses_are_refused():
    X = np.abs(X1) + 0.1
    obs = mme.observables.compiled(log_obs, 1)
    with pytest.raises(ValueError, match=r"not finite .* at row 0"):
        obs.forward(np.array([[-1.0]]))
    with pytest.raises(ValueError, match="energy is not finite"):
        mme.MaxEnt(obs, (-1.0, 6.0), n_chains=8, burn_in=2, random_state=0).fit(X, epochs=1)
    with pytest.raises(ValueError, match="MinMaxEnt trains θ, but .* has no grad_theta"):
        mme.MinMaxEnt(mme.observables.compiled(powers, 2), (-6.0, 6.0)).fit(X1, epochs=1)
    with pytest.raises(ValueError, match='move="mala" needs the gradient in x'):
        _gauss_model(mme.observables.compiled(powers, 2), move="mala").fit(X1, epochs=1)
    with pytest.raises(TypeError, match="cannot be pickled"):
        import pickle

        pickle.dumps(mme.observables.compiled(powers, 2))


def test_the_backends_recognize_the_compiled_op_code():
    from mme_numba.spec import COMPILED, SPEC_WIDTH, is_compiled

    spec = mme.observables.compiled(powers, 2, n_features=1).describe()
    assert spec.shape == (1, SPEC_WIDTH) and spec[0, 0] == COMPILED
    assert is_compiled(spec) and not is_compiled(mme.nn.mlp([1, 2]).describe())
