"""Per-chain random streams: xoshiro256** seeded by splitmix64.

Every Markov chain owns one row of a ``uint64 (n_chains, 4)`` state array and
draws only from it, so a kernel that runs chains in parallel produces the same
numbers for any thread count, rank count or scheduling.

Seeding (the exact recipe, so that other implementations can reproduce it)::

    key   = mix64(seed + GOLDEN)                         # seed taken modulo 2**64
    s     = mix64(key + mix64(chain ^ CHAIN_SALT))        # chain = first_chain + i
    state = four successive splitmix64 outputs from s     # s += GOLDEN; out = mix64(s)

where ``mix64`` is the splitmix64 output function. Chain ``i`` of a seeding that
starts at ``first_chain=a`` is chain ``a + i`` of a seeding from 0, so an MPI rank
owning chains ``[a, b)`` gets exactly the states a single process would give them.

All arithmetic is on ``np.uint64`` constants: numba promotes ``uint64 op int64``
to float64, which would silently destroy the generator.
"""

import math

import numpy as np
from numba import njit

__all__ = ["seed_states", "next_u64", "uniform", "normal"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_CHAIN_SALT = np.uint64(0xD1B54A32D192ED03)
_U5 = np.uint64(5)
_U7 = np.uint64(7)
_U9 = np.uint64(9)
_U11 = np.uint64(11)
_U17 = np.uint64(17)
_U27 = np.uint64(27)
_U30 = np.uint64(30)
_U31 = np.uint64(31)
_U45 = np.uint64(45)
_U64 = np.uint64(64)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53
_TWO_PI = 2.0 * math.pi


@njit(cache=True)
def _mix64(z):
    """splitmix64 output function (a bijection of uint64)."""
    z = (z ^ (z >> _U30)) * _MIX1
    z = (z ^ (z >> _U27)) * _MIX2
    return z ^ (z >> _U31)


@njit(cache=True)
def _rotl(x, k):
    return (x << k) | (x >> (_U64 - k))


@njit(cache=True)
def _seed_states(seed, first_chain, n_chains):
    out = np.empty((n_chains, 4), dtype=np.uint64)
    key = _mix64(seed + _GOLDEN)
    for i in range(n_chains):
        chain = np.uint64(first_chain + i)
        s = _mix64(key + _mix64(chain ^ _CHAIN_SALT))
        for k in range(4):
            s = s + _GOLDEN
            out[i, k] = _mix64(s)
        # xoshiro's only forbidden state is all zeros (probability 2**-256).
        if out[i, 0] == 0 and out[i, 1] == 0 and out[i, 2] == 0 and out[i, 3] == 0:
            out[i, 0] = _GOLDEN
    return out


def seed_states(seed, n_chains, first_chain=0):
    """Independent xoshiro256** states for chains ``first_chain .. first_chain + n_chains - 1``.

    Parameters
    ----------
    seed : int
        Any Python or NumPy integer; taken modulo ``2**64``.
    n_chains : int
        Number of chains (rows) to seed.
    first_chain : int, optional
        Global index of the first chain; row ``i`` is seeded from
        ``(seed, first_chain + i)``.

    Returns
    -------
    ndarray of uint64, shape (n_chains, 4)
        One generator state per chain.
    """
    n_chains = int(n_chains)
    first_chain = int(first_chain)
    if n_chains < 0 or first_chain < 0:
        raise ValueError("n_chains and first_chain must be non-negative, got "
                         f"{n_chains} and {first_chain}")
    seed_u = np.uint64(int(seed) % (1 << 64))
    return _seed_states(seed_u, np.int64(first_chain), np.int64(n_chains))


@njit(cache=True)
def next_u64(state, i):
    """Next 64-bit output of chain ``i``'s xoshiro256** stream; advances ``state[i]``.

    Parameters
    ----------
    state : ndarray of uint64, shape (n_chains, 4)
    i : int
        Chain (row) index.

    Returns
    -------
    uint64
    """
    s0 = state[i, 0]
    s1 = state[i, 1]
    s2 = state[i, 2]
    s3 = state[i, 3]
    result = _rotl(s1 * _U5, _U7) * _U9
    t = s1 << _U17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, _U45)
    state[i, 0] = s0
    state[i, 1] = s1
    state[i, 2] = s2
    state[i, 3] = s3
    return result


@njit(cache=True)
def uniform(state, i):
    """Uniform float64 in ``[0, 1)`` with 53 random bits, from chain ``i``.

    Returns
    -------
    float
        ``(next_u64 >> 11) * 2**-53``.
    """
    return np.float64(next_u64(state, i) >> _U11) * _TWO_M53


@njit(cache=True)
def normal(state, i):
    """Standard normal deviate from chain ``i`` (Box–Muller, cosine branch only).

    Consumes two uniforms ``u1, u2`` and returns
    ``sqrt(-2 log(1 - u1)) * cos(2 pi u2)``; ``1 - u1`` lies in ``(0, 1]`` so
    the logarithm is finite. The sine partner is discarded so that each call
    consumes a fixed number of draws (simple to replay in a naive twin).

    Returns
    -------
    float
    """
    u1 = uniform(state, i)
    u2 = uniform(state, i)
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(_TWO_PI * u2)
