"""What keeps training stable without tuning: the θ step size, the stopping rule, the guard.

Three small pieces, each a plain object whose state is a dict of numbers (so checkpoints
restore it exactly), used by :class:`~mme_numba.MinMaxEnt` and :class:`~mme_numba.MaxEnt`:

- :class:`ThetaStepControl` sets the size of each θ step by the change it makes to the
  model, not by a rate in parameter units. A fixed ADAM rate moves every weight by about
  ``lr``; the energy then changes by an amount that scales with ``|λ|`` and with the
  network's sensitivity, so a rate that suits one problem is ten times too large or too small
  for another (``docs/method.md``, "Keeping θ training stable"). Here the step's direction
  (:func:`natural_direction`, or ADAM's) is scaled so that the KL divergence between the
  model before and after the step, measured on the persistent chains by reweighting, equals
  a budget ``κ``: the chains then have the same distance to catch up whatever the problem.
- :class:`EntropyTracker` follows ``ln Z`` across epochs by importance ratios on the
  persistent chains, starting from the exact ``ln Z = ln vol(Ω)`` of the uniform start
  (``λ = 0``). With the data term ``λ·ō`` it gives the MaxEnt entropy, equal to the
  training cross-entropy at moment matching: the objective the θ steps minimise.
- :class:`Plateau` decides when that objective has stopped improving (``epochs="auto"``):
  it divides the step budget by 4 at each plateau and stops after the last reduction.

:class:`DivergenceGuard` checks each epoch for non-finite values and jumps and tells the
estimator to restore the last good state.
"""

import numpy as np

from . import settings as S
from .solvers import logmeanexp, reweighted_kl

__all__ = ["ThetaStepControl", "EntropyTracker", "Plateau", "DivergenceGuard", "HeldOut",
           "TrainingDivergedError", "reweighted_kl", "logmeanexp", "bennett_log_ratio",
           "fisher_product", "natural_direction"]


def fisher_product(obs, lam, samples, w, energy=None, fd_step=S.NATURAL_FD_STEP):
    """``v ↦ F v`` for the Fisher information of the model in θ, ``F = Cov_w(∂E/∂θ)``.

    ``E = λ·O(x; θ)``; the covariance is over ``samples`` with normalized weights ``w``.
    ``F v = Jᵀ diag(w) (J v − w·J v)``, ``J`` the per-sample Jacobian ``∂E(x_k)/∂θ``, never
    formed: ``J v`` is a finite difference of the energies along ``v`` (relative step
    ``fd_step``; ``energy()`` gives the float64 energies of ``samples`` at the current θ of
    ``obs``, by default its NumPy forward pass) and ``Jᵀ c`` one backward pass with upstream
    gradient ``c_k λ`` (from one cached forward pass where ``obs`` has one). ``obs`` is left
    with its θ.
    """
    theta = np.array(obs.theta, dtype=np.float64)
    if energy is None:
        energy = lambda: obs.forward(samples) @ lam  # noqa: E731
    e0 = energy()
    size = max(1.0, float(np.linalg.norm(theta)))
    if hasattr(obs, "forward_cached"):
        caches = obs.forward_cached(samples)[1]
        backward = lambda dO: obs.backward_cached(caches, dO)  # noqa: E731
    else:
        backward = lambda dO: obs.backward(samples, dO)  # noqa: E731

    def product(v):
        nv = float(np.linalg.norm(v))
        if nv == 0.0:
            return np.zeros_like(theta)
        eps = fd_step * size / nv
        obs.set_theta(theta + eps * v)
        try:
            jv = (energy() - e0) / eps
        finally:
            obs.set_theta(theta)
        c = w * (jv - w @ jv)
        return backward(np.outer(c, lam))[0]

    return product


