"""The ``Chains`` value: what a checkpoint stores of it continues the run bit for bit."""

import numpy as np

import mme_numba as mme
from mme_numba import core
from mme_numba.backends import NO_FIELD, get_backend
from mme_numba.chains import Chains, Target
from mme_numba.tempering import Replicas


def _target(lam=(0.0, 0.5)):
    obs = mme.observables.polynomial(2, n_features=1)
    spec, params = core._spec(obs)
    lo, hi = np.array([-5.0]), np.array([5.0])
    return Target(get_backend("cpu"), spec, params, np.asarray(lam), NO_FIELD, "all", "reflect",
                  lo, hi)


def _restored(chains):
    """The chains rebuilt from the arrays and numbers a checkpoint holds."""
    a = {k: np.array(v) for k, v in chains.arrays().items()}
    rep = None
    if chains.replicas is not None:
        meta = chains.replicas.meta()
        rep = Replicas(a["replica_betas"], a["replica_x"], a["replica_rng"],
                       a["replica_swap_rng"], meta["turn"], meta["adaptive"],
                       a["replica_swap_acceptance"])
    new = Chains.from_arrays(a, rep, burned_in=chains.burned_in)
    new.set_control_state(chains.control_state())
    return new


def test_chains_rebuilt_from_their_arrays_continue_bit_identically():
    # seed 0, 32 chains, 3 tempering levels, the step ladder on: every piece of state counts
    t = _target()
    a = Chains.start(t.lo, t.hi, 32, 0.5, 3, np.random.default_rng(0))
    a.burn_in(t, 20, ladder=True, target_acceptance=0.5)
    a.run(t, 3, ladder=True)
    b, c = _restored(a), a.copy()
    for chains in (a, b, c):
        chains.run(t, 7, ladder=True)
        chains.adapt_ladder()
    for other in (b, c):
        np.testing.assert_array_equal(other.x, a.x)
        np.testing.assert_array_equal(other.rng_state, a.rng_state)
        np.testing.assert_array_equal(other.step, a.step)
        np.testing.assert_array_equal(other.replicas.x, a.replicas.x)
        np.testing.assert_array_equal(other.replicas.betas, a.replicas.betas)
        assert other.control_state() == a.control_state()


def test_a_copy_shares_no_array_with_the_original():
    t = _target()
    a = Chains.start(t.lo, t.hi, 16, 0.5, None, np.random.default_rng(1))
    c = a.copy()
    x0 = a.x.copy()
    c.run(t, 5, ladder=False)
    np.testing.assert_array_equal(a.x, x0)
    assert not np.array_equal(c.x, x0)


def test_draw_takes_one_round_per_n_chains_rows():
    t = _target()
    a = Chains.start(t.lo, t.hi, 8, 0.5, None, np.random.default_rng(2))
    b = a.copy()
    out = a.draw(t, 20, 3, ladder=False)            # 3 rounds of 3 sweeps, 8 + 8 + 4 rows
    rounds = []
    for _ in range(3):
        b.run(t, 3, ladder=False)
        rounds.append(b.x.copy())
    np.testing.assert_array_equal(out, np.concatenate(rounds)[:20])
    np.testing.assert_array_equal(a.x, b.x)
