"""Steering a trained model with external fields, without retraining it (paper §I.3, Eq. 19–23).

A trained model defines an energy landscape ``H(x) = λ·O(x; θ)``. A field adds a second term:

- :class:`ClassifierField`: ``-h ln P_clf(c | x)``, a classifier trained on the real labelled
  data alone, favouring class ``c`` (Eq. 22–23);
- :class:`DiscriminatorField`: ``-h ln D(x)``, ``D`` a discriminator's probability that ``x``
  is real (Eq. 20–21); :func:`adversarial_refinement` retrains only ``D``.

:func:`train_classifier` trains adversarially by default (an L∞ attack of 0.1 of the pixel
range, 3 steps, label smoothing 0.1). A classifier trained by plain cross-entropy is steep in
directions no real digit varies along: its field drives chains to pixel patterns that it
calls the target with certainty and an independent judge does not (on the digits benchmark,
``benchmarks/steering.py``, the judge called 12-95 % of such samples the target, median 62 %,
at h = 5). The robust classifier's input gradient follows strokes, so its field draws digits.
To steer a given model, give the classifier an extra last class, "not a real example", of
that model's samples, so the field also pulls away from the model's own noise:
``train_classifier(..., negatives=model)`` (``n_negatives`` of its samples), or
:func:`refined_classifier`, which adds samples steered by other classifiers or by itself
(``mme-numba steer --classifier digits`` uses it with a plain and a robust 10-class
classifier: on the digits benchmark the one recipe measured to meet both of the judge's
bounds for every digit).

Both networks end in ``LogSoftmax``, so the field is ``λ₂·O₂(x)`` with ``λ₂ = -h·e_c``: the
compiled samplers evaluate it as a second energy term, on every backend. The method:
``docs/method.md`` §10.
"""

import logging

import numpy as np

from .backends import NO_FIELD
from .nn import LogSoftmax
from .solvers import Adam

logger = logging.getLogger(__name__)

__all__ = ["ClassifierField", "DiscriminatorField", "train_classifier", "refined_classifier",
           "adversarial_refinement"]


def _check_log_softmax_net(net, what):
    last = net.layers[-1] if hasattr(net, "layers") else None
    if not isinstance(last, LogSoftmax):
        raise ValueError(f"{what} must be a network ending in LogSoftmax (log class "
                         f"probabilities), e.g. mme.nn.classifier_cnn; got {net!r}")


class ClassifierField:
    """Field ``-ln P_clf(target | x)`` (times the strength given to ``with_field``).

    Parameters
    ----------
    classifier : Sequential
        Network ending in ``LogSoftmax``, outputs ``ln P(c | x)`` for each class.
    target : int
        The class to favour.
    """

    def __init__(self, classifier, target):
        from ._validation import check_param

        _check_log_softmax_net(classifier, "classifier")
        n_classes = classifier.n_observables
        check_param("target", target)
        if not 0 <= int(target) < n_classes:
            raise ValueError(f"target must be a class in [0, {n_classes}), got {target}")
        self.network = classifier
        self.target = int(target)

    def weights(self):
        """``λ₂`` for unit strength: ``-e_target``."""
        w = np.zeros(self.network.n_observables)
        w[self.target] = -1.0
        return w

    def __call__(self, X):
        """Field energy at unit strength, shape ``(n,)``."""
        return self.network.forward(X) @ self.weights()


class DiscriminatorField(ClassifierField):
    """Field ``-ln D(x)``: a two-class discriminator, class ``real_class`` = real data."""

    def __init__(self, discriminator, real_class=1):
        super().__init__(discriminator, real_class)
        if discriminator.n_observables != 2:
            raise ValueError("a discriminator has exactly 2 outputs (generated, real)")


