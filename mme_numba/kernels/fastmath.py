"""Exact elementary functions that LLVM can vectorize: ``tanh``, ``log``, ``cos_2pi``.

A call to the C library's ``tanh``, ``log`` or ``cos`` is opaque to LLVM: a loop that
calls it runs one element at a time (``tanh`` about 15 ns each), and these calls were most
of the sampler's time. The functions below are plain arithmetic with selects instead of
branches and at most one division, so a loop over them compiles to SIMD code (8 doubles
per AVX-512 instruction, well under 1 ns per element), while staying exact: relative error
below 5e-16 (about 2 ulp; the C library's ``tanh`` has 3e-16), checked against extended
precision in ``tests/test_fastmath.py``. They are compiled with ``fastmath={"contract"}``
only (fused multiply-adds: fewer instructions, one rounding instead of two); every kernel
calls the same compiled functions, so one-chain and lock-step kernels agree bit for bit.

``tanh``, for ``a = |z|`` (the sign restored with ``copysign``; NaN propagates):
``t = min(2a, 40)`` (``tanh 20`` rounds to 1), ``t = k ln 2 + r`` (``k = round(t / ln 2)``
by the 1.5·2⁵² trick, ``ln 2`` split in two for an exact ``r``), ``e^r = (q + p) / (q − p)``
(Cephes' Padé form, ``p = r P(r²)``, ``q = Q(r²)``), and so

    tanh a = (e^t − 1) / (e^t + 1) = ((2^k − 1)(q + p) + 2p) / (2^k (q + p) + (q − p)).

Written this way the numerator never cancels: for ``k = 0`` (``a < 0.17``) it is ``2p``,
``r`` times a polynomial, so small arguments keep their relative accuracy without a
branch of their own. One division, no data-dependent branch. ``2^k`` is built from its bit pattern; a twin on
another device reproduces it with ``ldexp(1.0, k)``.

Functions here are compiled with ``error_model="numpy"``: under numba's default ("python")
model a float division checks for zero and may raise, which blocks vectorization.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

__all__ = ["tanh", "tanh32", "tanh_any", "log", "cos_2pi"]

_CONTRACT = {"contract"}


@intrinsic
def _int_bits_as_float(typingctx, bits):
    """Reinterpret the 64 bits of an int64 as a float64 (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _float_bits_as_int(typingctx, value):
    """Reinterpret the 64 bits of a float64 as an int64 (no conversion)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


# Cephes exp on [-ln2/2, ln2/2]: e^r = (Q(r^2) + r P(r^2)) / (Q(r^2) - r P(r^2)).
_EP0, _EP1, _EP2 = 1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1
_EQ0, _EQ1 = 3.00198505138664455042e-6, 2.52448340349684104192e-3
_EQ2, _EQ3 = 2.27265548208155028766e-1, 2.00000000000000000009e0
_LOG2E = 1.4426950408889634073599
_LN2_HI = 6.93145751953125e-1          # few significant bits: k * _LN2_HI is exact
_LN2_LO = 1.42860682030941723212e-6
_ROUND = 6755399441055744.0            # 1.5 * 2**52: x + _ROUND rounds x to an integer
_ROUND_BITS = 0x4338000000000000       # bit pattern of _ROUND
_ONE_BITS = 0x3FF0000000000000         # bit pattern of 1.0 (exponent bias 1023 << 52)
_T_MAX = 40.0


@njit(cache=True, error_model="numpy", fastmath=_CONTRACT)
def tanh(z):
    """Hyperbolic tangent to 5e-16 relative, branch-free so that loops over it vectorize.

    Parameters
    ----------
    z : float

    Returns
    -------
    float
        ``tanh(z)``; ``±0`` and NaN pass through, ``±inf`` gives ``±1``.
    """
    a = abs(z)
    t = min(a + a, _T_MAX)
    shifted = t * _LOG2E + _ROUND
    k_bits = _float_bits_as_int(shifted) - _ROUND_BITS        # k, as an integer
    k = shifted - _ROUND                                       # k, as a float
    r = t - k * _LN2_HI - k * _LN2_LO
    r2 = r * r
    p = r * ((_EP0 * r2 + _EP1) * r2 + _EP2)
    q = ((_EQ0 * r2 + _EQ1) * r2 + _EQ2) * r2 + _EQ3
    two_k = _int_bits_as_float((k_bits << 52) + _ONE_BITS)
    q_plus_p = q + p
    v = ((two_k - 1.0) * q_plus_p + (p + p)) / (two_k * q_plus_p + (q - p))
    return math.copysign(v, z)


# --- float32 ---------------------------------------------------------------------------
# The same formula in float32 arithmetic, so that a loop over float32 lanes runs 8 values
# per AVX2 instruction (16 per AVX-512) instead of converting to float64 and back. Cephes'
# expf polynomial gives e^r = 1 + P(r) on [-ln2/2, ln2/2] with P(r) = r + r^2 S(r), and
#
#     tanh a = ((2^k - 1) + 2^k P) / (2^k (1 + P) + 1),
#
# whose numerator is P itself for k = 0 (small a keeps its relative accuracy). Within
# 3e-7 relative of tanh (about 3 ulp of float32; tests/test_float32.py).

_F32 = np.float32
_E32 = tuple(_F32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_LOG2E_32 = _F32(1.44269504088896341)
_LN2_HI_32 = _F32(0.693359375)               # 9 significant bits: k * _LN2_HI_32 is exact
_LN2_LO_32 = _F32(-2.12194440e-4)
_ROUND_32 = _F32(12582912.0)                 # 1.5 * 2**23: x + _ROUND_32 rounds x
_T_MAX_32 = _F32(20.0)                       # tanh 10 rounds to 1 in float32
_ONE_32 = _F32(1.0)


@intrinsic
def _pow2_of_rounded_f32(typingctx, shifted):
    """``2^k`` from ``shifted = k + 1.5·2^23`` (float32, ``0 <= k < 128``), by bits."""
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = builder.bitcast(args[0], i32)
        k = builder.sub(bits, ir.Constant(i32, 0x4B400000))      # bit pattern of 1.5 * 2**23
        e = builder.add(builder.shl(k, ir.Constant(i32, 23)), ir.Constant(i32, 0x3F800000))
        return builder.bitcast(e, ir.FloatType())

    return sig, codegen


@njit(cache=True, error_model="numpy", fastmath=_CONTRACT)
def tanh32(z):
    """Hyperbolic tangent of a float32, in float32 arithmetic, to 3e-7 relative.

    Branch-free like :func:`tanh`, so that float32 loops over it vectorize; ``±0`` and NaN
    pass through, ``±inf`` gives ``±1``.
    """
    a = abs(z)
    t = min(a + a, _T_MAX_32)
    shifted = t * _LOG2E_32 + _ROUND_32
    k = shifted - _ROUND_32
    r = (t - k * _LN2_HI_32) - k * _LN2_LO_32
    p = r + r * r * (((((_E32[0] * r + _E32[1]) * r + _E32[2]) * r + _E32[3]) * r
                      + _E32[4]) * r + _E32[5])
    two_k = _pow2_of_rounded_f32(shifted)
    v = ((two_k - _ONE_32) + two_k * p) / (two_k * (_ONE_32 + p) + _ONE_32)
    return math.copysign(v, z)


def tanh_any(z):
    """:func:`tanh32` for a float32 argument, :func:`tanh` otherwise (compiled code only)."""
    raise NotImplementedError("tanh_any is only callable from compiled code")


@overload(tanh_any, jit_options={"error_model": "numpy"})
def _tanh_any(z):
    if isinstance(z, types.Float) and z.bitwidth == 32:
        return lambda z: tanh32(z)
    return lambda z: tanh(z)


# Cephes log: log(1 + f) = f - f^2/2 + f^3 P(f) / Q(f) for 1/sqrt(2) <= 1 + f < sqrt(2).
_LP = (1.01875663804580931796e-4, 4.97494994976747001425e-1, 4.70579119878881725854e0,
       1.44989225341610930846e1, 1.79368678507819816313e1, 7.70838733755885391666e0)
_LQ = (1.12873587189167450590e1, 4.52279145837532221105e1, 8.29875266912776603211e1,
       7.11544750618563894466e1, 2.31251620126765340583e1)
_SQRT_HALF = 0.70710678118654752440
_LOG2_HI = 0.693359375                  # ln 2 = _LOG2_HI - _LOG2_LO, _LOG2_HI exact in 9 bits
_LOG2_LO = 2.121944400546905827679e-4
_MANTISSA = 0x000FFFFFFFFFFFFF
_HALF_BITS = 0x3FE0000000000000         # exponent field of 0.5


@njit(cache=True, error_model="numpy", fastmath=_CONTRACT)
def log(x):
    """Natural logarithm for ``x = 0`` and positive normal ``x``, to 4e-16 relative.

    ``x = m 2^e`` with ``m`` in ``[1/sqrt 2, sqrt 2)`` from the bit pattern, then Cephes'
    rational for ``log m``; ``log 0 = -inf``. Subnormal, negative and non-finite ``x`` are
    outside the domain (the sampler feeds it uniforms in ``[2^-53, 1]`` and 0).

    Parameters
    ----------
    x : float

    Returns
    -------
    float
    """
    bits = _float_bits_as_int(x)
    e = ((bits >> 52) & 0x7FF) - 1022                        # x = m 2^e, m in [0.5, 1)
    m = _int_bits_as_float((bits & _MANTISSA) | _HALF_BITS)
    low = m < _SQRT_HALF
    f = (m + m - 1.0) if low else (m - 1.0)                  # exact (Sterbenz)
    ef = float(e - 1) if low else float(e)
    z = f * f
    p = (((((_LP[0] * f + _LP[1]) * f + _LP[2]) * f + _LP[3]) * f + _LP[4]) * f + _LP[5])
    q = (((((f + _LQ[0]) * f + _LQ[1]) * f + _LQ[2]) * f + _LQ[3]) * f + _LQ[4])
    y = f * (z * p / q) - ef * _LOG2_LO - 0.5 * z
    r = f + y + ef * _LOG2_HI
    return r if x > 0.0 else -math.inf


# Cephes sin and cos on [0, pi/4]: sin x = x + x z S(z), cos x = 1 - z/2 + z^2 C(z), z = x^2.
_SC = (1.58962301576546568060e-10, -2.50507477628578072866e-8, 2.75573136213857245213e-6,
       -1.98412698295895385996e-4, 8.33333333332211858878e-3, -1.66666666666666307295e-1)
_CC = (-1.13585365213876817300e-11, 2.08757008419747316778e-9, -2.75573141792967388112e-7,
       2.48015872888517045348e-5, -1.38888888888730564116e-3, 4.16666666666665929218e-2)
_HALF_PI = 1.57079632679489661923


@njit(cache=True, error_model="numpy", fastmath=_CONTRACT)
def cos_2pi(u):
    """``cos(2 pi u)`` for ``u`` in ``[0, 1)``, to 2 ulp of 1, branch-free.

    The turn is split exactly into a quadrant ``q = floor(4u)`` and a fraction ``f = 4u -
    q``, folded to ``t <= 1/2`` (``1 - f`` is exact), and ``cos`` or ``sin`` of
    ``(pi/2) t`` in ``[0, pi/4]`` taken from Cephes' polynomials. Unlike ``cos(2 pi u)``
    through the C library it never rounds the angle ``2 pi u`` first, so it is exact near
    the zeros too.

    Parameters
    ----------
    u : float

    Returns
    -------
    float
    """
    w = 4.0 * u
    q = math.floor(w)
    f = w - q
    fold = f > 0.5
    t = 1.0 - f if fold else f
    x = t * _HALF_PI
    z = x * x
    s = x + x * z * (((((_SC[0] * z + _SC[1]) * z + _SC[2]) * z + _SC[3]) * z + _SC[4]) * z
                     + _SC[5])
    c = 1.0 - 0.5 * z + z * z * (((((_CC[0] * z + _CC[1]) * z + _CC[2]) * z + _CC[3]) * z
                                  + _CC[4]) * z + _CC[5])
    cos_f = s if fold else c              # cos((pi/2) f)
    sin_f = c if fold else s              # sin((pi/2) f)
    odd = q == 1.0 or q == 3.0
    v = sin_f if odd else cos_f
    return -v if (q == 1.0 or q == 2.0) else v
