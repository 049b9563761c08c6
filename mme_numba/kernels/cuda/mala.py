"""MALA on the GPU (mirror kernels/moves/mala.py): backward pass through the spec, folded proposals.
"""

import math

from numba import cuda

from ...spec import CONV2D, DENSE, POWERS, RELU, SIGMOID, SOFTPLUS, SQUARE, TANH
from ..moves.mala import _log_gauss_images  # numba compiles it for the device too
from ..rng import normal
from .device import _accept, _apply_row, _max, _min, _propose, _sigmoid, chain_kernel


# --- MALA (mirror kernels/moves/mala.py) ---------------------------------------------------
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
def _log_q(vec, ys, xs, gs, half, eps, lo, hi, boundary, t):
    s = 0.0
    for k in range(vec.shape[1]):
        s += _log_gauss_images(vec[ys, k, t], vec[xs, k, t] - half * vec[gs, k, t], eps,
                               lo[k], hi[k], boundary)
    return s


@cuda.jit(device=True)
def _chain_mala(c, t, x, energy, st, args, scratch):
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps, boundary = args
    vec, acts, acts2, grads = scratch
    d = x.shape[0]  # x is (d, n_chains) on the device: chain index fastest
    for k in range(d):
        vec[_X, k, t] = x[k, c]
    _energy_grad(spec, params, lam, spec2, params2, lam2, vec, _X, _G, acts, acts2, grads, t)
    h = energy[c]
    eps = step[c]
    half = 0.5 * eps * eps
    n_acc = 0
    for _ in range(n_sweeps):
        inside = True
        for k in range(d):
            yk, ok = _propose(vec[_X, k, t] - half * vec[_G, k, t] + eps * normal(st, 0),
                              lo[k], hi[k], boundary)
            vec[_Y, k, t] = yk
            inside = inside and ok
        if not inside:
            continue
        h_y = _energy_grad(spec, params, lam, spec2, params2, lam2, vec, _Y, _GY, acts, acts2,
                           grads, t)
        log_ratio = (h - h_y + _log_q(vec, _X, _Y, _GY, half, eps, lo, hi, boundary, t)
                     - _log_q(vec, _Y, _X, _G, half, eps, lo, hi, boundary, t))
        if _accept(st, log_ratio, 0.0):  # log u < log_ratio
            for k in range(d):
                vec[_X, k, t] = vec[_Y, k, t]
                vec[_G, k, t] = vec[_GY, k, t]
            h = h_y
            n_acc += 1
    for k in range(d):
        x[k, c] = vec[_X, k, t]
    return h, n_acc


_mala_kernel = chain_kernel(_chain_mala)
