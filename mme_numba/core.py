"""The functional core: Min-MaxEnt as pure functions on arrays, for embedding in other codes.

The equations (Eq. n) are those of ``docs/method.md``.

Every function takes arrays (and an observable map) and returns new arrays; nothing is mutated
and there is no hidden state, so a host code can own the loop, the storage and the
parallelism. The classes :class:`~mme_numba.MaxEnt` / :class:`~mme_numba.MinMaxEnt` are built
from the same pieces.

Stability: the names in ``__all__`` and their signatures are a stable API (changes only add
keyword arguments with defaults); ``docs/embedding.md`` documents them with a runnable loop.
Arguments are checked like the estimators' (:mod:`mme_numba._validation`). ``obs`` is any
observable map, user-compiled ones (:func:`mme_numba.observables.compiled`) included.

One Min-MaxEnt epoch written with them::

    from mme_numba import core
    state = core.init_chains(obs, support, n_chains=1024, seed=0)
    for epoch in range(1000):
        state = core.metropolis(obs, lam, state, support, step=3.0, sweeps=10)
        lam = core.lambda_step(obs, lam, X, state.x)
        theta = theta - lr * core.entropy_gradient(obs, lam, X, state.x)
        obs.set_theta(theta)
"""

import numpy as np

from . import solvers
from .backends import BOUNDARIES, MOVES, NO_FIELD, get_backend
from .chains import Chains, Target
from ._validation import PARAMS, check_param, check_params, parse_support

__all__ = ["energy", "init_chains", "metropolis", "data_statistics",
           "lambda_step", "entropy_gradient"]


def _spec(obs):
    return (np.ascontiguousarray(obs.describe(), dtype=np.int64),
            np.ascontiguousarray(obs.kernel_params(), dtype=np.float64))


def energy(obs, lam, X, backend="cpu"):
    """``H(x) = λ·O(x; θ)`` for each row of ``X (n, d)``; returns ``(n,)``."""
    spec, params = _spec(obs)
    return get_backend(backend).energy(spec, params, np.asarray(lam, dtype=np.float64),
                                       np.asarray(X, dtype=np.float64), NO_FIELD)


def init_chains(obs, support, n_chains, seed):
    """Chains uniform in the support box, with per-chain RNG streams from ``seed``.

    Parameters
    ----------
    obs : observable map (gives ``n_features``)
    support : (lo, hi)
    n_chains : int
    seed : int

    Returns
    -------
    Chains
        ``x``, ``rng_state`` and ``acceptance`` (zeros) of :class:`mme_numba.chains.Chains`.
    """
    from .kernels import seed_states

    check_params({"n_chains": n_chains, "random_state": seed})
    lo, hi = parse_support(support, obs.n_features)
    rng = np.random.default_rng(seed)
    x = lo + (hi - lo) * rng.random((int(n_chains), obs.n_features))
    return Chains(x, seed_states(int(rng.integers(2**63 - 1)), int(n_chains)),
                  np.ones(int(n_chains)))


def metropolis(obs, lam, state, support, step, sweeps, move="all", boundary="reflect",
               backend="cpu"):
    """Advance the chains ``sweeps`` Metropolis sweeps on ``exp(-λ·O)`` in the box.

    Returns
    -------
    Chains
        New positions, advanced RNG states and ``acceptance``, the accepted fraction per
        chain; the input ``state`` is unchanged.
    """
    check_param("sweeps", sweeps, PARAMS["sample_sweeps"])
    if sweeps is None:
        raise TypeError("sweeps must be an integer >= 1, got None")
    if move not in MOVES or boundary not in BOUNDARIES:
        raise ValueError(f"move must be in {sorted(MOVES)} and boundary in {sorted(BOUNDARIES)}")
    lo, hi = parse_support(support, obs.n_features)
    n = len(state.x)
    new = Chains(np.array(state.x, dtype=np.float64, order="C"),
                 np.array(state.rng_state, dtype=np.uint64, order="C"),
                 np.broadcast_to(np.asarray(step, dtype=np.float64), (n,)).copy())
    target = Target(get_backend(backend), *_spec(obs), np.asarray(lam, dtype=np.float64),
                    NO_FIELD, move, boundary, lo, hi)
    new.acceptance = new.run(target, int(sweeps), ladder=False)
    return new


def data_statistics(obs, X, var_floor=1e-12):
    """Data means ``ō``, guarded variances ``σ²`` and the mask of active observables.

    Observables whose data variance is at most ``var_floor`` are constant on the data: they
    are marked inactive (their λ is frozen) and their variance is set to 1 so that nothing
    divides by zero.

    Returns
    -------
    obar, var : ndarray (m,)
    active : ndarray of bool (m,)
    """
    O = obs.forward(X)
    var = O.var(axis=0)
    active = var > var_floor
    return O.mean(axis=0), np.where(active, var, 1.0), active


def lambda_step(obs, lam, X, samples, solver="newton", n_steps=1, **kwargs):
    """One λ update (:mod:`mme_numba.solvers`) from data ``X`` and model samples.

    A fresh solver is used, so ADAM moments do not persist between calls: for ADAM with
    momentum keep a :class:`~mme_numba.solvers.AdamSolver` yourself and call its ``fit``.

    Returns
    -------
    ndarray (m,)
    """
    obar, var, active = data_statistics(obs, X)
    lam_new, _ = solvers.make_lambda_solver(solver, n_steps=n_steps, **kwargs).fit(
        np.asarray(lam, dtype=np.float64), obs.forward(samples), obar, var, active)
    return lam_new


def entropy_gradient(obs, lam, X, samples, sample_logw=None):
    """``dS/dθ`` of Eq. 8: ``Σ_i λ_i (<∂O_i/∂θ>_data − <∂O_i/∂θ>_samples)``.

    One backward pass with upstream gradient ``+λ/N`` on the data rows and ``−w_k λ`` on the
    sample rows (uniform ``w`` unless ``sample_logw`` is given). Returns ``(n_params,)``.
    """
    lam = np.asarray(lam, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    samples = np.asarray(samples, dtype=np.float64)
    if sample_logw is None:
        w = np.full(len(samples), 1.0 / len(samples))
    else:
        w = np.exp(sample_logw - np.max(sample_logw))
        w /= w.sum()
    rows = np.concatenate([X, samples])
    upstream = np.concatenate([np.full(len(X), 1.0 / len(X)), -w])[:, None] * lam[None, :]
    return obs.backward(rows, upstream)[0]
