"""CUDA twins of the CPU kernels: same random streams, same arithmetic order, same chains.

Importing this module imports :mod:`numba.cuda`; do it only through
:class:`mme_numba.gpu.CUDABackend` (which checks that CUDA or the CUDA
simulator is usable first). Every device function below mirrors one function of
:mod:`~mme_numba.kernels.rng`, :mod:`~mme_numba.kernels.network`,
:mod:`~mme_numba.kernels.sampler` or :mod:`~mme_numba.kernels.mala` statement for
statement, so a chain advanced here draws the same numbers and takes the same accept
decisions as on the CPU. The systematic scan (``MOVE_SCAN``, :mod:`~mme_numba.kernels.scan`)
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
:data:`SCRATCH_BYTES`.

Network evaluation convention: the input is copied into ``buf[0, :, t]``; row ``r``
reads buffer ``p`` and writes buffer ``1 - p``; the function returns the final ``p``.

Modules
-------
``device`` (RNG, the spec interpreter, boundary rule and acceptance test), ``chains``
(Metropolis chains, incremental single-pixel chains and the batch kernels), ``mala``
(backward pass and MALA chains); this module holds the host side: argument checks (those
of the CPU entry points), launch geometry, scratch and copies.
"""

import numpy as np
from numba import cuda

from ..images import incremental_prefix
from ..network import DENSE, _check_term, max_width
from ..sampler import MOVE_ALL, MOVE_SCAN, _check_inplace, chain_args, check_move
from .chains import (_draw_kernel, _energy_kernel, _observables_kernel, _pixel_kernel,
                     _sweep_kernel)
from .mala import _mala_kernel

__all__ = ["observables_batch", "energy_batch", "metropolis_sweeps", "mala_sweeps",
           "single_pixel_sweeps", "draw", "SCRATCH_BYTES", "THREADS_PER_BLOCK"]

SCRATCH_BYTES = 1 << 30
"""Upper bound on the global scratch one launch allocates (bytes)."""
THREADS_PER_BLOCK = 128
_DRAW_KINDS = {"u64": 0, "uniform": 1, "normal": 2}