def train_classifier(net, X, y, *, epochs=30, lr=3e-3, batch_size=64, weight_decay=0.0,
                     random_state=0, history=None, adversarial=0.1, adversarial_steps=3,
                     noise=0.0, label_smoothing=0.1, box=None, negatives=None,
                     n_negatives=1024):
    """Train a ``LogSoftmax`` network by cross-entropy with ADAM, in place; returns ``net``.

    Parameters
    ----------
    net : Sequential
        Ends in ``LogSoftmax``; trained in place (its ``theta``).
    X : ndarray (n, d)
    y : ndarray (n,) of int
        Class labels in ``[0, net.n_observables)``.
    epochs, lr, batch_size, weight_decay : training settings.
    random_state : int or Generator
        Seeds the minibatch order (and the noise and attack starts).
    history : list, optional
        If given, the mean training negative log-likelihood of each epoch is appended.
    adversarial : float
        Radius of an L∞ attack in input space, as a fraction of the box width: each minibatch
        is replaced by the point within this radius (and within ``box``) that
        ``adversarial_steps`` steps of projected signed-gradient ascent find on its loss
        (adversarial training). ``0`` trains on the images as given.
    adversarial_steps : int
        Steps of that attack.
    noise : float
        Standard deviation of Gaussian noise added to each minibatch (before the attack), as a
        fraction of the box width, clipped to the box.
    label_smoothing : float
        Weight moved from the label to the uniform distribution over classes in the target.
    box : (float, float), optional
        The input domain for noise and attacks (default: ``(X.min(), X.max())``).

    negatives : ndarray (m, d) or fitted model, optional
        Images of an extra "not a real example" class, the network's last output (``y`` must
        then use only the others), so that a field ``-ln P(c | x)`` also pushes away from what
        the model draws that is not real. Given a fitted model (``MaxEnt``/``MinMaxEnt``, the
        model to be steered), ``n_negatives`` of its own samples are drawn, from a deep copy
        reseeded with ``random_state`` (the model is not advanced; reproducible): this is the
        recommended way to train the classifier of a field that steers that model, and what
        ``mme-numba steer --classifier digits`` does. Drawing them costs
        ``ceil(n_negatives / n_chains) * sweeps`` sweeps of the model's chains.
    n_negatives : int, default 1024
        How many samples to draw when ``negatives`` is a model (ignored for an array).

    Set ``adversarial=0, noise=0, label_smoothing=0`` for plain cross-entropy training.

    Returns
    -------
    net : Sequential
        The network passed, trained.

    Raises
    ------
    ValueError
        For a network not ending in ``LogSoftmax``, inconsistent shapes, labels out of range
        (with ``negatives``, the last class is reserved for them), a model of another number
        of features, or bad settings.
    RuntimeError
        For a ``negatives`` model that is not fitted.

    Notes
    -----
    Measured on the digits benchmark (``benchmarks/steering.py``, judged only by
    ``mme_numba.judge``; docs/results.md, "Steering"): with the 10-class default, steering
    at h = 20 meets the judge's target-rate bound (>= 80 %) for every digit but its
    top-class-probability bound (>= 0.7) for 6 of 10. With ``negatives=model`` (1024 draws,
    ``classifier_cnn(11)``) both bounds hold for 9 of 10 digits at h = 20 (digit 4 at a
    top-class probability of 0.698) and 7 of 10 at h = 10: the model's samples are what lift
    legibility, but alone they fall just short; :func:`refined_classifier` adds steered
    samples to that class.

    Examples
    --------
    The classifier of a field that steers ``model`` (8x8 digits)::

        X, y = mme.datasets.digits()
        clf = mme.fields.train_classifier(mme.nn.classifier_cnn(11), X, y, negatives=model)
        steered = model.with_field(mme.fields.ClassifierField(clf, 3), strength=10)
    """
    _check_log_softmax_net(net, "net")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if X.ndim != 2 or y.shape != (len(X),):
        raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
    if negatives is not None:
        if y.size and y.max() >= net.n_observables - 1:
            raise ValueError(f"with negatives, labels must lie in [0, {net.n_observables - 1})"
                             f": the last class, {net.n_observables - 1}, is theirs")
        if hasattr(negatives, "sample") and hasattr(negatives, "chains_"):
            negatives = _model_samples(negatives, n_negatives, random_state, X.shape[1])
        elif hasattr(negatives, "sample"):
            raise RuntimeError(f"negatives: the model must be fitted first, got {negatives!r}")
        negatives = np.asarray(negatives, dtype=np.float64)
        if negatives.ndim != 2 or negatives.shape[1] != X.shape[1]:
            raise ValueError(f"negatives must be (m, {X.shape[1]}), got {negatives.shape}")
        X = np.concatenate([X, negatives])
        y = np.concatenate([y, np.full(len(negatives), net.n_observables - 1, np.int64)])
    if y.min() < 0 or y.max() >= net.n_observables:
        raise ValueError(f"labels must lie in [0, {net.n_observables})")
    for name, v in (("adversarial", adversarial), ("noise", noise)):
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
    if int(adversarial_steps) < 1:
        raise ValueError(f"adversarial_steps must be >= 1, got {adversarial_steps}")
    lo, hi = (float(X.min()), float(X.max())) if box is None else map(float, box)
    width = max(hi - lo, 1e-12)
    eps, sd = float(adversarial) * width, float(noise) * width
    k = net.n_observables
    rng = np.random.default_rng(random_state)
    adam = Adam(lr)
    for _ in range(int(epochs)):
        order = rng.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), int(batch_size)):
            idx = order[start:start + int(batch_size)]
            rows = np.arange(len(idx))
            # d(mean loss)/d log p for the (smoothed) target distribution
            dO = np.full((len(idx), k), -float(label_smoothing) / k / len(idx))
            dO[rows, y[idx]] -= (1.0 - float(label_smoothing)) / len(idx)
            xb = X[idx]
            if sd > 0:
                xb = np.clip(xb + sd * rng.standard_normal(xb.shape), lo, hi)
            if eps > 0:
                xb = _attack(net, xb, dO, eps, int(adversarial_steps), lo, hi, rng)
            logp, caches = net.forward_cached(xb)
            total -= float(logp[rows, y[idx]].sum())
            grad, _ = net.backward_cached(caches, dO)
            net.set_theta(adam.step(net.theta, grad + weight_decay * net.theta))
        if history is not None:
            history.append(total / len(X))
    return net


