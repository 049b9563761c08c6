"""Saving and loading models: one ``.npz`` of arrays plus JSON metadata, no pickle.

Loading verifies a file before anything in it is used: structure, shapes, dtypes, finite
values, chains inside the support, names from fixed sets, every hyperparameter through the
same table the estimators use (:mod:`mme_numba._validation`), and a SHA-256 checksum of the
arrays stored in the metadata. Any file that cannot be trusted raises :class:`ModelFileError`
(a ``ValueError``) naming the file. Loading never unpickles, never calls anything a file
names (bit generators come from a fixed allow-list) and never touches NumPy's global state.

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

__all__ = ["save", "load", "save_network", "load_network", "FORMAT_VERSION",
           "READABLE_VERSIONS", "ModelFileError"]

#: Version 2 adds the checksum of the arrays; version 1 files (no checksum) still load.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
_MODEL_CLASSES = ("MaxEnt", "MinMaxEnt")
_FIELD_TYPES = ("ClassifierField", "DiscriminatorField")
_META_KEYS = {"format_version", "mme_numba_version", "class", "params", "observables", "epoch",
              "n_features_in", "burned_in", "numpy_rng", "history", "field", "checksum",
              "controls", "replicas"}


class ModelFileError(ValueError):
    """A saved model or network file that cannot be trusted: empty, truncated, not an
    mme_numba file, from a newer format, inconsistent or corrupted. The message names the
    file and what is wrong."""


def _checksum(arrays):
    """SHA-256 over every array but the metadata: name, dtype, shape and bytes, sorted by name."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(k for k in arrays if k != "meta"):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _json_params(model):
    params = {}
    for key, value in model.get_params().items():
        if key in ("observables", "comm"):
            continue  # the architecture is saved separately; a communicator is not state
        if isinstance(value, np.random.Generator):
            value = None  # its stream continues through the saved generator state below
        elif isinstance(value, (np.integer, np.floating)):
            value = value.item()
        elif isinstance(value, (tuple, np.ndarray)):
            value = np.asarray(value).tolist() if isinstance(value, np.ndarray) else list(value)
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

    obs = model.observables_
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
    replicas = getattr(model, "replicas_", None)
    if replicas is not None:
        arrays.update(replicas.arrays())
        meta["replicas"] = replicas.meta()
    prev = getattr(model, "_tracker_prev", None)
    if prev is not None:  # the entropy tracker's pending step needs the previous parameters
        arrays["tracker_prev_params"], arrays["tracker_prev_lambda"] = prev
    adam = getattr(model._lambda_solver, "adam", None)
    if adam is not None:
        arrays.update(adam.get_state("adam_lambda"))
    if hasattr(model, "_theta_adam"):
        arrays.update(model._theta_adam.get_state("adam_theta"))
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    meta["checksum"] = _checksum(arrays)
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
    arrays = {"theta": np.asarray(net.theta, dtype=np.float64)}
    meta = {"format_version": FORMAT_VERSION, "network": net.get_config(),
            "checksum": _checksum(arrays)}
    arrays["meta"] = np.array(json.dumps(meta))
    _atomic_savez(path, arrays)


def load_network(path):
    """Read a network written by :func:`save_network` (verified like :func:`load`)."""
    r = _Reader(path)
    meta = r.meta
    if "network" not in meta:
        r.fail("not a saved mme_numba network (it may be a model: use mme_numba.load)")
    r.check_keys(meta, {"format_version", "network", "checksum"}, "metadata")
    net = r.network(meta["network"], r.float_array("theta", 1), "network")
    return net


