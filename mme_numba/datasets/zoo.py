"""A zoo of test densities with exact log densities: the problems the defaults are judged on.

Each :class:`Problem` is a density restricted to a support box, with an exact sampler and an
exact (box-normalised) log density, so a fitted model can be graded by quadrature against the
truth (``KL(true ‖ model)``) rather than by anything the model itself computes.

The curved 2-d densities (a banana, two moons, spirals, a pinwheel) are written as mixtures of
many small isotropic Gaussians placed along curves: the density of "a point on a curve plus
Gaussian noise", which is how such data sets are usually made, with a log density that is a
plain ``logsumexp``. The checkerboard is uniform on alternate cells. The 1-d problems are
Gaussian or Cauchy mixtures and a skewed density with its mass against a hard edge.

>>> from mme_numba.datasets import zoo
>>> p = zoo.problem("moons")
>>> X = p.sample(1000, seed=0)          # (1000, 2), inside p.support
>>> logp = p.logpdf(X)                   # exact, normalised on the box
"""

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.special import logsumexp

__all__ = ["Problem", "problem", "problem_names", "PROBLEMS"]

_LOG_2PI = np.log(2.0 * np.pi)


@dataclass
class Problem:
    """One density on a box.

    Attributes
    ----------
    name : str
    d : int
        Number of features.
    support : (lo, hi)
        The box, as ``(d,)`` arrays.
    kind : {"density", "pca"}
        ``"pca"`` problems are Gaussians graded by their principal axes, not by quadrature.
    n_train : int
        Training-set size the zoo uses.
    network : tuple of int
        MLP sizes the zoo fits (``()`` for PCA, which uses ``squared_projections(d)``).
    """

    name: str
    d: int
    support: tuple
    draw: Callable = field(repr=False)           # (n, rng) -> (n, d), may leave the box
    log_density: Callable = field(repr=False)    # (n, d) -> (n,), unnormalised on the box
    kind: str = "density"
    n_train: int = 1000
    network: tuple = ()
    covariance: np.ndarray = field(default=None, repr=False)
    description: str = ""

    def sample(self, n, seed=None):
        """``n`` exact draws from the density restricted to the box, shape ``(n, d)``."""
        rng = np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed
        lo, hi = self.support
        out, have = [], 0
        while have < n:
            x = self.draw(max(2 * (n - have), 64), rng)
            x = x[np.all((x >= lo) & (x <= hi), axis=1)]
            out.append(x)
            have += len(x)
        return np.concatenate(out)[:n]

    def logpdf(self, x):
        """Exact log density on the box (``-inf`` outside), normalised by quadrature."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.d)
        lo, hi = self.support
        out = self.log_density(x) - self.log_mass
        inside = np.all((x >= lo) & (x <= hi), axis=1)
        return np.where(inside, out, -np.inf)

    @property
    def log_mass(self):
        """``ln ∫_box exp(log_density)``, computed once by quadrature (``d <= 2``)."""
        if self.kind == "pca":
            return 0.0
        _, log_w, raw = self._raw_grid()
        return float(logsumexp(raw + log_w))

    def _raw_grid(self):
        """Quadrature nodes, log weights and the unnormalised log density there (cached)."""
        if "_grid_cache" not in self.__dict__:
            from .. import quadrature

            points, log_w, _ = quadrature.grid(*self.support, n_grid=_GRID[self.d])
            self.__dict__["_grid_cache"] = (points, log_w, self.log_density(points))
        return self.__dict__["_grid_cache"]

    def _grid(self):
        points, log_w, raw = self._raw_grid()
        return points, log_w, raw - self.log_mass

    def entropy(self):
        """Exact entropy of the density on the box (nats), by quadrature."""
        points, log_w, lp = self._grid()
        mass = np.exp(lp + log_w)
        keep = mass > 0
        return float(-np.sum(mass[keep] * lp[keep]))

    def kl_to(self, energy_fn):
        """``KL(true ‖ model)`` by quadrature for a model ``p ∝ exp(-energy_fn(x))`` on the box."""
        points, log_w, lp = self._grid()
        e = np.concatenate([np.asarray(energy_fn(points[s:s + 65536]), dtype=np.float64)
                            for s in range(0, len(points), 65536)])
        from .. import quadrature

        lq, _ = quadrature.log_normalise(-e, log_w)
        mass = np.exp(lp + log_w)
        keep = mass > 0
        return float(np.sum(mass[keep] * (lp[keep] - lq[keep])))


_GRID = {1: 4001, 2: 401}


def _box(lo, hi, d):
    return (np.broadcast_to(np.asarray(lo, dtype=np.float64), (d,)).copy(),
            np.broadcast_to(np.asarray(hi, dtype=np.float64), (d,)).copy())


# ---------------------------------------------------------------- Gaussian mixtures
def _gauss_mix(means, scales, weights):
    """(draw, log_density) of an isotropic Gaussian mixture, ``means (k, d)``, ``scales (k,)``."""
    means = np.asarray(means, dtype=np.float64)
    k, d = means.shape
    scales = np.broadcast_to(np.asarray(scales, dtype=np.float64), (k,)).copy()
    w = np.broadcast_to(np.asarray(weights, dtype=np.float64), (k,)).copy()
    logw = np.log(w / w.sum())

    def draw(n, rng):
        c = rng.choice(k, size=n, p=np.exp(logw))
        return means[c] + scales[c, None] * rng.standard_normal((n, d))

    def log_density(x):
        out = np.empty(len(x))
        for s in range(0, len(x), 4096):
            xs = x[s:s + 4096]
            sq = (np.sum(xs * xs, axis=1)[:, None] - 2.0 * xs @ means.T
                  + np.sum(means * means, axis=1)[None, :])
            out[s:s + 4096] = logsumexp(logw - 0.5 * np.maximum(sq, 0.0) / scales ** 2
                                        - d * np.log(scales) - 0.5 * d * _LOG_2PI, axis=1)
        return out

    return draw, log_density


def _curve_mix(points, scale, weights=None):
    """Noise of std ``scale`` around points spread along curves (``points (k, 2)``)."""
    points = np.asarray(points, dtype=np.float64)
    w = np.ones(len(points)) if weights is None else weights
    return _gauss_mix(points, scale, w)


def _mixture_1d(name, means, scales, weights, support, description):
    draw, logd = _gauss_mix(np.asarray(means, dtype=np.float64)[:, None], scales, weights)
    return Problem(name, 1, _box(*support, 1), draw, logd, network=(1, 32, 32, 3),
                   description=description)


def _cauchy_1d():
    med, gam = np.array([-2.0, 2.0]), 0.5

    def draw(n, rng):
        c = rng.integers(2, size=n)
        return (med[c] + gam * rng.standard_cauchy(n))[:, None]

    def log_density(x):
        z = (x[:, :1] - med[None]) / gam
        return logsumexp(-np.log1p(z * z) - np.log(2 * np.pi * gam), axis=1)

    return Problem("cauchy", 1, _box(-20.0, 20.0, 1), draw, log_density, network=(1, 32, 32, 3),
                   description="½Cauchy(−2, 0.5) + ½Cauchy(2, 0.5) on [−20, 20] (heavy tails)")


def _edge_1d():
    # 0.7 Exp(rate 2) + 0.3 N(2.5, 0.5²) on [0, 5]: the density is largest at the hard edge x = 0.
    rate, mu, sd, a = 2.0, 2.5, 0.5, 0.7

    def draw(n, rng):
        c = rng.random(n) < a
        return np.where(c, rng.exponential(1.0 / rate, n), mu + sd * rng.standard_normal(n))[:, None]

    def log_density(x):
        x0 = x[:, 0]
        with np.errstate(invalid="ignore"):
            le = np.where(x0 >= 0, np.log(a * rate) - rate * x0, -np.inf)
        lg = np.log(1 - a) - 0.5 * ((x0 - mu) / sd) ** 2 - np.log(sd) - 0.5 * _LOG_2PI
        return np.logaddexp(le, lg)

    return Problem("edge", 1, _box(0.0, 5.0, 1), draw, log_density, network=(1, 32, 32, 3),
                   description="0.7 Exp(2) + 0.3 N(2.5, 0.5²) on [0, 5]: mass against a hard edge")


# ---------------------------------------------------------------- 2-d curved densities
def _banana():
    t = np.linspace(-2.2, 2.2, 200)
    pts = np.stack([t, 0.6 * t ** 2 - 1.5], axis=1)
    draw, logd = _curve_mix(pts, 0.25, np.exp(-0.5 * (t / 1.1) ** 2))
    return Problem("banana", 2, _box(-4.0, 4.0, 2), draw, logd, network=(2, 32, 32, 4),
                   description="noise 0.25 around the parabola x₂ = 0.6 x₁² − 1.5 (curved mass)")


def _moons():
    t = np.linspace(0.0, np.pi, 150)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    draw, logd = _curve_mix(np.concatenate([upper, lower]) - [0.5, 0.25], 0.12)
    return Problem("moons", 2, _box(-2.0, 2.0, 2), draw, logd, network=(2, 32, 32, 4),
                   description="two moons, noise 0.12 (disconnected curved mass)")


def _spirals():
    t = np.sqrt(np.linspace(0.05, 1.0, 250)) * 2.6 * np.pi
    r = t / (2.6 * np.pi) * 3.2
    arm = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    draw, logd = _curve_mix(np.concatenate([arm, -arm]), 0.2)
    return Problem("spirals", 2, _box(-4.5, 4.5, 2), draw, logd, network=(2, 32, 32, 4),
                   description="two interleaved spiral arms, noise 0.2")


def _pinwheel():
    arms, pts, sc = 5, [], []
    s = np.linspace(0.0, 1.0, 60)
    for k in range(arms):
        r = 0.6 + 2.4 * s
        ang = 2 * np.pi * k / arms + 1.2 * s ** 1.5
        pts.append(np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1))
        sc.append(0.1 + 0.15 * s)
    pts, sc = np.concatenate(pts), np.concatenate(sc)
    draw, logd = _gauss_mix(pts, sc, np.ones(len(pts)))
    return Problem("pinwheel", 2, _box(-4.0, 4.0, 2), draw, logd, network=(2, 32, 32, 4),
                   description="five curved arms widening outward")


def _checkerboard():
    n_cells, lo, hi = 4, -2.0, 2.0
    width = (hi - lo) / n_cells
    cells = np.array([(i, j) for i in range(n_cells) for j in range(n_cells) if (i + j) % 2 == 0])

    def draw(n, rng):
        c = cells[rng.integers(len(cells), size=n)]
        return lo + width * (c + rng.random((n, 2)))

    def log_density(x):
        ij = np.floor((x - lo) / width).astype(np.int64)
        inside = np.all((ij >= 0) & (ij < n_cells), axis=1)
        black = inside & ((ij.sum(axis=1) % 2) == 0)
        return np.where(black, 0.0, -np.inf)

    return Problem("checkerboard", 2, _box(lo, hi, 2), draw, log_density, network=(2, 32, 32, 4),
                   description="uniform on alternate cells of a 4×4 board filling the box")


# ---------------------------------------------------------------- PCA
def _pca(d, seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    variances = np.geomspace(4.0, 0.25, d)
    cov = (q * variances) @ q.T
    chol = np.linalg.cholesky(cov)

    def draw(n, rng):
        return rng.standard_normal((n, d)) @ chol.T

    def log_density(x):
        z = np.linalg.solve(chol, x.T)
        return -0.5 * np.sum(z * z, axis=0) - np.sum(np.log(np.diag(chol))) - 0.5 * d * _LOG_2PI

    return Problem(f"pca{d}", d, _box(-10.0, 10.0, d), draw, log_density, kind="pca",
                   covariance=cov, description=f"{d}-d Gaussian, variances 4 … 0.25 on random axes")


_BUILDERS = {
    "bimodal": lambda: _mixture_1d("bimodal", [-2.0, 2.0], [0.5, 0.5], [0.5, 0.5], (-6.0, 6.0),
                                   "the paper's ½N(−2, 0.5²) + ½N(2, 0.5²)"),
    "mix3": lambda: _mixture_1d("mix3", [-3.0, -0.5, 2.5], [0.3, 0.8, 0.5], [0.2, 0.5, 0.3],
                                (-6.0, 6.0), "three modes of unequal width and weight"),
    "mix4": lambda: _mixture_1d("mix4", [-4.0, -1.5, 1.0, 3.5], [0.4, 0.3, 0.6, 0.3],
                                [0.15, 0.35, 0.3, 0.2], (-6.0, 6.0),
                                "four modes of unequal width and weight"),
    "cauchy": _cauchy_1d,
    "edge": _edge_1d,
    "banana": _banana,
    "moons": _moons,
    "checkerboard": _checkerboard,
    "spirals": _spirals,
    "pinwheel": _pinwheel,
    "pca5": lambda: _pca(5, 5),
    "pca10": lambda: _pca(10, 10),
}

#: Names of every zoo problem, 1-d first, then 2-d, then PCA.
PROBLEMS = tuple(_BUILDERS)


def problem_names(kind=None, d=None):
    """Names of the zoo problems, optionally only those of one ``kind`` or dimension ``d``."""
    out = []
    for name in PROBLEMS:
        p = problem(name)
        if (kind is None or p.kind == kind) and (d is None or p.d == d):
            out.append(name)
    return out


def problem(name):
    """The zoo problem called ``name`` (one of :data:`PROBLEMS`)."""
    try:
        return _BUILDERS[name]()
    except KeyError:
        raise ValueError(f"unknown zoo problem {name!r}; expected one of {list(PROBLEMS)}") from None