def _n_threads(n_items, bytes_per_thread):
    """Threads for a grid-stride launch over ``n_items``, scratch capped by SCRATCH_BYTES."""
    cap = max(THREADS_PER_BLOCK, SCRATCH_BYTES // max(1, bytes_per_thread))
    return max(1, min(n_items, cap))


def _launch(kernel, n_threads, *args):
    tpb = min(THREADS_PER_BLOCK, n_threads)
    kernel[(n_threads + tpb - 1) // tpb, tpb](*args)


def _scratch(n_threads, *shape):
    return cuda.device_array(shape + (n_threads,), dtype=np.float64)


def _as_f64(a, name, ndim):
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return a


def observables_batch(spec, params, X):
    """Observables ``O(x; θ)`` of every row of ``X``, computed on the GPU.

    Same contract and results as :func:`mme_numba.kernels.observables_batch`.

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)
    params : ndarray of float64, shape (n_params,)
    X : ndarray of float64, shape (n_samples, n_features)

    Returns
    -------
    ndarray of float64, shape (n_samples, n_observables)
    """
    X = _as_f64(X, "X", 2)
    spec, params, _ = _check_term(spec, params, None, X.shape[1], ("spec", "params", None))
    if spec.shape[0] == 0:
        return X.copy()
    n = X.shape[0]
    out = np.empty((n, int(spec[-1, 2])))
    if n == 0:
        return out
    width = max_width(spec)
    n_threads = _n_threads(n, 2 * width * 8)
    d_out = cuda.device_array(out.shape, dtype=np.float64)
    _launch(_observables_kernel, n_threads, cuda.to_device(spec), cuda.to_device(params),
            cuda.to_device(X), d_out, _scratch(n_threads, 2, width))
    return d_out.copy_to_host(out)


def energy_batch(spec, params, lam, X, spec2, params2, lam2):
    """Energies ``H(x) = lam . O(x) + lam2 . O2(x)`` of every row of ``X``, on the GPU.

    Same contract and results as :func:`mme_numba.kernels.energy_batch`.

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)
    params : ndarray of float64, shape (n_params,)
    lam : ndarray of float64, shape (n_observables,)
    X : ndarray of float64, shape (n_samples, n_features)
    spec2, params2, lam2 : ndarrays
        Second energy term; ``spec2`` with zero rows means absent.

    Returns
    -------
    ndarray of float64, shape (n_samples,)
    """
    X = _as_f64(X, "X", 2)
    spec, params, lam = _check_term(spec, params, lam, X.shape[1], ("spec", "params", "lam"))
    spec2, params2, lam2 = _check_term(spec2, params2, lam2, X.shape[1],
                                       ("spec2", "params2", "lam2"))
    if spec.shape[0] == 0:
        raise ValueError("spec must have at least one row")
    n = X.shape[0]
    out = np.empty(n)
    if n == 0:
        return out
    width, width2 = max_width(spec), max_width(spec2)
    n_threads = _n_threads(n, 2 * (width + width2) * 8)
    d_out = cuda.device_array(n, dtype=np.float64)
    _launch(_energy_kernel, n_threads, cuda.to_device(spec), cuda.to_device(params),
            cuda.to_device(lam), cuda.to_device(spec2), cuda.to_device(params2),
            cuda.to_device(lam2), cuda.to_device(X), d_out,
            _scratch(n_threads, 2, width), _scratch(n_threads, 2, width2))
    return d_out.copy_to_host(out)




def _run_chains(kernel, per_thread, terms, x, energy, lo, hi, step, n_sweeps, boundary,
                rng_state, accepted, extra, scratch):
    """Copy in, launch ``kernel(*terms, x, energy, lo, hi, step, n_sweeps, *extra, boundary,
    rng_state, accepted, *scratch(n_threads))``, copy ``x, energy, rng_state, accepted`` back."""
    n_threads = _n_threads(x.shape[0], per_thread)
    d_x, d_energy = cuda.to_device(x), cuda.to_device(energy)
    d_state, d_acc = cuda.to_device(rng_state), cuda.to_device(accepted)
    _launch(kernel, n_threads, *(cuda.to_device(a) if isinstance(a, np.ndarray) else a
                                 for a in terms),
            d_x, d_energy, cuda.to_device(lo), cuda.to_device(hi), cuda.to_device(step),
            np.int64(n_sweeps), *extra, np.int64(boundary), d_state, d_acc,
            *scratch(n_threads))
    d_x.copy_to_host(x)
    d_energy.copy_to_host(energy)
    d_state.copy_to_host(rng_state)
    d_acc.copy_to_host(accepted)


def metropolis_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                      n_sweeps, move, boundary, rng_state, accepted, incremental=True):
    """Advance persistent Metropolis chains on the GPU, in place on the host arrays.

    Same contract, draw order and results as :func:`mme_numba.kernels.metropolis_sweeps`
    (one GPU thread per chain): ``x``, ``energy``, ``rng_state`` and ``accepted`` are
    copied to the device, advanced, and copied back into the same arrays. With
    ``MOVE_SCAN`` the CPU and the GPU sum the incremental updates in different orders, so
    energies agree up to rounding.

    Parameters
    ----------
    spec, params, lam : ndarrays
        First energy term: int64 ``(n_rows, 8)``, float64 ``(n_params,)``,
        float64 ``(n_observables,)``.
    spec2, params2, lam2 : ndarrays
        Second energy term; ``spec2`` with zero rows means absent.
    x : ndarray of float64, shape (n_chains, n_features)
        Chain states inside the box; updated in place.
    energy : ndarray of float64, shape (n_chains,)
        Must equal ``H(x)`` on entry; updated in place.
    lo, hi : array_like of float64, shape (n_features,) or scalar
        The box.
    step : array_like of float64, shape (n_chains,) or scalar
        Per-chain Gaussian proposal std.
    n_sweeps : int
        ``MOVE_ALL``: number of all-coordinate proposals. ``MOVE_SINGLE`` / ``MOVE_SCAN``:
        number of sweeps of ``n_features`` single-coordinate proposals each.
    move : int
        ``MOVE_ALL`` (0), ``MOVE_SINGLE`` (1, random scan) or ``MOVE_SCAN`` (3, systematic
        scan: proposal ``it`` changes coordinate ``it mod n_features`` and draws no
        coordinate, the chain of :func:`mme_numba.kernels.scan.scan_sweeps`).
    boundary : int
        ``BOUNDARY_REJECT`` (0) or ``BOUNDARY_REFLECT`` (1).
    rng_state : ndarray of uint64, shape (n_chains, 4)
        Per-chain xoshiro256** states; advanced in place.
    accepted : ndarray of int64, shape (n_chains,)
        Incremented in place by the number of accepted proposals.
    incremental : bool, optional
        Incremental first DENSE layer for ``MOVE_SINGLE`` and ``MOVE_SCAN`` (default), as on
        the CPU; with ``MOVE_SCAN`` a first CONV2D row runs the incremental single-pixel
        kernel (:func:`single_pixel_sweeps` with ``scan=True``). ``False`` evaluates every
        proposal in full.

    Returns
    -------
    None
    """
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted)
    check_move(move)
    if x.shape[0] == 0 or n_sweeps == 0:
        return
    if move == MOVE_SCAN and incremental and incremental_prefix(spec) > 0:
        _pixel_chains(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                      n_sweeps, boundary, rng_state, accepted, scan=True)
        return
    d = x.shape[1]
    incremental = bool(incremental) and move != MOVE_ALL and spec[0, 0] == DENSE
    width, width2 = max_width(spec), max_width(spec2)
    n_hid = int(spec[0, 2]) if incremental else 1
    _run_chains(_sweep_kernel, 8 * (2 * width + 2 * width2 + d + 2 * n_hid),
                (spec, params, lam, spec2, params2, lam2), x, energy, lo, hi, step, n_sweeps,
                boundary, rng_state, accepted, (np.int64(move),),
                lambda n: (incremental, _scratch(n, 2, width), _scratch(n, 2, width2),
                           _scratch(n, d), _scratch(n, 2, n_hid)))


