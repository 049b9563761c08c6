"""Measure the core engine's accuracy figures reported in docs/validation.md.

Run: python benchmarks/validate_core.py  (about a minute on 2 cores; prints JSON)
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import mme_numba as mme  # noqa: E402
from mme_numba import quadrature  # noqa: E402
from test_model import _exact_maxent  # noqa: E402


def closed_form_lambda():
    X = np.random.default_rng(1).normal(1.0, 0.8, size=(2000, 1))
    target = np.array([-X.mean() / X.var(), 0.5 / X.var()])
    out = {}
    for solver in ("newton", "adam"):
        m = mme.MaxEnt(mme.observables.polynomial(2), support=(-4.0, 6.0), n_chains=1024,
                       sweeps=5, step_size=1.0, lambda_solver=solver, random_state=0)
        if solver == "newton":
            m.fit(X, epochs=120)
        else:
            m.fit(X, epochs=300).set_params(lr_lambda=0.01).fit(X, epochs=150)
        lam = np.mean([h["lambda"] for h in m.history_[-40:]], axis=0)
        out[solver] = {"lambda": lam.tolist(), "target": target.tolist(),
                       "rel_error": (lam / target - 1).tolist()}
    return out


def eq8_vs_finite_difference():
    obs = mme.nn.mlp([1, 5, 2], activation="tanh", random_state=3)
    X = mme.datasets.gaussian_mixture(300, means=(-1.5, 1.5), scales=(0.5, 0.5), seed=0)
    model = mme.MinMaxEnt(obs, support=(-4.0, 4.0), n_chains=2, random_state=0)
    lam, S, p = _exact_maxent(obs, X, -4.0, 4.0)
    grid = quadrature.grid(-4.0, 4.0, 4001)[0]
    g = model.entropy_gradient(X, grid, lam, sample_logw=np.log(np.maximum(p, 1e-300)))
    theta0, h, fd = obs.theta.copy(), 1e-5, np.zeros_like(obs.theta)
    for i in range(len(theta0)):
        for sign in (1, -1):
            t = theta0.copy()
            t[i] += sign * h
            obs.set_theta(t)
            fd[i] += sign * _exact_maxent(obs, X, -4.0, 4.0)[1] / (2 * h)
    obs.set_theta(theta0)
    return {"max_rel_error": float(np.max(np.abs(g - fd)) / np.max(np.abs(fd))),
            "entropy": float(S)}


def bimodal_kl():
    lo, hi = -6.0, 6.0
    X = mme.datasets.gaussian_mixture(1000, means=(-2, 2), scales=(0.5, 0.5), seed=0)
    true = mme.datasets.truncated_logpdf(
        lambda x: mme.datasets.gaussian_mixture_logpdf(x, means=(-2, 2), scales=(0.5, 0.5)),
        lo, hi)

    def kl(m):
        lnZ = quadrature.log_partition(m.energy, lo, hi)
        return quadrature.kl_divergence(true, lambda x: -m.energy(x) - lnZ, lo, hi)

    t0 = time.perf_counter()
    gauss = mme.MaxEnt(mme.observables.polynomial(2), support=(lo, hi), n_chains=1024,
                       step_size=3.0, random_state=0).fit(X, epochs=100)
    m = mme.MinMaxEnt(mme.nn.mlp([1, 32, 32, 2], random_state=0), support=(lo, hi),
                      n_chains=1024, sweeps=10, step_size=3.0, lr_theta=0.01,
                      random_state=0).fit(X, epochs=1000)
    return {"kl_gaussian_maxent": kl(gauss), "kl_minmaxent_1000_epochs": kl(m),
            "entropy_minmaxent": m.entropy()[0], "wall_s": time.perf_counter() - t0}


if __name__ == "__main__":
    res = {"closed_form_lambda": closed_form_lambda(),
           "eq8_vs_fd": eq8_vs_finite_difference(),
           "bimodal": bimodal_kl()}
    print(json.dumps(res, indent=2))
