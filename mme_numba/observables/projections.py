"""Squared projections ``O_k(x) = (u_k·x)²`` on a rotating orthonormal basis: PCA as Min-MaxEnt.

The basis is ``U = expm(A)`` with ``A`` skew-symmetric, so ``U`` is a rotation for every θ and
θ holds the ``d(d−1)/2`` entries of ``A`` above the diagonal (row-major).  In 2-d,
``θ = (a,)`` and ``U = [[cos a, sin a], [−sin a, cos a]]``: ``u_1 = (cos a, sin a)``.

The MaxEnt distribution constraining ``s_k = <(u_k·x)²>_data`` is the zero-mean Gaussian with
variances ``s_k`` along ``u_k``, of entropy ``S(θ) = ½ Σ_k ln(2πe s_k)`` (docs/method.md §6).  By
Hadamard's inequality ``Π s_k ≥ det M`` (``M = <x xᵀ>_data``) with equality exactly when ``U``
diagonalises ``M``: minimising ``S`` over θ gives the principal axes.  The observables are
second moments about the origin, so centre the data first for PCA of the covariance.

The θ gradient goes through the matrix exponential by hand: for ``L = <G, expm(A)>`` the
gradient in ``A`` is the Fréchet derivative ``L_expm(Aᵀ, G)`` (the adjoint of
``E ↦ L_expm(A, E)``), computed with :func:`scipy.linalg.expm_frechet`.
"""

import logging

import numpy as np
from scipy.linalg import expm, expm_frechet
from scipy.optimize import minimize

from ..nn.params import FlatParameters
from ..spec import DENSE, SPEC_WIDTH, SQUARE

__all__ = ["SquaredProjections", "squared_projections", "gaussian_maxent_entropy",
           "gaussian_maxent_entropy_gradient", "pca_by_entropy"]

logger = logging.getLogger(__name__)



class SquaredProjections(FlatParameters):
    """Observable map ``O_k(x; θ) = (u_k·x)²``, ``U = expm(A(θ))`` orthogonal.

    Parameters
    ----------
    d : int
        Input dimension (``>= 2``); also the number of observables.
    random_state : int, None or numpy.random.Generator, default 0
        Seeds the initial θ, drawn ``N(0, 1)`` per entry (a random rotation).

    Attributes
    ----------
    n_features, n_observables : int
        Both ``d``.
    n_params : int
        ``d(d−1)/2``.
    theta : ndarray, shape (n_params,)
        Upper-triangle entries of ``A``; assigning copies in (the array object is kept, so
        in-place optimizer updates and assignment both work).
    """

    def __init__(self, d, random_state=0):
        from .._validation import check_param

        self.n_features = self.n_observables = int(check_param("d", d))
        self._iu = np.triu_indices(self.n_features, k=1)
        self.n_params = len(self._iu[0])
        from .._validation import as_generator

        rng = as_generator(random_state)
        self._theta = rng.standard_normal(self.n_params)
        self._cached_theta = None
        self._U = None

    # -- parameters ------------------------------------------------------------------------

    def skew(self, theta=None):
        """The skew-symmetric generator ``A (d, d)`` built from ``theta`` (default: current)."""
        theta = self._theta if theta is None else np.asarray(theta, dtype=np.float64)
        A = np.zeros((self.n_features, self.n_features))
        A[self._iu] = theta
        return A - A.T

    def basis(self):
        """The orthogonal basis ``U = expm(A) (d, d)``, rows ``u_k`` (a copy)."""
        return self._basis().copy()

    def _basis(self):
        # θ may be updated in place by an optimizer: recompute U whenever its values changed.
        if self._cached_theta is None or not np.array_equal(self._cached_theta, self._theta):
            self._U = expm(self.skew())
            self._cached_theta = self._theta.copy()
        return self._U

    def _check_X(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n, {self.n_features}), got {X.shape}")
        return X

    # -- forward and backward --------------------------------------------------------------

    def forward(self, X):
        """Observables ``O (n, d)``, ``O_ik = (u_k·x_i)²``, for ``X (n, d)``."""
        Z = self._check_X(X) @ self._basis().T
        return Z * Z

    def backward(self, X, dO):
        """Gradient of ``sum(dO * O(X; θ))``.

        Parameters
        ----------
        X : array_like, shape (n, d)
        dO : array_like, shape (n, d)

        Returns
        -------
        dtheta : ndarray, shape (n_params,)
            Summed over samples, through ``expm`` by its Fréchet derivative.
        dX : ndarray, shape (n, d)
        """
        X = self._check_X(X)
        dO = np.asarray(dO, dtype=np.float64)
        if dO.shape != X.shape:
            raise ValueError(f"dO must have shape {X.shape}, got {dO.shape}")
        U = self._basis()
        dZ = 2.0 * (X @ U.T) * dO          # Z = X Uᵀ, O = Z²
        dU = dZ.T @ X                      # ∂/∂U_kj of Σ dZ_ik Σ_j U_kj X_ij
        return self.theta_gradient(dU), dZ @ U

    def theta_gradient(self, dU):
        """Chain a basis gradient ``dU (d, d)`` (of a scalar ``L(U)``) down to ``dθ (n_params,)``.

        ``dL/dA = L_expm(Aᵀ, dU)`` (adjoint Fréchet derivative); ``A = T − Tᵀ`` with ``T``
        strictly upper triangular holding θ, hence ``dθ = (dL/dA − (dL/dA)ᵀ)`` above the diagonal.
        """
        A = self.skew()
        _, dA = expm_frechet(A.T, np.asarray(dU, dtype=np.float64), compute_expm=True)
        return (dA - dA.T)[self._iu]

    # -- description, serialization --------------------------------------------------------

    def describe(self):
        """Compiled description: DENSE (no bias, ``W = U``) then SQUARE.

        Returns
        -------
        spec : ndarray of int64, shape (2, 8)
        """
        d = self.n_features
        spec = np.zeros((2, SPEC_WIDTH), dtype=np.int64)
        spec[0, :4] = (DENSE, d, d, 0)
        spec[1, :4] = (SQUARE, d, d, 0)
        return spec

    def kernel_params(self):
        """``U.ravel()`` (row-major ``W (out, in)`` of the DENSE row), shape ``(d*d,)``."""
        return self._basis().ravel().copy()

    def get_config(self):
        """JSON-able description (no parameters)."""
        return {"type": "SquaredProjections", "n_features": self.n_features}

    @classmethod
    def from_config(cls, cfg):
        """Rebuild from :meth:`get_config` output; set θ afterwards with :meth:`set_theta`."""
        if cfg.get("type", "SquaredProjections") != "SquaredProjections":
            raise ValueError(f"not a SquaredProjections config: type {cfg.get('type')!r}")
        return cls(int(cfg["n_features"]))

    def copy(self):
        """Deep copy, parameters included."""
        new = SquaredProjections(self.n_features)
        new.set_theta(self._theta)
        return new

    def __repr__(self):
        return f"squared_projections(d={self.n_features})"


