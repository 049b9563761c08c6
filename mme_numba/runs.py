"""Training runs from a configuration, and what is reported about a trained model.

The library side of the ``mme-numba`` command line (:mod:`mme_numba.cli` only parses
arguments and prints): :func:`train_run` trains or resumes a configured experiment into a
run folder, :func:`write_plots` draws its figures, :func:`evaluate_model` measures mixing
and quality, :func:`steering_classifier` finds or trains the classifier of ``steer``,
:func:`demo_summary` the numbers of ``demo``. Nothing here prints: notices go to
``logging`` or to a ``notify`` callable.
"""

import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from . import config as cfgmod
from . import datafiles
from .config import ConfigError, Problem
from .datafiles import InputFileError
from .progress import progress_bar

logger = logging.getLogger(__name__)

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



def json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def write_json(path, obj):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=json_default) + "\n")
    tmp.replace(path)


def read_metrics(path):
    """Parsed lines of a metrics log; a torn last line (killed mid-write) is dropped."""
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


def truncate_metrics(path, epoch):
    """Keep only the metrics lines of epochs ``<= epoch`` (those the checkpoint holds)."""
    kept = [r for r in read_metrics(path) if r.get("epoch", 0) <= epoch]
    tmp = Path(str(path) + ".tmp")
    tmp.write_text("".join(json.dumps(r, default=json_default) + "\n" for r in kept))
    tmp.replace(path)
    return len(kept)


def run_config(model_path):
    """The ``config.json`` saved beside a model by ``train``, or None."""
    p = Path(model_path).with_name(CONFIG_FILE)
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(p, f"not a readable run configuration ({exc})") from None


def load_data(spec, model_path, model, skipped):
    """Data for evaluate/plot: ``--data`` (.npy/.npz/.csv/.txt/.toml) or the run's config.

    Returns ``(X, data_spec)``; appends to ``skipped`` why there is no data, if so.
    """
    if spec is None:
        run_cfg = run_config(model_path)
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


def true_logpdf_of(data_spec, lo, hi):
    """The exact density of a synthetic data source truncated to the box, or None (d > 2)."""
    from mme_numba.datasets import truncated_logpdf

    lo, hi = np.atleast_1d(lo), np.atleast_1d(hi)
    logpdf = None if data_spec is None else cfgmod.true_logpdf(data_spec)
    if logpdf is None or len(lo) > 2:
        return None
    return truncated_logpdf(logpdf, lo, hi, n_grid=4001 if len(lo) == 1 else 401)


def _quad_grid(model):
    return 4001 if model.n_features_in_ == 1 else 201


def quality(model, X, true_logpdf, with_true_entropy=True):
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


def likelihood(model, X, seed):
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


def digit_split(X):
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


def judge(samples, X):
    """The independent digit judge's numbers (mme_numba.judge) for a model of shipped digits."""
    split = digit_split(X)
    if split is None:
        return None
    try:
        from mme_numba.judge import digit_judge
        return digit_judge().report(samples, *split)
    except ImportError:
        return None


def judge_skip(model, X):
    """Why the digit judge is left out of evaluate, or None."""
    if model.n_features_in_ != 64:
        return None
    if digit_split(X) is None:
        return ("digit judge skipped: the data are not images of the shipped digits (its "
                "held-out yardstick is the digits the model did not see)")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "digit judge skipped: it needs scikit-learn (pip install 'mme_numba[bench]')"
    return None


def quality_skips(model, X, data_spec):
    """Why evaluate leaves numbers out, one reason each."""
    d = model.n_features_in_
    if d > 2:
        judge = judge_skip(model, X)
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


