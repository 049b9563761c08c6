"""The fit loop of the estimators: one epoch, the θ step, and what guards a run of epochs.

:func:`fit` runs epochs (:func:`epoch`) under the divergence guard (a bad epoch is rolled
back to the last good state with halved step sizes), early stopping on a held-out NLL or an
entropy plateau, checkpoints, a progress bar and one BLAS thread. The functions take the
estimator (:class:`~mme_numba.MaxEnt` or :class:`~mme_numba.MinMaxEnt`) whose state they
advance; the chains run through its :class:`~mme_numba.chains.Chains`.
"""

import copy
import logging
import time

import numpy as np

from . import parallel, settings, solvers
from ._validation import (as_generator, check_params, check_sample_size, copy_observables,
                          parse_support)
from .backends import NO_FIELD, CPUBackend
from .spec import CONV2D
from .chains import Chains
from .core import data_statistics
from .estimator import check_inside
from .progress import SingleThreadedBlas, progress_bar
from .solvers import reweighted_kl
from .training import (DivergenceGuard, EntropyTracker, HeldOut, Plateau, ThetaStepControl,
                       TrainingDivergedError, anchor, fisher_product, natural_direction)

logger = logging.getLogger(__name__)


class EpochDiverged(ArithmeticError):
    """Raised inside an epoch whose numbers stopped being finite; ``fit`` rolls it back."""


def monitor_rows(n_chains):
    """Chains that measure the λ and θ steps instead of shaping them: every fourth.

    Measured on the chains a step was fitted to, its effect is biased (the θ step raises the
    energy at those very points; the λ step lowers the dual there): the tracked entropy
    drifted by −2.7e-3 nats per epoch on a 1-d mixture, and by −1e-4 for a converged
    Gaussian MaxEnt. With fewer than 8 chains all of them do both.
    """
    return slice(3, None, 4) if n_chains >= 8 else slice(None)


def fit_rows(n_chains):
    """The chains the λ and θ steps are fitted to: all but the monitor chains."""
    fit = np.ones(n_chains, dtype=bool)
    if n_chains >= 8:
        fit[monitor_rows(n_chains)] = False
    return fit


def start(model, X):
    """Set up learned state at the first fit: support, chains, RNG streams, λ = 0."""
    d = X.shape[1]
    # fit trains its own copy: the object the user passed is never modified.
    obs = copy_observables(model.observables)
    obs_d = getattr(obs, "n_features", None)
    if obs_d is None and hasattr(obs, "forward"):
        obs.forward(X[:1])  # lets fixed maps (polynomial) learn d
        obs_d = obs.n_features
    if obs_d != d:
        raise ValueError(f"observables expect {obs_d} features, X has {d}")
    lo, hi = parse_support(model.support, d)
    check_inside(X, lo, hi)
    # per chain: states (and copies), RNG state, step, energy, and one epoch's activations
    widths = int(np.sum(np.asarray(obs.describe())[:, 2]))
    check_sample_size(int(model.n_chains), 3 * d + 16 + 2 * widths, "fit", "n_chains")
    model._rng = as_generator(model.random_state)
    model.observables_, model.n_features_in_, model.support_ = obs, d, (lo, hi)
    step0 = settings.STEP_FRACTION * float(np.min(hi - lo)) if model.step_size == "auto" \
        else float(model.step_size)
    model._chains = Chains.start(lo, hi, int(model.n_chains), step0, model.betas, model._rng)
    model.lambda_ = np.zeros(obs.n_observables)
    model.epoch_ = 0
    model.history_ = []
    make_optimizers(model)
    make_controls(model)


