"""Bimodal Gaussian mixture: Min-MaxEnt with 2 MLP observables against MaxEnt(mean, variance).

Paper §I.2, Fig. 3: ``½N(−μ, σ²) + ½N(μ, σ²)`` (μ = 2, σ = 0.5) on the support ``[−6, 6]``,
observables ``mlp([1, 32, 32, 2], tanh)``; baseline: MaxEnt on ``polynomial(2)`` (it constrains
only the mean and variance, so its solution is a single Gaussian).  Run with 1000 training
points (Fig. 3a) and with 10 (Fig. 3e).  All quantities are exact up to quadrature
(:mod:`mme_numba.quadrature`, Simpson, 4001 nodes): KL(true ‖ model) with the truth
renormalised on the box, the model entropy ``S = ln Z + <H>_p``, training and held-out
cross-entropies ``<−ln p>``.

Writes ``<out>/bimodal_n{N}.png`` and ``.svg`` (default ``runs/examples/bimodal/``) and prints
the numbers. ``python examples/build_docs_figures.py`` copies the figures into ``docs/figures/``.

    python examples/bimodal.py [--n 1000] [--epochs 1000] [--seed 0] [--lr-theta 1e-2]
                               [--lambda-solver newton|adam] [--out runs/examples/bimodal]
"""

import argparse
import functools
import time
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from scipy.special import logsumexp

import mme_numba as mme
from mme_numba import quadrature
from mme_numba.datasets import mixtures
from mme_numba.figstyle import legend_outside, save_figure, styled

OUT = Path("runs/examples/bimodal")
SUPPORT = (-6.0, 6.0)


class Tracker:
    """Epoch callback measuring a 1-d model against a known truth by quadrature.

    Every ``every`` epochs (and at epoch 1) it evaluates ``H`` once on the Simpson grid and
    records ``epoch``, ``wall`` and ``cpu`` (training seconds so far, measurements excluded;
    ``cpu`` is process time summed over threads, robust to other jobs on the machine),
    ``entropy``, ``kl``, ``ce_train``, ``ce_test`` and keeps the normalised density for plots.
    """

    def __init__(self, X_train, X_test, true_logpdf, lo, hi, every=10, n_grid=4001,
                 keep_density_at=()):
        self.points, self.log_w, _ = quadrature.grid(lo, hi, n_grid)
        log_t = true_logpdf(self.points)
        self.log_true = log_t - logsumexp(log_t + self.log_w)
        self.true_entropy = -float(np.sum(np.exp(self.log_true + self.log_w) * self.log_true))
        # the finite-sample reference for ce_train: the truth's own cross-entropy on X_train
        inside = np.all((X_train >= lo) & (X_train <= hi), axis=1)
        self.true_ce_train = float(np.mean(-(true_logpdf(X_train[inside]) - logsumexp(log_t + self.log_w))))
        self.X_train, self.X_test = X_train, X_test
        self.every = every
        self.keep = set(keep_density_at)
        self.records, self.densities = [], {}
        self._train_time, self._t = 0.0, None
        self._train_cpu, self._c = 0.0, None

    def start(self):
        """Start (or resume) the training clocks."""
        self._t, self._c = time.perf_counter(), time.process_time()

    def stop(self):
        """Stop the training clocks (before a measurement)."""
        self._train_time += time.perf_counter() - self._t
        self._train_cpu += time.process_time() - self._c

    def measure(self, energy, epoch):
        H = energy(self.points)
        log_z = float(logsumexp(-H + self.log_w))
        log_p = -H - log_z
        p_w = np.exp(log_p + self.log_w)
        rec = {
            "epoch": epoch, "wall": self._train_time, "cpu": self._train_cpu,
            "entropy": float(log_z + np.sum(p_w * H)),
            "kl": float(np.sum(np.exp(self.log_true + self.log_w) * (self.log_true - log_p))),
            "ce_train": float(np.mean(energy(self.X_train)) + log_z),
            "ce_test": float(np.mean(energy(self.X_test)) + log_z),
        }
        self.records.append(rec)
        if epoch in self.keep:
            self.densities[epoch] = np.exp(log_p)
        return rec

    def __call__(self, model, record):
        self.stop()
        epoch = record["epoch"]
        if epoch == 1 or epoch % self.every == 0 or epoch in self.keep:
            self.measure(model.energy, epoch)
        self.start()

    def column(self, key):
        return np.array([r[key] for r in self.records])

    def late(self, key, fraction=0.2):
        """Mean and std of ``key`` over the last ``fraction`` of the measurements."""
        v = self.column(key)
        tail = v[-max(1, int(round(fraction * len(v)))):]
        return float(tail.mean()), float(tail.std())


