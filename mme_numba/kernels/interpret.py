"""One compiled interpreter for every network architecture.

A network reaches the kernels as an int64 ``spec (n_rows, 8)`` (one row per
operation, ``[code, in_size, out_size, param_offset, a, b, c, d]``, see
``docs/architecture.md`` section 2) and one flat float64 parameter vector.
:func:`forward_one` walks the rows for one input vector, ping-ponging between
two scratch buffers of length :func:`max_width`. :func:`forward_lockstep` does the same
for a block of inputs at once, activations laid out ``(width, lanes)`` with the input
index innermost so that every loop vectorizes; each lane gets exactly the arithmetic of
:func:`forward_one`, so the two agree bit for bit. The batch kernels and the sampler run
lock-step blocks in parallel (see ``docs/performance.md``).

Energy convention of the batch and sampler kernels::

    H(x) = lam . O(x) + lam2 . O2(x)

where ``O`` is the output of ``(spec, params)`` and ``O2`` of ``(spec2, params2)``.
The second term is absent when ``spec2`` has zero rows (see :func:`empty_term`);
it carries steering fields such as ``-h log P_clf(c | x)`` (a LOGSOFTMAX head with
``lam2 = -h * onehot(c)``).
"""

import contextlib
import math

import numba
import numpy as np
from numba import njit, prange

from .. import settings
from ..spec import DTYPES, kernel_dtype
from ..spec import (CONV2D, DENSE, LOGSOFTMAX, POWERS, RELU, SIGMOID, SOFTPLUS, SPEC_WIDTH,
                    SQUARE, TANH, empty_term, validate_spec)
from .fastmath import tanh_any as _fast_tanh

__all__ = [
    "DENSE", "CONV2D", "TANH", "SOFTPLUS", "SIGMOID", "RELU", "SQUARE", "POWERS",
    "LOGSOFTMAX", "SPEC_WIDTH", "forward_one", "observables_batch", "energy_batch",
    "max_width", "validate_spec", "empty_term", "forward_rows", "energy_one",
    "forward_lockstep", "energy_lockstep", "lockstep_scratch", "lanes_for", "check_terms",
    "dynamic_schedule", "DTYPES", "kernel_dtype",
]


# --- elementwise activations --------------------------------------------------------
# Small scalar helpers: LLVM inlines them into the loops below, and a faster exact
# version (or a CUDA twin) can be swapped in at one place.

@njit(cache=True, error_model="numpy")
def _tanh(z):
    # Exact (5e-16 relative) and vectorizable; libm tanh was most of the sampler's time.
    # A float32 argument gets fastmath.tanh32, float32 arithmetic throughout (3e-7).
    return _fast_tanh(z)


@njit(cache=True)
def _softplus(z):
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): never overflows, exact for large |z|.
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


@njit(cache=True)
def _sigmoid(z):
    # Branch so that exp never overflows.
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True)
def _relu(z):
    return z if z > 0.0 else 0.0


# --- one row --------------------------------------------------------------------------

@njit(cache=True)
def _dense(params, off, n_in, n_out, has_bias, src, dst):
    b_off = off + n_out * n_in
    for i in range(n_out):
        s = params[b_off + i] if has_bias else 0.0
        w = off + i * n_in
        for j in range(n_in):
            s += params[w + j] * src[j]
        dst[i] = s


@njit(cache=True)
def _conv2d(params, off, c_in, h, w, k, c_out, src, dst):
    # Stride 1, zero "same" padding k // 2, input/output flattened (C, H, W).
    pad = k // 2
    b_off = off + c_out * c_in * k * k
    hw = h * w
    for co in range(c_out):
        bias = params[b_off + co]
        for y in range(h):
            ky0 = max(0, pad - y)
            ky1 = min(k, h + pad - y)
            for x in range(w):
                kx0 = max(0, pad - x)
                kx1 = min(k, w + pad - x)
                s = bias
                for ci in range(c_in):
                    w_ci = off + (co * c_in + ci) * k * k
                    s_ci = ci * hw
                    for ky in range(ky0, ky1):
                        row = s_ci + (y + ky - pad) * w
                        w_row = w_ci + ky * k
                        for kx in range(kx0, kx1):
                            s += params[w_row + kx] * src[row + x + kx - pad]
                dst[co * hw + y * w + x] = s