def load(path, comm=None, observables=None):
    """Load a model written by :func:`save`; it continues exactly where it stopped.

    Parameters
    ----------
    path : str or os.PathLike
    comm : mpi4py communicator, optional
        Continue the run split across MPI ranks (:mod:`mme_numba.parallel`).
    observables : CompiledObservables, optional
        Required for a model of compiled user observables
        (:func:`mme_numba.observables.compiled`), whose functions a file cannot hold: the
        same functions, built again; the file's θ replaces theirs. Refused for other models.

    Returns
    -------
    MaxEnt or MinMaxEnt

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ModelFileError
        The file cannot be trusted (see the module docstring); the message says why.
    """
    from . import model as model_mod
    from ._validation import check_param

    r = _Reader(path)
    meta, arrays = r.meta, r.arrays
    r.check_keys(meta, _META_KEYS, "metadata")
    for key in ("class", "params", "observables", "epoch", "n_features_in", "burned_in",
                "numpy_rng", "history"):
        if key not in meta:
            r.fail(f"metadata has no {key!r}")
    cls_name = r.choice(meta["class"], _MODEL_CLASSES, "class")
    cls = getattr(model_mod, cls_name)
    d = r.int(meta["n_features_in"], "n_features_in", lo=1)
    epoch = r.int(meta["epoch"], "epoch", lo=0)
    burned_in = r.bool(meta["burned_in"], "burned_in")
    if not isinstance(meta["history"], list) or not all(isinstance(h, dict)
                                                       for h in meta["history"]):
        r.fail("metadata 'history' must be a list of records")

    # hyperparameters: the estimators' own table, names from the class signature
    params = meta["params"]
    if not isinstance(params, dict):
        r.fail(f"metadata 'params' must be a mapping, got {type(params).__name__}")
    names = set(cls(None, (0.0, 1.0))._param_names()) - {"observables", "comm"}
    r.check_keys(params, names, "params")
    params = dict(params)
    if "support" not in params:
        r.fail("params has no 'support'")
    try:
        sup = params["support"]
        if not (isinstance(sup, list) and len(sup) == 2):
            raise ValueError(f"support must be a pair, got {sup!r}")
        params["support"] = tuple(np.asarray(v, dtype=np.float64) for v in sup)
        for key, value in params.items():
            check_param(key, value)
    except (TypeError, ValueError) as exc:
        r.fail(f"invalid hyperparameter: {exc}")
    n_chains = params.get("n_chains", 1024)

    # arrays, each with its dtype and shape
    lo = r.float_array("support_lo", (d,))
    hi = r.float_array("support_hi", (d,))
    if np.any(hi <= lo):
        r.fail("support_lo must be below support_hi in every feature")
    try:
        plo, phi = (np.broadcast_to(v, (d,)) for v in params["support"])
    except ValueError:
        r.fail("params 'support' does not match n_features_in")
    if not (np.array_equal(plo, lo) and np.array_equal(phi, hi)):
        r.fail("params 'support' disagrees with the support_lo/support_hi arrays")
    chains = r.float_array("chains", (int(n_chains), d))
    if np.any((chains < lo) | (chains > hi)):
        r.fail("chains lie outside the support")
    step = r.float_array("step", (int(n_chains),))
    if np.any(step <= 0):
        r.fail("step sizes must be positive")
    rng_state = r.array("rng_state", np.uint64, (int(n_chains), 4))

    if isinstance(meta["observables"], dict) and meta["observables"].get("type") == "Compiled":
        obs = _compiled_observables(r, meta["observables"], r.float_array("theta", 1),
                                    observables)
    elif observables is not None:
        raise ValueError(f"{r.path!r}: observables= is only for models of compiled observables; "
                         "this model's observables are stored in the file")
    else:
        obs = r.network(meta["observables"], r.float_array("theta", 1), "observables")
    if getattr(obs, "n_features", None) not in (None, d):
        r.fail(f"observables take {obs.n_features} features, n_features_in is {d}")
    lam = r.float_array("lambda", (obs.n_observables,))

    model = cls(from_user_copy(obs), comm=comm, **params)
    model.observables_ = obs
    model.n_features_in_ = d
    model.support_ = (lo, hi)
    model._rng = r.generator(meta["numpy_rng"])
    model.rng_state_ = rng_state
    model.chains_ = chains
    model.step_ = step
    model.lambda_ = lam
    model.epoch_ = epoch
    model.history_ = list(meta["history"])
    model._burned_in = burned_in
    model._make_optimizers()
    model._make_controls()
    if "controls" in meta:
        controls = meta["controls"]
        _check_like(r, controls, model._control_state(), "controls")
        try:
            model._set_control_state(controls)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError,
                OverflowError) as exc:
            r.fail(f"metadata 'controls' does not restore: {type(exc).__name__}: {exc}")
    model.replicas_ = _load_replicas(r, arrays, meta, params, int(n_chains), d, lo, hi)
    if ("tracker_prev_params" in arrays) != ("tracker_prev_lambda" in arrays):
        r.fail("incomplete entropy-tracker state (tracker_prev_params/tracker_prev_lambda)")
    if "tracker_prev_params" in arrays:
        model._tracker_prev = (r.float_array("tracker_prev_params", 1),
                               r.float_array("tracker_prev_lambda", lam.shape))
    adam = getattr(model._lambda_solver, "adam", None)
    if adam is not None:
        r.adam(adam, "adam_lambda", lam.shape)
    if hasattr(model, "_theta_adam"):
        r.adam(model._theta_adam, "adam_theta", obs.theta.shape)
    if "field" in meta:
        from . import fields

        f = meta["field"]
        if not isinstance(f, dict):
            r.fail("metadata 'field' must be a mapping")
        r.check_keys(f, {"type", "network", "target", "strength", "base", "ess"}, "field")
        for key in ("type", "network", "target", "strength", "base", "ess"):
            if key not in f:
                r.fail(f"field has no {key!r}")
        kind = getattr(fields, r.choice(f["type"], _FIELD_TYPES, "field type"))
        net = r.network(f["network"], r.float_array("field_theta", 1), "field network")
        target = r.int(f["target"], "field target", lo=0)
        try:
            model.field_ = kind(net, target)
            model.field_strength_ = float(check_param("strength", f["strength"]))
            model.field_base_ = bool(check_param("base", f["base"]))
        except (TypeError, ValueError) as exc:
            r.fail(f"invalid steering field: {exc}")
        if net.n_features != d:
            r.fail(f"the field network takes {net.n_features} features, the model {d}")
        model.field_ess_ = r.number(f["ess"], "field ess", 0.0, 1.0)
    return model


