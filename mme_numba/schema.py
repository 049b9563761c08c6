"""The configuration schema: every table and key a TOML configuration may hold, in one place.

The keys of ``[model]``, ``[observables]`` and ``[data]`` and their defaults are read from the
signatures of the functions they are passed to (``MinMaxEnt.__init__``, ``nn.mlp``,
``datasets.gaussian_mixture``, ...), and their descriptions from those functions' numpydoc
docstrings, so the schema cannot drift from the library. Only ``[train]`` and the data
sources without a function of their own (``gaussian``, ``file``) are written out here.

:func:`validate` checks a whole configuration and returns every problem at once;
:func:`validate_estimator_params` is the one place where the values of estimator
parameters are checked. :func:`markdown` renders the reference in ``docs/cli.md``
(``python -m mme_numba.schema docs/cli.md`` rewrites it).
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
from dataclasses import dataclass, field

__all__ = ["Problem", "Key", "REQUIRED", "TABLES", "table_keys", "estimator_params",
           "validate", "validate_estimator_params", "suggest", "markdown"]


class _Required:
    def __repr__(self):
        return "required"


#: Marks a key without a default.
REQUIRED = _Required()

#: The tables of a configuration, in file order.
TABLES = ("data", "observables", "model", "train")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration: ``FILE: [table] key: message (expected)``."""

    message: str
    table: str | None = None
    key: str | None = None
    expected: str | None = None
    file: str | None = None

    def __str__(self):
        where = []
        if self.file:
            where.append(f"{self.file}:")
        if self.table:
            where.append(f"[{self.table}]" + (f" {self.key}:" if self.key else ":"))
        text = " ".join(where + [self.message])
        return text + (f" ({self.expected})" if self.expected else "")


@dataclass(frozen=True)
class Key:
    """One configuration key: its default (or :data:`REQUIRED`), type and description."""

    name: str
    default: object = REQUIRED
    type: str = ""          # human-readable; checked by ``check`` where one is known
    doc: str = ""
    choices: tuple = ()
    check: object = field(default=None, compare=False, repr=False)

    @property
    def required(self):
        return self.default is REQUIRED


# ----------------------------------------------------------------------------- value checks
def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def _is_number_list(v):
    return isinstance(v, list) and len(v) > 0 and all(_is_number(x) for x in v)


def _int_at_least(lo):
    def check(v):
        if not _is_int(v):
            return f"{v!r} is not an integer", f"an integer >= {lo}"
        if v < lo:
            return f"{v} is too small", f"an integer >= {lo}"
        return None
    return check


def _optional(check):
    return lambda v: None if v is None else check(v)


def _number(v):
    return None if _is_number(v) else (f"{v!r} is not a finite number", "a number")


def _bool(v):
    return None if isinstance(v, bool) else (f"{v!r} is not a boolean", "true or false")


def _string(v):
    return None if isinstance(v, str) else (f"{v!r} is not a string", "a quoted string")


def _list_of(item_check, what):
    def check(v):
        if not isinstance(v, list) or not v:
            return f"{v!r} is not a list", what
        for x in v:
            bad = item_check(x)
            if bad:
                return f"{x!r} in {v!r}: {bad[0]}", what
        return None
    return check


def _epochs(v):
    if v == "auto":
        return None
    if not _is_int(v) or v < 1:
        return f"{v!r} is not allowed", 'an integer >= 1 or "auto"'
    return None


def _box(v):
    """``[lo, hi]``, each a number or a list of numbers."""
    what = "[lo, hi], each a number or a list of numbers"
    if not isinstance(v, list) or len(v) != 2:
        return f"{v!r} is not a pair", what
    for x in v:
        if not (_is_number(x) or _is_number_list(x)):
            return f"{x!r} is not a number or a list of numbers", what
    return None


def _check_for_default(default):
    """A type check inferred from a signature default, or None when it says nothing."""
    if isinstance(default, bool):
        return _bool
    if _is_int(default):
        return lambda v: None if _is_int(v) else (f"{v!r} is not an integer", "an integer")
    if isinstance(default, float):
        return _number
    if isinstance(default, tuple):
        return lambda v: None if isinstance(v, list) else (f"{v!r} is not a list", "a list")
    return None


