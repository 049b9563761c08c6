"""Metropolis chains and the batch kernels (mirror kernels/moves/box.py, kernels/moves/single.py and
kernels/moves/scan.py).

One GPU thread advances one chain (grid-stride over chains); the draw order is the CPU's.
The single-coordinate chains serve both scans: with ``scan`` false (``MOVE_SINGLE``) each
proposal draws its coordinate, ``j = floor(uniform() * d)``; with ``scan`` true
(``MOVE_SCAN``) proposal number ``it`` changes coordinate ``j = it mod d`` and draws no
coordinate. The rest (normal deviate, boundary rule, acceptance uniform only for a kept
proposal) is common. The CPU scan evaluates its normal deviate with
:mod:`~mme_numba.kernels.fastmath` (within 4e-16 of ``rng.normal``'s) and sums its incremental
updates in another order, so the two agree up to rounding.
"""

import numpy as np
from numba import cuda

from ..rng import next_u64, normal, uniform
from ...spec import CONV2D, DENSE, RELU, SIGMOID, SOFTPLUS, TANH
from .device import (_accept, _apply_row, _as_type_of, _dense, _dot_out, _energy_row, _forward,
                     _load_row, _max, _min, _propose, _sigmoid, _softplus, _tanh, chain_kernel)


@cuda.jit(device=True)
def _coordinate(st, it, d, scan):
    """Coordinate of proposal number ``it``: ``it mod d`` (systematic scan, no draw) or one
    uniform draw (random scan)."""
    if scan:
        return it % d
    return _min(int(uniform(st, 0) * d), d - 1)


@cuda.jit(device=True)
def _single_site_proposal(st, it, d, scan, x, c, step, lo, hi, boundary):
    """Proposal number ``it`` of chain ``c``: its coordinate, then a Gaussian step, then the
    box rule (the draw order of ``sampler._single_site_proposal`` and of the scan).
    Returns ``(j, old, new, inside)``."""
    j = _coordinate(st, it, d, scan)
    old = x[j, c]
    # float32 chains: the float64 proposal rounded once, then the box rule (as on the CPU)
    yj, inside = _propose(_as_type_of(old, old + step[c] * normal(st, 0)), lo[j], hi[j],
                          boundary)
    return j, old, _as_type_of(old, yj), inside


@cuda.jit(device=True)
def _chain_all(c, t, x, energy, st, args, scratch):
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps, boundary, _ = args
    buf, buf2, ybuf, _ = scratch
    d = x.shape[0]  # x is (d, n_chains) on the device: chain index fastest
    h = energy[c]
    n_acc = 0
    for _ in range(n_sweeps):
        inside = True
        for k in range(d):
            xk = x[k, c]
            yk, ok = _propose(_as_type_of(xk, xk + step[c] * normal(st, 0)), lo[k], hi[k],
                              boundary)
            ybuf[k, t] = yk
            inside = inside and ok
        if not inside:
            continue
        for k in range(d):
            buf[0, k, t] = ybuf[k, t]
        h_new = _dot_out(spec, lam, buf, _forward(spec, params, buf, 0, t), t)
        if spec2.shape[0] > 0:
            for k in range(d):
                buf2[0, k, t] = ybuf[k, t]
            h_new += _dot_out(spec2, lam2, buf2, _forward(spec2, params2, buf2, 0, t), t)
        if _accept(st, h, h_new):
            for k in range(d):
                x[k, c] = ybuf[k, t]
            h = h_new
            n_acc += 1
    return h, n_acc


@cuda.jit(device=True)
def _chain_single(c, t, x, energy, st, args, scratch):
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps, boundary, scan = args
    buf, buf2, _, _ = scratch
    d = x.shape[0]  # x is (d, n_chains) on the device: chain index fastest
    h = energy[c]
    n_acc = 0
    for it in range(n_sweeps * d):
        j, old, yj, inside = _single_site_proposal(st, it, d, scan, x, c, step, lo, hi,
                                                   boundary)
        if not inside:
            continue
        x[j, c] = yj  # own column only; restored below on rejection
        h_new = _energy_row(spec, params, lam, spec2, params2, lam2, x, c, buf, buf2, t)
        if _accept(st, h, h_new):
            h = h_new
            n_acc += 1
        else:
            x[j, c] = old
    return h, n_acc


