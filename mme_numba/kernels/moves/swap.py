"""Replica exchange: swap states between neighbouring inverse temperatures.

Level ``r`` of a ladder ``1 = β_0 > β_1 > … > β_{K-1} > 0`` samples ``p_r(x) ∝ exp(−β_r H(x))``.
Column ``i`` (one chain per level) proposes to swap the states of levels ``r`` and ``r + 1``
for every ``r`` of one parity (even pairs, then odd pairs on the next call: the deterministic
even-odd scheme), accepted with probability ``min(1, exp((β_r − β_{r+1}) (H_r − H_{r+1})))``,
which keeps the product of the level distributions invariant (``docs/method.md`` §7).

Each column draws from its own xoshiro256** stream and touches only its own rows, so the
swaps are the same for any thread count; the sweeps between them are the ordinary kernels.
"""

import math

import numpy as np
from numba import njit, prange

from ..rng import uniform
from .box import _check_inplace

__all__ = ["replica_swaps", "check_swap_args", "swap_column"]


def check_swap_args(x, energy, betas, rng_state, parity, accepted, allow_float32=False):
    """Raise ``ValueError`` naming the argument unless the arguments of :func:`replica_swaps`
    (and of its CUDA twin) have the documented dtypes and shapes; returns ``betas`` as a
    contiguous float64 array. ``allow_float32`` (both kernels): ``x`` may be float32
    chains (``dtype="float32"`` models); ``energy`` is float64 either way."""
    if np.ndim(x) != 3:
        raise ValueError(f"x must have shape (K, n_chains, d), got {np.shape(x)}")
    K, n, d = np.shape(x)
    f32 = allow_float32 and getattr(x, "dtype", None) == np.float32
    _check_inplace(x, "x", np.float32 if f32 else np.float64, (K, n, d))
    _check_inplace(energy, "energy", np.float64, (K, n))
    _check_inplace(rng_state, "rng_state", np.uint64, (n, 4))
    _check_inplace(accepted, "accepted", np.int64, (n, max(K - 1, 0)))
    betas = np.ascontiguousarray(betas, dtype=np.float64)
    if betas.shape != (K,):
        raise ValueError(f"betas must have shape ({K},), got {betas.shape}")
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity!r}")
    return betas


def swap_column(x, energy, betas, state, row, i, parity, accepted):
    """The swaps of column ``i``, drawing from row ``row`` of ``state``: the body of
    :func:`replica_swaps`, compiled for the GPU too (:mod:`mme_numba.kernels.cuda.swap`)."""
    K, d = x.shape[0], x.shape[2]
    for r in range(parity, K - 1, 2):
        u = uniform(state, row)
        log_a = (betas[r] - betas[r + 1]) * (energy[r, i] - energy[r + 1, i])
        if u == 0.0 or math.log(u) < log_a:
            for k in range(d):
                t = x[r, i, k]
                x[r, i, k] = x[r + 1, i, k]
                x[r + 1, i, k] = t
            t = energy[r, i]
            energy[r, i] = energy[r + 1, i]
            energy[r + 1, i] = t
            accepted[i, r] += 1


_swap_column = njit(cache=True)(swap_column)


@njit(parallel=True, cache=True)
def replica_swaps(x, energy, betas, rng_state, parity, accepted):
    """One round of neighbour swaps, in place.

    Parameters
    ----------
    x : float64 or float32 (K, n_chains, d)
        States of every level; rows of swapped pairs are exchanged.
    energy : float64 (K, n_chains)
        Untempered energies ``H`` of those states (exchanged with them).
    betas : float64 (K,)
        The ladder, decreasing, ``betas[0] = 1``.
    rng_state : uint64 (n_chains, 4)
        One stream per column.
    parity : int
        0 proposes pairs (0, 1), (2, 3), …; 1 proposes (1, 2), (3, 4), ….
    accepted : int64 (n_chains, K - 1)
        Incremented where the swap of pair ``(r, r + 1)`` in column ``i`` was accepted.
    """
    for i in prange(x.shape[1]):
        _swap_column(x, energy, betas, rng_state, i, i, parity, accepted)