def natural_direction(product, grad, iters=S.NATURAL_ITERS, damping=S.NATURAL_DAMPING):
    """``(F + δ I)⁻¹ g`` by ``iters`` conjugate-gradient steps, ``δ = damping · gᵀFg / gᵀg``.

    The steepest descent direction per unit of KL divergence between the model before and
    after the step (``KL ≈ ½ Δθᵀ F Δθ``), which is what :class:`ThetaStepControl` budgets.
    ``product(v)`` gives ``F v`` (:func:`fisher_product`). Where ``F`` vanishes along ``g``
    the gradient itself is returned.
    """
    g = np.asarray(grad, dtype=np.float64)
    gg = float(g @ g)
    if not np.isfinite(gg) or gg == 0.0:
        return g.copy()
    ap = product(g)
    delta = damping * float(g @ ap) / gg
    if not delta > 0.0:
        return g.copy()
    v, r, p, rr = np.zeros_like(g), g.copy(), g.copy(), gg
    for k in range(int(iters)):
        ap = (ap if k == 0 else product(p)) + delta * p
        pap = float(p @ ap)
        if not pap > 0.0:
            break
        alpha = rr / pap
        v += alpha * p
        r -= alpha * ap
        rr_new = float(r @ r)
        if rr_new <= 1e-12 * gg:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return v if np.any(v) else g.copy()


class TrainingDivergedError(RuntimeError):
    """Training diverged repeatedly; the model holds its last good state."""


class ThetaStepControl:
    """Scale each θ step so that the model moves by a KL budget (module docstring).

    Parameters
    ----------
    kl_step : float
        The budget ``κ`` in nats per θ step, before warm-up and plateau reductions.
    warmup : int
        Epochs over which the budget rises linearly from ``kl_step / 10``.
    """

    def __init__(self, kl_step, warmup=S.THETA_WARMUP):
        self.kl_step = float(kl_step)
        self.warmup = int(warmup)
        self.scale = 1e-3      # ADAM-direction multiplier tried next (in θ units)
        self.factor = 1.0      # plateau reductions multiply this by 1/4
        self.last_kl = 0.0

    def budget(self, epoch):
        ramp = min(1.0, 0.1 + 0.9 * epoch / max(self.warmup, 1))
        return self.kl_step * self.factor * ramp

    def choose(self, trial_kl, epoch):
        """Given the KL of the trial step ``scale·u``, return the multiplier to apply to it."""
        budget = self.budget(epoch)
        if not np.isfinite(trial_kl):
            ratio = 0.1
        elif trial_kl <= 0.0:
            ratio = 2.0
        else:
            ratio = float(np.sqrt(budget / trial_kl))
        applied = min(ratio, 1.0)
        self.last_kl = trial_kl * applied * applied if np.isfinite(trial_kl) else float("inf")
        self.scale = self.scale * min(ratio, 2.0)
        return applied

    def state(self):
        return {"scale": self.scale, "factor": self.factor, "last_kl": self.last_kl}

    def set_state(self, state):
        self.scale = float(state["scale"])
        self.factor = float(state["factor"])
        self.last_kl = float(state.get("last_kl", 0.0))


def bennett_log_ratio(work_forward, work_reverse):
    """``ln Z_1 − ln Z_0`` by Bennett's acceptance ratio from both directions' works.

    ``work_forward = H_1 − H_0`` on samples of ``p_0``, ``work_reverse = H_0 − H_1`` on
    samples of ``p_1``. BAR is the minimum-variance estimator from the two sample sets and
    stays nearly unbiased where the one-sided exponential averages are not (poor overlap).
    Solves ``Σ_F σ(−(w_F − Δf)) = Σ_R σ(−(w_R + Δf))`` for ``Δf = −(ln Z_1 − ln Z_0)`` with
    ``σ(u) = 1/(1 + e^{−u})``, corrected for unequal sample counts.
    """
    from scipy.optimize import brentq
    from scipy.special import expit

    wf = np.asarray(work_forward, dtype=np.float64)
    wr = np.asarray(work_reverse, dtype=np.float64)
    m = np.log(len(wf) / len(wr))

    def balance(df):
        return np.sum(expit(-(m + wf - df))) - np.sum(expit(-(-m + wr + df)))

    guess = 0.5 * (-logmeanexp(-wf) + logmeanexp(-wr))       # two one-sided estimates of Δf
    lo, hi = guess - 1.0, guess + 1.0
    while balance(lo) > 0:
        lo -= 2 * (hi - lo)
    while balance(hi) < 0:
        hi += 2 * (hi - lo)
    return -float(brentq(balance, lo, hi, xtol=1e-12))


