"""The ``mme-numba`` command line: train, sample, evaluate, plot, demo.

Run ``mme-numba --help`` or ``mme-numba <command> --help``; ``docs/cli.md`` is the
tour. Each subcommand is one ``_cmd_*`` function registered in :data:`COMMANDS`,
so a new one (``steer``) is one function and one parser. Equation numbers (Eq. n) are those
of ``docs/method.md``.

A training run writes, under its output folder::

    config.json     the resolved configuration (after --set overrides)
    model.npz       the checkpoint: written atomically every N epochs and at the end
    metrics.jsonl   one JSON line per epoch (the model's history record)
    history.png     training curves
    density.png     learned density vs data (d <= 2), or samples.png (images)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

# The command line is an application, so it may set process-wide threading before numpy and
# numba load (the library itself never does). Spinning OpenMP workers between kernel calls and
# OpenBLAS threads in the small θ-step products stalled each other: the demo trained in 74 s
# with the defaults and in 2.5 s with these two settings (same result, measured on 2 cores).
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from mme_numba import config as cfgmod  # noqa: E402

logger = logging.getLogger("mme_numba.cli")

MODEL_FILE = "model.npz"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"

#: The README's main job: the paper's 1-d bimodal mixture, 1000 points.
#: ``examples/configs/bimodal.toml`` holds the same experiment as a file.
DEMO_CONFIG = {
    "data": {"source": "gaussian_mixture", "n": 1000, "means": [-2.0, 2.0],
             "scales": [0.5, 0.5], "seed": 0},
    "observables": {"kind": "mlp", "sizes": [1, 32, 32, 2], "activation": "tanh",
                    "random_state": 0},
    "model": {"class": "MinMaxEnt", "support": [-6.0, 6.0], "n_chains": 1024, "sweeps": 10,
              "step_size": 3.0, "lr_theta": 0.01, "random_state": 0},
    "train": {"epochs": 300, "checkpoint_every": 50, "eval_every": 10, "out": "mme_demo"},
}


# ----------------------------------------------------------------------------- helpers
def _echo(*parts):
    print(*parts, flush=True)


def _want_progress(args):
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _write_json(path, obj):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    tmp.replace(path)


def _read_metrics(path):
    """Parsed lines of a metrics log; a torn last line (killed mid-write) is dropped."""
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


def _truncate_metrics(path, epoch):
    """Keep only the metrics lines of epochs ``<= epoch`` (those the checkpoint holds)."""
    kept = [r for r in _read_metrics(path) if r.get("epoch", 0) <= epoch]
    tmp = Path(str(path) + ".tmp")
    tmp.write_text("".join(json.dumps(r, default=_json_default) + "\n" for r in kept))
    tmp.replace(path)
    return len(kept)


def _run_config(model_path):
    """The ``config.json`` saved beside a model by ``train``, or None."""
    p = Path(model_path).with_name(CONFIG_FILE)
    return json.loads(p.read_text()) if p.exists() else None


def _load_data(spec, model_path):
    """Data for evaluate/plot: ``--data`` (.npy/.npz/.toml) or the run's saved config."""
    if spec is None:
        run_cfg = _run_config(model_path)
        if run_cfg is None:
            return None, None
        return cfgmod.build_data(run_cfg["data"]), run_cfg["data"]
    path = Path(spec)
    if path.suffix == ".toml":
        data_spec = cfgmod.load_config(path)["data"]
        return cfgmod.build_data(data_spec), data_spec
    return cfgmod.build_data({"source": "file", "path": str(path)}), None


def _true_logpdf(data_spec, lo, hi):
    """The exact density of a synthetic data source truncated to the box, or None (d > 2)."""
    from mme_numba.datasets import truncated_logpdf

    lo, hi = np.atleast_1d(lo), np.atleast_1d(hi)
    logpdf = None if data_spec is None else cfgmod.true_logpdf(data_spec)
    if logpdf is None or len(lo) > 2:
        return None
    return truncated_logpdf(logpdf, lo, hi, n_grid=4001 if len(lo) == 1 else 401)


def _progress_bar(total, desc, unit="epoch"):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # optional dependency (extra "progress")
        logger.info("tqdm is not installed: no progress bar")
        return None
    return tqdm(total=total, desc=desc, unit=unit)


def _quad_grid(model):
    return 4001 if model.n_features_in_ == 1 else 201


