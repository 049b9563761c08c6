"""Held-out NLL of Min-MaxEnt against a VAE's importance-weighted bound (docs/results.md).

Min-MaxEnt: ``-mean ln p(x_test)`` with ``ln Z`` by quadrature (1-d) or annealed importance
sampling (digits, ``model.score``), and the entropy ``model.entropy()`` against the true
entropy where it is known. VAE (``mme_numba.baselines.vae.VAE``, Gaussian decoder): the
importance-weighted bound ``ln (1/k) Σ p(x, z_i)/q(z_i|x)`` with ``k = 1000`` and, in 1-d, its
exact ``ln p(x)`` by quadrature over the latent. Both densities are continuous; the VAE's
lives on ``R^d`` and loses whatever mass it puts outside the support box.

    python examples/likelihood_vs_vae.py mixtures
    python examples/likelihood_vs_vae.py digits [--model saved.npz]
"""

import argparse
import json
import time

import numpy as np

import mme_numba as mme
from mme_numba import quadrature
from mme_numba.baselines.vae import VAE
from mme_numba.datasets import gaussian_mixture, gaussian_mixture_logpdf

MIXTURES = {
    "bimodal": dict(means=(-2.0, 2.0), scales=(0.5, 0.5)),
    "three_modes": dict(means=(-3.0, 0.0, 2.5), scales=(0.4, 0.8, 0.3), weights=(0.3, 0.5, 0.2)),
}
SUPPORT = (-6.0, 6.0)


def mixtures(seed=0, vae_epochs=2000):
    out = {}
    for name, spec in MIXTURES.items():
        X = gaussian_mixture(1000, seed=seed, **spec)
        X_test = gaussian_mixture(20000, seed=seed + 100, **spec)
        X, X_test = (np.clip(a, SUPPORT[0], SUPPORT[1]) for a in (X, X_test))
        t0 = time.perf_counter()
        model = mme.MinMaxEnt(mme.nn.mlp([1, 16, 16, 4], random_state=seed), support=SUPPORT,
                              validation_fraction=0.1, random_state=seed).fit(X)
        t_fit = time.perf_counter() - t0
        true = lambda x: gaussian_mixture_logpdf(x, **spec)          # noqa: E731
        lo, hi = np.array([SUPPORT[0]]), np.array([SUPPORT[1]])
        log_mass = quadrature.log_partition(lambda x: -true(x), lo, hi, 4001)
        s_true = quadrature.entropy(lambda x: -true(x), lo, hi, 4001)
        t0 = time.perf_counter()
        log_z_ais, err_ais = model.log_partition(method="ais")
        t_ais = time.perf_counter() - t0
        log_z_quad, _ = model.log_partition(method="quadrature")
        s_model, s_err = model.entropy()
        vae = VAE(hidden=(32, 32), latent_dim=1, random_state=seed).fit(X, epochs=vae_epochs)
        out[name] = {
            "epochs": model.epoch_,
            "stopped_early": any(e["event"] == "restored_best"
                                 for e in model.history_[-1].get("events", [])),
            "fit_s": t_fit,
            "nll_true": float(-np.mean(true(X_test) - log_mass)),
            "nll_minmaxent": -model.score(X_test),
            "nll_minmaxent_ais": float(np.mean(model.energy(X_test))) + log_z_ais,
            "log_z_ais": log_z_ais, "log_z_ais_err": err_ais, "log_z_quadrature": log_z_quad,
            "ais_s": t_ais,
            "entropy_true": s_true, "entropy_minmaxent": s_model, "entropy_err": s_err,
            "nll_vae_exact": float(-np.mean(vae.log_density(X_test, method="quadrature"))),
            "nll_vae_iw1000": float(-np.mean(vae.log_density(X_test, method="importance",
                                                             n_latent=1000))),
        }
        print(name, json.dumps(out[name]), flush=True)
    return out


def digits(model_path=None, seed=0, vae_epochs=500):
    X_all, _ = mme.datasets.digits()
    perm = np.random.default_rng(seed).permutation(len(X_all))
    X, X_test = X_all[np.sort(perm[:200])], X_all[np.sort(perm[200:500])]
    if model_path is None:
        model = mme.MinMaxEnt(mme.nn.paper_cnn(16), support=(0, 1),
                              random_state=seed).fit(X, epochs=100)
    else:
        model = mme.load(model_path)
    out = {"epochs": model.epoch_}
    for run in (1, 2):
        t0 = time.perf_counter()
        log_z, err = model.log_partition(random_state=run)
        out[f"ais_run{run}"] = {"log_z": log_z, "err": err, "s": time.perf_counter() - t0}
    ll = model.score_samples(X_test, random_state=2)
    out["nll_minmaxent_test"] = float(-np.mean(ll))
    out["nll_minmaxent_train"] = float(-model.score(X, random_state=2))
    out["entropy_minmaxent"] = model.entropy(random_state=2)
    t0 = time.perf_counter()
    vae = VAE(hidden=(128,), latent_dim=8, standardize=False, batch_size=50,
              random_state=seed).fit(X, epochs=vae_epochs)
    out["vae_fit_s"] = time.perf_counter() - t0
    out["nll_vae_iw1000_test"] = float(-np.mean(vae.log_density(X_test, method="importance",
                                                                n_latent=1000)))
    out["nll_vae_iw1000_train"] = float(-np.mean(vae.log_density(X, method="importance",
                                                                 n_latent=1000)))
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("mixtures", "digits"))
    p.add_argument("--model", help="a saved digits model (default: train 100 epochs)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.what == "mixtures":
        mixtures(args.seed)
    else:
        digits(args.model, args.seed)
