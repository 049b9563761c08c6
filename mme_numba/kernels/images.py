"""Single-pixel Metropolis for convolutional observables, with an incremental energy update.

A network whose spec starts with ``CONV2D`` rows (interleaved with elementwise rows) and then a
``DENSE`` row is evaluated incrementally: each chain keeps the activations of that prefix
(pre- and post-activation of every conv layer and the DENSE output) and a proposal that changes
pixel ``(c, y, x)`` by ``δ``

* adds ``W[:, c, ., .] δ`` to the ``k×k`` window of the first conv layer's pre-activation,
* re-applies the elementwise rows on that window only,
* adds the changed activations' contributions to the next conv layer over the window grown by
  ``k // 2`` on each side (``(2k−1)²`` for the second ``k×k`` layer), and so on,
* updates the DENSE outputs by the changed entries only (``out += W[:, i] Δa_i``),

then evaluates the remaining rows (for ``paper_cnn`` none: λ·O directly). The per-move cost
depends on the kernel sizes and channel counts but not on the image size.

Every changed entry is first copied into an undo buffer with the same layout as the
activations; a rejected proposal copies it back (bit-exact, so rejections never drift) and the
same buffer provides the ``Δa`` of the next row. Activations are rebuilt from ``x`` at the start
of every call, so rounding from accepted updates cannot accumulate beyond one call
(measured: ~1e-14 relative after thousands of moves).

The proposal and draw order are exactly those of the full-recompute single-move kernel of
:mod:`mme_numba.kernels.sampler` (random-scan pixel, Gaussian step, boundary rule, one uniform
for the acceptance), so both produce the same chain up to the rounding of the energies.
A second energy term (steering fields) is updated the same way when its spec also starts with
``CONV2D``, and recomputed in full otherwise.
"""

import numpy as np
from numba import njit, prange

from .network import (CONV2D, DENSE, RELU, SIGMOID, SOFTPLUS, SQUARE, TANH, _apply_row,
                      _check_term, _dot, _max_width, _relu, _sigmoid, _softplus, _tanh,
                      forward_rows)
from .rng import normal, uniform
from .sampler import BOUNDARY_REFLECT, BOUNDARY_REJECT, _accept, _propose

__all__ = ["supports_incremental", "incremental_prefix", "single_pixel_sweeps"]


# --- the incremental prefix of a spec -----------------------------------------------------

@njit(cache=True)
def _is_local_elementwise(code):
    return code == TANH or code == SOFTPLUS or code == SIGMOID or code == RELU \
        or code == SQUARE


@njit(cache=True)
def _plan(spec):
    """Rows updated incrementally and their output geometry.

    Returns ``n_inc`` (0 if the first row is not CONV2D), ``aoff (n_inc + 1,)`` offsets of each
    row's output in the flat activation buffer and ``geo (n_inc, 3)`` = ``(C, H, W)`` of each
    output (``(n_out, 1, 1)`` for the closing DENSE row).
    """
    n_rows = spec.shape[0]
    n_inc = 0
    if n_rows > 0 and spec[0, 0] == CONV2D:
        h = spec[0, 5]
        w = spec[0, 6]
        n_inc = 1
        while n_inc < n_rows:
            code = spec[n_inc, 0]
            if code == CONV2D and spec[n_inc, 5] == h and spec[n_inc, 6] == w:
                n_inc += 1
            elif _is_local_elementwise(code):
                n_inc += 1
            elif code == DENSE:
                n_inc += 1
                break
            else:
                break
    aoff = np.zeros(n_inc + 1, np.int64)
    geo = np.zeros((max(n_inc, 1), 3), np.int64)
    for r in range(n_inc):
        aoff[r + 1] = aoff[r] + spec[r, 2]
        if spec[r, 0] == DENSE:
            geo[r, 0] = spec[r, 2]
            geo[r, 1] = 1
            geo[r, 2] = 1
        else:
            h = spec[0, 5]
            w = spec[0, 6]
            geo[r, 0] = spec[r, 2] // (h * w)
            geo[r, 1] = h
            geo[r, 2] = w
    return n_inc, aoff, geo


@njit(cache=True)
def _rebuild(spec, params, x, n_inc, aoff, acts):
    """Full forward of the incremental prefix from ``x`` into ``acts``."""
    for r in range(n_inc):
        dst = acts[aoff[r]:aoff[r + 1]]
        if r == 0:
            _apply_row(spec[0], params, x, dst)
        else:
            _apply_row(spec[r], params, acts[aoff[r - 1]:aoff[r]], dst)