@cuda.jit(device=True)
def _chain_single_dense(c, t, x, energy, st, args, scratch):
    # First row DENSE: keep z = W x + b in zbuf[zi, :, t] and update it by one column of W
    # per proposal; the proposal's z' goes to zbuf[1 - zi] and to buf[0] (the input of
    # rows 1..). Accepting flips zi. As on the CPU, z is rebuilt from x at every call.
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps, boundary, scan = args
    buf, buf2, _, zbuf = scratch
    d = x.shape[0]  # x is (d, n_chains) on the device: chain index fastest
    n_hid = spec[0, 2]
    off = spec[0, 3]
    has_bias = spec[0, 4] == 1
    _load_row(x, c, buf, t)
    _dense(params, off, d, n_hid, has_bias, buf, 0, 0, buf, 1, 0, t)
    for i in range(n_hid):
        zbuf[0, i, t] = buf[1, i, t]
    zi = 0
    has_second = spec2.shape[0] > 0
    h = energy[c]
    n_acc = 0
    for it in range(n_sweeps * d):
        j, old, yj, inside = _single_site_proposal(st, it, d, scan, x, c, step, lo, hi,
                                                   boundary)
        if not inside:
            continue
        dx = yj - old
        zn = 1 - zi
        for i in range(n_hid):
            v = zbuf[zi, i, t] + params[off + i * d + j] * dx
            zbuf[zn, i, t] = v
            buf[0, i, t] = v
        h_new = _dot_out(spec, lam, buf, _forward(spec, params, buf, 1, t), t)
        x[j, c] = yj  # own column only; restored below on rejection
        if has_second:
            _load_row(x, c, buf2, t)
            h_new += _dot_out(spec2, lam2, buf2, _forward(spec2, params2, buf2, 0, t), t)
        if _accept(st, h, h_new):
            h = h_new
            zi = zn
            n_acc += 1
        else:
            x[j, c] = old
    return h, n_acc


# --- single-pixel moves on conv observables (the draws of kernels/moves/single.py) -------
# The first n_inc rows (CONV2D rows of one image shape and local elementwise rows, closed by
# at most one DENSE row: images.incremental_prefix) keep their outputs per chain in
# ``acts[0, :, t]`` (channel-major, row r after the previous rows' outputs). A proposal that
# changes pixel j adds each changed input's contribution to the conv window it reaches
# (the rectangle of changed entries grows by k // 2 per conv row), re-applies elementwise rows
# on the rectangle, updates the DENSE outputs by the changed entries, then runs the remaining
# rows in full. Every overwritten entry is saved in ``undo`` first; a rejection copies it
# back (bit-exact). The proposal and draw order are those of every single-coordinate move,
# so the chain is the CPU's up to the rounding of the energies (the CPU sums the same
# contributions in another memory order): random scan that of images.single_pixel_sweeps,
# systematic scan (``scan``) that of scan.scan_sweeps.

@cuda.jit(device=True)
def _elementwise(code, z):
    if code == TANH:
        return _tanh(z)
    if code == SOFTPLUS:
        return _softplus(z)
    if code == SIGMOID:
        return _sigmoid(z)
    if code == RELU:
        return z if z > 0.0 else _as_type_of(z, 0.0)
    return z * z  # SQUARE


@cuda.jit(device=True)
def _pix_rebuild(spec, params, n_inc, x, c, buf, acts, t):
    """Full forward of the prefix rows from ``x[c]`` into ``acts``."""
    _load_row(x, c, buf, t)
    a_prev = 0
    a = 0
    for r in range(n_inc):
        if r == 0:
            _apply_row(spec, 0, params, buf, 0, 0, acts, 0, 0, t)
        else:
            _apply_row(spec, r, params, acts, 0, a_prev, acts, 0, a, t)
        a_prev = a
        a += spec[r, 2]


