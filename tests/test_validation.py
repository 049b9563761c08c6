"""One declarative table checks every hyperparameter, wherever it enters."""

import inspect
import signal
import threading

import numpy as np
import pytest

import mme_numba as mme
from mme_numba import _validation as V

X = mme.datasets.gaussian_mixture(60, means=(-2, 2), scales=(0.5, 0.5), seed=0)
TINY = dict(n_chains=4, sweeps=1, burn_in=2, random_state=0)


def _model(**kw):
    return mme.MinMaxEnt(mme.nn.mlp([1, 6, 2], random_state=0), (-6.0, 6.0), **{**TINY, **kw})


@pytest.fixture(scope="module")
def fitted():
    return _model().fit(X, epochs=1)


def test_every_constructor_parameter_has_a_table_entry():
    m = _model()
    missing = [n for n in m._param_names() if n not in V.PARAMS]
    assert not missing, f"add these to mme_numba._validation.PARAMS: {missing}"
    for name in ("epochs", "checkpoint_every", "progress", "callback", "n", "strength", "base"):
        assert name in V.PARAMS


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(lr_lambda=np.inf), ValueError, r"lr_lambda must be a finite number in \(0, 10\], got inf"),
    (dict(step_size=np.inf), ValueError, "step_size"),
    (dict(n_chains="64"), TypeError, "n_chains must be an integer .* got '64'"),
    (dict(sweeps=2.5), TypeError, "sweeps must be an integer"),
    (dict(n_chains=10.5), TypeError, r"n_chains must be an integer .* got 10\.5"),
    (dict(burn_in=True), TypeError, "burn_in .*got True \\(a bool\\)"),
    (dict(move="singel"), ValueError, "did you mean 'single'"),
    (dict(boundary="reflekt"), ValueError, "did you mean 'reflect'"),
    (dict(target_acceptance=1.0), ValueError, r"target_acceptance must be a finite number in \[0.001, 1\)"),
    (dict(random_state=-1), ValueError, "random_state"),
    (dict(random_state="1"), TypeError, "random_state"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(comm="world"), TypeError, "comm"),
    (dict(support="ab"), TypeError, "support"),
])
def test_bad_hyperparameters_are_refused_by_fit_and_set_params(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        _model(**kwargs).fit(X, epochs=1)
    with pytest.raises(exc, match=match):
        _model().set_params(**kwargs)


def test_integral_floats_and_numpy_scalars_are_accepted():
    m = _model(n_chains=np.int64(4), sweeps=1.0, lr_lambda=np.float32(0.1)).fit(X, epochs=1)
    assert m.chains_.shape == (4, 1)


def test_set_params_checks_at_once_and_a_fitted_model_keeps_working(fitted):
    move = fitted.move
    with pytest.raises(ValueError, match="move must be one of"):
        fitted.set_params(move="bogus")
    assert fitted.move == move
    assert fitted.sample(3).shape == (3, 1)
    with pytest.raises(ValueError, match="has no parameter 'moves'; did you mean 'move'"):
        fitted.set_params(moves="all")


@pytest.mark.parametrize("call, exc, match", [
    (lambda m: m.sample(10**13), ValueError, "GiB"),
    (lambda m: m.sample("3"), TypeError, "n must be an integer"),
    (lambda m: m.sample(0), ValueError, "n must be"),
    (lambda m: m.sample(3, sweeps=0), ValueError, "sweeps"),
    (lambda m: m.fit(X, epochs=-1), ValueError, "epochs"),
    (lambda m: m.fit(X, epochs=1, progress="no"), TypeError, "progress must be True or False"),
    (lambda m: m.fit(X, epochs=1, checkpoint_every=0), ValueError, "checkpoint_every"),
    (lambda m: m.fit(X, epochs=1, callback=3), TypeError, "callback"),
    (lambda m: m.fit(X * 10, epochs=1), ValueError, "outside the support"),
    (lambda m: m.energy("x"), TypeError, "X must be"),
])
def test_method_arguments_are_checked(fitted, call, exc, match):
    with pytest.raises(exc, match=match):
        call(fitted)


@pytest.mark.parametrize("call, exc, match", [
    (lambda obs: mme.core.init_chains(obs, (-6, 6), n_chains=10.5, seed=0), TypeError,
     r"n_chains must be an integer .* got 10\.5"),
    (lambda obs: mme.core.init_chains(obs, (-6, 6), n_chains=4, seed=-1), ValueError,
     "random_state"),
    (lambda obs: mme.core.metropolis(obs, [0.0, 0.5], mme.core.init_chains(obs, (-6, 6), 4, 0),
                                     (-6, 6), step=1.0, sweeps=2.5), TypeError,
     "sweeps must be an integer"),
])
def test_the_functional_core_checks_its_arguments(call, exc, match):
    """Bad input to the plain-array API: the same messages as the estimators' (n_chains=10.5
    was once truncated to 10 there, silently)."""
    with pytest.raises(exc, match=match):
        call(mme.observables.polynomial(2, n_features=1))


def _classifier_field():
    net = mme.nn.Sequential([*mme.nn.mlp([1, 4, 2], random_state=1).layers, mme.nn.LogSoftmax()])
    return mme.fields.ClassifierField(net, target=0)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(strength=np.inf), ValueError, "strength"),
    (dict(strength="2"), TypeError, "strength"),
    (dict(base="no"), TypeError, "base must be True or False"),
    (dict(random_state=-3), ValueError, "random_state"),
])
def test_with_field_arguments_are_checked(fitted, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fitted.with_field(_classifier_field(), **kwargs)


def test_with_field_refuses_a_model_whose_parameters_were_broken_behind_set_params(fitted):
    m = _model().fit(X, epochs=1)
    m.__dict__["lr_lambda"] = np.inf          # bypassing set_params
    with pytest.raises(ValueError, match="lr_lambda"):
        m.with_field(_classifier_field())
    with pytest.raises(ValueError, match="lr_lambda"):
        m.sample(2)


def test_the_validator_signature_matches_the_table():
    for name, spec in V.PARAMS.items():
        assert spec.kind in ("int", "float", "bool", "choice", "seed", "callable", "path",
                             "comm", "observables", "support", "betas", "dtype"), name
    assert inspect.signature(V.check_param).parameters.keys() == {"name", "value", "spec"}


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_ctrl_c_during_sampling_leaves_a_consistent_model():
    m = _model(burn_in=0).fit(X, epochs=1)
    before = m.chains_.copy()

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            m.sample(4 * 10**6)                  # 10**6 rounds: far longer than 0.2 s
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert m.chains_.shape == before.shape and m.rng_state_.shape == (4, 4)
    assert np.all((m.chains_ >= -6.0) & (m.chains_ <= 6.0))
    # the lock was released (another thread can sample) and the stored state is one whole
    # state: a copy of it continues exactly like the model itself
    import copy

    twin = copy.deepcopy(m)
    got = []
    t = threading.Thread(target=lambda: got.append(m.sample(8)))
    t.start()
    t.join(30)
    assert got and got[0].shape == (8, 1)
    np.testing.assert_array_equal(twin.sample(8), got[0])


def test_fit_and_sample_refuse_arrays_that_would_not_fit_in_memory(monkeypatch, fitted):
    monkeypatch.setattr(V, "available_memory", lambda: 2**20)      # pretend: 1 MiB free
    with pytest.raises(ValueError, match="n_chains=100000 rows .* GiB"):
        _model(n_chains=10**5).fit(X, epochs=1)
    with pytest.raises(ValueError, match="n=200000 rows"):
        fitted.sample(2 * 10**5)
    assert fitted.sample(10).shape == (10, 1)


def test_long_sampling_rounds_run_in_blocks_with_the_same_result():
    from mme_numba import settings as M

    a = _model().fit(X, epochs=1)
    b = _model().fit(X, epochs=1)
    xa = a.sample(5, sweeps=7)
    old = M.SWEEP_BLOCK
    M.SWEEP_BLOCK = 3            # rounds of 7 sweeps as blocks of 3, 3, 1
    try:
        xb = b.sample(5, sweeps=7)
    finally:
        M.SWEEP_BLOCK = old
    np.testing.assert_allclose(xb, xa, rtol=0, atol=1e-12)
