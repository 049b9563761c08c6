"""``ln Z``, log-likelihoods and the entropy value of a fitted model, in any dimension.

``docs/method.md`` §9. The model is ``p(x) = exp(-H(x)) / Z`` on the support box Ω, with
``H = λ·O(x; θ)`` (plus a steering field's term, if any). Two ways to get ``ln Z``:

- :func:`quadrature_log_partition`: Simpson's rule on a grid over Ω (``d <= 2``), exact to
  the grid; its error is estimated against the grid of half the spacing's double.
- :func:`anneal`: annealed importance sampling (AIS) from the uniform distribution on Ω
  (``β = 0``, ``ln Z_0 = ln vol(Ω)``) to the model (``β = 1``) through ``π_β ∝ exp(-β H)``.
  Every chain starts uniform and alternates a weight update ``ln w += -(β_k - β_{k-1}) H(x)``
  with ``sweeps`` Metropolis sweeps (default 3) at ``β_k``: the model's own compiled
  kernels with ``λ`` (and the field strength) multiplied by ``β``, its move kind and
  boundary rule, the step re-adapted toward the model's ``target_acceptance`` after each
  step (the right step shrinks as ``β`` grows). The next ``β`` is chosen so that the
  conditional effective sample size of the incremental weights (given the current ones)
  stays at ``cess`` (Zhou, Johansen & Aston 2016), so the schedule is dense where the
  energy's spread is large. When the ESS
  of a group of chains halves, the group is resampled by weight (sequential Monte Carlo);
  the chains form 8 independent groups, and the error bar is the larger of the lineage
  estimator (Lee & Whiteley 2018; the delta method ``sqrt(1/ESS − 1/n)`` without
  resampling) and the spread of the groups' estimates (``docs/method.md`` §9). Both see
  only the chains there are: with one sweep per step the chains lag behind the moving
  target, the weights' spread lives in rare chains and the bar under-reports (z-scores up
  to 3.3 on separable energies with exact ``ln Z``); three sweeps keep ``sd(z)`` near 1.

The estimators' methods (``log_partition``, ``score_samples``, ``score``, ``entropy``) are
one-line calls into this module.
"""

import time
from typing import NamedTuple

import numpy as np

from . import quadrature
from ._validation import check_params
from .solvers import logmeanexp

__all__ = ["AISResult", "anneal", "quadrature_log_partition", "log_partition",
           "score_samples", "entropy", "log_mean_exp_error", "Likelihood"]


class AISResult(NamedTuple):
    """One annealed-importance-sampling run (:func:`anneal`).

    Attributes
    ----------
    log_z : float
        ``ln Z`` estimate, ``ln vol(Ω) + ln mean(w)``.
    std_err : float
        Its standard error: the larger of the delta-method and bootstrap errors.
    ess : float
        Effective sample size of the final weights (out of ``n_chains``).
    betas : ndarray
        The inverse temperatures visited, ``0 … 1``.
    log_weights : ndarray (n_chains,)
        Final ``ln w`` of every chain (``ln Z − ln vol(Ω)`` is their log-mean-exp).
    samples : ndarray (n_chains, d)
        Final chain states: weighted by ``w``, samples of the model.
    energies : ndarray (n_chains,)
        ``H`` of the final states.
    delta_err, bootstrap_err : float
        The two error estimates.
    sweeps : int
        Metropolis sweeps per chain, in all.
    seconds : float
        Wall time.
    ess_path, acceptance_path : ndarray
        ESS of the weights and the acceptance rate after each β step (diagnostics: where
        the weights degenerate).
    """

    log_z: float
    std_err: float
    ess: float
    betas: np.ndarray
    log_weights: np.ndarray
    samples: np.ndarray
    energies: np.ndarray
    delta_err: float
    bootstrap_err: float
    sweeps: int
    seconds: float
    ess_path: np.ndarray
    acceptance_path: np.ndarray


#: AIS chains unless told otherwise (``method="auto"`` uses quadrature for d <= 2, so this
#: sets the cost in d > 2): on the 200-epoch digits model (d = 64, scan moves, 3 sweeps per β)
#: 256 chains gave ln Z to ±0.16-0.2 nats in about 3 minutes on one thread of a loaded 2-core
#: host; on separable quadratic energies ±0.04 (10-d) to ±0.05 nats (64-d), with honest bars
#: (docs/results.md, "AIS against exact ln Z").
_DEFAULT_CHAINS = 256


def _ess(log_w):
    w = np.exp(log_w - log_w.max())
    return float(w.sum() ** 2 / np.sum(w * w))