def mala_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                boundary, rng_state, accepted):
    """MALA sweeps on the GPU, in place on the host arrays.

    Same contract, draw order and results as :func:`mme_numba.kernels.mala.mala_sweeps`
    (one GPU thread per chain, input gradients by a backward pass through the spec).

    Parameters
    ----------
    spec, params, lam, spec2, params2, lam2 : ndarrays
        The energy ``H = lam . O + lam2 . O2`` (``spec2`` with zero rows: absent).
    x : ndarray of float64, shape (n_chains, n_features)
        Chain states inside the box; updated in place.
    energy : ndarray of float64, shape (n_chains,)
        ``H(x)`` on entry; updated in place.
    lo, hi : array_like, shape (n_features,) or scalars
    step : array_like, shape (n_chains,) or scalar
        Langevin step ``eps`` per chain (positive).
    n_sweeps : int
        Proposals per chain.
    boundary : int
        ``BOUNDARY_REJECT`` (0) or ``BOUNDARY_REFLECT`` (1).
    rng_state : ndarray of uint64, shape (n_chains, 4)
    accepted : ndarray of int64, shape (n_chains,)

    Returns
    -------
    None
    """
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted)
    if not np.all(step > 0):
        raise ValueError("MALA needs a positive step in every chain")
    if x.shape[0] == 0 or n_sweeps == 0:
        return
    d = x.shape[1]
    width = max(max_width(spec), max_width(spec2))
    n_act, n_act2 = int(spec[:, 2].sum()), max(1, int(spec2[:, 2].sum()))
    _run_chains(_mala_kernel, 8 * (4 * d + n_act + n_act2 + 2 * width),
                (spec, params, lam, spec2, params2, lam2), x, energy, lo, hi, step, n_sweeps,
                boundary, rng_state, accepted, (),
                lambda n: (_scratch(n, 4, d), _scratch(n, 1, n_act), _scratch(n, 1, n_act2),
                           _scratch(n, 2, width)))


