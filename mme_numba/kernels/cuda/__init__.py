"""CUDA twins of the CPU kernels: same random streams, same arithmetic order, same chains.

Importing this module imports :mod:`numba.cuda`; do it only through
:class:`mme_numba.gpu.CUDABackend` (which checks that CUDA or the CUDA
simulator is usable first). Every device function below mirrors one function of
:mod:`~mme_numba.kernels.interpret`, :mod:`~mme_numba.kernels.moves.box` or
:mod:`~mme_numba.kernels.moves.mala` statement for statement, or is the CPU's own ``@njit``
function compiled for the device (the random streams of :mod:`~mme_numba.kernels.rng`, the
MALA proposal density), so a chain advanced here draws the same numbers and takes the same
accept decisions as on the CPU. The systematic scan (``MOVE_SCAN``, :mod:`~mme_numba.kernels.moves.scan`)
is run by the single-coordinate chains with the coordinate taken in order instead of drawn:
the CPU's draws, one chain per thread instead of chains in lock-step. Floats may differ in
the last bits: NVVM fuses multiply-adds (as LLVM does where a CPU kernel allows
contraction) and libdevice's ``exp``/``log``/``cos`` are not the C library's; ``tanh`` is
the CPU's own polynomial (:mod:`~mme_numba.kernels.fastmath`). The simulator
(``NUMBA_ENABLE_CUDASIM=1``) runs the device code as Python, without fusion.

Threads and scratch
-------------------
Kernels launch a fixed number of threads ``T`` that walk the rows (or chains) in a
grid-stride loop; row/chain ``c`` is handled by thread ``c mod T`` alone, which owns
column ``t`` of the scratch arrays. Scratch lives in global memory, laid out
``(2, width, T)`` (ping-pong buffer, activation index, thread), so the threads of a warp
touching activation ``j`` read consecutive addresses (coalesced), and the network width
has no compile-time limit. ``T`` is capped so that scratch stays below
:data:`SCRATCH_BYTES` (and a quarter of the free device memory); a capped ``T`` is a
multiple of the block size, and each kernel strides by its scratch width and skips threads
``t >= T``, so no thread indexes past its scratch (:func:`_n_threads`).

Device-resident state
---------------------
Every entry point takes ``resident=``, a :class:`Resident` that keeps device copies between
calls (the CUDA backend holds one): inputs bitwise equal to a kept copy's host snapshot are
not copied again, the chains' state stays on the device after a sweep, and scratch and
output arrays are reused. Without it each call copies in and out and allocates afresh.

Modules
-------
``device`` (RNG, the spec interpreter, boundary rule and acceptance test), ``chains``
(Metropolis chains, incremental single-pixel chains and the batch kernels), ``mala``
(backward pass and MALA chains), ``swap`` (replica exchange), ``launch`` (the host side: argument checks, those of the
CPU entry points; launch geometry, scratch and copies) and ``sweep``, the one chooser of a
move's kernel, twin of :mod:`mme_numba.kernels.sweep`.
"""

from .launch import (SCRATCH_BYTES, THREADS_PER_BLOCK, Resident, draw, energy_batch,
                     mala_sweeps, observables_batch, single_pixel_sweeps)
from .swap import replica_swaps
from .sweep import metropolis_sweeps, sweep

__all__ = ["observables_batch", "energy_batch", "sweep", "metropolis_sweeps", "mala_sweeps",
           "single_pixel_sweeps", "replica_swaps", "draw", "Resident", "SCRATCH_BYTES",
           "THREADS_PER_BLOCK"]
