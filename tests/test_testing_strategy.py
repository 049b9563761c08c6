"""The hypothesis strategy over a trained model: reproducible, non-mutating, on-distribution."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

import mme_numba as mme
from mme_numba.testing import samples, seeded_copy


@pytest.fixture(scope="module")
def model():
    X = mme.datasets.gaussian_mixture(300, means=(-2.0, 2.0), scales=(0.5, 0.5), seed=0)
    obs = mme.nn.mlp([1, 8, 2], random_state=0)
    return mme.MinMaxEnt(obs, support=(-6.0, 6.0), n_chains=256, burn_in=50, step_size=3.0,
                         random_state=0).fit(X, epochs=30)


def test_seeded_copy_is_reproducible_and_leaves_model_alone(model):
    chains, rng_state = model.chains_.copy(), model.rng_state_.copy()
    a = seeded_copy(model, 7).sample(300)
    b = seeded_copy(model, 7).sample(300)
    c = seeded_copy(model, 8).sample(300)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(model.chains_, chains)
    np.testing.assert_array_equal(model.rng_state_, rng_state)
    with pytest.raises(RuntimeError):
        seeded_copy(mme.MaxEnt(mme.nn.mlp([1, 2]), support=(-1, 1)), 0)


def test_seeded_copy_with_a_chain_subset(model):
    sub = seeded_copy(model, 3, n_chains=10)
    assert sub.chains_.shape == (10, 1) and sub.rng_state_.shape[0] == 10
    rows = [np.flatnonzero(model.chains_[:, 0] == v)[0] for v in sub.chains_[:, 0]]
    assert len(set(rows)) == 10                       # distinct chains of the model
    np.testing.assert_array_equal(sub.sample(10), seeded_copy(model, 3, n_chains=10).sample(10))
    assert seeded_copy(model, 3, n_chains=10**6).chains_.shape == model.chains_.shape
    with pytest.raises(ValueError):
        seeded_copy(model, 3, n_chains=0)


def test_strategy_in_a_property_test(model):
    chains, rng_state = model.chains_.copy(), model.rng_state_.copy()
    lo, hi = model.support_
    seen = []

    @settings(deadline=None, max_examples=15, database=None)
    @given(x=samples(model, n=40))
    def prop(x):
        assert x.shape == (40, 1)
        assert np.all((x >= lo) & (x <= hi))
        seen.append(x)

    prop()
    assert len(seen) >= 10
    np.testing.assert_array_equal(model.chains_, chains)
    np.testing.assert_array_equal(model.rng_state_, rng_state)


def test_single_draws_have_feature_shape(model):
    @settings(deadline=None, max_examples=10, database=None)
    @given(x=samples(model), y=st.integers(0, 3))
    def prop(x, y):
        assert x.shape == (1,)

    prop()


def test_draws_follow_the_model_density(model):
    # Oracle: the model's own normalised density by quadrature (not the data, so this holds
    # however far training got). 256 chains are independent; KS at a fixed seed.
    x = seeded_copy(model, 123).sample(256, sweeps=20)[:, 0]
    lo, hi = model.support_
    grid = np.linspace(lo[0], hi[0], 4001)
    p = np.exp(model.log_density(grid[:, None]))
    cdf = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) / 2 * np.diff(grid))])
    res = stats.kstest(x, lambda t: np.interp(t, grid, cdf / cdf[-1]))
    assert res.pvalue > 1e-3, res


def test_rejects_bad_arguments(model):
    with pytest.raises(ValueError):
        samples(model, n=0)
