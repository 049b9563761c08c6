"""CUDA twin of :mod:`mme_numba.kernels.sweep`: the one place that picks the GPU kernel.

The same table as on the CPU: ``MOVE_MALA`` runs the MALA chains; ``MOVE_SINGLE`` and
``MOVE_SCAN`` on a first CONV2D row run the incremental single-pixel chains (random or
systematic scan); otherwise one thread per chain runs the all-coordinate chains, the
single-coordinate chains with an incremental first DENSE row, or full forwards. float32
chains run the float32 specialisations of the same kernels (MALA is float64 only).
"""

from ...spec import CONV2D, DENSE, MOVE_ALL, MOVE_MALA, MOVE_SCAN
from ..interpret import max_width
from ..moves.box import chain_args, check_mala_chains, check_move
from .chains import _sweep_all_kernel, _sweep_dense_kernel, _sweep_single_kernel
from .launch import _pixel_chains, _run_chains, mala_sweeps

__all__ = ["sweep", "metropolis_sweeps"]


def sweep(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, move,
          boundary, rng_state, accepted, incremental=True, resident=None):
    """Advance persistent chains by ``move`` on the GPU, in place on the host arrays.

    Same arguments, kernel choice, draw order and results as
    :func:`mme_numba.kernels.sweep.sweep` (one GPU thread per chain; ``resident`` keeps device
    copies between calls instead of ``lanes``). With ``MOVE_SCAN`` the CPU and the GPU sum the
    incremental updates in different orders, so energies agree up to rounding.
    """
    if move == MOVE_MALA:
        check_mala_chains(x)
        mala_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                    boundary, rng_state, accepted, resident=resident)
        return
    check_move(move)
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted, allow_float32=True)
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
    _run_chains(kernel, 2 * width + 2 * width2 + d + 2 * n_hid,
                (spec, params, lam, spec2, params2, lam2), x, energy, lo, hi, step, n_sweeps,
                boundary, rng_state, accepted, move == MOVE_SCAN,
                lambda s: (s("buf", 2, width), s("buf2", 2, width2), s("y", d),
                           s("z", 2, n_hid)), resident)


def metropolis_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                      n_sweeps, move, boundary, rng_state, accepted, incremental=True,
                      resident=None):
    """:func:`sweep` restricted to ``MOVE_ALL``, ``MOVE_SINGLE`` and ``MOVE_SCAN``."""
    check_move(move)
    sweep(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, move,
          boundary, rng_state, accepted, incremental, resident)