def _quality(model, X, true_logpdf, with_true_entropy=True):
    """Entropy, cross-entropy on X and KL(true ‖ model) by quadrature (d <= 2)."""
    from mme_numba import quadrature

    out = {}
    if model.n_features_in_ > 2:
        return out
    lo, hi = model.support_
    n_grid = _quad_grid(model)
    out["entropy"] = quadrature.entropy(model.energy, lo, hi, n_grid)
    if X is not None:
        out["cross_entropy"] = quadrature.cross_entropy(model.energy, X, lo, hi, n_grid)
    if true_logpdf is not None:
        out["kl"] = quadrature.kl_divergence(true_logpdf, lambda x: -model.energy(x), lo, hi,
                                             n_grid)
    if true_logpdf is not None and with_true_entropy:
        out["true_entropy"] = quadrature.entropy(lambda x: -true_logpdf(x), lo, hi, n_grid)
    return out


# ----------------------------------------------------------------------------- training
def train_run(cfg, out, resume=False, overwrite=False, progress=False):
    """Train (or resume) the experiment ``cfg`` into folder ``out``.

    Parameters
    ----------
    cfg : dict
        Resolved configuration (:func:`mme_numba.config.load_config`).
    out : path-like
        Output folder (created).
    resume : bool
        Continue from ``out/model.npz`` when it exists, truncating the metrics
        log to the checkpoint's epoch; start fresh otherwise.
    overwrite : bool
        Start fresh even if ``out`` already holds a run.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    model : the trained model
    X : ndarray, the training data
    seconds : float, wall time of this call's training
    """
    import mme_numba as mme

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt, metrics = out / MODEL_FILE, out / METRICS_FILE
    epochs = int(cfg["train"]["epochs"])
    every = int(cfg["train"]["checkpoint_every"])
    saved_cfg = _run_config(ckpt)
    if resume and ckpt.exists():
        if saved_cfg is not None:
            for table in ("data", "observables", "model"):
                if saved_cfg.get(table) != cfg[table]:
                    raise SystemExit(f"error: cannot resume {out}: [{table}] differs from the "
                                     f"run's {CONFIG_FILE}; use a new --out or --overwrite")
        model = mme.load(ckpt)
        n = _truncate_metrics(metrics, model.epoch_)
        logger.info("resuming %s at epoch %d (%d metric lines kept)", ckpt, model.epoch_, n)
    elif ckpt.exists() and not overwrite:
        raise SystemExit(f"error: {ckpt} exists; pass --resume to continue it or "
                         "--overwrite to start again")
    else:
        model = cfgmod.build_model(cfg)
        metrics.write_text("")
    _write_json(out / CONFIG_FILE, cfg)
    X = cfgmod.build_data(cfg["data"])
    remaining = max(epochs - getattr(model, "epoch_", 0), 0)
    if not getattr(model, "is_fitted", False) and remaining < 1:
        raise SystemExit("error: train.epochs must be >= 1")

    eval_every = int(cfg["train"].get("eval_every", 0))
    true_logpdf = None
    if eval_every and X.shape[1] <= 2:
        lo, hi = cfgmod.model_kwargs(cfg["model"])[1]["support"]
        d = X.shape[1]
        true_logpdf = _true_logpdf(cfg["data"], np.broadcast_to(lo, d), np.broadcast_to(hi, d))
    bar = _progress_bar(remaining, f"train {out.name}") if progress and remaining else None
    fh = open(metrics, "a")

    def callback(model, record):
        if eval_every and model.n_features_in_ <= 2 and model.epoch_ % eval_every == 0:
            # Deterministic quadrature: adds keys to the history without touching any RNG,
            # so resumed runs stay bit-identical.
            record.update(_quality(model, None, true_logpdf, with_true_entropy=False))
        fh.write(json.dumps(record, default=_json_default) + "\n")
        fh.flush()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(chi2=f"{record['chi2']:.3g}", acc=f"{record['acceptance']:.2f}",
                            **({"kl": f"{record['kl']:.4f}"} if "kl" in record else {}))

    t0 = time.perf_counter()
    try:
        model.fit(X, epochs=remaining, checkpoint=ckpt, checkpoint_every=every,
                  progress=False, callback=callback)
    finally:
        fh.close()
        if bar is not None:
            bar.close()
    return model, X, time.perf_counter() - t0