def _type_for_default(default):
    if isinstance(default, bool):
        return "bool"
    if _is_int(default):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, tuple):
        return "list"
    return ""


#: Checks for keys whose signature default says nothing about their type (required keys,
#: ``None`` defaults). Estimator parameters are not listed: see validate_estimator_params.
_KNOWN_CHECKS = {
    "n": _int_at_least(1),
    "seed": _optional(_int_at_least(0)),
    "random_state": _optional(_int_at_least(0)),
    "sizes": _list_of(_int_at_least(1), "a list of positive integers, [d, h1, ..., m]"),
    "means": _list_of(_number, "a list of numbers"),
    "medians": _list_of(_number, "a list of numbers"),
    "scales": _list_of(_number, "a list of positive numbers"),
    "weights": _optional(_list_of(_number, "a list of numbers")),
    "labels": _optional(_list_of(_int_at_least(0), "a list of digit classes 0-9")),
    "d": _int_at_least(1),
    "degree": _int_at_least(1),
    "n_features": _optional(_int_at_least(1)),
    "n_outputs": _int_at_least(1),
    "kernel_size": _int_at_least(1),
    "image_shape": _list_of(_int_at_least(1), "[height, width]"),
    "channels": _list_of(_int_at_least(1), "a list of positive integers"),
    "activation": _string,
    "output_activation": _optional(_string),
}
_KNOWN_TYPES = {"n": "int", "seed": "int", "random_state": "int", "sizes": "list of int",
                "means": "list of float", "medians": "list of float", "scales": "list of float",
                "weights": "list of float", "labels": "list of int", "d": "int",
                "image_shape": "list of int", "channels": "list of int", "support": "[lo, hi]",
                "n_features": "int", "degree": "int"}


# ----------------------------------------------------------------------------- docstrings
def _param_docs(func):
    """``{name: (type, first sentence)}`` from a numpydoc ``Parameters`` section."""
    doc = inspect.getdoc(func) or ""
    m = re.search(r"^Parameters\n-+\n(.*?)(?:\n\n[A-Z][a-z]+\n-+\n|\Z)", doc, re.S | re.M)
    out = {}
    if not m:
        return out
    name = None
    for line in m.group(1).splitlines():
        head = re.match(r"^(\w+)\s*:\s*(.*)$", line)
        if head and not line.startswith(" "):
            name = head.group(1)
            out[name] = [head.group(2).strip(), ""]
        elif name and line.strip():
            out[name][1] += (" " if out[name][1] else "") + line.strip()
    return {k: (_clean_type(t), _first_sentence(d)) for k, (t, d) in out.items()}


def _clean_type(text):
    return re.split(r",\s*default\b", text)[0].strip()


def _first_sentence(text):
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text.replace("``", "`"))
    m = re.match(r"(.+?\.)(\s+[A-Z(]|$)", text)
    return m.group(1) if m else text


#: Descriptions for parameters a constructor leaves undocumented.
_FALLBACK_DOCS = {
    "random_state": "Seed of the initial parameters θ.",
    "degree": "Highest power: observables x, x², ..., x^degree per feature.",
    "n_features": "Input dimension (default: taken from the data).",
}


def _keys_from_signature(func, skip=(), docs_from=None):
    docs = {}
    for f in (docs_from or [func]):
        docs.update(_param_docs(f))
    keys = []
    for name, p in inspect.signature(func).parameters.items():
        if name in skip or name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = REQUIRED if p.default is p.empty else p.default
        check = _KNOWN_CHECKS.get(name) or (
            None if default is REQUIRED else _check_for_default(default))
        ty = _KNOWN_TYPES.get(name) or (docs.get(name, ("",))[0]
                                         or _type_for_default(default))
        doc = docs.get(name, ("", ""))[1] or _FALLBACK_DOCS.get(name, "")
        keys.append(Key(name, default, ty, doc, check=check))
    return keys