def log_mean_exp_error(log_w, n_bootstrap=200, rng=None):
    """``(delta, bootstrap)`` standard errors of ``ln mean(exp(log_w))`` over independent rows.

    The delta method gives ``sqrt(1/ESS − 1/n)`` (the relative error of ``mean(w)``); the
    bootstrap resamples the rows ``n_bootstrap`` times (0: skipped, returned as 0).
    """
    log_w = np.asarray(log_w, dtype=np.float64)
    n = len(log_w)
    delta = float(np.sqrt(max(1.0 / _ess(log_w) - 1.0 / n, 0.0)))
    if n_bootstrap <= 0 or n < 2:
        return delta, 0.0
    rng = np.random.default_rng(rng)
    w = np.exp(log_w - log_w.max())
    idx = rng.integers(0, n, size=(int(n_bootstrap), n))
    means = w[idx].mean(axis=1)
    boot = float(np.std(np.log(means), ddof=1)) if np.all(means > 0) else float("inf")
    return delta, boot


def _systematic(log_w, rng):
    """Systematic resampling: ``n`` indices drawn in proportion to the weights."""
    w = np.exp(log_w - log_w.max())
    c = np.cumsum(w / w.sum())
    c[-1] = 1.0
    u = (rng.random() + np.arange(len(w))) / len(w)
    return np.searchsorted(c, u)


def _lineage_error(log_w, eve, n_resampled, n_bootstrap, rng):
    """``(delta, bootstrap)`` errors of ``ln Ẑ`` after resampling, from the lineages.

    The delta error is the estimator of Lee & Whiteley (2018, Biometrika 105:609),
    ``σ² = 1 − (n/(n−1))^(R+1) (1 − Σ_e M_e²)``, ``M_e`` the final normalized weight of the
    chains descending from the β = 0 chain ``e`` and ``R`` the resamplings; without
    resampling it is ``(1/ESS − 1/n)·n/(n−1)``. The bootstrap resamples whole lineages.
    Both are only as good as the number of distinct lineages left (few: a loose bar).
    """
    n = len(log_w)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    _, inverse = np.unique(eve, return_inverse=True)
    mass = np.bincount(inverse, weights=w)
    var = 1.0 - (n / (n - 1.0)) ** (n_resampled + 1) * (1.0 - float(np.sum(mass * mass)))
    delta = float(np.sqrt(max(var, 0.0)))
    k = len(mass)
    if n_bootstrap <= 0 or k < 2:
        return delta, (float("inf") if k < 2 else 0.0)
    # lineages as units: a resampled set of lineages keeps each lineage's summed weight and
    # chain count, and the estimate's relative change is that of the weight per chain
    counts = np.bincount(inverse).astype(float)
    picks = rng.integers(0, k, size=(int(n_bootstrap), k))
    ratio = mass[picks].sum(axis=1) / counts[picks].sum(axis=1) * n
    boot = float(np.std(np.log(ratio), ddof=1)) if np.all(ratio > 0) else float("inf")
    return delta, boot


def _group_errors(log_w, eve, log_z_acc, n_resampled, bounds):
    """``(lineage, between-groups)`` standard errors of ``ln Ẑ`` for grouped chains.

    Each group's ``Ẑ_g`` has the lineage error of :func:`_lineage_error`; the groups'
    relative errors combine with weights ``Ẑ_g / Σ Ẑ``. The between-groups error is the
    spread of the ``Ẑ_g``: ``sd(Ẑ_g) / (sqrt(G) mean(Ẑ_g))`` (``0`` for one group).
    """
    log_zg = np.array([log_z_acc[g] + logmeanexp(log_w[a:b])
                       for g, (a, b) in enumerate(bounds)])
    share = np.exp(log_zg - log_zg.max())
    share /= share.sum()
    var = 0.0
    for g, (a, b) in enumerate(bounds):
        lineage, _ = _lineage_error(log_w[a:b], eve[a:b], int(n_resampled[g]), 0, None)
        var += (share[g] * lineage) ** 2
    k = len(bounds)
    between = float(np.std(share, ddof=1) * np.sqrt(k)) if k > 1 else 0.0
    return float(np.sqrt(var)), between


def _next_beta(beta, log_w, energy, cess):
    """The largest ``β' <= 1`` whose incremental weights keep the conditional ESS at ``cess``."""
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    e = energy - energy.min()

    def cond_ess(delta):
        u = np.exp(-delta * e)         # shifts of H cancel in the ratio
        return float((w @ u) ** 2 / (w @ (u * u)))

    rest = 1.0 - beta
    if cond_ess(rest) >= cess:
        return 1.0
    lo, hi = 0.0, rest
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if cond_ess(mid) >= cess:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-3 * hi:
            break
    return beta + max(lo, 1e-12)