@njit(cache=True)
def _elementwise(code, z):
    if code == TANH:
        return _tanh(z)
    if code == SOFTPLUS:
        return _softplus(z)
    if code == SIGMOID:
        return _sigmoid(z)
    if code == RELU:
        return _relu(z)
    return z * z  # SQUARE


@njit(cache=True)
def _conv_delta(params, off, c_in, c_out, k, h, w, src, src_old, r0, r1, q0, q1, ch0, ch1,
                dst, dst_old, s0, s1, t0, t1):
    """Add the conv contributions of the changed inputs to ``dst``.

    Inputs changed in channels ``[ch0, ch1)`` of the rectangle rows ``[r0, r1)`` x columns
    ``[q0, q1)``, by ``src - src_old``; the outputs they reach lie in rows ``[s0, s1)`` x columns
    ``[t0, t1)`` of every output channel, saved to ``dst_old`` first.
    """
    pad = k // 2
    hw = h * w
    for co in range(c_out):
        for oy in range(s0, s1):
            base = co * hw + oy * w
            for ox in range(t0, t1):
                dst_old[base + ox] = dst[base + ox]
    for ci in range(ch0, ch1):
        for iy in range(r0, r1):
            for ix in range(q0, q1):
                i = ci * hw + iy * w + ix
                delta = src[i] - src_old[i]
                if delta == 0.0:
                    continue
                oy0 = max(0, iy - pad)
                oy1 = min(h, iy + pad + 1)
                ox0 = max(0, ix - pad)
                ox1 = min(w, ix + pad + 1)
                for co in range(c_out):
                    w_base = off + (co * c_in + ci) * k * k
                    for oy in range(oy0, oy1):
                        w_row = w_base + (iy - oy + pad) * k + pad + ix
                        d_row = co * hw + oy * w
                        for ox in range(ox0, ox1):
                            dst[d_row + ox] += params[w_row - ox] * delta


@njit(cache=True)
def _propose_term(spec, params, lam, x, x_old_j, j, n_inc, aoff, geo, acts, undo, rect,
                  wa, wb):
    """Energy term ``lam . O`` after pixel ``j`` changed (``x`` holds the new value).

    Updates ``acts`` in place (old values saved in ``undo``, touched rectangles in ``rect``);
    call :func:`_restore_term` to undo on rejection.
    """
    h = spec[0, 5]
    w = spec[0, 6]
    hw = h * w
    # The changed input: one pixel of one channel.
    ci = j // hw
    y = (j % hw) // w
    xx = j % w
    r0, r1, q0, q1 = y, y + 1, xx, xx + 1
    for r in range(n_inc):
        code = spec[r, 0]
        off = spec[r, 3]
        dst = acts[aoff[r]:aoff[r + 1]]
        dst_old = undo[aoff[r]:aoff[r + 1]]
        if code == CONV2D:
            k = spec[r, 7]
            pad = k // 2
            s0, s1 = max(0, r0 - pad), min(h, r1 + pad)
            t0, t1 = max(0, q0 - pad), min(w, q1 + pad)
            if r == 0:
                # Input is x itself; only x[j] changed, by x[j] - x_old_j.
                delta = x[j] - x_old_j
                c_out = geo[0, 0]
                for co in range(c_out):
                    for oy in range(s0, s1):
                        base = co * hw + oy * w
                        for ox in range(t0, t1):
                            dst_old[base + ox] = dst[base + ox]
                for co in range(c_out):
                    w_base = off + (co * spec[0, 4] + ci) * k * k
                    for oy in range(s0, s1):
                        w_row = w_base + (y - oy + pad) * k + pad + xx
                        d_row = co * hw + oy * w
                        for ox in range(t0, t1):
                            dst[d_row + ox] += params[w_row - ox] * delta
            else:
                src = acts[aoff[r - 1]:aoff[r]]
                src_old = undo[aoff[r - 1]:aoff[r]]
                _conv_delta(params, off, spec[r, 4], geo[r, 0], k, h, w, src, src_old,
                            r0, r1, q0, q1, 0, geo[r - 1, 0], dst, dst_old, s0, s1, t0, t1)
            r0, r1, q0, q1 = s0, s1, t0, t1
        elif code == DENSE:
            n_in = spec[r, 1]
            n_out = spec[r, 2]
            for i in range(n_out):
                dst_old[i] = dst[i]
            if r == 0:
                continue  # unreachable: the prefix starts with CONV2D
            src = acts[aoff[r - 1]:aoff[r]]
            src_old = undo[aoff[r - 1]:aoff[r]]
            for cc in range(geo[r - 1, 0]):
                for iy in range(r0, r1):
                    for ix in range(q0, q1):
                        idx = cc * hw + iy * w + ix
                        delta = src[idx] - src_old[idx]
                        if delta == 0.0:
                            continue
                        wcol = off + idx
                        for i in range(n_out):
                            dst[i] += params[wcol + i * n_in] * delta
        else:  # local elementwise: recompute the rectangle from its (updated) input
            src = acts[aoff[r - 1]:aoff[r]]
            for cc in range(geo[r, 0]):
                for iy in range(r0, r1):
                    base = cc * hw + iy * w
                    for ix in range(q0, q1):
                        dst_old[base + ix] = dst[base + ix]
                        dst[base + ix] = _elementwise(code, src[base + ix])
        rect[r, 0] = r0
        rect[r, 1] = r1
        rect[r, 2] = q0
        rect[r, 3] = q1
    last = acts[aoff[n_inc - 1]:aoff[n_inc]]
    return _dot(lam, forward_rows(spec, params, last, n_inc, wa, wb))


