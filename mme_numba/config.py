"""Experiment configurations: TOML files turned into data, observables and a model.

A configuration has four tables; everything in them is passed on as keyword
arguments, so any option of the library is settable without code::

    [data]                      # where X comes from
    source = "gaussian_mixture" # gaussian_mixture | cauchy_mixture | digits | gaussian | file
    n = 1000
    means = [-2.0, 2.0]
    scales = [0.5, 0.5]
    seed = 0

    [observables]               # O(x; θ)
    kind = "mlp"                # mlp | paper_cnn | polynomial | squared_projections
    sizes = [1, 32, 32, 2]
    activation = "tanh"

    [model]                     # MinMaxEnt(...) or MaxEnt(...) keyword arguments
    class = "MinMaxEnt"
    support = [-6.0, 6.0]
    n_chains = 1024
    random_state = 0

    [train]                     # fit(...) options and where outputs go
    epochs = 300
    checkpoint_every = 10
    out = "runs/bimodal"

:func:`load_config` validates the whole file against :mod:`mme_numba.schema` (every key of
every table, with defaults taken from the library's own signatures) and raises one
:class:`ConfigError` listing every problem; :func:`build_experiment` then checks the data,
the observables and the support against each other before anything is compiled.

Every value can be overridden with ``"table.key=value"`` strings (the CLI's
``--set``), the value parsed as TOML (``model.support=[-8, 8]``,
``model.move="single"``) or, failing that, kept as a bare string
(``model.move=single``).
"""

from __future__ import annotations

import copy
import functools
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from mme_numba import schema
from mme_numba.datafiles import InputFileError, check_readable, read_data_file
from mme_numba.schema import (OBSERVABLES, Problem, check_sweep_table,  # noqa: F401
                              validate_estimator_params)

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

logger = logging.getLogger(__name__)

__all__ = ["load_config", "read_toml", "apply_overrides", "parse_override", "validate_config",
           "check_config", "build_data", "true_logpdf", "build_observables", "model_kwargs",
           "build_model", "build_experiment", "validate_estimator_params", "ConfigError",
           "Problem", "DEFAULTS", "OBSERVABLES"]

#: Defaults filled in for tables or keys a configuration leaves out. ``[model]`` and
#: ``[observables]`` keys left out take the library's defaults when the objects are built;
#: the full list is :mod:`mme_numba.schema` (``docs/cli.md``).
DEFAULTS = {
    "data": {},
    "observables": {},
    "model": {"class": "MinMaxEnt"},
    "train": schema.defaults("train"),
}
_TABLES = schema.TABLES


class ConfigError(ValueError):
    """Everything wrong with a configuration, found before anything runs.

    Attributes
    ----------
    problems : list of mme_numba.schema.Problem
        One per mistake; ``str(problem)`` is ``FILE: [table] key: what (expected)``.
    """

    def __init__(self, problems, file=None):
        self.problems = [p if p.file or file is None else replace(p, file=str(file))
                         for p in problems]
        super().__init__("\n".join(map(str, self.problems)))


def parse_override(text):
    """Parse ``"table.key=value"`` into ``(("table", "key"), value)``.

    Parameters
    ----------
    text : str
        The value is read as a TOML value (numbers, booleans, arrays, quoted
        strings); anything that is not valid TOML is kept as a string.

    Returns
    -------
    keys : tuple of str
    value : object
    """
    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form table.key=value")
    dotted, raw = text.split("=", 1)
    keys = tuple(k.strip() for k in dotted.strip().split("."))
    if len(keys) != 2 or not all(keys) or keys[0] not in _TABLES:
        hint = schema.suggest(keys[0], _TABLES) if keys and keys[0] not in _TABLES else None
        raise ValueError(f"override {text!r}: the key must be one of "
                         f"{', '.join(t + '.<name>' for t in _TABLES)}"
                         + (f" (did you mean {hint}.?)" if hint else ""))
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return keys, value


def apply_overrides(cfg, overrides):
    """Return a copy of ``cfg`` with ``"table.key=value"`` overrides applied.

    Parameters
    ----------
    cfg : dict
    overrides : iterable of str

    Returns
    -------
    dict
    """
    cfg = copy.deepcopy(cfg)
    for text in overrides:
        keys, value = parse_override(text)
        node = cfg
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return cfg


def read_toml(path):
    """The raw tables of a TOML file; problems raise :class:`ConfigError` naming the file.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    dict
    """
    try:
        path = check_readable(path, "configuration file")
    except InputFileError as exc:
        raise ConfigError([Problem(exc.problem, expected=exc.expected)], file=path) from None
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(f"not valid TOML: {exc}")], file=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(f"not valid TOML: not UTF-8 text ({exc.reason})")],
                          file=path) from None


def validate_config(cfg, file=None):
    """Raise :class:`ConfigError` listing every problem of ``cfg`` (see :mod:`.schema`)."""
    problems = schema.validate(cfg)
    if problems:
        raise ConfigError(problems, file=file)


