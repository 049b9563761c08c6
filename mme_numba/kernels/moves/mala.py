"""Metropolis-adjusted Langevin (MALA) on ``exp(-H(x))`` in the box ``[lo, hi]``.

``H(x) = lam . O(x) + lam2 . O2(x)`` as in :mod:`mme_numba.kernels.interpret`; its gradient
``∂H/∂x`` comes from a compiled per-chain backward pass through the same spec (one interpreter
for every architecture, :func:`energy_grad_one`), so each chain stays on its own thread with its
own random stream and results do not depend on the thread count.

One proposal per sweep, all coordinates at once::

    mu(x) = x - (eps**2 / 2) * dH/dx(x)
    y_k   = mu_k(x) + eps * normal()          k = 0 .. d-1, in order

then the boundary rule per coordinate, then (if ``y`` is kept) one ``uniform()`` for the
acceptance test ``log u < H(x) - H(y) + log q(x | y) - log q(y | x)``.

Boundary rules:

* ``BOUNDARY_REFLECT``: each ``y_k`` is folded back into ``[lo_k, hi_k]`` (as the Metropolis
  sampler does). The folded Gaussian is no longer symmetric around ``mu``, so ``q`` is its exact
  density: the sum of ``N(z; mu, eps²)`` over every point ``z`` that folds onto ``y``, i.e.
  ``z = y + 2nw`` and ``z = 2 lo - y + 2nw`` (``w = hi - lo``, all integers ``n``; terms beyond
  10 standard deviations are dropped, a relative error below ``e^-50``). Pixels sitting at a
  face with a gradient pushing outwards are reflected back instead of rejected, so chains do
  not freeze at the faces.
* ``BOUNDARY_REJECT``: a proposal with any coordinate outside is rejected (no uniform drawn);
  ``q`` is the plain Gaussian. Valid, but on images with many pixels at 0 nearly every
  all-coordinate proposal leaves the box.

``step[c]`` is ``eps`` for chain ``c``; the model's step adaptation tunes it like any
proposal width.
"""

import math

import numpy as np
from numba import njit, prange

from ..interpret import _apply_row, _max_width, _sigmoid, check_terms
from ..rng import normal, uniform
from ...spec import (BOUNDARY_REFLECT, CONV2D, DENSE, POWERS, RELU, SIGMOID, SOFTPLUS, SQUARE,
                     TANH)
from .box import _propose, chain_args

__all__ = ["energy_grad_one", "energy_grad_batch", "log_proposal_1d", "mala_chain_for",
           "mala_sweeps"]


# --- backward through one spec row ----------------------------------------------------------

@njit(cache=True)
def _backward_row(row, params, src, out, dout, din):
    """``din = (∂out/∂src)ᵀ dout`` for one spec row (``src``: its input, ``out``: output)."""
    code = row[0]
    n_in = row[1]
    n_out = row[2]
    off = row[3]
    if code == DENSE:
        for j in range(n_in):
            din[j] = 0.0
        for i in range(n_out):
            g = dout[i]
            if g == 0.0:
                continue
            w = off + i * n_in
            for j in range(n_in):
                din[j] += params[w + j] * g
    elif code == CONV2D:
        c_in = row[4]
        h = row[5]
        w = row[6]
        k = row[7]
        pad = k // 2
        hw = h * w
        c_out = n_out // hw
        for j in range(n_in):
            din[j] = 0.0
        for co in range(c_out):
            for y in range(h):
                ky0 = max(0, pad - y)
                ky1 = min(k, h + pad - y)
                for x in range(w):
                    g = dout[co * hw + y * w + x]
                    if g == 0.0:
                        continue
                    kx0 = max(0, pad - x)
                    kx1 = min(k, w + pad - x)
                    for ci in range(c_in):
                        w_ci = off + (co * c_in + ci) * k * k
                        s_ci = ci * hw
                        for ky in range(ky0, ky1):
                            d_row = s_ci + (y + ky - pad) * w + x - pad
                            w_row = w_ci + ky * k
                            for kx in range(kx0, kx1):
                                din[d_row + kx] += params[w_row + kx] * g
    elif code == TANH:
        for j in range(n_in):
            din[j] = dout[j] * (1.0 - out[j] * out[j])
    elif code == SOFTPLUS:
        for j in range(n_in):
            din[j] = dout[j] * _sigmoid(src[j])
    elif code == SIGMOID:
        for j in range(n_in):
            din[j] = dout[j] * out[j] * (1.0 - out[j])
    elif code == RELU:
        for j in range(n_in):
            din[j] = dout[j] if src[j] > 0.0 else 0.0
    elif code == SQUARE:
        for j in range(n_in):
            din[j] = 2.0 * src[j] * dout[j]
    elif code == POWERS:
        degree = row[4]
        for j in range(n_in):
            v = src[j]
            s = 0.0
            p = 1.0  # v ** (q - 1)
            for q in range(1, degree + 1):
                s += dout[j * degree + q - 1] * q * p
                p *= v
            din[j] = s
    else:  # LOGSOFTMAX: out = z - logsumexp(z)
        total = 0.0
        for j in range(n_in):
            total += dout[j]
        for j in range(n_in):
            din[j] = dout[j] - math.exp(out[j]) * total