class EntropyTracker:
    """``ln Z`` across epochs from the persistent chains, by Bennett's acceptance ratio.

    Between parameter sets ``t`` and ``t+1`` (energies ``H_t``, ``H_{t+1}``) the chains at
    ``t`` give the forward works ``H_{t+1} − H_t`` and the chains at ``t+1`` the reverse ones;
    :func:`bennett_log_ratio` combines them. Each one-sided exponential average is biased by
    the chains' lag behind a model that moves every epoch, each in its own direction (the
    forward one drifted by −3e-4 nats per epoch on a 1-d mixture); BAR cancels that and
    copes with the large early steps. Started from ``ln Z_0 = ln vol(Ω)`` (``λ = 0``).
    """

    def __init__(self, log_volume):
        self.log_z = float(log_volume)
        self.pending = None          # forward works waiting for their reverse half
        self.anchor_cost = 0.0       # chain-sweeps of the last anchor's AIS run (:func:`anchor`)
        self.since_anchor = 0.0      # chain-sweeps of training since that run

    def anchor_due(self):
        """Whether an anchor is affordable now: its last AIS run cost at most
        ``settings.ANCHOR_SHARE`` of the training's sampling since then."""
        return self.anchor_cost <= S.ANCHOR_SHARE * self.since_anchor

    def forward(self, energy_old, energy_new):
        """Store the forward works from the chains at ``t`` (applied by :meth:`backward`)."""
        self.pending = (np.asarray(energy_new) - np.asarray(energy_old)).tolist()

    def backward(self, energy_prev, energy_cur):
        """Complete the pending step with the chains at ``t+1``; returns ``ln Z``."""
        if self.pending is not None:
            reverse = np.asarray(energy_prev) - np.asarray(energy_cur)
            self.log_z += bennett_log_ratio(self.pending, reverse)
            self.pending = None
        return self.log_z

    def entropy(self, lam, obar):
        """MaxEnt entropy estimate ``λ·ō + ln Z`` (the training cross-entropy)."""
        return float(np.dot(lam, obar) + self.log_z)

    def state(self):
        return {"log_z": self.log_z, "pending": self.pending, "anchor_cost": self.anchor_cost,
                "since_anchor": self.since_anchor}

    def set_state(self, state):
        self.log_z = float(state["log_z"])
        self.pending = None if state.get("pending") is None else list(state["pending"])
        self.anchor_cost = float(state.get("anchor_cost", 0.0))   # absent in older files
        self.since_anchor = float(state.get("since_anchor", 0.0))


class Plateau:
    """When a noisy, decreasing signal has stopped improving.

    The signal (the entropy estimate) is averaged over windows of ``window`` epochs. A
    window whose mean is not below the best earlier window mean by more than ``tol`` (or by
    three standard errors of the difference, if larger) is a plateau. After each plateau
    the caller divides its step budget by 4 (:attr:`reductions` counts them); after
    ``patience`` plateaus :attr:`done` is true.

    Parameters
    ----------
    window : int
        Epochs per averaging window.
    tol : float
        Smallest improvement (nats) that counts.
    patience : int
        Plateaus before stopping.
    min_epochs : int
        No plateau is declared before this many epochs.
    """

    def __init__(self, window=S.PLATEAU_WINDOW, tol=S.PLATEAU_TOL, patience=S.PLATEAU_PATIENCE,
                 min_epochs=S.PLATEAU_MIN_EPOCHS_MINMAXENT):
        self.window, self.tol = int(window), float(tol)
        self.patience, self.min_epochs = int(patience), int(min_epochs)
        self.values = []
        self.best = float("inf")
        self.reductions = 0

    @property
    def done(self):
        return self.reductions >= self.patience

    def update(self, value, epoch):
        """Record the signal at ``epoch``; returns True when a plateau was just declared."""
        self.values.append(float(value))
        if len(self.values) < self.window:
            return False
        if len(self.values) % self.window:
            return False
        block = np.asarray(self.values[-self.window:])
        mean = float(block.mean())
        noise = float(np.std(np.diff(block))) / np.sqrt(2.0 * self.window) if self.window > 2 else 0.0
        improved = mean < self.best - max(self.tol, 3.0 * noise)
        self.best = min(self.best, mean)
        self.values = self.values[-self.window:]
        if improved or epoch < self.min_epochs:
            return False
        self.reductions += 1
        return True

    def state(self):
        best = self.best if np.isfinite(self.best) else None       # JSON has no infinity
        return {"values": list(self.values), "best": best, "reductions": self.reductions}

    def set_state(self, state):
        self.values = [float(v) for v in state["values"]]
        self.best = float("inf") if state["best"] is None else float(state["best"])
        self.reductions = int(state["reductions"])


