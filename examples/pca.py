"""PCA as a Min-MaxEnt solution (paper §I.1, Fig. 2; docs/method.md §6).

Observables ``O_k = (u_k·x)²`` on a rotating basis.  Minimising the MaxEnt entropy over the
rotation recovers the principal axes, shown two ways:

1. closed form: ``S(θ) = ½ Σ ln(2πe s_k)`` minimised with its analytic gradient (no sampling);
2. the full sampler-based trainer, ``mme.MinMaxEnt(squared_projections(d), support=...)``.

Writes ``<out>/pca_entropy_angle.png`` and ``.svg`` (entropy against angle in 2-d with the PCA
angle marked, and the trainer's angle per epoch; default ``runs/examples/pca/``) and prints the
measured numbers. ``python examples/build_docs_figures.py`` copies the figure into
``docs/figures/``.

    python examples/pca.py [--epochs 300] [--d 5] [--seed 0] [--out runs/examples/pca]
"""

import argparse
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import mme_numba as mme
from mme_numba.observables.projections import (gaussian_maxent_entropy, pca_by_entropy,
                                               squared_projections)
from mme_numba.figstyle import legend_outside, save_figure, style

OUT = Path("runs/examples/pca")


def correlated_gaussian(d, n, seed):
    """Centred Gaussian data with covariance eigenvalues from 3 down to 0.3, random axes."""
    rng = np.random.default_rng(seed)
    if d == 2:
        cov = np.array([[3.0, 1.2], [1.2, 1.0]])
    else:
        Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        cov = Q @ np.diag(np.linspace(3.0, 0.3, d)) @ Q.T
    X = rng.multivariate_normal(np.zeros(d), cov, size=n)
    return X - X.mean(axis=0)


def axis_alignment(U, X):
    """Smallest over rows of ``max_j |u_k·e_j|`` (1 when every u_k is an eigenvector)."""
    _, evecs = np.linalg.eigh(X.T @ X / len(X))
    return float(np.min(np.max(np.abs(U @ evecs), axis=1)))


def wrapped(delta):
    """An angle difference modulo π/2 (the axes of a 2-d basis), in (−π/4, π/4]."""
    return float(np.angle(np.exp(4j * delta)) / 4)


def train(X, epochs, seed, lr_theta=2e-2):
    """Sampler-based Min-MaxEnt fit; returns the model and the θ trajectory."""
    obs = squared_projections(X.shape[1], random_state=seed)
    model = mme.MinMaxEnt(obs, support=(-10.0, 10.0), n_chains=1024, sweeps=5,
                          lr_theta=lr_theta, random_state=seed)
    thetas = []
    model.fit(X, epochs=epochs, callback=lambda m, r: thetas.append(m.observables_.theta.copy()))
    return model, np.array(thetas)


