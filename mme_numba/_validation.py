"""Argument checks shared by the model classes, the functional core and checkpoint loading.

Every hyperparameter is described once, in :data:`PARAMS`: its kind (``int``, ``float``,
``bool``, ``choice``, ...), its range, its fixed set of names and the special values it also
accepts (``"auto"``, ``None``). :func:`check_param` applies an entry; the estimators call it
from ``fit``, ``sample``, ``with_field`` and ``set_params``, and :func:`mme_numba.load` calls it
on the parameters a checkpoint holds. Adding a parameter is one line in :data:`PARAMS`.

Types are strict: an integer parameter takes a Python or NumPy integer (not a string, a bool
or a float, even ``3.0``), a boolean one takes ``True``/``False`` (not ``"no"`` or ``1``), a
number must be finite and in range. Errors are ``TypeError`` (wrong type) or ``ValueError``
(right type, wrong value), and name the parameter, the value and what was expected.
"""

import difflib
import math
import numbers
import os
from dataclasses import dataclass

import numpy as np

from .spec import BOUNDARIES as _BOUNDARIES, MOVES as _MOVES, kernel_dtype

_NO_SPECIALS = ()
_MISSING = object()


@dataclass(frozen=True)
class Param:
    """How one parameter is checked.

    kind : "int", "float", "bool", "choice", "seed", "callable", "path", "comm",
        "observables", "support", "dtype" or "any".
    lo, hi : inclusive bounds (``None``: unbounded); ``lo_open``/``hi_open`` make them strict.
    choices : the allowed names of a ``"choice"`` parameter.
    specials : other values accepted as they are (``None``, ``"auto"``), compared by equality
        and type (so ``"auto"`` is a special but ``True`` is not ``1``).
    """

    kind: str
    lo: float = None
    hi: float = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    specials: tuple = _NO_SPECIALS


def _int(lo=None, hi=None, *specials):
    return Param("int", lo, hi, specials=specials)


def _float(lo=None, hi=None, *specials, lo_open=False, hi_open=False):
    return Param("float", lo, hi, lo_open, hi_open, specials=specials)


def _choice(*choices):
    return Param("choice", choices=tuple(choices))


# Names of the sampler moves, boundaries, λ solvers and backends (see mme_numba.backends).
MOVE_NAMES = tuple(_MOVES)
BOUNDARY_NAMES = tuple(_BOUNDARIES)
LAMBDA_SOLVER_NAMES = ("newton", "adam")
BACKEND_NAMES = ("cpu", "cuda")

#: One entry per parameter of the estimators and of their public methods.
PARAMS = {
    # constructor (MaxEnt)
    "observables": Param("observables"),
    "support": Param("support"),
    "n_chains": _int(2, 10**7),
    "sweeps": _int(1, 10**9, "auto"),
    "burn_in": _int(0, 10**9),
    "step_size": _float(0, 1e6, "auto", lo_open=True),
    "target_acceptance": _float(1e-3, 1, hi_open=True),  # the adaptation floors acceptance at 1e-3
    "adapt_epochs": _int(0, None),
    "move": _choice("auto", *MOVE_NAMES),
    "boundary": _choice(*BOUNDARY_NAMES),
    "betas": Param("betas", specials=(None,)),
    "lambda_solver": _choice("auto", *LAMBDA_SOLVER_NAMES),
    "lr_lambda": _float(0, 10, lo_open=True),
    "lambda_steps": _int(1, 10**6),
    "min_ess": _float(0, 1, lo_open=True),
    "max_lambda_step": _float(0, 1e3, lo_open=True),
    "var_floor": _float(0, None),
    "max_epochs": _int(1, None, None),
    "validation_fraction": _float(0, 0.5, None, lo_open=True),
    "anchor_every": _int(1, None, None, "auto"),
    "backend": _choice(*BACKEND_NAMES),
    "dtype": Param("dtype"),  # "float64", "float32", np.float64 or np.float32 (spec.DTYPES)
    "comm": Param("comm"),
    "random_state": Param("seed"),
    # constructor (MinMaxEnt)
    "lr_theta": _float(0, 10, "auto", lo_open=True),
    "theta_kl_step": _float(0, 10, lo_open=True),
    "theta_steps": _int(1, 10**6),
    "batch_size": _int(1, None, None),
    # observable maps
    "degree": _int(1, 64),
    "n_features": _int(1, None, None),
    "d": _int(2, 10**5),  # squared_projections: d*(d-1)/2 angles
    "n_outputs": _int(1, 10**6),  # observables.compiled
    # fit
    "epochs": _int(0, None, "auto"),
    "checkpoint": Param("path", specials=(None,)),
    "checkpoint_every": _int(1, None),
    "progress": Param("bool"),
    "callback": Param("callable", specials=(None,)),
    # sample
    "n": _int(1, None),
    "sample_sweeps": _int(1, 10**9, None),
    # with_field
    "strength": _float(-1e6, 1e6),
    "base": Param("bool"),
    "field_random_state": Param("seed"),
    "target": _int(0, None),
    # log_partition / score_samples / entropy
    "method": _choice("auto", "ais", "quadrature"),
    "ais_chains": _int(2, 10**7, None),
    "ais_sweeps": _int(1, 10**6),
    "cess": _float(0, 1, lo_open=True, hi_open=True),
    "ais_random_state": Param("seed"),
    "n_grid": _int(3, 10**6, None),
}


