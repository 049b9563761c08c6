"""A variational autoencoder baseline in autograd, for density comparisons in low dimension.

Encoder ``q(z|x) = N(μ_q(x), diag σ_q²(x))`` is an MLP ``[d, *hidden, 2·latent]`` (the same
architecture as the observables MLP ``[d, *hidden, m]`` up to the output width); the decoder
``p(x|z) = N(μ_p(z), diag σ_p²(z))`` mirrors it, ``[latent, *reversed(hidden), 2·d]``, so the
Gaussian likelihood has a learned, input-dependent variance.  Prior ``p(z) = N(0, I)``.
Training maximises the ELBO with one reparameterised ``z`` per point, ADAM, minibatches.

The model density ``p(x) = ∫ p(x|z) p(z) dz`` is computed

- ``"quadrature"`` (default when ``latent_dim == 1``): composite Simpson on ``z ∈ [−8, 8]``,
  deterministic and accurate to far below the KL values it is used for;
- ``"importance"``: ``ln p(x) ≈ ln mean_k p(x|z_k) p(z_k) / q(z_k|x)``, ``z_k ~ q(z|x)``
  (any latent size; a lower bound in expectation, tight as the sample count grows).

Inputs are standardised internally (``x̃ = (x − shift) / scale``, from the training data);
densities are returned in the original units (``− Σ ln scale``).
"""

import logging
import time

import autograd.numpy as anp
import numpy as np
from autograd import grad
from scipy.special import logsumexp

from mme_numba import quadrature

__all__ = ["VAE"]

logger = logging.getLogger(__name__)

_LOG_2PI = float(np.log(2.0 * np.pi))
_ACTIVATIONS = {"tanh": anp.tanh, "softplus": lambda z: anp.logaddexp(0.0, z),
                "relu": lambda z: anp.maximum(z, 0.0)}


def _init_mlp(sizes, rng):
    """``[(W (in, out), b (out,)), ...]`` with ``N(0, 1/in)`` weights and zero biases."""
    return [(rng.standard_normal((a, b)) / np.sqrt(a), np.zeros(b))
            for a, b in zip(sizes[:-1], sizes[1:])]


def _mlp(params, h, act):
    for i, (W, b) in enumerate(params):
        h = anp.dot(h, W) + b
        if i < len(params) - 1:
            h = act(h)
    return h


def _gauss_logpdf(x, mean, log_var):
    """``ln N(x; mean, exp(log_var))`` summed over the last axis."""
    return -0.5 * anp.sum(_LOG_2PI + log_var + (x - mean) ** 2 / anp.exp(log_var), axis=-1)


