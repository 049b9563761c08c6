"""Steering a trained model with external fields, without retraining it (paper §I.3, Eq. 19–23).

A trained model defines an energy landscape ``H(x) = λ·O(x; θ)``. A field adds a second term:

- :class:`ClassifierField`: ``-h ln P_clf(c | x)``, a classifier trained on the real labelled
  data alone, favouring class ``c`` (Eq. 22–23);
- :class:`DiscriminatorField`: ``-h ln D(x)``, ``D`` a discriminator's probability that ``x``
  is real (Eq. 20–21); :func:`adversarial_refinement` retrains only ``D``.

Both networks end in ``LogSoftmax``, so the field is ``λ₂·O₂(x)`` with ``λ₂ = -h·e_c``: the
compiled samplers evaluate it as a second energy term, on every backend. The method:
``docs/method.md`` §10.
"""

import logging

import numpy as np

from .nn import LogSoftmax
from .solvers import Adam

logger = logging.getLogger(__name__)

__all__ = ["ClassifierField", "DiscriminatorField", "train_classifier", "adversarial_refinement"]


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
                     random_state=0, history=None):
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
        Seeds the minibatch order.
    history : list, optional
        If given, the mean training negative log-likelihood of each epoch is appended.
    """
    _check_log_softmax_net(net, "net")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if X.ndim != 2 or y.shape != (len(X),):
        raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= net.n_observables:
        raise ValueError(f"labels must lie in [0, {net.n_observables})")
    rng = np.random.default_rng(random_state)
    adam = Adam(lr)
    for _ in range(int(epochs)):
        order = rng.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), int(batch_size)):
            idx = order[start:start + int(batch_size)]
            rows = np.arange(len(idx))
            logp, caches = net.forward_cached(X[idx])
            total -= float(logp[rows, y[idx]].sum())
            dO = np.zeros_like(logp)
            dO[rows, y[idx]] = -1.0 / len(idx)  # d(mean NLL)/d log p
            grad, _ = net.backward_cached(caches, dO)
            net.set_theta(adam.step(net.theta, grad + weight_decay * net.theta))
        if history is not None:
            history.append(total / len(X))
    return net


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
