"""Device functions shared by the CUDA kernels: the spec interpreter, the boundary rule, the
acceptance test, and the chain kernel.

Each mirrors one CPU function (:mod:`~mme_numba.kernels.interpret`,
:mod:`~mme_numba.kernels.fastmath`, :mod:`~mme_numba.kernels.moves.box`) statement for
statement. The random streams are the CPU's own functions (:mod:`~mme_numba.kernels.rng`):
numba compiles an ``@njit`` function for the device when device code calls it.
"""

import math

import numpy as np
from numba import config, cuda

from ..fastmath import (_E32, _EP0, _EP1, _EP2, _EQ0, _EQ1, _EQ2, _EQ3, _LN2_HI, _LN2_HI_32,
                        _LN2_LO, _LN2_LO_32, _LOG2E, _LOG2E_32, _ONE_32, _ROUND, _ROUND_32,
                        _T_MAX, _T_MAX_32)
from ..rng import uniform
from ...spec import (BOUNDARY_REJECT, CONV2D, DENSE, POWERS, RELU, SIGMOID, SOFTPLUS,
                     SQUARE, TANH)

# ldexp's exponent: an int32 on the device; the simulator's math.ldexp wants a Python int.
_INT = int if config.ENABLE_CUDASIM else np.int32


# --- builtins ---------------------------------------------------------------------------
# numba 0.68's built-in CUDA target cannot compile the builtin min/max (a varargs overload),
# so these spell out Python's semantics: the first argument wins ties (and NaN first).

@cuda.jit(device=True)
def _min(a, b):
    return b if b < a else a


@cuda.jit(device=True)
def _max(a, b):
    return b if b > a else a


# --- the chains' dtype ------------------------------------------------------------------
# float32 chains run float32 arithmetic where the CPU's float32 kernels do: a float literal
# is a float64 to numba, so a typed zero (``_zero_of``) starts the sums, a proposal is
# rounded once to the chains' type (``_as_type_of``, the CPU's ``box._rounded_like``) and
# ``_tanh`` takes ``fastmath.tanh32``'s formula for a float32. The three choose by type at
# compile time (overloads); the simulator runs their Python bodies.

def _zero_of(a):
    """A zero of the array ``a``'s dtype."""
    return a.dtype.type(0)


def _as_type_of(ref, v):
    """``v`` rounded to ``ref``'s type when that is float32, else ``v``."""
    return np.float32(v) if isinstance(ref, np.float32) else v


def _tanh(z):
    """tanh of a float64 (:func:`fastmath.tanh`'s twin) or a float32 (``tanh32``'s)."""
    return _tanh32(z) if isinstance(z, np.float32) else _tanh64(z)


def _is_f32(t):
    return getattr(t, "bitwidth", 64) == 32 or getattr(getattr(t, "dtype", None),
                                                        "bitwidth", 64) == 32


if not config.ENABLE_CUDASIM:
    try:  # numba-cuda (the [cuda] extra); numba's built-in CUDA target otherwise
        from numba.cuda.extending import overload as _overload
    except ImportError:
        from numba.extending import overload as _overload

    @_overload(_zero_of, target="cuda")
    def _zero_of_impl(a):
        return (lambda a: np.float32(0.0)) if _is_f32(a) else (lambda a: 0.0)

    @_overload(_as_type_of, target="cuda")
    def _as_type_of_impl(ref, v):
        return (lambda ref, v: np.float32(v)) if _is_f32(ref) else (lambda ref, v: v)

    @_overload(_tanh, target="cuda")
    def _tanh_impl(z):
        return (lambda z: _tanh32(z)) if _is_f32(z) else (lambda z: _tanh64(z))


# --- the spec interpreter, one input vector (mirror kernels/interpret.py) --------------

@cuda.jit(device=True)
def _tanh64(z):
    # Twin of fastmath.tanh (the CPU's tanh), same operations in the same order; 2^k by
    # ldexp instead of building its bit pattern (exact either way).
    a = abs(z)
    t = _min(a + a, _T_MAX)
    shifted = t * _LOG2E + _ROUND
    k = shifted - _ROUND
    r = t - k * _LN2_HI - k * _LN2_LO
    r2 = r * r
    p = r * ((_EP0 * r2 + _EP1) * r2 + _EP2)
    q = ((_EQ0 * r2 + _EQ1) * r2 + _EQ2) * r2 + _EQ3
    two_k = math.ldexp(1.0, _INT(k) if k == k else _INT(0))  # NaN in, NaN out
    q_plus_p = q + p
    v = ((two_k - 1.0) * q_plus_p + (p + p)) / (two_k * q_plus_p + (q - p))
    return math.copysign(v, z)