@njit(cache=True)
def _powers(n_in, degree, src, dst):
    for j in range(n_in):
        v = src[j]
        p = v
        for q in range(degree):
            dst[j * degree + q] = p
            p *= v


@njit(cache=True)
def _logsoftmax(n, src, dst):
    m = src[0]
    for j in range(1, n):
        if src[j] > m:
            m = src[j]
    s = 0.0
    for j in range(n):
        s += math.exp(src[j] - m)
    shift = m + math.log(s)
    for j in range(n):
        dst[j] = src[j] - shift


@njit(cache=True)
def is_elementwise(code):
    """Whether ``code`` is a row that :func:`elementwise` computes entry by entry."""
    return code == TANH or code == SOFTPLUS or code == SIGMOID or code == RELU \
        or code == SQUARE


@njit(cache=True)
def elementwise(code, src, dst, p0, p1):
    """``dst[p] = act(src[p])`` for ``p0 <= p < p1``, ``act`` the elementwise row ``code``
    (tanh, softplus, sigmoid, ReLU, square): one loop per activation, so each vectorizes."""
    if code == TANH:
        for p in range(p0, p1):
            dst[p] = _tanh(src[p])
    elif code == SOFTPLUS:
        for p in range(p0, p1):
            dst[p] = _softplus(src[p])
    elif code == SIGMOID:
        for p in range(p0, p1):
            dst[p] = _sigmoid(src[p])
    elif code == RELU:
        for p in range(p0, p1):
            dst[p] = _relu(src[p])
    else:  # SQUARE
        for p in range(p0, p1):
            dst[p] = src[p] * src[p]


