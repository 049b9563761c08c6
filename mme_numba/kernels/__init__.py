"""Compiled CPU kernels: the network interpreter, per-chain RNG and the Metropolis moves.

Kernels take arrays and scalars only (see ``docs/architecture.md``). Public entry points
check shapes and dtypes cheaply, then call ``@njit(parallel=True)`` kernels that run
``prange`` over rows or chains with per-thread scratch and per-chain random streams,
so results are bit-identical for any thread count. :func:`sweep` is the one place that
picks the kernel of a move.
"""

from ..spec import (BOUNDARY_REFLECT, BOUNDARY_REJECT, CONV2D, DENSE, LOGSOFTMAX, MOVE_ALL,
                    MOVE_MALA, MOVE_SCAN, MOVE_SINGLE, POWERS, RELU, SIGMOID, SOFTPLUS,
                    SPEC_WIDTH, SQUARE, TANH, empty_term)
from .interpret import (energy_batch, forward_one, max_width, observables_batch,
                        validate_spec)
from .rng import normal, next_u64, seed_states, uniform
from .sweep import metropolis_sweeps, sweep

__all__ = [
    "DENSE", "CONV2D", "TANH", "SOFTPLUS", "SIGMOID", "RELU", "SQUARE", "POWERS",
    "LOGSOFTMAX", "SPEC_WIDTH",
    "MOVE_ALL", "MOVE_SINGLE", "MOVE_MALA", "MOVE_SCAN", "BOUNDARY_REJECT", "BOUNDARY_REFLECT",
    "seed_states", "next_u64", "uniform", "normal",
    "forward_one", "observables_batch", "energy_batch", "empty_term",
    "max_width", "validate_spec", "sweep", "metropolis_sweeps",
]
