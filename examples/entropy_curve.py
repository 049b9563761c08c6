"""The MaxEnt entropy per epoch, by quadrature, in 1-d and 2-d (docs/method.md §9, §12).

Two curves per run, both exact up to Simpson quadrature:

- ``S_model``: the entropy ``ln Z + <H>_p`` of the current model ``(λ_t, θ_t)``
  (``model.entropy()``), which carries the noise of the sampled λ fit;
- ``S_max(θ_t)``: the maximum entropy for the current observables, with λ solved exactly on the
  quadrature grid (:func:`mme_numba.quadrature.maxent_entropy`).  This is the quantity the θ
  steps minimise; it must decrease and stay above the true entropy (up to the finite-sample
  noise of the constraints ``ō``).

Beside them: the held-out cross-entropy ``<−ln p>`` on 20000 fresh points (``S_true + KL``) and
the training cross-entropy, which equals ``S_max`` when λ has converged.

1-d: ``½N(−2, 0.5²) + ½N(2, 0.5²)`` on ``[−6, 6]``, ``mlp([1, 32, 32, 2])``.
2-d: ``½N((−1.5, −1.5), 0.6²I) + ½N((1.5, 1.5), 0.6²I)`` on ``[−5, 5]²``, ``mlp([2, 32, 32, 3])``.
Both with ``lr_theta = 3e-3`` (slow enough for λ to follow θ), 1024 chains, 10 sweeps per epoch.

    python examples/entropy_curve.py [--epochs 400] [--seed 0] [--out runs/examples/entropy_curve]

Writes ``<out>/entropy_curve.png`` and ``.svg`` and prints the numbers;
``python examples/build_docs_figures.py`` copies the figure into ``docs/figures/``.
"""

import argparse
import functools
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import mme_numba as mme
from mme_numba import quadrature
from mme_numba.datasets import mixtures
from mme_numba.figstyle import legend_outside, save_figure, style

OUT = Path("runs/examples/entropy_curve")

CASES = {
    1: {"means": (-2.0, 2.0), "scales": (0.5, 0.5), "support": (-6.0, 6.0), "m": 2, "n_grid": 2001},
    2: {"means": [[-1.5, -1.5], [1.5, 1.5]], "scales": (0.6, 0.6), "support": (-5.0, 5.0), "m": 3,
        "n_grid": 151},
}


def entropy_run(d=1, epochs=300, seed=0, every=10, lr_theta=3e-3, n=1000):
    """Train a Min-MaxEnt model and measure its entropies every ``every`` epochs.

    Returns
    -------
    records : list of dict
        ``epoch, wall, s_model, s_max, ce_train, ce_test`` (epoch 0: the initial θ, with
        ``s_model`` undefined).
    s_true : float
        Entropy of the target restricted to the box.
    """
    case = CASES[d]
    lo, hi = (np.full(d, case["support"][0]), np.full(d, case["support"][1]))
    logpdf = functools.partial(mixtures.gaussian_mixture_logpdf, means=case["means"],
                               scales=case["scales"])
    sample = functools.partial(mixtures.gaussian_mixture, means=case["means"], scales=case["scales"])
    rng = np.random.default_rng(seed)

    def in_box(k):
        out = np.empty((0, d))
        while len(out) < k:
            x = sample(2 * k, seed=rng)
            out = np.concatenate([out, x[np.all((x >= lo) & (x <= hi), axis=1)]])
        return out[:k]

    X, X_test = in_box(n), in_box(20000)
    n_grid = case["n_grid"]
    s_true = quadrature.entropy(lambda x: -logpdf(x), lo, hi, n_grid)
    obs = mme.nn.mlp([d, 32, 32, case["m"]], activation="tanh", random_state=seed)
    model = mme.MinMaxEnt(obs, support=(lo, hi), n_chains=1024, sweeps=10, lr_theta=lr_theta,
                          random_state=seed)
    records = []
    state = {"lam": None, "wall": 0.0, "t": None}

    def measure(m, epoch):
        net = obs if m is None else m.observables_    # the model trains its own copy
        s_max, state["lam"] = quadrature.maxent_entropy(net.forward, net.forward(X).mean(0), lo, hi,
                                                        n_grid, lam0=state["lam"])
        rec = {"epoch": epoch, "wall": state["wall"], "s_max": s_max}
        if m is not None:
            log_z = quadrature.log_partition(m.energy, lo, hi, n_grid)
            rec.update(s_model=m.entropy(n_grid=n_grid)[0],
                       ce_train=float(np.mean(m.energy(X)) + log_z),
                       ce_test=float(np.mean(m.energy(X_test)) + log_z))
        records.append(rec)

    def callback(m, record):
        state["wall"] += time.perf_counter() - state["t"]
        if record["epoch"] % every == 0:
            measure(m, record["epoch"])
        state["t"] = time.perf_counter()

    measure(None, 0)
    state["t"] = time.perf_counter()
    model.fit(X, epochs=epochs, callback=callback)
    return records, s_true


def main(epochs=400, seed=0, out=OUT):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with style():
        fig = Figure(figsize=(8.5, 3.2), layout="constrained")
        axes = fig.subplots(1, 2)
        _panels(axes, epochs, seed)
        legend_outside(axes[-1])
    path = out / "entropy_curve.png"
    save_figure(fig, path, svg=True)
    print(f"wrote {path} and {path.with_suffix('.svg').name}")


def _panels(axes, epochs, seed):
    for ax, d in zip(axes, (1, 2)):
        t0 = time.perf_counter()
        records, s_true = entropy_run(d, epochs, seed)
        elapsed = time.perf_counter() - t0
        ep = np.array([r["epoch"] for r in records])
        s_max = np.array([r["s_max"] for r in records])
        rest = records[1:]
        e1 = ep[1:]
        ax.plot(ep, s_max, "C0-", label="S_max(θ_t), λ exact")
        ax.plot(e1, [r["s_model"] for r in rest], "C0:", label="S of the model (λ_t)")
        ax.plot(e1, [r["ce_test"] for r in rest], "C2-", lw=0.8, label="held-out <−ln p>")
        ax.plot(e1, [r["ce_train"] for r in rest], "C1-", lw=0.8, label="training <−ln p>")
        ax.axhline(s_true, color="k", ls="--", lw=1, label="true entropy")
        ax.set_xlabel("epoch")
        ax.set_ylabel("entropy, cross-entropy (nats)")
        ax.set_title(f"{d}-d")
        ax.set_ylim(s_true - 0.2, s_max[min(2, len(s_max) - 1)] + 0.2)
        increases = np.diff(s_max)
        tail = rest[-max(1, len(rest) // 5):]
        print(f"{d}-d seed={seed} epochs={epochs} ({elapsed:.0f} s incl. measurements, "
              f"{records[-1]['wall']:.0f} s training): true S = {s_true:.4f}")
        print(f"  S_max: initial {s_max[0]:.4f} -> final {s_max[-1]:.4f}; min {s_max.min():.4f}; "
              f"largest increase between measurements {increases.max():+.4f}; "
              f"{np.sum(increases > 0)} of {len(increases)} intervals increased")
        print("  late-20% means: S_max {:.4f}, S_model {:.4f}, CE_train {:.4f}, CE_test {:.4f}".format(
            np.mean(s_max[-len(tail):]), *(np.mean([r[k] for r in tail]) for k in
                                           ("s_model", "ce_train", "ce_test"))))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(OUT), help=f"output folder (default {OUT})")
    args = parser.parse_args()
    main(args.epochs, args.seed, args.out)
