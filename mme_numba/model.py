"""MaxEnt and Min-MaxEnt models: ``p(x) ∝ exp(-λ·O(x; θ))`` on a support box.

One training epoch (:meth:`MaxEnt._epoch`) is, in order:

1. **sample**: advance the persistent chains ``sweeps`` Metropolis sweeps at the current
   ``(λ, θ)`` (:mod:`mme_numba.kernels.sampler`);
2. **λ step**: Newton or ADAM on the dual, from those samples (:mod:`mme_numba.solvers`);
3. **θ step** (:class:`MinMaxEnt` only): one backward pass of the auxiliary loss
   ``L(θ) = Σ_i λ_i [mean_data O_i(x; θ) − mean_k O_i(x'_k; θ)]`` (Eq. 9–10), whose gradient
   is the entropy gradient ``dS/dθ`` of Eq. 8, then an ADAM step down it
   (:meth:`MinMaxEnt._theta_step`).

Equation numbers refer to ``docs/method.md`` (§1–§5 for the epoch above, §7 for the chains).
"""

import functools
import logging
import threading
import time

import numpy as np

from . import parallel, solvers
from ._validation import (PARAMS, as_generator, check_observables, check_param, check_params,
                          check_sample_size, copy_observables, parse_support)
from .backends import NO_FIELD, get_backend, proposals_per_sweep
from .tempering import Replicas, adapt_ladder, resolve_ladder

logger = logging.getLogger(__name__)