def _finite_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _check_like(r, value, template, where):
    """``value`` (from a file) has the shape of ``template`` (a fresh model's control state):
    the same keys, lists of finite numbers (of bools, at the template's length, where the
    template holds bools), finite numbers where it holds numbers or ``None``."""
    if isinstance(template, dict):
        if not isinstance(value, dict):
            r.fail(f"metadata '{where}' must be a mapping")
        r.check_keys(value, set(template), f"'{where}'")
        for key in value:
            _check_like(r, value[key], template[key], f"{where}.{key}")
    elif isinstance(template, bool):
        if not isinstance(value, bool):
            r.fail(f"metadata '{where}' must be true or false, got {value!r}")
    elif isinstance(template, list):
        if not isinstance(value, list):
            r.fail(f"metadata '{where}' must be a list, got {value!r}")
        if template and all(isinstance(t, bool) for t in template):
            if len(value) != len(template) or not all(isinstance(v, bool) for v in value):
                r.fail(f"metadata '{where}' must be {len(template)} booleans, got {value!r}")
        elif not all(_finite_number(v) for v in value):
            r.fail(f"metadata '{where}' must hold finite numbers, got {value!r:.80}")
    elif template is None:  # unset now, a number or a list of numbers once set
        if value is not None and not _finite_number(value) and not (
                isinstance(value, list) and all(_finite_number(v) for v in value)):
            r.fail(f"metadata '{where}' must be null, a finite number or a list of them, "
                   f"got {value!r:.80}")
    elif _finite_number(template):
        if not _finite_number(value) or (isinstance(template, int) and not isinstance(value, int)):
            r.fail(f"metadata '{where}' must be a finite {type(template).__name__}, "
                   f"got {value!r}")


def _compiled_observables(r, cfg, theta, given):
    """A model's compiled observables: the user's functions, the file's θ and sizes."""
    from .observables.user import CompiledObservables

    what = (f"the observables are the compiled function {cfg.get('func')!r} "
            f"(n_outputs={cfg.get('n_outputs')}, {theta.size} parameters)")
    if given is None:
        raise ModelFileError(
            f"{r.path!r}: {what}, which a file cannot hold: load it with "
            f"mme_numba.load(path, observables=mme_numba.observables.compiled(func, "
            f"n_outputs={cfg.get('n_outputs')}, ...)) using the same function")
    if not isinstance(given, CompiledObservables):
        raise TypeError(f"observables must be mme_numba.observables.compiled(...) for "
                        f"{r.path!r} ({what}), got {given!r:.80}")
    if given.n_observables != cfg.get("n_outputs") or given.n_params != theta.size:
        raise ValueError(f"{r.path!r}: {what}; the observables passed have "
                         f"n_outputs={given.n_observables} and {given.n_params} parameters")
    if given.n_features not in (None, cfg.get("n_features")):
        raise ValueError(f"{r.path!r}: the observables passed take {given.n_features} features,"
                         f" the model's {cfg.get('n_features')}")
    obs = given.copy()
    obs.n_features = cfg.get("n_features")
    obs.set_theta(theta)
    return obs