def _is_special(value, specials):
    for s in specials:
        if value is s or (type(value) is type(s) and value == s):
            return True
    return False


def _fmt(v):
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def _describe(spec):
    """What a parameter expects, in words (for error messages)."""
    if spec.kind == "choice":
        what = "one of " + ", ".join(repr(c) for c in spec.choices)
    elif spec.kind in ("int", "float"):
        what = "an integer" if spec.kind == "int" else "a finite number"
        if spec.lo is not None and spec.hi is not None:
            what += (f" in {'(' if spec.lo_open else '['}{_fmt(spec.lo)}, {_fmt(spec.hi)}"
                     f"{')' if spec.hi_open else ']'}")
        elif spec.lo is not None:
            what += f" {'>' if spec.lo_open else '>='} {_fmt(spec.lo)}"
        elif spec.hi is not None:
            what += f" {'<' if spec.hi_open else '<='} {_fmt(spec.hi)}"
    else:
        what = {"bool": "True or False", "seed": "None, a non-negative int or a "
                "numpy.random.Generator", "callable": "a callable", "path": "a file path (str "
                "or os.PathLike)", "comm": "None or an mpi4py communicator"}.get(spec.kind, spec.kind)
    if spec.specials:
        what += "".join(f" or {s!r}" for s in spec.specials)
    return what


def _fail(exc, name, value, spec, why=""):
    raise exc(f"{name} must be {_describe(spec)}, got {value!r}{why}")


def check_param(name, value, spec=None):
    """Check ``value`` for the parameter ``name`` against its :data:`PARAMS` entry.

    Returns the value unchanged (it is valid), or raises ``TypeError``/``ValueError``. Names
    without an entry are accepted as they are.
    """
    spec = PARAMS.get(name) if spec is None else spec
    if spec is None or _is_special(value, spec.specials):
        return value
    kind = spec.kind
    if kind in ("int", "float"):
        if isinstance(value, (bool, np.bool_)):
            _fail(TypeError, name, value, spec, " (a bool)")
        if kind == "int":
            if isinstance(value, (float, np.floating)) and math.isfinite(value) \
                    and float(value).is_integer():
                x = int(value)  # 3.0 is the integer 3 (TOML and JSON write 1e3 as a float)
            elif not isinstance(value, (numbers.Integral, np.integer)):
                _fail(TypeError, name, value, spec, f" (type {type(value).__name__})")
            else:
                x = int(value)
        else:
            if not isinstance(value, (numbers.Real, np.integer, np.floating)):
                _fail(TypeError, name, value, spec, f" (type {type(value).__name__})")
            x = float(value)
            if not math.isfinite(x):
                _fail(ValueError, name, value, spec)
        if spec.lo is not None and (x < spec.lo or (spec.lo_open and x == spec.lo)):
            _fail(ValueError, name, value, spec)
        if spec.hi is not None and (x > spec.hi or (spec.hi_open and x == spec.hi)):
            _fail(ValueError, name, value, spec)
    elif kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            _fail(TypeError, name, value, spec)
    elif kind == "choice":
        if not isinstance(value, str):
            _fail(TypeError, name, value, spec)
        if value not in spec.choices:
            close = difflib.get_close_matches(value, spec.choices, n=1)
            _fail(ValueError, name, value, spec, f"; did you mean {close[0]!r}?" if close else "")
    elif kind == "seed":
        if isinstance(value, np.random.Generator) or value is None:
            return value
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral,
                                                                         np.integer)):
            _fail(TypeError, name, value, spec)
        if int(value) < 0:
            _fail(ValueError, name, value, spec)
    elif kind == "callable":
        if not callable(value):
            _fail(TypeError, name, value, spec)
    elif kind == "path":
        if not isinstance(value, (str, os.PathLike)) or os.fspath(value) == "":
            _fail(TypeError, name, value, spec)
    elif kind == "comm":
        if value is not None and not all(hasattr(value, a) for a in ("Get_size", "Get_rank")):
            _fail(TypeError, name, value, spec)
    elif kind == "observables":
        check_observables(value)
    elif kind == "support":
        parse_support(value, None)
    elif kind == "dtype":
        kernel_dtype(value, name)
    elif kind == "betas":
        from .tempering import resolve_ladder

        resolve_ladder(value)
    return value