@njit(cache=True)
def _apply_row(row, params, src, dst):
    code = row[0]
    n_in = row[1]
    n_out = row[2]
    if code == DENSE:
        _dense(params, row[3], n_in, n_out, row[4] == 1, src, dst)
    elif code == CONV2D:
        _conv2d(params, row[3], row[4], row[5], row[6], row[7],
                n_out // (row[5] * row[6]), src, dst)
    elif is_elementwise(code):
        elementwise(code, src, dst, 0, n_in)
    elif code == POWERS:
        _powers(n_in, row[4], src, dst)
    else:  # LOGSOFTMAX (validate_spec rejects unknown codes)
        _logsoftmax(n_in, src, dst)


# --- whole network --------------------------------------------------------------------

@njit(cache=True)
def forward_rows(spec, params, x, first_row, work_a, work_b):
    """Evaluate rows ``first_row ..`` of ``spec`` on ``x``; see :func:`forward_one`.

    ``x`` must not alias ``work_a`` or ``work_b``. Used by the sampler to restart
    the network after an incrementally updated first layer.
    """
    cur = x[:x.shape[0]]
    use_a = True
    for r in range(first_row, spec.shape[0]):
        dst = work_a if use_a else work_b
        _apply_row(spec[r], params, cur, dst)
        cur = dst[:spec[r, 2]]
        use_a = not use_a
    return cur


@njit(cache=True)
def forward_one(spec, params, x, work_a, work_b):
    """Evaluate the network ``(spec, params)`` on one input vector.

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)
        Network description (validated with :func:`validate_spec`).
    params : ndarray of float64, shape (n_params,)
    x : ndarray of float64, shape (n_features,)
        Input; not modified and must not alias the scratch buffers.
    work_a, work_b : ndarray of float64, shape (>= max_width(spec),)
        Scratch buffers, overwritten.

    Returns
    -------
    ndarray of float64, shape (n_observables,)
        A view into ``work_a`` or ``work_b`` (``x`` itself if ``spec`` has no rows);
        copy it before reusing the buffers.
    """
    return forward_rows(spec, params, x, 0, work_a, work_b)


@njit(cache=True)
def _max_width(spec):
    w = 1
    for r in range(spec.shape[0]):
        w = max(w, spec[r, 1], spec[r, 2])
    return w


@njit(cache=True)
def _dot(lam, out):
    s = 0.0
    for k in range(out.shape[0]):
        s += lam[k] * out[k]
    return s


@njit(cache=True)
def energy_one(spec, params, lam, spec2, params2, lam2, x, wa, wb, wa2, wb2):
    """``H(x) = lam . O(x) + lam2 . O2(x)`` for one vector ``x (n_features,)``.

    The second term is skipped when ``spec2`` has no rows. ``wa, wb`` (``wa2, wb2``) are
    scratch buffers of length ``max_width(spec)`` (``max_width(spec2)``).
    """
    h = _dot(lam, forward_rows(spec, params, x, 0, wa, wb))
    if spec2.shape[0] > 0:
        h += _dot(lam2, forward_rows(spec2, params2, x, 0, wa2, wb2))
    return h


# --- lock-step evaluation: several inputs at once, input index innermost --------------
# Activations are (width, lanes) arrays: row j holds activation j of every lane. Each
# loop below runs over lanes innermost, so LLVM turns it into SIMD code, and every lane
# gets exactly the arithmetic of the one-input functions above (same operations, same
# order, no contraction into fused multiply-adds): a lock-step result is bit-identical to
# forward_rows / energy_one on that input, whatever the number of lanes.

@njit(cache=True)
def _dense_row_ls(params, w, bias, n_in, src, z):
    # one output row: z = bias, then += w_j * src_j for j in order (the order of _dense)
    n_lanes = src.shape[1]
    for lane in range(n_lanes):
        z[lane] = bias
    for j in range(n_in):
        wj = params[w + j]
        a = src[j]
        for lane in range(n_lanes):
            z[lane] += wj * a[lane]


@njit(cache=True)
def _dense_ls(params, off, n_in, n_out, has_bias, src, dst):
    # Register blocking: four output rows and four inputs per pass, so each loaded input
    # vector serves four rows and each accumulator load/store serves four inputs. Sums
    # stay left to right in j, the order of _dense.
    n_lanes = src.shape[1]
    b_off = off + n_out * n_in
    i = 0
    while i + 4 <= n_out:
        z0, z1, z2, z3 = dst[i], dst[i + 1], dst[i + 2], dst[i + 3]
        r0 = off + i * n_in
        r1 = r0 + n_in
        r2 = r1 + n_in
        r3 = r2 + n_in
        b0 = params[b_off + i] if has_bias else 0.0
        b1 = params[b_off + i + 1] if has_bias else 0.0
        b2 = params[b_off + i + 2] if has_bias else 0.0
        b3 = params[b_off + i + 3] if has_bias else 0.0
        for lane in range(n_lanes):
            z0[lane] = b0
            z1[lane] = b1
            z2[lane] = b2
            z3[lane] = b3
        j = 0
        while j + 4 <= n_in:
            a0, a1, a2, a3 = src[j], src[j + 1], src[j + 2], src[j + 3]
            u0, u1, u2, u3 = params[r0 + j], params[r0 + j + 1], params[r0 + j + 2], params[r0 + j + 3]
            v0, v1, v2, v3 = params[r1 + j], params[r1 + j + 1], params[r1 + j + 2], params[r1 + j + 3]
            s0, s1, s2, s3 = params[r2 + j], params[r2 + j + 1], params[r2 + j + 2], params[r2 + j + 3]
            t0, t1, t2, t3 = params[r3 + j], params[r3 + j + 1], params[r3 + j + 2], params[r3 + j + 3]
            for lane in range(n_lanes):
                x0 = a0[lane]
                x1 = a1[lane]
                x2 = a2[lane]
                x3 = a3[lane]
                z0[lane] = z0[lane] + u0 * x0 + u1 * x1 + u2 * x2 + u3 * x3
                z1[lane] = z1[lane] + v0 * x0 + v1 * x1 + v2 * x2 + v3 * x3
                z2[lane] = z2[lane] + s0 * x0 + s1 * x1 + s2 * x2 + s3 * x3
                z3[lane] = z3[lane] + t0 * x0 + t1 * x1 + t2 * x2 + t3 * x3
            j += 4
        while j < n_in:
            a = src[j]
            u, v, s, t = params[r0 + j], params[r1 + j], params[r2 + j], params[r3 + j]
            for lane in range(n_lanes):
                x = a[lane]
                z0[lane] += u * x
                z1[lane] += v * x
                z2[lane] += s * x
                z3[lane] += t * x
            j += 1
        i += 4
    while i < n_out:
        _dense_row_ls(params, off + i * n_in, params[b_off + i] if has_bias else 0.0, n_in,
                      src, dst[i])
        i += 1


@njit(cache=True)
def _conv2d_pixel4_ls(params, w0, step, bias, c_in, kk, k, hw, w, row0, ky0, ky1, kx0, kx1,
                      src, z0, z1, z2, z3):
    # One output pixel of four consecutive output channels (weights w0 + q * step), taps
    # in the order of _conv2d (ci, ky, kx). Three taps per pass: one accumulator load and
    # store serve three multiply-adds and each input vector feeds four channels.
    n_lanes = src.shape[1]
    for lane in range(n_lanes):
        z0[lane] = bias[0]
        z1[lane] = bias[1]
        z2[lane] = bias[2]
        z3[lane] = bias[3]
    for ci in range(c_in):
        for ky in range(ky0, ky1):
            row = ci * hw + row0 + ky * w
            wk = w0 + ci * kk + ky * k
            kx = kx0
            while kx + 3 <= kx1:
                a, b, c = src[row + kx], src[row + kx + 1], src[row + kx + 2]
                p0, p1, p2, p3 = wk + kx, wk + kx + step, wk + kx + 2 * step, wk + kx + 3 * step
                u0, u1, u2 = params[p0], params[p0 + 1], params[p0 + 2]
                v0, v1, v2 = params[p1], params[p1 + 1], params[p1 + 2]
                s0, s1, s2 = params[p2], params[p2 + 1], params[p2 + 2]
                t0, t1, t2 = params[p3], params[p3 + 1], params[p3 + 2]
                for lane in range(n_lanes):
                    xa = a[lane]
                    xb = b[lane]
                    xc = c[lane]
                    z0[lane] = z0[lane] + u0 * xa + u1 * xb + u2 * xc
                    z1[lane] = z1[lane] + v0 * xa + v1 * xb + v2 * xc
                    z2[lane] = z2[lane] + s0 * xa + s1 * xb + s2 * xc
                    z3[lane] = z3[lane] + t0 * xa + t1 * xb + t2 * xc
                kx += 3
            while kx < kx1:
                a = src[row + kx]
                p0 = wk + kx
                u, v, t, r = (params[p0], params[p0 + step], params[p0 + 2 * step],
                              params[p0 + 3 * step])
                for lane in range(n_lanes):
                    xa = a[lane]
                    z0[lane] += u * xa
                    z1[lane] += v * xa
                    z2[lane] += t * xa
                    z3[lane] += r * xa
                kx += 1


@njit(cache=True)
def _conv2d_ls(params, off, c_in, h, w, k, c_out, src, dst):
    n_lanes = src.shape[1]
    pad = k // 2
    kk = k * k
    b_off = off + c_out * c_in * kk
    hw = h * w
    bias = np.empty(4, params.dtype)
    co = 0
    while co < c_out:
        n_co = min(4, c_out - co)
        for q in range(4):
            bias[q] = params[b_off + co + q] if q < n_co else 0.0
        for y in range(h):
            ky0 = max(0, pad - y)
            ky1 = min(k, h + pad - y)
            for x in range(w):
                kx0 = max(0, pad - x)
                kx1 = min(k, w + pad - x)
                pix = y * w + x
                if n_co == 4:
                    _conv2d_pixel4_ls(params, off + co * c_in * kk, c_in * kk, bias, c_in, kk,
                                      k, hw, w, (y - pad) * w + x - pad, ky0, ky1, kx0, kx1,
                                      src, dst[co * hw + pix], dst[(co + 1) * hw + pix],
                                      dst[(co + 2) * hw + pix], dst[(co + 3) * hw + pix])
                    continue
                for q in range(n_co):           # the last 1..3 channels, tap by tap
                    z = dst[(co + q) * hw + pix]
                    for lane in range(n_lanes):
                        z[lane] = bias[q]
                    for ci in range(c_in):
                        w_ci = off + ((co + q) * c_in + ci) * kk
                        for ky in range(ky0, ky1):
                            row = ci * hw + (y + ky - pad) * w
                            for kx in range(kx0, kx1):
                                wt = params[w_ci + ky * k + kx]
                                a = src[row + x + kx - pad]
                                for lane in range(n_lanes):
                                    z[lane] += wt * a[lane]
        co += n_co


@njit(cache=True)
def _logsoftmax_ls(n, src, dst, tmp):
    n_lanes = src.shape[1]
    m = tmp[0]
    s = tmp[1]
    for lane in range(n_lanes):
        m[lane] = src[0, lane]
        s[lane] = 0.0
    for j in range(1, n):
        a = src[j]
        for lane in range(n_lanes):
            if a[lane] > m[lane]:
                m[lane] = a[lane]
    for j in range(n):
        a = src[j]
        for lane in range(n_lanes):
            s[lane] += math.exp(a[lane] - m[lane])
    for lane in range(n_lanes):
        m[lane] = m[lane] + math.log(s[lane])        # the shift
    for j in range(n):
        a = src[j]
        b = dst[j]
        for lane in range(n_lanes):
            b[lane] = a[lane] - m[lane]


@njit(cache=True, error_model="numpy")
def _elementwise_ls(code, src, s0, dst, d0, n):
    """``dst[d0 + i] = act(src[s0 + i])`` for ``i < n``, rows of ``(rows, lanes)`` arrays.

    One loop per activation so each vectorizes. The rows must not overlap partially; an
    exact in-place call (``src is dst``, ``s0 == d0``) is correct but fails LLVM's runtime
    alias check and runs scalar.
    """
    n_lanes = src.shape[1]
    for i in range(n):
        elementwise(code, src[s0 + i], dst[d0 + i], 0, n_lanes)


@njit(cache=True, error_model="numpy")
def _apply_row_ls(row, params, src, dst, tmp):
    code = row[0]
    n_in = row[1]
    n_out = row[2]
    n_lanes = src.shape[1]
    if code == DENSE:
        _dense_ls(params, row[3], n_in, n_out, row[4] == 1, src, dst)
    elif code == CONV2D:
        _conv2d_ls(params, row[3], row[4], row[5], row[6], row[7],
                   n_out // (row[5] * row[6]), src, dst)
    elif code == POWERS:
        degree = row[4]
        for j in range(n_in):
            a = src[j]
            for lane in range(n_lanes):
                v = a[lane]
                p = v
                for q in range(degree):
                    dst[j * degree + q, lane] = p
                    p *= v
    elif code == LOGSOFTMAX:
        _logsoftmax_ls(n_in, src, dst, tmp)
    else:  # elementwise
        _elementwise_ls(code, src, 0, dst, 0, n_in)


@njit(cache=True)
def forward_lockstep(spec, params, x, first_row, work_a, work_b, tmp):
    """Evaluate rows ``first_row ..`` of ``spec`` on several inputs at once.

    Lane ``l`` of the result is bit-identical to ``forward_rows(spec, params, x[:, l],
    first_row, ...)``; the lanes only let the loops vectorize.

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)
    params : ndarray of float64, shape (n_params,)
    x : ndarray of float64, shape (>= n_in, n_lanes)
        Column ``l`` is input ``l`` (the first ``spec[first_row, 1]`` rows are read); must
        not alias the scratch buffers.
    first_row : int
    work_a, work_b : ndarray of float64, shape (>= max_width(spec), n_lanes)
        Scratch buffers, overwritten.
    tmp : ndarray of float64, shape (2, n_lanes)
        Scratch, overwritten.

    Returns
    -------
    ndarray of float64, shape (>= n_outputs, n_lanes)
        A view into ``work_a`` or ``work_b`` (``x`` if no rows run); rows ``0 ..
        n_outputs - 1`` hold the outputs.
    """
    cur = x
    use_a = True
    for r in range(first_row, spec.shape[0]):
        dst = work_a if use_a else work_b
        _apply_row_ls(spec[r], params, cur, dst, tmp)
        cur = dst
        use_a = not use_a
    return cur


@njit(cache=True)
def _dot_ls(lam, out, h):
    # h[l] = lam . out[:, l], summed in the order of _dot
    n_lanes = h.shape[0]
    for lane in range(n_lanes):
        h[lane] = 0.0
    for k in range(lam.shape[0]):
        lk = lam[k]
        o = out[k]
        for lane in range(n_lanes):
            h[lane] += lk * o[lane]


@njit(cache=True)
def energy_lockstep(spec, params, lam, spec2, params2, lam2, x, first_row, x2, scratch, h):
    """``H = lam . O + lam2 . O2`` of several inputs at once; lane-wise equal to :func:`energy_one`.

    Parameters
    ----------
    spec, params, lam, spec2, params2, lam2 : ndarrays
        The two energy terms (``spec2`` with no rows: no second term).
    x : ndarray of float64, shape (>= n_in, n_lanes)
        Input of row ``first_row`` of ``spec`` (the features when ``first_row == 0``).
    first_row : int
        Rows of ``spec`` before it have already been applied (incremental first layers).
    x2 : ndarray of float64, shape (n_features, n_lanes)
        Input of ``spec2`` (the features); unused without a second term.
    scratch : ndarray of float64, shape (5, max(widths), n_lanes)
        From :func:`lockstep_scratch`; overwritten.
    h : ndarray of float64, shape (n_lanes,)
        Output.
    """
    tmp = scratch[4, :2]
    out = forward_lockstep(spec, params, x, first_row, scratch[0], scratch[1], tmp)
    _dot_ls(lam, out, h)
    if spec2.shape[0] > 0:
        h2 = scratch[4, 2]
        out2 = forward_lockstep(spec2, params2, x2, 0, scratch[2], scratch[3], tmp)
        _dot_ls(lam2, out2, h2)
        for lane in range(h.shape[0]):
            h[lane] += h2[lane]


def lockstep_scratch(n_lanes, *specs, dtype=np.float64):
    """Scratch for :func:`energy_lockstep`: ``(5, width, n_lanes)`` of ``dtype``.

    ``width`` is the widest activation of ``specs`` (at least 3, for the per-lane
    temporaries in the last slot).
    """
    width = max([3] + [max_width(s) for s in specs])
    return aligned_empty((5, width, n_lanes), dtype)


# --- lane buffers aligned to cache lines -------------------------------------------------
# A lock-step loop loads and stores whole rows of (rows, lanes) buffers, 64 bytes (8 lanes)
# per AVX-512 instruction; unaligned, every access spans two cache lines (timings in
# docs/performance.md). Rows stay aligned when ``n_lanes`` is a multiple of 8.

ALIGN = 64  # bytes: a cache line, one AVX-512 vector


def aligned_empty(shape, dtype=np.float64):
    """``np.empty(shape, dtype)`` whose data starts on an ``ALIGN``-byte boundary."""
    n = int(np.prod(shape))
    size = np.dtype(dtype).itemsize
    buf = np.empty(n + ALIGN // size, dtype)
    k = (-buf.ctypes.data % ALIGN) // size
    return buf[k:k + n].reshape(shape)


@njit(cache=True)
def _aligned_flat(n, dtype):
    # ALIGN // 4 spare entries: enough for float32 (and more than float64 needs)
    buf = np.empty(n + ALIGN // 4, dtype)
    k = (-buf.ctypes.data % ALIGN) // buf.itemsize
    return buf[k:k + n]


@njit(cache=True)
def empty_rows(n_rows, n_lanes, dtype=np.float64):
    """:func:`aligned_empty` ``(n_rows, n_lanes)`` inside a kernel (``dtype``: the
    chains', e.g. ``x.dtype``)."""
    return _aligned_flat(n_rows * n_lanes, dtype).reshape((n_rows, n_lanes))


@njit(cache=True)
def empty_slabs(n_slabs, n_rows, n_lanes, dtype=np.float64):
    """:func:`aligned_empty` ``(n_slabs, n_rows, n_lanes)`` inside a kernel."""
    return _aligned_flat(n_slabs * n_rows * n_lanes, dtype).reshape((n_slabs, n_rows, n_lanes))


def lanes_for(*specs, n_items=None, most=None, itemsize=8):
    """Number of lock-step lanes for networks ``specs``: ``settings.LANES_MIN .. most``
    (default ``settings.BATCH_LANES_MAX``; the sweeps pass the per-host
    :func:`.tune.lanes_max`).

    Wider networks get fewer lanes so that an activation buffer ``(width, lanes)`` of
    ``itemsize``-byte values stays near ``settings.TILE_BYTES``; ``n_items`` inputs are split
    into at least 4 blocks per thread where the lanes can be that few (rounded up to a
    multiple of 8). Results never depend on the number of lanes.
    """
    width = max([1] + [max_width(s) for s in specs if s.shape[0]])
    lanes = settings.TILE_BYTES // (int(itemsize) * width)
    if n_items is not None:
        per_block = -(-max(int(n_items), 1) // (4 * numba.get_num_threads()))
        lanes = min(lanes, -(-per_block // 8) * 8)
    most = settings.BATCH_LANES_MAX if most is None else int(most)
    lanes = max(settings.LANES_MIN, min(most, lanes))
    return int(lanes - lanes % 8) if lanes >= 8 else int(lanes)


@njit(cache=True)
def _load_lanes(X, start, stop, xs):
    # rows start..stop-1 of X into the columns of xs; padding lanes are zeros
    d = X.shape[1]
    for lane in range(xs.shape[1]):
        i = start + lane
        for k in range(d):
            xs[k, lane] = X[i, k] if i < stop else 0.0


@njit(parallel=True, cache=True)
def _observables_batch(spec, params, X, out, n_lanes):
    n, d = X.shape
    m = out.shape[1]
    width = max(3, _max_width(spec))
    n_blocks = (n + n_lanes - 1) // n_lanes
    for b in prange(n_blocks):
        xs = empty_rows(d, n_lanes, X.dtype)
        scratch = empty_slabs(3, width, n_lanes, X.dtype)
        start = b * n_lanes
        stop = min(n, start + n_lanes)
        _load_lanes(X, start, stop, xs)
        o = forward_lockstep(spec, params, xs, 0, scratch[0], scratch[1], scratch[2, :2])
        for i in range(start, stop):
            for k in range(m):
                out[i, k] = o[k, i - start]


@njit(parallel=True, cache=True)
def _energy_batch(spec, params, lam, X, spec2, params2, lam2, out, n_lanes):
    n, d = X.shape
    width = max(3, _max_width(spec), _max_width(spec2))
    n_blocks = (n + n_lanes - 1) // n_lanes
    for b in prange(n_blocks):
        xs = empty_rows(d, n_lanes, X.dtype)
        scratch = empty_slabs(5, width, n_lanes, X.dtype)
        h = np.empty(n_lanes, X.dtype)
        start = b * n_lanes
        stop = min(n, start + n_lanes)
        _load_lanes(X, start, stop, xs)
        energy_lockstep(spec, params, lam, spec2, params2, lam2, xs, 0, xs, scratch, h)
        for i in range(start, stop):
            out[i] = h[i - start]


# --- Python entry points (cheap checks, then the compiled kernels) --------------------

@contextlib.contextmanager
def dynamic_schedule():
    """Run the ``prange`` loops of the enclosed kernel calls with dynamic scheduling.

    Hands out ``settings.PARALLEL_CHUNK`` iterations (blocks or chains) at a time and
    restores the caller's chunk size afterwards. Results never depend on the schedule.
    """
    old = numba.set_parallel_chunksize(settings.PARALLEL_CHUNK)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(old)


def _as_f64(a, name, ndim, dtype=np.float64):
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return a


def _n_outputs(spec, n_features):
    return int(spec[-1, 2]) if spec.shape[0] else int(n_features)


def _check_term(spec, params, lam, n_features, names, dtype=np.float64):
    spec = validate_spec(spec, np.shape(params)[0] if np.ndim(params) == 1 else -1)
    params = _as_f64(params, names[1], 1, dtype)
    if spec.shape[0] and spec[0, 1] != n_features:
        raise ValueError(f"{names[0]} expects {spec[0, 1]} input features, got {n_features}")
    if lam is not None:
        lam = _as_f64(lam, names[2], 1, dtype)
        if spec.shape[0] and lam.shape[0] != spec[-1, 2]:
            raise ValueError(f"{names[2]} has {lam.shape[0]} entries but {names[0]} "
                             f"outputs {spec[-1, 2]}")
    return spec, params, lam


def check_terms(spec, params, lam, spec2, params2, lam2, n_features, dtype=np.float64):
    """Both energy terms checked against ``n_features`` (:func:`_check_term`); the first
    must have at least one row. Returns the six normalized arrays, the parameters and
    multipliers as ``dtype`` (rounded once for float32 kernels)."""
    spec, params, lam = _check_term(spec, params, lam, n_features, ("spec", "params", "lam"),
                                    dtype)
    spec2, params2, lam2 = _check_term(spec2, params2, lam2, n_features,
                                       ("spec2", "params2", "lam2"), dtype)
    if spec.shape[0] == 0:
        raise ValueError("spec must have at least one row")
    return spec, params, lam, spec2, params2, lam2


def observables_batch(spec, params, X, dtype=np.float64):
    """Observables ``O(x; θ)`` of every row of ``X`` (parallel over rows).

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)
    params : ndarray of float64, shape (n_params,)
    X : ndarray of float64, shape (n_samples, n_features)
    dtype : np.float64 or np.float32
        The arithmetic: ``X`` and ``params`` are rounded to it once and the network runs in
        it (``kernel_dtype`` names the choices).

    Returns
    -------
    ndarray of ``dtype``, shape (n_samples, n_observables)
    """
    dtype = kernel_dtype(dtype)
    X = _as_f64(X, "X", 2, dtype)
    spec, params, _ = _check_term(spec, params, None, X.shape[1], ("spec", "params", None),
                                  dtype)
    if spec.shape[0] == 0:
        return X.copy()
    out = np.empty((X.shape[0], _n_outputs(spec, X.shape[1])), dtype)
    with dynamic_schedule():
        _observables_batch(spec, params, X, out,
                           lanes_for(spec, n_items=X.shape[0], itemsize=X.itemsize))
    return out


def energy_batch(spec, params, lam, X, spec2, params2, lam2, dtype=np.float64):
    """Energies ``H(x) = lam . O(x) + lam2 . O2(x)`` of every row of ``X`` (parallel over rows).

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)
    params : ndarray of float64, shape (n_params,)
    lam : ndarray of float64, shape (n_observables,)
    X : ndarray of float64, shape (n_samples, n_features)
    spec2, params2, lam2 : ndarrays
        Second energy term, same layout; ``spec2`` with zero rows means "absent"
        (see :func:`empty_term`).
    dtype : np.float64 or np.float32
        The arithmetic, as for :func:`observables_batch` (``lam`` rounded to it too).

    Returns
    -------
    ndarray of ``dtype``, shape (n_samples,)
    """
    dtype = kernel_dtype(dtype)
    X = _as_f64(X, "X", 2, dtype)
    spec, params, lam, spec2, params2, lam2 = check_terms(spec, params, lam, spec2, params2,
                                                          lam2, X.shape[1], dtype)
    out = np.empty(X.shape[0], dtype)
    with dynamic_schedule():
        _energy_batch(spec, params, lam, X, spec2, params2, lam2, out,
                      lanes_for(spec, spec2, n_items=X.shape[0], itemsize=X.itemsize))
    return out


def max_width(spec):
    """Scratch buffer length :func:`forward_one` needs: the widest activation of ``spec``.

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)

    Returns
    -------
    int
        ``max(in_size, out_size)`` over rows, at least 1.
    """
    spec = np.asarray(spec)
    if spec.ndim != 2 or spec.shape[0] == 0:
        return 1
    return int(max(1, spec[:, 1:3].max()))