def resume_problems(saved_cfg, cfg, out):
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
        saved_cfg = run_config(ckpt)
        if saved_cfg is not None:
            problems = resume_problems(saved_cfg, cfg, out)
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
    if resuming:
        model = datafiles.load_model(ckpt)
        if comm is not None:
            model.set_params(comm=comm)
        n = truncate_metrics(metrics, model.epoch_) if root else 0
        logger.info("resuming %s at epoch %d (%d metric lines kept)", ckpt, model.epoch_, n)
    else:
        model = fresh
        if comm is not None:
            model.set_params(comm=comm)
        if root:
            metrics.write_text("")
    if root:
        write_json(out / CONFIG_FILE, cfg)
    if comm is not None:
        comm.Barrier()    # the folder exists before any rank goes on
    remaining = "auto" if total == "auto" else int(total) - getattr(model, "epoch_", 0)

    eval_every = int(cfg["train"].get("eval_every", 0))
    true_logpdf = None
    if eval_every and X.shape[1] <= 2:
        lo, hi = cfgmod.model_kwargs(cfg["model"])[1]["support"]
        d = X.shape[1]
        true_logpdf = true_logpdf_of(cfg["data"], np.broadcast_to(lo, d), np.broadcast_to(hi, d))
    bar = None
    if progress and remaining:
        bar = progress_bar(None if remaining == "auto" else remaining, True,
                           f"train {out.name}", unit="epoch", leave=True)
    fh = open(metrics, "a") if root else open(os.devnull, "w")

    def callback(model, record):
        if eval_every and model.n_features_in_ <= 2 and model.epoch_ % eval_every == 0:
            # Deterministic quadrature: adds keys to the history without touching any RNG,
            # so resumed runs stay bit-identical.
            record.update(quality(model, None, true_logpdf, with_true_entropy=False))
        fh.write(json.dumps(record, default=json_default) + "\n")
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


def write_plots(model, X, out, true_logpdf=None, n_images=64):
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


#: The built-in classifiers of ``steer --classifier``: ``digits`` (the default for a digits
#: model) is trained on the shipped digits plus an 11th "not a digit" class of the model's own
#: samples (``fields.train_classifier(..., negatives=model)``), so it depends on the model;
#: ``digits-plain`` is the 10-class default of ``train_classifier``, the same for every model.
BUILTIN_CLASSIFIERS = ("digits", "digits-plain")

#: Cache file of ``--classifier digits``, per model (``{model}``: a hash of the model file's
#: bytes) and versioned: v3 = 11 classes, the last 1024 model samples plus samples steered
#: by two 10-class classifiers (issue 14). v2 files (10 classes, any model) are never read as
#: one.
CLASSIFIER_FILE = "digits_classifier_v3-{model}.npz"
#: Cache file of ``--classifier digits-plain``, versioned by how ``train_classifier`` trains by
#: default: v2 = adversarial training with label smoothing (issue 14); a new name keeps
#: classifiers cached by an older default (plain cross-entropy) from being reused.
PLAIN_CLASSIFIER_FILE = "digits_classifier_v2.npz"
#: Model samples in the "not a digit" class of ``--classifier digits``.
CLASSIFIER_NEGATIVES = 1024


def _user_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mme_numba"


