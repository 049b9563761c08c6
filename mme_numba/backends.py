"""Compute backends: where energies, observables and Metropolis sweeps run.

A backend exposes four operations on arrays, the same on every device, so the model code
above it is backend-agnostic:

- ``observe(spec, params, X) -> (n, m)``
- ``energy(spec, params, lam, X, field) -> (n,)``
- ``sweep(spec, params, lam, field, x, energy, lo, hi, step, n_sweeps, move, boundary,
  rng_state, accepted)``: in-place Metropolis sweeps of the persistent chains.
- ``swap(x, energy, betas, rng_state, parity, accepted)``: one round of replica-exchange
  swaps between neighbouring inverse temperatures, in place.

Moves (:data:`MOVES`, the one list the models validate against):

- ``"all"``: one Gaussian proposal of every coordinate per sweep.
- ``"single"``: ``d`` random-scan single-coordinate proposals per sweep, a first DENSE row or
  conv prefix updated incrementally (cost independent of the image size).
- ``"scan"``: ``d`` single-coordinate proposals per sweep, coordinates in order (systematic
  scan), chains in lock-step through incremental updates; on conv observables several times
  faster than ``"single"`` per proposal (``docs/performance.md``).
- ``"mala"``: Metropolis-adjusted Langevin, one all-coordinate proposal per sweep,
  ``y = x − ε²/2 ∂H/∂x + ε ξ``, folded back into the box with the exact reflected-proposal
  density in the acceptance ratio (``boundary="reflect"``) or rejected outside it; ``step``
  is ``ε``.

Which kernel runs each move is decided in one place, :mod:`mme_numba.kernels.sweep` (CPU) and
its twin :mod:`mme_numba.kernels.cuda.sweep`; this module only picks the device.

``field`` is ``(spec2, params2, lam2)``, a second energy term ``lam2·O2(x)`` used by steering
fields; :data:`NO_FIELD` switches it off.

The CPU backend has a ``dtype``, the arithmetic of ``observe`` and ``energy`` (float64, or
float32 for ``dtype="float32"`` models); both return float64 arrays either way, so what is
built on them (the λ solver, reweighting, χ², the θ step) stays float64. ``sweep`` follows
the dtype of the chains it is given (:func:`mme_numba.kernels.sweep.sweep`).
"""

import numpy as np

from .spec import BOUNDARIES, MOVES, NO_FIELD, is_compiled, kernel_dtype

__all__ = ["CPUBackend", "get_backend", "NO_FIELD", "MOVES", "BOUNDARIES",
           "proposals_per_sweep"]


def proposals_per_sweep(move, n_features):
    """Proposals per chain in one sweep of ``move``: ``n_features`` for the single-coordinate
    moves (``"single"``, ``"scan"``), 1 for the all-coordinate ones (``"all"``, ``"mala"``)."""
    return int(n_features) if move in ("single", "scan") else 1