# ---------------------------------------------------------------------- optimizers, controls
def make_optimizers(model):
    """λ solver (and for θ-training models the θ ADAM and its step control)."""
    name = model.lambda_solver_
    model._lambda_solver = solvers.make_lambda_solver(
        name, lr=model.lr_lambda, n_steps=model.lambda_steps, min_ess=model.min_ess,
        **({"max_step": model.max_lambda_step} if name == "newton" else {}))
    if model._trains_theta:
        model._theta_adam = solvers.Adam(1.0 if model.lr_theta == "auto" else model.lr_theta)
        model._theta_control = ThetaStepControl(model.theta_kl_step)


def sync_optimizers(model):
    """Let ``set_params`` changes of step sizes reach the optimizers (their moments stay);
    rollbacks and plateaus scale every step size by ``_rate_factor``."""
    adam = getattr(model._lambda_solver, "adam", None)
    if adam is not None:
        adam.lr = float(model.lr_lambda) * model._rate_factor
    if hasattr(model._lambda_solver, "max_step"):
        model._lambda_solver.max_step = float(model.max_lambda_step) * model._rate_factor
    if model._trains_theta and model.lr_theta != "auto":
        model._theta_adam.lr = float(model.lr_theta) * model._rate_factor


def reduce_rates(model, factor):
    model._rate_factor *= factor
    sync_optimizers(model)
    if model._trains_theta:
        model._theta_control.factor *= factor * factor   # a KL budget: quadratic in the step


def make_controls(model):
    """Stopping rule, divergence guard and entropy tracker (reset at the first fit)."""
    lo, hi = model.support_
    model._heldout = HeldOut(model.validation_fraction, int(model.rng_state_[0, 1] >> 2))
    model._tracker = EntropyTracker(float(np.sum(np.log(hi - lo))))
    model._plateau = Plateau(window=model._plateau_window, min_epochs=model._plateau_min_epochs)
    model._guard = DivergenceGuard()
    model._rollbacks = 0
    model._rate_factor = 1.0


def control_state(model):
    """The stability controls' state as plain numbers (checkpoints restore it exactly)."""
    state = {"tracker": model._tracker.state(), "plateau": model._plateau.state(),
             "guard": model._guard.state(), "rollbacks": model._rollbacks,
             "rate_factor": model._rate_factor, **model._chains.control_state(),
             "heldout": model._heldout.state()}
    if model._trains_theta:
        state["theta"] = model._theta_control.state()
    return state


def set_control_state(model, state):
    model._tracker.set_state(state["tracker"])
    model._plateau.set_state(state["plateau"])
    model._guard.set_state(state["guard"])
    model._rollbacks = int(state["rollbacks"])
    model._rate_factor = float(state["rate_factor"])
    model._chains.set_control_state(state)
    if "heldout" in state:      # files written before the held-out split lack it
        model._heldout.set_state(state["heldout"])
    if model._trains_theta:
        model._theta_control.set_state(state["theta"])


def optimizer_state(model):
    adam = getattr(model._lambda_solver, "adam", None)
    state = {} if adam is None else {"lambda": (adam.m, adam.v, adam.t)}
    if model._trains_theta:
        a = model._theta_adam
        state["theta"] = (a.m, a.v, a.t)
    return state


def set_optimizer_state(model, state):
    if "lambda" in state:
        adam = model._lambda_solver.adam
        adam.m, adam.v, adam.t = state["lambda"]
    if "theta" in state:
        model._theta_adam.m, model._theta_adam.v, model._theta_adam.t = state["theta"]


# ---------------------------------------------------------------------- snapshots
def snapshot(model):
    """Everything a rolled-back epoch must restore, copied."""
    snap = {
        "lambda": model.lambda_.copy(), "chains": model._chains.copy(), "epoch": model.epoch_,
        "numpy_rng": copy.deepcopy(model._rng.bit_generator.state),
        "optimizers": copy.deepcopy(optimizer_state(model)),
        "controls": copy.deepcopy(control_state(model)),
        "tracker_prev": getattr(model, "_tracker_prev", None),
    }
    if model._trains_theta:
        snap["theta"] = model.observables_.theta.copy()
    return snap