@cuda.jit(device=True)
def _tanh32(z):
    # Twin of fastmath.tanh32, float32 throughout; 2^k by ldexp as in _tanh64.
    a = abs(z)
    t = _min(a + a, _T_MAX_32)
    shifted = t * _LOG2E_32 + _ROUND_32
    k = shifted - _ROUND_32
    r = (t - k * _LN2_HI_32) - k * _LN2_LO_32
    p = r + r * r * (((((_E32[0] * r + _E32[1]) * r + _E32[2]) * r + _E32[3]) * r
                      + _E32[4]) * r + _E32[5])
    two_k = math.ldexp(_ONE_32, _INT(k) if k == k else _INT(0))
    v = ((two_k - _ONE_32) + two_k * p) / (two_k * (_ONE_32 + p) + _ONE_32)
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
        s = params[b_off + i] if has_bias else _zero_of(params)
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
            dst[di, do + j, t] = v if v > 0.0 else _zero_of(src)
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
    s = _zero_of(buf)
    for k in range(spec[spec.shape[0] - 1, 2]):
        s += lam[k] * buf[p, k, t]
    return s


@cuda.jit(device=True)
def _load_row(x, c, buf, t):
    """Chain/row ``c`` of ``x`` into ``buf[0, :, t]``. On the device ``x`` is
    ``(n_features, n)``, chain index fastest: a warp's threads read consecutive addresses."""
    for k in range(x.shape[0]):
        buf[0, k, t] = x[k, c]


@cuda.jit(device=True)
def _energy_row(spec, params, lam, spec2, params2, lam2, x, c, buf, buf2, t):
    """``H(x[c]) = lam . O(x[c]) + lam2 . O2(x[c])`` (mirror of ``energy_one``)."""
    _load_row(x, c, buf, t)
    h = _dot_out(spec, lam, buf, _forward(spec, params, buf, 0, t), t)
    if spec2.shape[0] > 0:
        _load_row(x, c, buf2, t)
        h += _dot_out(spec2, lam2, buf2, _forward(spec2, params2, buf2, 0, t), t)
    return h


# --- proposals and the acceptance test (mirror kernels/moves/box.py) ---------------------

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
    u = uniform(st, 0)
    # log(0) = -inf as on the CPU, spelled out (the simulator's math.log(0) raises); float32
    # energies promoted before the difference, as on the CPU
    return (-math.inf if u == 0.0 else math.log(u)) < float(h_old) - float(h_new)


# --- the chain kernels --------------------------------------------------------------------
# One kernel per chain kind, not one kernel branching on the move: registers are allocated
# for a kernel's hungriest path (docs/performance.md).

def chain_kernel(chain):
    """The kernel that runs ``chain`` on every chain: ``kernel(x, energy, rng_state, accepted,
    args, scratch)``, ``args`` and ``scratch`` the tuples ``chain`` unpacks.

    Thread ``t`` walks chains ``t, t + T, ..`` (``T = scratch[0].shape[2]``, the threads that
    own a scratch column; threads ``t >= T`` do nothing) and calls ``h, n_acc = chain(c, t, x,
    energy, st, args, scratch)`` with ``st`` the chain's random state, a local copy of its row
    of ``rng_state`` (row 0 of ``st``: the CPU's :mod:`~mme_numba.kernels.rng` functions, which
    numba compiles for the device, draw from it); the kernel writes back
    the state, the energy ``h`` and the accept count (which the host adds to its counts).
    """
    @cuda.jit
    def kernel(x, energy, rng_state, accepted, args, scratch):
        t = cuda.grid(1)
        n_t = scratch[0].shape[2]
        if t >= n_t:
            return
        st = cuda.local.array((1, 4), np.uint64)
        c = t
        while c < x.shape[1]:  # a while loop: range() with a run-time step costs ~18 registers
            for k in range(4):
                st[0, k] = rng_state[c, k]
            energy[c], accepted[c] = chain(c, t, x, energy, st, args, scratch)
            for k in range(4):
                rng_state[c, k] = st[0, k]
            c += n_t

    return kernel
