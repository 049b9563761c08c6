"""CUDA twin of :mod:`mme_numba.kernels.moves.swap`: replica-exchange swaps on the GPU.

One thread per column (one chain of every level) draws from that column's own stream and
touches only that column's rows, statement for statement as the CPU kernel, so the swap
decisions and the streams are the CPU's (``exp``/``log`` may differ in the last bit, see
:mod:`mme_numba.kernels.cuda`).
"""

import math

import numpy as np
from numba import cuda

from ..moves.swap import check_swap_args
from .device import _uniform
from .launch import _launch

__all__ = ["replica_swaps"]


@cuda.jit
def _swap_kernel(x, energy, betas, rng_state, parity, accepted):
    K, n, d = x.shape
    st = cuda.local.array(4, np.uint64)
    i = cuda.grid(1)
    while i < n:
        for k in range(4):
            st[k] = rng_state[i, k]
        for r in range(parity, K - 1, 2):
            u = _uniform(st)
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
        for k in range(4):
            rng_state[i, k] = st[k]
        i += cuda.gridsize(1)


def replica_swaps(x, energy, betas, rng_state, parity, accepted):
    """One round of neighbour swaps on the GPU, in place on the host arrays.

    Same arguments and results as :func:`mme_numba.kernels.moves.swap.replica_swaps`:
    ``x`` float64 ``(K, n_chains, d)``, ``energy`` float64 ``(K, n_chains)`` (untempered),
    ``betas`` float64 ``(K,)``, ``rng_state`` uint64 ``(n_chains, 4)``, ``parity`` 0 or 1,
    ``accepted`` int64 ``(n_chains, K - 1)``.
    """
    betas = check_swap_args(x, energy, betas, rng_state, parity, accepted)
    K, n = energy.shape
    if n == 0 or K < 2:
        return
    arrays = [cuda.to_device(a) for a in (x, energy, rng_state, accepted)]
    _launch(_swap_kernel, n, arrays[0], arrays[1], cuda.to_device(betas), arrays[2],
            np.int64(parity), arrays[3])
    for dev, host in zip(arrays, (x, energy, rng_state, accepted)):
        dev.copy_to_host(host)