# ----------------------------------------------------------------------------- tables
def _data_sources():
    from mme_numba import datasets

    def fn(name):
        return _keys_from_signature(getattr(datasets, name))

    return {
        "gaussian_mixture": fn("gaussian_mixture"),
        "cauchy_mixture": fn("cauchy_mixture"),
        "digits": fn("digits"),
        "gaussian": [
            Key("n", REQUIRED, "int", "Number of rows.", check=_int_at_least(1)),
            Key("mean", REQUIRED, "list of float", "Mean vector, length d.",
                check=_list_of(_number, "a list of d numbers")),
            Key("cov", REQUIRED, "list of lists", "Covariance matrix, d x d.",
                check=_list_of(_list_of(_number, "a row of numbers"), "a d x d list of lists")),
            Key("seed", 0, "int", "Seed of the draw.", check=_optional(_int_at_least(0))),
        ],
        "file": [
            Key("path", REQUIRED, "str", "Data file: .npy, .npz, .csv or .txt, one row per "
                "sample (relative paths are read from the working folder).", check=_string),
            Key("key", "X", "str", "Array name inside a .npz file.", check=_string),
        ],
    }


_DATA_COMMON = [
    Key("source", REQUIRED, "str", "Where the rows come from.", check=_string),
    Key("keep_within", None, "[lo, hi]", "Drop rows outside this box (heavy-tailed data and "
        "a bounded support): the kept rows are draws from the truncated density.",
        check=_optional(_box)),
]


#: ``[observables] kind`` -> the (module, function) that builds it.
OBSERVABLES = {
    "mlp": ("mme_numba.nn", "mlp"),
    "paper_cnn": ("mme_numba.nn", "paper_cnn"),
    "polynomial": ("mme_numba.observables", "polynomial"),
    "squared_projections": ("mme_numba.observables", "squared_projections"),
}


def _observable_kinds():
    from importlib import import_module

    out = {}
    for kind, (module, name) in OBSERVABLES.items():
        func = getattr(import_module(module), name)
        out[kind] = _keys_from_signature(func)
    return out


_OBSERVABLES_COMMON = [Key("kind", REQUIRED, "str", "The observable map O(x; θ).",
                           check=_string)]

ESTIMATORS = ("MinMaxEnt", "MaxEnt")


def _estimator_class(name):
    import mme_numba

    return getattr(mme_numba, name)


def estimator_params(cls):
    """``{name: default}`` of an estimator's constructor, base classes included.

    ``observables`` (built from ``[observables]``) and ``comm`` (not configurable from a
    file) are left out; ``support`` has no default (:data:`REQUIRED`).
    """
    params = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        for name, p in inspect.signature(klass.__init__).parameters.items():
            if (name in ("self", "observables", "comm") or name in params
                    or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)):
                continue
            params[name] = REQUIRED if p.default is p.empty else p.default
    return params


def _model_keys(class_name):
    cls = _estimator_class(class_name)
    docs = {}
    for klass in reversed(cls.__mro__):
        if klass is not object:
            docs.update(_param_docs(klass))
    keys = [Key("class", "MinMaxEnt", "str", "The estimator.", choices=ESTIMATORS,
                check=_string)]
    for name, default in estimator_params(cls).items():
        ty = _KNOWN_TYPES.get(name) or docs.get(name, ("",))[0] or _type_for_default(default)
        keys.append(Key(name, default, ty, docs.get(name, ("", ""))[1]))
    return keys


def _train_keys():
    return [
        Key("epochs", None, 'int or "auto"', "Total epochs of the run (a resumed run "
            'continues up to this number); "auto" lets the estimator decide when to stop; '
            "default: the estimator's own (`fit`'s `epochs` default).", check=_epochs),
        Key("checkpoint_every", 10, "int", "Epochs between atomic checkpoints.",
            check=_int_at_least(1)),
        Key("eval_every", 0, "int", "Every this many epochs (d <= 2) log the entropy and, for "
            "synthetic data, KL(true || model) by quadrature; 0: never.",
            check=_int_at_least(0)),
        Key("out", None, "str", "Output folder (default `runs/<config file stem>`).",
            check=_optional(_string)),
    ]


def _train_epochs_default():
    """``train.epochs`` default: the default of the estimators' ``fit(X, epochs=...)``.

    ``None`` there means the estimator's ``default_epochs``.
    """
    p = inspect.signature(_estimator_class("MinMaxEnt").fit).parameters.get("epochs")
    return None if p is None or p.default is p.empty else p.default


