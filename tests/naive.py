"""Slow, obvious NumPy/pure-Python twins of the compiled kernels (tests only).

Everything here is written for readability, not speed: Python integers for the
random streams, explicit loops for the convolution, one proposal at a time for the
sampler. The draw order follows the docstring of ``mme_numba.kernels.moves.box``.
"""

import math

import numpy as np

from mme_numba.spec import (CONV2D, DENSE, LOGSOFTMAX, POWERS, RELU, SIGMOID, SOFTPLUS,  # noqa: F401
                            SQUARE, TANH)
MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
CHAIN_SALT = 0xD1B54A32D192ED03


# --- random streams ----------------------------------------------------------------

def mix64(z):
    z &= MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def naive_seed_states(seed, n_chains, first_chain=0):
    key = mix64((seed % (1 << 64)) + GOLDEN)
    out = np.empty((n_chains, 4), dtype=np.uint64)
    for i in range(n_chains):
        s = mix64(key + mix64((first_chain + i) ^ CHAIN_SALT))
        for k in range(4):
            s = (s + GOLDEN) & MASK
            out[i, k] = mix64(s)
    return out


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


class Xoshiro:
    """xoshiro256** on Python integers, one chain."""

    def __init__(self, state_row):
        self.s = [int(v) for v in state_row]

    def next_u64(self):
        s0, s1, s2, s3 = self.s
        result = (_rotl((s1 * 5) & MASK, 7) * 9) & MASK
        t = (s1 << 17) & MASK
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, 45)
        self.s = [s0, s1, s2, s3]
        return result

    def uniform(self):
        return (self.next_u64() >> 11) * 2.0 ** -53

    def normal(self):
        u1 = self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)

    def state(self):
        return np.array(self.s, dtype=np.uint64)


# --- network -----------------------------------------------------------------------

def naive_conv2d(W, b, img):
    """Zero-padded "same" convolution (cross-correlation), stride 1, explicit loops."""
    c_out, c_in, k, _ = W.shape
    _, h, w = img.shape
    pad = k // 2
    out = np.zeros((c_out, h, w))
    for co in range(c_out):
        for y in range(h):
            for x in range(w):
                s = b[co]
                for ci in range(c_in):
                    for ky in range(k):
                        for kx in range(k):
                            iy, ix = y + ky - pad, x + kx - pad
                            if 0 <= iy < h and 0 <= ix < w:
                                s += W[co, ci, ky, kx] * img[ci, iy, ix]
                out[co, y, x] = s
    return out


def naive_forward(spec, params, x):
    """Network output for one vector ``x (d,)``, one spec row at a time."""
    z = np.asarray(x, dtype=np.float64).copy()
    for row in np.asarray(spec).tolist():
        code, n_in, n_out, off, a, b, c, d = row
        assert z.shape == (n_in,)
        if code == DENSE:
            W = params[off:off + n_out * n_in].reshape(n_out, n_in)
            bias = params[off + n_out * n_in:off + n_out * n_in + n_out] if a else 0.0
            z = W @ z + bias
        elif code == CONV2D:
            c_out = n_out // (b * c)
            n_w = c_out * a * d * d
            W = params[off:off + n_w].reshape(c_out, a, d, d)
            z = naive_conv2d(W, params[off + n_w:off + n_w + c_out], z.reshape(a, b, c)).ravel()
        elif code == TANH:
            z = np.tanh(z)
        elif code == SOFTPLUS:
            z = np.array([math.log1p(math.exp(v)) if v < 30 else v + math.log1p(math.exp(-v))
                          for v in z])
        elif code == SIGMOID:
            z = np.array([1.0 / (1.0 + math.exp(-v)) if v > -700 else math.exp(v) for v in z])
        elif code == RELU:
            z = np.maximum(z, 0.0)
        elif code == SQUARE:
            z = z ** 2
        elif code == POWERS:
            z = np.array([v ** p for v in z for p in range(1, a + 1)])
        elif code == LOGSOFTMAX:
            z = z - (z.max() + np.log(np.sum(np.exp(z - z.max()))))
        else:
            raise ValueError(f"unknown code {code}")
        assert z.shape == (n_out,)
    return z


def naive_energy(spec, params, lam, x, spec2=None, params2=None, lam2=None):
    """``lam . O(x) + lam2 . O2(x)`` for one vector; the second term if ``spec2`` has rows."""
    h = float(np.dot(lam, naive_forward(spec, params, x)))
    if spec2 is not None and len(spec2):
        h += float(np.dot(lam2, naive_forward(spec2, params2, x)))
    return h


