"""MCMC and fit diagnostics: autocorrelation, effective sample size, R-hat, χ².

Every function takes plain arrays, so the same checks serve a trained model's
energy trace, a single chain's coordinates, or a test's synthetic AR(1) process.

Traces are laid out ``(n_steps, n_chains)``: one column per persistent chain,
one row per recorded sweep.

References
----------
- A. D. Sokal, "Monte Carlo methods in statistical mechanics" (1997): the
  integrated autocorrelation time with an automatic window ``M >= c τ(M)``.
- D. Foreman-Mackey et al., emcee's ``autocorr.integrated_time``: the FFT
  estimator followed here.
- A. Vehtari, A. Gelman, D. Simpson, B. Carpenter, P.-C. Bürkner, "Rank-normalization,
  folding, and localization: an improved R-hat" (Bayesian Analysis, 2021).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

from .solvers import chi2  # noqa: F401  (Eq. 5; part of this module's API)

logger = logging.getLogger(__name__)

__all__ = [
    "autocorr_function",
    "integrated_time",
    "effective_sample_size",
    "split_rhat",
    "mixing_report",
    "chi2",
    "mode_crossing_fraction",
]


def _as_trace(trace):
    """Return ``trace`` as float64 ``(n_steps, n_chains)`` and whether it was 1-d."""
    x = np.asarray(trace, dtype=np.float64)
    if x.ndim == 1:
        return x[:, None], True
    if x.ndim != 2:
        raise ValueError(f"trace must be (n_steps,) or (n_steps, n_chains), got shape {x.shape}")
    return x, False


def autocorr_function(trace):
    """Normalised autocorrelation function of each chain, by FFT.

    Parameters
    ----------
    trace : array_like, shape (n_steps,) or (n_steps, n_chains)

    Returns
    -------
    rho : ndarray, shape (n_steps,) or (n_steps, n_chains)
        ``rho[t, k] = C_k(t) / C_k(0)`` with the biased estimator
        ``C_k(t) = (1/n) Σ_s (x_s - x̄)(x_{s+t} - x̄)``. A constant chain has
        ``rho = [1, 0, 0, ...]`` (it carries no correlation to measure).
    """
    x, flat = _as_trace(trace)
    n = x.shape[0]
    if n == 0:
        raise ValueError("trace has no steps")
    xc = x - x.mean(axis=0)
    # Zero-pad to at least 2n so the circular correlation equals the linear one.
    n_fft = 1 << int(2 * n - 1).bit_length()
    f = np.fft.rfft(xc, n=n_fft, axis=0)
    acov = np.fft.irfft(f * np.conjugate(f), n=n_fft, axis=0)[:n]
    c0 = acov[0].copy()
    constant = c0 <= 0.0
    c0[constant] = 1.0
    rho = acov / c0
    rho[:, constant] = 0.0
    rho[0, constant] = 1.0
    return rho[:, 0] if flat else rho


def _auto_window(taus, c):
    """First window ``M`` with ``M >= c τ(M)`` (Sokal), or the last lag."""
    m = np.arange(taus.shape[0])[:, None] < c * taus
    window = np.argmin(m, axis=0)
    window[np.all(m, axis=0)] = taus.shape[0] - 1
    return window


def integrated_time(trace, c=5.0, pooled=False):
    """Integrated autocorrelation time τ_int of each chain.

    ``τ = 1 + 2 Σ_{t=1}^{M} ρ(t)`` with Sokal's automatic window: the smallest
    ``M`` such that ``M >= c τ(M)``. For an AR(1) process with coefficient ρ,
    ``τ = (1 + ρ) / (1 - ρ)``.

    Parameters
    ----------
    trace : array_like, shape (n_steps,) or (n_steps, n_chains)
    c : float, default 5.0
        Window constant; 5 suits nearly exponential decays (emcee's default).
    pooled : bool, default False
        If True, average the autocorrelation functions over chains first and
        return one τ for the ensemble (emcee's estimator: lower variance, but
        hides a single stuck chain).

    Returns
    -------
    tau : ndarray, shape (n_chains,), or float
        A float when ``trace`` is 1-d or ``pooled`` is True. At least
        ``1 / log10(n_steps)`` (Stan's cap on the ESS of antithetic chains). Estimates are
        reliable only when ``n_steps`` exceeds about ``50 τ``;
        :func:`mixing_report` warns otherwise.
    """
    x, flat = _as_trace(trace)
    rho = autocorr_function(x)
    if pooled:
        rho = rho.mean(axis=1, keepdims=True)
    taus = 2.0 * np.cumsum(rho, axis=0) - 1.0
    window = _auto_window(taus, c)
    tau = taus[window, np.arange(taus.shape[1])]
    # Anticorrelated (or very short) chains can give τ near 0; cap the ESS at
    # n log10(n) as Stan does, so a handful of steps cannot claim many draws.
    tau = np.maximum(tau, 1.0 / np.log10(max(x.shape[0], 2)))
    if flat or pooled:
        return float(tau[0])
    return tau


def effective_sample_size(trace, c=5.0):
    """Effective sample size of each chain, ``n_steps / τ_int``.

    Parameters
    ----------
    trace : array_like, shape (n_steps,) or (n_steps, n_chains)
    c : float, default 5.0
        Window constant passed to :func:`integrated_time`.

    Returns
    -------
    ess : ndarray, shape (n_chains,), or float for a 1-d trace
    """
    x, flat = _as_trace(trace)
    ess = x.shape[0] / integrated_time(x, c=c)
    return float(ess[0]) if flat else ess


def _rhat_classic(x):
    """Gelman–Rubin potential scale reduction of ``(n, m)`` chains (no splitting)."""
    n = x.shape[0]
    means = x.mean(axis=0)
    w = x.var(axis=0, ddof=1).mean()
    b = n * means.var(ddof=1)
    if w <= 0.0:
        # All chains constant: identical constants have mixed, different ones have not.
        return 1.0 if b <= 0.0 else np.inf
    var_plus = (n - 1) / n * w + b / n
    return float(np.sqrt(var_plus / w))


def _rank_normalize(x):
    """Normal scores of the pooled ranks (Blom offset 3/8), shape preserved."""
    r = rankdata(x, method="average", axis=None).reshape(x.shape)
    return ndtri((r - 0.375) / (x.size + 0.25))


def split_rhat(trace, rank_normalize=True):
    """Split-R-hat across chains.

    Each chain is cut into halves (the odd middle draw is dropped), so a chain
    that drifts shows up as two disagreeing halves even with one chain.

    Parameters
    ----------
    trace : array_like, shape (n_steps, n_chains)
        At least 4 steps.
    rank_normalize : bool, default True
        If True, return Vehtari et al. (2021)'s
        ``max(R̂_bulk, R̂_tail)``: classic split-R-hat of the rank-normalised
        draws and of the rank-normalised draws folded about the median. This
        detects chains that differ in scale as well as location, and works for
        heavy tails. If False, the classic split-R-hat of the raw draws.

    Returns
    -------
    rhat : float
        ``>= 1`` up to sampling noise; values above 1.01 (Vehtari et al.) to
        1.05 mean the chains have not mixed.
    """
    x, _ = _as_trace(trace)
    n = x.shape[0] // 2
    if n < 2:
        raise ValueError(f"split_rhat needs at least 4 steps, got {x.shape[0]}")
    halves = np.concatenate([x[:n], x[-n:]], axis=1)
    if not rank_normalize:
        return _rhat_classic(halves)
    bulk = _rhat_classic(_rank_normalize(halves))
    folded = np.abs(halves - np.median(halves))
    tail = _rhat_classic(_rank_normalize(folded))
    return max(bulk, tail)


def mixing_report(trace, acceptance=None, rhat_threshold=1.05, min_ess=400.0,
                  tol=50.0, c=5.0, name="energy"):
    """Summarise how well the chains mixed, and warn when they have not.

    Parameters
    ----------
    trace : array_like, shape (n_steps, n_chains)
        A scalar recorded per chain and step, typically the energy ``H(x)``.
    acceptance : float, optional
        Metropolis acceptance rate, reported as given (acceptance alone does
        not show mixing: a tiny step accepts nearly always).
    rhat_threshold : float, default 1.05
        Warn when the rank-normalised split-R-hat exceeds this. Vehtari et al.
        recommend 1.01 for final inference from long chains; on a trace of
        ``n`` sweeps, even well-mixed chains give ``R̂ ≈ 1 + (τ - 1) / n``.
    min_ess : float, default 400
        Warn when the total effective sample size over chains is smaller.
    tol : float, default 50
        Warn when ``n_steps < tol * τ``: the trace is too short for τ itself
        to be trusted (emcee's criterion).
    c : float, default 5.0
        Window constant for :func:`integrated_time`.
    name : str
        What the trace is, used in warning messages.

    Returns
    -------
    report : dict
        ``n_steps``, ``n_chains``, ``acceptance``, ``tau`` (per chain, list),
        ``tau_mean``, ``tau_max``, ``tau_pooled``, ``ess`` (per chain, list),
        ``ess_total``, ``rhat`` (rank-normalised split), ``rhat_classic``,
        ``mixed`` (bool: R-hat and ESS both pass; a too-short trace only warns)
        and ``warnings`` (list of str, each also sent to ``logging.warning``).
        All values are JSON-serialisable.
    """
    x, _ = _as_trace(trace)
    n_steps, n_chains = x.shape
    tau = integrated_time(x, c=c)
    ess = n_steps / tau
    rhat = split_rhat(x) if n_steps >= 4 else float("nan")
    rhat_classic = split_rhat(x, rank_normalize=False) if n_steps >= 4 else float("nan")
    warnings = []
    mixed = bool(rhat <= rhat_threshold and ess.sum() >= min_ess)
    if not rhat <= rhat_threshold:
        warnings.append(
            f"{name}: split-R-hat {rhat:.4f} > {rhat_threshold}: chains have not mixed "
            "(they disagree in location or scale)")
    if ess.sum() < min_ess:
        warnings.append(
            f"{name}: total effective sample size {ess.sum():.1f} < {min_ess:g}: "
            "too few independent draws")
    if n_steps < tol * np.median(tau):
        warnings.append(
            f"{name}: trace of {n_steps} steps is shorter than {tol:g} x median tau "
            f"({np.median(tau):.1f}): the autocorrelation time is underestimated")
    for w in warnings:
        logger.warning(w)
    return {
        "n_steps": int(n_steps),
        "n_chains": int(n_chains),
        "acceptance": None if acceptance is None else float(acceptance),
        "tau": tau.tolist(),
        "tau_mean": float(tau.mean()),
        "tau_max": float(tau.max()),
        "tau_pooled": integrated_time(x, c=c, pooled=True),
        "ess": ess.tolist(),
        "ess_total": float(ess.sum()),
        "rhat": float(rhat),
        "rhat_classic": float(rhat_classic),
        "mixed": mixed,
        "warnings": warnings,
    }


def mode_crossing_fraction(trace_x, threshold=0.0):
    """Fraction of chains that visited both sides of ``threshold``.

    For a 1-d bimodal target (modes at ±μ), this measures whether chains move
    between modes, which the acceptance rate does not show (docs/method.md §11).

    Parameters
    ----------
    trace_x : array_like, shape (n_steps, n_chains) or (n_steps, n_chains, 1)
        Chain positions over time.
    threshold : float, default 0.0
        The boundary between the modes.

    Returns
    -------
    fraction : float
        In ``[0, 1]``; 0 means every chain stayed on its starting side.
    """
    x = np.asarray(trace_x, dtype=np.float64)
    if x.ndim == 3:
        if x.shape[2] != 1:
            raise ValueError(f"mode_crossing_fraction needs 1-d chains, got shape {x.shape}")
        x = x[:, :, 0]
    x, _ = _as_trace(x)
    above = x > threshold
    crossed = above.any(axis=0) & ~above.all(axis=0)
    return float(crossed.mean())
