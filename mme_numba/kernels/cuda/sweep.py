"""CUDA twin of :mod:`mme_numba.kernels.sweep`: the one place that picks the GPU kernel.

The same table as on the CPU: ``MOVE_MALA`` runs the MALA chains; ``MOVE_SINGLE`` and
``MOVE_SCAN`` on a first CONV2D row run the incremental single-pixel chains (random or
systematic scan); otherwise one thread per chain runs the all-coordinate chains, the
single-coordinate chains with an incremental first DENSE row, or full forwards.
"""

import numpy as np

from ...spec import CONV2D, DENSE, MOVE_ALL, MOVE_MALA, MOVE_SCAN
from ..interpret import max_width
from ..moves.box import chain_args, check_move
from .chains import _sweep_all_kernel, _sweep_dense_kernel, _sweep_single_kernel
from .launch import _pixel_chains, _run_chains, mala_sweeps

__all__ = ["sweep", "metropolis_sweeps"]


def sweep(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, move,
          boundary, rng_state, accepted, incremental=True, resident=None):
    """Advance persistent chains by ``move`` on the GPU, in place on the host arrays.

    Same contract, kernel choice, draw order and results as
    :func:`mme_numba.kernels.sweep.sweep`
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
        ``MOVE_ALL`` (0), ``MOVE_SINGLE`` (1, random scan), ``MOVE_MALA`` (2,
        :func:`~.launch.mala_sweeps`) or ``MOVE_SCAN`` (3, systematic
        scan: proposal ``it`` changes coordinate ``it mod n_features`` and draws no
        coordinate, the chain of :func:`mme_numba.kernels.moves.scan.scan_sweeps`).
    boundary : int
        ``BOUNDARY_REJECT`` (0) or ``BOUNDARY_REFLECT`` (1).
    rng_state : ndarray of uint64, shape (n_chains, 4)
        Per-chain xoshiro256** states; advanced in place.
    accepted : ndarray of int64, shape (n_chains,)
        Incremented in place by the number of accepted proposals.
    incremental : bool, optional
        Incremental first DENSE layer for ``MOVE_SINGLE`` and ``MOVE_SCAN`` (default), as on
        the CPU; with ``MOVE_SINGLE``/``MOVE_SCAN`` a first CONV2D row runs the incremental
        single-pixel kernel (:func:`~.launch.single_pixel_sweeps`). ``False`` evaluates every
        proposal in full.

    Returns
    -------
    None
    """
    if move == MOVE_MALA:
        mala_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                    boundary, rng_state, accepted, resident=resident)
        return
    check_move(move)
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted)
    if x.shape[0] == 0 or n_sweeps == 0:
        return
    if move != MOVE_ALL and incremental and spec[0, 0] == CONV2D:
        _pixel_chains(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                      n_sweeps, boundary, rng_state, accepted, scan=move == MOVE_SCAN,
                      resident=resident)
        return
    d = x.shape[1]
    incremental = bool(incremental) and move != MOVE_ALL and spec[0, 0] == DENSE
    width, width2 = max_width(spec), max_width(spec2)
    n_hid = int(spec[0, 2]) if incremental else 1
    kernel = (_sweep_all_kernel if move == MOVE_ALL else
              _sweep_dense_kernel if incremental else _sweep_single_kernel)
    _run_chains(kernel, 8 * (2 * width + 2 * width2 + d + 2 * n_hid),
                (spec, params, lam, spec2, params2, lam2), x, energy, lo, hi, step, n_sweeps,
                boundary, rng_state, accepted, (np.int64(move),),
                lambda r, n: (incremental, r.scratch("buf", n, 2, width),
                              r.scratch("buf2", n, 2, width2), r.scratch("y", n, d),
                              r.scratch("z", n, 2, n_hid)), resident)


def metropolis_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                      n_sweeps, move, boundary, rng_state, accepted, incremental=True,
                      resident=None):
    """:func:`sweep` restricted to ``MOVE_ALL``, ``MOVE_SINGLE`` and ``MOVE_SCAN``."""
    check_move(move)
    sweep(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, move,
          boundary, rng_state, accepted, incremental, resident)