# --- sampler -----------------------------------------------------------------------

def _boundary(y, lo, hi, boundary):
    """(value, inside) after the boundary rule: 0 rejects outside, 1 folds back."""
    if lo <= y <= hi:
        return y, True
    if boundary == 0:
        return y, False
    w = hi - lo
    t = (y - lo) % (2.0 * w)
    if t > w:
        t = 2.0 * w - t
    return min(max(lo + t, lo), hi), True


def _accept(rng, h_old, h_new):
    u = rng.uniform()
    return u == 0.0 or math.log(u) < h_old - h_new


def naive_metropolis(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                     n_sweeps, move, boundary, rng_state, accepted):
    """The compiled sampler's chain, one proposal at a time; returns new arrays.

    Returns
    -------
    x, energy, rng_state, accepted : copies of the inputs, advanced.
    """
    x = np.array(x, dtype=np.float64)
    energy = np.array(energy, dtype=np.float64)
    rng_state = np.array(rng_state, dtype=np.uint64)
    accepted = np.array(accepted, dtype=np.int64)
    n_chains, d = x.shape

    def H(v):
        return naive_energy(spec, params, lam, v, spec2, params2, lam2)

    for c in range(n_chains):
        rng = Xoshiro(rng_state[c])
        for _ in range(n_sweeps):
            if move == 0:
                y = np.empty(d)
                inside = True
                for k in range(d):
                    y[k], ok = _boundary(x[c, k] + step[c] * rng.normal(), lo[k], hi[k],
                                         boundary)
                    inside = inside and ok
                if not inside:
                    continue
                h_new = H(y)
                if _accept(rng, energy[c], h_new):
                    x[c], energy[c] = y, h_new
                    accepted[c] += 1
            else:
                for _ in range(d):
                    j = min(int(rng.uniform() * d), d - 1)
                    yj, inside = _boundary(x[c, j] + step[c] * rng.normal(), lo[j], hi[j],
                                           boundary)
                    if not inside:
                        continue
                    y = x[c].copy()
                    y[j] = yj
                    h_new = H(y)
                    if _accept(rng, energy[c], h_new):
                        x[c], energy[c] = y, h_new
                        accepted[c] += 1
        rng_state[c] = rng.state()
    return x, energy, rng_state, accepted


def naive_scan(spec, params, lam, term2, state, step, n_sweeps, boundary, lo, hi):
    """The systematic scan (``MOVE_SCAN``), one proposal at a time; returns copies.

    Coordinates ``0 .. d-1`` in order, no coordinate draw; the normal deviate from two
    uniforms, the boundary rule, one uniform for the acceptance test."""
    x, energy, rs, acc = (np.array(a) for a in state)
    n, d = x.shape
    step = np.broadcast_to(step, (n,))
    lo, hi = np.broadcast_to(lo, (d,)), np.broadcast_to(hi, (d,))
    for c in range(n):
        rng = Xoshiro(rs[c])
        h = energy[c]
        for _ in range(n_sweeps):
            for j in range(d):
                yj, inside = _boundary(x[c, j] + step[c] * rng.normal(), lo[j], hi[j], boundary)
                if not inside:
                    continue
                y = x[c].copy()
                y[j] = yj
                h_new = naive_energy(spec, params, lam, y, *term2)
                if _accept(rng, h, h_new):
                    x[c], h = y, h_new
                    acc[c] += 1
        energy[c] = h
        rs[c] = rng.state()
    return x, energy, rs, acc


# --- MALA ----------------------------------------------------------------------------

def naive_input_grad(spec, params, lam, x):
    """``∂(lam . O)/∂x`` for one vector: the rows' outputs forward, the chain rule backward."""
    spec = np.asarray(spec)
    acts = [np.asarray(x, dtype=np.float64)]
    for r in range(len(spec)):
        acts.append(naive_forward(spec[r:r + 1], params, acts[-1]))
    g = np.asarray(lam, dtype=np.float64)
    for r in range(len(spec) - 1, -1, -1):
        code, n_in, n_out, off, a, b, c, d = spec[r].tolist()
        src, out = acts[r], acts[r + 1]
        if code == DENSE:
            g = params[off:off + n_out * n_in].reshape(n_out, n_in).T @ g
        elif code == CONV2D:
            c_out, pad = n_out // (b * c), d // 2
            W = params[off:off + c_out * a * d * d].reshape(c_out, a, d, d)
            go, gi = g.reshape(c_out, b, c), np.zeros((a, b, c))
            for co, y, xx, ci, ky, kx in np.ndindex(c_out, b, c, a, d, d):
                iy, ix = y + ky - pad, xx + kx - pad
                if 0 <= iy < b and 0 <= ix < c:
                    gi[ci, iy, ix] += W[co, ci, ky, kx] * go[co, y, xx]
            g = gi.ravel()
        elif code == TANH:
            g = g * (1.0 - out * out)
        elif code == SOFTPLUS:
            g = g / (1.0 + np.exp(-src))
        elif code == SIGMOID:
            g = g * out * (1.0 - out)
        elif code == RELU:
            g = np.where(src > 0.0, g, 0.0)
        elif code == SQUARE:
            g = 2.0 * src * g
        elif code == POWERS:
            g = np.array([sum(g[j * a + q - 1] * q * src[j] ** (q - 1) for q in range(1, a + 1))
                          for j in range(n_in)])
        else:  # LOGSOFTMAX
            g = g - np.exp(out) * g.sum()
    return g