@njit(cache=True)
def _offsets(spec):
    aoff = np.zeros(spec.shape[0] + 1, np.int64)
    for r in range(spec.shape[0]):
        aoff[r + 1] = aoff[r] + spec[r, 2]
    return aoff


@njit(cache=True)
def _term_energy_grad(spec, params, lam, x, aoff, acts, ga, gb, grad, accumulate):
    """``lam . O(x)``; writes (or adds, if ``accumulate``) ``lam . ∂O/∂x`` into ``grad``.

    ``acts`` holds every row's output (row ``r`` at ``aoff[r]:aoff[r + 1]``); ``ga, gb`` are
    scratch of length ``max_width(spec)``.
    """
    n_rows = spec.shape[0]
    for r in range(n_rows):
        src = x if r == 0 else acts[aoff[r - 1]:aoff[r]]
        _apply_row(spec[r], params, src, acts[aoff[r]:aoff[r + 1]])
    m = spec[n_rows - 1, 2]
    out = acts[aoff[n_rows - 1]:aoff[n_rows]]
    h = 0.0
    for i in range(m):
        h += lam[i] * out[i]
        ga[i] = lam[i]
    cur, other = ga, gb
    for r in range(n_rows - 1, -1, -1):
        src = x if r == 0 else acts[aoff[r - 1]:aoff[r]]
        _backward_row(spec[r], params, src, acts[aoff[r]:aoff[r + 1]], cur, other)
        cur, other = other, cur
    d = x.shape[0]
    if accumulate:
        for k in range(d):
            grad[k] += cur[k]
    else:
        for k in range(d):
            grad[k] = cur[k]
    return h


@njit(cache=True)
def energy_grad_one(spec, params, lam, spec2, params2, lam2, x, grad, acts, acts2, ga, gb):
    """``H(x)`` and ``∂H/∂x`` for one vector (compiled forward and backward through the spec).

    Parameters
    ----------
    spec, params, lam, spec2, params2, lam2 : ndarrays
        The two energy terms (``spec2`` with zero rows: absent).
    x : ndarray of float64, shape (d,)
    grad : ndarray of float64, shape (d,)
        Output, overwritten with ``∂H/∂x``.
    acts, acts2 : ndarray of float64
        Scratch for every row's output: ``sum(spec[:, 2])`` and ``sum(spec2[:, 2])`` entries.
    ga, gb : ndarray of float64
        Scratch of length ``max(max_width(spec), max_width(spec2))``.

    Returns
    -------
    float
        ``H(x)``.
    """
    h = _term_energy_grad(spec, params, lam, x, _offsets(spec), acts, ga, gb, grad, False)
    if spec2.shape[0] > 0:
        h += _term_energy_grad(spec2, params2, lam2, x, _offsets(spec2), acts2, ga, gb, grad,
                               True)
    return h


@njit(cache=True)
def _scratch(spec, spec2):
    """Per-chain scratch of :func:`energy_grad_one`: ``acts, acts2, ga, gb``."""
    width = max(_max_width(spec), _max_width(spec2))
    return (np.empty(_offsets(spec)[-1]), np.empty(_offsets(spec2)[-1]), np.empty(width),
            np.empty(width))


@njit(cache=True, inline="always")  # in numba's IR: no call that passes the 10-tuple
def _spec_energy_grad(x, grad, args):
    """:func:`energy_grad_one` in the form :func:`mala_chain_for` calls."""
    spec, params, lam, spec2, params2, lam2, acts, acts2, ga, gb = args
    return energy_grad_one(spec, params, lam, spec2, params2, lam2, x, grad, acts, acts2, ga, gb)


@njit(parallel=True, cache=True)
def _energy_grad_batch(spec, params, lam, spec2, params2, lam2, X, energy, grad):
    for i in prange(X.shape[0]):
        acts, acts2, ga, gb = _scratch(spec, spec2)
        args = (spec, params, lam, spec2, params2, lam2, acts, acts2, ga, gb)
        energy[i] = _spec_energy_grad(X[i], grad[i], args)


# --- the proposal density -------------------------------------------------------------------

@njit(cache=True)
def _log_gauss_images(y, mu, eps, lo, hi, boundary):
    """Log density (up to ``-log(eps sqrt(2 pi))``) of a Gaussian step landing on ``y``."""
    inv = 0.5 / (eps * eps)
    if boundary != BOUNDARY_REFLECT:
        return -(y - mu) * (y - mu) * inv
    w = hi - lo
    period = 2.0 * w
    n_side = int(10.0 * eps / period) + 2
    # Two families of preimages: y + n*period and (2 lo - y) + n*period.
    best = -np.inf
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


