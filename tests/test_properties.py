"""Property-based checks of the model API over random dimensions, boxes and architectures."""

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import mme_numba as mme

SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def problems(draw):
    d = draw(st.integers(1, 3))
    lo = np.array(draw(st.lists(st.floats(-5, 0, allow_nan=False), min_size=d, max_size=d)))
    width = np.array(draw(st.lists(st.floats(0.5, 6), min_size=d, max_size=d)))
    hidden = draw(st.integers(2, 6))
    m = draw(st.integers(1, 3))
    act = draw(st.sampled_from(["tanh", "softplus", "sigmoid", "relu"]))
    move = draw(st.sampled_from(["all", "single", "scan"]))
    boundary = draw(st.sampled_from(["reflect", "reject"]))
    seed = draw(st.integers(0, 2**31 - 1))
    X = lo + width * np.random.default_rng(seed).beta(2, 2, size=(40, d))
    obs = mme.nn.mlp([d, hidden, m], activation=act, random_state=seed % 1000)
    return obs, (lo, lo + width), X, move, boundary, seed


@SETTINGS
@given(problem=problems())
def test_samples_stay_in_the_box_and_energies_are_consistent(problem):
    obs, (lo, hi), X, move, boundary, seed = problem
    model = mme.MinMaxEnt(obs, support=(lo, hi), n_chains=16, sweeps=2, burn_in=4,
                          move=move, boundary=boundary, random_state=seed).fit(X, epochs=2)
    s = model.sample(20)
    assert s.shape == (20, X.shape[1])
    assert np.all((s >= lo) & (s <= hi))
    np.testing.assert_allclose(model.energy(s), model.observe(s) @ model.lambda_,
                               rtol=1e-10, atol=1e-10)
    assert np.all(np.isfinite(model.lambda_)) and np.all(np.isfinite(obs.theta))
    assert len(model.history_) == 2 and model.epoch_ == 2


@SETTINGS
@given(problem=problems())
def test_a_loaded_model_continues_identically(problem, tmp_path_factory):
    obs, support, X, move, boundary, seed = problem
    kw = dict(support=support, n_chains=8, sweeps=2, burn_in=2, move=move, boundary=boundary,
              random_state=seed)
    a = mme.MinMaxEnt(obs, **kw).fit(X, epochs=1)
    path = tmp_path_factory.mktemp("m") / "m.npz"
    a.save(path)
    b = mme.load(path)
    np.testing.assert_array_equal(a.fit(X, epochs=1).sample(8), b.fit(X, epochs=1).sample(8))
