"""Synthetic mixtures with exact densities: the paper's low-dimensional targets.

Gaussian and Cauchy mixtures with axis-aligned (diagonal) components.  In ``d`` dimensions a
Cauchy component is the product of ``d`` independent one-dimensional Cauchy densities (one
median and one half width per coordinate), which keeps the density exact and separable.

Every sampler returns ``(n, d)`` float64 rows; every ``*_logpdf`` takes ``(n, d)`` (or
``(n,)`` for ``d = 1``) and returns ``(n,)`` natural-log densities on the whole of ``R^d``.
:func:`truncated_logpdf` renormalises such a density on a support box.
"""

import numpy as np
from scipy.special import logsumexp

from ..quadrature import doc_entries

__all__ = [
    "gaussian_mixture", "gaussian_mixture_logpdf",
    "cauchy_mixture", "cauchy_mixture_logpdf",
    "truncated_logpdf",
]

_LOG_2PI = np.log(2.0 * np.pi)


def _rng(seed):
    """A ``numpy.random.Generator`` from an int, ``None`` or an existing generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _components(locs, scales, weights):
    """Validate mixture parameters.

    Returns ``locs (k, d)``, ``scales (k, d)`` and ``log_weights (k,)``.  Scalars per
    component (a ``(k,)`` sequence) mean ``d = 1``.
    """
    locs = np.asarray(locs, dtype=np.float64)
    if locs.ndim == 0:
        locs = locs.reshape(1, 1)
    elif locs.ndim == 1:
        locs = locs[:, None]
    if locs.ndim != 2:
        raise ValueError(f"component locations must be (k,) or (k, d), got shape {locs.shape}")
    k, d = locs.shape
    scales = np.asarray(scales, dtype=np.float64)
    if scales.ndim == 0:
        scales = np.full((k, d), float(scales))
    elif scales.ndim == 1:
        if scales.shape[0] != k:
            raise ValueError(f"{scales.shape[0]} scales for {k} components")
        scales = np.repeat(scales[:, None], d, axis=1)
    if scales.shape != (k, d):
        raise ValueError(f"scales must be scalar, (k,) or (k, d) = ({k}, {d}); got {scales.shape}")
    if np.any(scales <= 0):
        raise ValueError("scales must be positive")
    if weights is None:
        weights = np.full(k, 1.0 / k)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (k,) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"weights must be {k} non-negative numbers with a positive sum")
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights / weights.sum())
    return locs, scales, log_weights


def _as_rows(x, d):
    """``x`` as ``(n, d)`` float64; a 1-d array is read as ``n`` points when ``d == 1``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1 and d == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"expected points of shape (n, {d}), got {x.shape}")
    return x


def _sample(n, locs, scales, log_weights, rng, draw):
    component = rng.choice(len(log_weights), size=n, p=np.exp(log_weights))
    noise = draw(rng, (n, locs.shape[1]))
    return locs[component] + scales[component] * noise


def _log_mixture(x, locs, scales, weights, log_kernel):
    """``ln Σ_k w_k p_k(x)`` with ``ln p_k = log_kernel(z, scales)``, ``z = (x - loc_k) / scale_k``
    of shape ``(n, k, d)`` and the scales ``(k, d)``."""
    locs, sc, lw = _components(locs, scales, weights)
    x = _as_rows(x, locs.shape[1])
    z = (x[:, None, :] - locs[None]) / sc[None]
    return logsumexp(log_kernel(z, sc) + lw, axis=1)


_shared_params = doc_entries(
    n="n : int\n        Number of samples.",
    weights_seed="weights : array_like, shape (k,), optional\n        Mixture weights (normalised "
                 "here); equal by default.\n    seed : int, None or numpy.random.Generator\n"
                 "        Random state.")