@njit(cache=True)
def _log_q(y, x, grad_x, half, eps, lo, hi, boundary):
    s = 0.0
    for k in range(y.shape[0]):
        s += _log_gauss_images(y[k], x[k] - half * grad_x[k], eps, lo[k], hi[k], boundary)
    return s


def log_proposal_1d(y, mu, eps, lo, hi, boundary=BOUNDARY_REFLECT):
    """Normalized log density of one MALA coordinate proposal (for tests and diagnostics).

    Parameters
    ----------
    y : array_like of float, shape (n,)
        Proposed values (inside ``[lo, hi]`` for the reflected rule).
    mu : float
        Gaussian centre ``x - eps²/2 ∂H/∂x``.
    eps : float
        Step ``eps``.
    lo, hi : float
        The interval.
    boundary : int
        ``BOUNDARY_REFLECT`` (folded Gaussian) or ``BOUNDARY_REJECT`` (plain Gaussian).

    Returns
    -------
    ndarray, shape (n,)
    """
    y = np.atleast_1d(np.asarray(y, np.float64))
    norm = -math.log(eps * math.sqrt(2.0 * math.pi))
    return np.array([_log_gauss_images(float(v), float(mu), float(eps), float(lo), float(hi),
                                       int(boundary)) for v in y]) + norm


# --- the sampler ----------------------------------------------------------------------------

def mala_chain_for(energy_grad, **jit_options):
    """The MALA chain kernel (the module docstring) of an energy ``energy_grad(x, grad, args)``
    that returns ``H(x)`` and writes ``∂H/∂x`` into ``grad``: the spec interpreter here, the
    user's functions in :mod:`mme_numba.observables.user`. ``energy_grad`` is bound at compile
    time (a function passed as an argument would keep the kernel off the disk cache).

    Returns ``chain(c, x, energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted,
    args)``, which advances chain ``c`` by ``n_sweeps`` proposals.
    """
    @njit(**jit_options)
    def chain(c, x, energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted, args):
        d = x.shape[1]
        xc = x[c]
        g = np.empty(d)
        y = np.empty(d)
        gy = np.empty(d)
        energy_grad(xc, g, args)
        h = energy[c]
        eps = step[c]
        half = 0.5 * eps * eps
        n_acc = 0
        for _ in range(n_sweeps):
            inside = True
            for k in range(d):
                y[k], ok = _propose(xc[k] - half * g[k] + eps * normal(rng_state, c), lo[k],
                                    hi[k], boundary)
                inside = inside and ok
            if not inside:
                continue
            h_y = energy_grad(y, gy, args)
            log_ratio = (h - h_y + _log_q(xc, y, gy, half, eps, lo, hi, boundary)
                         - _log_q(y, xc, g, half, eps, lo, hi, boundary))
            if math.log(uniform(rng_state, c)) < log_ratio:
                for k in range(d):
                    xc[k] = y[k]
                    g[k] = gy[k]
                h = h_y
                n_acc += 1
        energy[c] = h
        accepted[c] += n_acc

    return chain


_spec_chain = mala_chain_for(_spec_energy_grad, cache=True)


@njit(parallel=True, cache=True)
def _mala_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                 boundary, rng_state, accepted):
    for c in prange(x.shape[0]):
        acts, acts2, ga, gb = _scratch(spec, spec2)
        _spec_chain(c, x, energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted,
                    (spec, params, lam, spec2, params2, lam2, acts, acts2, ga, gb))


# --- Python entry points --------------------------------------------------------------------

def energy_grad_batch(spec, params, lam, X, spec2, params2, lam2):
    """Energies and their input gradients ``∂H/∂x`` for every row of ``X`` (parallel).

    Parameters
    ----------
    spec, params, lam : ndarrays
        First energy term.
    X : ndarray of float64, shape (n, d)
    spec2, params2, lam2 : ndarrays
        Second term (zero rows: absent).

    Returns
    -------
    energy : ndarray, shape (n,)
    grad : ndarray, shape (n, d)
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    terms = check_terms(spec, params, lam, spec2, params2, lam2, X.shape[1])
    energy = np.empty(X.shape[0])
    grad = np.empty_like(X)
    if X.shape[0]:
        _energy_grad_batch(*terms[:3], *terms[3:], X, energy, grad)
    return energy, grad


def mala_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                boundary, rng_state, accepted):
    """Advance persistent chains by ``n_sweeps`` MALA proposals each, in place.

    Arguments as :func:`mme_numba.kernels.sweep.sweep` (without ``move``); ``step`` is the
    Langevin step ``eps`` per chain (positive). The module docstring gives the proposal, the
    boundary rules and the draw order.
    """
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted)
    n_chains = x.shape[0]
    if not np.all(step > 0):
        raise ValueError("MALA needs a positive step in every chain")
    if n_chains == 0 or n_sweeps == 0:
        return
    _mala_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                 int(boundary), rng_state, accepted)