def single_pixel_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                        n_sweeps, boundary, rng_state, accepted, scan=False):
    """Single-pixel sweeps with incremental conv updates, on the GPU, in place.

    Random scan: same contract and draws as
    :func:`mme_numba.kernels.images.single_pixel_sweeps`. Systematic scan (``scan=True``):
    those of ``metropolis_sweeps(..., move=MOVE_SCAN)`` on the CPU
    (:func:`mme_numba.kernels.scan.scan_sweeps`). Either way the chain is the CPU's up to the
    rounding of the energies (~1e-14 relative); the energies are carried through the call.

    Parameters
    ----------
    spec, params, lam : ndarrays
        First energy term; ``spec`` must start with a ``CONV2D`` row.
    spec2, params2, lam2 : ndarrays
        Second energy term (zero rows: absent); incremental too when it starts with CONV2D.
    x : ndarray of float64, shape (n_chains, n_features)
        Flattened channel-major images inside the box; updated in place.
    energy : ndarray of float64, shape (n_chains,)
        ``H(x)`` on entry; updated in place.
    lo, hi : array_like, shape (n_features,) or scalars
    step : array_like, shape (n_chains,) or scalar
        Gaussian proposal std per chain.
    n_sweeps : int
        Sweeps of ``n_features`` proposals each.
    boundary : int
        ``BOUNDARY_REJECT`` (0) or ``BOUNDARY_REFLECT`` (1).
    rng_state : ndarray of uint64, shape (n_chains, 4)
    accepted : ndarray of int64, shape (n_chains,)
    scan : bool, default False
        ``False``: random scan, each proposal draws its pixel. ``True``: systematic scan,
        proposal ``it`` changes pixel ``it mod n_features`` and draws no pixel.

    Returns
    -------
    None
    """
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted)
    if incremental_prefix(spec) == 0:
        raise ValueError("single_pixel_sweeps needs a spec whose first row is CONV2D")
    if x.shape[0] == 0 or n_sweeps == 0:
        return
    _pixel_chains(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                  boundary, rng_state, accepted, scan=scan)


def _pixel_chains(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                  boundary, rng_state, accepted, scan):
    """Launch the single-pixel kernel on checked arguments (``spec`` starting with CONV2D)."""
    n_inc, n_inc2 = incremental_prefix(spec), incremental_prefix(spec2)
    width, width2 = max_width(spec), max_width(spec2)
    n_act = int(spec[:n_inc, 2].sum())
    n_act2 = max(1, int(spec2[:n_inc2, 2].sum()))
    _run_chains(_pixel_kernel, 8 * (2 * width + 2 * width2 + 2 * n_act + 2 * n_act2),
                (spec, params, lam, np.int64(n_inc), spec2, params2, lam2, np.int64(n_inc2)),
                x, energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted, (bool(scan),),
                lambda n: (_scratch(n, 2, width), _scratch(n, 2, width2),
                           _scratch(n, 1, n_act), _scratch(n, 1, n_act),
                           _scratch(n, 1, n_act2), _scratch(n, 1, n_act2)))


def draw(rng_state, n_draws, kind="uniform"):
    """``n_draws`` numbers from every chain's stream on the GPU (to test the streams).

    Parameters
    ----------
    rng_state : ndarray of uint64, shape (n_chains, 4)
        Advanced in place, exactly as the CPU ``next_u64``/``uniform``/``normal`` would.
    n_draws : int
    kind : {"u64", "uniform", "normal"}

    Returns
    -------
    ndarray, shape (n_chains, n_draws)
        uint64 for ``"u64"``, float64 otherwise.
    """
    if kind not in _DRAW_KINDS:
        raise ValueError(f"kind must be one of {sorted(_DRAW_KINDS)}, got {kind!r}")
    _check_inplace(rng_state, "rng_state", np.uint64, (np.shape(rng_state)[0], 4))
    n_chains, n_draws = rng_state.shape[0], int(n_draws)
    code = _DRAW_KINDS[kind]
    out_u64 = np.zeros((n_chains, n_draws), dtype=np.uint64)  # both the same shape: the
    out_f64 = np.zeros((n_chains, n_draws))                    # kernel writes one of them
    if n_chains == 0 or n_draws == 0:
        return out_u64 if code == 0 else out_f64
    d_state, d_u64, d_f64 = (cuda.to_device(a) for a in (rng_state, out_u64, out_f64))
    _launch(_draw_kernel, n_chains, d_state, np.int64(code), d_u64, d_f64)
    d_state.copy_to_host(rng_state)
    return d_u64.copy_to_host() if code == 0 else d_f64.copy_to_host()
