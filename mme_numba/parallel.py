"""MPI for CPU-cluster batch runs: chains are split across ranks, everything else replicated.

Each rank advances only its slice of the persistent chains (the expensive part), then the
slices are gathered so every rank holds all chains and repeats the cheap λ and θ updates on
identical arrays. Because each chain's random stream depends only on ``(seed, chain index)``
and the gathered arrays are identical to a single process's, a run on any number of ranks is
bit-identical to the single-process run with the same seed.

Usage::

    from mpi4py import MPI
    model = mme.MinMaxEnt(obs, support=(-6, 6), comm=MPI.COMM_WORLD, random_state=0)
    model.fit(X, epochs=1000, checkpoint="run.npz")   # only rank 0 writes the checkpoint

and ``mpiexec -n 4 python train.py``. mpi4py is optional (``pip install mme_numba[mpi]``).
"""

import numpy as np

__all__ = ["chain_bounds", "world", "is_root", "gather_rows"]


def world():
    """``MPI.COMM_WORLD`` when mpi4py is installed and more than one rank runs, else ``None``."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else None


def chain_bounds(n_chains, comm):
    """``(start, stop)`` of the chains owned by this rank (contiguous, sizes differ by <= 1)."""
    if comm is None:
        return 0, n_chains
    size, rank = comm.Get_size(), comm.Get_rank()
    edges = np.linspace(0, n_chains, size + 1).round().astype(int)
    return int(edges[rank]), int(edges[rank + 1])


def is_root(comm):
    return comm is None or comm.Get_rank() == 0


def gather_rows(local, comm):
    """Concatenate every rank's rows, in rank order, on every rank."""
    if comm is None:
        return local
    return np.concatenate(comm.allgather(np.ascontiguousarray(local)))
