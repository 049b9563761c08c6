"""Replica exchange (``betas=``): the swap kernel against its naive twin, the invariance of
every level's distribution against exact means, the gain on a bimodal target that single
small moves do not cross, checkpoints, and the ladder's validation."""

import numpy as np
import pytest

import mme_numba as mme
from mme_numba import quadrature
from mme_numba.kernels import seed_states
from mme_numba.kernels.moves.swap import replica_swaps
from mme_numba.tempering import BETA_MIN, adapt_ladder, resolve_ladder

from naive import naive_replica_swaps


def _swap_inputs(K=5, n=37, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(K, n, d)), rng.normal(scale=3.0, size=(K, n)),
            np.geomspace(1.0, 0.05, K), seed_states(seed + 11, n))


@pytest.mark.parametrize("parity", [0, 1])
def test_swap_kernel_equals_naive_twin_bit_for_bit(parity):
    x, H, betas, states = _swap_inputs()
    acc = np.zeros((x.shape[1], x.shape[0] - 1), dtype=np.int64)
    want = naive_replica_swaps(x, H, betas, states, parity, acc)
    replica_swaps(x, H, betas, states, parity, acc)
    for got, ref in zip((x, H, states, acc), want):
        np.testing.assert_array_equal(got, ref)
    # only pairs of this parity were proposed, and some were accepted and some not
    assert np.all(acc[:, 1 - parity::2] == 0)
    assert 0 < acc[:, parity::2].mean() < 1


def test_swap_kernel_does_not_depend_on_the_thread_count():
    import numba

    out = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        x, H, betas, states = _swap_inputs(n=301)
        acc = np.zeros((301, 4), dtype=np.int64)
        numba.set_num_threads(threads)
        for t in range(6):
            replica_swaps(x, H, betas, states, t % 2, acc)
        out.append((x, H, states, acc))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def _exponential_model(betas, lam=6.0, seed=0):
    """A MaxEnt model on [0, 1] with H(x) = lam·x; exact level means known."""
    X = np.random.default_rng(seed).random((50, 1))
    model = mme.MaxEnt(mme.observables.polynomial(1), support=(0.0, 1.0), n_chains=256,
                       sweeps=1, burn_in=0, step_size=0.3, betas=betas, random_state=seed)
    model.fit(X, epochs=1)
    model.lambda_ = np.array([lam])
    return model


def _exact_mean(a):
    return 1.0 / a - 1.0 / np.expm1(a)


def _level_means(model, n=150):
    model.sample(256, sweeps=30)                    # burn in (tempered)
    sums = np.zeros(len(model.replicas_.betas))
    for _ in range(n):
        model._run_chains(1)
        sums += [model.chains_.mean(), *model.replicas_.x[:, :, 0].mean(axis=1)]
    return sums / n


def _within(betas, means, n=150, k=5.0):
    # tolerance k standard errors of the mean, the chains' autocorrelation (measured tau < 3
    # sweeps) allowed for
    ok = []
    for beta, m in zip(betas, means):
        a = 6.0 * beta
        var = 1.0 / a**2 - np.exp(a) / np.expm1(a) ** 2     # variance of exp(-a x) on [0, 1]
        ok.append(abs(m - _exact_mean(a)) < k * np.sqrt(var * 3.0 / (256 * n)))
    return ok


def test_every_level_samples_its_own_tempered_distribution():
    # seed 0; 256 chains x 150 sweeps per level
    betas = np.array([1.0, 0.5, 0.2])
    model = _exponential_model(betas)
    assert all(_within(betas, _level_means(model)))
    model._run_chains(2)                            # both parities proposed
    acc = model.replicas_.swap_acceptance
    assert np.all((acc > 0.2) & (acc < 1.0)), acc


def test_a_wrong_swap_rule_is_caught(monkeypatch):
    # power of the test above: swaps accepted without the Metropolis test mix the levels'
    # distributions, and the model level's mean leaves its tolerance
    from mme_numba.kernels.moves import swap as tempering

    def always_swap(x, energy, betas, rng_state, parity, accepted):
        for r in range(parity, len(betas) - 1, 2):
            x[[r, r + 1]] = x[[r + 1, r]]
            energy[[r, r + 1]] = energy[[r + 1, r]]

    monkeypatch.setattr(tempering, "replica_swaps", always_swap)
    betas = np.array([1.0, 0.5, 0.2])
    assert not _within(betas, _level_means(_exponential_model(betas), n=60), n=60)[0]