def restore(model, good):
    """Put back the state of a :func:`snapshot` (copies, so it can be restored again)."""
    if "theta" in good:
        model.observables_.set_theta(good["theta"].copy())
    model.lambda_ = good["lambda"].copy()
    model._chains = good["chains"].copy()
    model.epoch_ = good["epoch"]
    model._rng.bit_generator.state = copy.deepcopy(good["numpy_rng"])
    set_optimizer_state(model, copy.deepcopy(good["optimizers"]))
    set_control_state(model, copy.deepcopy(good["controls"]))
    model._tracker_prev = good["tracker_prev"]


def roll_back(model, good, reason, epoch):
    """Restore the last good state and halve the step sizes; returns the event record."""
    rollbacks = model._rollbacks
    guard = model._guard
    keep = ("failed_epoch", "failures", "jump_retried", "debt", "streak")
    kept = [getattr(guard, k) for k in keep]   # its memory of failures outlives the restore
    restore(model, good)
    model._rollbacks = rollbacks + 1
    for k, v in zip(keep, kept):
        setattr(guard, k, v)
    failures = guard.failed(epoch, reason)
    reduce_rates(model, settings.RATE_CUT)
    logger.warning("epoch %d diverged (%s): rolled back to epoch %d and halved the step "
                   "sizes", epoch, reason, model.epoch_)
    if failures > guard.max_rollbacks:
        raise TrainingDivergedError(
            f"training diverged at epoch {epoch}: {reason}; {failures - 1} "
            f"rollbacks in a row with ever smaller steps did not help. The model keeps "
            f"its last good state (epoch {model.epoch_}).")
    return {"event": "rollback", "epoch": int(epoch), "reason": reason}


def restore_best(model, stopped_by):
    """Early stopping: put back the state of the best held-out NLL, keep the history."""
    best, epoch = model._heldout.best_state, model.epoch_
    if best is None or best["epoch"] == epoch:
        return
    restore(model, best)
    model.epoch_ = epoch
    model.history_[-1].setdefault("events", []).append(
        {"event": "restored_best", "epoch": int(best["epoch"]),
         "heldout_nll": model._heldout.best, "stopped_by": stopped_by})
    logger.info("restored the state after epoch %d (best held-out NLL %.4g)",
                best["epoch"], model._heldout.best)


# ---------------------------------------------------------------------- the loop
def statistics(model, X):
    """Data means ``ō``, guarded variances ``σ²`` and the mask of active observables."""
    obar, var, active = data_statistics(model.observables_, X, model.var_floor)
    if not np.all(active) and not getattr(model, "_warned_constant", False):
        logger.warning("observables %s are constant on the data (variance <= %g): their "
                       "multipliers are frozen", np.flatnonzero(~active).tolist(),
                       model.var_floor)
        model._warned_constant = True
    return obar, var, active


