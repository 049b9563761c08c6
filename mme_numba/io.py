"""Saving and loading models: one ``.npz`` of arrays plus JSON metadata, no pickle.

A saved model holds everything a continued run needs, so that ``load(path).fit(X, k)``
produces bit-identically what the original model would have produced with ``fit(X, k)``:
θ, λ, optimizer moments, chain states, per-chain RNG states, step sizes, the NumPy generator
state used for minibatches, the epoch counter and the history. Files are written atomically
(temporary file in the same folder, ``fsync``, ``os.replace``): a crash mid-write leaves the
previous checkpoint intact.
"""

import json
import os
import tempfile

import numpy as np

__all__ = ["save", "load", "save_network", "load_network", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def _json_params(model):
    params = {}
    for key, value in model.get_params().items():
        if key in ("observables", "comm"):
            continue  # the architecture is saved separately; a communicator is not state
        if isinstance(value, np.random.Generator):
            value = None  # its stream continues through the saved generator state below
        elif isinstance(value, (np.integer, np.floating)):
            value = value.item()
        elif isinstance(value, tuple):
            value = list(value)
        if key == "support":
            value = [np.asarray(v, dtype=float).tolist() for v in value]
        params[key] = value
    return params


def save(model, path):
    """Write ``model`` (fitted) to ``path`` atomically.

    Parameters
    ----------
    model : MaxEnt or MinMaxEnt
    path : str or os.PathLike
        Destination file (conventionally ``*.npz``).
    """
    model._check_fitted("save")
    from . import __version__

    obs = model.observables
    meta = {
        "format_version": FORMAT_VERSION,
        "mme_numba_version": __version__,
        "class": type(model).__name__,
        "params": _json_params(model),
        "observables": obs.get_config(),
        "epoch": model.epoch_,
        "n_features_in": model.n_features_in_,
        "burned_in": bool(model._burned_in),
        "numpy_rng": model._rng.bit_generator.state,
        "history": model.history_,
        "controls": model._control_state(),
    }
    arrays = {
        "theta": np.asarray(obs.theta, dtype=np.float64),
        "lambda": model.lambda_,
        "chains": model.chains_,
        "rng_state": model.rng_state_,
        "step": model.step_,
        "support_lo": model.support_[0],
        "support_hi": model.support_[1],
    }
    field = getattr(model, "field_", None)
    if field is not None:
        meta["field"] = {"type": type(field).__name__, "network": field.network.get_config(),
                         "target": field.target, "strength": model.field_strength_,
                         "base": model.field_base_, "ess": model.field_ess_}
        arrays["field_theta"] = np.asarray(field.network.theta, dtype=np.float64)
    prev = getattr(model, "_tracker_prev", None)
    if prev is not None:  # the entropy tracker's pending step needs the previous parameters
        arrays["tracker_prev_params"], arrays["tracker_prev_lambda"] = prev
    adam = getattr(model._lambda_solver, "adam", None)
    if adam is not None:
        arrays.update(adam.get_state("adam_lambda"))
    if hasattr(model, "_theta_adam"):
        arrays.update(model._theta_adam.get_state("adam_theta"))
    arrays["meta"] = np.array(json.dumps(meta))

    _atomic_savez(path, arrays)


def _atomic_savez(path, arrays):
    """``np.savez`` to a temporary file in the same folder, ``fsync``, then ``os.replace``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    umask = os.umask(0)  # mkstemp creates 0600 files; a saved model gets the usual permissions
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def save_network(net, path):
    """Write a network (architecture as JSON, θ as an array) atomically; no pickle.

    Used for steering classifiers and discriminators: ``mme-numba steer --classifier``.
    """
    meta = {"format_version": FORMAT_VERSION, "network": net.get_config()}
    _atomic_savez(path, {"theta": np.asarray(net.theta, dtype=np.float64),
                         "meta": np.array(json.dumps(meta))})


def load_network(path):
    """Read a network written by :func:`save_network`."""
    from .observables import from_config

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no saved network at {path!r}")
    with np.load(path, allow_pickle=False) as data:
        if "meta" not in data.files or "theta" not in data.files:
            raise ValueError(f"{path!r} is not a saved mme_numba network")
        meta = json.loads(str(data["meta"]))
        theta = data["theta"].copy()
    if "network" not in meta:
        raise ValueError(f"{path!r} is not a saved mme_numba network (it may be a model: "
                         f"use mme_numba.load)")
    net = from_config(meta["network"])
    net.set_theta(theta)
    return net


def load(path, comm=None):
    """Load a model written by :func:`save`; it continues exactly where it stopped.

    Parameters
    ----------
    path : str or os.PathLike
    comm : mpi4py communicator, optional
        Continue the run split across MPI ranks (:mod:`mme_numba.parallel`).

    Returns
    -------
    MaxEnt or MinMaxEnt
    """
    from . import model as model_mod
    from .observables import from_config

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no saved model at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path!r} is not a saved mme_numba model: {exc}") from exc
    if "meta" not in arrays:
        raise ValueError(f"{path!r} is not a saved mme_numba model (no metadata)")
    meta = json.loads(str(arrays["meta"]))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path!r} has format version {meta.get('format_version')}, "
                         f"this mme_numba reads version {FORMAT_VERSION}")
    cls = getattr(model_mod, meta["class"], None)
    if cls is None:
        raise ValueError(f"{path!r} holds an unknown model class {meta['class']!r}")

    obs = from_config(meta["observables"])
    obs.set_theta(arrays["theta"])
    params = dict(meta["params"])
    params["support"] = tuple(np.asarray(v) for v in params["support"])
    model = cls(obs, comm=comm, **params)

    model.n_features_in_ = int(meta["n_features_in"])
    model.support_ = (arrays["support_lo"].copy(), arrays["support_hi"].copy())
    rng_state = meta["numpy_rng"]
    model._rng = np.random.Generator(getattr(np.random, rng_state["bit_generator"])())
    model._rng.bit_generator.state = rng_state
    model.rng_state_ = arrays["rng_state"].copy()
    model.chains_ = arrays["chains"].copy()
    model.step_ = arrays["step"].copy()
    model.lambda_ = arrays["lambda"].copy()
    model.epoch_ = int(meta["epoch"])
    model.history_ = list(meta["history"])
    model._burned_in = bool(meta["burned_in"])
    model._make_optimizers()
    model._make_controls()
    if "controls" in meta:
        model._set_control_state(meta["controls"])
    if "tracker_prev_params" in arrays:
        model._tracker_prev = (arrays["tracker_prev_params"].copy(),
                               arrays["tracker_prev_lambda"].copy())
    adam = getattr(model._lambda_solver, "adam", None)
    if adam is not None:
        adam.set_state(arrays, "adam_lambda")
    if hasattr(model, "_theta_adam"):
        model._theta_adam.set_state(arrays, "adam_theta")
    if "field" in meta:
        from . import fields
        from .nn import Sequential

        f = meta["field"]
        net = Sequential.from_config(f["network"])
        net.set_theta(arrays["field_theta"])
        kind = getattr(fields, f["type"])
        model.field_ = kind(net, f["target"])
        model.field_strength_ = float(f["strength"])
        model.field_base_ = bool(f["base"])
        model.field_ess_ = float(f["ess"])
    return model