@pytest.mark.slow
def test_tempering_recovers_mode_weights_that_small_steps_cannot():
    # seed 0; modes at -3 and +3 (std 0.5), weights 0.2 / 0.8, fixed step 0.1 (no step ladder):
    # without replicas the chains stay where they fell and λ compensates (right-mode mass
    # measured 0.000); with an 8-level ladder the fitted model's right-mode mass is within
    # 0.06 of the data's
    X = mme.datasets.gaussian_mixture(n=2000, means=(-3, 3), scales=(0.5, 0.5),
                                      weights=(0.2, 0.8), seed=0)
    target = np.mean(X[:, 0] > 0)
    masses = {}
    for betas in (None, 8):
        m = mme.MaxEnt(mme.observables.polynomial(4), support=(-6, 6), n_chains=128,
                       step_size=0.1, betas=betas, random_state=0).fit(X, epochs=120)
        pts, logp = quadrature.log_density_grid(m.energy, *m.support_)
        _, log_w, _ = quadrature.grid(*m.support_)
        p = np.exp(logp + log_w)
        masses[betas] = float(p[np.asarray(pts)[:, 0] > 0].sum())
    assert abs(masses[8] - target) < 0.06, masses
    assert abs(masses[None] - target) > 0.3, masses


def test_tempered_model_checkpoints_and_resumes_bit_identically(tmp_path):
    X = mme.datasets.gaussian_mixture(n=300, means=(-2, 2), seed=1)
    kw = dict(support=(-5, 5), n_chains=32, sweeps=2, burn_in=4, betas=3, random_state=3)
    full = mme.MinMaxEnt(mme.nn.mlp([1, 4, 2], random_state=0), **kw).fit(X, epochs=6)
    half = mme.MinMaxEnt(mme.nn.mlp([1, 4, 2], random_state=0), **kw).fit(X, epochs=3)
    half.save(tmp_path / "m.npz")
    resumed = mme.load(tmp_path / "m.npz").fit(X, epochs=3)
    np.testing.assert_array_equal(resumed.chains_, full.chains_)
    np.testing.assert_array_equal(resumed.replicas_.x, full.replicas_.x)
    np.testing.assert_array_equal(resumed.replicas_.betas, full.replicas_.betas)
    np.testing.assert_array_equal(resumed.lambda_, full.lambda_)
    assert full.history_[-1]["betas"][0] == 1.0 and len(full.history_[-1]["swap_acceptance"]) == 2


def test_adaptive_ladder_keeps_its_ends_and_equalizes_swap_rates():
    b = np.geomspace(1.0, BETA_MIN, 5)
    new = adapt_ladder(b, [0.9, 0.1, 0.5, 0.5])
    assert new[0] == 1.0 and new[-1] == b[-1] and np.all(np.diff(new) < 0)
    gaps, old = -np.diff(np.log(new)), -np.diff(np.log(b))
    assert gaps[0] > old[0] and gaps[1] < old[1]        # the busy pair widens, the idle narrows
    np.testing.assert_allclose(gaps.sum(), old.sum())


@pytest.mark.parametrize("betas, exc, words", [
    ([0.9, 0.5], ValueError, "start at 1.0"),
    ([1.0, 0.5, 0.7], ValueError, "strictly decreasing"),
    ([1.0, 0.5, 0.0], ValueError, "positive"),
    ([1.0, -0.5], ValueError, "positive"),
    ([1.0, np.nan], ValueError, "finite"),
    ([1.0], ValueError, "at least 2"),
    (1, ValueError, "2 to 64"),
    ("hot", TypeError, "betas"),
    (True, TypeError, "betas"),
])
def test_bad_ladders_are_refused_with_the_reason(betas, exc, words):
    with pytest.raises(exc, match=words):
        resolve_ladder(betas)
    model = mme.MaxEnt(mme.observables.polynomial(1), support=(0, 1), betas=betas)
    with pytest.raises(exc, match="betas"):
        model.fit(np.full((10, 1), 0.5), epochs=1)


def test_betas_can_be_switched_on_for_sampling_a_fitted_model():
    X = mme.datasets.gaussian_mixture(n=300, means=(-2, 2), seed=1)
    m = mme.MaxEnt(mme.observables.polynomial(4), support=(-5, 5), n_chains=16, sweeps=2,
                   burn_in=2, random_state=0).fit(X, epochs=2)
    assert m.replicas_ is None
    m.set_params(betas=[1.0, 0.5])
    m.sample(16)
    assert m.replicas_.x.shape == (1, 16, 1) and np.all(np.isfinite(m.replicas_.swap_acceptance))
    m.set_params(betas=None)
    m.sample(16)
    assert m.replicas_ is None


def test_backend_swap_checks_its_arguments_and_names_the_bad_one():
    from mme_numba.backends import CPUBackend

    x, e = np.zeros((3, 4, 2)), np.zeros((3, 4))
    state, acc = seed_states(0, 4), np.zeros((4, 2), np.int64)
    b = CPUBackend()
    with pytest.raises(ValueError, match="betas must have shape"):
        b.swap(x, e, np.ones(2), state, 0, acc)
    with pytest.raises(ValueError, match="energy must be"):
        b.swap(x, np.zeros((3, 5)), np.ones(3), state, 0, acc)
    with pytest.raises(ValueError, match="parity must be 0 or 1"):
        b.swap(x, e, np.ones(3), state, 2, acc)
    b.swap(x, e, np.array([1.0, 0.5, 0.2]), state, 1, acc)   # equal energies: always swapped
    assert acc[:, 1].tolist() == [1, 1, 1, 1] and acc[:, 0].tolist() == [0, 0, 0, 0]