def table_keys(table, variant=None):
    """The keys of ``table`` for ``variant`` (data source, observables kind, model class).

    Returns
    -------
    list of Key
    """
    if table == "data":
        sources = _data_sources()
        return _DATA_COMMON + (sources.get(variant, []) if variant else [])
    if table == "observables":
        kinds = _observable_kinds()
        return _OBSERVABLES_COMMON + (kinds.get(variant, []) if variant else [])
    if table == "model":
        return _model_keys(variant if variant in ESTIMATORS else "MinMaxEnt")
    if table == "train":
        keys = _train_keys()
        default = _train_epochs_default()
        return [Key(k.name, default, k.type, k.doc, check=k.check) if k.name == "epochs"
                else k for k in keys]
    raise KeyError(table)


def variants(table):
    """The values of a table's selecting key: data sources, observables kinds, classes."""
    if table == "data":
        return tuple(_data_sources())
    if table == "observables":
        return tuple(_observable_kinds())
    if table == "model":
        return ESTIMATORS
    return ()


_SELECTOR = {"data": "source", "observables": "kind", "model": "class"}


def defaults(table, variant=None):
    """``{key: default}`` of the keys that have one."""
    return {k.name: k.default for k in table_keys(table, variant) if not k.required}


# ----------------------------------------------------------------------------- estimators
def validate_estimator_params(cls, params):
    """Problems with estimator hyperparameters, as ``[(key, message, expected), ...]``.

    The one place where ``[model]`` values are checked, so a stricter validator plugs in here.
    Today: the type implied by each constructor default (an integer default takes integers,
    a float default numbers, a boolean default booleans), ``support`` as
    :func:`mme_numba._validation.parse_support` reads it, ``random_state`` as the estimators
    read it, and each remaining value through the estimator's own checks, one key at a time so
    that every bad key is reported.

    Parameters
    ----------
    cls : type
        ``MaxEnt`` or ``MinMaxEnt`` (or a subclass).
    params : dict
        Constructor keyword arguments (without ``observables``); unknown names are skipped.

    Returns
    -------
    list of (str, str, str or None)
    """
    import numpy as np

    from mme_numba import _validation

    signature = estimator_params(cls)
    doc_types = {}
    for klass in reversed(cls.__mro__):
        if klass is not object:
            doc_types.update({k: t for k, (t, _) in _param_docs(klass).items()})
    problems = []
    for key, value in params.items():
        if key not in signature:
            continue
        default = signature[key]
        if key == "support":
            bad = _box(value)
            if bad:
                problems.append((key, *bad))
                continue
            lo, hi = value
            d = max(len(v) if isinstance(v, list) else 1 for v in (lo, hi))
            try:
                _validation.parse_support((np.asarray(lo, float), np.asarray(hi, float)), d)
            except ValueError as exc:
                problems.append((key, _strip_key(str(exc), key), "lo < hi, finite"))
            continue
        if key == "random_state":
            if value is not None and not (_is_int(value) and value >= 0):
                problems.append((key, f"{value!r} is not allowed",
                                 "a non-negative integer, or leave it out"))
            continue
        # The default's type is a safe guess only where the docstring names no alternative
        # ("int or array", "{...}", "float, optional").
        documented = doc_types.get(key, "")
        alternatives = any(w in documented for w in ("array", "list", "sequence", " or ",
                                                      "{", "optional"))
        check = None if alternatives else _check_for_default(default)
        if default is not None and check is not None and value is not None:
            bad = check(value)
            if bad:
                problems.append((key, *bad))
                continue
        message = _estimator_check(cls, key, value)
        if message:
            problems.append((key, _strip_key(message, key), None))
    return problems


def _estimator_check(cls, key, value):
    """The estimator's own complaint about one parameter value, or None."""
    from mme_numba._validation import check_param

    try:
        check_param(key, value)   # the estimators' own table (mme_numba._validation.PARAMS)
        est = cls(None, (0.0, 1.0), **{key: value})
    except (TypeError, ValueError) as exc:
        return str(exc)
    from mme_numba import fitting

    # What the estimators check when fit starts beyond the table: the λ and θ optimizers.
    try:
        fitting.make_optimizers(est)
    except (TypeError, ValueError) as exc:
        return str(exc)
    except Exception:  # a check that needs more than the value: not ours to judge
        return None
    return None