@njit(cache=True)
def _restore_term(spec, n_inc, aoff, geo, acts, undo, rect):
    """Undo :func:`_propose_term` (copies the saved entries back, bit-exact)."""
    h = spec[0, 5]
    w = spec[0, 6]
    hw = h * w
    for r in range(n_inc):
        a = aoff[r]
        if spec[r, 0] == DENSE:
            for i in range(spec[r, 2]):
                acts[a + i] = undo[a + i]
            continue
        for cc in range(geo[r, 0]):
            for iy in range(rect[r, 0], rect[r, 1]):
                base = a + cc * hw + iy * w
                for ix in range(rect[r, 2], rect[r, 3]):
                    acts[base + ix] = undo[base + ix]


@njit(cache=True)
def _chain_pixels(c, spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                  n_sweeps, boundary, rng_state, accepted, wa, wb, wa2, wb2):
    d = x.shape[1]
    xc = x[c]
    n_inc, aoff, geo = _plan(spec)
    acts = np.empty(aoff[n_inc])
    undo = np.empty(aoff[n_inc])
    rect = np.zeros((n_inc, 4), np.int64)
    _rebuild(spec, params, xc, n_inc, aoff, acts)
    has_second = spec2.shape[0] > 0
    n_inc2, aoff2, geo2 = _plan(spec2)
    acts2 = np.empty(aoff2[n_inc2])
    undo2 = np.empty(aoff2[n_inc2])
    rect2 = np.zeros((max(n_inc2, 1), 4), np.int64)
    if n_inc2 > 0:
        _rebuild(spec2, params2, xc, n_inc2, aoff2, acts2)
    h = energy[c]
    n_acc = 0
    for _ in range(n_sweeps * d):
        j = min(int(uniform(rng_state, c) * d), d - 1)
        old = xc[j]
        yj, inside = _propose(old + step[c] * normal(rng_state, c), lo[j], hi[j], boundary)
        if not inside:
            continue
        xc[j] = yj  # own row only; restored below on rejection
        h_new = _propose_term(spec, params, lam, xc, old, j, n_inc, aoff, geo, acts, undo,
                              rect, wa, wb)
        if has_second:
            if n_inc2 > 0:
                h_new += _propose_term(spec2, params2, lam2, xc, old, j, n_inc2, aoff2, geo2,
                                       acts2, undo2, rect2, wa2, wb2)
            else:
                h_new += _dot(lam2, forward_rows(spec2, params2, xc, 0, wa2, wb2))
        if _accept(rng_state, c, h, h_new):
            h = h_new
            n_acc += 1
        else:
            xc[j] = old
            _restore_term(spec, n_inc, aoff, geo, acts, undo, rect)
            if n_inc2 > 0:
                _restore_term(spec2, n_inc2, aoff2, geo2, acts2, undo2, rect2)
    energy[c] = h
    accepted[c] += n_acc


@njit(parallel=True, cache=True)
def _single_pixel_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                         n_sweeps, boundary, rng_state, accepted):
    width = _max_width(spec)
    width2 = _max_width(spec2)
    for c in prange(x.shape[0]):
        wa = np.empty(width)
        wb = np.empty(width)
        wa2 = np.empty(width2)
        wb2 = np.empty(width2)
        _chain_pixels(c, spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                      n_sweeps, boundary, rng_state, accepted, wa, wb, wa2, wb2)