def _write_plots(model, X, out, true_logpdf=None, n_images=64):
    """history.png and density.png (d <= 2) or samples.png (square images); returns paths."""
    from mme_numba import plotting
    from mme_numba.testing import seeded_copy

    out = Path(out)
    written = []
    if model.history_:
        plotting.plot_history(model, path=out / "history.png")
        written.append(out / "history.png")
    d = model.n_features_in_
    if d == 1 and X is not None:
        true_density = None
        if true_logpdf is not None:
            true_density = lambda x: np.exp(true_logpdf(np.asarray(x)[:, None]))  # noqa: E731
        plotting.plot_density_1d(model, X, true_density=true_density, path=out / "density.png")
        written.append(out / "density.png")
    elif d == 2 and X is not None:
        plotting.plot_density_2d(model, X, path=out / "density.png")
        written.append(out / "density.png")
    elif d > 2 and math.isqrt(d) ** 2 == d:
        side = math.isqrt(d)
        xs = seeded_copy(model, 0).sample(n_images)
        lo, hi = model.support_
        plotting.plot_image_grid(xs, shape=(side, side), vmin=float(lo.min()),
                                 vmax=float(hi.max()), path=out / "samples.png")
        written.append(out / "samples.png")
    return written


def _cmd_train(args):
    cfg = cfgmod.load_config(args.config, args.set or [])
    for key in ("epochs", "checkpoint_every", "out"):   # explicit flags win over --set
        if getattr(args, key) is not None:
            cfg["train"][key] = getattr(args, key)
    out = Path(cfg["train"]["out"])
    model, X, seconds = train_run(cfg, out, resume=args.resume, overwrite=args.overwrite,
                                  progress=_want_progress(args))
    plots = [] if args.no_plots else _write_plots(model, X, out,
                                                  _true_logpdf(cfg["data"], *model.support_))
    last = model.history_[-1] if model.history_ else {}
    _echo(f"trained {type(model).__name__} to epoch {model.epoch_} in {seconds:.1f} s")
    if last:
        _echo(f"  chi2 {last['chi2']:.4g}   acceptance {last['acceptance']:.3f}"
              + (f"   KL {last['kl']:.4f}" if "kl" in last else ""))
    _echo(f"  model   {out / MODEL_FILE}")
    _echo(f"  metrics {out / METRICS_FILE}")
    for p in plots:
        _echo(f"  figure  {p}")
    return 0


# ----------------------------------------------------------------------------- sample
def _cmd_sample(args):
    import mme_numba as mme
    from mme_numba.testing import seeded_copy

    model = mme.load(args.model)
    source = model if args.seed is None else seeded_copy(model, args.seed)
    xs = source.sample(args.n, sweeps=args.sweeps)
    out = Path(args.output)
    if out.suffix == ".csv":
        np.savetxt(out, xs, delimiter=",")
    else:
        np.save(out, xs)
    _echo(f"wrote {xs.shape[0]} samples of dimension {xs.shape[1]} to {out}")
    return 0


# ----------------------------------------------------------------------------- steer
def _steering_classifier(spec, model, out_dir):
    """A classifier from a saved network file, or ``digits``: train one on the shipped digits."""
    import mme_numba as mme
    from mme_numba import fields
    from mme_numba.io import load_network, save_network

    if spec != "digits":
        return load_network(spec)
    if model.n_features_in_ != 64:
        raise SystemExit("--classifier digits needs a model of 8x8 images (64 features)")
    cached = out_dir / "digits_classifier.npz"
    if cached.exists():
        return load_network(cached)
    X, y = mme.datasets.digits()
    _echo("training a digits classifier on the shipped labelled images (once; cached in "
          f"{cached})")
    net = fields.train_classifier(mme.nn.classifier_cnn(10), X, y, epochs=30, random_state=0)
    save_network(net, cached)
    return net