def _file_key(path):
    """First 16 hex digits of the SHA-256 of the file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def classifier_cache(model_path, kind="digits"):
    """Where ``steer --classifier KIND`` keeps its classifier for the model ``model_path``.

    ``digits`` depends on the model: its file name carries a hash of the model file's bytes
    (a retrained or otherwise changed model gets a new classifier). ``digits-plain`` is the same
    for every model. The model's run folder when it holds the file or can be written to, else
    the user cache directory (``$XDG_CACHE_HOME/mme_numba``, default ``~/.cache/mme_numba``);
    reused by every later ``steer`` of the same model, whatever the output folder.
    """
    if kind not in BUILTIN_CLASSIFIERS:
        raise ValueError(f"kind must be one of {BUILTIN_CLASSIFIERS}, got {kind!r}")
    name = (CLASSIFIER_FILE.format(model=_file_key(model_path)) if kind == "digits"
            else PLAIN_CLASSIFIER_FILE)
    run_dir = Path(model_path).resolve().parent
    candidates = [run_dir / name, _user_cache_dir() / name]
    for path in candidates:
        if path.exists():
            return path
    if os.access(run_dir, os.W_OK):
        return candidates[0]
    return candidates[1]


def steering_classifier(spec, model, model_path, notify=logger.info):
    """A classifier from a saved network file, or a built-in one (:data:`BUILTIN_CLASSIFIERS`)
    trained on the shipped digits, once, then cached (``notify`` is told when it is trained).

    ``digits``: ``classifier_cnn(11)`` by ``fields.refined_classifier(..., rounds=0,
    steer_by=(plain, robust))``: the 11th class holds :data:`CLASSIFIER_NEGATIVES` samples of
    ``model`` and, per digit, 64 samples of ``model`` steered at h = 5 by a plain
    cross-entropy and by the ``digits-plain`` classifier (benchmarks/steering.py
    ``--classifier model+steered``); ``digits-plain``: ``classifier_cnn(10)`` by the defaults
    of ``train_classifier``.
    """
    import mme_numba as mme
    from mme_numba import fields
    from mme_numba.io import load_network, save_network

    if spec not in BUILTIN_CLASSIFIERS:
        try:
            return load_network(spec)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise InputFileError(spec, f"not a usable classifier network: {exc}") from None
    if model.n_features_in_ != 64:
        raise UsageError(f"--classifier {spec} needs a model of 8x8 images (64 features); "
                         f"{model_path} has {model.n_features_in_}")
    cached = classifier_cache(model_path, spec)
    if cached.exists():
        logger.info("reusing the digits classifier %s", cached)
        return load_network(cached)
    X, y = mme.datasets.digits()
    if spec == "digits":
        notify(f"training a digits classifier on the shipped labelled images, "
               f"{CLASSIFIER_NEGATIVES} samples of this model and samples steered by two "
               f"10-class classifiers (once for this model file, several minutes; kept in "
               f"{cached})")
        plain = fields.train_classifier(mme.nn.classifier_cnn(10), X, y, epochs=30,
                                        random_state=0, adversarial=0.0, noise=0.0,
                                        label_smoothing=0.0)
        robust = steering_classifier("digits-plain", model, model_path, notify)
        net = fields.refined_classifier(mme.nn.classifier_cnn(11), model, X, y, rounds=0,
                                        epochs=30, random_state=0,
                                        n_negatives=CLASSIFIER_NEGATIVES,
                                        steer_by=(plain, robust))
    else:
        notify(f"training a digits classifier on the shipped labelled images (once; kept in "
               f"{cached})")
        net = fields.train_classifier(mme.nn.classifier_cnn(10), X, y, epochs=30,
                                      random_state=0)
    cached.parent.mkdir(parents=True, exist_ok=True)
    save_network(net, cached)
    return net


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
    bar = progress_bar(steps, progress, "evaluate", unit="sweep", leave=True)
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
    report.update(quality(model, X, true_logpdf_of(data_spec, *model.support_)))
    report.update(likelihood(model, X, seed))
    judged = judge(xs, X)
    if judged is not None:
        report["judge"] = judged
    if positions is not None:
        threshold = float(np.median(X)) if X is not None else 0.0
        report["mode_crossing_threshold"] = threshold
        report["mode_crossing_fraction"] = diagnostics.mode_crossing_fraction(positions,
                                                                              threshold)
    return report


def format_report(rep):
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


def demo_summary(model, X, data_spec):
    """The demo's numbers: KL and entropies by quadrature, and the mass on ``x > 0``."""
    from . import quadrature

    q = quality(model, X, true_logpdf_of(data_spec, *model.support_))
    nodes, weights = quadrature.simpson_weights(0.0, 6.0, 2001)
    q["mass_right"] = float(weights @ np.exp(model.log_density(nodes[:, None])))
    return q