@_shared_params
def gaussian_mixture(n, means=(-2.0, 2.0), scales=(0.5, 0.5), weights=None, seed=0):
    """Draw from a mixture of axis-aligned Gaussians.

    Parameters
    ----------
    {n}
    means : array_like, shape (k,) or (k, d)
        Component means; a ``(k,)`` sequence of scalars means one-dimensional data.
    scales : float or array_like, shape (k,) or (k, d)
        Component standard deviations.
    {weights_seed}

    Returns
    -------
    X : ndarray, shape (n, d)
    """
    locs, sc, lw = _components(means, scales, weights)
    return _sample(int(n), locs, sc, lw, _rng(seed), lambda r, s: r.standard_normal(s))


def gaussian_mixture_logpdf(x, means=(-2.0, 2.0), scales=(0.5, 0.5), weights=None):
    """Exact log density of :func:`gaussian_mixture` on ``R^d``.

    Parameters
    ----------
    x : array_like, shape (n, d) or (n,) when d = 1
    means, scales, weights : as in :func:`gaussian_mixture`

    Returns
    -------
    logp : ndarray, shape (n,)
    """
    return _log_mixture(x, means, scales, weights, lambda z, sc: (
        -0.5 * np.sum(z * z, axis=2) - np.sum(np.log(sc), axis=1) - 0.5 * z.shape[2] * _LOG_2PI))


@_shared_params
def cauchy_mixture(n, medians=(-2.0, 2.0), scales=(0.5, 0.5), weights=None, seed=0):
    """Draw from a mixture of Cauchy (Lorentzian) densities.

    Parameters
    ----------
    {n}
    medians : array_like, shape (k,) or (k, d)
        Component medians; a ``(k,)`` sequence of scalars means one-dimensional data.
    scales : float or array_like, shape (k,) or (k, d)
        Half widths at half maximum ``γ``.  In ``d > 1`` each coordinate is an independent
        Cauchy variable.
    {weights_seed}

    Returns
    -------
    X : ndarray, shape (n, d)
    """
    locs, sc, lw = _components(medians, scales, weights)
    return _sample(int(n), locs, sc, lw, _rng(seed), lambda r, s: r.standard_cauchy(s))


def cauchy_mixture_logpdf(x, medians=(-2.0, 2.0), scales=(0.5, 0.5), weights=None):
    """Exact log density of :func:`cauchy_mixture` on ``R^d``.

    Parameters
    ----------
    x : array_like, shape (n, d) or (n,) when d = 1
    medians, scales, weights : as in :func:`cauchy_mixture`

    Returns
    -------
    logp : ndarray, shape (n,)
    """
    return _log_mixture(x, medians, scales, weights, lambda z, sc: (
        -np.sum(np.log1p(z * z), axis=2) - np.sum(np.log(np.pi * sc), axis=1)))


def truncated_logpdf(logpdf, lo, hi, n_grid=4001):
    """Restrict a density to the box ``[lo, hi]`` and renormalise it there.

    The mass of the box is computed once, by Simpson quadrature
    (:func:`mme_numba.quadrature.log_partition`), so the box must be 1- or 2-dimensional.

    Parameters
    ----------
    logpdf : callable
        ``(n, d) -> (n,)`` log density on ``R^d`` (e.g. a ``functools.partial`` of
        :func:`gaussian_mixture_logpdf`).
    lo, hi : float or array_like, shape (d,)
        The box.
    n_grid : int
        Quadrature points per dimension.

    Returns
    -------
    truncated : callable
        ``(n, d) -> (n,)``: ``logpdf(x) - ln P(box)`` inside the box and ``-inf`` outside.
        Its attribute ``log_mass`` holds ``ln P(box)``.
    """
    from mme_numba import quadrature

    lo_, hi_ = quadrature.as_box(lo, hi)
    log_mass = quadrature.log_partition(lambda x: -logpdf(x), lo_, hi_, n_grid=n_grid)

    def truncated(x):
        x = _as_rows(x, lo_.shape[0])
        out = logpdf(x) - log_mass
        inside = np.all((x >= lo_) & (x <= hi_), axis=1)
        return np.where(inside, out, -np.inf)

    truncated.log_mass = log_mass
    return truncated
