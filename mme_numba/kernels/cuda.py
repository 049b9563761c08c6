"""CUDA twins of the CPU kernels: same random streams, same arithmetic order, same chains.

Importing this module imports :mod:`numba.cuda`; do it only through
:class:`mme_numba.cuda_backend.CUDABackend` (which checks that CUDA or the CUDA
simulator is usable first). Every device function below mirrors one function of
:mod:`~mme_numba.kernels.rng`, :mod:`~mme_numba.kernels.network`,
:mod:`~mme_numba.kernels.sampler` or :mod:`~mme_numba.kernels.mala` statement for
statement, so a chain advanced here draws the same numbers and takes the same accept
decisions as on the CPU. Floats may differ in the last bits: NVVM fuses multiply-adds (as
LLVM does where a CPU kernel allows contraction) and libdevice's ``exp``/``log``/``cos``
are not the C library's; ``tanh`` is the CPU's own polynomial
(:mod:`~mme_numba.kernels.fastmath`). The simulator (``NUMBA_ENABLE_CUDASIM=1``) runs the
device code as Python, without fusion.

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
"""

import math

import numpy as np
from numba import config, cuda

from .fastmath import (_EP0, _EP1, _EP2, _EQ0, _EQ1, _EQ2, _EQ3, _LN2_HI, _LN2_LO, _LOG2E,
                       _ROUND, _SMALL, _T_MAX, _TP0, _TP1, _TP2, _TQ0, _TQ1, _TQ2)
from .network import (CONV2D, DENSE, POWERS, RELU, SIGMOID, SOFTPLUS, SQUARE, TANH,
                      _check_term, max_width)
from .sampler import (BOUNDARY_REFLECT, BOUNDARY_REJECT, MOVE_ALL, MOVE_SINGLE,
                      _check_inplace)

__all__ = ["observables_batch", "energy_batch", "metropolis_sweeps", "mala_sweeps",
           "single_pixel_sweeps", "draw",
           "SCRATCH_BYTES", "THREADS_PER_BLOCK"]

SCRATCH_BYTES = 1 << 30
"""Upper bound on the global scratch one launch allocates (bytes)."""
THREADS_PER_BLOCK = 128

# ldexp's exponent: an int32 on the device; the simulator's math.ldexp wants a Python int.
_INT = int if config.ENABLE_CUDASIM else np.int32

_U5 = np.uint64(5)
_U7 = np.uint64(7)
_U9 = np.uint64(9)
_U11 = np.uint64(11)
_U17 = np.uint64(17)
_U45 = np.uint64(45)
_U64 = np.uint64(64)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53
_TWO_PI = 2.0 * math.pi
_DRAW_KINDS = {"u64": 0, "uniform": 1, "normal": 2}


# --- builtins ---------------------------------------------------------------------------
# numba 0.68's built-in CUDA target cannot compile the builtin min/max (a varargs overload),
# so these spell out Python's semantics: the first argument wins ties (and NaN first).

@cuda.jit(device=True)
def _min(a, b):
    return b if b < a else a


@cuda.jit(device=True)
def _max(a, b):
    return b if b > a else a


# --- random streams (mirror kernels/rng.py; state is one chain's uint64[4]) ----------

@cuda.jit(device=True)
def _rotl(x, k):
    return (x << k) | (x >> (_U64 - k))


@cuda.jit(device=True)
def _next_u64(st):
    s0 = st[0]
    s1 = st[1]
    s2 = st[2]
    s3 = st[3]
    result = _rotl(s1 * _U5, _U7) * _U9
    t = s1 << _U17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, _U45)
    st[0] = s0
    st[1] = s1
    st[2] = s2
    st[3] = s3
    return result


@cuda.jit(device=True)
def _uniform(st):
    return np.float64(_next_u64(st) >> _U11) * _TWO_M53


@cuda.jit(device=True)
def _normal(st):
    u1 = _uniform(st)
    u2 = _uniform(st)
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(_TWO_PI * u2)


# --- the spec interpreter, one input vector (mirror kernels/network.py) --------------