def anneal(model, n_chains=None, sweeps=3, cess=0.999, random_state=0, max_steps=100_000,
           n_bootstrap=200, resample=0.5, groups=8):
    """Annealed importance sampling of ``ln Z`` for a fitted model (module docstring).

    Parameters
    ----------
    model : fitted MaxEnt or MinMaxEnt
    n_chains : int, optional
        Annealing chains (default 256).
    sweeps : int
        Metropolis sweeps at each ``β`` (default 3: with one, the chains lag behind the
        moving target, the weights spread more and the error bar under-reports the error,
        ``docs/method.md`` §9).
    cess : float in (0, 1)
        Conditional ESS fraction kept by each ``β`` step: closer to 1 means more, smaller
        steps (cost grows about as ``1/sqrt(1 − cess)``, the variance falls as that).
    random_state : int or numpy.random.Generator
        Seed of the starting states, the chains' random streams and the bootstrap.
    max_steps : int
        Cap on the number of ``β`` steps.
    n_bootstrap : int
        Bootstrap resamples for the error bar.
    resample : float or None
        Resample the chains (systematic resampling by weight) whenever the ESS of the weights
        falls below this fraction of the chains: chains that lag behind the moving target
        are replaced by copies of the others, which then diverge through their own random
        streams (sequential Monte Carlo; ``ln Z`` is the sum of the log mean weights between
        resamplings). ``None``: plain AIS, independent chains.
    groups : int
        With resampling, the chains form this many independent groups (resampled each within
        itself) so that the spread of the groups' estimates gives a second error bar.

    Returns
    -------
    AISResult
    """
    from .backends import proposals_per_sweep
    from .kernels import seed_states

    t0 = time.perf_counter()
    rng = np.random.default_rng(random_state)
    n = _DEFAULT_CHAINS if n_chains is None else int(n_chains)
    lo, hi = model.support_
    d = len(lo)
    backend = model._backend
    spec, params = model._spec_params()
    lam = np.ascontiguousarray(model.lambda_, dtype=np.float64)
    spec2, params2, lam2 = model._field()
    move, boundary = model.move_, model.boundary
    per_sweep = float(sweeps * proposals_per_sweep(move, d))
    target = float(model.target_acceptance)
    cap = float(np.max(hi - lo))

    x = lo + (hi - lo) * rng.random((n, d))
    dtype = getattr(backend, "dtype", np.float64)
    if dtype != np.float64:     # float32 chains (dtype="float32" models)
        from .chains import as_dtype

        x = as_dtype(x, lo, hi, dtype)
    rng_state = seed_states(int(rng.integers(2**63 - 1)), n)
    log_vol = float(np.sum(np.log(hi - lo)))
    log_w = np.zeros(n)
    energy = backend.energy(spec, params, lam, x, (spec2, params2, lam2))   # H at β = 1
    step = np.full(n, 0.5 * float(np.min(hi - lo)))
    beta, betas, total = 0.0, [0.0], 0
    ess_path, acc_path = [float(n)], [1.0]
    eve = np.arange(n)                 # each chain's ancestor at β = 0 (its lineage)
    n_groups = int(groups) if resample is not None and n >= 8 * int(groups) else 1
    size = n // n_groups
    gid = np.minimum(np.arange(n) // size, n_groups - 1)
    bounds = [(g * size, n if g == n_groups - 1 else (g + 1) * size) for g in range(n_groups)]
    log_z_acc = np.zeros(n_groups)     # per group: sum of log mean weights before resets
    n_resampled = np.zeros(n_groups, dtype=np.int64)
    while beta < 1.0:
        if len(betas) > max_steps:
            raise RuntimeError(f"annealing needed more than max_steps={max_steps} β steps "
                               f"(reached β = {beta:.3g}); lower cess or raise max_steps")
        new = _next_beta(beta, log_w + log_z_acc[gid], energy, cess)
        log_w -= (new - beta) * energy
        beta = new
        betas.append(beta)
        lam_b, field_b = lam * beta, (spec2, params2, lam2 * beta)
        e_beta = np.ascontiguousarray(energy * beta, dtype=x.dtype)
        accepted = np.zeros(n, dtype=np.int64)
        backend.sweep(spec, params, lam_b, field_b, x, e_beta, lo, hi, step, int(sweeps),
                      move, boundary, rng_state, accepted)
        total += int(sweeps)
        energy = e_beta / beta
        acc = float(accepted.mean()) / per_sweep
        ess_path.append(_ess(log_w + log_z_acc[gid]))
        acc_path.append(acc)
        for g, (a, b) in enumerate(bounds):
            if resample is None or beta >= 1.0 or _ess(log_w[a:b]) >= float(resample) * (b - a):
                continue
            log_z_acc[g] += logmeanexp(log_w[a:b])
            idx = a + _systematic(log_w[a:b], rng)
            x[a:b], energy[a:b], eve[a:b] = x[idx], energy[idx], eve[idx]
            log_w[a:b] = 0.0           # the random streams stay with their slots
            n_resampled[g] += 1
        step = np.minimum(step * np.exp(np.log(max(acc, 1e-3) / target)), cap)
    # the carried energies are exact up to rounding; recompute once for the result
    energy = backend.energy(spec, params, lam, x, (spec2, params2, lam2))
    full = log_w + log_z_acc[gid]      # each chain's whole log weight
    if np.any(n_resampled) or n_groups > 1:
        delta, boot = _group_errors(log_w, eve, log_z_acc, n_resampled, bounds)
    else:
        delta, boot = log_mean_exp_error(log_w, n_bootstrap, rng)
    return AISResult(log_vol + logmeanexp(full), max(delta, boot), _ess(full),
                     np.asarray(betas), full, x, energy, delta, boot, total,
                     time.perf_counter() - t0, np.asarray(ess_path), np.asarray(acc_path))


def quadrature_log_partition(model, n_grid=None):
    """``(ln Z, error)`` by Simpson's rule over the support (``d <= 2``).

    The error is the difference from the grid with half as many intervals per side (a
    conservative bound: Simpson's error falls 16-fold when the spacing halves).
    """
    lo, hi = model.support_
    if len(lo) > 2:
        raise ValueError(f"quadrature needs d <= 2, the model has d = {len(lo)}; use "
                         f"method='ais'")
    n = int(n_grid) if n_grid is not None else (4001 if len(lo) == 1 else 401)
    fine = quadrature.log_partition(model.energy, lo, hi, n)
    coarse = quadrature.log_partition(model.energy, lo, hi, (n - 1) // 2 + 1 if n >= 5 else n)
    return fine, abs(fine - coarse)


def _state_key(model, method, kwargs):
    field = getattr(model, "field_", None)
    parts = [model.lambda_.tobytes(), np.asarray(model.observables_.theta).tobytes(),
             model.support_[0].tobytes(), model.support_[1].tobytes(), method,
             repr(sorted(kwargs.items()))]
    if field is not None:
        parts += [np.asarray(field.network.theta).tobytes(), repr(model.field_strength_),
                  repr(getattr(field, "target", None))]
    return hash(tuple(parts))


def _resolve(model, method):
    if method == "auto":
        return "quadrature" if model.n_features_in_ <= 2 else "ais"
    if method not in ("ais", "quadrature"):
        raise ValueError(f"method must be 'auto', 'ais' or 'quadrature', got {method!r}")
    return method


def _run(model, method, n_grid=None, **ais):
    """``(ln Z, error, AISResult or None)``, cached per parameter state and arguments."""
    method = _resolve(model, method)
    kwargs = {"n_grid": n_grid} if method == "quadrature" else ais
    key = _state_key(model, method, kwargs)
    cache = model.__dict__.get("_log_z_cache")
    if cache is not None and cache[0] == key:
        return cache[1]
    if method == "quadrature":
        log_z, err = quadrature_log_partition(model, n_grid)
        out = (log_z, err, None)
    else:
        res = anneal(model, **ais)
        out = (res.log_z, res.std_err, res)
    model.__dict__["_log_z_cache"] = (key, out)
    return out


def log_partition(model, method="auto", n_grid=None, **ais):
    """``(ln Z, standard error)`` of a fitted model: quadrature for ``d <= 2`` (``"auto"``),
    else AIS (:func:`anneal`, keyword arguments passed on)."""
    log_z, err, _ = _run(model, method, n_grid, **ais)
    return log_z, err


def score_samples(model, X, method="auto", n_grid=None, **ais):
    """``ln p(x) = -H(x) - ln Z`` per row; ``-inf`` for rows outside the support box."""
    X = model._check_X(X)
    lo, hi = model.support_
    inside = np.all((X >= lo) & (X <= hi), axis=1)
    out = np.full(len(X), -np.inf)
    if np.any(inside):
        log_z, _, _ = _run(model, method, n_grid, **ais)
        out[inside] = -model.energy(X[inside]) - log_z
    return out


def entropy(model, method="auto", n_grid=None, **ais):
    """``(S, error)``: the entropy ``S = ln Z + <H>_p`` of the fitted model.

    At moment matching it is the MaxEnt entropy the θ steps minimise, equal to the training
    cross-entropy (``docs/method.md`` §12). By quadrature for ``d <= 2``; otherwise ``ln Z``
    and the weighted final states of the AIS run, whose error adds ``sd(H)/sqrt(ESS)``.
    """
    method = _resolve(model, method)
    if method == "quadrature":
        lo, hi = model.support_
        n = int(n_grid) if n_grid is not None else (4001 if len(lo) == 1 else 401)
        _, err = quadrature_log_partition(model, n)
        return quadrature.entropy(model.energy, lo, hi, n), err
    log_z, err, res = _run(model, method, **ais)
    w = np.exp(res.log_weights - res.log_weights.max())
    w /= w.sum()
    mean_h = float(w @ res.energies)
    var_h = float(w @ (res.energies - mean_h) ** 2)
    return log_z + mean_h, float(np.sqrt(err ** 2 + var_h / res.ess))


class Likelihood:
    """The estimators' likelihood methods: ``ln Z``, ``ln p(x)``, the score and the entropy."""

    def log_partition(self, method="auto", *, n_chains=None, sweeps=3, cess=0.999,
                      random_state=0, n_grid=None):
        """``(ln Z, standard error)`` of ``Z = ∫_Ω exp(-H)`` (``docs/method.md`` §9).

        Parameters
        ----------
        method : {"auto", "ais", "quadrature"}
            ``"auto"``: Simpson quadrature on the support for ``d <= 2`` (its error: the
            change from a grid of half the nodes per side), annealed importance sampling
            otherwise (:func:`mme_numba.likelihood.anneal`: uniform start on Ω, adaptive β
            schedule, this model's compiled Metropolis sweeps at ``β·λ``).
        n_chains : int, optional
            AIS chains (default 256).
        sweeps : int
            AIS sweeps per β step.
        cess : float
            Conditional ESS fraction each β step keeps (closer to 1: more, smaller steps).
        random_state : int
            Seed of the AIS run (the model's own chains and streams are not touched).
        n_grid : int, optional
            Quadrature nodes per side.

        Returns
        -------
        (float, float)
            The result is cached for the current parameters and arguments.
        """
        self._check_fitted("log_partition")
        return log_partition(self, **self._lz_args(method, n_chains, sweeps, cess,
                                                   random_state, n_grid))

    def score_samples(self, X, method="auto", *, n_chains=None, sweeps=3, cess=0.999,
                      random_state=0, n_grid=None):
        """Log density ``ln p(x) = -H(x) - ln Z`` per row, ``-inf`` outside the support.

        ``ln Z`` comes from :meth:`log_partition` (same arguments, cached). Returns ``(n,)``.
        """
        self._check_fitted("score_samples")
        return score_samples(self, X, **self._lz_args(method, n_chains, sweeps, cess,
                                                      random_state, n_grid))

    def score(self, X, method="auto", **kwargs):
        """Mean log-likelihood of the rows of ``X`` (the negative held-out NLL, in nats)."""
        return float(np.mean(self.score_samples(X, method, **kwargs)))

    def entropy(self, method="auto", *, n_chains=None, sweeps=3, cess=0.999, random_state=0,
                n_grid=None):
        """``(S, standard error)``: the entropy ``S = ln Z + <H>_p`` of the model.

        At moment matching this is the MaxEnt entropy the θ steps minimise and equals the
        training cross-entropy (``docs/method.md`` §12). Quadrature for ``d <= 2``
        (``method="auto"``), else ``ln Z`` and ``<H>_p`` from one AIS run (arguments as
        :meth:`log_partition`).
        """
        self._check_fitted("entropy")
        return entropy(self, **self._lz_args(method, n_chains, sweeps, cess, random_state,
                                             n_grid))

    def _lz_args(self, method, n_chains, sweeps, cess, random_state, n_grid):
        check_params({"method": method, "ais_chains": n_chains, "ais_sweeps": sweeps,
                      "cess": cess, "ais_random_state": random_state, "n_grid": n_grid})
        return {"method": method, "n_grid": n_grid, "n_chains": n_chains, "sweeps": sweeps,
                "cess": cess, "random_state": random_state}

    def log_density(self, X, n_grid=None):
        """Normalized ``ln p(x) = -H(x) - ln Z`` with ``ln Z`` by quadrature (``d <= 2``)."""
        self._check_fitted("log_density")
        lo, hi = self.support_
        kwargs = {} if n_grid is None else {"n_grid": n_grid}
        return -self.energy(X) - quadrature.log_partition(self.energy, lo, hi, **kwargs)
