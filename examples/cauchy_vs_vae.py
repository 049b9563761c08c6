"""Heavy tails: Min-MaxEnt against a VAE on a Cauchy mixture (paper §I.2, Fig. 4).

Target ``½Cauchy(−2, 0.5) + ½Cauchy(2, 0.5)`` truncated to the support ``[−10, 10]``; 1000
training points drawn from it.  Min-MaxEnt: observables ``mlp([1, 32, 32, 2], tanh)``.  VAE
(:class:`mme_numba.baselines.VAE`): encoder ``[1, 32, 32, 2]`` (the same architecture),
decoder mirrored ``[1, 32, 32, 2]`` (mean and log-variance), latent dimension 1, its density
by Simpson quadrature over the latent and then renormalised on the support box (which only
helps the VAE: the mass it leaks outside the box is discarded).

``KL(true ‖ model)`` by Simpson quadrature on 4001 nodes every ``every`` epochs; wall time
counts training only (measurements excluded).  Both methods are tuned on the same footing: a
small grid of learning rates and steps per epoch, each configuration scored by the held-out
cross-entropy ``<−ln p>`` on a separate validation sample (not by the true density); the
selected configurations are then rerun with several seeds.

    python examples/cauchy_vs_vae.py --tune --epochs 500          # the tuning grids, seed 0
    python examples/cauchy_vs_vae.py --epochs 1000 --vae-epochs 5000 --seeds 0 1 2  # comparison

Writes into ``--out`` (default ``runs/examples/cauchy_vs_vae/``): ``cauchy_vs_vae.png`` and
``.svg`` (KL against epochs and against wall time, final densities) and ``cauchy_vs_vae.json``
(all curves); prints a summary table. ``python examples/build_docs_figures.py`` copies the
figure into ``docs/figures/``.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import mme_numba as mme
from mme_numba import quadrature
from mme_numba.baselines import VAE
from mme_numba.figstyle import legend_outside, save_figure, styled

from bimodal import Tracker, draw_in_box, truth

OUT = Path("runs/examples/cauchy_vs_vae")
SUPPORT = (-10.0, 10.0)

# Tuning grids (--tune). The comparison runs Min-MaxEnt on the library's defaults (no setting
# touched) against the VAE's best grid point by validation cross-entropy (500 epochs, seed 0):
# lr 1e-2, batch 100, KL warm-up 300 epochs (see docs/results.md for the whole table).
MME_GRID = [{"lr_theta": lr, "theta_steps": k} for lr in (3e-3, 1e-2, 3e-2) for k in (1, 5)]
# Without KL warm-up every VAE setting collapsed (encoder ignored, KL ≈ 0.30, a single broad
# Gaussian), so warm-up is part of the grid; the no-warm-up control stays in it.
VAE_GRID = ([{"lr": 3e-3, "batch_size": 100, "kl_warmup": 0}]
            + [{"lr": lr, "batch_size": b, "kl_warmup": w}
               for lr in (3e-3, 1e-2) for b in (32, 100) for w in (100, 300)])


def data(seed, n=1000):
    logpdf, sampler = truth("cauchy")
    lo, hi = SUPPORT
    return (logpdf, draw_in_box(sampler, n, lo, hi, seed),
            draw_in_box(sampler, 1000, lo, hi, seed + 500),      # validation: model selection
            draw_in_box(sampler, 5000, lo, hi, seed + 1000))     # test: reported CE


def _val_ce(tracker, energy):
    """Held-out ``<−ln p>`` on the validation set, with ``ln Z`` from the tracker's grid."""
    from scipy.special import logsumexp

    log_z = logsumexp(-energy(tracker.points) + tracker.log_w)
    return float(np.mean(energy(tracker.X_val)) + log_z)


def run_mme(cfg, seed, epochs, every):
    logpdf, X, X_val, X_test = data(seed)
    tracker = Tracker(X, X_test, logpdf, *SUPPORT, every=every, keep_density_at=(epochs,))
    tracker.X_val = X_val
    obs = mme.nn.mlp([1, 32, 32, 2], activation="tanh", random_state=seed)
    model = mme.MinMaxEnt(obs, support=SUPPORT, random_state=seed, **cfg)
    val = []

    def callback(m, record):
        tracker(m, record)
        if record["epoch"] % every == 0:
            tracker.stop()
            val.append(_val_ce(tracker, m.energy))
            tracker.start()

    tracker.start()
    model.fit(X, epochs=epochs, callback=callback)
    return tracker, val