def fit(model, X, epochs, checkpoint, checkpoint_every, progress, callback):
    """The body of ``model.fit`` (arguments documented there)."""
    model._validate_params()
    check_params({"epochs": epochs, "checkpoint": checkpoint,
                  "checkpoint_every": checkpoint_every, "progress": progress,
                  "callback": callback})
    X = model._check_X(X)
    if getattr(model, "field_", None) is not None:
        raise RuntimeError("a steered model is not trained: fit the base model instead")
    if not model.is_fitted:
        start(model, X)
    else:  # a continued fit takes data inside the box too
        check_inside(X, *model.support_)
    auto = isinstance(epochs, str) and epochs == "auto"
    if auto:
        epochs = model.default_max_epochs if model.max_epochs is None else int(model.max_epochs)
    else:
        epochs = int(epochs)
    model._heldout.fraction = model.validation_fraction
    X, model._X_val = model._heldout.split(X)
    sync_optimizers(model)
    if not model._trains_theta:
        model._stats = statistics(model, X)
    bar = progress_bar(epochs, progress and parallel.is_root(model.comm), type(model).__name__)
    blas = SingleThreadedBlas()
    plateau = model._plateau
    at_start = plateau.reductions
    done, pending = 0, []
    # χ² is measured on the chains before an epoch's own update, so a jump there is the
    # previous epoch's doing: a rollback returns to the state before that one, when it
    # is at hand (measured: restoring only the last state repeated the same jump five
    # times, the same random numbers giving the same chains).
    before, good = None, snapshot(model)
    try:
        while done < epochs:
            try:
                record = epoch(model, X)
            except KeyboardInterrupt:
                restore(model, good)   # Ctrl-C mid-epoch: back to the last whole epoch
                raise
            except EpochDiverged as exc:
                record, reason = {"epoch": model.epoch_ + 1}, str(exc)
            else:
                theta = model.observables_.theta if model._trains_theta else np.zeros(0)
                reason = model._guard.check(record, {"lambda": model.lambda_, "theta": theta})
            if reason is not None:
                if before is not None and done > 0:
                    model.history_.pop()
                    done -= 1
                    if bar is not None:
                        bar.update(-1)
                    good, before = before, None
                pending.append(roll_back(model, good, reason, record["epoch"]))
                if bar is not None:
                    bar.set_postfix(rollback=f"epoch {record['epoch']}: {reason}")
                continue
            recovered = model._guard.accept(record)
            if recovered != 1.0:
                reduce_rates(model, recovered)   # a rollback's halving undone (see accept)
            if pending:
                record["events"], pending = pending, []
            record["rollbacks"] = model._rollbacks
            model.history_.append(record)
            done += 1
            if "heldout_nll" in record:   # `good` holds the parameters it measured
                model._heldout.update(record["heldout_nll"], record["epoch"], good)
            plateau = model._plateau
            if (plateau.update(record["entropy_estimate"], model.epoch_)
                    and plateau.reductions - at_start <= plateau.patience):
                reduce_rates(model, settings.RATE_CUT)   # at most `patience` reductions per fit call
            before, good = good, snapshot(model)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(chi2=f"{record['chi2']:.3g}",
                                S=f"{record['entropy_estimate']:.4g}",
                                acc=f"{record['acceptance']:.2f}", rollbacks=model._rollbacks)
            if callback is not None:
                callback(model, record)
            if checkpoint is not None and model.epoch_ % int(checkpoint_every) == 0:
                save_checkpoint(model, checkpoint)
            if auto and (model._plateau.reductions - at_start >= model._plateau.patience
                         or model._heldout.done):
                break
        if auto and model._heldout.active:
            restore_best(model, "heldout" if model._heldout.done else "plateau" if
                         model._plateau.reductions - at_start >= model._plateau.patience
                         else "max_epochs")
    finally:
        blas.close()
        if bar is not None:
            bar.close()
    if checkpoint is not None and done > 0:
        save_checkpoint(model, checkpoint)
    return model


def save_checkpoint(model, path):
    if parallel.is_root(model.comm):
        model.save(path)
    if model.comm is not None:
        model.comm.Barrier()  # no rank runs ahead of a checkpoint it may be resumed from