@cuda.jit(device=True)
def _tanh(z):
    # Twin of fastmath.tanh (the CPU's tanh), same operations in the same order; 2^k by
    # ldexp instead of building its bit pattern (exact either way).
    a = abs(z)
    a2 = a * a
    num_small = a2 * ((_TP0 * a2 + _TP1) * a2 + _TP2)
    den_small = ((a2 + _TQ0) * a2 + _TQ1) * a2 + _TQ2
    t = _min(a + a, _T_MAX)
    shifted = t * _LOG2E + _ROUND
    k = shifted - _ROUND
    r = t - k * _LN2_HI - k * _LN2_LO
    r2 = r * r
    p = r * ((_EP0 * r2 + _EP1) * r2 + _EP2)
    q = ((_EQ0 * r2 + _EQ1) * r2 + _EQ2) * r2 + _EQ3
    two_k = math.ldexp(1.0, _INT(k) if k == k else _INT(0))  # NaN in, NaN out
    q_minus_p = q - p
    small = a < _SMALL
    f = ((num_small if small else 2.0 * q_minus_p)
         / (den_small if small else two_k * (q + p) + q_minus_p))
    v = a + a * f if small else 1.0 - f
    return math.copysign(v, z)


@cuda.jit(device=True)
def _softplus(z):
    return _max(z, 0.0) + math.log1p(math.exp(-abs(z)))


@cuda.jit(device=True)
def _sigmoid(z):
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


# Addressing: a vector lives in a 3-D global array ``a`` as ``a[slot, offset + j, t]``
# (``t`` the thread's column), so one row function serves the ping-pong buffers of the
# forward pass and the stored activations of the MALA backward pass.

@cuda.jit(device=True)
def _dense(params, off, n_in, n_out, has_bias, src, si, so, dst, di, do, t):
    b_off = off + n_out * n_in
    for i in range(n_out):
        s = params[b_off + i] if has_bias else 0.0
        w = off + i * n_in
        for j in range(n_in):
            s += params[w + j] * src[si, so + j, t]
        dst[di, do + i, t] = s


@cuda.jit(device=True)
def _conv2d(params, off, c_in, h, w, k, c_out, src, si, so, dst, di, do, t):
    pad = k // 2
    b_off = off + c_out * c_in * k * k
    hw = h * w
    for co in range(c_out):
        bias = params[b_off + co]
        for y in range(h):
            ky0 = _max(0, pad - y)
            ky1 = _min(k, h + pad - y)
            for x in range(w):
                kx0 = _max(0, pad - x)
                kx1 = _min(k, w + pad - x)
                s = bias
                for ci in range(c_in):
                    w_ci = off + (co * c_in + ci) * k * k
                    s_ci = so + ci * hw
                    for ky in range(ky0, ky1):
                        row = s_ci + (y + ky - pad) * w
                        w_row = w_ci + ky * k
                        for kx in range(kx0, kx1):
                            s += params[w_row + kx] * src[si, row + x + kx - pad, t]
                dst[di, do + co * hw + y * w + x, t] = s


@cuda.jit(device=True)
def _logsoftmax(n, src, si, so, dst, di, do, t):
    m = src[si, so, t]
    for j in range(1, n):
        if src[si, so + j, t] > m:
            m = src[si, so + j, t]
    s = 0.0
    for j in range(n):
        s += math.exp(src[si, so + j, t] - m)
    shift = m + math.log(s)
    for j in range(n):
        dst[di, do + j, t] = src[si, so + j, t] - shift