def run_vae(cfg, seed, epochs, every):
    logpdf, X, X_val, X_test = data(seed)
    tracker = Tracker(X, X_test, logpdf, *SUPPORT, every=every, keep_density_at=(epochs,))
    tracker.X_val = X_val
    vae = VAE(hidden=(32, 32), latent_dim=1, random_state=seed, **cfg)
    val = []

    def callback(v, record):
        tracker.stop()
        energy = lambda x: -v.log_density(x)
        if record["epoch"] == 1 or record["epoch"] % every == 0 or record["epoch"] == epochs:
            tracker.measure(energy, record["epoch"])
        if record["epoch"] % every == 0:
            val.append(_val_ce(tracker, energy))
        tracker.start()

    tracker.start()
    vae.fit(X, epochs=epochs, callback=callback)
    return tracker, val


def summary(tracker, val):
    kl, kl_sd = tracker.late("kl")
    tail = max(1, len(val) // 5)
    return {"kl_late": kl, "kl_late_sd": kl_sd, "kl_last": tracker.records[-1]["kl"],
            "kl_min": float(tracker.column("kl").min()),
            "val_ce_late": float(np.mean(val[-tail:])), "ce_test_late": tracker.late("ce_test")[0],
            "ce_train_late": tracker.late("ce_train")[0], "entropy_late": tracker.late("entropy")[0],
            "true_entropy": tracker.true_entropy, "wall": tracker.records[-1]["wall"],
            "cpu": tracker.records[-1]["cpu"]}


def bench(epochs=200, repeats=3, seed=0):
    """Seconds per training epoch of each method, best of ``repeats`` (no measurements).

    Wall and process clocks are both distorted by other jobs on a shared machine (numba's
    worker threads spin while they wait, inflating CPU time), so the equal-compute comparison
    uses these best-of-N costs measured on one core, times the epoch counts.  Both methods run
    with one BLAS thread (``MinMaxEnt.fit`` sets that itself; the VAE's small matrix products
    only lose from more).
    """
    import numba
    from threadpoolctl import threadpool_limits

    _, X, _, _ = data(seed)
    costs = {}
    obs = mme.nn.mlp([1, 32, 32, 2], activation="tanh", random_state=seed)
    model = mme.MinMaxEnt(obs, support=SUPPORT, random_state=seed).fit(X, epochs=20)  # compile
    vae = VAE(hidden=(32, 32), lr=1e-2, batch_size=100, random_state=seed).fit(X, epochs=20)
    threads = numba.get_num_threads()
    for name, nthreads, fit in (("mme_1thread", 1, model.fit), (f"mme_{threads}threads", threads, model.fit),
                                ("vae", threads, vae.fit)):
        numba.set_num_threads(nthreads)
        best = np.inf
        for _ in range(repeats):
            with threadpool_limits(limits=1, user_api="blas"):
                t0 = time.perf_counter()
                fit(X, epochs=epochs)
                best = min(best, time.perf_counter() - t0)
        costs[name] = best / epochs
        print(f"{name}: {1e3 * costs[name]:.2f} ms per epoch (best of {repeats} x {epochs})", flush=True)
    numba.set_num_threads(threads)
    return costs


def tune(epochs, every, seed=0, which=("mme", "vae")):
    results = {"mme": [], "vae": []}
    for cfg in MME_GRID if "mme" in which else []:
        tr, val = run_mme(cfg, seed, epochs, every)
        results["mme"].append({"cfg": cfg, **summary(tr, val)})
        print("MME", cfg, {k: round(v, 4) for k, v in results["mme"][-1].items() if k != "cfg"},
              flush=True)
    for cfg in VAE_GRID if "vae" in which else []:
        tr, val = run_vae(cfg, seed, epochs, every)
        results["vae"].append({"cfg": cfg, **summary(tr, val)})
        print("VAE", cfg, {k: round(v, 4) for k, v in results["vae"][-1].items() if k != "cfg"},
              flush=True)
    best = {k: min(v, key=lambda r: r["val_ce_late"])["cfg"] for k, v in results.items() if v}
    print("selected by validation cross-entropy:", best)
    return results, best


def kl_at(run, key, budget, window=0.2):
    """Mean KL over the measurements with ``key`` (epoch or cpu) in ``[(1−window)·budget, budget]``."""
    x, kl = np.array(run[key + "_curve"]), np.array(run["kl_curve"])
    sel = (x >= (1 - window) * budget) & (x <= budget)
    return float(kl[sel].mean()) if np.any(sel) and x.max() >= budget * (1 - window / 2) else None


def compare(mme_cfg, vae_cfg, seeds, epochs, every, vae_epochs=None):
    """Both models on the same data; the VAE may run more epochs to span the same CPU time."""
    vae_epochs = epochs if vae_epochs is None else vae_epochs
    out = {"mme": [], "vae": [], "mme_cfg": mme_cfg, "vae_cfg": vae_cfg, "epochs": epochs,
           "vae_epochs": vae_epochs}
    trackers = {}
    for seed in seeds:
        for name, fn, cfg, n_ep in (("mme", run_mme, mme_cfg, epochs),
                                    ("vae", run_vae, vae_cfg, vae_epochs)):
            # the same number of measurements per run: the VAE measures less often if longer
            tr, val = fn(cfg, seed, n_ep, every * max(1, n_ep // epochs))
            trackers.setdefault(name, []).append(tr)
            out[name].append({"seed": seed, **summary(tr, val),
                              "density": tr.densities[max(tr.densities)].tolist(),
                              "epoch_curve": tr.column("epoch").tolist(),
                              "cpu_curve": tr.column("cpu").tolist(),
                              "wall_curve": tr.column("wall").tolist(),
                              "kl_curve": tr.column("kl").tolist()})
            s = out[name][-1]
            print(f"{name} seed={seed} {n_ep} epochs: KL late {s['kl_late']:.4f}±{s['kl_late_sd']:.4f} "
                  f"last {s['kl_last']:.4f} min {s['kl_min']:.4f}; CE_test {s['ce_test_late']:.4f} "
                  f"(true S {s['true_entropy']:.4f}); wall {s['wall']:.1f}s cpu {s['cpu']:.1f}s",
                  flush=True)
    tr0 = trackers["mme"][0]
    out["grid"] = tr0.points[:, 0].tolist()
    out["true_density"] = np.exp(tr0.log_true).tolist()
    out["data_seed0"] = tr0.X_train[:, 0].tolist()
    return out, trackers


@styled
def figure(out, costs, path):
    """KL against epochs and against compute (epochs × best-of-N seconds per epoch), densities."""
    fig = Figure(figsize=(8.5, 6.0), layout="constrained")
    axes = fig.subplots(2, 2)
    colors = {"mme": "C0", "vae": "C1"}
    labels = {"mme": "Min-MaxEnt", "vae": "VAE"}
    for name in ("mme", "vae"):
        for i, run in enumerate(out[name]):
            lab = labels[name] if i == 0 else None
            ep = np.array(run["epoch_curve"])
            axes[0, 0].plot(ep, run["kl_curve"], color=colors[name], lw=0.8, label=lab)
            axes[0, 1].plot(ep * costs[name], run["kl_curve"], color=colors[name], lw=0.8, label=lab)
    axes[0, 0].set_xlim(0, out["epochs"])
    axes[0, 1].set_xscale("log")
    for ax, xl in ((axes[0, 0], "epoch"),
                   (axes[0, 1], "compute: epochs × s/epoch on one core (s)")):
        ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("KL(true ‖ model) (nats)")
    legend_outside(axes[0, 1])
    xs = np.array(out["grid"])
    for ax, scale in ((axes[1, 0], "linear"), (axes[1, 1], "log")):
        ax.hist(out["data_seed0"], bins=100, range=SUPPORT, density=True, color="0.85",
                label="data (seed 0)")
        ax.plot(xs, out["true_density"], "k--", lw=1, label="true")
        for name in ("mme", "vae"):
            run = out[name][0]
            ax.plot(xs, run["density"], color=colors[name], lw=1,
                    label=f"{labels[name]}, epoch {run['epoch_curve'][-1]}")
        ax.set_yscale(scale)
        ax.set_xlabel("x (data units)")
        ax.set_ylabel("density (1 / data unit)")
        if scale == "log":
            ax.set_ylim(1e-4, 2)
    legend_outside(axes[1, 1])
    save_figure(fig, path, svg=True)
    print(f"wrote {path} and {Path(path).with_suffix('.svg').name}")


def report(out, costs):
    """Equal-epoch and equal-compute KL (late-window means) per seed."""
    E = out["epochs"]
    ratio = costs["mme"] / costs["vae"]
    print(f"seconds per epoch (one core, best of 3): Min-MaxEnt {costs['mme']:.4f}, "
          f"VAE {costs['vae']:.4f}; one Min-MaxEnt epoch costs {ratio:.2f} VAE epochs")
    rows = []
    for budget in (E // 4, E // 2, E):
        vae_ep = max(1, int(round(budget * ratio)))
        m = [kl_at(r, "epoch", budget) for r in out["mme"]]
        v_ep = [kl_at(r, "epoch", budget) for r in out["vae"]]
        v_cp = [kl_at(r, "epoch", vae_ep) for r in out["vae"]]
        rows.append((budget, vae_ep, m, v_ep, v_cp))
        fmt = lambda v: "n/a" if any(x is None for x in v) else f"{np.mean(v):.4f} {np.round(v, 4).tolist()}"
        print(f"  {budget} MME epochs = {budget * costs['mme']:.1f} s: MME KL {fmt(m)} | VAE at "
              f"{budget} epochs {fmt(v_ep)} | VAE at equal compute ({vae_ep} epochs) {fmt(v_cp)}")
    v_end = out["vae"][0]["epoch_curve"][-1]
    print(f"  VAE late KL after {v_end} epochs ({v_end * costs['vae']:.1f} s) "
          f"{np.mean([r['kl_late'] for r in out['vae']]):.4f}; Min-MaxEnt after {E} epochs "
          f"({E * costs['mme']:.1f} s) {np.mean([r['kl_late'] for r in out['mme']]):.4f}")
    # where the final KL comes from: the peaks (|x| <= 4) or the tails (|x| > 4)
    xs = np.array(out["grid"])
    _, log_w, _ = quadrature.grid(*SUPPORT, len(xs))
    p = np.array(out["true_density"])
    tails = np.abs(xs) > 4
    for name in ("mme", "vae"):
        parts = []
        for r in out[name]:
            q_ = np.maximum(np.array(r["density"]), 1e-300)
            integrand = np.exp(log_w) * p * (np.log(p) - np.log(q_))
            parts.append((integrand[~tails].sum(), integrand[tails].sum(),
                          float(np.exp(log_w)[tails] @ q_[tails])))
        parts = np.array(parts)
        print(f"  {name}: final-epoch KL split, peaks |x|<=4 {np.round(parts[:, 0], 4).tolist()}, "
              f"tails |x|>4 {np.round(parts[:, 1], 4).tolist()}; model mass in tails "
              f"{np.round(parts[:, 2], 4).tolist()} (true {float(np.exp(log_w)[tails] @ p[tails]):.4f})")
    for name in ("mme", "vae"):
        ce = [r["ce_test_late"] for r in out[name]]
        print(f"  {name}: held-out <-ln p> late {np.mean(ce):.4f} {np.round(ce, 4).tolist()}, "
              f"true entropy {out[name][0]['true_entropy']:.4f}")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", action="store_true", help="time one epoch of each method")
    parser.add_argument("--report", action="store_true",
                        help="figure and tables from OUT/cauchy_vs_vae.json (no training)")
    parser.add_argument("--tune", nargs="*", choices=["mme", "vae"], default=None,
                        help="run the tuning grid (of both models, or of those named)")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--vae-epochs", type=int, default=None,
                        help="VAE epochs (default: --epochs); more to match the CPU time")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--mme", type=json.loads, default={},
                        help="Min-MaxEnt settings as JSON (default: none, the library's defaults)")
    parser.add_argument("--vae", type=json.loads,
                        default={"lr": 1e-2, "batch_size": 100, "kl_warmup": 300})
    parser.add_argument("--out", default=str(OUT), help=f"output folder (default {OUT})")
    args = parser.parse_args()
    RUN_DIR = Path(args.out)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    if args.bench:
        costs = bench()
        (RUN_DIR / "cauchy_vs_vae_bench.json").write_text(json.dumps(costs))
        return
    if args.tune is not None:
        results, best = tune(args.epochs, args.every, which=args.tune or ("mme", "vae"))
        (RUN_DIR / f"cauchy_vs_vae_tuning_{'_'.join(args.tune or ['all'])}.json").write_text(json.dumps({"results": results, "best": best}, indent=1))
        return
    if args.report:
        out = json.loads((RUN_DIR / "cauchy_vs_vae.json").read_text())
    else:
        out, _ = compare(args.mme, args.vae, args.seeds, args.epochs, args.every, args.vae_epochs)
        (RUN_DIR / "cauchy_vs_vae.json").write_text(json.dumps(out))
    bench_file = RUN_DIR / "cauchy_vs_vae_bench.json"
    if not bench_file.exists():
        bench_file.write_text(json.dumps(bench()))
    b = json.loads(bench_file.read_text())
    costs = {"mme": b["mme_1thread"], "vae": b["vae"]}
    figure(out, costs, RUN_DIR / "cauchy_vs_vae.png")
    report(out, costs)


if __name__ == "__main__":
    main()
