"""8×8 digits (paper §I.3, Fig. 5): Min-MaxEnt with CNN observables on 200 images, labels unused.

Trains ``MinMaxEnt(paper_cnn(16), support=(0, 1))`` on 200 of the 1797 optdigits images with
the library's defaults (``--mme`` passes settings as JSON, e.g. ``'{"betas": 4}'``; ``--epochs``
a fixed count instead of the stopping rule), saves the model, and writes the sample grid at
chosen epochs (from noise to digits as the entropy falls) to ``<out>/digits_epochs.png`` (and
``.svg``). Then it grades the samples with the independent judge (:mod:`mme_numba.judge`, an
SVC none of the project's networks: top-class probability, class coverage, nearest-neighbour
ratio, two-sample accuracy), and with :mod:`mme_numba.quality` against 300 held-out real
images, for the model and for the VAE baseline trained on the same 200 images
(:class:`mme_numba.baselines.image_vae.ImageVAE`); compares random-scan and systematic-scan
single-pixel moves and MALA at equal wall time; and writes everything to ``<out>/digits.json``,
the model to ``<out>/model.npz`` and the sample grids to ``<out>/digits_samples.png`` (and
``.svg``). The default ``<out>`` is ``runs/examples/digits``, apart from the CLI's
``runs/digits``; ``python examples/build_docs_figures.py`` copies the figures into
``docs/figures/``.

    python examples/digits.py [--epochs auto] [--mme '{}'] [--out runs/examples/digits]
"""

import argparse
import json
import logging
import os
import time
from pathlib import Path

# One BLAS thread: the θ step's im2col products are small, and OpenBLAS threads competing with
# numba's chain threads (and with other jobs on a 2-core machine) made the NumPy backward
# 4-40x slower in measurements (0.33-2.2 s instead of 0.05-0.09 s for 456 rows).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import mme_numba as mme  # noqa: E402
from mme_numba import fields, quality  # noqa: E402
from mme_numba.backends import proposals_per_sweep  # noqa: E402
from mme_numba.baselines.image_vae import ImageVAE  # noqa: E402
from mme_numba.figstyle import save_figure, styled  # noqa: E402

OUT = Path("runs/examples/digits")


def split(seed=0, n_train=200, n_eval=300):
    """Indices of the training images, of held-out evaluation images, and of the rest.

    The classifier that scores samples trains on the rest only, so it never saw the
    evaluation images nor the model's training images.
    """
    perm = np.random.default_rng(seed).permutation(1797)
    return (np.sort(perm[:n_train]), np.sort(perm[n_train:n_train + n_eval]),
            np.sort(perm[n_train + n_eval:]))


