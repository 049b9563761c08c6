"""The CUDA backend: the CPU backend's three operations, run by ``@cuda.jit`` kernels.

(The module is ``mme_numba.gpu``, not ``mme_numba.cuda_*``: numba-cuda's import hook
captures every module whose dotted name contains ``numba.cuda``.)

Results match :class:`mme_numba.backends.CPUBackend` for the same seeds: the same random
streams and accept decisions, positions and energies equal up to the last bits (fused
multiply-adds, the device math library). See ``docs/gpu.md``.

``numba.cuda`` is imported only when a :class:`CUDABackend` is created, so importing this
module never touches a GPU driver.
"""

import logging

import numpy as np

from .spec import BOUNDARIES as _BOUNDARIES, MOVES as _MOVES, NO_FIELD, is_compiled, kernel_dtype

__all__ = ["CUDABackend", "cuda_unavailable_reason"]

logger = logging.getLogger(__name__)


def cuda_unavailable_reason():
    """Why the CUDA backend cannot run here, or ``None`` when it can.

    Returns
    -------
    str or None
        ``None`` when ``numba.cuda`` finds a GPU (driver and NVVM) or the CUDA simulator
        is enabled (``NUMBA_ENABLE_CUDASIM=1`` set before numba was first imported).
    """
    try:
        from numba import cuda
    except Exception as exc:  # a broken numba.cuda install
        return f"numba.cuda cannot be imported ({exc})"
    if _simulator_enabled():
        return None
    if not cuda.is_available():
        return ("numba.cuda finds no usable NVIDIA GPU or driver (numba.cuda.is_available() "
                "is False); to run the CUDA kernels without a GPU, set NUMBA_ENABLE_CUDASIM=1 "
                "in the environment before Python imports numba")
    try:  # the module's location differs between numba's built-in CUDA and numba-cuda
        from numba.cuda.cudadrv import nvvm
    except ImportError:
        return None
    if not nvvm.is_available():
        return ("a GPU is present but numba.cuda cannot find libNVVM (install the CUDA "
                "toolkit, or the pip/conda package providing cuda-nvcc, and set CUDA_HOME)")
    return None


def _simulator_enabled():
    from numba import config

    return bool(getattr(config, "ENABLE_CUDASIM", 0))


class CUDABackend:
    """Energies, observables and Metropolis sweeps on an NVIDIA GPU (``numba.cuda``).

    Same methods, arguments and results as :class:`mme_numba.backends.CPUBackend`, ``dtype``
    included (float32: float32 chains, parameters and scratch, float64 results from
    ``observe`` and ``energy``); the in-place arguments of :meth:`sweep` are updated on the
    host.

    The backend keeps device copies between calls (:class:`mme_numba.kernels.cuda.Resident`):
    the chains, their energies and random states after a sweep, θ, λ, the box and the
    steps, and the scratch buffers. A later call whose host array is bitwise equal to the
    kept copy's snapshot uses the device copy without a transfer (``energy`` and
    ``observe`` of the chains, the next ``sweep``); any other array, or one changed on the
    host, is uploaded. ``transfers`` counts the copies.

    Raises
    ------
    RuntimeError
        At construction, when neither a GPU nor the CUDA simulator is usable (the message
        says why and how to enable the simulator).
    """

    name = "cuda"

    def __init__(self, dtype=np.float64):
        self.dtype = kernel_dtype(dtype)
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"the 'cuda' backend is unavailable: {reason}")
        from .kernels import cuda as kernels_cuda

        self._k = kernels_cuda
        self._resident = kernels_cuda.Resident()
        if _simulator_enabled():
            logger.info("CUDA backend running in the numba CUDA simulator (slow)")

    @property
    def transfers(self):
        """Copies made so far: ``{"h2d": ..., "d2h": ..., "allocations": ...}``."""
        r = self._resident
        return {"h2d": r.h2d, "d2h": r.d2h, "allocations": r.allocations}

    def suggested_n_chains(self):
        """Chains that fill the device once: one thread per chain on every thread slot of
        every SM (``SMs × max threads per SM``; 270 336 on an H100 SXM, 540 672 would be
        two waves). 1024 in the simulator. See ``docs/gpu.md``."""
        if _simulator_enabled():
            return 1024
        from numba import cuda

        dev = cuda.get_current_device()
        return int(dev.MULTIPROCESSOR_COUNT) * int(dev.MAX_THREADS_PER_MULTI_PROCESSOR)

    def observe(self, spec, params, X):
        """Observables ``(n, m)`` of the rows of ``X (n, d)``."""
        _refuse_compiled(spec)
        return self._k.observables_batch(spec, params, X, self.dtype,
                                         resident=self._resident).astype(np.float64, copy=False)

    def energy(self, spec, params, lam, X, field=None):
        """Energies ``lam . O(x) + lam2 . O2(x)`` ``(n,)``; ``field = (spec2, params2, lam2)``."""
        _refuse_compiled(spec)
        spec2, params2, lam2 = NO_FIELD if field is None else field
        return self._k.energy_batch(spec, params, lam, X, spec2, params2, lam2, self.dtype,
                                    resident=self._resident).astype(np.float64, copy=False)

    def sweep(self, spec, params, lam, field, x, energy, lo, hi, step, n_sweeps, move, boundary,
              rng_state, accepted):
        """In-place sweeps of the persistent chains; ``x, energy, rng_state, accepted`` are
        updated in place.

        ``move``: ``"all"``, ``"single"``, ``"scan"`` or ``"mala"`` (see
        ``mme_numba.backends``); ``boundary``: ``"reject"`` or ``"reflect"``. As on the CPU,
        ``"single"`` (random scan) and ``"scan"`` (systematic scan) on a network whose first
        row is CONV2D update only the conv windows a pixel touches; on ``"scan"`` the CPU and
        the GPU sum the incremental updates in different orders, so energies agree up to
        rounding.
        """
        _refuse_compiled(spec)
        if move not in _MOVES:
            raise ValueError(f"move must be one of {sorted(_MOVES)}, got {move!r}")
        if boundary not in _BOUNDARIES:
            raise ValueError(f"boundary must be one of {sorted(_BOUNDARIES)}, got {boundary!r}")
        spec2, params2, lam2 = NO_FIELD if field is None else field
        self._k.sweep(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                      int(n_sweeps), _MOVES[move], _BOUNDARIES[boundary], rng_state, accepted,
                      resident=self._resident)

    def swap(self, x, energy, betas, rng_state, parity, accepted):
        """Replica-exchange swaps on the GPU, in place on the host arrays; the same decisions
        and streams as :meth:`mme_numba.backends.CPUBackend.swap`."""
        self._k.replica_swaps(x, energy, betas, rng_state, int(parity), accepted)


def _refuse_compiled(spec):
    if is_compiled(spec):
        raise ValueError("compiled observables (observables.compiled) run on the CPU only: "
                         "use backend='cpu'")