def load_config(path, overrides=()):
    """Read a TOML configuration, apply overrides, validate it, fill defaults.

    Parameters
    ----------
    path : str or path-like
    overrides : iterable of str
        ``"table.key=value"`` strings, applied in order.

    Returns
    -------
    cfg : dict
        Tables ``data``, ``observables``, ``model``, ``train``; plain
        JSON-serialisable values. ``train.out`` defaults to
        ``runs/<config file stem>``. A ``[sweep]`` table (:mod:`mme_numba.sweeps`) is
        checked and left out: the result is the base configuration of the grid.

    Raises
    ------
    ConfigError
        Listing every problem at once (file, table, key, what was expected).
    """
    path = Path(path)
    raw = read_toml(path)
    try:
        raw = apply_overrides(raw, overrides)
    except ValueError as exc:
        raise ConfigError([Problem(f"--set: {exc}")], file=path) from None
    sweep = raw.pop("sweep", None)   # the grid of mme-numba sweep (mme_numba.sweeps)
    problems = schema.validate(raw)
    if sweep is not None:
        problems += check_sweep_table(sweep)
    if problems:
        raise ConfigError(problems, file=path)
    cfg = {t: {**DEFAULTS[t], **raw.get(t, {})} for t in _TABLES}
    if cfg["train"].get("out") is None:
        cfg["train"]["out"] = str(Path("runs") / path.stem)
    return cfg


def _data_kwargs(spec):
    return {k: v for k, v in spec.items() if k not in ("source", "keep_within")}


def build_data(spec):
    """Training data from a ``[data]`` table.

    Parameters
    ----------
    spec : dict
        ``source`` and that source's keyword arguments:
        ``gaussian_mixture`` / ``cauchy_mixture`` (see :mod:`mme_numba.datasets`),
        ``digits`` (``n``, ``labels``, ``seed``; labels are dropped),
        ``gaussian`` (``n``, ``mean (d,)``, ``cov (d, d)``, ``seed``),
        ``file`` (``path`` to a ``.npy``, ``.csv`` or ``.txt``, or a ``.npz`` with ``key``,
        default ``"X"``; see :func:`mme_numba.datafiles.read_data_file`).
        Optional ``keep_within = [lo, hi]`` drops the rows outside that box (heavy-tailed
        data and a bounded support): the kept rows are draws from the truncated density.

    Returns
    -------
    X : ndarray, shape (n_samples, n_features)
    """
    from mme_numba import datasets

    source = spec.get("source")
    kw = _data_kwargs(spec)
    if source in ("gaussian_mixture", "cauchy_mixture"):
        X = getattr(datasets, source)(**kw)
    elif source == "digits":
        X, _ = datasets.digits(**kw)
    elif source == "gaussian":
        rng = np.random.default_rng(kw.get("seed", 0))
        mean = np.asarray(kw["mean"], dtype=np.float64)
        X = rng.multivariate_normal(mean, np.asarray(kw["cov"], dtype=np.float64),
                                    size=int(kw["n"]))
    elif source == "file":
        X = read_data_file(kw["path"], kw.get("key", "X"))
    else:
        raise ValueError(f"unknown data source {source!r}; expected gaussian_mixture, "
                         "cauchy_mixture, digits, gaussian or file")
    X = np.asarray(X, dtype=np.float64)
    X = X[:, None] if X.ndim == 1 else X
    if "keep_within" in spec:
        lo, hi = spec["keep_within"]
        inside = np.all((X >= np.asarray(lo)) & (X <= np.asarray(hi)), axis=1)
        if not inside.all():
            logger.info("data: dropped %d of %d rows outside %s", int((~inside).sum()),
                        len(X), spec["keep_within"])
        X = X[inside]
    return X


def true_logpdf(spec):
    """The exact log density of a synthetic ``[data]`` source, or None.

    Parameters
    ----------
    spec : dict

    Returns
    -------
    logpdf : callable or None
        ``(n, d) -> (n,)`` on ``R^d`` (truncate it to the support with
        :func:`mme_numba.datasets.truncated_logpdf` before comparing).
    """
    from mme_numba import datasets

    source = spec.get("source")
    kw = {k: v for k, v in _data_kwargs(spec).items() if k not in ("n", "seed")}
    if source == "gaussian_mixture":
        return functools.partial(datasets.gaussian_mixture_logpdf, **kw)
    if source == "cauchy_mixture":
        return functools.partial(datasets.cauchy_mixture_logpdf, **kw)
    if source == "gaussian":
        from scipy.stats import multivariate_normal

        dist = multivariate_normal(kw["mean"], kw["cov"])
        return lambda x: np.atleast_1d(dist.logpdf(np.asarray(x)))
    return None