def refined_classifier(net, model, X, y, *, rounds=1, strength=5.0, per_class=64, burn_in=60,
                       sweeps=60, n_negatives=1024, steer_by=(), random_state=0,
                       **train_kwargs):
    """Train ``net`` to steer ``model``: the labelled classes plus a last "not a real example"
    class of the model's own samples and of samples the model draws under steering fields.

    The last class holds ``n_negatives`` samples of ``model`` (as ``train_classifier(...,
    negatives=model)``), then ``per_class`` samples of every class ``c`` drawn from the model
    steered toward ``c`` at ``strength`` by each classifier of ``steer_by`` (the states where
    such fields fool themselves), then, for each of ``rounds`` rounds, by ``net`` itself (the
    paper's discriminator refinement, Eq. 20-21, folded into the classifier). ``net`` is
    retrained from its initial weights on all of them before each round and at the end. The
    model is not changed.

    Parameters
    ----------
    net : Sequential
        Ends in ``LogSoftmax`` with ``k + 1`` outputs for the ``k`` labelled classes.
    model : fitted MaxEnt or MinMaxEnt
        The model to be steered (``n_features_in_`` = the columns of ``X``).
    X, y : ndarray (n, d), ndarray (n,) of int
        Labelled real examples, labels in ``[0, k)``.
    rounds : int, default 1
        Rounds steered by ``net`` itself (0: none).
    strength : float, default 5.0
        Field strength of the steered draws.
    per_class : int, default 64
        Steered draws per class and steering classifier: one state from each of the model's
        first ``per_class`` chains, after ``burn_in`` sweeps under the steered energy and
        ``sweeps`` more; seeded from ``random_state``.
    burn_in, sweeps : int, default 60
    n_negatives : int, default 1024
        Model samples in the last class.
    steer_by : sequence of Sequential, default ()
        Classifiers (``LogSoftmax``, at least ``k`` outputs) whose fields draw steered samples
        before the first training, e.g. a plain and a robust ``k``-class classifier.
    random_state : int or Generator, default 0
    **train_kwargs
        Passed to :func:`train_classifier` (e.g. ``epochs``, ``adversarial``).

    Returns
    -------
    net : Sequential
        The network passed, trained.

    Notes
    -----
    ``mme-numba steer --classifier digits`` calls it with ``rounds=0, steer_by=(plain,
    robust)`` (a plain cross-entropy and a default ``train_classifier`` 10-class classifier):
    on the digits benchmark (docs/results.md, Steering; graded only by ``mme_numba.judge``,
    64 samples per digit) every digit then meets both of issue 14's bounds at h = 20 and at
    h = 10 (judge target rate >= 0.88, top-class probability >= 0.72), against 9 of 10 at
    h = 20 with the model's samples alone. ``rounds=1`` without ``steer_by`` was measured at
    h = 20 only: 9 of 10 (digit 1 at a top-class probability of 0.62).
    """
    from .kernels import seed_states

    for name, v, lo in (("rounds", rounds, 0), ("per_class", per_class, 1),
                        ("burn_in", burn_in, 0), ("sweeps", sweeps, 1)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if not (isinstance(strength, (int, float, np.number)) and np.isfinite(strength)
            and strength > 0):
        raise ValueError(f"strength must be a finite number > 0, got {strength!r}")
    _check_log_softmax_net(net, "net")
    if isinstance(random_state, np.random.Generator):
        random_state = int(random_state.integers(2**31 - 1))
    random_state = 0 if random_state is None else int(random_state)
    theta0 = np.array(net.theta)
    neg = [_model_samples(model, n_negatives, random_state, np.asarray(X).shape[1])]
    k = net.n_observables - 1
    draws = 0

    def steered(clf):
        nonlocal draws
        draws += 1
        out = []
        for c in range(k):
            seed = random_state + 1000 * draws + c
            s = model.with_field(ClassifierField(clf, c), strength=strength, random_state=seed)
            m = min(int(per_class), len(s.chains_))
            s.chains_, s.step_ = s.chains_[:m].copy(), s.step_[:m].copy()
            s.rng_state_ = seed_states(seed, m)
            s.burn_in = int(burn_in)
            out.append(s.sample(m, sweeps=sweeps))
        return out

    for clf in steer_by:
        neg += steered(clf)
    for r in range(int(rounds) + 1):
        net.set_theta(theta0.copy())
        train_classifier(net, X, y, negatives=np.concatenate(neg), random_state=random_state,
                         **train_kwargs)
        if r == int(rounds):
            break
        neg += steered(net)
    return net


def _model_samples(model, n, random_state=0, n_features=None):
    """``n`` samples of a fitted model from a deep copy whose chain generators are reseeded
    from ``random_state``: reproducible, and ``model`` itself is neither advanced nor changed.
    ``n_features``, when given, is checked against the model's."""
    import copy

    from .kernels import seed_states

    if not getattr(model, "is_fitted", False):
        raise RuntimeError(f"negatives: the model must be fitted first, got {model!r}")
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n_negatives must be an integer >= 1, got {n!r}")
    if n_features is not None and model.n_features_in_ != n_features:
        raise ValueError(f"negatives: the model has {model.n_features_in_} features, "
                         f"X has {n_features}")
    if isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(2**63 - 1))
    else:
        seed = 0 if random_state is None else int(random_state)
    with model._lock:
        clone = copy.deepcopy(model)
    clone.rng_state_ = seed_states(seed, len(clone.chains_))
    return clone.sample(int(n))


