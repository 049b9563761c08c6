"""All-coordinate Gaussian Metropolis moves (``MOVE_ALL``), chains in lock-step blocks.

One proposal per sweep moves every coordinate: ``y = x + step[c] * ξ`` with ``ξ`` standard
normal, then the box rule and the acceptance test (:mod:`.box` gives the draw order). The
chooser is :func:`mme_numba.kernels.sweep.sweep`.
"""

import math

import numpy as np
from numba import njit, prange

from ..fastmath import cos_2pi as _cos_2pi
from ..fastmath import log as _log
from ..interpret import energy_lockstep
from ..rng import uniform
from .box import _propose, block_buffers, load_block, store_block

__all__ = ["all_sweeps"]


@njit(cache=True)
def _block_all(c0, n_live, n_lanes, spec, params, lam, spec2, params2, lam2, x, energy, lo,
               hi, step, n_sweeps, boundary, rng_state, accepted):
    # The block's states, steps and random streams are copied lane-major, so the draw
    # loop below (xoshiro, uniforms, Box-Muller through fastmath) vectorizes across lanes.
    d = x.shape[1]
    y, scratch, h_old, h_new, inside = block_buffers(d, n_lanes, spec, spec2, x.dtype)
    xb, streams, step_b = load_block(c0, n_live, n_lanes, x, lo, step, rng_state)
    st = streams.T                      # (lanes, 4) view: st[lane] is one xoshiro state
    for lane in range(n_lanes):
        for k in range(d):
            y[k, lane] = xb[k, lane]
    for lane in range(n_live):
        h_old[lane] = energy[c0 + lane]
    n_acc = np.zeros(n_lanes, np.int64)
    log_r = np.empty(n_lanes)
    cos_t = np.empty(n_lanes)
    log_u = np.ones(n_lanes)
    acc = np.zeros(n_lanes, np.bool_)
    for _ in range(n_sweeps):
        for k in range(d):
            # _gaussian, one simple loop per step so that each vectorizes; the draws are
            # float64 for float32 chains too (the same streams), the proposal rounded once
            for lane in range(n_live):
                u1 = uniform(st, lane)
                u2 = uniform(st, lane)
                log_r[lane] = 1.0 - u1
                cos_t[lane] = u2
            for lane in range(n_live):
                log_r[lane] = _log(log_r[lane])
            for lane in range(n_live):
                cos_t[lane] = _cos_2pi(cos_t[lane])
            xk = xb[k]
            yk = y[k]
            for lane in range(n_live):
                yk[lane] = xk[lane] + step_b[lane] * (math.sqrt(-2.0 * log_r[lane])
                                                      * cos_t[lane])
        for lane in range(n_live):              # boundary rule (rarely active)
            ok_all = True
            for k in range(d):
                v, ok = _propose(y[k, lane], lo[k], hi[k], boundary)
                y[k, lane] = v
                ok_all = ok_all and ok
            inside[lane] = ok_all
        energy_lockstep(spec, params, lam, spec2, params2, lam2, y, 0, y, scratch, h_new)
        # the acceptance test of box._accept, one simple loop per step so that each
        # vectorizes: uniforms for the kept proposals only, their logs, then the decisions
        # (float32 energies promoted to float64 first) and masked stores
        for lane in range(n_live):
            if inside[lane]:
                log_u[lane] = uniform(st, lane)
        for lane in range(n_live):
            log_u[lane] = _log(log_u[lane])
        for lane in range(n_live):
            ok = inside[lane] and log_u[lane] < np.float64(h_old[lane]) - np.float64(h_new[lane])
            acc[lane] = ok
            h_old[lane] = h_new[lane] if ok else h_old[lane]
            n_acc[lane] += 1 if ok else 0
        for k in range(d):
            xk = xb[k]
            yk = y[k]
            for lane in range(n_live):
                xk[lane] = yk[lane] if acc[lane] else xk[lane]
    store_block(c0, n_live, xb, streams, h_old, n_acc, x, rng_state, energy, accepted)


@njit(parallel=True, cache=True)
def all_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
               boundary, rng_state, accepted, n_lanes):
    """``n_sweeps`` all-coordinate proposals per chain, in place, ``n_lanes`` chains per
    lock-step block (arguments checked by :func:`.box.chain_args`)."""
    n_chains = x.shape[0]
    for b in prange((n_chains + n_lanes - 1) // n_lanes):
        c0 = b * n_lanes
        _block_all(c0, min(n_chains, c0 + n_lanes) - c0, n_lanes, spec, params, lam, spec2,
                   params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary, rng_state,
                   accepted)