def from_user_copy(obs):
    """The ``observables`` hyperparameter of a loaded model: a copy of the trained map, so
    that ``clone(loaded)`` and ``observables_`` share nothing."""
    from ._validation import copy_observables

    return copy_observables(obs)


class _Reader:
    """One model or network file, read without pickle and checked piece by piece.

    Every failure raises :class:`ModelFileError` naming the file.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"no saved mme_numba file at {self.path!r}")
        if os.path.isdir(self.path):
            self.fail("is a directory, not a saved mme_numba file")
        if os.path.getsize(self.path) == 0:
            self.fail("the file is empty")
        try:
            data = np.load(self.path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                self.fail("not an .npz archive (a bare .npy array?)")
            with data:
                self.arrays = {k: data[k] for k in data.files}
        except ModelFileError:
            raise
        except Exception as exc:  # zipfile, EOF, pickle refusal, OS errors: all mean "corrupt"
            self.fail(f"cannot be read as a saved mme_numba file (truncated or corrupted?): "
                      f"{type(exc).__name__}: {exc}")
        if "meta" not in self.arrays:
            self.fail("not a saved mme_numba file (no metadata)")
        m = self.arrays["meta"]
        if m.shape != () or m.dtype.kind != "U":
            self.fail(f"metadata must be one JSON string, got a {m.dtype} array of shape {m.shape}")
        try:
            self.meta = json.loads(str(m))
        except ValueError as exc:
            self.fail(f"metadata does not parse as JSON: {exc}")
        if not isinstance(self.meta, dict):
            self.fail(f"metadata must be a JSON object, got {type(self.meta).__name__}")
        version = self.meta.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            self.fail(f"metadata format_version must be an integer, got {version!r}")
        if version > FORMAT_VERSION:
            self.fail(f"written in format version {version} by a newer mme_numba; this "
                      f"mme_numba reads versions up to {FORMAT_VERSION}")
        if version not in READABLE_VERSIONS:
            self.fail(f"unknown format version {version}")
        if version >= 2:
            stored = self.meta.get("checksum")
            if not isinstance(stored, str):
                self.fail("metadata has no checksum")
            if stored != _checksum(self.arrays):
                self.fail("checksum mismatch: the arrays were modified or corrupted after saving")

    def fail(self, why):
        raise ModelFileError(f"{self.path!r}: {why}")

    def check_keys(self, mapping, allowed, what):
        import difflib

        unknown = sorted(set(mapping) - set(allowed))
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
            self.fail(f"unknown {what} key {unknown[0]!r}"
                      + (f" (did you mean {close[0]!r}?)" if close else ""))

    def choice(self, value, choices, what):
        if not isinstance(value, str) or value not in choices:
            self.fail(f"{what} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def int(self, value, what, lo=None):
        if isinstance(value, bool) or not isinstance(value, int) or (lo is not None
                                                                    and value < lo):
            self.fail(f"{what} must be an integer{'' if lo is None else f' >= {lo}'}, "
                      f"got {value!r}")
        return value

    def bool(self, value, what):
        if not isinstance(value, bool):
            self.fail(f"{what} must be true or false, got {value!r}")
        return value

    def number(self, value, what, lo, hi):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not (lo <= value <= hi):
            self.fail(f"{what} must be a number in [{lo}, {hi}], got {value!r}")
        return float(value)

    def array(self, name, dtype, shape):
        if name not in self.arrays:
            self.fail(f"missing array {name!r}")
        a = self.arrays[name]
        if a.dtype != np.dtype(dtype):
            self.fail(f"array {name!r} has dtype {a.dtype}, expected {np.dtype(dtype)}")
        if isinstance(shape, int):
            if a.ndim != shape:
                self.fail(f"array {name!r} has shape {a.shape}, expected {shape} dimension(s)")
        elif a.shape != tuple(shape):
            self.fail(f"array {name!r} has shape {a.shape}, expected {tuple(shape)}")
        return a.copy()

    def float_array(self, name, shape):
        a = self.array(name, np.float64, shape)
        if not np.all(np.isfinite(a)):
            self.fail(f"array {name!r} holds non-finite values (nan or inf)")
        return a

    def network(self, cfg, theta, what):
        from .observables import from_config

        if not isinstance(cfg, dict):
            self.fail(f"{what} description must be a mapping, got {type(cfg).__name__}")
        try:
            net = from_config(cfg)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError,
                OverflowError, MemoryError) as exc:
            self.fail(f"invalid {what} description: {type(exc).__name__}: {exc}")
        n_params = int(getattr(net, "n_params", 0))
        if theta.shape != (n_params,):
            self.fail(f"the {what} description has {n_params} parameters, the stored theta "
                      f"{theta.shape[0]}")
        if n_params:
            net.set_theta(theta)
        return net

    def generator(self, state):
        """The minibatch generator, from an allow-listed bit generator (nothing else is called)."""
        if not isinstance(state, dict):
            self.fail("numpy_rng must be a mapping")
        name = self.choice(state.get("bit_generator"), _BIT_GENERATORS, "numpy_rng bit_generator")
        try:
            bg = getattr(np.random, name)()  # name is from the allow-list above
            bg.state = state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            self.fail(f"numpy_rng state does not restore: {type(exc).__name__}: {exc}")
        return np.random.Generator(bg)

    def adam(self, adam, prefix, shape):
        names = [f"{prefix}_{k}" for k in ("m", "v", "t")]
        present = [n in self.arrays for n in names]
        if not any(present):
            return
        if not all(present):
            self.fail(f"incomplete optimizer state {prefix!r}")
        m = self.float_array(names[0], shape)
        v = self.float_array(names[1], shape)
        if np.any(v < 0):
            self.fail(f"array {names[1]!r} holds negative second moments")
        t = self.arrays[names[2]]
        if t.shape != () or t.dtype.kind not in "iu" or int(t) < 0:
            self.fail(f"array {names[2]!r} must be a non-negative integer scalar")
        adam.set_state({names[0]: m, names[1]: v, names[2]: t}, prefix)



def _load_replicas(r, arrays, meta, params, n_chains, d, lo, hi):
    """The hotter levels of a tempered model (``betas``), checked against its parameters."""
    from .tempering import Replicas, resolve_ladder

    ladder, adaptive = resolve_ladder(params.get("betas"))
    if ladder is None:
        if "replica_x" in arrays or "replicas" in meta:
            r.fail("holds replica chains but params 'betas' is None")
        return None
    if "replica_x" not in arrays and "replicas" not in meta:
        return None     # betas set after the last run: the replicas start at the next one
    if "replica_x" not in arrays or "replicas" not in meta:
        r.fail("incomplete replica state (replica arrays or metadata 'replicas' missing)")
    k = len(ladder)
    betas = r.float_array("replica_betas", (k,))
    if betas[0] != 1.0 or np.any(np.diff(betas) >= 0) or np.any(betas <= 0):
        r.fail("replica_betas is not a decreasing ladder from 1.0")
    x = r.float_array("replica_x", (k - 1, n_chains, d))
    if np.any((x < lo) | (x > hi)):
        r.fail("replica chains lie outside the support")
    rng = r.array("replica_rng", np.uint64, (k - 1, n_chains, 4))
    swap_rng = r.array("replica_swap_rng", np.uint64, (n_chains, 4))
    acc = r.array("replica_swap_acceptance", np.float64, (k - 1,))
    info = meta["replicas"]
    try:
        turn, ada = int(info["turn"]), bool(info["adaptive"])
    except (KeyError, TypeError, ValueError):
        r.fail("metadata 'replicas' is malformed")
    if ada != adaptive:
        r.fail("metadata 'replicas' disagrees with params 'betas' on adapting the ladder")
    return Replicas(betas, x, rng, swap_rng, turn, ada, acc)