def epoch(model, X):
    """One epoch: sweeps, the λ step, the θ step; returns the history record."""
    if model._trains_theta:   # θ changed last epoch: the data statistics change with it
        model._stats = statistics(model, X)
    t0 = time.perf_counter()
    chains = model._chains
    if not chains.burned_in:
        model._burn_in()
    sweeps_run = model.sweeps_
    acc = model._run_chains(sweeps_run)
    chains = model._chains
    energy_before = chains.start_energy
    acceptance = float(acc.mean())
    if model.step_size == "auto" and model.epoch_ < int(model.adapt_epochs):
        chains.adapt_step(acceptance, model.target_acceptance, *model.support_)
    chains.adapt_ladder()
    samples = chains.x.copy()
    spec, params = model._spec_params()
    params_now = params.copy()   # the θ step may update the network's arrays in place
    O_model = model._backend.observe(spec, params, samples)
    lag_corr = chains.adapt_sweeps(energy_before, O_model @ model.lambda_,
                                   model.sweeps == "auto")
    t1 = time.perf_counter()
    obar, var, active = model._stats
    lam_old = model.lambda_
    mon = monitor_rows(len(samples))
    tracker = model._tracker
    if tracker.pending is not None and getattr(model, "_tracker_prev", None) is not None:
        prev_params, prev_lam = model._tracker_prev
        tracker.backward(model._backend.energy(spec, prev_params, prev_lam,
                                               np.ascontiguousarray(samples[mon]), NO_FIELD),
                         O_model[mon] @ lam_old)
    heldout = {}
    levels = 1 if chains.replicas is None else len(chains.replicas.betas)
    tracker.since_anchor += float(sweeps_run * int(model.n_chains) * levels)
    auto = model.anchor_every == "auto"
    every = settings.ANCHOR_EVERY if auto else model.anchor_every
    if every is not None and model.epoch_ % int(every) == 0 and (not auto or tracker.anchor_due()):
        # the parameters here are those `entropy` uses
        heldout["anchor_shift"] = anchor(model, tracker, seed=model.epoch_)
    entropy = tracker.entropy(lam_old, obar)
    heldout["log_z"] = tracker.log_z
    if getattr(model, "_X_val", None) is not None:   # same parameters as `entropy`
        heldout["heldout_nll"] = float(np.mean(model._backend.energy(
            spec, params_now, lam_old, model._X_val, NO_FIELD))) + tracker.log_z
    fit = fit_rows(len(samples))
    model.lambda_, info = model._lambda_solver.fit(model.lambda_, O_model[fit], obar, var,
                                                   active)
    if not np.all(np.isfinite(model.lambda_)):
        raise EpochDiverged("lambda is not finite")
    t2 = time.perf_counter()
    grad_norm, energy_new = 0.0, None
    if model._trains_theta:
        grad_norm, energy_new = theta_step(model, X, samples, O_model, model.lambda_ - lam_old)
    if energy_new is None:  # θ unchanged: the new energies are linear in λ
        energy_new = O_model[mon] @ model.lambda_
    tracker.forward(O_model[mon] @ lam_old, energy_new)
    model._tracker_prev = (params_now, lam_old.copy())
    t3 = time.perf_counter()
    model.epoch_ += 1
    rep = chains.replicas
    return {
        "epoch": model.epoch_,
        "chi2": info["chi2"],
        "entropy_estimate": entropy,
        "acceptance": acceptance,
        "step_size": float(chains.step[0]),
        "sweeps": sweeps_run,
        "lag_correlation": lag_corr,
        **({} if rep is None else {
            "betas": rep.betas.tolist(),
            "swap_acceptance": [None if not np.isfinite(a) else float(a)
                                for a in rep.swap_acceptance]}),
        "ess_fraction": info["ess_fraction"],
        "lambda": model.lambda_.tolist(),
        "lambda_norm": float(np.linalg.norm(model.lambda_)),
        "grad_theta_norm": grad_norm,
        **({} if not model._trains_theta else {
            "theta_kl": model._theta_control.last_kl,
            "theta_budget": model._theta_control.budget(model.epoch_)}),
        "t_sample": t1 - t0,
        "t_lambda": t2 - t1,
        "t_theta": t3 - t2,
        **heldout,
    }


