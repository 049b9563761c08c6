"""Deterministic integrals over low-dimensional support boxes.

Tensor-product composite Simpson rules on ``[lo, hi]`` (1-d and 2-d boxes; 3-d with a coarse
grid), evaluated in the log domain so that ``Z = ∫ exp(-H)`` never overflows:
``ln Z = logsumexp(-H(x_g) + ln w_g)``.  These give the exact quantities that sampling cannot:
the partition function, the MaxEnt entropy ``S = ln Z + <H>_p``, KL divergences between two
densities normalised on the box, and cross-entropies ``<-ln p>_data``.

Every ``energy_fn`` / ``logp_fn`` maps points ``(n, d)`` to values ``(n,)``; ``+inf`` energy
(``-inf`` log density) marks zero density.  The functions are evaluated in chunks, so a grid of
a few hundred thousand points needs little memory.
"""

import numpy as np
from scipy.special import logsumexp

__all__ = [
    "as_box", "simpson_weights", "grid", "log_partition", "log_density_grid", "entropy",
    "kl_divergence", "cross_entropy", "maxent_entropy",
]

_DEFAULT_GRID = {1: 4001, 2: 401, 3: 61}
_MAX_POINTS = 20_000_000
_CHUNK = 65536


def as_box(lo, hi):
    """The support box as two float64 ``(d,)`` arrays (scalars mean ``d = 1``).

    Parameters
    ----------
    lo, hi : float or array_like, shape (d,)

    Returns
    -------
    lo, hi : ndarray, shape (d,)
    """
    lo = np.atleast_1d(np.asarray(lo, dtype=np.float64)).ravel()
    hi = np.atleast_1d(np.asarray(hi, dtype=np.float64)).ravel()
    lo, hi = np.broadcast_arrays(lo, hi)
    if not np.all(np.isfinite(lo) & np.isfinite(hi)) or np.any(hi <= lo):
        raise ValueError(f"support box needs finite lo < hi, got lo={lo}, hi={hi}")
    return lo.copy(), hi.copy()


def simpson_weights(a, b, n):
    """Nodes and weights of the composite Simpson rule on ``[a, b]``.

    Parameters
    ----------
    a, b : float
    n : int
        Number of nodes; odd and at least 3.

    Returns
    -------
    nodes, weights : ndarray, shape (n,)
    """
    n = int(n)
    if n < 3 or n % 2 == 0:
        raise ValueError(f"Simpson's rule needs an odd number of nodes >= 3, got {n}")
    nodes = np.linspace(a, b, n)
    h = (b - a) / (n - 1)
    weights = np.full(n, 2.0)
    weights[1::2] = 4.0
    weights[0] = weights[-1] = 1.0
    return nodes, weights * (h / 3.0)


def grid(lo, hi, n_grid=None):
    """Tensor-product Simpson grid on a box.

    Parameters
    ----------
    lo, hi : float or array_like, shape (d,)
    n_grid : int, optional
        Odd number of nodes per dimension (default 4001 in 1-d, 401 in 2-d, 61 in 3-d).

    Returns
    -------
    points : ndarray, shape (n_grid**d, d)
        Nodes in ``'ij'`` order, so a value array reshapes to ``(n_grid,) * d``.
    log_weights : ndarray, shape (n_grid**d,)
    axes : list of d ndarrays, shape (n_grid,)
    """
    lo, hi = as_box(lo, hi)
    d = lo.shape[0]
    if n_grid is None:
        if d not in _DEFAULT_GRID:
            raise ValueError(f"quadrature on a {d}-d box is not practical; use d <= 3")
        n_grid = _DEFAULT_GRID[d]
    if float(n_grid) ** d > _MAX_POINTS:
        raise ValueError(f"{n_grid}**{d} grid points exceed the limit of {_MAX_POINTS}")
    axes, log_w = [], np.zeros(1)
    for j in range(d):
        nodes, w = simpson_weights(lo[j], hi[j], n_grid)
        axes.append(nodes)
        log_w = (log_w[:, None] + np.log(w)[None, :]).ravel()
    mesh = np.meshgrid(*axes, indexing="ij")
    points = np.stack([m.ravel() for m in mesh], axis=1)
    return points, log_w, axes