def squared_projections(d, random_state=0):
    """Observables ``O_k(x) = (u_k·x)²`` on a learnable rotation (see :class:`SquaredProjections`).

    Parameters
    ----------
    d : int
        Input dimension, ``>= 2``.
    random_state : int, None or numpy.random.Generator, default 0

    Returns
    -------
    SquaredProjections
    """
    return SquaredProjections(d, random_state)


# ---------------------------------------------------------------------------------------
# Closed form: the Gaussian MaxEnt entropy on squared projections
# ---------------------------------------------------------------------------------------


def _second_moment(X):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, d), got shape {X.shape}")
    return X.T @ X / X.shape[0]


def gaussian_maxent_entropy(U, X):
    """Entropy of the MaxEnt distribution constraining ``s_k = <(u_k·x)²>_data``.

    Parameters
    ----------
    U : array_like, shape (d, d)
        Orthogonal basis, rows ``u_k``.
    X : array_like, shape (n, d)
        Data (about the origin: centre it for PCA).

    Returns
    -------
    float
        ``½ Σ_k ln(2πe s_k)`` in nats.
    """
    U = np.asarray(U, dtype=np.float64)
    s = np.einsum("ki,ij,kj->k", U, _second_moment(X), U)
    return float(0.5 * np.sum(np.log(2.0 * np.pi * np.e * s)))


def gaussian_maxent_entropy_gradient(obs, X):
    """``S(θ)`` of :func:`gaussian_maxent_entropy` and its analytic θ gradient.

    With ``λ_k = 1/(2 s_k)`` (the Gaussian's multipliers) ``dS/dU_k = 2 λ_k M u_k``; the model
    term of Eq. 8 (docs/method.md §5) vanishes because ``u_k`` stays unit-norm.

    Parameters
    ----------
    obs : SquaredProjections
    X : array_like, shape (n, d)

    Returns
    -------
    S : float
    dtheta : ndarray, shape (obs.n_params,)
    """
    M = _second_moment(X)
    U = obs._basis()
    MU = U @ M                                   # rows M u_k (M symmetric)
    s = np.sum(MU * U, axis=1)
    S = 0.5 * np.sum(np.log(2.0 * np.pi * np.e * s))
    return float(S), obs.theta_gradient(MU / s[:, None])


def pca_by_entropy(X, center=True, random_state=0, tol=1e-12, max_iter=500):
    """Principal axes as the minimiser of the closed-form MaxEnt entropy (no sampling).

    Minimises :func:`gaussian_maxent_entropy` over θ with L-BFGS and the analytic gradient of
    :func:`gaussian_maxent_entropy_gradient`.

    Parameters
    ----------
    X : array_like, shape (n, d)
    center : bool, default True
        Subtract the data mean first (the observables are moments about the origin).
    random_state : int, None or numpy.random.Generator, default 0
        Initial rotation.
    tol : float, default 1e-12
        L-BFGS gradient tolerance.
    max_iter : int, default 500

    Returns
    -------
    SquaredProjections
        At the optimum; ``basis()`` rows are the principal axes, in no particular order.
    """
    X = np.asarray(X, dtype=np.float64)
    if center:
        X = X - X.mean(axis=0)
    obs = SquaredProjections(X.shape[1], random_state)

    def fun(theta):
        obs.set_theta(theta)
        return gaussian_maxent_entropy_gradient(obs, X)

    res = minimize(fun, obs.theta.copy(), jac=True, method="L-BFGS-B",
                   options={"gtol": tol, "ftol": 1e-15, "maxiter": max_iter})
    obs.set_theta(res.x)
    logger.info("pca_by_entropy: S=%.12g after %d iterations (%s)", res.fun, res.nit, res.message)
    return obs