def _cmd_steer(args):
    import mme_numba as mme
    from mme_numba import fields

    model = mme.load(args.model)
    out = Path(args.output)
    clf = _steering_classifier(args.classifier, model, out.parent.resolve())
    try:
        field = fields.ClassifierField(clf, args.target)
        steered = model.with_field(field, strength=args.strength, base=not args.field_only,
                                   random_state=args.seed)
    except ValueError as exc:
        raise SystemExit(f"steer: {exc}") from None
    xs = steered.sample(args.n, sweeps=args.sweeps)
    if out.suffix == ".csv":
        np.savetxt(out, xs, delimiter=",")
    else:
        np.save(out, xs)
    rate = float(np.mean(clf.forward(xs).argmax(axis=1) == args.target))
    _echo(f"wrote {len(xs)} samples steered toward class {args.target} "
          f"(h = {args.strength}{', field only' if args.field_only else ''}) to {out}")
    _echo(f"  classified as the target: {rate:.2f}; field ESS of the model's chains: "
          f"{100 * steered.field_ess_:.2g} %")
    if args.save_model:
        steered.save(args.save_model)
        _echo(f"  wrote the steered model to {args.save_model}")
    return 0


# ----------------------------------------------------------------------------- evaluate
def evaluate_model(model, X=None, data_spec=None, steps=200, seed=0, progress=False):
    """Diagnostics and quality numbers of a fitted model, as a JSON-able dict.

    Runs a :func:`mme_numba.testing.seeded_copy` of the chains ``steps``
    single sweeps (the model itself is not advanced), recording the energy of
    every chain after each sweep.

    Parameters
    ----------
    model : fitted MaxEnt or MinMaxEnt
    X : ndarray, shape (n_samples, n_features), optional
        Data for χ² (Eq. 5) and the cross-entropy.
    data_spec : dict, optional
        The ``[data]`` table, for KL to a known true density.
    steps : int
        Sweeps recorded.
    seed : int
        Seed of the evaluation chains.
    progress : bool
        Show a tqdm bar over the sweeps.

    Returns
    -------
    dict
        ``epoch``, ``n_chains``, ``acceptance`` (last training epoch),
        ``moved_fraction`` (chains that changed state per sweep: the acceptance
        rate for all-coordinate moves), ``energy`` (:func:`mixing_report`),
        ``chi2`` (with data), ``entropy``, ``cross_entropy``, ``kl``,
        ``true_entropy`` (d <= 2, where known), ``mode_crossing_fraction`` (d = 1).
    """
    from mme_numba import diagnostics
    from mme_numba.testing import seeded_copy

    clone = seeded_copy(model, seed)
    n_chains = len(clone.chains_)
    d = model.n_features_in_
    energies = np.empty((steps, n_chains))
    positions = np.empty((steps, n_chains)) if d == 1 else None
    o_sum = None
    moved = 0.0
    prev = clone.chains_.copy()
    bar = _progress_bar(steps, "evaluate", unit="sweep") if progress else None
    for t in range(steps):
        if bar is not None:
            bar.update(1)
        xs = clone.sample(n_chains, sweeps=1)
        moved += np.mean(np.any(xs != prev, axis=1))
        prev = xs
        energies[t] = clone.energy(xs)
        if positions is not None:
            positions[t] = xs[:, 0]
        if X is not None:
            o = clone.observe(xs).sum(axis=0)
            o_sum = o if o_sum is None else o_sum + o
    if bar is not None:
        bar.close()
    last = model.history_[-1] if model.history_ else {}
    report = {
        "epoch": int(model.epoch_),
        "n_chains": n_chains,
        "n_features": d,
        "acceptance": last.get("acceptance"),
        "moved_fraction": moved / steps,
        "energy": diagnostics.mixing_report(energies, acceptance=last.get("acceptance")),
    }
    if X is not None:
        O_data = model.observe(X)
        residual = o_sum / (steps * n_chains) - O_data.mean(axis=0)
        report["chi2"] = diagnostics.chi2(residual, O_data.var(axis=0))
    report.update(_quality(model, X, _true_logpdf(data_spec, *model.support_)))
    if positions is not None:
        threshold = float(np.median(X)) if X is not None else 0.0
        report["mode_crossing_threshold"] = threshold
        report["mode_crossing_fraction"] = diagnostics.mode_crossing_fraction(positions,
                                                                              threshold)
    return report