def _attack(net, x0, dO, eps, steps, lo, hi, rng):
    """Projected signed-gradient ascent of the loss ``sum(dO * log p)`` in the L∞ ball of
    radius ``eps`` around ``x0``, within ``[lo, hi]``, from a random start."""
    lower, upper = np.maximum(x0 - eps, lo), np.minimum(x0 + eps, hi)
    x = np.clip(x0 + rng.uniform(-eps, eps, x0.shape), lower, upper)
    alpha = 2.5 * eps / steps
    for _ in range(steps):
        _, caches = net.forward_cached(x)
        _, dx = net.backward_cached(caches, dO)
        x = np.clip(x + alpha * np.sign(dx), lower, upper)
    return x


def adversarial_refinement(model, discriminator, X_real, *, rounds=3, strength=1.0,
                           n_samples=None, sweeps=None, epochs=20, random_state=0):
    """Refine generation against a discriminator, retraining only the discriminator.

    Round 0 trains ``D`` on real data against the model's own samples. Each round then draws
    samples from ``H - h ln D`` (the model is never retrained), adds them to the "generated"
    class and retrains ``D`` (paper §I.3).

    Returns
    -------
    steered : steered model with the final discriminator field
    history : list of dict
        Per round: the fraction of steered samples that ``D`` (before retraining) calls real.
    """
    X_real = np.asarray(X_real, dtype=np.float64)
    n = len(X_real) if n_samples is None else int(n_samples)
    fake = model.sample(n, sweeps=sweeps)
    history = []
    steered = None
    for r in range(int(rounds) + 1):
        X = np.concatenate([fake, X_real])
        y = np.concatenate([np.zeros(len(fake), np.int64), np.ones(len(X_real), np.int64)])
        train_classifier(discriminator, X, y, epochs=epochs, random_state=random_state + r)
        if r == int(rounds):
            break
        steered = model.with_field(DiscriminatorField(discriminator), strength=strength)
        new = steered.sample(n, sweeps=sweeps)
        fooled = float(np.mean(discriminator.forward(new).argmax(axis=1) == 1))
        history.append({"round": r, "fooled": fooled})
        fake = np.concatenate([fake, new])
    steered = model.with_field(DiscriminatorField(discriminator), strength=strength)
    return steered, history