def build_observables(spec):
    """Observable map from an ``[observables]`` table.

    Parameters
    ----------
    spec : dict
        ``kind`` (one of ``mlp``, ``paper_cnn``, ``polynomial``,
        ``squared_projections``) and that constructor's keyword arguments.

    Returns
    -------
    observables
        An observable map (``docs/architecture.md`` §1).
    """
    from importlib import import_module

    kind = spec.get("kind")
    if kind not in OBSERVABLES:
        raise ValueError(f"unknown observables kind {kind!r}; expected one of "
                         f"{sorted(OBSERVABLES)}")
    module, name = OBSERVABLES[kind]
    kw = {k: v for k, v in spec.items() if k != "kind"}
    if "image_shape" in kw:
        kw["image_shape"] = tuple(kw["image_shape"])
    return getattr(import_module(module), name)(**kw)


def model_kwargs(spec):
    """Keyword arguments for the model class from a ``[model]`` table.

    Parameters
    ----------
    spec : dict

    Returns
    -------
    cls_name : str
        ``"MinMaxEnt"`` or ``"MaxEnt"``.
    kwargs : dict
        ``support`` becomes a tuple ``(lo, hi)``, each a float or a float array.
    """
    kw = dict(spec)
    cls_name = kw.pop("class", "MinMaxEnt")
    if cls_name not in ("MinMaxEnt", "MaxEnt"):
        raise ValueError(f"model.class must be MinMaxEnt or MaxEnt, got {cls_name!r}")
    if "support" in kw:
        lo, hi = kw["support"]
        kw["support"] = tuple(v if np.isscalar(v) else np.asarray(v, dtype=np.float64)
                              for v in (lo, hi))
    return cls_name, kw


def build_model(cfg):
    """An unfitted model from a full configuration.

    Parameters
    ----------
    cfg : dict
        As returned by :func:`load_config`.

    Returns
    -------
    model : MinMaxEnt or MaxEnt
    """
    import mme_numba

    cls_name, kw = model_kwargs(cfg["model"])
    return getattr(mme_numba, cls_name)(build_observables(cfg["observables"]), **kw)


def build_experiment(cfg, file=None):
    """Data and an unfitted model from a validated configuration, checked against each other.

    Building the data and the observables is cheap (no kernel is compiled), so everything a
    file can get wrong is found here, before training starts: the data source's and the
    observables' own checks, observables that take a different number of features than the
    data have, a support of another dimension, and data rows outside the support.

    Parameters
    ----------
    cfg : dict
        As returned by :func:`load_config`.
    file : path-like, optional
        The configuration file, named in the problems.

    Returns
    -------
    X : ndarray, shape (n_samples, n_features)
    model : MinMaxEnt or MaxEnt

    Raises
    ------
    ConfigError
    mme_numba.datafiles.InputFileError
        A data file that cannot be read (its path, and the row and column where known).
    """
    import mme_numba

    problems = []
    try:
        X = build_data(cfg["data"])
    except InputFileError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        problems.append(Problem(str(exc), "data"))
        X = None
    if X is not None and len(X) == 0:
        problems.append(Problem("no rows left", "data", "keep_within" if "keep_within" in
                                cfg["data"] else None, "a box that holds some of the data"))
        X = None
    try:
        obs = build_observables(cfg["observables"])
    except (ValueError, TypeError) as exc:
        problems.append(Problem(str(exc), "observables"))
        obs = None
    cls_name, kw = model_kwargs(cfg["model"])
    if X is not None:
        d = X.shape[1]
        n_in = getattr(obs, "n_features", None)
        if n_in is not None and n_in != d:
            problems.append(Problem(f"the observables take {n_in} features, the data have {d}",
                                    "observables", None, f"observables for {d} features"))
        lo, hi = kw["support"]
        widths = {np.size(v) for v in (lo, hi) if np.ndim(v) > 0}
        if widths - {d}:
            problems.append(Problem(f"bounds of length {sorted(widths)[0]}, the data have {d} "
                                    "features", "model", "support", f"numbers or lists of {d}"))
        else:
            inside = np.all((X >= np.asarray(lo)) & (X <= np.asarray(hi)), axis=1)
            if not inside.all():
                i = int(np.flatnonzero(~inside)[0])
                problems.append(Problem(
                    f"{int((~inside).sum())} of {len(X)} data rows lie outside it (first: row "
                    f"{i}, {X[i].tolist()})", "model", "support",
                    "a box that holds the data, or [data] keep_within"))
    if problems:
        raise ConfigError(problems, file=file)
    model = getattr(mme_numba, cls_name)(obs, **kw)
    return X, model


def check_config(path, overrides=()):
    """Validate a configuration file completely without training: ``mme-numba check``.

    Returns
    -------
    cfg : dict
    X : ndarray
    model : unfitted MinMaxEnt or MaxEnt
    """
    cfg = load_config(path, overrides)
    X, model = build_experiment(cfg, file=path)
    return cfg, X, model
