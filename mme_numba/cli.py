"""The ``mme-numba`` command line: train, check, sweep, gather, sample, steer, evaluate, plot,
demo.

Run ``mme-numba --help`` or ``mme-numba <command> --help``; ``docs/cli.md`` is the
tour. Each subcommand is one ``_cmd_*`` function and one parser in :func:`build_parser`.

Mistakes are answered in one line per problem, ``error: FILE: [table] key: what is wrong
(what was expected)``, with exit status 2 for usage, configuration and input-file errors
(all found before anything runs) and 1 for failures during a run; ``-v`` adds the
traceback. Equation numbers (Eq. n) are those
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
import traceback
from pathlib import Path

# The command line is an application, so it may set process-wide threading before numpy and
# numba load (the library itself never does). Spinning OpenMP workers between kernel calls and
# OpenBLAS threads in the small θ-step products stalled each other: the demo trained in 74 s
# with the defaults and in 2.5 s with these two settings (same result, measured on 2 cores).
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from mme_numba import config as cfgmod  # noqa: E402
from mme_numba import datafiles  # noqa: E402
from mme_numba.config import ConfigError, Problem  # noqa: E402
from mme_numba.datafiles import InputFileError  # noqa: E402

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
    "model": {"class": "MinMaxEnt", "support": [-6.0, 6.0], "random_state": 0},
    "train": {"epochs": "auto", "checkpoint_every": 50, "eval_every": 10, "out": "mme_demo"},
}


# ----------------------------------------------------------------------------- messages
class UsageError(Exception):
    """A command-line option value that cannot work; printed as one ``error:`` line (exit 2)."""


_QUIET = False


def _echo(*parts):
    print(*parts, flush=True)


def _note(text):
    """A notice on stderr (what is skipped and why, kernel compilation); silenced by -q."""
    if not _QUIET:
        print(f"note: {text}", file=sys.stderr, flush=True)


def _error(text):
    print(f"error: {text}", file=sys.stderr, flush=True)


def _want_progress(args):
    return not getattr(args, "no_progress", False) and not _QUIET and sys.stderr.isatty()


class _Once(logging.Filter):
    """Let each distinct log message through once per process (``each warning once``)."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def filter(self, record):
        key = (record.name, record.levelno, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class _drop_warnings_of:
    """Silence one logger's warnings while its results are printed another way."""

    def __init__(self, name):
        self.logger = logging.getLogger(name)
        self.filter = lambda record: record.levelno < logging.WARNING

    def __enter__(self):
        self.logger.addFilter(self.filter)

    def __exit__(self, *exc):
        self.logger.removeFilter(self.filter)


_COMPILE_NOTICE = None


def _announce_compilation():
    """Print one notice when numba starts compiling (a cold cache); nothing on a warm one.

    numba fires ``numba:compile`` only for functions it has to compile, not for those it
    loads from its cache.
    """
    global _COMPILE_NOTICE
    if _QUIET or _COMPILE_NOTICE is not None:
        return
    try:
        from numba.core import event
    except ImportError:  # pragma: no cover - numba without the event API
        return

    class _Notice(event.Listener):
        said = False

        def on_start(self, ev):
            if not self.said:
                self.said = True
                _note("compiling the numerical kernels for their first use (about 1-3 minutes "
                      "on 2 cores; they are cached, later runs start at once)")

        def on_end(self, ev):
            pass

    _COMPILE_NOTICE = _Notice()
    event.register("numba:compile", _COMPILE_NOTICE)


# ----------------------------------------------------------------------------- helpers
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
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(p, f"not a readable run configuration ({exc})") from None


def _load_data(spec, model_path, model, skipped):
    """Data for evaluate/plot: ``--data`` (.npy/.npz/.csv/.txt/.toml) or the run's config.

    Returns ``(X, data_spec)``; appends to ``skipped`` why there is no data, if so.
    """
    if spec is None:
        run_cfg = _run_config(model_path)
        if run_cfg is None:
            skipped.append(f"no data: there is no {CONFIG_FILE} beside {model_path} and no "
                           "--data was given")
            return None, None
        data_spec = run_cfg.get("data", {})
        X = cfgmod.build_data(data_spec)
        source = f"the data of {Path(model_path).with_name(CONFIG_FILE)}"
    else:
        path = Path(spec)
        if path.suffix == ".toml":
            data_spec = cfgmod.load_config(path)["data"]
            X = cfgmod.build_data(data_spec)
        else:
            data_spec = None
            X = datafiles.read_data_file(path)
        source = str(path)
    d = model.n_features_in_
    if X.shape[1] != d:
        raise InputFileError(source, f"has {X.shape[1]} columns", f"{d}, the model's features")
    return X, data_spec


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


def _likelihood(model, X, seed):
    """``ln Z`` (quadrature for d <= 2, else AIS) with its error, and the NLL of ``X``.

    ``nll_err`` is the error that ``ln Z`` adds (the same for every row); ``nll_sem`` the
    standard error of the mean over the rows.
    """
    log_z, err = model.log_partition(random_state=seed)
    out = {"log_z": log_z, "log_z_err": err}
    if model.n_features_in_ > 2:
        out["entropy"], out["entropy_err"] = model.entropy(random_state=seed)
    if X is not None:
        ll = model.score_samples(X, random_state=seed)
        out["nll"] = float(-np.mean(ll))
        out["nll_err"] = err
        out["nll_sem"] = float(np.std(ll) / np.sqrt(len(ll))) if np.all(np.isfinite(ll)) \
            else float("inf")
    return out


def _digit_split(X):
    """``(train, heldout)`` if ``X`` are shipped digit images: the rows of the 1797 not in X."""
    if X is None or X.ndim != 2 or X.shape[1] != 64:
        return None
    from mme_numba.datasets import digits

    all_digits, _ = digits()
    known = {row.tobytes() for row in all_digits}
    if not all(row.tobytes() in known for row in np.asarray(X, dtype=np.float64)):
        return None
    used = {row.tobytes() for row in np.asarray(X, dtype=np.float64)}
    heldout = np.array([row for row in all_digits if row.tobytes() not in used])
    return (X, heldout) if len(heldout) >= 20 else None


def _judge(samples, X):
    """The independent digit judge's numbers (mme_numba.judge) for a model of shipped digits."""
    split = _digit_split(X)
    if split is None:
        return None
    try:
        from mme_numba.judge import digit_judge
        return digit_judge().report(samples, *split)
    except ImportError:
        return None


def _judge_skip(model, X):
    """Why the digit judge is left out of evaluate, or None."""
    if model.n_features_in_ != 64:
        return None
    if _digit_split(X) is None:
        return ("digit judge skipped: the data are not images of the shipped digits (its "
                "held-out yardstick is the digits the model did not see)")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "digit judge skipped: it needs scikit-learn (pip install 'mme_numba[bench]')"
    return None


def _quality_skips(model, X, data_spec):
    """Why evaluate leaves numbers out, one reason each."""
    d = model.n_features_in_
    if d > 2:
        judge = _judge_skip(model, X)
        return [f"KL skipped: quadrature needs d <= 2, the model has d = {d}; ln Z, the "
                f"entropy and the NLL come from annealed importance sampling"] + (
                    [judge] if judge else [])
    notes = []
    if X is None:
        notes.append("chi2 and cross-entropy skipped: no data")
    if data_spec is None or cfgmod.true_logpdf(data_spec) is None:
        what = ("the data source has no known density" if data_spec is not None else
                "the data came from a file" if X is not None else "no data")
        notes.append(f"KL and true entropy skipped: {what}")
    if d == 1 and X is None:
        notes.append("mode-crossing threshold: 0 (no data median)")
    return notes


# ----------------------------------------------------------------------------- training
def _fit_accepts_auto(model):
    fit = type(model).fit
    import inspect

    p = inspect.signature(fit).parameters.get("epochs")
    return (p is not None and p.default == "auto") or '"auto"' in (fit.__doc__ or "")


def _resume_problems(saved_cfg, cfg, out):
    problems = []
    for table in ("data", "observables", "model"):
        old, new = saved_cfg.get(table, {}), cfg[table]
        for key in sorted(set(old) | set(new)):
            if old.get(key, "(unset)") != new.get(key, "(unset)"):
                problems.append(Problem(
                    f"cannot resume {out}: {new.get(key, '(unset)')!r} here, "
                    f"{old.get(key, '(unset)')!r} in its {CONFIG_FILE}", table, key,
                    "the run's value, or a new --out, or --overwrite"))
    return problems


def train_run(cfg, out, resume=False, overwrite=False, progress=False, config_file=None,
              comm=None):
    """Train (or resume) the experiment ``cfg`` into folder ``out``.

    Everything that can be checked before training is checked first (the configuration
    against the data, the run folder, a resumed run's configuration and epochs), so a
    mistake costs no kernel compilation.

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
    config_file : path-like, optional
        Named in error messages.
    comm : mpi4py communicator, optional
        Split the chains across its ranks (:mod:`mme_numba.parallel`); only rank 0 writes.

    Returns
    -------
    model : the trained model
    X : ndarray, the training data
    seconds : float, wall time of this call's training

    Raises
    ------
    mme_numba.config.ConfigError, mme_numba.datafiles.InputFileError, UsageError
        Before anything is written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputFileError(out, "is a file", "an output folder")
    X, fresh = cfgmod.build_experiment(cfg, file=config_file)
    ckpt, metrics = out / MODEL_FILE, out / METRICS_FILE
    total = cfg["train"].get("epochs")
    if total is None:
        total = type(fresh).default_epochs
    if total == "auto" and not _fit_accepts_auto(fresh):
        raise ConfigError([Problem('"auto" is not supported by this version\'s estimators',
                                   "train", "epochs", "an integer >= 1")], file=config_file)
    every = int(cfg["train"]["checkpoint_every"])
    resuming = resume and ckpt.exists()
    if resuming:
        meta = datafiles.check_model_file(ckpt)
        saved_cfg = _run_config(ckpt)
        if saved_cfg is not None:
            problems = _resume_problems(saved_cfg, cfg, out)
            if problems:
                raise ConfigError(problems, file=config_file)
        done = int(meta.get("epoch", 0))
        if total != "auto" and int(total) < done:
            raise ConfigError([Problem(f"{total} is fewer than the {done} epochs {ckpt} has "
                                       "done", "train", "epochs",
                                       f">= {done}, or --overwrite to start again")],
                              file=config_file)
    elif ckpt.exists() and not overwrite:
        raise UsageError(f"{ckpt} exists; pass --resume to continue it or --overwrite to "
                         "start again")

    from mme_numba import parallel

    root = parallel.is_root(comm)
    if root:
        out.mkdir(parents=True, exist_ok=True)
    _announce_compilation()
    if resuming:
        model = datafiles.load_model(ckpt)
        if comm is not None:
            model.set_params(comm=comm)
        n = _truncate_metrics(metrics, model.epoch_) if root else 0
        logger.info("resuming %s at epoch %d (%d metric lines kept)", ckpt, model.epoch_, n)
    else:
        model = fresh
        if comm is not None:
            model.set_params(comm=comm)
        if root:
            metrics.write_text("")
    if root:
        _write_json(out / CONFIG_FILE, cfg)
    if comm is not None:
        comm.Barrier()    # the folder exists before any rank goes on
    remaining = "auto" if total == "auto" else int(total) - getattr(model, "epoch_", 0)

    eval_every = int(cfg["train"].get("eval_every", 0))
    true_logpdf = None
    if eval_every and X.shape[1] <= 2:
        lo, hi = cfgmod.model_kwargs(cfg["model"])[1]["support"]
        d = X.shape[1]
        true_logpdf = _true_logpdf(cfg["data"], np.broadcast_to(lo, d), np.broadcast_to(hi, d))
    bar = None
    if progress and remaining:
        bar = _progress_bar(None if remaining == "auto" else remaining, f"train {out.name}")
    fh = open(metrics, "a") if root else open(os.devnull, "w")

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
    """history.png and density.png (d <= 2) or samples.png (square images).

    Returns
    -------
    written : list of Path
    skipped : list of str
        What was left out, and why.
    """
    from mme_numba import plotting
    from mme_numba.testing import seeded_copy

    out = Path(out)
    written, skipped = [], []
    if model.history_:
        plotting.plot_history(model, path=out / "history.png")
        written.append(out / "history.png")
    else:
        skipped.append("history.png skipped: the model has no training history")
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
    elif d <= 2:
        skipped.append("density.png skipped: no data to draw it against")
    elif math.isqrt(d) ** 2 == d:
        side = math.isqrt(d)
        xs = seeded_copy(model, 0).sample(n_images)
        lo, hi = model.support_
        plotting.plot_image_grid(xs, shape=(side, side), vmin=float(lo.min()),
                                 vmax=float(hi.max()), path=out / "samples.png")
        written.append(out / "samples.png")
    else:
        skipped.append(f"density.png and samples.png skipped: d = {d} is neither <= 2 nor a "
                       "square image")
    return written, skipped


def _train_overrides(args):
    """``--set`` strings, then the explicit flags (which win)."""
    overrides = list(args.set or [])
    if getattr(args, "epochs", None) is not None:
        overrides.append(f"train.epochs={json.dumps(args.epochs)}")
    if getattr(args, "checkpoint_every", None) is not None:
        overrides.append(f"train.checkpoint_every={args.checkpoint_every}")
    if getattr(args, "out", None) is not None and args.command == "train":
        overrides.append(f"train.out={json.dumps(str(args.out))}")
    return overrides


def _cmd_train(args):
    cfg = cfgmod.load_config(args.config, _train_overrides(args))
    out = Path(cfg["train"]["out"])
    model, X, seconds = train_run(cfg, out, resume=args.resume, overwrite=args.overwrite,
                                  progress=_want_progress(args), config_file=args.config)
    plots = []
    if not args.no_plots:
        plots, skipped = _write_plots(model, X, out, _true_logpdf(cfg["data"], *model.support_))
        for text in skipped:
            _note(text)
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


def _cmd_check(args):
    cfg, X, model = cfgmod.check_config(args.config, args.set or [])
    obs = cfg["observables"]
    epochs = cfg["train"].get("epochs") or f"{type(model).default_epochs} (default)"
    _echo(f"{args.config}: ok: {type(model).__name__} on {X.shape[0]} rows x {X.shape[1]} "
          f"features, {obs['kind']} observables, {epochs} epochs into {cfg['train']['out']}")
    return 0


# ----------------------------------------------------------------------------- sweeps
def _cmd_sweep(args):
    from mme_numba import sweeps

    sweep = sweeps.load_sweep(args.config, args.set or [])
    if args.list:
        print(sweep.n_tasks)
        if args.verbose_top + args.verbose_sub:
            for k in range(sweep.n_tasks):
                _note(f"task {k}: {json.dumps(sweep.params(k))} -> {sweep.task_dir(k)}")
        return 0
    task = args.task_id
    if task is None:
        try:
            task = sweeps.task_id_from_env()
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if task is None:
        raise UsageError(f"give --task-id K (0 <= K < {sweep.n_tasks}) or set "
                         f"${sweeps.TASK_ENV}; --list prints the number of tasks")
    if not 0 <= task < sweep.n_tasks:
        raise UsageError(f"task id {task} is outside the grid of {args.config}: 0 to "
                         f"{sweep.n_tasks - 1}")
    result = sweeps.run_task(sweep, task, overwrite=args.overwrite,
                             progress=_want_progress(args))
    if not result.get("root", True):
        return 0                       # one report per task, from MPI rank 0
    if result.get("skipped"):
        _echo(f"task {task}: already finished ({sweep.task_dir(task) / sweeps.RESULT_FILE})")
    else:
        _echo(f"task {task}: {json.dumps(sweep.params(task))} trained to epoch "
              f"{result['epochs']} in {result['wall_s']:.1f} s -> {sweep.task_dir(task)}")
    return 0


def _cmd_gather(args):
    from mme_numba import sweeps

    rows, unfinished, path = sweeps.gather(args.dir, args.output)
    _echo(f"{len(rows)} finished task(s) -> {path}")
    if unfinished:
        _note(f"unfinished: {', '.join(f'task-{k}' for k in unfinished)}")
    return 0


# ----------------------------------------------------------------------------- sample
def _cmd_sample(args):
    from mme_numba.testing import seeded_copy

    out = Path(args.output)
    datafiles.sample_format(out)
    model = datafiles.load_model(args.model)
    _announce_compilation()
    source = model if args.seed is None else seeded_copy(model, args.seed)
    xs = source.sample(args.n, sweeps=args.sweeps)
    datafiles.write_samples(out, xs)
    _echo(f"wrote {xs.shape[0]} samples of dimension {xs.shape[1]} to {out}")
    return 0


# ----------------------------------------------------------------------------- steer
#: versioned by how ``fields.train_classifier`` trains by default: v2 = adversarial training
#: with label smoothing (issue 14). A new name keeps classifiers cached by an older default
#: (plain cross-entropy) from being reused.
CLASSIFIER_FILE = "digits_classifier_v2.npz"


def _user_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mme_numba"


def classifier_cache(model_path):
    """Where ``steer --classifier digits`` keeps its classifier for the model ``model_path``.

    The model's run folder when it holds the file or can be written to, else the user cache
    directory (``$XDG_CACHE_HOME/mme_numba``, default ``~/.cache/mme_numba``); reused by every
    later ``steer`` of the same run, whatever the output folder.
    """
    run_dir = Path(model_path).resolve().parent
    candidates = [run_dir / CLASSIFIER_FILE, _user_cache_dir() / CLASSIFIER_FILE]
    for path in candidates:
        if path.exists():
            return path
    if os.access(run_dir, os.W_OK):
        return candidates[0]
    return candidates[1]


def _steering_classifier(spec, model, model_path):
    """A classifier from a saved network file, or ``digits``: train one on the shipped digits."""
    import mme_numba as mme
    from mme_numba import fields
    from mme_numba.io import load_network, save_network

    if spec != "digits":
        try:
            return load_network(spec)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise InputFileError(spec, f"not a usable classifier network: {exc}") from None
    if model.n_features_in_ != 64:
        raise UsageError(f"--classifier digits needs a model of 8x8 images (64 features); "
                         f"{model_path} has {model.n_features_in_}")
    cached = classifier_cache(model_path)
    if cached.exists():
        logger.info("reusing the digits classifier %s", cached)
        return load_network(cached)
    X, y = mme.datasets.digits()
    _note(f"training a digits classifier on the shipped labelled images (once; kept in "
          f"{cached})")
    net = fields.train_classifier(mme.nn.classifier_cnn(10), X, y, epochs=30, random_state=0)
    cached.parent.mkdir(parents=True, exist_ok=True)
    save_network(net, cached)
    return net


def _cmd_steer(args):
    from mme_numba import fields

    out = Path(args.output)
    datafiles.sample_format(out)
    if args.classifier != "digits":
        datafiles.check_readable(args.classifier, "classifier file")
    if args.save_model:
        datafiles.sample_format(Path(args.save_model).with_suffix(".npz"))  # folder exists
    model = datafiles.load_model(args.model)
    clf = _steering_classifier(args.classifier, model, args.model)
    try:
        field = fields.ClassifierField(clf, args.target)
        steered = model.with_field(field, strength=args.strength, base=not args.field_only,
                                   random_state=args.seed)
    except ValueError as exc:
        raise UsageError(f"--target {args.target} / --classifier {args.classifier}: "
                         f"{exc}") from None
    _announce_compilation()
    xs = steered.sample(args.n, sweeps=args.sweeps)
    datafiles.write_samples(out, xs)
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
    report.update(_likelihood(model, X, seed))
    judged = _judge(xs, X)
    if judged is not None:
        report["judge"] = judged
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
            if key == "entropy" and "entropy_err" in rep:
                rows[-1] = (label, f"{rep[key]:.5g} ± {rep['entropy_err']:.2g}")
    if "log_z" in rep:
        rows.append(("ln Z", f"{rep['log_z']:.6g} ± {rep['log_z_err']:.2g}"))
    if "nll" in rep:
        rows.append(("NLL -<ln p>_data (nats)", f"{rep['nll']:.5g} ± {rep['nll_err']:.2g} "
                     f"(ln Z) ± {rep['nll_sem']:.2g} (rows)"))
    if "judge" in rep:
        j = rep["judge"]
        rows += [("judge: top-class probability", j["top_class_probability"]),
                 ("judge: digits at >= 5 % of samples", j["classes_at_5pct"]),
                 ("judge: nearest-neighbour ratio", j["nn_ratio"]),
                 ("judge: two-sample accuracy (0.5 ideal)", j["two_sample_accuracy"])]
    rows.append(("mixed", "yes" if e["mixed"] else "NO"))
    width = max(len(k) for k, _ in rows)
    lines = []
    for k, v in rows:
        v = "-" if v is None else (f"{v:.5g}" if isinstance(v, float) else str(v))
        lines.append(f"{k:<{width}}  {v}")
    lines += [f"warning: {w}" for w in e["warnings"]]
    return "\n".join(lines)


def _cmd_evaluate(args):
    if args.json:
        _check_output_folder(args.json, "--json")
    model = datafiles.load_model(args.model)
    skipped = []
    X, data_spec = _load_data(args.data, args.model, model, skipped)
    skipped += _quality_skips(model, X, data_spec)
    _announce_compilation()
    # The report's table prints the mixing warnings; logging them as well said each twice.
    with _drop_warnings_of("mme_numba.diagnostics"):
        rep = evaluate_model(model, X, data_spec, steps=args.steps, seed=args.seed,
                             progress=_want_progress(args))
    for text in dict.fromkeys(skipped):
        _note(text)
    _echo(_format_report(rep))
    if args.json:
        _write_json(args.json, rep)
        _echo(f"wrote {args.json}")
    return 1 if args.strict and not rep["energy"]["mixed"] else 0


def _check_output_folder(path, option):
    folder = Path(path).parent
    if not folder.is_dir():
        raise InputFileError(path, f"folder {folder} does not exist", f"{option} in an "
                             "existing folder")


# ----------------------------------------------------------------------------- plot
def _cmd_plot(args):
    out = Path(args.out) if args.out else Path(args.model).parent
    if out.exists() and not out.is_dir():
        raise InputFileError(out, "is a file", "a folder for the figures")
    model = datafiles.load_model(args.model)
    skipped = []
    X, data_spec = _load_data(args.data, args.model, model, skipped)
    out.mkdir(parents=True, exist_ok=True)
    _announce_compilation()
    written, more = _write_plots(model, X, out, _true_logpdf(data_spec, *model.support_),
                                 args.n_images)
    if model.n_features_in_ == 1 and X is not None and (
            data_spec is None or cfgmod.true_logpdf(data_spec) is None):
        more.append("density.png has no true-density curve: the data source has no known "
                    "density")
    for text in dict.fromkeys(skipped + more):
        _note(text)
    for p in written:
        _echo(f"wrote {p}")
    return 0


# ----------------------------------------------------------------------------- demo
def _cmd_demo(args):
    try:
        cfg = cfgmod.apply_overrides(DEMO_CONFIG, _train_overrides(args))
    except ValueError as exc:
        raise ConfigError([Problem(f"--set: {exc}")], file="demo") from None
    cfgmod.validate_config(cfg, file="demo")
    cfg["train"] = {**cfgmod.DEFAULTS["train"], **cfg["train"]}
    out = Path(args.out)
    _echo("Min-MaxEnt demo: 1000 points from 0.5 N(-2, 0.5²) + 0.5 N(2, 0.5²), "
          f"MLP 1-32-32-2 observables, {cfg['train']['epochs']} epochs")
    model, X, seconds = train_run(cfg, out, overwrite=True, progress=_want_progress(args),
                                  config_file="demo")
    true_logpdf = _true_logpdf(cfg["data"], *model.support_)
    plots, _ = _write_plots(model, X, out, true_logpdf)
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
class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one ``error:`` line (exit 2) pointing at ``--help``."""

    def error(self, message):
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _int_at_least(lo):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer "
                                             f"(expected an integer >= {lo})") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"{value} is too small (expected an integer "
                                             f">= {lo})")
        return value
    return parse