class MaxEnt:
    """Maximum-entropy model with fixed observables: fits the multipliers λ only.

    ``p(x) = exp(-λ·O(x)) / Z`` on the box ``support``, with λ such that model averages of the
    observables match the data averages (Eq. 2). Samples come from persistent Metropolis
    chains that carry over between epochs.

    Parameters
    ----------
    observables : observable map
        ``O(x; θ)``: an :mod:`mme_numba.nn` network or a map from :mod:`mme_numba.observables`.
    support : (lo, hi)
        The box Ω: scalars or ``(d,)`` arrays. Required.
    n_chains : int
        Number of persistent Markov chains (model samples per epoch).
    sweeps : int or "auto"
        Metropolis sweeps per epoch (and the default for :meth:`sample`). With
        ``move="single"`` or ``"scan"`` one sweep is ``d`` single-coordinate proposals.
        ``"auto"`` (default) starts at 10 and, after every epoch, measures how well the sweeps
        decorrelated the chains: the correlation across chains between each chain's energy
        before and after them (same parameters). Above 0.3 the count grows by a quarter,
        below 0.1 it shrinks by a fifth, within 10 … 100 (:attr:`sweeps_`). Chains that lag
        behind the model bias the λ fit, the θ gradient and the tracked entropy.
    burn_in : int
        Sweeps run once at the first epoch, before any λ step, with step-size adaptation.
    step_size : float or "auto"
        Gaussian proposal standard deviation. ``"auto"`` starts at 10 % of the smallest box
        width and adapts toward ``target_acceptance`` during burn-in and the first
        ``adapt_epochs`` epochs only; afterwards it is frozen. Acceptance alone does not
        guarantee mixing between modes: check :mod:`mme_numba.diagnostics`.
    target_acceptance : float
        Acceptance rate targeted by the adaptation.
    adapt_epochs : int
        Number of initial epochs during which the step size keeps adapting.
    move : {"auto", "all", "single", "scan", "mala"}
        ``"auto"`` (default) picks ``"scan"`` for convolutional observables (images) and
        ``"all"`` otherwise (:attr:`move_`). All-coordinate Gaussian moves; single-coordinate moves on random coordinates
        (``"single"``) or on every coordinate in order (``"scan"``: chains in lock-step, the
        fastest for image networks), both with incremental updates of a dense first layer
        and of conv image networks; or MALA (gradient-guided all-coordinate proposals with
        the Metropolis correction).
    boundary : {"reflect", "reject"}
        Proposals outside the box are reflected at the walls (symmetric, keeps detailed
        balance) or rejected.
    betas : None, int or array of float
        Replica exchange (:mod:`mme_numba.tempering`): ``None`` (default) runs the chains at
        the model only; an int ``K >= 2`` adds ``K - 1`` hotter copies of every chain on a
        ladder from 1 to 0.1 whose inner levels adapt during training to equal swap rates;
        an array is a fixed ladder ``1.0 = β_0 > β_1 > … > 0``. Neighbouring levels swap
        states after every sweep; averages and samples use the ``β = 1`` chains only. Costs
        ``K`` times the sampling.
    lambda_solver : {"auto", "adam", "newton"}
        ADAM on the variance-scaled χ² of Eq. 5, or Newton/Levenberg–Marquardt with a trust
        region. ``"auto"`` (default): Newton for :class:`MaxEnt` (fixed observables: it reaches
        the multipliers in tens of epochs where ADAM takes hundreds), ADAM for
        :class:`MinMaxEnt` (with trained observables Newton let |λ| grow without bound along
        nearly collinear observables, to ~1e3 on a 1-d three-mode mixture against ~2 with
        ADAM, for a worse fit).
    lr_lambda : float
        ADAM step size for λ (``lambda_solver="adam"``).
    lambda_steps : int
        λ updates per epoch; beyond the first they reuse the epoch's samples by reweighting.
    min_ess : float
        Smallest effective-sample-size fraction accepted when reweighting.
    max_lambda_step : float
        Newton trust radius ``sqrt(δᵀCδ)`` (about ``sqrt(2 KL)`` between successive models).
    var_floor : float
        Observables whose data variance is below ``var_floor`` are constant on the data: their
        λ is frozen (logged once) instead of dividing by zero.
    max_epochs : int, optional
        Cap on the epochs of one ``fit(X)`` with ``epochs="auto"`` (default
        :attr:`default_max_epochs`).
    validation_fraction : float, optional
        Hold out this fraction of the rows passed to ``fit`` (the same rows at every call):
        ``history_`` then records their negative log-likelihood each epoch
        (``heldout_nll``), and ``epochs="auto"`` stops when it has not improved for 100
        epochs and restores the best state (:class:`mme_numba.training.HeldOut`).
    anchor_every : int, optional
        Every this many epochs, replace the tracked ``ln Z`` (``docs/method.md`` §5, "The
        entropy, every epoch") by an annealed-importance-sampling estimate on 256 chains
        (:func:`mme_numba.likelihood.anneal`), undoing the drift the per-epoch ratios
        accumulate; ``history_`` records the correction (``anchor_shift``). ``None``
        (default): never.
    backend : {"cpu", "cuda"}
        Where kernels run: ``@njit(parallel=True)`` kernels, or ``@cuda.jit`` kernels on a GPU
        (same random streams and accept decisions; ``docs/gpu.md``).
    comm : mpi4py communicator, optional
        Split the chains across MPI ranks (:mod:`mme_numba.parallel`); results are
        bit-identical to a single process. Only rank 0 writes checkpoints.
    random_state : None, int or numpy.random.Generator
        One seed fixes everything: chain initial states, per-chain RNG streams, minibatches.

    Attributes
    ----------
    observables_ : observable map
        The model's own copy of ``observables``, made at the first :meth:`fit` (and trained
        there by :class:`MinMaxEnt`); ``observables`` stays the object passed, untouched.
    lambda_, chains_, history_ : the multipliers, persistent chains and per-epoch records.

    Notes
    -----
    Every hyperparameter is checked (:mod:`mme_numba._validation`) by ``fit``, ``sample``,
    ``with_field``, ``set_params`` and :func:`mme_numba.load`. ``fit``, ``sample``,
    ``energy``, ``observe``, ``with_field`` and ``save`` hold the model's lock: calls from
    several threads on one model run one after another, never interleaved.
    """

    _trains_theta = False
    default_max_epochs = 500
    _plateau_min_epochs = 50      # no plateau is declared before this epoch

    def __init__(self, observables, support, *, n_chains=1024, sweeps="auto", burn_in=200,
                 step_size="auto", target_acceptance=0.5, adapt_epochs=20, move="auto",
                 boundary="reflect", betas=None, lambda_solver="auto", lr_lambda=0.05, lambda_steps=1,
                 min_ess=0.5, max_lambda_step=1.0, var_floor=1e-12, max_epochs=None,
                 validation_fraction=None, anchor_every=None, backend="cpu", comm=None,
                 random_state=None):
        self.observables = observables
        self.support = support
        self.n_chains = n_chains
        self.sweeps = sweeps
        self.burn_in = burn_in
        self.step_size = step_size
        self.target_acceptance = target_acceptance
        self.adapt_epochs = adapt_epochs
        self.move = move
        self.boundary = boundary
        self.betas = betas
        self.lambda_solver = lambda_solver
        self.lr_lambda = lr_lambda
        self.lambda_steps = lambda_steps
        self.min_ess = min_ess
        self.max_lambda_step = max_lambda_step
        self.var_floor = var_floor
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.anchor_every = anchor_every
        self.backend = backend
        self.comm = comm
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    def _param_names(self):
        import inspect

        names = []
        for klass in type(self).__mro__:
            if "__init__" in vars(klass):
                sig = inspect.signature(klass.__init__)
                names += [name for name, p in sig.parameters.items()
                          if name != "self" and name not in names
                          and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return names

    def get_params(self, deep=False):
        """Hyperparameters, as passed to ``__init__`` (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set hyperparameters; returns ``self``."""
        import difflib

        names = self._param_names()
        for key, value in params.items():
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                raise ValueError(f"{type(self).__name__} has no parameter {key!r}"
                                 + (f"; did you mean {close[0]!r}?" if close else ""))
            check_param(key, value)
            if self.is_fitted and key in self._fixed_once_fitted:
                if key == "support":
                    same = all(np.array_equal(a, b) for a, b in
                               zip(parse_support(value, self.n_features_in_), self.support_))
                elif key == "n_chains":
                    same = int(value) == len(self.chains_)
                else:
                    same = value is getattr(self, key)
                if not same:
                    raise ValueError(f"{key} cannot change once the model is fitted (it shapes "
                                     f"the learned state); clone the model and fit the clone")
        with self._lock:
            for key, value in params.items():
                setattr(self, key, value)
        return self

    # Parameters whose change after the first fit could not reach the learned state.
    _fixed_once_fitted = ("observables", "support", "n_chains")

    def _validate_params(self):
        """Every hyperparameter against its entry in ``mme_numba._validation.PARAMS``."""
        check_params(self.get_params())

    @property
    def _lock(self):
        """Re-entrant lock serializing ``fit``/``sample``/``energy`` on this model (a callback
        running inside ``fit`` may call ``sample``). Created on first use, never copied."""
        lock = self.__dict__.get("_lock_obj")
        if lock is None:
            lock = self.__dict__.setdefault("_lock_obj", threading.RLock())
        return lock

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lock_obj", None)      # a lock is per object; the copy makes its own
        state.pop("_backend_obj", None)   # holds modules; rebuilt from ``backend`` on use
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    # ------------------------------------------------------------------ state
    @property
    def is_fitted(self):
        return hasattr(self, "lambda_")

    def _check_fitted(self, what):
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__}.{what}: the model is not fitted yet; call fit(X) first")

    def _check_X(self, X, name="X"):
        if isinstance(X, (str, bytes)) or X is None:
            raise TypeError(f"{name} must be a 2-D array of numbers, got {X!r:.80}")
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a 2-D array of numbers ({exc})") from None
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{name} has no rows")
        if not np.all(np.isfinite(X)):
            raise ValueError(f"{name} contains NaN or infinite values")
        d = getattr(self, "n_features_in_", None)
        if d is not None and X.shape[1] != d:
            raise ValueError(f"{name} has {X.shape[1]} features, the model was fitted with {d}")
        return X

    def _initialize(self, X):
        """Set up learned state at the first fit: support, chains, RNG streams, λ = 0."""
        from .kernels import seed_states

        d = X.shape[1]
        # fit trains its own copy: the object the user passed is never modified.
        obs = copy_observables(self.observables)
        obs_d = getattr(obs, "n_features", None)
        if obs_d is None and hasattr(obs, "forward"):
            obs.forward(X[:1])  # lets fixed maps (polynomial) learn d
            obs_d = obs.n_features
        if obs_d != d:
            raise ValueError(f"observables expect {obs_d} features, X has {d}")
        lo, hi = parse_support(self.support, d)
        _check_inside(X, lo, hi)
        # per chain: states (and copies), RNG state, step, energy, and one epoch's activations
        widths = int(np.sum(np.asarray(obs.describe())[:, 2]))
        check_sample_size(int(self.n_chains), 3 * d + 16 + 2 * widths, "fit", "n_chains")
        rng = as_generator(self.random_state)
        self.observables_ = obs
        self.n_features_in_ = d
        self.support_ = (lo, hi)
        self._rng = rng
        chain_seed = int(rng.integers(2**63 - 1))
        self.rng_state_ = seed_states(chain_seed, int(self.n_chains))
        self.chains_ = lo + (hi - lo) * rng.random((int(self.n_chains), d))
        ladder, adaptive = resolve_ladder(self.betas)
        self.replicas_ = (None if ladder is None else
                          Replicas.start(ladder, adaptive, lo, hi, int(self.n_chains), rng))
        step0 = 0.1 * float(np.min(hi - lo)) if self.step_size == "auto" else float(self.step_size)
        self.step_ = np.full(int(self.n_chains), step0)
        self.lambda_ = np.zeros(obs.n_observables)
        self.epoch_ = 0
        self.history_ = []
        self._make_optimizers()
        self._make_controls()
        self._burned_in = False

    def _make_optimizers(self):
        self._lambda_solver = solvers.make_lambda_solver(
            self.lambda_solver_, lr=self.lr_lambda, n_steps=self.lambda_steps,
            min_ess=self.min_ess, **({"max_step": self.max_lambda_step}
                                     if self.lambda_solver_ == "newton" else {}))

    @property
    def lambda_solver_(self):
        """The λ solver in use (``lambda_solver``, with ``"auto"`` resolved by the class)."""
        if self.lambda_solver != "auto":
            return self.lambda_solver
        return "adam" if self._trains_theta else "newton"

    def _sync_optimizers(self):
        """Let ``set_params`` changes of step sizes reach the optimizers (their moments stay).

        Rollbacks after a diverged epoch scale every step size by ``_rate_factor``.
        """
        adam = getattr(self._lambda_solver, "adam", None)
        if adam is not None:
            adam.lr = float(self.lr_lambda) * self._rate_factor
        if hasattr(self._lambda_solver, "max_step"):
            self._lambda_solver.max_step = float(self.max_lambda_step) * self._rate_factor

    @property
    def _backend(self):
        if getattr(self, "_backend_obj", None) is None or self._backend_obj.name != self.backend:
            self._backend_obj = get_backend(self.backend)
        return self._backend_obj

    def _field(self):
        """Second energy term ``(spec2, params2, lam2)``: the steering field, if any."""
        field = getattr(self, "field_", None)
        if field is None:
            return NO_FIELD
        net = field.network
        return (np.ascontiguousarray(net.describe(), dtype=np.int64),
                np.ascontiguousarray(net.kernel_params(), dtype=np.float64),
                self.field_strength_ * field.weights())

    def with_field(self, field, strength=1.0, *, base=True, random_state=None):
        """A steered copy of this fitted model: ``H_h(x) = H(x) + h·F(x)``, no retraining.

        Parameters
        ----------
        field : ClassifierField or DiscriminatorField
            The external field ``F`` (:mod:`mme_numba.fields`), e.g. ``-ln P_clf(c|x)``.
        strength : float
            ``h``.
        base : bool
            ``False`` switches the model's own energy off (``λ = 0``): samples from the field
            alone, the paper's control experiment (Fig. 7d).
        random_state : int, optional
            Seed of the steered chains' random streams (default: derived from this model's
            chain states, without advancing them).

        Returns
        -------
        MaxEnt or MinMaxEnt
            A copy with its own chains (started from this model's chains and burned in at
            the first :meth:`sample`); this model is left untouched. Its ``field_ess_`` is the
            effective-sample-size fraction of the field's reweighting of this model's chains:
            a tiny value means the field, not the data model, decides what is generated
            (logged as a warning below 1 %).
        """
        import copy

        from .kernels import seed_states

        self._check_fitted("with_field")
        check_param("strength", strength)
        check_param("base", base)
        check_param("random_state", random_state, PARAMS["field_random_state"])
        if isinstance(random_state, np.random.Generator):
            random_state = int(random_state.integers(2**63 - 1))
        self._validate_params()
        if getattr(self, "field_", None) is not None:
            raise ValueError("this model is already steered; call with_field on the base model")
        if not hasattr(field, "network") or not hasattr(field, "weights"):
            raise TypeError(f"field must be a mme_numba.fields field, got {field!r}")
        if field.network.n_features != self.n_features_in_:
            raise ValueError(f"the field's network takes {field.network.n_features} features, "
                             f"the model has {self.n_features_in_}")
        # The steered copy shares nothing mutable with this model nor with the field passed:
        # retraining either afterwards leaves it as it is.
        field = copy.copy(field)
        field.network = copy_observables(field.network)
        with self._lock:
            # a deep copy (its own lock, no backend object: __getstate__): arrays, trained
            # net, optimizers and controls are all the copy's own
            steered = copy.deepcopy(self)
            seed = (int(self.rng_state_[0, 0]) ^ 0x5DEECE66D) if random_state is None \
                else int(random_state)
        steered.field_ = field
        steered.field_strength_ = float(strength)
        steered.field_base_ = bool(base)
        if not base:
            steered.lambda_ = np.zeros_like(self.lambda_)
        steered.rng_state_ = seed_states(seed, len(self.chains_))
        steered.history_ = []
        steered._burned_in = False
        a = -steered.field_strength_ * field(steered.chains_)
        w = np.exp(a - a.max())
        steered.field_ess_ = min(1.0, float(w.sum() ** 2 / (len(w) * np.sum(w * w))))  # rounding
        if steered.field_ess_ < 0.01:
            logger.warning("the steering field reweights the model's samples to an effective "
                           "sample size of %.2g %%: the field dominates what is generated",
                           100 * steered.field_ess_)
        return steered

    # ------------------------------------------------------------------ kernels
    def _spec_params(self):
        return (np.ascontiguousarray(self.observables_.describe(), dtype=np.int64),
                np.ascontiguousarray(self.observables_.kernel_params(), dtype=np.float64))

    def _run_chains(self, n_sweeps, lam=None):
        """Advance every chain ``n_sweeps`` sweeps; returns acceptance fractions at ``β = 1``.

        With replicas (``betas``), every sweep of the model's chains is followed by one sweep
        of each hotter level and a round of neighbour swaps (:meth:`_tempered_sweep`).
        """
        self._sync_replicas()
        if self.replicas_ is None:
            return self._run_levels(n_sweeps, lam)
        lam = self.lambda_ if lam is None else lam
        accepted = np.zeros((len(self.chains_), len(self.replicas_.betas) - 1), dtype=np.int64)
        proposed = np.zeros(len(self.replicas_.betas) - 1)
        acc, start = [], None
        for _ in range(int(n_sweeps)):
            acc.append(self._tempered_sweep(lam, accepted, proposed))
            start = self._start_energy if start is None else start
        self._start_energy = start
        with np.errstate(invalid="ignore"):
            self.replicas_.swap_acceptance = accepted.sum(axis=0) / proposed
        return np.mean(acc, axis=0)

    def _sync_replicas(self):
        """Start (or drop) the hotter levels when ``betas`` was changed by ``set_params``."""
        rep = getattr(self, "replicas_", None)
        ladder, adaptive = resolve_ladder(self.betas)
        if ladder is None:
            self.replicas_ = None
        elif rep is None or rep.adaptive != adaptive or len(rep.betas) != len(ladder) or (
                not adaptive and not np.array_equal(rep.betas, ladder)):
            self.replicas_ = Replicas.start(ladder, adaptive, *self.support_, len(self.chains_),
                                            self._rng)

    def _tempered_sweep(self, lam, accepted, proposed):
        """One sweep of every level, then one round of swaps (even or odd pairs in turn)."""
        from .kernels.moves.swap import replica_swaps

        rep = self.replicas_
        acc = self._run_levels(1, lam)
        spec, params = self._spec_params()
        spec2, params2, lam2 = self._field()
        a, b = parallel.chain_bounds(len(self.chains_), self.comm)
        K = len(rep.betas)
        x = np.empty((K, b - a, self.n_features_in_))
        H = np.empty((K, b - a))
        x[0] = self.chains_[a:b]
        H[0] = self._end_energy_local       # the sweep carried it: no second energy pass
        lo, hi = self.support_
        cap = float(np.max(hi - lo))
        new_rng = np.empty_like(rep.rng[:, a:b])
        for r in range(1, K):
            beta = float(rep.betas[r])
            field = (spec2, params2, beta * lam2)
            xr = np.ascontiguousarray(rep.x[r - 1, a:b])
            rng_r = np.ascontiguousarray(rep.rng[r - 1, a:b])
            e = self._backend.energy(spec, params, beta * lam, xr, field)
            steps = np.ascontiguousarray(np.minimum(self.step_[a:b] / np.sqrt(beta), cap))
            self._backend.sweep(spec, params, beta * lam, field, xr, e, lo, hi, steps, 1,
                                self.move_, self.boundary, rng_r, np.zeros(b - a, np.int64))
            x[r], H[r], new_rng[r - 1] = xr, e / beta, rng_r
        swap_rng = np.ascontiguousarray(rep.swap_rng[a:b])
        local = np.zeros((b - a, K - 1), dtype=np.int64)
        replica_swaps(x, H, rep.betas, swap_rng, rep.turn % 2, local)
        proposed[rep.turn % 2::2] += len(self.chains_)
        gather = functools.partial(parallel.gather_rows, comm=self.comm)
        levels = [gather(x[r]) for r in range(K)]
        # one statement: Ctrl-C cannot leave the chains and their streams out of step
        (self.chains_, rep.x, rep.rng, rep.swap_rng, rep.turn) = (
            levels[0], np.stack(levels[1:]),
            np.stack([gather(new_rng[r]) for r in range(K - 1)]), gather(swap_rng),
            rep.turn + 1)
        accepted += gather(local)
        return acc

    def _run_levels(self, n_sweeps, lam=None):
        """Advance the ``β = 1`` chains ``n_sweeps`` sweeps; returns acceptance fractions.

        The fractions are those of the chains on the adapted step (all chains without the
        step ladder), once per segment of the run. Under MPI each rank sweeps its own slice of chains and the slices are gathered back.
        """
        spec, params = self._spec_params()
        lam = self.lambda_ if lam is None else lam
        field = self._field()
        a, b = parallel.chain_bounds(len(self.chains_), self.comm)
        rung = self._ladder_rungs()
        segments = [(n_sweeps, rung)]
        if rung is not None and np.any(rung) and n_sweeps >= 2:
            # two halves with the rungs swapped: every chain takes wide and local steps in
            # every run (one long sample() run left half the chains without wide steps)
            segments = [(n_sweeps // 2, rung), (n_sweeps - n_sweeps // 2, self._ladder_rungs())]
        local, start = [], None
        for sweeps, rung in segments:
            x = np.ascontiguousarray(self.chains_[a:b])
            rng_state = np.ascontiguousarray(self.rng_state_[a:b])
            energy = self._backend.energy(spec, params, lam, x, field)
            if start is None:
                start = energy.copy()   # before the run: the lag measure of sweeps="auto"
            accepted = np.zeros(b - a, dtype=np.int64)
            steps = self.step_ if rung is None else self.step_ * self._ladder_multipliers()[rung]
            self._backend.sweep(spec, params, lam, field, x, energy, self.support_[0],
                                self.support_[1], np.ascontiguousarray(steps[a:b]), sweeps,
                                self.move_, self.boundary, rng_state, accepted)
            # one statement: a KeyboardInterrupt cannot land between the two assignments
            self.chains_, self.rng_state_ = (parallel.gather_rows(x, self.comm),
                                             parallel.gather_rows(rng_state, self.comm))
            accepted = parallel.gather_rows(accepted, self.comm)
            acc = accepted / float(sweeps * proposals_per_sweep(self.move_, self.n_features_in_))
            if rung is not None:
                self._ladder_update(rung, acc)
                acc = acc[rung == 0]
            local.append(acc)
        self._start_energy = parallel.gather_rows(start, self.comm)
        self._end_energy_local = energy     # this rank's chains after the run (for swaps)
        return np.concatenate(local)

    @property
    def move_(self):
        """The move kind in use: ``move``, or for ``move="auto"`` the one the observables suit.

        Convolutional networks on images get ``"scan"`` (single pixels in order with
        incremental energies: all-pixel moves almost always leave the ``[0, 1]^64`` box of a
        digit, whose pixels sit on its faces), everything else ``"all"``.
        """
        if self.move != "auto":
            return self.move
        from .spec import CONV2D

        spec = np.asarray(self._current_observables().describe())
        return "scan" if np.any(spec[:, 0] == CONV2D) else "all"

    # ------------------------------------------------------------------ the step ladder
    #: Wider rungs of the step ladder, as powers of this factor times the adapted step.
    LADDER_FACTOR = 4.0
    #: At most this many rungs (the adapted step included).
    LADDER_RUNGS = 4
    #: A wide rung whose acceptance falls below this is switched off (retried every 100 runs).
    LADDER_MIN_ACCEPTANCE = 0.01

    def _ladder_multipliers(self):
        """Step multipliers of the rungs: 1, 4, 16, … up to half the widest box side."""
        cap = 0.5 * float(np.max(self.support_[1] - self.support_[0])) / float(self.step_[0])
        mult = [1.0]
        while len(mult) < self.LADDER_RUNGS and mult[-1] * self.LADDER_FACTOR < cap:
            mult.append(mult[-1] * self.LADDER_FACTOR)
        if len(mult) < self.LADDER_RUNGS and cap > mult[-1] * 1.5:
            mult.append(cap)
        return np.asarray(mult)

    def _ladder_rungs(self):
        """Rung of each chain for this run, or ``None`` without a ladder.

        With ``step_size="auto"`` half the chains (alternating each run) use the adapted
        step, the other half wider steps up to half the box: a Metropolis kernel with any
        fixed step leaves the model invariant, so each chain still samples it, and the wide
        steps carry chains between modes that the adapted step, tuned for acceptance, does
        not cross (a bimodal target with modes 8σ apart was barely crossed at step 2σ).
        """
        if self.step_size != "auto":
            return None
        k = len(self._ladder_multipliers())
        if len(self._ladder_on) != self.LADDER_RUNGS:
            self._ladder_on = np.ones(self.LADDER_RUNGS, dtype=bool)
        if self._ladder_turn % 100 == 0:
            self._ladder_on = np.ones(self.LADDER_RUNGS, dtype=bool)
        wide = [j for j in range(1, k) if self._ladder_on[j]]
        n = len(self.chains_)
        rung = np.zeros(n, dtype=np.int64)
        if wide:
            c = np.arange(n) + self._ladder_turn
            odd = c % 2 == 1
            rung[odd] = np.asarray(wide)[(c[odd] // 2) % len(wide)]
        self._ladder_turn += 1
        return rung

    def _ladder_update(self, rung, acc):
        on = self._ladder_on.copy()
        for j in range(1, self.LADDER_RUNGS):
            sel = rung == j
            if np.any(sel) and float(acc[sel].mean()) < self.LADDER_MIN_ACCEPTANCE:
                on[j] = False
        self._ladder_on = on

    #: ``sweeps="auto"``: the range of the count and the lag correlations that change it.
    SWEEPS_MIN, SWEEPS_MAX = 10, 100
    LAG_HIGH, LAG_LOW = 0.3, 0.1

    @property
    def sweeps_(self):
        """Sweeps per epoch in use: ``sweeps``, or for ``"auto"`` the adapted count."""
        if self.sweeps != "auto":
            return int(self.sweeps)
        return int(getattr(self, "_auto_sweeps", self.SWEEPS_MIN))

    def _adapt_sweeps(self, before, after):
        """Correlation across chains of the energies before and after an epoch's sweeps (at
        the same parameters); with ``sweeps="auto"`` it grows or shrinks the count."""
        before, after = np.asarray(before), np.asarray(after)
        if len(before) < 3 or np.std(before) == 0 or np.std(after) == 0:
            return None
        rho = float(np.corrcoef(before, after)[0, 1])
        if self.sweeps == "auto" and np.isfinite(rho):
            n = self.sweeps_
            if rho > self.LAG_HIGH:
                n = min(self.SWEEPS_MAX, int(np.ceil(1.25 * n)))
            elif rho < self.LAG_LOW:
                n = max(self.SWEEPS_MIN, int(np.floor(0.8 * n)))
            self._auto_sweeps = n
        return rho

    def _adapt_step(self, acceptance):
        """Robbins–Monro update of log step toward ``target_acceptance`` (one step for all chains)."""
        gain = np.log(max(acceptance, 1e-3) / self.target_acceptance)
        cap = float(np.max(self.support_[1] - self.support_[0]))
        self.step_ = np.minimum(self.step_ * np.exp(gain), cap)

    def _burn_in(self):
        """Initial sweeps with step adaptation in blocks of 10 sweeps."""
        remaining = int(self.burn_in)
        while remaining > 0:
            block = min(10, remaining)
            acc = self._run_chains(block)
            if self.step_size == "auto":
                self._adapt_step(float(acc.mean()))
            remaining -= block
        self._burned_in = True

    def _adapt_ladder(self):
        rep = getattr(self, "replicas_", None)
        if rep is not None and rep.adaptive:
            rep.betas = adapt_ladder(rep.betas, rep.swap_acceptance)

    # ------------------------------------------------------------------ data statistics
    def _data_statistics(self, X):
        """Data means ``ō``, guarded variances ``σ²`` and the mask of active observables."""
        from .core import data_statistics

        obar, var, active = data_statistics(self.observables_, X, self.var_floor)
        if not np.all(active) and not getattr(self, "_warned_constant", False):
            logger.warning("observables %s are constant on the data (variance <= %g): their "
                           "multipliers are frozen", np.flatnonzero(~active).tolist(), self.var_floor)
            self._warned_constant = True
        return obar, var, active

    # ------------------------------------------------------------------ training
    def fit(self, X, epochs="auto", *, checkpoint=None, checkpoint_every=10, progress=False,
            callback=None):
        """Train on data ``X``; returns ``self``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Training data, inside the support box.
        epochs : "auto" or int
            ``"auto"`` (default) trains until the entropy estimate has stopped improving
            (:class:`mme_numba.training.Plateau`: three plateaus of 50-epoch means, the step
            budget divided by 4 at each), at most ``max_epochs`` epochs. An int runs exactly
            that many more epochs. Calling ``fit`` again continues from the current state
            (chains, λ, θ, optimizer moments).
        checkpoint : str or path, optional
            Save the whole state there (atomically) every ``checkpoint_every`` epochs and at
            the end; ``mme_numba.load(checkpoint)`` continues bit-identically.
        checkpoint_every : int
            Epochs between checkpoints.
        progress : bool
            Show a tqdm progress bar (if tqdm is installed).
        callback : callable, optional
            ``callback(model, record)`` after each epoch; ``record`` is the history entry.

        Raises
        ------
        mme_numba.training.TrainingDivergedError
            When ``max_rollbacks`` consecutive epochs diverged (non-finite values, or χ² or
            ``|λ|`` jumping far above their recent medians) even after each rollback to the
            last good state with halved step sizes. The model keeps its last good state.

        Notes
        -----
        Every epoch is checked (:class:`mme_numba.training.DivergenceGuard`). A bad epoch is
        undone (θ, λ, optimizer moments, chains, random states) and the step sizes are
        halved; the event is recorded in the next ``history_`` entry (``"events"``).
        """
        with self._lock:  # a second fit of this model from another thread waits for this one
            return self._fit(X, epochs, checkpoint, checkpoint_every, progress, callback)

    def _fit(self, X, epochs, checkpoint, checkpoint_every, progress, callback):
        self._validate_params()
        check_params({"epochs": epochs, "checkpoint": checkpoint,
                      "checkpoint_every": checkpoint_every, "progress": progress,
                      "callback": callback})
        X = self._check_X(X)
        auto = isinstance(epochs, str) and epochs == "auto"
        if auto:
            epochs = self.default_max_epochs if self.max_epochs is None else int(self.max_epochs)
        else:
            epochs = int(epochs)
        if getattr(self, "field_", None) is not None:
            raise RuntimeError("a steered model is not trained: fit the base model instead")
        if not self.is_fitted:
            self._initialize(X)
        else:  # a continued fit takes data inside the box too
            _check_inside(X, *self.support_)
        self._heldout.fraction = self.validation_fraction
        X, self._X_val = self._heldout.split(X)
        self._sync_optimizers()
        self._prepare_fit(X)
        bar = _progress_bar(epochs, progress and parallel.is_root(self.comm), type(self).__name__)
        blas = _single_threaded_blas()
        plateaus_at_start = self._plateau.reductions
        done, pending = 0, []
        # χ² is measured on the chains before an epoch's own update, so a jump there is the
        # previous epoch's doing: a rollback returns to the state before that one, when it
        # is at hand (measured: restoring only the last state repeated the same jump five
        # times, the same random numbers giving the same chains).
        before, good = None, self._snapshot()
        try:
            while done < epochs:
                try:
                    record = self._epoch(X)
                except KeyboardInterrupt:
                    self._restore(good)   # Ctrl-C mid-epoch: back to the last whole epoch
                    raise
                except _EpochDiverged as exc:
                    record, reason = {"epoch": self.epoch_ + 1}, str(exc)
                else:
                    reason = self._guard.check(record, {"lambda": self.lambda_,
                                                        "theta": self._theta_vector()})
                if reason is not None:
                    if before is not None and done > 0:
                        self.history_.pop()
                        done -= 1
                        if bar is not None:
                            bar.update(-1)
                        good, before = before, None
                    pending.append(self._roll_back(good, reason, record["epoch"]))
                    if bar is not None:
                        bar.set_postfix(rollback=f"epoch {record['epoch']}: {reason}")
                    continue
                recovered = self._guard.accept(record)
                if recovered != 1.0:
                    self._reduce_rates(recovered)   # a rollback's halving undone (see accept)
                if pending:
                    record["events"], pending = pending, []
                record["rollbacks"] = self._rollbacks
                self.history_.append(record)
                done += 1
                if "heldout_nll" in record:   # `good` holds the parameters it measured
                    self._heldout.update(record["heldout_nll"], record["epoch"], good)
                if (self._plateau.update(record["entropy_estimate"], self.epoch_)
                        and self._plateau.reductions - plateaus_at_start
                        <= self._plateau.patience):
                    self._on_plateau()   # at most `patience` reductions per fit call
                before, good = good, self._snapshot()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(chi2=f"{record['chi2']:.3g}",
                                    S=f"{record['entropy_estimate']:.4g}",
                                    acc=f"{record['acceptance']:.2f}",
                                    rollbacks=self._rollbacks)
                if callback is not None:
                    callback(self, record)
                if checkpoint is not None and self.epoch_ % int(checkpoint_every) == 0:
                    self._checkpoint(checkpoint)
                if auto and (self._plateau.reductions - plateaus_at_start
                             >= self._plateau.patience or self._heldout.done):
                    break
            if auto and self._heldout.active:
                self._restore_best("heldout" if self._heldout.done else "plateau" if
                                   self._plateau.reductions - plateaus_at_start
                                   >= self._plateau.patience else "max_epochs")
        finally:
            blas.close()
            if bar is not None:
                bar.close()
        if checkpoint is not None and done > 0:
            self._checkpoint(checkpoint)
        return self

    def _restore_best(self, stopped_by):
        """Early stopping: put back the state of the best held-out NLL, keep the history."""
        best, epoch = self._heldout.best_state, self.epoch_
        if best is None or best["epoch"] == epoch:
            return
        self._restore(best)
        self.epoch_ = epoch
        self.history_[-1].setdefault("events", []).append(
            {"event": "restored_best", "epoch": int(best["epoch"]),
             "heldout_nll": self._heldout.best, "stopped_by": stopped_by})
        logger.info("restored the state after epoch %d (best held-out NLL %.4g)",
                    best["epoch"], self._heldout.best)

    # ------------------------------------------------------------------ stability
    def _theta_vector(self):
        return np.zeros(0)

    def _make_controls(self):
        """Stopping rule, divergence guard and entropy tracker (reset at the first fit)."""
        from .training import DivergenceGuard, EntropyTracker, HeldOut, Plateau

        lo, hi = self.support_
        self._heldout = HeldOut(self.validation_fraction, int(self.rng_state_[0, 1] >> 2))
        self._tracker = EntropyTracker(float(np.sum(np.log(hi - lo))))
        self._plateau = Plateau(min_epochs=self._plateau_min_epochs)
        self._guard = DivergenceGuard()
        self._rollbacks = 0
        self._rate_factor = 1.0
        self._ladder_turn = 0
        self._ladder_on = np.ones(self.LADDER_RUNGS, dtype=bool)
        self._auto_sweeps = self.SWEEPS_MIN

    def _on_plateau(self):
        """A plateau of the entropy: halve the λ step (ADAM's noise floor scales with it)."""
        self._reduce_rates(0.5)

    def _control_state(self):
        """The stability controls' state as plain numbers (checkpoints restore it exactly)."""
        return {"tracker": self._tracker.state(), "plateau": self._plateau.state(),
                "guard": self._guard.state(), "rollbacks": self._rollbacks,
                "rate_factor": self._rate_factor, "ladder_turn": self._ladder_turn,
                "ladder_on": self._ladder_on.tolist(), "auto_sweeps": self._auto_sweeps,
                "heldout": self._heldout.state()}

    def _set_control_state(self, state):
        self._tracker.set_state(state["tracker"])
        self._plateau.set_state(state["plateau"])
        self._guard.set_state(state["guard"])
        self._rollbacks = int(state["rollbacks"])
        self._rate_factor = float(state["rate_factor"])
        self._ladder_turn = int(state["ladder_turn"])
        self._ladder_on = np.asarray(state["ladder_on"], dtype=bool)
        self._auto_sweeps = int(state.get("auto_sweeps", self.SWEEPS_MIN))
        if "heldout" in state:      # files written before the held-out split lack it
            self._heldout.set_state(state["heldout"])

    def _snapshot(self):
        """Everything a rolled-back epoch must restore, copied."""
        import copy

        return {
            "lambda": self.lambda_.copy(), "chains": self.chains_.copy(),
            "rng_state": self.rng_state_.copy(), "step": self.step_.copy(),
            "epoch": self.epoch_, "burned_in": self._burned_in,
            "numpy_rng": copy.deepcopy(self._rng.bit_generator.state),
            "optimizers": copy.deepcopy(self._optimizer_state()),
            "controls": copy.deepcopy(self._control_state()),
            "tracker_prev": getattr(self, "_tracker_prev", None),
            "replicas": None if getattr(self, "replicas_", None) is None else self.replicas_.copy(),
        }

    def _optimizer_state(self):
        adam = getattr(self._lambda_solver, "adam", None)
        return {} if adam is None else {"lambda": (adam.m, adam.v, adam.t)}

    def _set_optimizer_state(self, state):
        if "lambda" in state:
            adam = self._lambda_solver.adam
            adam.m, adam.v, adam.t = state["lambda"]

    def _restore(self, good):
        """Put back the state of a :meth:`_snapshot` (copies, so it can be restored again)."""
        import copy

        self.lambda_ = good["lambda"].copy()
        self.chains_ = good["chains"].copy()
        self.rng_state_ = good["rng_state"].copy()
        self.step_ = good["step"].copy()
        self.epoch_ = good["epoch"]
        self._burned_in = good["burned_in"]
        self._rng.bit_generator.state = copy.deepcopy(good["numpy_rng"])
        self._set_optimizer_state(copy.deepcopy(good["optimizers"]))
        self._set_control_state(copy.deepcopy(good["controls"]))
        self._tracker_prev = good["tracker_prev"]
        self.replicas_ = None if good["replicas"] is None else good["replicas"].copy()

    def _roll_back(self, good, reason, epoch):
        """Restore the last good state and halve the step sizes; returns the event record."""
        from .training import TrainingDivergedError

        rollbacks = self._rollbacks
        keep = ("failed_epoch", "failures", "jump_retried", "debt", "streak")
        guard = [getattr(self._guard, k) for k in keep]   # its memory of failures outlives
        self._restore(good)                                # the restore
        self._rollbacks = rollbacks + 1
        for k, v in zip(keep, guard):
            setattr(self._guard, k, v)
        failures = self._guard.failed(epoch, reason)
        self._reduce_rates(0.5)
        event = {"event": "rollback", "epoch": int(epoch), "reason": reason}
        logger.warning("epoch %d diverged (%s): rolled back to epoch %d and halved the step "
                       "sizes", epoch, reason, self.epoch_)
        if failures > self._guard.max_rollbacks:
            raise TrainingDivergedError(
                f"training diverged at epoch {epoch}: {reason}; {failures - 1} "
                f"rollbacks in a row with ever smaller steps did not help. The model keeps "
                f"its last good state (epoch {self.epoch_}).")
        return event

    def _reduce_rates(self, factor):
        self._rate_factor *= factor
        self._sync_optimizers()

    def _checkpoint(self, path):
        if parallel.is_root(self.comm):
            self.save(path)
        if self.comm is not None:
            self.comm.Barrier()  # no rank runs ahead of a checkpoint it may be resumed from

    def _prepare_fit(self, X):
        """Per-``fit`` set-up that depends on the data (fixed observables: data statistics)."""
        self._stats = self._data_statistics(X)

    def _epoch(self, X):
        t0 = time.perf_counter()
        if not self._burned_in:
            self._burn_in()
        sweeps_run = self.sweeps_
        acc = self._run_chains(sweeps_run)
        energy_before = self._start_energy
        acceptance = float(acc.mean())
        if self.step_size == "auto" and self.epoch_ < int(self.adapt_epochs):
            self._adapt_step(acceptance)
        self._adapt_ladder()
        samples = self.chains_.copy()
        spec, params = self._spec_params()
        params_now = params.copy()   # the θ step may update the network's arrays in place
        O_model = self._backend.observe(spec, params, samples)
        lag_corr = self._adapt_sweeps(energy_before, O_model @ self.lambda_)
        t1 = time.perf_counter()
        obar, var, active = self._stats
        lam_old = self.lambda_
        mon = _monitor_rows(len(samples))
        if self._tracker.pending is not None and getattr(self, "_tracker_prev", None) is not None:
            prev_params, prev_lam = self._tracker_prev
            self._tracker.backward(
                self._backend.energy(spec, prev_params, prev_lam,
                                     np.ascontiguousarray(samples[mon]), NO_FIELD),
                O_model[mon] @ lam_old)
        heldout = {}
        if self.anchor_every is not None and self.epoch_ % int(self.anchor_every) == 0:
            from .training import anchor     # the parameters here are those `entropy` uses

            heldout["anchor_shift"] = anchor(self, self._tracker, seed=self.epoch_)
        entropy = self._tracker.entropy(lam_old, obar)
        heldout["log_z"] = self._tracker.log_z
        if getattr(self, "_X_val", None) is not None:   # same parameters as `entropy`
            heldout["heldout_nll"] = float(np.mean(self._backend.energy(
                spec, params_now, lam_old, self._X_val, NO_FIELD))) + self._tracker.log_z
        fit = _fit_rows(len(samples))
        self.lambda_, info = self._lambda_solver.fit(self.lambda_, O_model[fit], obar, var, active)
        if not np.all(np.isfinite(self.lambda_)):
            raise _EpochDiverged("lambda is not finite")
        t2 = time.perf_counter()
        grad_norm, energy_new = self._theta_step(X, samples, O_model, self.lambda_ - lam_old)
        if energy_new is None:  # θ unchanged: the new energies are linear in λ
            energy_new = O_model[mon] @ self.lambda_
        self._tracker.forward(O_model[mon] @ lam_old, energy_new)
        self._tracker_prev = (params_now, lam_old.copy())
        t3 = time.perf_counter()
        self.epoch_ += 1
        return {
            "epoch": self.epoch_,
            "chi2": info["chi2"],
            "entropy_estimate": entropy,
            "acceptance": acceptance,
            "step_size": float(self.step_[0]),
            "sweeps": sweeps_run,
            "lag_correlation": lag_corr,
            **self._tempering_record(),
            "ess_fraction": info["ess_fraction"],
            "lambda": self.lambda_.tolist(),
            "lambda_norm": float(np.linalg.norm(self.lambda_)),
            "grad_theta_norm": grad_norm,
            **self._theta_record(),
            "t_sample": t1 - t0,
            "t_lambda": t2 - t1,
            "t_theta": t3 - t2,
            **heldout,
        }

    def _theta_record(self):
        return {}

    def _tempering_record(self):
        rep = getattr(self, "replicas_", None)
        if rep is None:
            return {}
        return {"betas": rep.betas.tolist(),
                "swap_acceptance": [None if not np.isfinite(a) else float(a)
                                    for a in rep.swap_acceptance]}

    def _theta_step(self, X, samples, O_model, delta_lambda):
        """θ update (none here); returns ``(gradient norm, energies of the samples after it)``."""
        return 0.0, None

    # ------------------------------------------------------------------ using the model
    def sample(self, n, sweeps=None):
        """Draw ``n`` states from the persistent chains, advancing them.

        Each round advances every chain ``sweeps`` sweeps (default :attr:`sweeps`) and takes
        their states; ``ceil(n / n_chains)`` rounds are run and the first ``n`` rows returned.

        Returns
        -------
        ndarray, shape (n, n_features)
        """
        self._check_fitted("sample")
        check_param("n", n)
        check_param("sweeps", sweeps, _SAMPLE_SWEEPS)
        with self._lock:
            self._validate_params()
            n = int(n)
            sweeps = int(self.sweeps_ if sweeps is None else sweeps)
            check_sample_size(n, self.n_features_in_)
            # Ctrl-C between rounds (or burn-in blocks) leaves consistent chains: every round
            # stores chains and their random states together.
            out = np.empty((n, self.n_features_in_))
            if not self._burned_in:
                self._burn_in()
            k = len(self.chains_)
            for start in range(0, n, k):
                for done in range(0, sweeps, _SWEEP_BLOCK):  # Ctrl-C works between blocks
                    self._run_chains(min(_SWEEP_BLOCK, sweeps - done))
                out[start:start + k] = self.chains_[:n - start]
            return out

    def energy(self, X):
        """Energy ``H(x) = λ·O(x; θ)`` (plus any steering field), shape ``(n,)``."""
        self._check_fitted("energy")
        X = self._check_X(X)
        with self._lock:
            spec, params = self._spec_params()
            return self._backend.energy(spec, params, self.lambda_, X, self._field())

    def observe(self, X):
        """Observables ``O(x; θ)``, shape ``(n, m)`` (the trained ``observables_`` once fitted)."""
        X = self._check_X(X)
        with self._lock:
            return self._current_observables().forward(X)

    def _current_observables(self):
        """The trained copy ``observables_`` once fitted; before, the map passed (read only)."""
        obs = getattr(self, "observables_", None)
        return check_observables(self.observables) if obs is None else obs

    # ------------------------------------------------------------------ likelihood
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
        from . import likelihood

        self._check_fitted("log_partition")
        return likelihood.log_partition(self, **self._lz_args(method, n_chains, sweeps, cess,
                                                              random_state, n_grid))

    def score_samples(self, X, method="auto", *, n_chains=None, sweeps=3, cess=0.999,
                      random_state=0, n_grid=None):
        """Log density ``ln p(x) = -H(x) - ln Z`` per row, ``-inf`` outside the support.

        ``ln Z`` comes from :meth:`log_partition` (same arguments, cached). Returns ``(n,)``.
        """
        from . import likelihood

        self._check_fitted("score_samples")
        return likelihood.score_samples(self, X, **self._lz_args(method, n_chains, sweeps, cess,
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
        from . import likelihood

        self._check_fitted("entropy")
        return likelihood.entropy(self, **self._lz_args(method, n_chains, sweeps, cess,
                                                        random_state, n_grid))

    def _lz_args(self, method, n_chains, sweeps, cess, random_state, n_grid):
        check_params({"method": method, "ais_chains": n_chains, "ais_sweeps": sweeps,
                      "cess": cess, "ais_random_state": random_state, "n_grid": n_grid})
        return {"method": method, "n_grid": n_grid, "n_chains": n_chains, "sweeps": sweeps,
                "cess": cess, "random_state": random_state}

    def log_density(self, X, n_grid=None):
        """Normalized ``ln p(x) = -H(x) - ln Z`` with ``ln Z`` by quadrature (``d <= 2``)."""
        from . import quadrature

        self._check_fitted("log_density")
        lo, hi = self.support_
        kwargs = {} if n_grid is None else {"n_grid": n_grid}
        return -self.energy(X) - quadrature.log_partition(self.energy, lo, hi, **kwargs)

    def save(self, path):
        """Write the whole state to ``path`` (.npz + JSON metadata, atomic); see :func:`mme_numba.load`."""
        from .io import save

        with self._lock:
            save(self, path)

    def __repr__(self):
        state = f"epoch_={self.epoch_}" if self.is_fitted else "not fitted"
        return f"{type(self).__name__}({self.observables!r}, support={self.support!r}, {state})"


_SAMPLE_SWEEPS = PARAMS["sample_sweeps"]
# Longest single kernel call of ``sample``: a KeyboardInterrupt is only seen between calls.
# Rounds of up to this many sweeps run in one call, as always (same results).
_SWEEP_BLOCK = 1000


class MinMaxEnt(MaxEnt):
    """Min-MaxEnt model: fits λ (maximum entropy) and θ (minimum of that entropy).

    Each epoch takes a λ step (as :class:`MaxEnt`) and then ``theta_steps`` ADAM steps on θ
    down the entropy gradient of Eq. 8, ``dS/dθ = Σ_i λ_i (<∂O_i/∂θ>_data − <∂O_i/∂θ>_p)``.
    The model samples are reweighted to the updated λ (``w ∝ exp(-Δλ·O)``) so both terms use
    the same multipliers. ``fit`` trains its own copy of the observables, ``observables_``
    (trained parameters: ``observables_.theta``); the object passed is never modified.

    Parameters
    ----------
    lr_theta : "auto" or float
        ``"auto"`` (default): each θ step follows the ADAM direction as far as changes the
        model by ``theta_kl_step`` nats of KL divergence, measured on the chains
        (:class:`mme_numba.training.ThetaStepControl`); the budget warms up over 20 epochs and
        is divided by 4 at each plateau of the entropy. A number: plain ADAM steps of that
        size in θ units (what the step does to the model then depends on the problem).
    theta_kl_step : float
        The KL budget per θ step (nats) for ``lr_theta="auto"``.
    theta_steps : int
        θ updates per epoch (each on a fresh data minibatch when ``batch_size`` is set).
    batch_size : int, optional
        Data rows per θ step (default: all rows).
    **kwargs
        All :class:`MaxEnt` parameters.
    """

    _trains_theta = True
    default_max_epochs = 2000
    _plateau_min_epochs = 200

    def __init__(self, observables, support, *, lr_theta="auto", theta_kl_step=1e-2,
                 theta_steps=1, batch_size=None, **kwargs):
        super().__init__(observables, support, **kwargs)
        self.lr_theta = lr_theta
        self.theta_kl_step = theta_kl_step
        self.theta_steps = theta_steps
        self.batch_size = batch_size

    def _validate_params(self):
        super()._validate_params()
        if getattr(self.observables, "trainable", True) is False:
            raise ValueError(f"MinMaxEnt trains θ, but {self.observables!r} has no grad_theta: "
                             "its θ is fixed. Fit it with MaxEnt, or pass grad_theta= to "
                             "observables.compiled")

    def _make_optimizers(self):
        from .training import ThetaStepControl

        super()._make_optimizers()
        self._theta_adam = solvers.Adam(1.0 if self.lr_theta == "auto" else self.lr_theta)
        self._theta_control = ThetaStepControl(self.theta_kl_step)

    def _sync_optimizers(self):
        super()._sync_optimizers()
        if self.lr_theta != "auto":
            self._theta_adam.lr = float(self.lr_theta) * self._rate_factor

    def _theta_vector(self):
        return self.observables_.theta

    def _on_plateau(self):
        super()._on_plateau()     # halves the λ step, and through _reduce_rates the θ step

    def _reduce_rates(self, factor):
        super()._reduce_rates(factor)
        self._theta_control.factor *= factor * factor   # a KL budget: quadratic in the step

    def _theta_record(self):
        return {"theta_kl": self._theta_control.last_kl,
                "theta_budget": self._theta_control.budget(self.epoch_)}

    def _control_state(self):
        return {**super()._control_state(), "theta": self._theta_control.state()}

    def _set_control_state(self, state):
        super()._set_control_state(state)
        self._theta_control.set_state(state["theta"])

    def _optimizer_state(self):
        a = self._theta_adam
        return {**super()._optimizer_state(), "theta": (a.m, a.v, a.t)}

    def _set_optimizer_state(self, state):
        super()._set_optimizer_state(state)
        self._theta_adam.m, self._theta_adam.v, self._theta_adam.t = state["theta"]

    def _snapshot(self):
        snap = super()._snapshot()
        snap["theta"] = self.observables_.theta.copy()
        return snap

    def _restore(self, good):
        self.observables_.set_theta(good["theta"].copy())
        super()._restore(good)

    def _prepare_fit(self, X):
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if int(self.theta_steps) < 1:
            raise ValueError(f"theta_steps must be >= 1, got {self.theta_steps}")

    def _epoch(self, X):
        # θ changed last epoch, so the data statistics are recomputed every epoch.
        self._stats = self._data_statistics(X)
        return super()._epoch(X)

    def entropy_gradient(self, X, samples, lam=None, sample_logw=None):
        """Entropy gradient ``dS/dθ`` of Eq. 8 from data rows and model samples.

        One backward pass of the auxiliary loss (Eq. 9–10) with upstream gradient ``+λ/N`` on
        the data rows and ``−w_k λ`` on the sample rows (``w`` normalized weights, uniform
        unless ``sample_logw`` is given).

        Parameters
        ----------
        X : ndarray (N, d)
            Data rows.
        samples : ndarray (M, d)
            Model samples (no gradient flows through the sampler).
        lam : ndarray (m,), optional
            Multipliers (default :attr:`lambda_`).
        sample_logw : ndarray (M,), optional
            Log importance weights of the samples.

        Returns
        -------
        ndarray (n_params,)
        """
        from .core import entropy_gradient

        return entropy_gradient(self._current_observables(), self.lambda_ if lam is None else lam,
                                X, samples, sample_logw)

    def _theta_step(self, X, samples, O_model, delta_lambda):
        """``theta_steps`` ADAM steps down ``dS/dθ``, sized by :class:`~mme_numba.training.ThetaStepControl`.

        With ``lr_theta="auto"`` each step moves θ along the ADAM direction by the amount
        that changes the model by the KL budget ``theta_kl_step`` (measured on the chains by
        reweighting, so it needs one extra energy evaluation of the chains). With a number,
        plain ADAM steps of that rate are taken. Returns the last gradient norm and the
        chains' energies under the new parameters.
        """
        if self.observables_.n_params == 0:
            return 0.0, None
        # The gradient is taken on three chains in four; the fourth measure the step
        # (_monitor_rows says why).
        logw = solvers.log_weights(O_model, delta_lambda)
        mon, fit = _monitor_rows(len(samples)), _fit_rows(len(samples))
        s_fit, lw_fit = samples[fit], logw[fit]
        s_mon, lw_mon = np.ascontiguousarray(samples[mon]), logw[mon]
        norm, energy = 0.0, None
        spec, _ = self._spec_params()
        for _ in range(int(self.theta_steps)):
            if self.batch_size is not None and int(self.batch_size) < len(X):
                idx = self._rng.choice(len(X), size=int(self.batch_size), replace=False)
                batch = X[np.sort(idx)]
            else:
                batch = X
            grad = self.entropy_gradient(batch, s_fit, self.lambda_, lw_fit)
            norm = float(np.linalg.norm(grad))
            if not np.isfinite(norm):
                raise _EpochDiverged("the entropy gradient is not finite")
            theta = self.observables_.theta.copy()
            if self.lr_theta != "auto":
                self.observables_.set_theta(self._theta_adam.step(theta, grad))
                energy = None
                continue
            from .training import reweighted_kl

            if energy is None:
                energy = O_model[mon] @ self.lambda_
            u = theta - self._theta_adam.step(theta, grad)        # ADAM direction (lr = 1)
            ctl = self._theta_control
            scale = ctl.scale
            self.observables_.set_theta(theta - scale * u)
            trial = self._energy_of(spec, s_mon)
            applied = ctl.choose(reweighted_kl(trial - energy, lw_mon), self.epoch_)
            if applied < 1.0:
                self.observables_.set_theta(theta - applied * scale * u)
                energy = self._energy_of(spec, s_mon)
            else:
                energy = trial
        if energy is None:
            from .training import reweighted_kl

            energy = self._energy_of(spec, s_mon)
            self._theta_control.last_kl = reweighted_kl(energy - O_model[mon] @ self.lambda_,
                                                        lw_mon)
        return norm, energy

    def _energy_of(self, spec, samples):
        params = np.ascontiguousarray(self.observables_.kernel_params(), dtype=np.float64)
        return self._backend.energy(spec, params, self.lambda_, samples, NO_FIELD)


class _EpochDiverged(ArithmeticError):
    """Raised inside an epoch whose numbers stopped being finite; ``fit`` rolls it back."""


def _monitor_rows(n_chains):
    """Chains that measure the λ and θ steps instead of shaping them: every fourth.

    Measured on the chains a step was fitted to, its effect is biased (the θ step raises the
    energy at those very points; the λ step lowers the dual there): the tracked entropy
    drifted by −2.7e-3 nats per epoch on a 1-d mixture, and by −1e-4 for a converged
    Gaussian MaxEnt. With fewer than 8 chains all of them do both.
    """
    return slice(3, None, 4) if n_chains >= 8 else slice(None)


def _fit_rows(n_chains):
    """The chains the λ and θ steps are fitted to: all but the monitor chains."""
    fit = np.ones(n_chains, dtype=bool)
    if n_chains >= 8:
        fit[_monitor_rows(n_chains)] = False
    return fit


def _check_inside(X, lo, hi):
    outside = np.any((X < lo) | (X > hi), axis=1)
    if np.any(outside):
        raise ValueError(f"{int(outside.sum())} of {len(X)} data rows lie outside the support "
                         f"box [{lo}, {hi}]; widen the support or clip the data")


class _single_threaded_blas:
    """One BLAS thread while training, restored afterwards (needs threadpoolctl).

    The θ step's matrix products are small; OpenBLAS threads spinning beside numba's chain
    threads made training 7x slower on 2 cores (demo: 74 s vs 9.9 s, same results).
    """

    def __init__(self):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # optional: training is correct either way, only slower
            self._limits = None
        else:
            self._limits = threadpool_limits(limits=1, user_api="blas")

    def close(self):
        if self._limits is not None:
            self._limits.restore_original_limits()


def _progress_bar(total, enabled, desc):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # optional dependency
        logger.info("progress=True but tqdm is not installed; no progress bar")
        return None
    return tqdm(total=total, desc=desc, leave=False)