def main(epochs=300, d=5, seed=0, n=2000, out=OUT):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # ---- 2-d: entropy against angle, optimum vs tan 2φ = 2c/(a−b)
    X = correlated_gaussian(2, n, seed)
    (a, c), (_, b) = X.T @ X / len(X)
    phi_pca = 0.5 * np.arctan2(2 * c, a - b)
    phis = np.linspace(-np.pi / 2, np.pi / 2, 721)
    obs = squared_projections(2)
    curve = []
    for p in phis:
        obs.set_theta([p])
        curve.append(gaussian_maxent_entropy(obs.basis(), X))
    phi_closed = pca_by_entropy(X, random_state=seed).theta[0]
    t0 = time.perf_counter()
    model, thetas = train(X, epochs, seed)
    wall2 = time.perf_counter() - t0
    phi_last = thetas[-1, 0]
    phi_avg = thetas[-epochs // 5:, 0].mean()     # late-epoch average (docs/method.md §11)
    S_min = 0.5 * np.log((2 * np.pi * np.e) ** 2 * (a * b - c * c))
    S_model = model.entropy(n_grid=401)[0]
    print(f"2-d: a={a:.4f} b={b:.4f} c={c:.4f}; PCA angle φ* = {phi_pca:.6f} rad")
    print(f"  closed-form minimiser: φ = {phi_closed:.6f}, |Δ| mod π/2 = {abs(wrapped(phi_closed - phi_pca)):.2e}")
    print(f"  sampler trainer ({epochs} epochs, {wall2:.1f} s): last φ = {phi_last:.4f} "
          f"(|Δ| = {abs(wrapped(phi_last - phi_pca)):.4f}), mean of last {epochs // 5} epochs "
          f"{phi_avg:.4f} (|Δ| = {abs(wrapped(phi_avg - phi_pca)):.4f})")
    print(f"  entropy: Gaussian bound ½ln((2πe)² det Σ) = {S_min:.4f}; trained model by "
          f"quadrature = {S_model:.4f}")

    with style():
        fig = _figure(phis, curve, phi_pca, S_min, thetas, epochs)
    path = out / "pca_entropy_angle.png"
    save_figure(fig, path, svg=True)
    print(f"wrote {path} and {path.with_suffix('.svg').name}")

    # ---- d-d: axes against covariance eigenvectors
    Xd = correlated_gaussian(d, n, seed)
    U_closed = pca_by_entropy(Xd, random_state=seed).basis()
    t0 = time.perf_counter()
    model_d, thetas_d = train(Xd, epochs, seed)
    walld = time.perf_counter() - t0
    obs_avg = squared_projections(d)
    obs_avg.set_theta(thetas_d[-epochs // 5:].mean(axis=0))
    evals = np.linalg.eigvalsh(Xd.T @ Xd / len(Xd))
    S_min_d = 0.5 * np.sum(np.log(2 * np.pi * np.e * evals))
    print(f"{d}-d: min_k max_j |u_k·e_j| closed form = {axis_alignment(U_closed, Xd):.10f}; "
          f"trainer last = {axis_alignment(model_d.observables_.basis(), Xd):.4f}, "
          f"late average = {axis_alignment(obs_avg.basis(), Xd):.4f} ({walld:.1f} s)")
    print(f"  S: minimum {S_min_d:.5f}, closed form {gaussian_maxent_entropy(U_closed, Xd):.5f}, "
          f"trainer basis {gaussian_maxent_entropy(model_d.observables_.basis(), Xd):.5f}, "
          f"initial basis {gaussian_maxent_entropy(squared_projections(d, seed).basis(), Xd):.5f}")


def _figure(phis, curve, phi_pca, S_min, thetas, epochs):
    fig = Figure(figsize=(8.0, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(np.degrees(phis), curve, color="C0")
    for k in (-1, 0, 1):
        ax1.axvline(np.degrees(phi_pca + k * np.pi / 2), color="C3", ls="--", lw=1,
                    label="PCA angle (tan 2φ = 2c/(a−b))" if k == 0 else None)
    ax1.axhline(S_min, color="gray", lw=0.8, ls=":", label="½ ln((2πe)² det Σ)")
    ax1.set_xlim(-90, 90)
    ax1.set_xlabel("rotation angle φ (degrees)")
    ax1.set_ylabel("MaxEnt entropy S(φ) (nats)")
    legend_outside(ax1, loc="top", ncol=1)
    ax1.set_title("closed form", loc="right")
    ax2.plot(np.arange(1, epochs + 1), np.degrees(np.unwrap(thetas[:, 0] * 4) / 4), color="C0",
             label="trainer θ")
    target = phi_pca + np.pi / 2 * np.round((thetas[-1, 0] - phi_pca) / (np.pi / 2))
    ax2.axhline(np.degrees(target), color="C3", ls="--", lw=1, label="PCA angle")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("φ (degrees)")
    legend_outside(ax2, loc="top", ncol=1)
    ax2.set_title("sampler-based Min-MaxEnt", loc="right")
    return fig


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--d", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(OUT), help=f"output folder (default {OUT})")
    args = parser.parse_args()
    main(args.epochs, args.d, args.seed, out=args.out)
