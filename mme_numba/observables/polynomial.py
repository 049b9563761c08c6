"""Fixed polynomial observables ``(x, x², …, x^degree)`` per feature: the classic MaxEnt baseline."""

import numpy as np

from ..spec import POWERS


class Polynomial:
    """Observable map ``O(x) = (x_j, x_j², …, x_j^degree)`` for each feature ``j``.

    Outputs are ordered feature-major: ``O[j*degree + (p-1)] = x_j**p``. There are no trainable
    parameters, so a :class:`~mme_numba.MinMaxEnt` on these observables is a plain MaxEnt fit.
    With ``degree=2`` on Gaussian data the MaxEnt solution is the Gaussian itself, with
    ``λ = (-μ/σ², 1/(2σ²))`` per feature.

    Parameters
    ----------
    degree : int
        Highest power, ``>= 1``.
    n_features : int, optional
        Input dimension ``d``. When omitted it is set from the data at the first ``forward``.
    """

    def __init__(self, degree=2, n_features=None):
        from .._validation import check_param

        self.degree = int(check_param("degree", degree))
        n_features = check_param("n_features", n_features)
        self.n_features = None if n_features is None else int(n_features)
        self.theta = np.zeros(0)

    @property
    def n_params(self):
        return 0

    @property
    def n_observables(self):
        if self.n_features is None:
            raise ValueError("polynomial: n_features is unknown until the map sees data")
        return self.n_features * self.degree

    def _check(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"polynomial: X must be 2-D (n_samples, n_features), got shape {X.shape}")
        if self.n_features is None:
            self.n_features = X.shape[1]
        elif X.shape[1] != self.n_features:
            raise ValueError(f"polynomial: X has {X.shape[1]} features, the map expects {self.n_features}")
        return X

    def forward(self, X):
        """``(n, d) -> (n, d*degree)``."""
        X = self._check(X)
        powers = X[:, :, None] ** np.arange(1, self.degree + 1)
        return powers.reshape(len(X), -1)

    def backward(self, X, dO):
        """Gradient of ``sum(dO * O(X))``: ``(dtheta (0,), dX (n, d))``."""
        X = self._check(X)
        dO = np.asarray(dO, dtype=np.float64).reshape(len(X), self.n_features, self.degree)
        p = np.arange(1, self.degree + 1)
        dpow = p * X[:, :, None] ** (p - 1)
        return np.zeros(0), np.sum(dO * dpow, axis=2)

    def describe(self):
        """Compiled description: one POWERS row."""
        d = self.n_features
        return np.array([[POWERS, d, d * self.degree, 0, self.degree, 0, 0, 0]], dtype=np.int64)

    def kernel_params(self):
        return self.theta

    def set_theta(self, theta):
        if np.size(theta) != 0:
            raise ValueError("polynomial: fixed observables have no parameters")

    def get_config(self):
        return {"type": "Polynomial", "degree": self.degree, "n_features": self.n_features}

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg["degree"], cfg.get("n_features"))

    def copy(self):
        return Polynomial(self.degree, self.n_features)

    def __repr__(self):
        return f"polynomial(degree={self.degree}, n_features={self.n_features})"


def polynomial(degree=2, n_features=None):
    """Fixed observables ``(x, x², …, x^degree)`` per feature (see :class:`Polynomial`)."""
    return Polynomial(degree, n_features)
