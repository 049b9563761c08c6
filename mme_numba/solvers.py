"""λ solvers (θ fixed) and the ADAM optimizer shared by the λ and θ steps.

The λ fit is a step on the convex dual ``F(λ) = ln Z(λ) + λ·ō`` (docs/method.md §2): its gradient
is ``-r`` with ``r = <O>_p - ō`` and its Hessian is ``C = Cov_p(O, O)``. Both solvers work from
one batch of model samples drawn at ``λ0`` and may take several steps on it by reweighting,
``w_k ∝ exp(-(λ - λ0)·O_k)``, while the effective sample size stays high.

- :class:`NewtonSolver`: Levenberg–Marquardt step ``(C + μI)^{-1} r`` inside a trust region
  ``δᵀCδ <= max_step²`` (``½δᵀCδ`` is the KL divergence between the two models to second
  order), then backtracking until the reweighted estimate of ``F`` decreases and the ESS stays
  above ``min_ess``. This is what keeps Newton stable with nearly collinear neural
  observables, where a fixed ridge was shown to diverge (docs/method.md §11).
- :class:`AdamSolver`: ADAM on the variance-scaled cost χ² of Eq. 5, gradient
  ``∂χ²/∂λ_j = -2 Σ_i (r_i/σ_i²) C_ij`` (Eq. 6), with ``r`` and ``C`` taken from independent
  halves of the samples so that their product is unbiased.
"""

import logging

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["Adam", "AdamSolver", "NewtonSolver", "make_lambda_solver", "weighted_moments",
           "dual_change", "chi2", "chi2_gradient", "log_weights", "logmeanexp",
           "reweighted_kl"]