def truth(kind="gauss", loc=2.0, scale=0.5):
    """Target log density on R and its sampler, both for ``½ K(−loc) + ½ K(+loc)``."""
    if kind == "gauss":
        return (functools.partial(mixtures.gaussian_mixture_logpdf, means=(-loc, loc),
                                  scales=(scale, scale)),
                functools.partial(mixtures.gaussian_mixture, means=(-loc, loc), scales=(scale, scale)))
    return (functools.partial(mixtures.cauchy_mixture_logpdf, medians=(-loc, loc),
                              scales=(scale, scale)),
            functools.partial(mixtures.cauchy_mixture, medians=(-loc, loc), scales=(scale, scale)))


def draw_in_box(sampler, n, lo, hi, seed):
    """``n`` draws restricted to ``[lo, hi]`` (rejection), i.e. from the truncated target."""
    rng = np.random.default_rng(seed)
    out = np.empty((0, 1))
    while len(out) < n:
        x = sampler(2 * n, seed=rng)
        out = np.concatenate([out, x[(x[:, 0] >= lo) & (x[:, 0] <= hi)]])
    return out[:n]


def run(n=1000, epochs=1000, seed=0, lr_theta=1e-2, every=10, lambda_solver="newton"):
    lo, hi = SUPPORT
    logpdf, sampler = truth("gauss")
    X = draw_in_box(sampler, n, lo, hi, seed)
    X_test = draw_in_box(sampler, 20000, lo, hi, seed + 1000)
    snapshots = (1, 10, 30, 100, 300, epochs)
    tracker = Tracker(X, X_test, logpdf, lo, hi, every=every, keep_density_at=snapshots)
    obs = mme.nn.mlp([1, 32, 32, 2], activation="tanh", random_state=seed)
    model = mme.MinMaxEnt(obs, support=SUPPORT, n_chains=1024, sweeps=10, lr_theta=lr_theta,
                          lambda_solver=lambda_solver, random_state=seed)
    tracker.start()
    model.fit(X, epochs=epochs, callback=tracker)

    base = mme.MaxEnt(mme.observables.polynomial(2), support=SUPPORT, n_chains=1024,
                      random_state=seed).fit(X, epochs=200)
    base_tr = Tracker(X, X_test, logpdf, lo, hi)
    base_rec = base_tr.measure(base.energy, 200)
    # the same baseline in closed form: the Gaussian with the data mean and variance
    mu, sd = X.mean(), X.std()
    gauss_rec = base_tr.measure(lambda x: 0.5 * ((x[:, 0] - mu) / sd) ** 2, 0)
    return X, tracker, base_tr, base_rec, gauss_rec, model