def _strip_key(message, key):
    """``"n_chains must be >= 2, got 1"`` → ``"must be >= 2, got 1"`` (the key is printed)."""
    return message[len(key) + 1:] if message.startswith(key + " ") else message


# ----------------------------------------------------------------------------- validation
def suggest(name, candidates):
    """``" (did you mean 'x'?)"``-style hint, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown(table, key, known, elsewhere=None):
    hint = suggest(key, known)
    if hint:
        expected = f"did you mean {hint}?"
    elif elsewhere:
        expected = elsewhere
    else:
        expected = "known keys: " + ", ".join(sorted(known))
    return Problem("unknown key", table, key, expected)


def _check_table(table, values, keys, variant_note=""):
    problems = []
    known = {k.name: k for k in keys}
    for key, value in values.items():
        if key not in known:
            problems.append(_unknown(table, key, known))
            continue
        k = known[key]
        if k.choices and value not in k.choices:
            hint = suggest(str(value), k.choices) if isinstance(value, str) else None
            problems.append(Problem(f"{value!r} is not one of them", table, key,
                                    ("did you mean " + repr(hint) + "? " if hint else "")
                                    + "one of " + ", ".join(map(repr, k.choices))))
            continue
        if k.check is not None:
            bad = k.check(value)
            if bad:
                problems.append(Problem(bad[0], table, key, bad[1]))
    for k in keys:
        if k.required and k.name not in values:
            problems.append(Problem("missing", table, k.name,
                                    f"required{variant_note}" + (f": {k.type}" if k.type else "")))
    return problems


def validate(cfg):
    """Every problem of a configuration, without building or running anything expensive.

    Parameters
    ----------
    cfg : dict
        Tables as read from TOML (defaults may or may not be filled in).

    Returns
    -------
    list of Problem
        Empty when the configuration is valid.
    """
    problems = []
    for name in cfg:
        if name not in TABLES:
            hint = suggest(name, TABLES)
            problems.append(Problem(f"[{name}]: unknown table",
                                    expected=(f"did you mean [{hint}]?" if hint else
                                              "tables: " + ", ".join(f"[{t}]" for t in TABLES))))
    for table in TABLES:
        values = cfg.get(table, {})
        if not isinstance(values, dict):
            problems.append(Problem(f"{table} is not a table", expected=f"a [{table}] table"))
            continue
        selector = _SELECTOR.get(table)
        if selector is None:
            problems += _check_table(table, values, table_keys(table))
            continue
        choices = variants(table)
        variant = values.get(selector, "MinMaxEnt" if table == "model" else None)
        if selector not in values and table != "model":
            problems.append(Problem("missing", table, selector,
                                    "required: one of " + ", ".join(map(repr, choices))))
            continue
        if variant not in choices:
            hint = suggest(variant, choices) if isinstance(variant, str) else None
            problems.append(Problem(f"{variant!r} is not one of them", table, selector,
                                    (f"did you mean {hint!r}? " if hint else "") + "one of "
                                    + ", ".join(map(repr, choices))))
            continue
        keys = table_keys(table, variant)
        note = f" for {selector} = {variant!r}" if table != "model" else ""
        found = _check_table(table, values, keys, note)
        # A key of another variant (lr_theta with class = "MaxEnt"): say whose it is.
        others = {k.name: v for v in choices if v != variant
                  for k in table_keys(table, v)}
        for i, p in enumerate(found):
            if p.message == "unknown key" and p.key in others:
                owners = [v for v in choices if v != variant
                          and p.key in {k.name for k in table_keys(table, v)}]
                found[i] = Problem(f"not a key for {selector} = {variant!r}", table, p.key,
                                   f"a key of {selector} = " + " or ".join(map(repr, owners)))
        problems += found
        if table == "model":
            cls = _estimator_class(variant)
            bad_keys = {p.key for p in found}
            params = {k: v for k, v in values.items()
                      if k != "class" and k not in bad_keys}
            types = {k.name: k.type for k in keys}
            for key, message, expected in validate_estimator_params(cls, params):
                if not expected and types.get(key):
                    expected = "expected " + types[key]
                problems.append(Problem(message, "model", key, expected))
    return problems


# ----------------------------------------------------------------------------- docs
def _fmt_default(v):
    if v is REQUIRED:
        return "**required**"
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "`true`" if v else "`false`"
    if isinstance(v, str):
        return f'`"{v}"`'
    if isinstance(v, tuple):
        v = list(v)
    return f"`{v}`"


def _rows(keys):
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for k in keys:
        doc = k.doc.replace("|", "\\|")
        if k.choices:
            doc = (doc + " One of " + ", ".join(f'`"{c}"`' for c in k.choices) + ".").strip()
        ty = k.type.replace("|", "\\|")
        lines.append(f"| `{k.name}` | {ty} | {_fmt_default(k.default)} | {doc} |")
    return lines


def markdown():
    """The configuration reference (every key of every table) as Markdown."""
    out = ["<!-- generated by `python -m mme_numba.schema docs/cli.md`: do not edit by hand -->",
           ""]
    out += ["### `[data]`", "", "Where the training rows come from. Keys for every source:", ""]
    out += _rows(_DATA_COMMON)
    for source, keys in _data_sources().items():
        out += ["", f'`source = "{source}"`:', ""] + _rows(keys)
    out += ["", "### `[observables]`", "", "The observable map O(x; θ); `kind` picks the "
            "constructor, the other keys are its arguments.", ""]
    out += _rows(_OBSERVABLES_COMMON)
    for kind, keys in _observable_kinds().items():
        out += ["", f'`kind = "{kind}"`:', ""] + _rows(keys)
    out += ["", "### `[model]`", "", "The estimator's constructor arguments. "
            '`class = "MinMaxEnt"` takes every key below; `class = "MaxEnt"` all but '
            + ", ".join(f"`{k}`" for k in _minmaxent_only()) + ".", ""]
    out += _rows(table_keys("model", "MinMaxEnt"))
    out += ["", "### `[train]`", "", "How long to train and where the run folder goes.", ""]
    out += _rows(table_keys("train"))
    return "\n".join(out) + "\n"


def _minmaxent_only():
    a = {k.name for k in table_keys("model", "MinMaxEnt")}
    b = {k.name for k in table_keys("model", "MaxEnt")}
    return sorted(a - b)


BEGIN, END = "<!-- schema:begin -->", "<!-- schema:end -->"


def update_doc(path):
    """Rewrite the part of ``path`` between the schema markers; returns True if it changed."""
    from pathlib import Path

    path = Path(path)
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + "\n" + markdown() + END + tail
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":  # pragma: no cover
    import sys

    if len(sys.argv) > 1:
        print("updated" if update_doc(sys.argv[1]) else "up to date", sys.argv[1])
    else:
        sys.stdout.write(markdown())


# ----------------------------------------------------------------------------- [sweep]
#: ``[sweep]`` keys that are options, not grid axes.
OPTIONS = ("ranks",)
#: Shorthands for grid axes.
ALIASES = {"seed": "model.random_state"}


def check_sweep_table(table):
    """Problems of a ``[sweep]`` table (list of :class:`mme_numba.schema.Problem`)."""
    problems = []
    if not isinstance(table, dict):
        return [Problem("sweep is not a table", expected="a [sweep] table")]
    axes = 0
    for key, values in table.items():
        if key in OPTIONS:
            if isinstance(values, bool) or not isinstance(values, int) or values < 1:
                problems.append(Problem(f"{values!r} is not a number of ranks", "sweep", key,
                                        "an integer >= 1"))
            continue
        dotted = ALIASES.get(key, key)
        parts = dotted.split(".")
        if len(parts) != 2 or parts[0] not in TABLES or not parts[1]:
            problems.append(Problem("not a grid axis", "sweep", key,
                                    '"table.key" with table one of ' + ", ".join(TABLES)
                                    + ", or " + ", ".join(repr(a) for a in (*ALIASES, *OPTIONS))))
            continue
        if not isinstance(values, list) or not values:
            problems.append(Problem(f"{values!r} is not a list of values", "sweep", key,
                                    "a non-empty list, e.g. [0, 1]"))
            continue
        axes += 1
    if not axes and not problems:
        problems.append(Problem("no grid axis", "sweep", None,
                                'at least one "table.key" = [values] (or seed = [...])'))
    return problems