def _format_report(rep):
    e = rep["energy"]
    rows = [
        ("epoch", rep["epoch"]),
        ("chains x sweeps", f"{rep['n_chains']} x {e['n_steps']}"),
        ("acceptance (training)", rep["acceptance"]),
        ("moved fraction / sweep", rep["moved_fraction"]),
        ("tau_int energy (mean, max)", f"{e['tau_mean']:.3g}, {e['tau_max']:.3g}"),
        ("ESS energy (per chain, total)", f"{e['ess_total'] / e['n_chains']:.3g}, "
                                          f"{e['ess_total']:.4g}"),
        ("split-R-hat energy", e["rhat"]),
    ]
    for key, label in [("chi2", "chi2 (Eq. 5)"), ("mode_crossing_fraction",
                                                   "mode-crossing fraction"),
                       ("entropy", "entropy S"), ("cross_entropy", "cross-entropy <-ln p>_data"),
                       ("true_entropy", "true entropy"), ("kl", "KL(true || model)")]:
        if key in rep:
            rows.append((label, rep[key]))
    rows.append(("mixed", "yes" if e["mixed"] else "NO"))
    width = max(len(k) for k, _ in rows)
    lines = []
    for k, v in rows:
        v = "-" if v is None else (f"{v:.5g}" if isinstance(v, float) else str(v))
        lines.append(f"{k:<{width}}  {v}")
    lines += [f"warning: {w}" for w in e["warnings"]]
    return "\n".join(lines)


def _cmd_evaluate(args):
    import mme_numba as mme

    model = mme.load(args.model)
    X, data_spec = _load_data(args.data, args.model)
    rep = evaluate_model(model, X, data_spec, steps=args.steps, seed=args.seed,
                         progress=_want_progress(args))
    _echo(_format_report(rep))
    if args.json:
        _write_json(args.json, rep)
        _echo(f"wrote {args.json}")
    return 1 if args.strict and not rep["energy"]["mixed"] else 0


# ----------------------------------------------------------------------------- plot
def _cmd_plot(args):
    import mme_numba as mme

    model = mme.load(args.model)
    X, data_spec = _load_data(args.data, args.model)
    out = Path(args.out) if args.out else Path(args.model).parent
    out.mkdir(parents=True, exist_ok=True)
    for p in _write_plots(model, X, out, _true_logpdf(data_spec, *model.support_), args.n_images):
        _echo(f"wrote {p}")
    return 0


# ----------------------------------------------------------------------------- demo
def _cmd_demo(args):
    cfg = cfgmod.apply_overrides(DEMO_CONFIG, args.set or [])
    if args.epochs is not None:
        cfg["train"]["epochs"] = args.epochs
    out = Path(args.out)
    _echo("Min-MaxEnt demo: 1000 points from 0.5 N(-2, 0.5²) + 0.5 N(2, 0.5²), "
          f"MLP 1-32-32-2 observables, {cfg['train']['epochs']} epochs")
    model, X, seconds = train_run(cfg, out, overwrite=True, progress=_want_progress(args))
    true_logpdf = _true_logpdf(cfg["data"], *model.support_)
    plots = _write_plots(model, X, out, true_logpdf)
    q = _quality(model, X, true_logpdf)
    from mme_numba import quadrature

    nodes, weights = quadrature.simpson_weights(0.0, 6.0, 2001)
    mass_right = float(weights @ np.exp(model.log_density(nodes[:, None])))
    _echo(f"trained in {seconds:.1f} s; chi2 {model.history_[-1]['chi2']:.3g}")
    _echo(f"  KL(true || model)      {q['kl']:.4f} nats (by quadrature)")
    _echo(f"  entropy model / true   {q['entropy']:.4f} / {q['true_entropy']:.4f} nats")
    _echo(f"  mass on x > 0          {mass_right:.3f} (true 0.500)")
    for p in [out / MODEL_FILE, *plots]:
        _echo(f"  wrote {p}")
    return 0


# ----------------------------------------------------------------------------- parser
def _add_common_train(p):
    p.add_argument("--epochs", type=int, help="total epochs of the run (overrides train.epochs)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is shown only when stderr is a terminal)")
    p.add_argument("--set", action="append", metavar="TABLE.KEY=VALUE",
                   help="override a configuration value, parsed as TOML "
                        "(e.g. --set model.n_chains=256 --set model.move=single); repeatable")