def check_params(params):
    """Check every ``name: value`` of a parameter dict (see :func:`check_param`)."""
    for name, value in params.items():
        check_param(name, value)


def check_observables(obs, name="observables"):
    """An observable map: it needs the protocol of ``docs/architecture.md`` §1."""
    import inspect

    missing = [a for a in ("forward", "describe", "kernel_params", "theta", "get_config",
                           "n_observables") if inspect.getattr_static(obs, a, _MISSING) is _MISSING]
    if missing:
        raise TypeError(f"{name} must be an observable map (an mme_numba.nn network or a map "
                        f"from mme_numba.observables), got {obs!r} (missing {', '.join(missing)})")
    return obs


def copy_observables(obs):
    """A copy of an observable map sharing no memory with it (its ``copy()`` if it has one)."""
    import copy

    return obs.copy() if hasattr(obs, "copy") else copy.deepcopy(obs)


def as_generator(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    check_param("random_state", random_state, PARAMS["random_state"])
    return np.random.default_rng(None if random_state is None else int(random_state))


def parse_support(support, d):
    """``(lo, hi)`` as float64 arrays of shape ``(d,)``, validated (``d=None``: any shape)."""
    if support is None:
        raise ValueError("support is required: a pair (lo, hi) of scalars or (d,) arrays; "
                         "bounded observables make p(x) non-normalizable on an unbounded domain")
    if isinstance(support, (str, bytes, dict)):
        raise TypeError(f"support must be a pair (lo, hi) of numbers or (d,) arrays, got {support!r}")
    try:
        lo, hi = support
    except (TypeError, ValueError):
        raise ValueError(f"support must be a pair (lo, hi), got {support!r}") from None
    try:
        lo = np.asarray(lo)
        hi = np.asarray(hi)
        if lo.dtype.kind not in "iuf" or hi.dtype.kind not in "iuf":
            raise TypeError
        lo = lo.astype(np.float64)
        hi = hi.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"support must be a pair (lo, hi) of numbers or (d,) arrays, "
                        f"got {support!r}") from None
    if lo.ndim > 1 or hi.ndim > 1:
        raise ValueError(f"support bounds must be scalars or (d,) arrays, got shapes "
                         f"{lo.shape} and {hi.shape}")
    if d is None:
        try:
            d = np.broadcast_shapes(lo.shape, hi.shape)
        except ValueError:
            raise ValueError(f"support bounds have incompatible shapes {lo.shape} and "
                             f"{hi.shape}") from None
        d = d[0] if d else 1
    try:
        lo = np.broadcast_to(lo, (d,)).copy()
        hi = np.broadcast_to(hi, (d,)).copy()
    except ValueError:
        raise ValueError(f"support bounds have shapes {lo.shape} and {hi.shape}, the data has "
                         f"{d} features") from None
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError(f"support bounds must be finite, got lo={lo}, hi={hi}")
    if np.any(hi <= lo):
        raise ValueError(f"support must have lo < hi in every feature, got lo={lo}, hi={hi}")
    return lo, hi


def available_memory():
    """Bytes of memory available to this process (``MemAvailable`` on Linux), or ``None``."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on every platform
        return None


def check_sample_size(n, n_features, what="sample", name="n"):
    """Refuse an array of ``n`` rows of ``n_features`` float64 values that would not fit in
    memory, before allocating it (``ValueError`` naming ``name``)."""
    need = int(n) * int(n_features) * 8
    avail = available_memory()
    if avail is not None and need > avail:
        raise ValueError(f"{what}: {name}={n} rows of {n_features} float64 values need "
                         f"{need / 2**30:.3g} GiB, more than the {avail / 2**30:.3g} GiB of "
                         f"memory available; use a smaller {name}")