def _direction(model, spec, theta, grad, samples, logw):
    """The θ step's direction for ``lr_theta="auto"`` (``settings.THETA_DIRECTION``), the
    natural direction scaled to unit RMS entry; ``spec`` the observables' description."""
    choice = settings.THETA_DIRECTION
    if choice == "auto":
        choice = "adam" if np.any(spec[:, 0] == CONV2D) else "natural"
    if choice == "adam":
        return theta - model._theta_adam.step(theta, grad)     # ADAM direction (lr = 1)
    w = np.exp(logw - np.max(logw))
    obs, cpu, lam = model.observables_, CPUBackend(), model.lambda_   # float64 energies

    def energy():
        params = np.ascontiguousarray(obs.kernel_params(), dtype=np.float64)
        return cpu.energy(spec, params, lam, samples)

    fisher = fisher_product(obs, lam, samples, w / w.sum(), energy)
    u = natural_direction(fisher, grad)
    rms = float(np.sqrt(np.mean(u * u)))
    if not np.isfinite(rms):
        raise EpochDiverged("the natural θ direction is not finite")
    return u / rms if rms > 0.0 else u


def theta_step(model, X, samples, O_model, delta_lambda):
    """``theta_steps`` steps down ``dS/dθ``, sized by :class:`~mme_numba.training.ThetaStepControl`.

    With ``lr_theta="auto"`` each step moves θ along the natural gradient (the gradient
    preconditioned by the chains' Fisher information, :func:`~mme_numba.training.
    natural_direction`; ADAM's direction with ``settings.THETA_DIRECTION = "adam"``) by the
    amount that changes the model by the KL budget ``theta_kl_step`` (measured on the chains
    by reweighting, so it needs one extra energy evaluation of the chains). With a number,
    plain ADAM steps of that rate are taken. Returns the last gradient norm and the
    chains' energies under the new parameters.
    """
    obs = model.observables_
    if obs.n_params == 0:
        return 0.0, None
    # The gradient is taken on three chains in four; the fourth measure the step
    # (monitor_rows says why).
    logw = solvers.log_weights(O_model, delta_lambda)
    mon, fit = monitor_rows(len(samples)), fit_rows(len(samples))
    s_fit, lw_fit = samples[fit], logw[fit]
    s_mon, lw_mon = np.ascontiguousarray(samples[mon]), logw[mon]
    norm, energy = 0.0, None
    spec, _ = model._spec_params()
    ctl = model._theta_control

    def energy_of(x):
        params = np.ascontiguousarray(obs.kernel_params(), dtype=np.float64)
        return model._backend.energy(spec, params, model.lambda_, x, NO_FIELD)

    def set_theta(value):
        # θ that grew step by step until it overflowed (measured: a checkerboard fit with
        # theta_kl_step=3e-2 at epoch 1076) is a divergence to roll back, not a crash
        if not np.all(np.isfinite(value)):
            raise EpochDiverged("the θ step left the finite numbers")
        obs.set_theta(value)

    for _ in range(int(model.theta_steps)):
        if model.batch_size is not None and int(model.batch_size) < len(X):
            idx = model._rng.choice(len(X), size=int(model.batch_size), replace=False)
            batch = X[np.sort(idx)]
        else:
            batch = X
        grad = model.entropy_gradient(batch, s_fit, model.lambda_, lw_fit)
        norm = float(np.linalg.norm(grad))
        if not np.isfinite(norm):
            raise EpochDiverged("the entropy gradient is not finite")
        theta = obs.theta.copy()
        if model.lr_theta != "auto":
            set_theta(model._theta_adam.step(theta, grad))
            energy = None
            continue
        if energy is None:
            energy = O_model[mon] @ model.lambda_
        u = _direction(model, spec, theta, grad, s_fit, lw_fit)
        scale = ctl.scale
        set_theta(theta - scale * u)
        trial = energy_of(s_mon)
        applied = ctl.choose(reweighted_kl(trial - energy, lw_mon), model.epoch_)
        if applied < 1.0:
            set_theta(theta - applied * scale * u)
            energy = energy_of(s_mon)
        else:
            energy = trial
    if energy is None:
        energy = energy_of(s_mon)
        ctl.last_kl = reweighted_kl(energy - O_model[mon] @ model.lambda_, lw_mon)
    return norm, energy