class DivergenceGuard:
    """Flags an epoch whose numbers say training has diverged.

    An epoch is bad when any checked value is not finite, or when χ² exceeds ``jump`` times
    the median of the last ``memory`` good epochs (and ``floor``), or when ``|λ|`` grows by
    more than ``jump`` times its recent median (above ``floor``).

    Parameters
    ----------
    jump : float
    memory : int
    floor : float
    max_rollbacks : int
        Consecutive rollbacks after which training stops with :class:`TrainingDivergedError`.
    recover : int
        Good epochs in a row after which one halving of the step sizes made by a rollback is
        undone (see :meth:`accept`).
    """

    def __init__(self, jump=S.JUMP, memory=S.GUARD_MEMORY, floor=S.GUARD_FLOOR,
                 max_rollbacks=S.MAX_ROLLBACKS, recover=S.GUARD_RECOVER):
        self.jump, self.memory, self.floor = float(jump), int(memory), float(floor)
        self.max_rollbacks, self.recover = int(max_rollbacks), int(recover)
        self.debt = 0                # halvings made by rollbacks and not yet undone
        self.streak = 0              # good epochs since the last rollback or recovery
        self.chi2, self.lam_norm = [], []
        self.failed_epoch = -1       # the latest epoch that was rolled back
        self.failures = 0            # rollbacks at that epoch and the ones right before it
        self.jump_retried = -1       # a jump at an epoch up to this one is kept (see check)

    def check(self, record, arrays):
        """Return ``None`` for a good epoch, else the reason (a short sentence).

        A jump that comes back at the same epoch after the rollback with halved steps is
        kept: it is the chains finding mass the model had not yet been fitted to (wide
        proposals reaching a mode, say), not a step gone wrong, and rolling it back again
        would repeat it forever.
        """
        for name, value in arrays.items():
            if not np.all(np.isfinite(value)):
                return f"{name} is not finite"
        for key in ("chi2", "entropy_estimate"):
            value = record.get(key)
            if value is not None and not np.isfinite(value):
                return f"{key} is not finite"
        if len(self.chi2) >= self.memory and record["epoch"] > self.jump_retried:
            ref = float(np.median(self.chi2[-self.memory:]))
            if record["chi2"] > max(self.jump * ref, self.floor):
                return f"chi2 jumped to {record['chi2']:.3g} (recent median {ref:.3g})"
            ref = float(np.median(self.lam_norm[-self.memory:]))
            if record["lambda_norm"] > max(self.jump * ref, self.floor * 100):
                return f"|lambda| jumped to {record['lambda_norm']:.3g} (recent median {ref:.3g})"
        return None

    def failed(self, epoch, reason):
        """Count a rollback of ``epoch``; returns how many in a row hit this stretch."""
        self.failures = self.failures + 1 if epoch <= self.failed_epoch + 1 else 1
        self.failed_epoch = max(epoch, self.failed_epoch) if self.failures > 1 else epoch
        if "jumped" in reason:
            self.jump_retried = max(self.jump_retried, epoch)
        self.debt += 1
        self.streak = 0
        return self.failures

    def accept(self, record):
        """Record a good epoch; returns the factor to scale the step sizes by (1.0 or 2.0).

        A rollback halves the step sizes so that training gets past a bad stretch; kept
        halved for good, they would slow the rest of the fit down for nothing (measured on
        the checkerboard of the zoo: six rollbacks near epoch 50 left a 64x smaller λ step
        and a 4096x smaller θ budget, and the model then barely moved in 1500 epochs). So
        after ``recover`` good epochs in a row one halving is undone, until none is left.
        """
        self.chi2.append(float(record["chi2"]))
        self.lam_norm.append(float(record["lambda_norm"]))
        del self.chi2[:-self.memory], self.lam_norm[:-self.memory]
        self.streak += 1
        if self.debt > 0 and self.streak >= self.recover:
            self.debt -= 1
            self.streak = 0
            return 2.0
        return 1.0

    def state(self):
        return {"chi2": list(self.chi2), "lam_norm": list(self.lam_norm),
                "failed_epoch": self.failed_epoch, "failures": self.failures,
                "jump_retried": self.jump_retried, "debt": self.debt, "streak": self.streak}

    def set_state(self, state):
        self.chi2 = [float(v) for v in state["chi2"]]
        self.lam_norm = [float(v) for v in state["lam_norm"]]
        self.failed_epoch = int(state["failed_epoch"])
        self.failures = int(state["failures"])
        self.jump_retried = int(state["jump_retried"])
        self.debt = int(state.get("debt", 0))      # absent in checkpoints of version <= 0.x
        self.streak = int(state.get("streak", 0))