def naive_log_q(y, mu, eps, lo, hi, boundary):
    """Log density (up to a constant) of the MALA proposal ``N(mu, eps²)`` landing on ``y``,
    each coordinate folded into ``[lo, hi]`` (boundary 1: a sum over every preimage)."""
    if boundary == 0:
        return float(np.sum(-(y - mu) ** 2 / (2.0 * eps * eps)))
    w, total = hi - lo, 0.0
    for k in range(len(y)):
        n = np.arange(-60, 61)
        z = np.concatenate([y[k] + 2.0 * n * w[k], 2.0 * lo[k] - y[k] + 2.0 * n * w[k]])
        total += math.log(np.sum(np.exp(-(z - mu[k]) ** 2 / (2.0 * eps * eps))))
    return total


def naive_mala(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
               boundary, rng_state, accepted):
    """MALA chains, one proposal at a time; returns copies of ``x, energy, rng_state, accepted``.

    ``y_k = x_k - eps²/2 ∂H/∂x_k + eps normal()`` for k in order, the boundary rule, then one
    uniform: ``log u < H(x) - H(y) + log q(x | y) - log q(y | x)``."""
    x, energy, rng_state, accepted = (np.array(a) for a in (x, energy, rng_state, accepted))
    n, d = x.shape
    lo, hi = np.broadcast_to(lo, (d,)).astype(float), np.broadcast_to(hi, (d,)).astype(float)

    def H(v):
        return naive_energy(spec, params, lam, v, spec2, params2, lam2)

    def grad(v):
        g = naive_input_grad(spec, params, lam, v)
        return g + naive_input_grad(spec2, params2, lam2, v) if len(spec2) else g

    for c in range(n):
        rng, eps = Xoshiro(rng_state[c]), float(np.broadcast_to(step, (n,))[c])
        half = 0.5 * eps * eps
        g = grad(x[c])
        for _ in range(n_sweeps):
            y, inside = np.empty(d), True
            for k in range(d):
                y[k], ok = _boundary(x[c, k] - half * g[k] + eps * rng.normal(), lo[k], hi[k],
                                     boundary)
                inside = inside and ok
            if not inside:
                continue
            h_y, g_y = H(y), grad(y)
            log_ratio = (energy[c] - h_y + naive_log_q(x[c], y - half * g_y, eps, lo, hi,
                                                       boundary)
                         - naive_log_q(y, x[c] - half * g, eps, lo, hi, boundary))
            if math.log(rng.uniform()) < log_ratio:
                x[c], g, energy[c] = y, g_y, h_y
                accepted[c] += 1
        rng_state[c] = rng.state()
    return x, energy, rng_state, accepted


# --- replica exchange ----------------------------------------------------------------

def naive_replica_swaps(x, energy, betas, rng_state, parity, accepted):
    """``kernels.moves.swap.replica_swaps`` one column and one pair at a time; returns copies."""
    x = np.array(x, dtype=np.float64)
    energy = np.array(energy, dtype=np.float64)
    rng_state = np.array(rng_state, dtype=np.uint64)
    accepted = np.array(accepted, dtype=np.int64)
    K, n, _ = x.shape
    for i in range(n):
        rng = Xoshiro(rng_state[i])
        for r in range(parity, K - 1, 2):
            u = rng.uniform()
            if u == 0.0 or math.log(u) < (betas[r] - betas[r + 1]) * (energy[r, i] - energy[r + 1, i]):
                x[[r, r + 1], i] = x[[r + 1, r], i]
                energy[[r, r + 1], i] = energy[[r + 1, r], i]
                accepted[i, r] += 1
        rng_state[i] = rng.state()
    return x, energy, rng_state, accepted