def doc_entries(**entries):
    """Decorator: fills the ``{name}`` fields of a docstring with parameter entries that
    several docstrings share (written once, complete in ``help()``)."""
    def fill(f):
        f.__doc__ = f.__doc__.format(**entries)
        return f
    return fill


_shared_params = doc_entries(
    energy_fn="energy_fn : callable\n        ``(n, d) -> (n,)`` energy ``H``.",
    box="lo, hi : float or array_like, shape (d,)\n    n_grid : int, optional\n        "
        "Odd number of Simpson nodes per dimension.")


def _evaluate(fn, points):
    """``fn`` on ``points`` in chunks, as a float64 ``(n,)`` array."""
    out = np.empty(points.shape[0])
    for start in range(0, points.shape[0], _CHUNK):
        chunk = points[start:start + _CHUNK]
        values = np.asarray(fn(chunk), dtype=np.float64).reshape(-1)
        if values.shape[0] != chunk.shape[0]:
            raise ValueError(f"function returned {values.shape[0]} values for {chunk.shape[0]} points")
        out[start:start + chunk.shape[0]] = values
    if np.any(np.isnan(out)):
        raise FloatingPointError("function returned NaN on the quadrature grid")
    return out


def log_normalise(values, log_w):
    """``(ln p, ln Z)`` for ``p ∝ exp(values)`` on a grid with log weights ``log_w``.

    The values are shifted by their largest finite one before the weights are added: for an
    energy of 7.7e48 at every point (a saturated network) ``values + log_w`` rounds to
    ``values``, the weights are lost, and a KL came out as −2.08 instead of 0.69.
    """
    finite = np.isfinite(values)
    top = float(values[finite].max()) if finite.any() else 0.0
    shifted = values - top
    log_z = float(logsumexp(shifted + log_w))
    return shifted - log_z, log_z + top


def _on_grid(fn, lo, hi, n_grid, sign=1.0):
    """Grid points, log weights, the normalised ``ln p`` of ``p ∝ exp(sign * fn)`` on the
    points and ``ln ∫ exp(sign * fn)`` (:func:`log_normalise`)."""
    points, log_w, _ = grid(lo, hi, n_grid)
    return (points, log_w, *log_normalise(sign * _evaluate(fn, points), log_w))


@_shared_params
def log_partition(energy_fn, lo, hi, n_grid=None):
    """``ln Z = ln ∫_box exp(-H(x)) dx``.

    Parameters
    ----------
    {energy_fn}
    {box}

    Returns
    -------
    float
    """
    return float(_on_grid(energy_fn, lo, hi, n_grid, -1.0)[3])


@_shared_params
def log_density_grid(energy_fn, lo, hi, n_grid=None):
    """The normalised log density ``ln p = -H - ln Z`` on the quadrature grid.

    Parameters
    ----------
    {energy_fn}
    {box}

    Returns
    -------
    points : ndarray, shape (n_grid**d, d)
        ``'ij'``-ordered nodes (reshape values to ``(n_grid,) * d`` for plots).
    log_p : ndarray, shape (n_grid**d,)
    """
    points, _, log_p, _ = _on_grid(energy_fn, lo, hi, n_grid, -1.0)
    return points, log_p


def _expect(log_p, log_w, values):
    """``∫ p f`` given normalised ``ln p`` on the grid; points with ``p = 0`` contribute 0."""
    mass = np.exp(log_p + log_w)
    keep = mass > 0
    return float(np.sum(mass[keep] * values[keep]))


@_shared_params
def entropy(energy_fn, lo, hi, n_grid=None):
    """Differential entropy ``S = -∫ p ln p = ln Z + <H>_p`` of ``p ∝ exp(-H)`` on the box.

    Parameters
    ----------
    {energy_fn}
    {box}

    Returns
    -------
    float
        Entropy in nats.
    """
    _, log_w, log_p, _ = _on_grid(energy_fn, lo, hi, n_grid, -1.0)
    return -_expect(log_p, log_w, log_p)