def anchor(model, tracker, seed):
    """Set ``tracker.log_z`` to an AIS estimate for the model's current parameters.

    Called inside an epoch where the tracker's ``ln Z`` and the model's ``λ``, ``θ`` refer to
    the same parameters. Returns the correction (AIS minus tracked), in nats. The AIS run has
    its own random streams: the training chains and streams are untouched.
    """
    from .likelihood import anneal

    res = anneal(model, n_chains=S.ANCHOR_CHAINS, random_state=int(seed), n_bootstrap=0)
    shift = res.log_z - tracker.log_z
    tracker.log_z = res.log_z
    tracker.anchor_cost, tracker.since_anchor = float(res.sweeps * S.ANCHOR_CHAINS), 0.0
    return float(shift)


class HeldOut:
    """The held-out negative log-likelihood per epoch, and early stopping on it.

    With ``validation_fraction=f`` a fixed random ``f`` of the rows passed to ``fit`` (at
    least one, chosen by a seed drawn once from the model's random state, so repeated
    ``fit`` calls on the same data hold out the same rows) is kept out of training. Each
    epoch records ``heldout_nll = mean H_t(x_val) + ln Z_t``, with the ``ln Z_t`` of
    :class:`EntropyTracker` (the same parameters as ``entropy_estimate``, which is the
    training NLL at moment matching).

    Early stopping (``epochs="auto"``): the NLL is smoothed over the last ``smooth`` epochs;
    the state (θ, λ, chains, streams, controls) at the best smoothed value is kept, and
    training stops when that best has not improved by more than ``tol`` nats for
    ``patience`` epochs; the best state is then restored (``history_`` keeps every epoch).

    Parameters
    ----------
    fraction : float or None
    seed : int
    smooth, patience : int
    tol : float
    """

    def __init__(self, fraction, seed, smooth=S.HELDOUT_SMOOTH, patience=S.HELDOUT_PATIENCE,
                 tol=S.HELDOUT_TOL):
        self.fraction = None if fraction is None else float(fraction)
        self.seed = int(seed)
        self.smooth, self.patience, self.tol = int(smooth), int(patience), float(tol)
        self.values = []
        self.best = None
        self.best_epoch = None
        self.since = 0
        self.best_state = None         # a model snapshot, kept in memory only

    @property
    def active(self):
        return self.fraction is not None

    def split(self, X):
        """``(train rows, held-out rows)`` of ``X`` (``(X, None)`` without a fraction)."""
        if not self.active:
            return X, None
        n = len(X)
        n_val = min(max(1, int(round(self.fraction * n))), n - 1)
        if n_val < 1:
            raise ValueError(f"validation_fraction needs at least 2 data rows, got {n}")
        val = np.zeros(n, dtype=bool)
        val[np.random.default_rng(self.seed).permutation(n)[:n_val]] = True
        return X[~val], X[val]

    def update(self, value, epoch, state):
        """Record the NLL of the parameters held in ``state`` (a snapshot); True: stop."""
        self.values.append(float(value))
        del self.values[:-self.smooth]
        smoothed = float(np.mean(self.values))
        if self.best is None or smoothed < self.best - self.tol:
            self.best, self.best_epoch, self.since = smoothed, int(epoch), 0
            self.best_state = state
        else:
            self.since += 1
        return self.since >= self.patience

    @property
    def done(self):
        return self.active and self.since >= self.patience

    def state(self):
        return {"seed": self.seed, "values": list(self.values), "best": self.best,
                "best_epoch": self.best_epoch, "since": self.since}

    def set_state(self, state):
        best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])
        if best_epoch != self.best_epoch:     # a rollback keeps the best state it knows
            self.best_state = None
        self.seed = int(state["seed"])
        self.values = [float(v) for v in state["values"]]
        self.best = None if state["best"] is None else float(state["best"])
        self.best_epoch = best_epoch
        self.since = int(state["since"])
