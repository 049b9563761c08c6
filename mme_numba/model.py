"""MaxEnt and Min-MaxEnt models: ``p(x) ∝ exp(-λ·O(x; θ))`` on a support box.

The estimators hold the hyperparameters and the learned state (λ, the trained copy of the
observables, one :class:`~mme_numba.chains.Chains`); one epoch and the loop around it are
:mod:`mme_numba.fitting` (``docs/architecture.md`` draws the data flow; equation numbers
refer to ``docs/method.md``).
"""

import numpy as np

from . import checkpoint, fitting, settings
from ._validation import PARAMS, check_param, check_sample_size
from .chains import Chains, Target
from .core import entropy_gradient
from .estimator import Estimator
from .fields import field_terms, steer
from .likelihood import Likelihood
from .spec import CONV2D


def _chain_field(name):
    """A read-write view of one field of the model's :class:`~mme_numba.chains.Chains`."""
    return property(lambda self: getattr(self._chains, name),
                    lambda self, v: setattr(self._chains, name, v))


class MaxEnt(Estimator, Likelihood):
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
    anchor_every : int, "auto" or None
        Every this many epochs, replace the tracked ``ln Z`` (``docs/method.md`` §5) by an
        AIS estimate on 256 chains (:func:`mme_numba.likelihood.anneal`), undoing the drift
        of the per-epoch ratios (``history_``: ``anchor_shift``). ``"auto"`` (``MinMaxEnt``'s
        default): every 25 epochs unless the last AIS run cost over a quarter of the chains'
        sweeps since it. ``None``: never (``MaxEnt``'s default: its observables stay put).
    backend : {"cpu", "cuda"}
        Where kernels run: ``@njit(parallel=True)`` kernels, or ``@cuda.jit`` kernels on a GPU
        (same random streams and accept decisions; ``docs/gpu.md``).
    dtype : {"float64", "float32"} or np.float64, np.float32
        Arithmetic of the sampler and of the energies the kernels evaluate. ``"float32"``
        (moves ``"all"``, ``"single"``, ``"scan"``, on either backend; not with compiled
        observables): float32 chains, kernels and :meth:`sample`, with θ and λ rounded to
        float32 for the kernels; a proposal is the float64 normal deviate rounded once. The
        random streams, the acceptance test's energy difference, the λ solver, χ², the
        reweighting, θ, its gradient and :meth:`observe` stay float64. The dtype may change
        after fitting: the chains are rounded to it at their next run.
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
    default_max_epochs = settings.MAX_EPOCHS_MAXENT
    _plateau_min_epochs = settings.PLATEAU_MIN_EPOCHS_MAXENT    # no plateau before this epoch
    _plateau_window = settings.PLATEAU_WINDOW

    def __init__(self, observables, support, *, n_chains=1024, sweeps="auto", burn_in=200,
                 step_size="auto", target_acceptance=0.5, adapt_epochs=20, move="auto",
                 boundary="reflect", betas=None, lambda_solver="auto", lr_lambda=0.05, lambda_steps=1,
                 min_ess=0.5, max_lambda_step=1.0, var_floor=1e-12, max_epochs=None,
                 validation_fraction=None, anchor_every=None, backend="cpu", dtype="float64",
                 comm=None, random_state=None):
        params = dict(locals())    # __init__ stores the hyperparameters, nothing else
        del params["self"]
        vars(self).update(params)

    # ------------------------------------------------------------------ the chains
    chains_, rng_state_, step_, replicas_ = (_chain_field(n) for n in ("x", "rng_state", "step",
                                                                         "replicas"))

    def __copy__(self):
        """A shallow copy that owns its chains (a value) and its lock: sampling the copy
        leaves this model's chains, streams and replicas as they are."""
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__getstate__())
        if "_chains" in new.__dict__:
            new._chains = self._chains.copy()
        return new

    @property
    def lambda_solver_(self):
        """The λ solver in use (``lambda_solver``, with ``"auto"`` resolved by the class)."""
        if self.lambda_solver != "auto":
            return self.lambda_solver
        return "adam" if self._trains_theta else "newton"

    def _field(self):
        """Second energy term ``(spec2, params2, lam2)``: the steering field, if any."""
        return field_terms(getattr(self, "field_", None), getattr(self, "field_strength_", 0.0))

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
        self._check_fitted("with_field")
        return steer(self, field, strength, base, random_state)

    def _spec_params(self):
        return (np.ascontiguousarray(self.observables_.describe(), dtype=np.int64),
                np.ascontiguousarray(self.observables_.kernel_params(), dtype=np.float64))

    def _target(self, lam=None):
        """What the chains sample now (:class:`~mme_numba.chains.Target`)."""
        spec, params = self._spec_params()
        return Target(self._backend, spec, params, self.lambda_ if lam is None else lam,
                      self._field(), self.move_, self.boundary, *self.support_, self.comm)

    def _run_chains(self, n_sweeps, lam=None):
        """Advance every chain ``n_sweeps`` sweeps at ``λ`` (default ``lambda_``)."""
        self._chains.sync_replicas(self.betas, *self.support_, self._rng)
        return self._chains.run(self._target(lam), n_sweeps, self.step_size == "auto")

    def _burn_in(self):
        """``burn_in`` sweeps, adapting the step size (``step_size="auto"``)."""
        self._chains.sync_replicas(self.betas, *self.support_, self._rng)
        auto = self.step_size == "auto"
        self._chains.burn_in(self._target(), self.burn_in, auto,
                             self.target_acceptance if auto else None)

    @property
    def move_(self):
        """The move kind in use: ``move``, or for ``move="auto"`` the one the observables suit.

        Convolutional networks on images get ``"scan"`` (single pixels in order with
        incremental energies: all-pixel moves almost always leave the ``[0, 1]^64`` box of a
        digit, whose pixels sit on its faces), everything else ``"all"``.
        """
        if self.move != "auto":
            return self.move
        spec = np.asarray(self._current_observables().describe())
        return "scan" if np.any(spec[:, 0] == CONV2D) else "all"

    @property
    def sweeps_(self):
        """Sweeps per epoch in use: ``sweeps``, or for ``"auto"`` the adapted count."""
        if self.sweeps != "auto":
            return int(self.sweeps)
        return getattr(self, "_chains", Chains).auto_sweeps    # unfitted: the starting count

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
            (:class:`mme_numba.training.Plateau`: three plateaus of 50-epoch means, 100 for
            :class:`MinMaxEnt`, the steps halved at each), at most ``max_epochs`` epochs.
            An int runs exactly that many more epochs. Calling ``fit`` again continues from the current state
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
            return fitting.fit(self, X, epochs, checkpoint, checkpoint_every, progress, callback)

    # ------------------------------------------------------------------ using the model
    def sample(self, n, sweeps=None):
        """Draw ``n`` states from the persistent chains, advancing them.

        Each round advances every chain ``sweeps`` sweeps (default :attr:`sweeps`) and takes
        their states; ``ceil(n / n_chains)`` rounds are run and the first ``n`` rows returned.

        Returns
        -------
        ndarray, shape (n, n_features)
            Of the chains' dtype (float32 for ``dtype="float32"``).
        """
        self._check_fitted("sample")
        check_param("n", n)
        check_param("sweeps", sweeps, PARAMS["sample_sweeps"])
        with self._lock:
            self._validate_params()
            n = int(n)
            sweeps = int(self.sweeps_ if sweeps is None else sweeps)
            check_sample_size(n, self.n_features_in_)
            if not self._chains.burned_in:
                self._burn_in()
            self._chains.sync_replicas(self.betas, *self.support_, self._rng)
            return self._chains.draw(self._target(), n, sweeps, self.step_size == "auto")

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

    def save(self, path):
        """Write the whole state to ``path`` (.npz + JSON metadata, atomic); see :func:`mme_numba.load`."""
        with self._lock:
            checkpoint.save(self, path)

    def __repr__(self):
        state = f"epoch_={self.epoch_}" if self.is_fitted else "not fitted"
        return f"{type(self).__name__}({self.observables!r}, support={self.support!r}, {state})"


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
        ``"auto"`` (default): each θ step follows the natural gradient (``training.
        natural_direction``; ADAM's direction on conv networks) as far as changes the model by
        ``theta_kl_step`` nats of KL (``training.ThetaStepControl``); the budget warms up over
        20 epochs and is divided by 4 at each plateau of the entropy. A number: plain ADAM
        steps of that size in θ units (what the step does to the model depends on the problem).
    theta_kl_step : float
        The KL budget per θ step (nats) for ``lr_theta="auto"``.
    theta_steps : int
        θ updates per epoch (each on a fresh data minibatch when ``batch_size`` is set).
    batch_size : int, optional
        Data rows per θ step (default: all rows).
    **kwargs
        All :class:`MaxEnt` parameters; ``anchor_every`` defaults to ``"auto"`` here (the
        chains trail a model whose θ sharpens it every epoch, so the per-epoch ``ln Z``
        ratios drift), and ``epochs="auto"`` judges plateaus over 100-epoch windows.
    """

    _trains_theta = True
    default_max_epochs = settings.MAX_EPOCHS_MINMAXENT
    _plateau_min_epochs = settings.PLATEAU_MIN_EPOCHS_MINMAXENT
    _plateau_window = settings.PLATEAU_WINDOW_MINMAXENT

    def __init__(self, observables, support, *, lr_theta="auto", theta_kl_step=1e-2,
                 theta_steps=1, batch_size=None, **kwargs):
        kwargs.setdefault("anchor_every", "auto")
        super().__init__(observables, support, **kwargs)
        self.lr_theta, self.theta_kl_step = lr_theta, theta_kl_step
        self.theta_steps, self.batch_size = theta_steps, batch_size

    def entropy_gradient(self, X, samples, lam=None, sample_logw=None):
        """Entropy gradient ``dS/dθ`` of Eq. 8 from data rows ``X`` and model ``samples``,
        shape ``(n_params,)``.

        One backward pass of the auxiliary loss (Eq. 9–10) with upstream gradient ``+λ/N`` on
        the data rows and ``−w_k λ`` on the sample rows (no gradient flows through the
        sampler). ``lam`` defaults to :attr:`lambda_`; ``w`` are the normalized weights of the
        log importance weights ``sample_logw`` (uniform when not given).
        """
        return entropy_gradient(self._current_observables(), self.lambda_ if lam is None else lam,
                                X, samples, sample_logw)


def load(path, comm=None, observables=None):
    return checkpoint.load(path, comm, observables, classes=(MaxEnt, MinMaxEnt))


load.__doc__ = checkpoint.load.__doc__
