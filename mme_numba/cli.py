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
from mme_numba import datafiles, runs  # noqa: E402
from mme_numba.config import ConfigError, Problem  # noqa: E402
from mme_numba.datafiles import InputFileError  # noqa: E402
from mme_numba.runs import (DEMO_CONFIG, METRICS_FILE, MODEL_FILE, UsageError,  # noqa: E402
                            evaluate_model, train_run)

logger = logging.getLogger("mme_numba.cli")


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
    _announce_compilation()
    model, X, seconds = train_run(cfg, out, resume=args.resume, overwrite=args.overwrite,
                                  progress=_want_progress(args), config_file=args.config)
    plots = []
    if not args.no_plots:
        plots, skipped = runs.write_plots(model, X, out, runs.true_logpdf_of(cfg["data"], *model.support_))
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
    _announce_compilation()
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
def _cmd_steer(args):
    from mme_numba import fields

    out = Path(args.output)
    datafiles.sample_format(out)
    if args.classifier not in runs.BUILTIN_CLASSIFIERS:
        datafiles.check_readable(args.classifier, "classifier file")
    elif args.target > 9:  # class 10 of 'digits' is "not a digit"
        raise UsageError(f"--target {args.target}: --classifier {args.classifier} knows the "
                         f"digits 0-9")
    if args.save_model:
        datafiles.sample_format(Path(args.save_model).with_suffix(".npz"))  # folder exists
    model = datafiles.load_model(args.model)
    clf = runs.steering_classifier(args.classifier, model, args.model, _note)
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
def _cmd_evaluate(args):
    if args.json:
        _check_output_folder(args.json, "--json")
    model = datafiles.load_model(args.model)
    skipped = []
    X, data_spec = runs.load_data(args.data, args.model, model, skipped)
    skipped += runs.quality_skips(model, X, data_spec)
    _announce_compilation()
    # The report's table prints the mixing warnings; logging them as well said each twice.
    with _drop_warnings_of("mme_numba.diagnostics"):
        rep = evaluate_model(model, X, data_spec, steps=args.steps, seed=args.seed,
                             progress=_want_progress(args))
    for text in dict.fromkeys(skipped):
        _note(text)
    _echo(runs.format_report(rep))
    if args.json:
        runs.write_json(args.json, rep)
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
    X, data_spec = runs.load_data(args.data, args.model, model, skipped)
    out.mkdir(parents=True, exist_ok=True)
    _announce_compilation()
    written, more = runs.write_plots(model, X, out, runs.true_logpdf_of(data_spec, *model.support_),
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
    _announce_compilation()
    model, X, seconds = train_run(cfg, out, overwrite=True, progress=_want_progress(args),
                                  config_file="demo")
    plots, _ = runs.write_plots(model, X, out, runs.true_logpdf_of(cfg["data"], *model.support_))
    q = runs.demo_summary(model, X, cfg["data"])
    _echo(f"trained in {seconds:.1f} s; chi2 {model.history_[-1]['chi2']:.3g}")
    _echo(f"  KL(true || model)      {q['kl']:.4f} nats (by quadrature)")
    _echo(f"  entropy model / true   {q['entropy']:.4f} / {q['true_entropy']:.4f} nats")
    _echo(f"  mass on x > 0          {q['mass_right']:.3f} (true 0.500)")
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
    _add_no_progress(p)
    _add_set(p, "override a configuration value, parsed as TOML (e.g. --set "
                "model.n_chains=256 --set model.move=single); repeatable")


def _add_set(p, help="override a configuration value, as for train; repeatable"):
    p.add_argument("--set", action="append", metavar="TABLE.KEY=VALUE", help=help)


def _add_no_progress(p, help="no progress bar (it is shown only when stderr is a terminal)"):
    p.add_argument("--no-progress", action="store_true", help=help)


def _add_draws(p, formats):
    """-n, -o and --sweeps of the commands that write samples."""
    p.add_argument("-n", type=_int_at_least(1), required=True, help="number of samples")
    p.add_argument("-o", "--output", required=True, help=f"output file: {formats}")
    p.add_argument("--sweeps", type=_int_at_least(1),
                   help="sweeps between draws (default: the model's)")


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
    _add_set(p)
    p.set_defaults(func=_cmd_check)

    formats = ", ".join(datafiles.SAMPLE_FORMATS)
    p = command("sample", help="draw samples from a trained model",
                description="Draw N samples from MODEL.npz's persistent chains into the file "
                            f"-o names, in the format of its extension ({formats}). The "
                            "model file is not modified.")
    p.add_argument("model", help="a saved model (.npz)")
    _add_draws(p, formats)
    p.add_argument("--seed", type=_int_at_least(0),
                   help="run the chains on a fresh random stream from this seed (default: "
                        "continue the saved stream)")
    p.set_defaults(func=_cmd_sample)

    p = command("steer", help="sample a trained model steered by a classifier field",
                description="Sample from H(x) - h ln P_clf(target | x) without "
                            "retraining the model (paper Eq. 22-23). The classifier is a "
                            "network saved with mme_numba.io.save_network, or 'digits' "
                            "to train one on the shipped labelled digits plus a 'not a "
                            "digit' class of the model's own samples ('digits-plain': "
                            "without that class; either once, kept in the model's run "
                            "folder, or the user cache directory). --field-only "
                            "switches the model's energy off (the paper's control: samples "
                            "drift to noise).")
    p.add_argument("model", help="a saved model (.npz)")
    p.add_argument("--classifier", required=True,
                   help="saved classifier network (.npz) ending in LogSoftmax, 'digits' "
                        "(digits + model samples, per model) or 'digits-plain'")
    p.add_argument("--target", type=_int_at_least(0), required=True, help="class to favour")
    p.add_argument("--strength", type=_finite_float, default=20.0,
                   help="field strength h (default 20: with --classifier digits, >= 94 %% of "
                        "samples are the target for every digit under an independent judge, "
                        "top-class probability >= 0.81; docs/results.md, Steering)")
    p.add_argument("--field-only", action="store_true", help="switch the model's energy off")
    _add_draws(p, formats)
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
    _add_no_progress(p, "no progress bar")
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
    _add_no_progress(p)
    _add_set(p, "override a base configuration value, as for train; repeatable")
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
