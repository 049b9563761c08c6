"""The one place that picks the sampler kernel for a (move, network, field, boundary).

Every sweep of the package goes through :func:`sweep` (the CPU backend calls it; the CUDA
twin is :mod:`mme_numba.kernels.cuda.sweep`):

=============  ======================  ====================================================
move           first row of ``spec``   kernel
=============  ======================  ====================================================
MOVE_ALL       any                     :func:`.moves.all_coords.all_sweeps` (lock-step)
MOVE_SINGLE    DENSE                   :func:`.moves.single.single_sweeps`, incremental
MOVE_SINGLE    CONV2D                  :func:`.moves.single.single_pixel_sweeps`
MOVE_SINGLE    other (or not           :func:`.moves.single.single_sweeps`, full forwards
               ``incremental``)
MOVE_SCAN      any                     :func:`.moves.scan.scan_sweeps` (its own plan per term)
MOVE_MALA      any                     :func:`.moves.mala.mala_sweeps`
=============  ======================  ====================================================

The second energy term (``spec2, params2, lam2``, zero rows when absent) and the boundary
(``BOUNDARY_REJECT``/``BOUNDARY_REFLECT``) are arguments of every kernel, not a choice. So is
the arithmetic: float32 chains (``x`` and ``energy`` float32) run the float32 specialisations
of the same kernels (:func:`.moves.box.chain_args`), except MALA, which is float64 only.
"""

from ..spec import CONV2D, DENSE, MOVE_ALL, MOVE_MALA, MOVE_SCAN, MOVE_SINGLE
from . import tune
from .interpret import dynamic_schedule, lanes_for
from .moves.all_coords import all_sweeps
from .moves.box import chain_args, check_mala_chains, check_move
from .moves.mala import mala_sweeps
from .moves.scan import scan_sweeps
from .moves.single import single_pixel_sweeps, single_sweeps

__all__ = ["sweep", "metropolis_sweeps"]


def sweep(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, move,
          boundary, rng_state, accepted, incremental=True, lanes=None):
    """Advance persistent chains on ``exp(-H)`` restricted to ``[lo, hi]`` by ``move``, in place.

    ``H(x) = lam . O(x) + lam2 . O2(x)``; :mod:`.moves.box` gives the proposals, the boundary
    rule and the draw order.

    Parameters
    ----------
    spec, params, lam : ndarrays
        First energy term: int64 ``(n_rows, 8)``, float64 ``(n_params,)``,
        float64 ``(n_observables,)``.
    spec2, params2, lam2 : ndarrays
        Second energy term; ``spec2`` with zero rows means absent (``empty_term()``).
    x : ndarray of float64 or float32, shape (n_chains, n_features)
        Chain states, inside the box; updated in place. float32 chains are sampled in float32
        arithmetic (parameters and multipliers rounded to float32; not ``MOVE_MALA``).
    energy : ndarray of x.dtype, shape (n_chains,)
        Must equal ``H(x)`` on entry (``energy_batch``); updated in place.
    lo, hi : array_like of float64, shape (n_features,) or scalars
        The box.
    step : array_like of float64, shape (n_chains,) or scalar
        Per-chain proposal scale (Gaussian std; MALA's ``ε``), the same for every coordinate.
    n_sweeps : int
        ``MOVE_ALL``/``MOVE_MALA``: proposals per chain. ``MOVE_SINGLE``/``MOVE_SCAN``:
        sweeps of ``n_features`` single-coordinate proposals each.
    move : int
        ``MOVE_ALL`` (0), ``MOVE_SINGLE`` (1), ``MOVE_MALA`` (2) or ``MOVE_SCAN`` (3).
    boundary : int
        ``BOUNDARY_REJECT`` (0) or ``BOUNDARY_REFLECT`` (1).
    rng_state : ndarray of uint64, shape (n_chains, 4)
        Per-chain xoshiro256** states (``seed_states``); advanced in place.
    accepted : ndarray of int64, shape (n_chains,)
        Incremented in place by the number of accepted proposals.
    incremental : bool, optional
        Update a first DENSE or CONV2D prefix incrementally (default). ``False`` forces full
        forwards (the same chain up to rounding; tests compare one path with the other).
    lanes : int, optional
        Chains advanced in lock-step by one thread (default: ``lanes_for`` the networks,
        at most the per-host :func:`.tune.lanes_max`).
        Results are bit-identical for every value; it only changes speed.

    Returns
    -------
    None
    """
    if move == MOVE_MALA:
        check_mala_chains(x)
        mala_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                    n_sweeps, boundary, rng_state, accepted)
        return
    check_move(move)
    if move == MOVE_SCAN:
        scan_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                    boundary, rng_state, accepted, incremental=incremental, lanes=lanes)
        return
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted, allow_float32=True)
    if move == MOVE_SINGLE and incremental and spec[0, 0] == CONV2D:
        single_pixel_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                            n_sweeps, boundary, rng_state, accepted)
        return
    n_chains = x.shape[0]
    if n_chains == 0 or n_sweeps == 0:
        return
    if lanes is None:
        most = tune.lanes_max("all" if move == MOVE_ALL else "single")
        lanes = lanes_for(spec, spec2, n_items=n_chains, most=most, itemsize=x.itemsize)
    lanes = int(lanes)
    if lanes < 1:
        raise ValueError(f"lanes must be a positive integer, got {lanes}")
    args = (spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
            int(boundary), rng_state, accepted)
    with dynamic_schedule():
        if move == MOVE_ALL:
            all_sweeps(*args, lanes)
        else:
            single_sweeps(*args, bool(incremental) and spec[0, 0] == DENSE, lanes)


def metropolis_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                      n_sweeps, move, boundary, rng_state, accepted, incremental=True,
                      lanes=None):
    """:func:`sweep` restricted to the Gaussian Metropolis moves ``MOVE_ALL``,
    ``MOVE_SINGLE`` and ``MOVE_SCAN`` (the same arguments)."""
    check_move(move)
    sweep(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, move,
          boundary, rng_state, accepted, incremental, lanes)