def _epochs_arg(text):
    if text == "auto":
        return text
    try:
        return _int_at_least(1)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed (expected an integer >= 1 "
                                         'or "auto")') from None


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _add_verbosity(p, suffix):
    # Two destinations (before and after the subcommand) that main() adds up: argparse would
    # otherwise let the subcommand's default overwrite a '-v' given before it.
    p.add_argument("-v", "--verbose", action="count", default=0, dest=f"verbose{suffix}",
                   help="log INFO (-v) or DEBUG (-vv) messages and tracebacks to stderr")
    p.add_argument("-q", "--quiet", action="store_true", dest=f"quiet{suffix}",
                   help="only errors on stderr: no notes, warnings or progress bars")


def _add_common_train(p):
    p.add_argument("--epochs", type=_epochs_arg, metavar="N",
                   help='total epochs of the run, or "auto" (overrides train.epochs)')
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is shown only when stderr is a terminal)")
    p.add_argument("--set", action="append", metavar="TABLE.KEY=VALUE",
                   help="override a configuration value, parsed as TOML "
                        "(e.g. --set model.n_chains=256 --set model.move=single); repeatable")


def build_parser():
    """The argument parser of ``mme-numba`` (one subparser per command)."""
    from mme_numba import __version__

    parser = _Parser(
        prog="mme-numba",
        description="Min-MaxEnt generative models: train from a TOML config, sample, "
                    "steer, evaluate mixing and quality, plot, or run the demo.",
        epilog="Quick start: 'mme-numba demo'. Help on a command: 'mme-numba train --help'. "
               "Exit status: 0 done, 1 failed while running, 2 a usage, configuration or "
               "input-file error.")
    parser.add_argument("--version", action="version", version=f"mme-numba {__version__}")
    _add_verbosity(parser, "_top")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _Parser(add_help=False)
    _add_verbosity(common, "_sub")

    def command(name, **kw):
        return sub.add_parser(name, parents=[common], **kw)

    p = command("train", help="train a model from a TOML configuration",
                description="Train a model from CONFIG.toml into an output folder "
                            "(model.npz checkpoint, metrics.jsonl, figures). "
                            "Checkpoints are atomic; --resume continues bit-identically, "
                            "also after the process was killed. The configuration is "
                            "validated completely before anything runs.")
    p.add_argument("config", help="configuration file, e.g. examples/configs/bimodal.toml")
    p.add_argument("--out", help="output folder (overrides train.out; default runs/<stem>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/model.npz if it exists, up to the total --epochs")
    p.add_argument("--overwrite", action="store_true", help="start again even if OUT holds a run")
    p.add_argument("--checkpoint-every", type=_int_at_least(1), metavar="N",
                   help="epochs between checkpoints (overrides train.checkpoint_every)")
    p.add_argument("--no-plots", action="store_true", help="do not write figures at the end")
    _add_common_train(p)
    p.set_defaults(func=_cmd_train)

    p = command("check", help="validate a configuration without training",
                description="Check CONFIG.toml completely (every table and key, the data "
                            "and observables it builds, the support against the data) and "
                            "list every problem; nothing is trained or written.")
    p.add_argument("config", help="configuration file")
    p.add_argument("--set", action="append", metavar="TABLE.KEY=VALUE",
                   help="override a configuration value, as for train; repeatable")
    p.set_defaults(func=_cmd_check)

    formats = ", ".join(datafiles.SAMPLE_FORMATS)
    p = command("sample", help="draw samples from a trained model",
                description="Draw N samples from MODEL.npz's persistent chains into the file "
                            f"-o names, in the format of its extension ({formats}). The "
                            "model file is not modified.")
    p.add_argument("model", help="a saved model (.npz)")
    p.add_argument("-n", type=_int_at_least(1), required=True, help="number of samples")
    p.add_argument("-o", "--output", required=True, help=f"output file: {formats}")
    p.add_argument("--sweeps", type=_int_at_least(1),
                   help="sweeps between draws (default: the model's)")
    p.add_argument("--seed", type=_int_at_least(0),
                   help="run the chains on a fresh random stream from this seed (default: "
                        "continue the saved stream)")
    p.set_defaults(func=_cmd_sample)

    p = command("steer", help="sample a trained model steered by a classifier field",
                description="Sample from H(x) - h ln P_clf(target | x) without "
                            "retraining the model (paper Eq. 22-23). The classifier is a "
                            "network saved with mme_numba.io.save_network, or 'digits' "
                            "to train one on the shipped labelled digits (once; kept in the "
                            "model's run folder, or the user cache directory). --field-only "
                            "switches the model's energy off (the paper's control: samples "
                            "drift to noise).")
    p.add_argument("model", help="a saved model (.npz)")
    p.add_argument("--classifier", required=True,
                   help="saved classifier network (.npz) ending in LogSoftmax, or 'digits'")
    p.add_argument("--target", type=_int_at_least(0), required=True, help="class to favour")
    p.add_argument("--strength", type=_finite_float, default=20.0,
                   help="field strength h (default 20: with the default adversarially trained "
                        "classifier, >= 86 %% of samples are the target for every digit under "
                        "an independent judge; docs/results.md, Steering)")
    p.add_argument("--field-only", action="store_true", help="switch the model's energy off")
    p.add_argument("-n", type=_int_at_least(1), required=True, help="number of samples")
    p.add_argument("-o", "--output", required=True, help=f"output file: {formats}")
    p.add_argument("--sweeps", type=_int_at_least(1),
                   help="sweeps between draws (default: the model's)")
    p.add_argument("--seed", type=_int_at_least(0), help="seed of the steered chains' streams")
    p.add_argument("--save-model", metavar="PATH", help="also save the steered model")
    p.set_defaults(func=_cmd_steer)

    p = command("evaluate", help="mixing diagnostics and quality numbers",
                description="Run the chains --steps sweeps and report acceptance, the "
                            "integrated autocorrelation time and ESS of the energy per "
                            "chain, split-R-hat, chi2 (Eq. 5), ln Z and the entropy "
                            "(quadrature for d <= 2, annealed importance sampling above), "
                            "the data's NLL with its error bar (give held-out data with "
                            "--data) and, for d <= 2, cross-entropy and KL to the true "
                            "density where known. "
                            "Warns when the chains have not mixed; notes what it skips.")
    p.add_argument("model", help="a saved model (.npz)")
    p.add_argument("--data", help="data: .npy/.npz/.csv/.txt file or a .toml config (default: "
                                  "the config.json saved beside the model)")
    p.add_argument("--steps", type=_int_at_least(2), default=200,
                   help="sweeps recorded (default 200)")
    p.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="seed of the evaluation chains")
    p.add_argument("--json", metavar="PATH", help="also write the full report as JSON")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if not mixed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)

    p = command("plot", help="figures for a trained model",
                description="Write history.png and density.png (d <= 2) or samples.png "
                            "(square images) for MODEL.npz; notes what it skips.")
    p.add_argument("model", help="a saved model (.npz)")
    p.add_argument("--data", help="data as for evaluate")
    p.add_argument("--out", help="folder for the figures (default: beside the model)")
    p.add_argument("--n-images", type=_int_at_least(1), default=64,
                   help="images in samples.png")
    p.set_defaults(func=_cmd_plot)

    p = command("sweep", help="list or run one task of a configuration's [sweep] grid",
                description="The [sweep] table of CONFIG spans a grid (the Cartesian "
                            "product of its lists, e.g. seed = [0, 1]). --list prints the "
                            "number of tasks; --task-id K (default $SLURM_ARRAY_TASK_ID) "
                            "trains task K into OUT/task-K/, resuming from its checkpoint "
                            "when run again. Under srun/mpiexec with several ranks the "
                            "chains are split across them. See examples/sbatch_sweep.sh.")
    p.add_argument("config", help="configuration file with a [sweep] table")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--list", action="store_true", help="print the number of tasks (with "
                                                           "-v: each task's values on stderr)")
    what.add_argument("--task-id", type=_int_at_least(0), metavar="K",
                      help="the task to run (default: $SLURM_ARRAY_TASK_ID)")
    p.add_argument("--overwrite", action="store_true",
                   help="train the task again from scratch even if it holds a run")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is shown only when stderr is a terminal)")
    p.add_argument("--set", action="append", metavar="TABLE.KEY=VALUE",
                   help="override a base configuration value, as for train; repeatable")
    p.set_defaults(func=_cmd_sweep)

    p = command("gather", help="collect the results of a sweep into a CSV",
                description="One CSV row per finished task of the sweep in DIR (its grid "
                            "values, epochs, final chi2, entropy and KL where known, wall "
                            "time); tasks not finished are named on stderr.")
    p.add_argument("dir", help="the sweep folder (train.out of the configuration)")
    p.add_argument("-o", "--output", help="CSV file (default DIR/results.csv)")
    p.set_defaults(func=_cmd_gather)

    p = command("demo", help="train the bimodal example and write figures",
                description="The README's main job: fit a Min-MaxEnt model to 1000 "
                            "points of a bimodal Gaussian mixture (a minute or two on "
                            "2 cores) and write OUT/density.png, OUT/history.png and "
                            "OUT/model.npz; prints KL to the true density.")
    p.add_argument("--out", default="mme_demo", help="output folder (default mme_demo)")
    _add_common_train(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def _describe(exc):
    """One line for an unexpected failure."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    lines = str(exc).strip().splitlines()
    if isinstance(exc, (ValueError, TypeError, RuntimeError)) and lines:
        return lines[0]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def main(argv=None):
    """Entry point of the ``mme-numba`` console script; returns the exit status."""
    global _QUIET
    args = build_parser().parse_args(argv)
    verbose = args.verbose_top + args.verbose_sub
    _QUIET = bool(args.quiet_top or args.quiet_sub) and not verbose
    level = logging.ERROR if _QUIET else {0: logging.WARNING, 1: logging.INFO}.get(
        verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _Once) for f in handler.filters):
            handler.addFilter(_Once())
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _echo("interrupted; a training run continues with --resume")
        return 130
    except ConfigError as exc:
        if verbose:
            traceback.print_exc()
        for problem in exc.problems:
            _error(problem)
        return 2
    except (InputFileError, UsageError) as exc:
        if verbose:
            traceback.print_exc()
        _error(exc)
        return 2
    except Exception as exc:  # a failure while running: one line, the traceback with -v
        if verbose:
            traceback.print_exc()
        _error(_describe(exc) + ("" if verbose else " (run with -v for the traceback)"))
        return 1


if __name__ == "__main__":
    sys.exit(main())
