"""What a saved model holds, and the model rebuilt from it (:func:`save`, :func:`load`).

A saved model holds everything a continued run needs, so that ``load(path).fit(X, k)``
produces bit-identically what the original model would have produced with ``fit(X, k)``:
θ, λ, optimizer moments, the :class:`~mme_numba.chains.Chains` (states, per-chain RNG states,
step sizes, replicas), the NumPy generator state used for minibatches, the training
controls, the epoch counter and the history. Loading checks every piece (chains inside the
support, every hyperparameter through the table the estimators use,
:mod:`mme_numba._validation`) on top of the format checks of :mod:`mme_numba.io`.
The estimator classes are passed in (:func:`mme_numba.load`): this module imports none.
"""

import numpy as np

from . import fitting
from ._validation import check_param, copy_observables
from .spec import kernel_dtype
from .chains import Chains, as_dtype
from .io import ModelFileError, Reader, write
from .tempering import Replicas, resolve_ladder

__all__ = ["save", "load"]

_FIELD_TYPES = ("ClassifierField", "DiscriminatorField")
_META_KEYS = {"format_version", "mme_numba_version", "class", "params", "observables", "epoch",
              "n_features_in", "burned_in", "numpy_rng", "history", "field", "checksum",
              "controls", "replicas"}


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
        if key == "dtype":
            value = np.dtype(kernel_dtype(value)).name    # "float64" or "float32"
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
        "mme_numba_version": __version__,
        "class": type(model).__name__,
        "params": _json_params(model),
        "observables": obs.get_config(),
        "epoch": model.epoch_,
        "n_features_in": model.n_features_in_,
        "burned_in": bool(model._chains.burned_in),
        "numpy_rng": model._rng.bit_generator.state,
        "history": model.history_,
        "controls": fitting.control_state(model),
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
    # float32 chains are stored as float64 (exact): one file format for both dtypes, and
    # load() rounds them back to the model's dtype without a change of value
    arrays = {k: (v.astype(np.float64) if getattr(v, "dtype", None) == np.float32 else v)
              for k, v in arrays.items()}
    write(path, meta, arrays)



def load(path, comm=None, observables=None, *, classes=()):
    """Load a model written by ``model.save``; it continues exactly where it stopped.

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
        The file cannot be trusted (:mod:`mme_numba.io`, :mod:`mme_numba.checkpoint` list the
        checks); the message says why.
    """
    r = Reader(path)
    meta, arrays = r.meta, r.arrays
    r.check_keys(meta, _META_KEYS, "metadata")
    for key in ("class", "params", "observables", "epoch", "n_features_in", "burned_in",
                "numpy_rng", "history"):
        if key not in meta:
            r.fail(f"metadata has no {key!r}")
    cls_name = r.choice(meta["class"], tuple(c.__name__ for c in classes), "class")
    cls = {c.__name__: c for c in classes}[cls_name]   # classes: mme_numba.load's
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
    if kernel_dtype(params.get("dtype", "float64")) == np.float32:
        chains = as_dtype(chains, lo, hi, np.float32)    # exact for a float32 model's chains
    model._chains = Chains.from_arrays({"chains": chains, "rng_state": rng_state, "step": step},
                                       burned_in=burned_in)
    model.lambda_ = lam
    model.epoch_ = epoch
    model.history_ = list(meta["history"])
    fitting.make_optimizers(model)
    fitting.make_controls(model)
    if "controls" in meta:
        controls = meta["controls"]
        _check_like(r, controls, fitting.control_state(model), "controls")
        try:
            fitting.set_control_state(model, controls)
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
    return copy_observables(obs)




def _load_replicas(r, arrays, meta, params, n_chains, d, lo, hi):
    """The hotter levels of a tempered model (``betas``), checked against its parameters."""
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
