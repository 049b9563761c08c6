"""A fitted model never changes behind the user's back: fitted state belongs to the estimator.

``fit`` trains its own copy of the observables (``observables_``), so models that share an
observables object, seed loops, clones and steered copies stay independent; concurrent calls
on one model are serialized by its lock.
"""

import copy
import threading

import numpy as np
import pytest

import mme_numba as mme

X = mme.datasets.gaussian_mixture(120, means=(-2, 2), scales=(0.5, 0.5), seed=0)
X2 = mme.datasets.gaussian_mixture(120, means=(-1, 3), scales=(0.7, 0.4), seed=1)
GRID = np.linspace(-5.5, 5.5, 23)[:, None]
KW = dict(n_chains=16, sweeps=2, burn_in=10, random_state=0)


def _model(obs, **kw):
    return mme.MinMaxEnt(obs, (-6.0, 6.0), **{**KW, **kw})


def _clone(model):
    """What ``sklearn.base.clone`` does: a new estimator from deep copies of the parameters."""
    return type(model)(**{k: copy.deepcopy(v) for k, v in model.get_params().items()})


def test_fit_leaves_the_passed_observables_untouched():
    obs = mme.nn.mlp([1, 8, 2], random_state=0)
    theta0 = obs.theta.copy()
    m = _model(obs).fit(X, epochs=3)
    np.testing.assert_array_equal(obs.theta, theta0)
    assert m.observables is obs and m.observables_ is not obs
    assert not np.array_equal(m.observables_.theta, theta0)  # the copy was trained
    assert not np.shares_memory(m.observables_.theta, obs.theta)


def test_two_models_on_one_observables_object_stay_independent():
    obs = mme.nn.mlp([1, 8, 2], random_state=0)
    m1 = _model(obs).fit(X, epochs=3)
    e1 = m1.energy(GRID)
    m2 = _model(obs, random_state=1).fit(X2, epochs=3)
    np.testing.assert_array_equal(m1.energy(GRID), e1)   # bit-identical after m2's fit
    e2 = m2.energy(GRID)
    m1.fit(X, epochs=2)
    np.testing.assert_array_equal(m2.energy(GRID), e2)   # and the other way round


def test_a_seed_loop_over_one_object_equals_fresh_objects():
    shared = mme.nn.mlp([1, 8, 2], random_state=0)
    for seed in (0, 1):
        a = _model(shared, random_state=seed).fit(X, epochs=2)
        b = _model(mme.nn.mlp([1, 8, 2], random_state=0), random_state=seed).fit(X, epochs=2)
        np.testing.assert_array_equal(a.observables_.theta, b.observables_.theta)
        np.testing.assert_array_equal(a.lambda_, b.lambda_)


def test_clone_of_a_fitted_model_is_unfitted_and_refits_like_a_fresh_model():
    fitted = _model(mme.nn.mlp([1, 8, 2], random_state=0)).fit(X, epochs=3)
    c = _clone(fitted)
    assert not c.is_fitted
    c.fit(X, epochs=3)
    fresh = _model(mme.nn.mlp([1, 8, 2], random_state=0)).fit(X, epochs=3)
    np.testing.assert_array_equal(c.observables_.theta, fresh.observables_.theta)
    np.testing.assert_array_equal(c.energy(GRID), fresh.energy(GRID))


def test_sklearn_clone_when_available():
    base = pytest.importorskip("sklearn.base")
    fitted = _model(mme.nn.mlp([1, 8, 2], random_state=0)).fit(X, epochs=2)
    c = base.clone(fitted)
    assert not c.is_fitted and c.get_params()["n_chains"] == KW["n_chains"]


def test_a_later_fit_continues_from_the_trained_copy():
    a = _model(mme.nn.mlp([1, 8, 2], random_state=0)).fit(X, epochs=2).fit(X, epochs=2)
    b = _model(mme.nn.mlp([1, 8, 2], random_state=0)).fit(X, epochs=4)
    np.testing.assert_array_equal(a.observables_.theta, b.observables_.theta)


def test_a_steered_copy_shares_nothing_mutable_with_its_base():
    m = _model(mme.nn.mlp([1, 8, 2], random_state=0)).fit(X, epochs=2)
    clf = mme.nn.Sequential([*mme.nn.mlp([1, 4, 2], random_state=1).layers, mme.nn.LogSoftmax()])
    steered = m.with_field(mme.fields.ClassifierField(clf, target=1), strength=1.0)
    e_steered = steered.energy(GRID)
    for name in ("lambda_", "chains_", "step_", "rng_state_"):
        assert not np.shares_memory(getattr(steered, name), getattr(m, name)), name
    assert steered.observables_ is not m.observables_
    m.fit(X, epochs=2)                        # training the base ...
    clf.set_theta(clf.theta + 1.0)            # ... or the classifier afterwards
    np.testing.assert_array_equal(steered.energy(GRID), e_steered)
    steered.sample(20)
    assert m.epoch_ == 4


def test_concurrent_fits_on_one_model_run_one_after_the_other():
    def run(model, n_threads):
        threads = [threading.Thread(target=model.fit, args=(X,), kwargs={"epochs": 2})
                   for _ in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return model

    shared = run(_model(mme.nn.mlp([1, 8, 2], random_state=0)), 3)
    serial = _model(mme.nn.mlp([1, 8, 2], random_state=0)).fit(X, epochs=6)
    assert shared.epoch_ == 6 and len(shared.history_) == 6
    np.testing.assert_array_equal(shared.observables_.theta, serial.observables_.theta)
    np.testing.assert_array_equal(shared.chains_, serial.chains_)


def test_a_callback_may_sample_inside_fit():
    seen = []
    m = _model(mme.nn.mlp([1, 8, 2], random_state=0))
    m.fit(X, epochs=2, callback=lambda model, rec: seen.append(model.sample(4).shape))
    assert seen == [(4, 1), (4, 1)]


def test_set_params_cannot_change_the_learned_shape_of_a_fitted_model():
    m = _model(mme.nn.mlp([1, 8, 2], random_state=0)).fit(X, epochs=1)
    with pytest.raises(ValueError, match="n_chains cannot change once the model is fitted"):
        m.set_params(n_chains=32)
    with pytest.raises(ValueError, match="observables cannot change"):
        m.set_params(observables=mme.nn.mlp([1, 8, 2]))
    m.set_params(n_chains=KW["n_chains"], support=(-6.0, 6.0), sweeps=3)  # unchanged: fine
    assert m.sweeps == 3


def test_models_pickle_without_their_lock():
    import pickle

    m = _model(mme.nn.mlp([1, 8, 2], random_state=0)).fit(X, epochs=1)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m2.energy(GRID), m.energy(GRID))
    assert m2._lock is not m._lock