@_shared_params
def kl_divergence(logp_fn, logq_fn, lo, hi, n_grid=None):
    """``KL(p ‖ q) = ∫ p ln(p/q)`` with both densities renormalised on the box.

    Parameters
    ----------
    logp_fn, logq_fn : callable
        ``(n, d) -> (n,)`` log densities up to additive constants (an energy works as
        ``lambda x: -H(x)``).
    {box}

    Returns
    -------
    float
        In nats; ``inf`` when ``q`` vanishes where ``p`` does not.
    """
    _, log_w, log_p, _ = _on_grid(logp_fn, lo, hi, n_grid)
    _, _, log_q, _ = _on_grid(logq_fn, lo, hi, n_grid)
    if np.any(np.isneginf(log_q[np.exp(log_p + log_w) > 0])):
        return float("inf")
    return _expect(log_p, log_w, log_p - log_q)


@_shared_params
def cross_entropy(energy_fn, X, lo, hi, n_grid=None):
    """``<-ln p>_X = mean(H(X)) + ln Z`` for ``p ∝ exp(-H)`` on the box.

    On the training set of a converged MaxEnt model this equals its entropy (docs/method.md §12);
    on held-out data it measures generalisation.  Points outside the box give ``inf``.

    Parameters
    ----------
    {energy_fn}
    X : array_like, shape (n, d)
    {box}

    Returns
    -------
    float
        In nats per sample.
    """
    lo_, hi_ = as_box(lo, hi)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1 and lo_.shape[0] == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[1] != lo_.shape[0]:
        raise ValueError(f"X must have shape (n, {lo_.shape[0]}), got {X.shape}")
    if not np.all((X >= lo_) & (X <= hi_)):
        return float("inf")
    return float(np.mean(_evaluate(energy_fn, X))) + log_partition(energy_fn, lo_, hi_, n_grid)


@_shared_params
def maxent_entropy(observe_fn, obar, lo, hi, n_grid=None, lam0=None, tol=1e-10, max_iter=200):
    """The exact MaxEnt solution for fixed observables, by Newton on the dual with quadrature.

    Minimises the convex dual ``F(λ) = ln Z(λ) + λ·ō`` (docs/method.md §2), whose minimum is the
    maximum entropy ``S_max = min F`` under the constraints ``<O>_p = ō``.  No sampling: this is
    the reference against which a sampled λ fit, or the entropy curve of a Min-MaxEnt run
    (``S_max(θ_t)`` must decrease under the θ steps), is judged.

    Parameters
    ----------
    observe_fn : callable
        ``(n, d) -> (n, m)`` observables ``O(x)``.
    obar : array_like, shape (m,)
        Target averages (data means of ``O``).
    {box}
    lam0 : array_like, shape (m,), optional
        Starting multipliers (default zeros).
    tol : float
        Stop when the constraint residual ``max |<O>_p − ō|`` falls below ``tol``.
    max_iter : int

    Returns
    -------
    S : float
        ``min_λ F(λ)``, the maximum entropy (nats).
    lam : ndarray, shape (m,)
        The minimiser; ``converged`` is logged at debug level.
    """
    points, log_w, _ = grid(lo, hi, n_grid)
    chunks = [np.asarray(observe_fn(points[s:s + _CHUNK]), dtype=np.float64)
              for s in range(0, len(points), _CHUNK)]
    O = np.concatenate(chunks).reshape(len(points), -1)
    obar = np.asarray(obar, dtype=np.float64)
    m = O.shape[1]
    lam = np.zeros(m) if lam0 is None else np.array(lam0, dtype=np.float64)

    def dual(lam):
        a = -O @ lam + log_w
        log_z = logsumexp(a)
        return log_z + lam @ obar, np.exp(a - log_z)

    F, p = dual(lam)
    for _ in range(int(max_iter)):
        mean = p @ O
        resid = mean - obar
        if np.max(np.abs(resid)) < tol:
            break
        C = (O - mean).T @ ((O - mean) * p[:, None])
        ridge = 1e-12 * max(np.trace(C), 1e-300)
        step = np.linalg.solve(C + ridge * np.eye(m), resid)      # Newton: λ ← λ + C⁻¹ r
        t = 1.0
        while True:                                                # backtracking on F
            F_new, p_new = dual(lam + t * step)
            if F_new <= F + 1e-4 * t * (-resid @ step) or t < 1e-10:
                break
            t *= 0.5
        lam, F, p = lam + t * step, F_new, p_new
    return float(F), lam
