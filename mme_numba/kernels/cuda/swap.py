"""CUDA twin of :mod:`mme_numba.kernels.moves.swap`: replica-exchange swaps on the GPU.

One thread per column (one chain of every level) draws from that column's own stream and
touches only that column's rows, with the CPU kernel's own column function, so the swap
decisions and the streams are the CPU's (``exp``/``log`` may differ in the last bit, see
:mod:`mme_numba.kernels.cuda`).
"""

import numpy as np
from numba import cuda

from ..moves.swap import check_swap_args, swap_column
from .launch import _launch

__all__ = ["replica_swaps"]


_swap_column = cuda.jit(device=True)(swap_column)


@cuda.jit
def _swap_kernel(x, energy, betas, rng_state, parity, accepted):
    st = cuda.local.array((1, 4), np.uint64)  # a local copy, as in device.chain_kernel
    i = cuda.grid(1)
    while i < x.shape[1]:
        for k in range(4):
            st[0, k] = rng_state[i, k]
        _swap_column(x, energy, betas, st, 0, i, parity, accepted)
        for k in range(4):
            rng_state[i, k] = st[0, k]
        i += cuda.gridsize(1)


def replica_swaps(x, energy, betas, rng_state, parity, accepted):
    """One round of neighbour swaps on the GPU, in place on the host arrays.

    Same arguments and results as :func:`mme_numba.kernels.moves.swap.replica_swaps`:
    ``x`` float64 or float32 ``(K, n_chains, d)``, ``energy`` float64 ``(K, n_chains)`` (untempered),
    ``betas`` float64 ``(K,)``, ``rng_state`` uint64 ``(n_chains, 4)``, ``parity`` 0 or 1,
    ``accepted`` int64 ``(n_chains, K - 1)``.
    """
    betas = check_swap_args(x, energy, betas, rng_state, parity, accepted, allow_float32=True)
    K, n = energy.shape
    if n == 0 or K < 2:
        return
    arrays = [cuda.to_device(a) for a in (x, energy, rng_state, accepted)]
    _launch(_swap_kernel, n, arrays[0], arrays[1], cuda.to_device(betas), arrays[2],
            np.int64(parity), arrays[3])
    for dev, host in zip(arrays, (x, energy, rng_state, accepted)):
        dev.copy_to_host(host)
