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

Every value can be overridden with ``"table.key=value"`` strings (the CLI's
``--set``), the value parsed as TOML (``model.support=[-8, 8]``,
``model.move="single"``) or, failing that, kept as a bare string
(``model.move=single``).
"""

from __future__ import annotations

import copy
import functools
import logging
from pathlib import Path

import numpy as np

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

logger = logging.getLogger(__name__)

__all__ = ["load_config", "apply_overrides", "parse_override", "build_data", "true_logpdf",
           "build_observables", "model_kwargs", "build_model", "DEFAULTS"]

#: Defaults filled in for tables or keys a configuration leaves out.
DEFAULTS = {
    "data": {},
    "observables": {},
    "model": {"class": "MinMaxEnt"},
    "train": {"epochs": 100, "checkpoint_every": 10, "out": None},
}
_TABLES = tuple(DEFAULTS)


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
    if len(keys) < 2 or not all(keys) or keys[0] not in _TABLES:
        raise ValueError(f"override {text!r}: the key must be one of "
                         f"{', '.join(t + '.<name>' for t in _TABLES)}")
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


def load_config(path, overrides=()):
    """Read a TOML configuration, fill defaults, apply overrides.

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
        ``runs/<config file stem>``.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    unknown = set(raw) - set(_TABLES)
    if unknown:
        raise ValueError(f"{path}: unknown tables {sorted(unknown)}; expected {list(_TABLES)}")
    cfg = {t: {**DEFAULTS[t], **raw.get(t, {})} for t in _TABLES}
    cfg = apply_overrides(cfg, overrides)
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
        ``file`` (``path`` to a ``.npy``, or a ``.npz`` with ``key``, default ``"X"``).
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
        path = Path(kw["path"])
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                X = f[kw.get("key", "X")]
        else:
            X = np.load(path, allow_pickle=False)
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


_OBSERVABLES = {
    "mlp": ("mme_numba.nn", "mlp"),
    "paper_cnn": ("mme_numba.nn", "paper_cnn"),
    "polynomial": ("mme_numba.observables", "polynomial"),
    "squared_projections": ("mme_numba.observables", "squared_projections"),
}


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
    if kind not in _OBSERVABLES:
        raise ValueError(f"unknown observables kind {kind!r}; expected one of "
                         f"{sorted(_OBSERVABLES)}")
    module, name = _OBSERVABLES[kind]
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