# --- Python entry points --------------------------------------------------------------------

def supports_incremental(spec):
    """Whether :func:`single_pixel_sweeps` can run ``spec`` (its first row is ``CONV2D``).

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)

    Returns
    -------
    bool
    """
    spec = np.asarray(spec)
    return spec.ndim == 2 and spec.shape[0] > 0 and int(spec[0, 0]) == CONV2D


def incremental_prefix(spec):
    """Number of leading rows of ``spec`` updated incrementally by single-pixel moves.

    CONV2D rows of one spatial shape and local elementwise rows (tanh, softplus, sigmoid,
    ReLU, square), closed by at most one DENSE row; the rows after it are evaluated in full
    from the DENSE output. 0 if the first row is not CONV2D.

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)

    Returns
    -------
    int
    """
    spec = np.ascontiguousarray(spec, dtype=np.int64)
    return int(_plan(spec)[0])


def _inplace(a, name, dtype, shape):
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape \
            or not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous {np.dtype(dtype).name} "
                         f"array of shape {shape} (updated in place)")


def single_pixel_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                        n_sweeps, boundary, rng_state, accepted):
    """Random-scan single-pixel Metropolis sweeps with incremental conv updates, in place.

    Same chain, draw order and arguments as
    ``metropolis_sweeps(..., move=MOVE_SINGLE, incremental=False)`` (up to the rounding of
    the energies, ~1e-14), at a per-proposal cost independent of the image size.

    Parameters
    ----------
    spec, params, lam : ndarrays
        First energy term; ``spec`` must start with a ``CONV2D`` row.
    spec2, params2, lam2 : ndarrays
        Second energy term (zero rows: absent). Incremental too when it starts with CONV2D.
    x : ndarray of float64, shape (n_chains, n_features)
        Chain states (flattened channel-major images) inside the box; updated in place.
    energy : ndarray of float64, shape (n_chains,)
        ``H(x)`` on entry; updated in place.
    lo, hi : array_like of float64, shape (n_features,) or scalars
        The box, e.g. pixels in ``[0, 1]``.
    step : array_like of float64, shape (n_chains,) or scalar
        Gaussian proposal std per chain.
    n_sweeps : int
        Sweeps of ``n_features`` proposals each.
    boundary : int
        ``BOUNDARY_REJECT`` (0) or ``BOUNDARY_REFLECT`` (1); reflection keeps chains from
        sticking at the faces where many pixels sit.
    rng_state : ndarray of uint64, shape (n_chains, 4)
        Per-chain xoshiro256** states, advanced in place.
    accepted : ndarray of int64, shape (n_chains,)
        Incremented by the accepted proposals.

    Returns
    -------
    None
    """
    if np.ndim(x) != 2:
        raise ValueError(f"x must be 2-D (n_chains, n_features), got shape {np.shape(x)}")
    n_chains, d = np.shape(x)
    _inplace(x, "x", np.float64, (n_chains, d))
    _inplace(energy, "energy", np.float64, (n_chains,))
    _inplace(rng_state, "rng_state", np.uint64, (n_chains, 4))
    _inplace(accepted, "accepted", np.int64, (n_chains,))
    spec, params, lam = _check_term(spec, params, lam, d, ("spec", "params", "lam"))
    spec2, params2, lam2 = _check_term(spec2, params2, lam2, d, ("spec2", "params2", "lam2"))
    if not supports_incremental(spec):
        raise ValueError("single_pixel_sweeps needs a spec whose first row is CONV2D")
    lo = np.ascontiguousarray(np.broadcast_to(np.asarray(lo, np.float64), (d,)))
    hi = np.ascontiguousarray(np.broadcast_to(np.asarray(hi, np.float64), (d,)))
    if not np.all(lo < hi):
        raise ValueError("the box needs lo < hi in every coordinate")
    step = np.ascontiguousarray(np.broadcast_to(np.asarray(step, np.float64), (n_chains,)))
    if boundary not in (BOUNDARY_REJECT, BOUNDARY_REFLECT):
        raise ValueError(f"boundary must be BOUNDARY_REJECT (0) or BOUNDARY_REFLECT (1), "
                         f"got {boundary!r}")
    n_sweeps = int(n_sweeps)
    if n_sweeps < 0:
        raise ValueError(f"n_sweeps must be non-negative, got {n_sweeps}")
    if n_chains == 0 or n_sweeps == 0:
        return
    _single_pixel_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                         n_sweeps, int(boundary), rng_state, accepted)
