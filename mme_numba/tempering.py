"""Replica exchange (parallel tempering) for the persistent chains.

With ``betas=`` the estimators keep, beside the chains at ``β = 1`` that every average uses,
one chain per column at each hotter level ``β_r < 1`` of a ladder, sampling
``exp(−β_r H)``. After every sweep of every level, neighbouring levels propose to exchange
states (:func:`mme_numba.kernels.moves.swap.replica_swaps`, even and odd pairs in turn). Hot
levels cross barriers that single moves at ``β = 1`` do not, and the swaps carry those
crossings down to the chains the model is fitted on and sampled from (``docs/method.md`` §7).

``betas`` is ``None`` (no tempering), an int ``K ≥ 2`` (a ladder of ``K`` levels, geometric
from 1 to ``settings.BETA_MIN``, whose inner levels are then moved during training so that every
neighbouring pair swaps equally often), or an explicit decreasing array starting at 1.0 (kept
as given).
"""

import numpy as np

from .settings import BETA_MIN, LADDER_GAIN, MAX_LEVELS

__all__ = ["BETA_MIN", "LADDER_GAIN", "resolve_ladder", "adapt_ladder", "Replicas"]

def resolve_ladder(betas):
    """``(ladder, adaptive)`` for a ``betas`` parameter; ``(None, False)`` without tempering.

    Raises ValueError or TypeError (naming ``betas``) for a ladder that does not start at
    1.0, is not strictly decreasing, or holds a non-positive or non-finite value.
    """
    if betas is None:
        return None, False
    if isinstance(betas, (bool, np.bool_)):
        raise TypeError(f"betas must be None, an int >= 2 or a decreasing array starting at "
                        f"1.0, got {betas!r}")
    if isinstance(betas, (int, np.integer)):
        k = int(betas)
        if not 2 <= k <= MAX_LEVELS:
            raise ValueError(f"betas as an int is the number of levels, 2 to {MAX_LEVELS}, "
                             f"got {k}")
        return np.geomspace(1.0, BETA_MIN, k), True
    if isinstance(betas, str):
        raise TypeError(f"betas must be None, an int >= 2 or a decreasing array starting at "
                        f"1.0, got {betas!r}")
    try:
        b = np.asarray(betas, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"betas must be None, an int >= 2 or a decreasing array starting at "
                        f"1.0, got {betas!r:.80}") from None
    if b.ndim != 1 or len(b) < 2:
        raise ValueError(f"betas must be a 1-D ladder of at least 2 inverse temperatures, "
                         f"got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError(f"betas must be finite, got {b.tolist()}")
    if b[0] != 1.0:
        raise ValueError(f"betas must start at 1.0 (the model itself), got {b[0]!r}")
    if np.any(b <= 0):
        raise ValueError(f"betas must be positive, got {b.tolist()}")
    if np.any(np.diff(b) >= 0):
        raise ValueError(f"betas must be strictly decreasing, got {b.tolist()}")
    return b.copy(), False


def adapt_ladder(betas, swap_acceptance, gain=LADDER_GAIN):
    """Move the inner levels toward equal swap rates; the ends (1 and the hottest) stay.

    The gaps ``g_r = ln β_r − ln β_{r+1}`` are updated as ``ln g_r += gain (A_r − Ā)`` (a
    pair that swaps more often than average gets a wider gap) and rescaled to their old sum.
    """
    betas = np.asarray(betas, dtype=np.float64)
    acc = np.asarray(swap_acceptance, dtype=np.float64)
    if len(betas) < 3 or not np.all(np.isfinite(acc)):
        return betas.copy()
    gaps = -np.diff(np.log(betas))
    new = gaps * np.exp(gain * (acc - acc.mean()))
    new *= gaps.sum() / new.sum()
    out = np.exp(-np.concatenate([[0.0], np.cumsum(new)]))
    out[0] = 1.0
    out[-1] = betas[-1]
    return out


class Replicas:
    """The hotter levels' chains: states, random streams, the ladder and its swap counts.

    Attributes
    ----------
    betas : float64 (K,)
    x : float64 (K - 1, n_chains, d)
        States of levels ``1 … K−1`` (level 0 is the model's ``chains_``).
    rng : uint64 (K - 1, n_chains, 4)
        Their Metropolis streams.
    swap_rng : uint64 (n_chains, 4)
        One stream per column for the swap decisions.
    turn : int
        Swap rounds done (its parity picks even or odd pairs).
    adaptive : bool
        Whether :func:`adapt_ladder` moves the inner levels during training.
    swap_acceptance : float64 (K - 1,)
        Accepted fraction of the swaps proposed per pair in the last run.
    """

    def __init__(self, betas, x, rng, swap_rng, turn=0, adaptive=False, swap_acceptance=None):
        self.betas = np.asarray(betas, dtype=np.float64)
        self.x = np.asarray(x, dtype=np.float64)
        self.rng = np.asarray(rng, dtype=np.uint64)
        self.swap_rng = np.asarray(swap_rng, dtype=np.uint64)
        self.turn = int(turn)
        self.adaptive = bool(adaptive)
        k = len(self.betas) - 1
        self.swap_acceptance = (np.full(k, np.nan) if swap_acceptance is None
                                else np.asarray(swap_acceptance, dtype=np.float64))

    @classmethod
    def start(cls, betas, adaptive, lo, hi, n_chains, rng):
        """Uniform states on the box and fresh streams, all drawn from ``rng`` (a Generator)."""
        from .kernels import seed_states

        k = len(betas) - 1
        d = len(lo)
        x = lo + (hi - lo) * rng.random((k, n_chains, d))
        states = seed_states(int(rng.integers(2**63 - 1)), (k + 1) * n_chains)
        return cls(betas, x, states[:k * n_chains].reshape(k, n_chains, 4),
                   states[k * n_chains:], adaptive=adaptive)

    def copy(self):
        return Replicas(self.betas.copy(), self.x.copy(), self.rng.copy(), self.swap_rng.copy(),
                        self.turn, self.adaptive, self.swap_acceptance.copy())

    def arrays(self):
        """The arrays a checkpoint stores (with :meth:`meta`)."""
        return {"replica_betas": self.betas, "replica_x": self.x, "replica_rng": self.rng,
                "replica_swap_rng": self.swap_rng,
                "replica_swap_acceptance": self.swap_acceptance}

    def meta(self):
        return {"turn": self.turn, "adaptive": self.adaptive}