class Adam:
    """ADAM (Kingma & Ba 2014) on one flat parameter vector; its state is plain arrays.

    Parameters
    ----------
    lr : float
        Step size.
    beta1, beta2, eps : float
        The usual ADAM constants.
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        if not lr > 0:
            raise ValueError(f"Adam: learning rate must be > 0, got {lr}")
        self.lr, self.beta1, self.beta2, self.eps = float(lr), float(beta1), float(beta2), float(eps)
        self.m = self.v = None
        self.t = 0

    def step(self, params, grad):
        """Return ``params`` moved one ADAM step down ``grad`` (new array)."""
        grad = np.asarray(grad, dtype=np.float64)
        if self.m is None or self.m.shape != grad.shape:
            self.m, self.v, self.t = np.zeros_like(grad), np.zeros_like(grad), 0
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        mhat = self.m / (1 - self.beta1 ** self.t)
        vhat = self.v / (1 - self.beta2 ** self.t)
        return params - self.lr * mhat / (np.sqrt(vhat) + self.eps)

    def get_state(self, prefix):
        """Arrays and scalars that restore this optimizer exactly (for checkpoints)."""
        if self.m is None:
            return {}
        return {f"{prefix}_m": self.m, f"{prefix}_v": self.v, f"{prefix}_t": np.array(self.t)}

    def set_state(self, arrays, prefix):
        if f"{prefix}_m" in arrays:
            self.m = np.array(arrays[f"{prefix}_m"], dtype=np.float64)
            self.v = np.array(arrays[f"{prefix}_v"], dtype=np.float64)
            self.t = int(arrays[f"{prefix}_t"])


def reweighted_kl(delta_energy, logw=None):
    """``KL(p ‖ p')`` for ``p' ∝ p·exp(-ΔH)`` from samples of ``p``: ``<ΔH> + ln <exp(-ΔH)>``.

    Exact in expectation over samples of ``p`` and never negative (Jensen). ``logw``
    reweights the samples when they were drawn from a neighbour of ``p``.
    """
    dh = np.asarray(delta_energy, dtype=np.float64)
    if logw is None:
        mean = float(dh.mean())
    else:
        w = np.exp(logw - logw.max())
        mean = float(w @ dh / w.sum())
    return max(mean + logmeanexp(-dh, logw), 0.0)


def log_weights(O, delta):
    """Log reweighting factors ``-δ·O_k`` for samples drawn at ``λ0`` evaluated at ``λ0 + δ``."""
    return -(O @ delta)


def weighted_moments(O, logw=None):
    """Mean, covariance and ESS fraction of samples ``O (M, m)`` with log weights ``logw (M,)``.

    Returns
    -------
    mean : ndarray (m,)
    cov : ndarray (m, m)
    ess_fraction : float
        ``(Σw)² / (M Σw²)``, 1 for equal weights.
    """
    M = O.shape[0]
    if logw is None:
        mean = O.mean(axis=0)
        dev = O - mean
        return mean, dev.T @ dev / M, 1.0
    w = np.exp(logw - logw.max())
    w /= w.sum()
    mean = w @ O
    dev = O - mean
    cov = (dev * w[:, None]).T @ dev
    ess = 1.0 / (M * np.sum(w * w))
    return mean, cov, float(ess)


def logmeanexp(a, logw=None):
    """``ln Σ w_k exp(a_k)`` with normalised weights ``w ∝ exp(logw)`` (uniform if ``None``)."""
    a = np.asarray(a, dtype=np.float64)
    if logw is None:
        amax = a.max()
        return float(amax + np.log(np.mean(np.exp(a - amax))))
    lw = logw - logw.max()
    w = np.exp(lw) / np.exp(lw).sum()
    amax = a.max()
    return float(amax + np.log(np.sum(w * np.exp(a - amax))))


def dual_change(O, delta, obar, logw=None):
    """Reweighted estimate of ``F(λ+δ) - F(λ)`` with ``F = ln Z + λ·ō``.

    ``ln Z(λ+δ) - ln Z(λ) = ln <exp(-δ·O)>_λ``, estimated from the samples (weighted by ``logw``
    when the samples were drawn at a different λ).
    """
    a = log_weights(O, delta)
    if logw is None:
        return float(logmeanexp(a) + delta @ obar)
    return float(logmeanexp(a + logw) - logmeanexp(logw) + delta @ obar)


def chi2(residual, variance, eps=1e-12):
    """Variance-scaled moment mismatch of Eq. 5, ``χ² = Σ_i r_i² / σ_i²``.

    Parameters
    ----------
    residual : array_like, shape (..., m)
        ``r = <O>_model - ō``.
    variance : array_like, shape (m,) or (..., m)
        Data variances ``σ_i² = Var_data(O_i)``.
    eps : float, default 1e-12
        Floor on ``σ_i²``: an observable constant on the data (σ_i = 0) would
        otherwise divide by zero; with the floor, any mismatch on it dominates χ².

    Returns
    -------
    chi2 : float or ndarray, shape (...)
    """
    r = np.asarray(residual, dtype=np.float64)
    v = np.maximum(np.asarray(variance, dtype=np.float64), eps)
    out = np.sum(r * r / v, axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def chi2_gradient(residual, cov, variance):
    """``∂χ²/∂λ_j = −2 Σ_i (r_i/σ_i²) C_ij`` (Eq. 6), using ``∂<O_i>/∂λ_j = −C_ij``."""
    return -2.0 * (residual / variance) @ cov


class _LambdaSolver:
    """Shared loop: ``n_steps`` reweighted updates from one batch of samples.

    Every step is shortened, if needed, so that it changes the model by at most ``max_kl``
    nats of KL divergence (estimated from the samples by reweighting, no new sampling): the
    persistent chains have to follow each step, and the first steps from the uniform start
    moved 5-d PCA models by several nats at once, further than ten sweeps carry the chains.
    """

    #: Largest KL divergence (nats) between the models before and after one λ step.
    max_kl = 0.1

    def _within_kl(self, step, O, logw):
        kl = reweighted_kl(O @ step, logw)      # ΔH = δ·O on the samples
        if np.isfinite(kl) and kl > self.max_kl:
            return step * np.sqrt(self.max_kl / kl)
        return step

    def __init__(self, n_steps=1, min_ess=0.5):
        if int(n_steps) < 1:
            raise ValueError(f"lambda_steps must be >= 1, got {n_steps}")
        if not 0.0 < min_ess <= 1.0:
            raise ValueError(f"min_ess must be in (0, 1], got {min_ess}")
        self.n_steps, self.min_ess = int(n_steps), float(min_ess)

    def fit(self, lam, O, obar, var, active):
        """Update λ from samples ``O (M, m)`` drawn at ``lam``.

        Parameters
        ----------
        lam : ndarray (m,)
            Multipliers the samples were drawn at.
        O : ndarray (M, m)
            Observables on the model samples.
        obar, var : ndarray (m,)
            Data means and (guarded) data variances of the observables.
        active : ndarray of bool (m,)
            Observables that take part in the fit (constant ones on the data are frozen).

        Returns
        -------
        lam_new : ndarray (m,)
        info : dict
            ``chi2`` at ``lam`` (before the update), ``ess_fraction`` of the final reweighting,
            ``steps`` taken.
        """
        lam0 = lam.copy()
        lam = lam.copy()
        mean, cov, _ = weighted_moments(O)
        info = {"chi2": chi2((mean - obar)[active], var[active], eps=0.0), "ess_fraction": 1.0,
                "steps": 0}
        if not np.any(active):  # every observable frozen: nothing to fit
            return lam, info
        logw = None
        for _ in range(self.n_steps):
            if logw is not None:
                mean, cov, ess = weighted_moments(O, logw)
                if ess < self.min_ess:
                    break
            step = self._step(lam, O, logw, mean, cov, obar, var, active)
            if step is None:
                break
            step = self._within_kl(step, O, logw)
            lam = lam + step
            logw = log_weights(O, lam - lam0)
            info["steps"] += 1
        if logw is not None:
            info["ess_fraction"] = weighted_moments(O, logw)[2]
        return lam, info


class NewtonSolver(_LambdaSolver):
    """Damped Newton / Levenberg–Marquardt on the dual with a KL trust region.

    Parameters
    ----------
    damping : float in (0, 1]
        Fraction of the Newton step tried first.
    ridge : float
        Levenberg–Marquardt ridge relative to the mean eigenvalue of ``C``: ``μ = ridge·tr(C)/m``.
        Scaling by the spectrum keeps it meaningful whatever the observables' units.
    max_step : float
        Trust radius in the metric ``C``: ``sqrt(δᵀCδ) <= max_step``.
    n_steps, min_ess : see :class:`AdamSolver`.

    Notes
    -----
    ``C`` is the covariance of the observables over the model's samples. An observable that
    barely varies over them (a dead ReLU unit on every chain, say) leaves a direction that
    neither the Newton system nor the trust region sees: the step along it was unbounded
    (λ jumped by 4e8 in a test) or infinite. Diagonal entries of ``C`` below
    ``MIN_VARIANCE`` times the observable's data variance are therefore raised to that
    floor, in the solve and in the trust region; no other entry changes. The floor is far
    below what training meets otherwise (the smallest ratio over the 30 epochs of the CLI
    test's run is 2.5e-3; 1e-2 there changed its steps), so ordinary steps are unchanged.
    """

    #: Floor of the model variances in the Newton metric, relative to the data variances.
    MIN_VARIANCE = 1e-4

    def __init__(self, damping=1.0, ridge=1e-6, max_step=1.0, n_steps=1, min_ess=0.5,
                 max_backtracks=12):
        super().__init__(n_steps, min_ess)
        if not 0.0 < damping <= 1.0:
            raise ValueError(f"Newton damping must be in (0, 1], got {damping}")
        self.damping, self.ridge, self.max_step = float(damping), float(ridge), float(max_step)
        self.max_backtracks = int(max_backtracks)

    def _step(self, lam, O, logw, mean, cov, obar, var, active):
        idx = np.flatnonzero(active)
        r = (mean - obar)[idx]
        C = cov[np.ix_(idx, idx)]
        short = np.maximum(self.MIN_VARIANCE * var[idx] - np.diag(C), 0.0)
        if np.any(short > 0.0):  # directions the samples do not resolve (class Notes)
            C = C + np.diag(short)
        mu = self.ridge * max(np.trace(C) / len(idx), np.finfo(float).tiny)
        try:
            d = np.linalg.solve(C + mu * np.eye(len(idx)), r)
        except np.linalg.LinAlgError:
            d = np.linalg.lstsq(C + mu * np.eye(len(idx)), r, rcond=None)[0]
        if not np.all(np.isfinite(d)):
            logger.debug("Newton λ step: the system gave a non-finite direction; step skipped")
            return None
        norm = np.sqrt(max(d @ C @ d, 0.0))
        alpha = self.damping
        if norm * alpha > self.max_step:
            alpha = self.max_step / norm
        for _ in range(self.max_backtracks):
            delta = np.zeros_like(lam)
            delta[idx] = alpha * d
            lw = log_weights(O, delta) if logw is None else logw + log_weights(O, delta)
            ok_ess = weighted_moments(O, lw)[2] >= self.min_ess
            if ok_ess and dual_change(O, delta, obar, logw) < 0.0:
                return delta
            alpha *= 0.5
        logger.debug("Newton λ step: no decrease of the dual found; step skipped")
        return None


class AdamSolver(_LambdaSolver):
    """ADAM on the variance-scaled cost χ² (Eq. 5–6).

    Parameters
    ----------
    lr : float
        ADAM step size on λ.
    beta2 : float
        ADAM second-moment decay. Shorter than the usual 0.999: the first λ gradients (from the
        uniform start) are orders of magnitude larger than later ones, and a long memory of
        them throttles the steps for thousands of epochs (measured: 17 % error in λ after 300
        epochs with 0.999, converged with 0.9).
    n_steps : int
        λ updates per batch of samples (more than one uses reweighting).
    min_ess : float
        Stop reweighting when the effective sample size falls below this fraction.
    """

    def __init__(self, lr=0.05, n_steps=1, min_ess=0.5, beta2=0.9):
        super().__init__(n_steps, min_ess)
        self.adam = Adam(lr, beta2=beta2)

    def _step(self, lam, O, logw, mean, cov, obar, var, active):
        # ADAM moves each coordinate by about lr, which moves the energy by lr·σ_i data
        # standard deviations (σ_i the data spread of O_i). Dividing by max(σ_i, 1) caps that
        # at lr whatever the observables' units: PCA's squared projections have σ up to 8, and
        # a step of 0.05 left their χ² near 0.3 and the axes at |cos| 0.81. Dividing by σ_i
        # alone also enlarged the steps of small tanh outputs, and |λ| then grew to 30 (against
        # 1.6) on a 1-d three-mode mixture, at KL 0.092 instead of 0.015.
        # ∂χ²/∂λ = -2 (r/σ²)·C multiplies two Monte Carlo estimates; from the same samples
        # their correlation biases the fixed point by O(1/M) (measured: +6 % in λ with 1024
        # chains). Crossing two independent halves, r from one and C from the other, removes it.
        halves = (slice(0, None, 2), slice(1, None, 2))
        moments = [weighted_moments(O[h], None if logw is None else logw[h]) for h in halves]
        grad = np.zeros_like(lam)
        for (mean_a, _, _), (_, cov_b, _) in (moments, moments[::-1]):
            grad += 0.5 * chi2_gradient(np.where(active, mean_a - obar, 0.0), cov_b, var)
        grad[~active] = 0.0
        return (self.adam.step(lam, grad) - lam) / np.maximum(np.sqrt(var), 1.0)


def make_lambda_solver(name, lr=0.05, n_steps=1, min_ess=0.5, **kwargs):
    """Build the λ solver called ``name`` (``"newton"`` or ``"adam"``)."""
    if name == "newton":
        return NewtonSolver(n_steps=n_steps, min_ess=min_ess, **kwargs)
    if name == "adam":
        return AdamSolver(lr=lr, n_steps=n_steps, min_ess=min_ess)
    raise ValueError(f"lambda_solver must be 'newton' or 'adam', got {name!r}")