@cuda.jit(device=True)
def _apply_row(spec, r, params, src, si, so, dst, di, do, t):
    """Row ``r`` of ``spec`` from ``src[si, so:, t]`` into ``dst[di, do:, t]``."""
    code = spec[r, 0]
    n_in = spec[r, 1]
    n_out = spec[r, 2]
    if code == DENSE:
        _dense(params, spec[r, 3], n_in, n_out, spec[r, 4] == 1, src, si, so, dst, di, do, t)
    elif code == CONV2D:
        _conv2d(params, spec[r, 3], spec[r, 4], spec[r, 5], spec[r, 6], spec[r, 7],
                n_out // (spec[r, 5] * spec[r, 6]), src, si, so, dst, di, do, t)
    elif code == TANH:
        for j in range(n_in):
            dst[di, do + j, t] = _tanh(src[si, so + j, t])
    elif code == SOFTPLUS:
        for j in range(n_in):
            dst[di, do + j, t] = _softplus(src[si, so + j, t])
    elif code == SIGMOID:
        for j in range(n_in):
            dst[di, do + j, t] = _sigmoid(src[si, so + j, t])
    elif code == RELU:
        for j in range(n_in):
            v = src[si, so + j, t]
            dst[di, do + j, t] = v if v > 0.0 else 0.0
    elif code == SQUARE:
        for j in range(n_in):
            v = src[si, so + j, t]
            dst[di, do + j, t] = v * v
    elif code == POWERS:
        degree = spec[r, 4]
        for j in range(n_in):
            v = src[si, so + j, t]
            pw = v
            for e in range(degree):
                dst[di, do + j * degree + e, t] = pw
                pw *= v
    else:  # LOGSOFTMAX (validate_spec rejects unknown codes)
        _logsoftmax(n_in, src, si, so, dst, di, do, t)


@cuda.jit(device=True)
def _forward(spec, params, buf, first_row, t):
    """Rows ``first_row ..`` on the input in ``buf[0, :, t]``; returns the output's buffer."""
    p = 0
    for r in range(first_row, spec.shape[0]):
        _apply_row(spec, r, params, buf, p, 0, buf, 1 - p, 0, t)
        p = 1 - p
    return p


@cuda.jit(device=True)
def _dot_out(spec, lam, buf, p, t):
    s = 0.0
    for k in range(spec[spec.shape[0] - 1, 2]):
        s += lam[k] * buf[p, k, t]
    return s


@cuda.jit(device=True)
def _load_row(x, c, buf, t):
    for k in range(x.shape[1]):
        buf[0, k, t] = x[c, k]


@cuda.jit(device=True)
def _energy_row(spec, params, lam, spec2, params2, lam2, x, c, buf, buf2, t):
    """``H(x[c]) = lam . O(x[c]) + lam2 . O2(x[c])`` (mirror of ``energy_one``)."""
    _load_row(x, c, buf, t)
    h = _dot_out(spec, lam, buf, _forward(spec, params, buf, 0, t), t)
    if spec2.shape[0] > 0:
        _load_row(x, c, buf2, t)
        h += _dot_out(spec2, lam2, buf2, _forward(spec2, params2, buf2, 0, t), t)
    return h


# --- Metropolis chains (mirror kernels/sampler.py) --------------------------------------

@cuda.jit(device=True)
def _propose(y, lo, hi, boundary):
    """Boundary rule for one coordinate; returns (value, inside). See ``sampler._reflect``."""
    if lo <= y <= hi:
        return y, True
    if boundary == BOUNDARY_REJECT:
        return y, False
    w = hi - lo
    if w <= 0.0:
        return lo, True
    # Python's floored ``%`` (what the CPU kernel uses), written with fmod: bit-identical.
    t = math.fmod(y - lo, 2.0 * w)
    if t < 0.0:
        t += 2.0 * w
    if t > w:
        t = 2.0 * w - t
    return _min(_max(lo + t, lo), hi), True


@cuda.jit(device=True)
def _accept(st, h_old, h_new):
    u = _uniform(st)
    # log(0) = -inf as on the CPU, spelled out (the simulator's math.log(0) raises).
    return (-math.inf if u == 0.0 else math.log(u)) < h_old - h_new


@cuda.jit(device=True)
def _chain_all(c, t, spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
               n_sweeps, boundary, st, buf, buf2, ybuf):
    d = x.shape[1]
    h = energy[c]
    n_acc = 0
    for _ in range(n_sweeps):
        inside = True
        for k in range(d):
            yk, ok = _propose(x[c, k] + step[c] * _normal(st), lo[k], hi[k], boundary)
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
                x[c, k] = ybuf[k, t]
            h = h_new
            n_acc += 1
    return h, n_acc


@cuda.jit(device=True)
def _chain_single(c, t, spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                  n_sweeps, boundary, st, buf, buf2):
    d = x.shape[1]
    h = energy[c]
    n_acc = 0
    for _ in range(n_sweeps * d):
        j = _min(int(_uniform(st) * d), d - 1)
        old = x[c, j]
        yj, inside = _propose(old + step[c] * _normal(st), lo[j], hi[j], boundary)
        if not inside:
            continue
        x[c, j] = yj  # own row only; restored below on rejection
        h_new = _energy_row(spec, params, lam, spec2, params2, lam2, x, c, buf, buf2, t)
        if _accept(st, h, h_new):
            h = h_new
            n_acc += 1
        else:
            x[c, j] = old
    return h, n_acc


@cuda.jit(device=True)
def _chain_single_dense(c, t, spec, params, lam, spec2, params2, lam2, x, energy, lo, hi,
                        step, n_sweeps, boundary, st, buf, buf2, zbuf):
    # First row DENSE: keep z = W x + b in zbuf[zi, :, t] and update it by one column of W
    # per proposal; the proposal's z' goes to zbuf[1 - zi] and to buf[0] (the input of
    # rows 1..). Accepting flips zi. As on the CPU, z is rebuilt from x at every call.
    d = x.shape[1]
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
    for _ in range(n_sweeps * d):
        j = _min(int(_uniform(st) * d), d - 1)
        old = x[c, j]
        yj, inside = _propose(old + step[c] * _normal(st), lo[j], hi[j], boundary)
        if not inside:
            continue
        dx = yj - old
        zn = 1 - zi
        for i in range(n_hid):
            v = zbuf[zi, i, t] + params[off + i * d + j] * dx
            zbuf[zn, i, t] = v
            buf[0, i, t] = v
        h_new = _dot_out(spec, lam, buf, _forward(spec, params, buf, 1, t), t)
        x[c, j] = yj  # own row only; restored below on rejection
        if has_second:
            _load_row(x, c, buf2, t)
            h_new += _dot_out(spec2, lam2, buf2, _forward(spec2, params2, buf2, 0, t), t)
        if _accept(st, h, h_new):
            h = h_new
            zi = zn
            n_acc += 1
        else:
            x[c, j] = old
    return h, n_acc


# --- single-pixel moves on conv observables (the draws of kernels/images.py) ----------------
# The first n_inc rows (CONV2D rows of one image shape and local elementwise rows, closed by
# at most one DENSE row: images.incremental_prefix) keep their outputs per chain in
# ``acts[0, :, t]`` (channel-major, row r after the previous rows' outputs). A proposal that
# changes pixel j adds each changed input's contribution to the conv window it reaches
# (the rectangle of changed entries grows by k // 2 per conv row), re-applies elementwise rows
# on the rectangle, updates the DENSE outputs by the changed entries, then runs the remaining
# rows in full. Every overwritten entry is saved in ``undo`` first; a rejection copies it
# back (bit-exact). The proposal and draw order are those of every single-coordinate move,
# so the chain is the CPU's up to the rounding of the energies (the CPU sums the same
# contributions in another memory order).

@cuda.jit(device=True)
def _elementwise(code, z):
    if code == TANH:
        return _tanh(z)
    if code == SOFTPLUS:
        return _softplus(z)
    if code == SIGMOID:
        return _sigmoid(z)
    if code == RELU:
        return z if z > 0.0 else 0.0
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
                            delta = x[c, j] - x_old
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
def _chain_pixels(c, t, spec, params, lam, n_inc, spec2, params2, lam2, n_inc2, x, energy,
                  lo, hi, step, n_sweeps, boundary, st, buf, buf2, acts, undo, acts2, undo2):
    d = x.shape[1]
    _pix_rebuild(spec, params, n_inc, x, c, buf, acts, t)
    has_second = spec2.shape[0] > 0
    if n_inc2 > 0:
        _pix_rebuild(spec2, params2, n_inc2, x, c, buf2, acts2, t)
    h = energy[c]
    n_acc = 0
    for _ in range(n_sweeps * d):
        j = _min(int(_uniform(st) * d), d - 1)
        old = x[c, j]
        yj, inside = _propose(old + step[c] * _normal(st), lo[j], hi[j], boundary)
        if not inside:
            continue
        x[c, j] = yj  # own row only; restored below on rejection
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
            x[c, j] = old
            _pix_restore(spec, n_inc, j, acts, undo, t)
            if n_inc2 > 0:
                _pix_restore(spec2, n_inc2, j, acts2, undo2, t)
    return h, n_acc


# --- MALA (mirror kernels/mala.py) -----------------------------------------------------------
# Per-thread scratch: ``vec (4, d, T)`` holds the chain's x, ∂H/∂x, the proposal y and ∂H/∂y
# (slots _X, _G, _Y, _GY); ``acts (1, n_act, T)`` every row's output of one term (row r at
# the sum of the previous rows' out_size); ``grads (2, width, T)`` the backward ping-pong.

_X, _G, _Y, _GY = 0, 1, 2, 3


@cuda.jit(device=True)
def _backward_row(spec, r, params, src, si, so, acts, oo, grads, gi, t):
    """``grads[1-gi] = (∂out/∂src)ᵀ grads[gi]`` for row ``r`` (output at ``acts[0, oo:]``)."""
    gj = 1 - gi
    code = spec[r, 0]
    n_in = spec[r, 1]
    n_out = spec[r, 2]
    off = spec[r, 3]
    if code == DENSE:
        for j in range(n_in):
            grads[gj, j, t] = 0.0
        for i in range(n_out):
            g = grads[gi, i, t]
            if g == 0.0:
                continue
            w = off + i * n_in
            for j in range(n_in):
                grads[gj, j, t] += params[w + j] * g
    elif code == CONV2D:
        c_in = spec[r, 4]
        h = spec[r, 5]
        w = spec[r, 6]
        k = spec[r, 7]
        pad = k // 2
        hw = h * w
        c_out = n_out // hw
        for j in range(n_in):
            grads[gj, j, t] = 0.0
        for co in range(c_out):
            for y in range(h):
                ky0 = _max(0, pad - y)
                ky1 = _min(k, h + pad - y)
                for x in range(w):
                    g = grads[gi, co * hw + y * w + x, t]
                    if g == 0.0:
                        continue
                    kx0 = _max(0, pad - x)
                    kx1 = _min(k, w + pad - x)
                    for ci in range(c_in):
                        w_ci = off + (co * c_in + ci) * k * k
                        s_ci = ci * hw
                        for ky in range(ky0, ky1):
                            d_row = s_ci + (y + ky - pad) * w + x - pad
                            w_row = w_ci + ky * k
                            for kx in range(kx0, kx1):
                                grads[gj, d_row + kx, t] += params[w_row + kx] * g
    elif code == TANH:
        for j in range(n_in):
            o = acts[0, oo + j, t]
            grads[gj, j, t] = grads[gi, j, t] * (1.0 - o * o)
    elif code == SOFTPLUS:
        for j in range(n_in):
            grads[gj, j, t] = grads[gi, j, t] * _sigmoid(src[si, so + j, t])
    elif code == SIGMOID:
        for j in range(n_in):
            o = acts[0, oo + j, t]
            grads[gj, j, t] = grads[gi, j, t] * o * (1.0 - o)
    elif code == RELU:
        for j in range(n_in):
            grads[gj, j, t] = grads[gi, j, t] if src[si, so + j, t] > 0.0 else 0.0
    elif code == SQUARE:
        for j in range(n_in):
            grads[gj, j, t] = 2.0 * src[si, so + j, t] * grads[gi, j, t]
    elif code == POWERS:
        degree = spec[r, 4]
        for j in range(n_in):
            v = src[si, so + j, t]
            s = 0.0
            p = 1.0  # v ** (q - 1)
            for q in range(1, degree + 1):
                s += grads[gi, j * degree + q - 1, t] * q * p
                p *= v
            grads[gj, j, t] = s
    else:  # LOGSOFTMAX: out = z - logsumexp(z)
        total = 0.0
        for j in range(n_in):
            total += grads[gi, j, t]
        for j in range(n_in):
            grads[gj, j, t] = grads[gi, j, t] - math.exp(acts[0, oo + j, t]) * total


@cuda.jit(device=True)
def _term_energy_grad(spec, params, lam, vec, xs, acts, grads, gs, accumulate, t):
    """``lam . O(x)`` with ``x = vec[xs]``; writes (or adds) ``lam . ∂O/∂x`` to ``vec[gs]``."""
    n_rows = spec.shape[0]
    o_prev = 0
    o_cur = 0
    for r in range(n_rows):
        if r == 0:
            _apply_row(spec, 0, params, vec, xs, 0, acts, 0, 0, t)
        else:
            _apply_row(spec, r, params, acts, 0, o_prev, acts, 0, o_cur, t)
        o_prev = o_cur
        o_cur += spec[r, 2]
    m = spec[n_rows - 1, 2]
    h = 0.0
    for i in range(m):
        h += lam[i] * acts[0, o_prev + i, t]
        grads[0, i, t] = lam[i]
    gi = 0
    o_out = o_prev  # output offset of row r
    for r in range(n_rows - 1, -1, -1):
        o_in = o_out - spec[r, 1]  # output offset of row r - 1 (unused for r == 0)
        if r == 0:
            _backward_row(spec, 0, params, vec, xs, 0, acts, o_out, grads, gi, t)
        else:
            _backward_row(spec, r, params, acts, 0, o_in, acts, o_out, grads, gi, t)
        gi = 1 - gi
        o_out = o_in
    if accumulate:
        for k in range(vec.shape[1]):
            vec[gs, k, t] += grads[gi, k, t]
    else:
        for k in range(vec.shape[1]):
            vec[gs, k, t] = grads[gi, k, t]
    return h


@cuda.jit(device=True)
def _energy_grad(spec, params, lam, spec2, params2, lam2, vec, xs, gs, acts, acts2, grads, t):
    """``H(x)`` and ``∂H/∂x`` into ``vec[gs]`` for ``x = vec[xs]`` (``energy_grad_one``)."""
    h = _term_energy_grad(spec, params, lam, vec, xs, acts, grads, gs, False, t)
    if spec2.shape[0] > 0:
        h += _term_energy_grad(spec2, params2, lam2, vec, xs, acts2, grads, gs, True, t)
    return h


@cuda.jit(device=True)
def _log_gauss_images(y, mu, eps, lo, hi, boundary):
    inv = 0.5 / (eps * eps)
    if boundary != BOUNDARY_REFLECT:
        return -(y - mu) * (y - mu) * inv
    w = hi - lo
    period = 2.0 * w
    n_side = int(10.0 * eps / period) + 2
    best = -math.inf
    for fam in range(2):
        base = y if fam == 0 else 2.0 * lo - y
        nc = int(math.floor((mu - base) / period + 0.5))
        for n in range(nc - n_side, nc + n_side + 1):
            z = base + n * period - mu
            e = -z * z * inv
            if e > best:
                best = e
    s = 0.0
    for fam in range(2):
        base = y if fam == 0 else 2.0 * lo - y
        nc = int(math.floor((mu - base) / period + 0.5))
        for n in range(nc - n_side, nc + n_side + 1):
            z = base + n * period - mu
            s += math.exp(-z * z * inv - best)
    return best + math.log(s)


@cuda.jit(device=True)
def _log_q(vec, ys, xs, gs, half, eps, lo, hi, boundary, t):
    s = 0.0
    for k in range(vec.shape[1]):
        s += _log_gauss_images(vec[ys, k, t], vec[xs, k, t] - half * vec[gs, k, t], eps,
                               lo[k], hi[k], boundary)
    return s


@cuda.jit(device=True)
def _chain_mala(c, t, spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                n_sweeps, boundary, st, vec, acts, acts2, grads):
    d = x.shape[1]
    for k in range(d):
        vec[_X, k, t] = x[c, k]
    _energy_grad(spec, params, lam, spec2, params2, lam2, vec, _X, _G, acts, acts2, grads, t)
    h = energy[c]
    eps = step[c]
    half = 0.5 * eps * eps
    n_acc = 0
    for _ in range(n_sweeps):
        inside = True
        for k in range(d):
            yk, ok = _propose(vec[_X, k, t] - half * vec[_G, k, t] + eps * _normal(st),
                              lo[k], hi[k], boundary)
            vec[_Y, k, t] = yk
            inside = inside and ok
        if not inside:
            continue
        h_y = _energy_grad(spec, params, lam, spec2, params2, lam2, vec, _Y, _GY, acts, acts2,
                           grads, t)
        log_ratio = (h - h_y + _log_q(vec, _X, _Y, _GY, half, eps, lo, hi, boundary, t)
                     - _log_q(vec, _Y, _X, _G, half, eps, lo, hi, boundary, t))
        u = _uniform(st)
        if (-math.inf if u == 0.0 else math.log(u)) < log_ratio:
            for k in range(d):
                vec[_X, k, t] = vec[_Y, k, t]
                vec[_G, k, t] = vec[_GY, k, t]
            h = h_y
            n_acc += 1
    for k in range(d):
        x[c, k] = vec[_X, k, t]
    return h, n_acc


# --- kernels -----------------------------------------------------------------------------

@cuda.jit(cache=True)
def _observables_kernel(spec, params, X, out, buf):
    t = cuda.grid(1)
    for i in range(t, X.shape[0], cuda.gridsize(1)):
        _load_row(X, i, buf, t)
        p = _forward(spec, params, buf, 0, t)
        for k in range(out.shape[1]):
            out[i, k] = buf[p, k, t]


@cuda.jit(cache=True)
def _energy_kernel(spec, params, lam, spec2, params2, lam2, X, out, buf, buf2):
    t = cuda.grid(1)
    for i in range(t, X.shape[0], cuda.gridsize(1)):
        out[i] = _energy_row(spec, params, lam, spec2, params2, lam2, X, i, buf, buf2, t)


@cuda.jit(cache=True)
def _sweep_kernel(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                  n_sweeps, move, boundary, rng_state, accepted, incremental,
                  buf, buf2, ybuf, zbuf):
    t = cuda.grid(1)
    st = cuda.local.array(4, np.uint64)
    for c in range(t, x.shape[0], cuda.gridsize(1)):
        for k in range(4):
            st[k] = rng_state[c, k]
        if move == MOVE_ALL:
            h, n_acc = _chain_all(c, t, spec, params, lam, spec2, params2, lam2, x, energy,
                                  lo, hi, step, n_sweeps, boundary, st, buf, buf2, ybuf)
        elif incremental:
            h, n_acc = _chain_single_dense(c, t, spec, params, lam, spec2, params2, lam2, x,
                                           energy, lo, hi, step, n_sweeps, boundary, st,
                                           buf, buf2, zbuf)
        else:
            h, n_acc = _chain_single(c, t, spec, params, lam, spec2, params2, lam2, x,
                                     energy, lo, hi, step, n_sweeps, boundary, st, buf, buf2)
        energy[c] = h
        accepted[c] += n_acc
        for k in range(4):
            rng_state[c, k] = st[k]


@cuda.jit(cache=True)
def _pixel_kernel(spec, params, lam, n_inc, spec2, params2, lam2, n_inc2, x, energy, lo, hi,
                  step, n_sweeps, boundary, rng_state, accepted, buf, buf2, acts, undo, acts2,
                  undo2):
    t = cuda.grid(1)
    st = cuda.local.array(4, np.uint64)
    for c in range(t, x.shape[0], cuda.gridsize(1)):
        for k in range(4):
            st[k] = rng_state[c, k]
        h, n_acc = _chain_pixels(c, t, spec, params, lam, n_inc, spec2, params2, lam2, n_inc2,
                                 x, energy, lo, hi, step, n_sweeps, boundary, st, buf, buf2,
                                 acts, undo, acts2, undo2)
        energy[c] = h
        accepted[c] += n_acc
        for k in range(4):
            rng_state[c, k] = st[k]


@cuda.jit(cache=True)
def _mala_kernel(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                 boundary, rng_state, accepted, vec, acts, acts2, grads):
    t = cuda.grid(1)
    st = cuda.local.array(4, np.uint64)
    for c in range(t, x.shape[0], cuda.gridsize(1)):
        for k in range(4):
            st[k] = rng_state[c, k]
        h, n_acc = _chain_mala(c, t, spec, params, lam, spec2, params2, lam2, x, energy, lo,
                               hi, step, n_sweeps, boundary, st, vec, acts, acts2, grads)
        energy[c] = h
        accepted[c] += n_acc
        for k in range(4):
            rng_state[c, k] = st[k]


@cuda.jit(cache=True)
def _draw_kernel(rng_state, kind, out_u64, out_f64):
    t = cuda.grid(1)
    st = cuda.local.array(4, np.uint64)
    for c in range(t, rng_state.shape[0], cuda.gridsize(1)):
        for k in range(4):
            st[k] = rng_state[c, k]
        for n in range(out_u64.shape[1]):
            if kind == 0:
                out_u64[c, n] = _next_u64(st)
            elif kind == 1:
                out_f64[c, n] = _uniform(st)
            else:
                out_f64[c, n] = _normal(st)
        for k in range(4):
            rng_state[c, k] = st[k]


# --- host side: launch geometry, scratch, copies -----------------------------------------

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


def _chain_args(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                boundary, rng_state, accepted):
    """The CPU samplers' argument checks; returns the normalized ``(spec, ..., n_sweeps)``."""
    x_shape = np.shape(x)
    if len(x_shape) != 2:
        raise ValueError(f"x must be 2-D (n_chains, n_features), got shape {x_shape}")
    n_chains, d = x_shape
    _check_inplace(x, "x", np.float64, (n_chains, d))
    _check_inplace(energy, "energy", np.float64, (n_chains,))
    _check_inplace(rng_state, "rng_state", np.uint64, (n_chains, 4))
    _check_inplace(accepted, "accepted", np.int64, (n_chains,))
    spec, params, lam = _check_term(spec, params, lam, d, ("spec", "params", "lam"))
    spec2, params2, lam2 = _check_term(spec2, params2, lam2, d, ("spec2", "params2", "lam2"))
    if spec.shape[0] == 0:
        raise ValueError("spec must have at least one row")
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
    return spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps


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
    copied to the device, advanced, and copied back into the same arrays.

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
    move : int
        ``MOVE_ALL`` (0) or ``MOVE_SINGLE`` (1).
    boundary : int
        ``BOUNDARY_REJECT`` (0) or ``BOUNDARY_REFLECT`` (1).
    rng_state : ndarray of uint64, shape (n_chains, 4)
        Per-chain xoshiro256** states; advanced in place.
    accepted : ndarray of int64, shape (n_chains,)
        Incremented in place by the number of accepted proposals.
    incremental : bool, optional
        Incremental first DENSE layer for ``MOVE_SINGLE`` (default), as on the CPU.

    Returns
    -------
    None
    """
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = _chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted)
    if move not in (MOVE_ALL, MOVE_SINGLE):
        raise ValueError(f"move must be MOVE_ALL (0) or MOVE_SINGLE (1), got {move!r}")
    if x.shape[0] == 0 or n_sweeps == 0:
        return
    d = x.shape[1]
    incremental = bool(incremental) and move == MOVE_SINGLE and spec[0, 0] == DENSE
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
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = _chain_args(
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
                        n_sweeps, boundary, rng_state, accepted):
    """Random-scan single-pixel sweeps with incremental conv updates, on the GPU, in place.

    Same contract and draws as :func:`mme_numba.kernels.images.single_pixel_sweeps`; the
    chain is the CPU's up to the rounding of the energies (~1e-14 relative).

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

    Returns
    -------
    None
    """
    from .images import incremental_prefix

    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = _chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted)
    n_inc, n_inc2 = incremental_prefix(spec), incremental_prefix(spec2)
    if n_inc == 0:
        raise ValueError("single_pixel_sweeps needs a spec whose first row is CONV2D")
    if x.shape[0] == 0 or n_sweeps == 0:
        return
    width, width2 = max_width(spec), max_width(spec2)
    n_act = int(spec[:n_inc, 2].sum())
    n_act2 = max(1, int(spec2[:n_inc2, 2].sum()))
    _run_chains(_pixel_kernel, 8 * (2 * width + 2 * width2 + 2 * n_act + 2 * n_act2),
                (spec, params, lam, np.int64(n_inc), spec2, params2, lam2, np.int64(n_inc2)),
                x, energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted, (),
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