@cuda.jit(device=True)
def _pix_propose(spec, params, lam, n_inc, x, c, j, x_old, acts, undo, buf, t):
    """``lam . O(x[c])`` after pixel ``j`` of ``x[c]`` changed from ``x_old``; updates ``acts``."""
    h = spec[0, 5]
    w = spec[0, 6]
    hw = h * w
    ci = j // hw
    y = (j % hw) // w
    xx = j % w
    r0, r1, q0, q1 = y, y + 1, xx, xx + 1
    a_prev = 0
    a = 0
    for r in range(n_inc):
        code = spec[r, 0]
        n_out = spec[r, 2]
        if code == CONV2D:
            off = spec[r, 3]
            c_in = spec[r, 4]
            k = spec[r, 7]
            pad = k // 2
            c_out = n_out // hw
            s0, s1 = _max(0, r0 - pad), _min(h, r1 + pad)
            t0, t1 = _max(0, q0 - pad), _min(w, q1 + pad)
            for co in range(c_out):
                for oy in range(s0, s1):
                    for ox in range(t0, t1):
                        i = a + co * hw + oy * w + ox
                        undo[0, i, t] = acts[0, i, t]
            for cc in range(c_in):
                if r == 0 and cc != ci:
                    continue
                for iy in range(r0, r1):
                    for ix in range(q0, q1):
                        if r == 0:
                            delta = x[j, c] - x_old
                        else:
                            i = a_prev + cc * hw + iy * w + ix
                            delta = acts[0, i, t] - undo[0, i, t]
                        if delta == 0.0:
                            continue
                        for oy in range(_max(0, iy - pad), _min(h, iy + pad + 1)):
                            for ox in range(_max(0, ix - pad), _min(w, ix + pad + 1)):
                                wk = off + (cc * k + iy - oy + pad) * k + ix - ox + pad
                                o = a + oy * w + ox
                                for co in range(c_out):
                                    acts[0, o + co * hw, t] += params[wk + co * c_in * k * k] \
                                        * delta
            r0, r1, q0, q1 = s0, s1, t0, t1
        elif code == DENSE:  # closes the prefix (r > 0)
            off = spec[r, 3]
            n_in = spec[r, 1]
            for i in range(n_out):
                undo[0, a + i, t] = acts[0, a + i, t]
            for cc in range(n_in // hw):
                for iy in range(r0, r1):
                    for ix in range(q0, q1):
                        q = cc * hw + iy * w + ix
                        delta = acts[0, a_prev + q, t] - undo[0, a_prev + q, t]
                        if delta == 0.0:
                            continue
                        for i in range(n_out):
                            acts[0, a + i, t] += params[off + i * n_in + q] * delta
        else:  # local elementwise: recompute the rectangle from its updated input
            for ch in range(n_out // hw):
                for iy in range(r0, r1):
                    for ix in range(q0, q1):
                        q = ch * hw + iy * w + ix
                        undo[0, a + q, t] = acts[0, a + q, t]
                        acts[0, a + q, t] = _elementwise(code, acts[0, a_prev + q, t])
        a_prev = a
        a += n_out
    for k in range(spec[n_inc - 1, 2]):
        buf[0, k, t] = acts[0, a_prev + k, t]
    return _dot_out(spec, lam, buf, _forward(spec, params, buf, n_inc, t), t)


@cuda.jit(device=True)
def _pix_restore(spec, n_inc, j, acts, undo, t):
    """Undo :func:`_pix_propose` (the same rectangles, recomputed from ``j``)."""
    h = spec[0, 5]
    w = spec[0, 6]
    hw = h * w
    y = (j % hw) // w
    xx = j % w
    r0, r1, q0, q1 = y, y + 1, xx, xx + 1
    a = 0
    for r in range(n_inc):
        n_out = spec[r, 2]
        if spec[r, 0] == DENSE:
            for i in range(n_out):
                acts[0, a + i, t] = undo[0, a + i, t]
        else:
            if spec[r, 0] == CONV2D:
                pad = spec[r, 7] // 2
                r0, r1 = _max(0, r0 - pad), _min(h, r1 + pad)
                q0, q1 = _max(0, q0 - pad), _min(w, q1 + pad)
            for ch in range(n_out // hw):
                for iy in range(r0, r1):
                    for ix in range(q0, q1):
                        q = a + ch * hw + iy * w + ix
                        acts[0, q, t] = undo[0, q, t]
        a += n_out


@cuda.jit(device=True)
def _chain_pixels(c, t, x, energy, st, args, scratch):
    (spec, params, lam, n_inc, spec2, params2, lam2, n_inc2, lo, hi, step, n_sweeps, boundary,
     scan) = args
    buf, buf2, acts, undo, acts2, undo2 = scratch
    d = x.shape[0]  # x is (d, n_chains) on the device: chain index fastest
    _pix_rebuild(spec, params, n_inc, x, c, buf, acts, t)
    has_second = spec2.shape[0] > 0
    if n_inc2 > 0:
        _pix_rebuild(spec2, params2, n_inc2, x, c, buf2, acts2, t)
    h = energy[c]
    n_acc = 0
    for it in range(n_sweeps * d):
        j, old, yj, inside = _single_site_proposal(st, it, d, scan, x, c, step, lo, hi,
                                                   boundary)
        if not inside:
            continue
        x[j, c] = yj  # own column only; restored below on rejection
        h_new = _pix_propose(spec, params, lam, n_inc, x, c, j, old, acts, undo, buf, t)
        if has_second:
            if n_inc2 > 0:
                h_new += _pix_propose(spec2, params2, lam2, n_inc2, x, c, j, old, acts2, undo2,
                                      buf2, t)
            else:
                _load_row(x, c, buf2, t)
                h_new += _dot_out(spec2, lam2, buf2, _forward(spec2, params2, buf2, 0, t), t)
        if _accept(st, h, h_new):
            h = h_new
            n_acc += 1
        else:
            x[j, c] = old
            _pix_restore(spec, n_inc, j, acts, undo, t)
            if n_inc2 > 0:
                _pix_restore(spec2, n_inc2, j, acts2, undo2, t)
    return h, n_acc


# --- kernels -----------------------------------------------------------------------------

@cuda.jit
def _observables_kernel(spec, params, X, out, buf):
    t = cuda.grid(1)
    n_t = buf.shape[2]  # threads that own a scratch column: the stride
    if t >= n_t:
        return
    i = t
    while i < X.shape[1]:  # a while loop: range() with a run-time step costs ~18 registers
        _load_row(X, i, buf, t)
        p = _forward(spec, params, buf, 0, t)
        for k in range(out.shape[0]):
            out[k, i] = buf[p, k, t]  # (m, n): coalesced
        i += n_t


@cuda.jit
def _energy_kernel(spec, params, lam, spec2, params2, lam2, X, out, buf, buf2):
    t = cuda.grid(1)
    n_t = buf.shape[2]
    if t >= n_t:
        return
    i = t
    while i < X.shape[1]:  # a while loop: range() with a run-time step costs ~18 registers
        out[i] = _energy_row(spec, params, lam, spec2, params2, lam2, X, i, buf, buf2, t)
        i += n_t


_sweep_all_kernel = chain_kernel(_chain_all)
_sweep_dense_kernel = chain_kernel(_chain_single_dense)
_sweep_single_kernel = chain_kernel(_chain_single)
_pixel_kernel = chain_kernel(_chain_pixels)


@cuda.jit
def _draw_kernel(rng_state, kind, out_u64, out_f64):
    t = cuda.grid(1)
    st = cuda.local.array((1, 4), np.uint64)  # a local copy, as in device.chain_kernel
    for c in range(t, rng_state.shape[0], cuda.gridsize(1)):
        for k in range(4):
            st[0, k] = rng_state[c, k]
        for n in range(out_u64.shape[1]):
            if kind == 0:
                out_u64[c, n] = next_u64(st, 0)
            elif kind == 1:
                out_f64[c, n] = uniform(st, 0)
            else:
                out_f64[c, n] = normal(st, 0)
        for k in range(4):
            rng_state[c, k] = st[0, k]
