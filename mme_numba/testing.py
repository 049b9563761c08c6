"""Realistic generated inputs for property-based tests: a hypothesis strategy over a model.

A trained Min-MaxEnt model is a generator of data that looks like the data it was
trained on. :func:`samples` wraps it as a `hypothesis <https://hypothesis.works>`_
strategy, so a test suite for *other* code (a feature extractor, a parser of
sensor readings, a numerical routine) can run on realistic inputs instead of
uniform noise. Hypothesis controls the seed, so every failing example is
reproducible and shrinks toward seed 0; the model itself is never mutated.

Example
-------
A property test for a function ``my_feature(x)`` expected to be finite and
bounded on anything that looks like the training data::

    import numpy as np
    import mme_numba as mme
    from hypothesis import given, settings
    from mme_numba.testing import samples

    model = mme.load("runs/bimodal/model.npz")      # trained once, loaded by the suite

    @settings(deadline=None, max_examples=50)
    @given(x=samples(model, n=100))                 # x: (100, 1) draws from the model
    def test_my_feature_is_bounded(x):
        f = my_feature(x)
        assert np.all(np.isfinite(f)) and np.all(np.abs(f) < 10)

``hypothesis`` is imported only when :func:`samples` is called (it is a test
dependency, not a runtime one).
"""

from __future__ import annotations

import copy

import numpy as np

__all__ = ["samples", "seeded_copy"]


def seeded_copy(model, seed, n_chains=None):
    """A sampling copy of a fitted model whose chains run on a fresh random stream.

    The copy shares the fitted parameters (λ, θ, support) with ``model`` but owns
    its chain states, started from ``model``'s current chains, and per-chain RNG
    states derived from ``seed``. Sampling from the copy leaves ``model``
    untouched, and the same ``seed`` always gives the same draws.

    Parameters
    ----------
    model : MaxEnt or MinMaxEnt
        A fitted model.
    seed : int
        Seed of the per-chain random streams, in ``[0, 2**63)``.
    n_chains : int, optional
        Keep only this many chains, picked at random (by ``seed``) from the
        model's: sampling cost scales with the chain count, and a few rows need
        only a few chains. Default: all of them, in order.

    Returns
    -------
    clone : same class as ``model``
        For sampling only: do not fit it (its optimizer state is shared).

    Notes
    -----
    This reads the model's per-chain state (``chains_``, ``step_``,
    ``rng_state_``), the arrays Metropolis sweeps replace; a model method
    (``model.sample(n, random_state=seed)`` without advancing) would make it
    unnecessary.
    """
    from mme_numba.kernels import seed_states

    if not getattr(model, "is_fitted", False):
        raise RuntimeError("seeded_copy needs a fitted model")
    total = len(model.chains_)
    if n_chains is None or int(n_chains) >= total:
        idx = np.arange(total)
    else:
        if int(n_chains) < 1:
            raise ValueError(f"n_chains must be >= 1, got {n_chains}")
        idx = np.sort(np.random.default_rng(seed).choice(total, int(n_chains), replace=False))
    clone = copy.copy(model)
    clone.chains_ = np.array(model.chains_[idx], dtype=np.float64)
    clone.step_ = np.array(np.broadcast_to(model.step_, (total,))[idx], dtype=np.float64)
    clone.rng_state_ = seed_states(int(seed), len(idx))
    return clone


def samples(model, n=None, sweeps=None):
    """Hypothesis strategy of samples drawn from a trained model.

    Each example draws an integer seed (hypothesis controls and shrinks it),
    picks ``n`` of the model's chains with it (all of them, repeatedly, when
    ``n`` exceeds the chain count), runs a :func:`seeded_copy` of them on that
    seed, and returns their states. Draws are reproducible and ``model`` is
    not mutated.

    Parameters
    ----------
    model : MaxEnt or MinMaxEnt
        A fitted model.
    n : int, optional
        Number of rows per example. If None, each example is one sample of
        shape ``(n_features,)``.
    sweeps : int, optional
        Metropolis sweeps from the model's current chains before taking the
        states (default: the model's ``sweeps``). More sweeps decorrelate the
        examples from the stored chains.

    Returns
    -------
    strategy : hypothesis.strategies.SearchStrategy
        Of ndarrays of shape ``(n, n_features)``, or ``(n_features,)`` when
        ``n`` is None.
    """
    from hypothesis import strategies as st

    if not getattr(model, "is_fitted", False):
        raise RuntimeError("samples() needs a fitted model")
    if n is not None and int(n) < 1:
        raise ValueError(f"n must be >= 1 or None, got {n}")

    def draw(seed):
        # Only as many chains as rows are needed (picked by the seed), so examples stay cheap.
        clone = seeded_copy(model, seed, n_chains=1 if n is None else int(n))
        x = clone.sample(1 if n is None else int(n), sweeps=sweeps)
        return x[0] if n is None else x

    return st.integers(min_value=0, max_value=2**32 - 1).map(draw)