class VAE:
    """Gaussian VAE with learned decoder variance (see the module docstring).

    Parameters
    ----------
    hidden : sequence of int, default (32, 32)
        Hidden widths of the encoder; the decoder uses them reversed.
    latent_dim : int, default 1
    activation : {"tanh", "softplus", "relu"}, default "tanh"
    lr : float, default 1e-3
        ADAM learning rate.
    batch_size : int, default 100
        Minibatch size; an epoch is one pass over the shuffled data.
    kl_warmup : int, default 0
        KL annealing ("warm-up"): the KL term of the ELBO is weighted by
        ``β = min(1, epoch / kl_warmup)``, epoch counted from 1, so the encoder learns to use
        the latent before the prior pulls it back; ``0`` trains the plain ELBO throughout.  A
        standard remedy for posterior collapse, to which the learned-variance decoder is prone
        (it can explain 1-d data by one broad Gaussian that ignores ``z``).
    standardize : bool, default True
        Shift and scale the inputs by the training median and interquartile range / 1.349
        (robust to heavy tails; equals the standard deviation for Gaussian data).
    random_state : int, None or numpy.random.Generator, default 0

    Attributes
    ----------
    params_ : list of list of (W, b)
        ``[encoder, decoder]`` weights.
    history_ : list of dict
        Per epoch: ``epoch``, ``loss`` (mean negative ELBO, β = 1, in standardised units, at
        the parameters each minibatch saw), ``beta``, ``t_epoch``.
    epoch_ : int
    """

    def __init__(self, hidden=(32, 32), latent_dim=1, activation="tanh", lr=1e-3,
                 batch_size=100, kl_warmup=0, standardize=True, random_state=0):
        self.hidden = tuple(int(h) for h in hidden)
        self.latent_dim = int(latent_dim)
        self.activation = activation
        self.lr = float(lr)
        self.batch_size = int(batch_size)
        self.kl_warmup = int(kl_warmup)
        self.standardize = bool(standardize)
        self.random_state = random_state
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if self.latent_dim < 1 or self.batch_size < 1 or self.lr <= 0 or self.kl_warmup < 0:
            raise ValueError("latent_dim and batch_size must be >= 1, lr > 0, kl_warmup >= 0")

    def get_params(self):
        """Hyperparameters, scikit-learn style."""
        return {k: getattr(self, k) for k in ("hidden", "latent_dim", "activation", "lr",
                                               "batch_size", "kl_warmup", "standardize",
                                               "random_state")}

    # -- networks --------------------------------------------------------------------------

    def _encode(self, params, x):
        out = _mlp(params[0], x, _ACTIVATIONS[self.activation])
        return out[:, :self.latent_dim], out[:, self.latent_dim:]

    def _decode(self, params, z):
        out = _mlp(params[1], z, _ACTIVATIONS[self.activation])
        return out[:, :self.n_features_], out[:, self.n_features_:]

    def _neg_elbo(self, params, x, eps, beta=1.0):
        """Mean negative ELBO of a batch ``x (b, d)`` with noise ``eps (b, latent)``.

        ``beta`` weights the KL term (1: the true ELBO; below 1 during KL warm-up).
        """
        mu_q, lv_q = self._encode(params, x)
        z = mu_q + anp.exp(0.5 * lv_q) * eps
        mu_p, lv_p = self._decode(params, z)
        kl = 0.5 * anp.sum(anp.exp(lv_q) + mu_q ** 2 - 1.0 - lv_q, axis=1)
        return anp.mean(beta * kl - _gauss_logpdf(x, mu_p, lv_p))

    # -- training --------------------------------------------------------------------------

    def _setup(self, X):
        self.n_features_ = X.shape[1]
        self._rng = (self.random_state if isinstance(self.random_state, np.random.Generator)
                     else np.random.default_rng(self.random_state))
        if self.standardize:
            q1, med, q3 = np.percentile(X, [25, 50, 75], axis=0)
            self.shift_ = med
            self.scale_ = np.where(q3 > q1, (q3 - q1) / 1.349, 1.0)
        else:
            self.shift_, self.scale_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
        d, h, k = self.n_features_, list(self.hidden), self.latent_dim
        self.params_ = [_init_mlp([d] + h + [2 * k], self._rng),
                        _init_mlp([k] + h[::-1] + [2 * d], self._rng)]
        zeros = lambda: [[(np.zeros_like(W), np.zeros_like(b)) for W, b in net] for net in self.params_]
        self._m, self._v, self._t = zeros(), zeros(), 0
        self._grad = grad(self._neg_elbo)
        self.history_ = []
        self.epoch_ = 0

    def _adam(self, g, beta1=0.9, beta2=0.999, eps=1e-8):
        self._t += 1
        c1, c2 = 1 - beta1 ** self._t, 1 - beta2 ** self._t
        for net, gnet, mnet, vnet in zip(self.params_, g, self._m, self._v):
            for (W, b), gl, ml, vl in zip(net, gnet, mnet, vnet):
                for p, gp, m, v in ((W, gl[0], ml[0], vl[0]), (b, gl[1], ml[1], vl[1])):
                    m *= beta1
                    m += (1 - beta1) * gp
                    v *= beta2
                    v += (1 - beta2) * gp * gp
                    p -= self.lr * (m / c1) / (np.sqrt(v / c2) + eps)

    def fit(self, X, epochs=100, callback=None):
        """Train for ``epochs`` more passes over ``X``.

        Parameters
        ----------
        X : array_like, shape (n, d)
        epochs : int
        callback : callable, optional
            ``callback(vae, record)`` after every epoch.

        Returns
        -------
        self
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n, d), got shape {X.shape}")
        if not hasattr(self, "params_"):
            self._setup(X)
        elif X.shape[1] != self.n_features_:
            raise ValueError(f"X has {X.shape[1]} features, the VAE was fitted on {self.n_features_}")
        Xs = (X - self.shift_) / self.scale_
        n = len(Xs)
        for _ in range(int(epochs)):
            t0 = time.perf_counter()
            order = self._rng.permutation(n)
            beta = 1.0 if self.kl_warmup <= 0 else min(1.0, (self.epoch_ + 1) / self.kl_warmup)
            total = 0.0
            for start in range(0, n, self.batch_size):
                batch = Xs[order[start:start + self.batch_size]]
                eps = self._rng.standard_normal((len(batch), self.latent_dim))
                g = self._grad(self.params_, batch, eps, beta)
                total += float(self._neg_elbo(self.params_, batch, eps)) * len(batch)
                self._adam(g)
            self.epoch_ += 1
            record = {"epoch": self.epoch_, "loss": total / n, "beta": beta,
                      "t_epoch": time.perf_counter() - t0}
            self.history_.append(record)
            logger.debug("VAE epoch %d: loss %.5g", self.epoch_, record["loss"])
            if callback is not None:
                callback(self, record)
        return self

    # -- densities and samples -------------------------------------------------------------

    def log_density(self, X, method=None, n_latent=801, z_max=8.0, random_state=0):
        """Model log density ``ln p(x)`` on ``R^d`` (not renormalised to any box).

        Parameters
        ----------
        X : array_like, shape (n, d)
        method : {"quadrature", "importance"}, optional
            Default: quadrature when ``latent_dim == 1``, importance sampling otherwise.
        n_latent : int, default 801
            Simpson nodes on ``[−z_max, z_max]`` (odd), or importance samples per point.
        z_max : float, default 8.0
        random_state : int or numpy.random.Generator, default 0
            Importance-sampling noise.

        Returns
        -------
        log_p : ndarray, shape (n,)
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1 and self.n_features_ == 1:
            X = X[:, None]
        Xs = (X - self.shift_) / self.scale_
        jac = -np.sum(np.log(self.scale_))
        method = method or ("quadrature" if self.latent_dim == 1 else "importance")
        if method == "quadrature":
            if self.latent_dim != 1:
                raise ValueError("latent quadrature is implemented for latent_dim == 1 only")
            z, w = quadrature.simpson_weights(-z_max, z_max, n_latent)
            mu_p, lv_p = self._decode(self.params_, z[:, None])                  # (k, d)
            log_prior = -0.5 * (_LOG_2PI + z ** 2) + np.log(w)                   # (k,)
            out = np.empty(len(Xs))
            for s in range(0, len(Xs), 2048):
                xb = Xs[s:s + 2048, None, :]                                     # (b, 1, d)
                ll = -0.5 * np.sum(_LOG_2PI + lv_p + (xb - mu_p) ** 2 / np.exp(lv_p), axis=2)
                out[s:s + 2048] = logsumexp(ll + log_prior, axis=1)
            return out + jac
        if method == "importance":
            rng = random_state if isinstance(random_state, np.random.Generator) else \
                np.random.default_rng(random_state)
            mu_q, lv_q = self._encode(self.params_, Xs)
            out = np.empty(len(Xs))
            for i in range(len(Xs)):
                eps = rng.standard_normal((n_latent, self.latent_dim))
                z = mu_q[i] + np.exp(0.5 * lv_q[i]) * eps
                mu_p, lv_p = self._decode(self.params_, z)
                log_w = (_gauss_logpdf(Xs[i], mu_p, lv_p)
                         - 0.5 * np.sum(_LOG_2PI + z ** 2, axis=1)
                         - _gauss_logpdf(z, mu_q[i], lv_q[i]))
                out[i] = logsumexp(log_w) - np.log(n_latent)
            return out + jac
        raise ValueError(f"method must be 'quadrature' or 'importance', got {method!r}")

    def sample(self, n, random_state=None):
        """Draw ``n`` points from the generative model, shape ``(n, d)``."""
        rng = self._rng if random_state is None else np.random.default_rng(random_state)
        z = rng.standard_normal((int(n), self.latent_dim))
        mu_p, lv_p = self._decode(self.params_, z)
        x = mu_p + np.exp(0.5 * lv_p) * rng.standard_normal(mu_p.shape)
        return x * self.scale_ + self.shift_

    def kl_from(self, true_logpdf, lo, hi, n_grid=None):
        """``KL(true ‖ VAE)`` with both densities renormalised on the box ``[lo, hi]``.

        Parameters
        ----------
        true_logpdf : callable
            ``(n, d) -> (n,)`` log density of the target.
        lo, hi : float or array_like, shape (d,)
        n_grid : int, optional
            Simpson nodes per dimension (see :func:`mme_numba.quadrature.kl_divergence`).

        Returns
        -------
        float
        """
        return quadrature.kl_divergence(true_logpdf, self.log_density, lo, hi, n_grid)