class CPUBackend:
    """``@njit(parallel=True)`` kernels, ``prange`` over chains (``mme_numba.kernels``)."""

    name = "cpu"

    def __init__(self, dtype=np.float64):
        from . import kernels

        self._k = kernels
        self.dtype = kernel_dtype(dtype)

    def _float64_only(self, spec):
        if self.dtype != np.float64 and is_compiled(spec):
            raise ValueError("compiled observables (observables.compiled) run in float64 "
                             "only: use dtype='float64'")

    def observe(self, spec, params, X):
        self._float64_only(spec)
        if is_compiled(spec):
            return _compiled_observe(spec, params, X)
        if self.dtype != np.float64:   # computed in float32, handed on as float64
            return self._k.observables_batch(spec, params, X, self.dtype).astype(np.float64)
        return self._k.observables_batch(spec, params, np.ascontiguousarray(X, dtype=np.float64))

    def energy(self, spec, params, lam, X, field=NO_FIELD):
        self._float64_only(spec)
        spec2, params2, lam2 = field
        if is_compiled(spec):
            return _compiled_energy(spec, params, lam, X, field)
        if self.dtype != np.float64:
            return self._k.energy_batch(spec, params, lam, X, spec2, params2, lam2,
                                        self.dtype).astype(np.float64)
        return self._k.energy_batch(spec, params, lam, np.ascontiguousarray(X, dtype=np.float64),
                                    spec2, params2, lam2)

    def sweep(self, spec, params, lam, field, x, energy, lo, hi, step, n_sweeps, move, boundary,
              rng_state, accepted):
        spec2, params2, lam2 = field
        self._float64_only(spec)
        if is_compiled(spec):
            _compiled_sweep(spec, params, lam, field, x, energy, lo, hi, step, n_sweeps, move,
                            boundary, rng_state, accepted)
            return
        self._k.sweep(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                      int(n_sweeps), MOVES[move], BOUNDARIES[boundary], rng_state, accepted)

    def swap(self, x, energy, betas, rng_state, parity, accepted):
        """One round of replica-exchange swaps between neighbouring levels, in place
        (:func:`mme_numba.kernels.moves.swap.replica_swaps`)."""
        from .kernels.moves.swap import check_swap_args, replica_swaps

        betas = check_swap_args(x, energy, betas, rng_state, parity, accepted,
                                allow_float32=True)
        replica_swaps(x, energy, betas, rng_state, int(parity), accepted)


# --- compiled user observables (mme_numba.observables.compiled): one spec row, own kernels

def _compiled_kernels(spec, field):
    from .observables.user import kernels_of

    if field[0].shape[0] > 0:
        raise NotImplementedError("steering fields are not supported with compiled observables")
    return kernels_of(spec)


def _compiled_observe(spec, params, X):
    X = np.ascontiguousarray(X, dtype=np.float64)
    return _compiled_kernels(spec, NO_FIELD).observe(
        X, np.ascontiguousarray(params, dtype=np.float64), int(spec[0, 2]))


def _compiled_energy(spec, params, lam, X, field):
    k = _compiled_kernels(spec, field)
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != int(spec[0, 1]):
        raise ValueError(f"X must have shape (n, {int(spec[0, 1])}), got {X.shape}")
    e = k.energy(X, np.ascontiguousarray(params, dtype=np.float64),
                 np.ascontiguousarray(lam, dtype=np.float64))
    bad = ~np.isfinite(e)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"compiled observables: the energy is not finite (nan or inf) at row "
                         f"{i}, x = {np.array2string(X[i], threshold=8)}: check that func "
                         "writes finite values everywhere in the support")
    return e


def _compiled_sweep(spec, params, lam, field, x, energy, lo, hi, step, n_sweeps, move,
                    boundary, rng_state, accepted):
    k = _compiled_kernels(spec, field)
    if move == "mala" and k.grad_x is None:
        raise ValueError('move="mala" needs the gradient in x: pass grad_x= to '
                         "observables.compiled")
    d = x.shape[1]
    lo = np.ascontiguousarray(np.broadcast_to(np.asarray(lo, np.float64), (d,)))
    hi = np.ascontiguousarray(np.broadcast_to(np.asarray(hi, np.float64), (d,)))
    step = np.ascontiguousarray(np.broadcast_to(np.asarray(step, np.float64), (len(x),)))
    if len(x) == 0 or int(n_sweeps) == 0:
        return
    k.sweeps(np.ascontiguousarray(params, dtype=np.float64),
             np.ascontiguousarray(lam, dtype=np.float64), x, energy, lo, hi, step,
             int(n_sweeps), MOVES[move], BOUNDARIES[boundary], rng_state, accepted)


def get_backend(name, dtype=np.float64):
    """The backend called ``name``: ``"cpu"`` or ``"cuda"`` (imported only when asked for),
    with ``dtype`` arithmetic (``"float64"`` or ``"float32"``)."""
    dtype = kernel_dtype(dtype)
    if name == "cpu":
        return CPUBackend(dtype)
    if name == "cuda":
        from .gpu import CUDABackend

        return CUDABackend(dtype)
    raise ValueError(f"backend must be 'cpu' or 'cuda', got {name!r}")