def build_parser():
    """The argument parser of ``mme-numba`` (one subparser per command)."""
    parser = argparse.ArgumentParser(
        prog="mme-numba",
        description="Min-MaxEnt generative models: train from a TOML config, sample, "
                    "steer, evaluate mixing and quality, plot, or run the demo.",
        epilog="Quick start: 'mme-numba demo'. Help on a command: 'mme-numba train --help'.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log INFO (-v) or DEBUG (-vv) messages to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train a model from a TOML configuration",
                       description="Train a model from CONFIG.toml into an output folder "
                                   "(model.npz checkpoint, metrics.jsonl, figures). "
                                   "Checkpoints are atomic; --resume continues bit-identically, "
                                   "also after the process was killed.")
    p.add_argument("config", help="configuration file, e.g. examples/configs/bimodal.toml")
    p.add_argument("--out", help="output folder (overrides train.out; default runs/<stem>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/model.npz if it exists, up to the total --epochs")
    p.add_argument("--overwrite", action="store_true", help="start again even if OUT holds a run")
    p.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="epochs between checkpoints (overrides train.checkpoint_every)")
    p.add_argument("--no-plots", action="store_true", help="do not write figures at the end")
    _add_common_train(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sample", help="draw samples from a trained model",
                       description="Draw N samples from MODEL.npz's persistent chains into a "
                                   ".npy (or .csv) file. The model file is not modified.")
    p.add_argument("model", help="a saved model (.npz)")
    p.add_argument("-n", type=int, required=True, help="number of samples")
    p.add_argument("-o", "--output", required=True, help="output file, .npy or .csv")
    p.add_argument("--sweeps", type=int, help="sweeps between draws (default: the model's)")
    p.add_argument("--seed", type=int,
                   help="run the chains on a fresh random stream from this seed (default: "
                        "continue the saved stream)")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("steer", help="sample a trained model steered by a classifier field",
                       description="Sample from H(x) - h ln P_clf(target | x) without "
                                   "retraining the model (paper Eq. 22-23). The classifier is a "
                                   "network saved with mme_numba.io.save_network, or 'digits' "
                                   "to train one on the shipped labelled digits (cached beside "
                                   "the output). --field-only switches the model's energy off "
                                   "(the paper's control: samples drift to noise).")
    p.add_argument("model", help="a saved model (.npz)")
    p.add_argument("--classifier", required=True,
                   help="saved classifier network (.npz) ending in LogSoftmax, or 'digits'")
    p.add_argument("--target", type=int, required=True, help="class to favour")
    p.add_argument("--strength", type=float, default=2.0, help="field strength h (default 2)")
    p.add_argument("--field-only", action="store_true", help="switch the model's energy off")
    p.add_argument("-n", type=int, required=True, help="number of samples")
    p.add_argument("-o", "--output", required=True, help="output file, .npy or .csv")
    p.add_argument("--sweeps", type=int, help="sweeps between draws (default: the model's)")
    p.add_argument("--seed", type=int, help="seed of the steered chains' random streams")
    p.add_argument("--save-model", metavar="PATH", help="also save the steered model")
    p.set_defaults(func=_cmd_steer)

    p = sub.add_parser("evaluate", help="mixing diagnostics and quality numbers",
                       description="Run the chains --steps sweeps and report acceptance, the "
                                   "integrated autocorrelation time and ESS of the energy per "
                                   "chain, split-R-hat, chi2 (Eq. 5) and, for d <= 2, entropy, "
                                   "cross-entropy and KL to the true density where known. "
                                   "Warns when the chains have not mixed.")
    p.add_argument("model", help="a saved model (.npz)")
    p.add_argument("--data", help="data: .npy/.npz file or a .toml config (default: the "
                                  "config.json saved beside the model)")
    p.add_argument("--steps", type=int, default=200, help="sweeps recorded (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation chains")
    p.add_argument("--json", metavar="PATH", help="also write the full report as JSON")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if not mixed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("plot", help="figures for a trained model",
                       description="Write history.png and density.png (d <= 2) or samples.png "
                                   "(square images) for MODEL.npz.")
    p.add_argument("model", help="a saved model (.npz)")
    p.add_argument("--data", help="data as for evaluate")
    p.add_argument("--out", help="folder for the figures (default: beside the model)")
    p.add_argument("--n-images", type=int, default=64, help="images in samples.png")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("demo", help="train the bimodal example and write figures",
                       description="The README's main job: fit a Min-MaxEnt model to 1000 "
                                   "points of a bimodal Gaussian mixture (a minute or two on "
                                   "2 cores) and write OUT/density.png, OUT/history.png and "
                                   "OUT/model.npz; prints KL to the true density.")
    p.add_argument("--out", default="mme_demo", help="output folder (default mme_demo)")
    _add_common_train(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None):
    """Entry point of the ``mme-numba`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _echo("interrupted; a training run continues with --resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