def report(n, epochs, seed, tracker, base_rec, gauss_rec, model):
    kl, kl_sd = tracker.late("kl")
    s, s_sd = tracker.late("entropy")
    print(f"n={n} seed={seed} epochs={epochs} wall={tracker.records[-1]['wall']:.1f}s "
          f"cpu={tracker.records[-1]['cpu']:.1f}s (training only); true entropy (box) = {tracker.true_entropy:.4f}, "
          f"true <-ln p> on the training set = {tracker.true_ce_train:.4f}")
    print(f"  Min-MaxEnt late-20%: KL = {kl:.4f} ± {kl_sd:.4f}, S = {s:.4f} ± {s_sd:.4f}, "
          f"CE_train = {tracker.late('ce_train')[0]:.4f}, CE_test = {tracker.late('ce_test')[0]:.4f}")
    last = tracker.records[-1]
    print(f"  Min-MaxEnt last epoch: KL = {last['kl']:.4f}, S = {last['entropy']:.4f}, "
          f"CE_test = {last['ce_test']:.4f}; mass on x>0 = "
          f"{np.mean(model.sample(4096) > 0):.3f}")
    print(f"  MaxEnt(x, x²) sampled: KL = {base_rec['kl']:.4f}, S = {base_rec['entropy']:.4f}, "
          f"CE_test = {base_rec['ce_test']:.4f}; closed-form Gaussian: KL = {gauss_rec['kl']:.4f}, "
          f"S = {gauss_rec['entropy']:.4f}")


@styled
def figure(X, tracker, base_tr, n, path):
    xs = tracker.points[:, 0]
    fig = Figure(figsize=(7.0, 5.0), layout="constrained")
    ax_top, ax_ep = fig.subplots(2, 1, sharex=True)
    if len(X) >= 100:
        ax_top.hist(X[:, 0], bins=60, range=SUPPORT, density=True, color="0.8",
                    label=f"data ({len(X)} points)")
    else:                                   # a histogram of a handful of points misleads
        ax_top.plot(X[:, 0], np.zeros(len(X)), "|", color="0.3", ms=25, mew=2,
                    label=f"data ({len(X)} points)")
    ax_top.plot(xs, np.exp(tracker.log_true), "k--", lw=1, label="true density")
    final = max(tracker.densities)
    ax_top.plot(xs, tracker.densities[final], color="C0", label=f"Min-MaxEnt, epoch {final}")
    ax_top.plot(xs, np.exp(-0.5 * ((xs - X.mean()) / X.std()) ** 2) / (np.sqrt(2 * np.pi) * X.std()),
                color="C3", label="MaxEnt(mean, variance)")
    legend_outside(ax_top)
    ax_top.set_ylabel("density (1 / data unit)")
    cmap = matplotlib.colormaps["viridis"]
    epochs = sorted(tracker.densities)
    for i, e in enumerate(epochs):
        color = cmap(0.9 * i / max(1, len(epochs) - 1))
        ax_ep.plot(xs, tracker.densities[e], color=color, label=f"epoch {e}")
    ax_ep.plot(xs, np.exp(tracker.log_true), "k--", lw=1)
    legend_outside(ax_ep, ncol=1 + len(epochs) // 8)
    ax_ep.set_xlabel("x (data units)")
    ax_ep.set_ylabel("Min-MaxEnt density (1 / data unit)")
    save_figure(fig, path, svg=True)
    print(f"wrote {path} and {Path(path).with_suffix('.svg').name}")


def main(n=1000, epochs=1000, seed=0, lr_theta=1e-2, lambda_solver="newton", out=OUT):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    X, tracker, base_tr, base_rec, gauss_rec, model = run(n, epochs, seed, lr_theta,
                                                          lambda_solver=lambda_solver)
    report(n, epochs, seed, tracker, base_rec, gauss_rec, model)
    suffix = "" if lambda_solver == "newton" else f"_{lambda_solver}"
    figure(X, tracker, base_tr, n, out / f"bimodal_n{n}{suffix}.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr-theta", type=float, default=1e-2)
    parser.add_argument("--lambda-solver", choices=["newton", "adam"], default="newton")
    parser.add_argument("--out", default=str(OUT), help=f"output folder (default {OUT})")
    args = parser.parse_args()
    main(args.n, args.epochs, args.seed, args.lr_theta, args.lambda_solver, args.out)