def steer(model, field, strength=1.0, base=True, random_state=None):
    """The body of ``model.with_field`` (arguments documented there): a steered deep copy."""
    import copy

    from ._validation import PARAMS, check_param, copy_observables
    from .kernels import seed_states
    from .settings import FIELD_ESS_WARN

    check_param("strength", strength)
    check_param("base", base)
    check_param("random_state", random_state, PARAMS["field_random_state"])
    if isinstance(random_state, np.random.Generator):
        random_state = int(random_state.integers(2**63 - 1))
    model._validate_params()
    if getattr(model, "field_", None) is not None:
        raise ValueError("this model is already steered; call with_field on the base model")
    if not hasattr(field, "network") or not hasattr(field, "weights"):
        raise TypeError(f"field must be a mme_numba.fields field, got {field!r}")
    if field.network.n_features != model.n_features_in_:
        raise ValueError(f"the field's network takes {field.network.n_features} features, "
                         f"the model has {model.n_features_in_}")
    # The steered copy shares nothing mutable with the model nor with the field passed:
    # retraining either afterwards leaves it as it is.
    field = copy.copy(field)
    field.network = copy_observables(field.network)
    with model._lock:
        # a deep copy (its own lock, no backend object: __getstate__): arrays, trained
        # net, optimizers and controls are all the copy's own
        steered = copy.deepcopy(model)
        seed = (int(model.rng_state_[0, 0]) ^ 0x5DEECE66D) if random_state is None \
            else int(random_state)
    steered.field_ = field
    steered.field_strength_ = float(strength)
    steered.field_base_ = bool(base)
    if not base:
        steered.lambda_ = np.zeros_like(model.lambda_)
    steered.rng_state_ = seed_states(seed, len(model.chains_))
    steered.history_ = []
    steered._chains.burned_in = False
    a = -steered.field_strength_ * field(steered.chains_)
    w = np.exp(a - a.max())
    steered.field_ess_ = min(1.0, float(w.sum() ** 2 / (len(w) * np.sum(w * w))))  # rounding
    if steered.field_ess_ < FIELD_ESS_WARN:
        logger.warning("the steering field reweights the model's samples to an effective "
                       "sample size of %.2g %%: the field dominates what is generated",
                       100 * steered.field_ess_)
    return steered


def field_terms(field, strength):
    """The kernels' second energy term ``(spec2, params2, lam2)`` of ``strength · field``
    (``backends.NO_FIELD`` without a field)."""
    if field is None:
        return NO_FIELD
    net = field.network
    return (np.ascontiguousarray(net.describe(), dtype=np.int64),
            np.ascontiguousarray(net.kernel_params(), dtype=np.float64), strength * field.weights())
