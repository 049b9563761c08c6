"""A VAE for images with pixels in ``[0, 1]``: the usual baseline for the digits experiment.

The Gaussian-likelihood :class:`mme_numba.baselines.vae.VAE` (learned decoder variance) is built
for low-dimensional densities; on 8×8 digits its likelihood is unbounded (5 of the 64 pixels
are 0 in all 200 training images, so the decoder variance there collapses) and its samples
``μ_p(z) + σ_p(z) ξ`` are dominated by pixel noise (measured: values from −10 to 12). This
model is the standard image VAE instead:

* encoder ``q(z|x) = N(μ(x), diag σ²(x))``, MLP ``[d, *hidden, 2·latent]``, tanh;
* decoder ``p(x|z) = Π_j Bernoulli-cross-entropy(x_j; π_j(z))``, MLP
  ``[latent, *hidden[::-1], d]`` with a sigmoid output (the cross-entropy is the usual
  surrogate for grey levels in ``[0, 1]``);
* prior ``N(0, I)``; ELBO with one reparameterized ``z`` per image, ADAM, minibatches;
* samples are the decoder means ``π(z)``, ``z ~ N(0, I)`` (how image VAEs are shown and
  compared; Bernoulli draws would be binary images).
"""

import time

import autograd.numpy as anp
import numpy as np
from autograd import grad

__all__ = ["ImageVAE"]


def _init(sizes, rng):
    return [(rng.standard_normal((a, b)) / np.sqrt(a), np.zeros(b))
            for a, b in zip(sizes[:-1], sizes[1:])]


def _mlp(params, h):
    for i, (W, b) in enumerate(params):
        h = anp.dot(h, W) + b
        if i < len(params) - 1:
            h = anp.tanh(h)
    return h


class ImageVAE:
    """Bernoulli-decoder VAE on ``(n, d)`` images in ``[0, 1]`` (see the module docstring).

    Parameters
    ----------
    hidden : sequence of int, default (128,)
        Encoder hidden widths (the decoder uses them reversed).
    latent_dim : int, default 8
    lr : float, default 1e-3
        ADAM step size.
    batch_size : int, default 50
    random_state : int, default 0

    Attributes
    ----------
    params_ : list
        ``[encoder, decoder]`` lists of ``(W, b)``.
    history_ : list of dict
        ``epoch``, ``loss`` (mean negative ELBO, nats per image), ``t_epoch``.
    """

    def __init__(self, hidden=(128,), latent_dim=8, lr=1e-3, batch_size=50, random_state=0):
        self.hidden = tuple(int(h) for h in hidden)
        self.latent_dim = int(latent_dim)
        self.lr = float(lr)
        self.batch_size = int(batch_size)
        self.random_state = random_state
        if self.latent_dim < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("latent_dim and batch_size must be >= 1 and lr > 0")

    def _neg_elbo(self, params, x, eps):
        k = self.latent_dim
        enc = _mlp(params[0], x)
        mu, log_var = enc[:, :k], enc[:, k:]
        z = mu + anp.exp(0.5 * log_var) * eps
        logits = _mlp(params[1], z)
        # -log Bernoulli(x; sigmoid(logits)) summed over pixels, computed stably
        rec = anp.sum(anp.logaddexp(0.0, logits) - x * logits, axis=1)
        kl = 0.5 * anp.sum(anp.exp(log_var) + mu ** 2 - 1.0 - log_var, axis=1)
        return anp.mean(rec + kl)

    def fit(self, X, epochs=300):
        """Train ``epochs`` more passes over ``X (n, d)``, pixels in ``[0, 1]``; returns self."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.min() < 0.0 or X.max() > 1.0:
            raise ValueError("X must be 2-D with values in [0, 1]")
        if not hasattr(self, "params_"):
            self._rng = np.random.default_rng(self.random_state)
            d, h = X.shape[1], list(self.hidden)
            self.n_features_ = d
            self.params_ = [_init([d] + h + [2 * self.latent_dim], self._rng),
                            _init([self.latent_dim] + h[::-1] + [d], self._rng)]
            flat = [a for net in self.params_ for pair in net for a in pair]
            self._m = [np.zeros_like(a) for a in flat]
            self._v = [np.zeros_like(a) for a in flat]
            self._t = 0
            self._grad = grad(self._neg_elbo)
            self.history_ = []
        for _ in range(int(epochs)):
            t0 = time.perf_counter()
            order = self._rng.permutation(len(X))
            total = 0.0
            for s in range(0, len(X), self.batch_size):
                batch = X[order[s:s + self.batch_size]]
                eps = self._rng.standard_normal((len(batch), self.latent_dim))
                total += float(self._neg_elbo(self.params_, batch, eps)) * len(batch)
                self._adam(self._grad(self.params_, batch, eps))
            self.history_.append({"epoch": len(self.history_) + 1, "loss": total / len(X),
                                  "t_epoch": time.perf_counter() - t0})
        return self

    def _adam(self, g, beta1=0.9, beta2=0.999, eps=1e-8):
        self._t += 1
        flat_p = [a for net in self.params_ for pair in net for a in pair]
        flat_g = [a for net in g for pair in net for a in pair]
        c1, c2 = 1 - beta1 ** self._t, 1 - beta2 ** self._t
        for p, gp, m, v in zip(flat_p, flat_g, self._m, self._v):
            m *= beta1
            m += (1 - beta1) * gp
            v *= beta2
            v += (1 - beta2) * gp * gp
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + eps)

    def sample(self, n, random_state=None):
        """Decoder means ``π(z)`` for ``n`` prior draws ``z ~ N(0, I)``, shape ``(n, d)``."""
        rng = np.random.default_rng(random_state) if random_state is not None else self._rng
        z = rng.standard_normal((int(n), self.latent_dim))
        return 1.0 / (1.0 + np.exp(-_mlp(self.params_[1], z)))