def compare_moves(model, seconds=60.0, n_chains=64, target_mala=0.57, warm_sweeps=100):
    """Random-scan and systematic-scan single-pixel sweeps and MALA on the trained model, at
    equal wall time.

    All start from the same chain states of the frozen model, first equilibrated by
    ``warm_sweeps`` single-pixel sweeps (the training chains lag behind the moving model: their
    energy still falls by ~40 in the first 50 sweeps at the frozen model). Blocks alternate
    (one random-scan sweep, one systematic-scan sweep, then ``m`` MALA steps with ``m`` chosen
    so a block costs about as much as a random-scan sweep), so load changes on the shared
    machine hit all alike. The mixing measure is the integrated autocorrelation time of the
    energy, pooled over chains, converted to seconds: ``τ_s = τ_blocks × (mean block time)``;
    smaller is better. Also reported: the RMS distance each chain travelled in pixel space over
    the whole run (``travel``).
    """
    from mme_numba import diagnostics, kernels as K

    spec = model.observables_.describe()
    params = model.observables_.kernel_params()
    lam = model.lambda_
    empty = K.empty_term()
    step_single = float(model.step_[0])
    n_chains = min(n_chains, len(model.chains_))
    x0 = model.chains_[:n_chains].copy()
    e0 = K.energy_batch(spec, params, lam, x0, *empty)
    K.sweep(spec, params, lam, *empty, x0, e0, 0.0, 1.0, step_single, warm_sweeps,
            K.MOVE_SINGLE, K.BOUNDARY_REFLECT, K.seed_states(99, n_chains),
            np.zeros(n_chains, np.int64))

    def single(state, n):
        x, e, rs, acc = state
        K.sweep(spec, params, lam, *empty, x, e, 0.0, 1.0, step_single, n, K.MOVE_SINGLE,
                K.BOUNDARY_REFLECT, rs, acc)

    def scan(state, n):
        x, e, rs, acc = state
        K.metropolis_sweeps(spec, params, lam, *empty, x, e, 0.0, 1.0, step_single, n,
                            K.MOVE_SCAN, K.BOUNDARY_REFLECT, rs, acc)

    def langevin(state, n, eps):
        x, e, rs, acc = state
        K.sweep(spec, params, lam, *empty, x, e, 0.0, 1.0, eps, n, K.MOVE_MALA,
                K.BOUNDARY_REFLECT, rs, acc)

    def fresh(seed):
        return [x0.copy(), e0.copy(), K.seed_states(seed, n_chains), np.zeros(n_chains, np.int64)]

    # Pilot: tune the MALA step toward the usual optimal acceptance, and price one step.
    eps = 0.05
    pilot = fresh(1)
    for _ in range(15):
        pilot[3][:] = 0
        langevin(pilot, 10, eps)
        eps *= float(np.exp(np.log(max(pilot[3].mean() / 10, 1e-3) / target_mala)))
    scan(fresh(2), 1)  # compile outside the clock
    t = time.perf_counter()
    single(fresh(2), 1)
    t_sweep = time.perf_counter() - t
    t = time.perf_counter()
    langevin(fresh(3), 5, eps)
    m = max(1, int(round(t_sweep / ((time.perf_counter() - t) / 5))))

    names = ("single", "scan", "mala")
    step = {"single": lambda st: single(st, 1), "scan": lambda st: scan(st, 1),
            "mala": lambda st: langevin(st, m, eps)}
    states = {name: fresh(4 + i) for i, name in enumerate(names)}
    traces = {name: [] for name in names}
    spent = {name: 0.0 for name in names}
    while sum(spent.values()) < len(names) * seconds:
        for name in names:
            t = time.perf_counter()
            step[name](states[name])
            spent[name] += time.perf_counter() - t
            traces[name].append(states[name][1].copy())
    out = {}
    for name, per_block in (("single", 64), ("scan", 64), ("mala", m)):
        trace = np.array(traces[name])
        n_blocks = len(trace)
        tau = diagnostics.integrated_time(trace, pooled=True)
        block_s = spent[name] / n_blocks
        out[name] = {"blocks": n_blocks, "proposals_per_block": per_block,
                     "seconds": spent[name], "acceptance":
                         float(states[name][3].sum() / (n_blocks * per_block * n_chains)),
                     "tau_blocks": tau, "tau_seconds": tau * block_s,
                     "ess_per_chain_per_s": 1.0 / (tau * block_s),
                     "energy_mean": float(trace[n_blocks // 2:].mean()),
                     "travel": float(np.sqrt(((states[name][0] - x0) ** 2).sum(axis=1)).mean())}
    out["mala"]["eps"] = eps
    out["single"]["step"] = out["scan"]["step"] = step_single
    return out


def judge_report(generated, train, heldout):
    """The independent judge's numbers (:mod:`mme_numba.judge`), or None without scikit-learn."""
    try:
        from mme_numba.judge import digit_judge
        return digit_judge().report(generated, train, heldout)
    except ImportError as exc:
        logging.getLogger("digits").warning("%s: judge numbers left out", exc)
        return None


@styled
def samples_figure(panels, path, n_show=40, n_cols=10):
    """Side-by-side grids of generated images, one panel per ``{title: (n, 64) array}``."""
    n_rows = -(-n_show // n_cols)
    fig = Figure(figsize=(0.55 * n_cols * len(panels) + 0.3 * (len(panels) - 1),
                          0.55 * n_rows + 0.35))
    subfigs = fig.subfigures(1, len(panels), wspace=0.03)
    for sub, (title, imgs) in zip(np.atleast_1d(subfigs), panels.items()):
        axs = sub.subplots(n_rows, n_cols, squeeze=False)
        for i, ax in enumerate(axs.ravel()):
            ax.set_axis_off()
            if i < min(n_show, len(imgs)):
                ax.imshow(imgs[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1,
                          interpolation="nearest")
        sub.suptitle(title)
        sub.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.06,
                            hspace=0.06)
    save_figure(fig, path, svg=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", default="auto",
                   help='training epochs, or "auto" (the default: the library\'s stopping rule)')
    p.add_argument("--mme", type=json.loads, default={},
                   help="MinMaxEnt settings as JSON, e.g. '{\"betas\": 4}' (default: none, "
                        "the library's defaults)")
    p.add_argument("--snapshots", default="0,10,30,100,200,400,800,1600")
    p.add_argument("--final-sweeps", type=int, default=20,
                   help="sweeps of the frozen model before the quality samples")
    p.add_argument("--vae-epochs", type=int, default=300, help="0 skips the VAE baseline")
    p.add_argument("--classifier-epochs", type=int, default=30)
    p.add_argument("--mixing-seconds", type=float, default=60.0,
                   help="wall time per sampler in the comparison of moves (0 skips)")
    p.add_argument("--out", default=str(OUT), help=f"output folder (default {OUT})")
    p.add_argument("--fig", default=None, help="default OUT/digits_epochs.png")
    p.add_argument("--samples-fig", default=None, help="default OUT/digits_samples.png")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("digits")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.fig = args.fig or str(out / "digits_epochs.png")
    args.samples_fig = args.samples_fig or str(out / "digits_samples.png")

    X_all, y_all = mme.datasets.digits()
    i_train, i_eval, i_rest = split(args.seed)
    X = X_all[i_train]

    obs = mme.nn.paper_cnn(16, random_state=args.seed)
    model = mme.MinMaxEnt(obs, support=(0.0, 1.0), random_state=args.seed, **args.mme)
    epochs = args.epochs if args.epochs == "auto" else int(args.epochs)
    wanted = {int(s) for s in args.snapshots.split(",")}
    snapshots = {}
    if 0 in wanted:  # the uniform start, before any sweep
        rng = np.random.default_rng(args.seed)
        snapshots[0] = rng.random((10, 64))

    def callback(m, record):
        if m.epoch_ in wanted:
            snapshots[m.epoch_] = m.chains_[:10].copy()
        if m.epoch_ % 25 == 0:
            log.info("epoch %d  chi2 %.3g  acc %.3f  |lambda| %.3g  t_sample %.3fs  t_theta "
                     "%.3fs", m.epoch_, record["chi2"], record["acceptance"],
                     record["lambda_norm"], record["t_sample"], record["t_theta"])

    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(X, epochs=epochs, callback=callback, checkpoint=out / "model.npz",
              checkpoint_every=50)
    t_train = time.perf_counter() - t0
    cpu_train = time.process_time() - c0  # summed over threads
    hist = model.history_
    t_sample = sum(r["t_sample"] for r in hist)
    per_sweep = proposals_per_sweep(model.move_, X.shape[1])
    n_chains = len(model.chains_)
    levels = 1 if model.replicas_ is None else len(model.replicas_.betas)
    sweeps_run = sum(r.get("sweeps", 0) for r in hist) + model.burn_in
    proposals = levels * n_chains * per_sweep * sweeps_run
    log.info("trained %d epochs in %.1f s (sampling %.1f s, %.3g proposals/s)", model.epoch_,
             t_train, t_sample, proposals / t_sample)
    snapshots = {ep: v for ep, v in snapshots.items() if ep <= model.epoch_}
    # one row of chain states per snapshot epoch (paper Fig. 5)
    fig = mme.plotting.plot_image_rows({f"epoch {ep}": snapshots[ep]
                                        for ep in sorted(snapshots)})
    save_figure(fig, args.fig, svg=True)  # logs "wrote <path>"

    # Quality: the chains after extra sweeps of the frozen final model.
    t1 = time.perf_counter()
    generated = model.sample(n_chains, sweeps=args.final_sweeps)
    t_final = time.perf_counter() - t1
    # plain cross-entropy: this classifier grades the samples, it does not steer them
    clf = fields.train_classifier(
        mme.nn.classifier_cnn(10, random_state=args.seed), X_all[i_rest], y_all[i_rest],
        epochs=args.classifier_epochs, lr=2e-3, random_state=args.seed, adversarial=0.0,
        noise=0.0, label_smoothing=0.0)
    acc = quality.classifier_accuracy(clf, X_all[i_eval], y_all[i_eval])
    report = {"args": vars(args), "t_train_s": t_train, "cpu_train_s": cpu_train,
              "t_sample_s": t_sample,
              "proposals_per_s": proposals / t_sample, "final_acceptance": hist[-1]["acceptance"],
              "final_chi2": hist[-1]["chi2"], "classifier_eval_accuracy": acc,
              "mme": quality.quality_report(generated, X, X_all[i_eval], clf),
              "t_final_sample_s": t_final, "epochs": model.epoch_,
              "judge": {"mme": judge_report(generated, X, X_all[i_eval])}}
    np.save(out / "generated.npy", generated)
    if args.vae_epochs > 0:
        t2 = time.perf_counter()
        vae = ImageVAE(hidden=(128,), latent_dim=8, lr=1e-3, batch_size=50,
                       random_state=args.seed).fit(X, epochs=args.vae_epochs)
        vae_samples = vae.sample(len(generated), random_state=args.seed)
        report["vae"] = quality.quality_report(vae_samples, X, X_all[i_eval], clf)
        report["judge"]["vae"] = judge_report(vae_samples, X, X_all[i_eval])
        report["t_vae_s"] = time.perf_counter() - t2
        np.save(out / "vae_samples.npy", vae_samples)
    panels = {f"Min-MaxEnt, epoch {model.epoch_} (+{args.final_sweeps} sweeps)": generated,
              "held-out real digits": X_all[i_eval]}
    if args.vae_epochs > 0:
        panels = {**dict(list(panels.items())[:1]), "VAE (decoder means)": vae_samples,
                  "held-out real digits": X_all[i_eval]}
    samples_figure(panels, args.samples_fig)
    log.info("wrote %s", args.samples_fig)
    if args.mixing_seconds > 0:
        report["mixing"] = compare_moves(model, args.mixing_seconds)
        for name in ("single", "scan", "mala"):
            r = report["mixing"][name]
            log.info("%s: acceptance %.3f  tau %.3g blocks = %.3g s  (%d blocks of %d "
                     "proposals)  travel %.3g", name, r["acceptance"], r["tau_blocks"],
                     r["tau_seconds"], r["blocks"], r["proposals_per_block"], r["travel"])
    (out / "digits.json").write_text(json.dumps(report, indent=1))
    for name, r in report["judge"].items():
        if r is not None:
            log.info("judge, %s: top-class probability %.3f  classes at >= 5%% %d  NN ratio "
                     "%.3f  two-sample accuracy %.3f", name, r["top_class_probability"],
                     r["classes_at_5pct"], r["nn_ratio"], r["two_sample_accuracy"])
    for name in ("mme", "vae"):
        if name in report:
            r = report[name]
            log.info("%s: NN ratio %.3f  confidence %.3f  effective classes %.2f", name,
                     r["nn"]["ratio"], r["classifier"]["mean_confidence"],
                     r["classifier"]["effective_classes"])
    r = report["mme"]
    log.info("real held-out: confidence %.3f  effective classes %.2f;  noise: NN ratio %.3f "
             "confidence %.3f", r["heldout_classifier"]["mean_confidence"],
             r["heldout_classifier"]["effective_classes"], r["noise_nn"]["ratio"],
             r["noise_classifier"]["mean_confidence"])
    return report


if __name__ == "__main__":
    main()
