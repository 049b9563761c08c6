"""Property-based fuzzing of the public API (hypothesis).

Every strategy draws an argument together with a label: ``True`` when the value is valid for
that argument, ``False`` when the library must refuse it. Each call then has one outcome:

- ``ok``: a valid call that succeeded and met its contract (finite values, right shapes,
  samples inside the support);
- ``rejected``: an invalid call refused with ``ValueError``/``TypeError``/``ModelFileError``
  and a message;
- failures: ``invalid_accepted`` (an invalid value went through), ``valid_rejected``,
  ``contract`` (a success with non-finite or misshapen results), ``raw_error`` (any other
  exception), ``hang`` (past the per-call time limit).

Failures fail the test. Profiles: the default is fixed (``derandomize``) and small, for CI;
``MME_FUZZ_PROFILE=long`` runs many more examples, and ``MME_FUZZ_REPORT=counts.json`` writes
the counts by target and outcome (``docs/reliability.md``).
"""

import collections
import copy
import json
import math
import os
import signal
import threading

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import mme_numba as mme  # noqa: E402
from mme_numba import ModelFileError, config as cfgmod  # noqa: E402
from mme_numba import io as mio  # noqa: E402

LONG = os.environ.get("MME_FUZZ_PROFILE") == "long"
FUZZ = settings(max_examples=int(os.environ.get("MME_FUZZ_EXAMPLES", 400 if LONG else 12)),
                deadline=20000 if LONG else 10000, derandomize=not LONG, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True)
CALL_LIMIT_S = 60          # a call still running after this is a hang
SUPPORT = (-6.0, 6.0)
X = mme.datasets.gaussian_mixture(60, means=(-2, 2), scales=(0.5, 0.5), seed=0)
TINY = dict(n_chains=4, sweeps=1, burn_in=2, random_state=0)
COUNTS = collections.Counter()
ALLOWED = (ValueError, TypeError)     # ModelFileError is a ValueError


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def outcome(target, valid, call, contract=lambda result: True):
    """Run ``call()``, classify it, count it; return the outcome."""
    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(signal,
                                                                                   "SIGALRM")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(CALL_LIMIT_S)
    try:
        result = call()
    except Hang:
        kind, detail = "hang", ""
    except ALLOWED as exc:
        kind = "rejected" if not valid else "valid_rejected"
        detail = f"{type(exc).__name__}: {exc}"
        if not str(exc):
            kind = "raw_error"
    except Exception as exc:  # noqa: BLE001 - classifying is the point
        kind, detail = "raw_error", f"{type(exc).__name__}: {exc}"
    else:
        if not valid:
            kind, detail = "invalid_accepted", repr(result)[:200]
        else:
            try:
                good = contract(result)
            except Exception as exc:  # noqa: BLE001
                good, detail = False, f"{type(exc).__name__}: {exc}"
            else:
                detail = ""
            kind = "ok" if good else "contract"
    finally:
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
    COUNTS[target, kind] += 1
    assert kind in ("ok", "rejected"), f"{target}: {kind} {detail}"
    return kind


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    path = os.environ.get("MME_FUZZ_REPORT")
    if path:
        rows = collections.defaultdict(dict)
        for (target, kind), n in sorted(COUNTS.items()):
            rows[target][kind] = n
        with open(path, "w") as fh:
            json.dump(rows, fh, indent=1, sort_keys=True)


# ---------------------------------------------------------------------- labelled values
def good(s):
    return s.map(lambda v: (v, True))


def bad(s):
    return s.map(lambda v: (v, False))


JUNK = st.sampled_from(["3", "no", "", b"1", [1], {"a": 1}, (), 1j, object()])
BOOLS = st.sampled_from([True, False, np.True_, np.False_])
NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf, np.float64("nan")])


def ints(lo, hi, table_hi=None):
    """Integers in ``[lo, hi]`` (also as NumPy ints and integral floats) are valid; below
    ``lo``, above ``table_hi``, fractional, bools, strings, None are not."""
    ok = st.integers(lo, hi)
    wrong = [st.integers(max_value=lo - 1), BOOLS, JUNK, NONFINITE, st.none(),
             st.sampled_from([0.5, 2.5, -1.5, 1e-9 + lo]), st.integers(lo, hi).map(str)]
    if table_hi is not None:
        wrong.append(st.integers(table_hi + 1, table_hi * 10 + 10))
    return (good(ok | ok.map(np.int64) | ok.map(float)) | bad(st.one_of(*wrong)))


def floats(lo, hi, lo_open=False, hi_open=False, table_lo=None, table_hi=None):
    ok = st.floats(lo, hi, exclude_min=lo_open, exclude_max=hi_open, allow_nan=False)
    wrong = [BOOLS, JUNK, NONFINITE, st.none(), ok.map(str)]
    if table_lo is not None:
        wrong.append(st.floats(max_value=table_lo, exclude_max=not lo_open, allow_nan=False,
                               allow_infinity=False, min_value=-1e300))
    if table_hi is not None:
        wrong.append(st.floats(min_value=table_hi, exclude_min=not hi_open, allow_nan=False,
                               allow_infinity=False, max_value=1e300))
    return good(ok | ok.map(np.float64)) | bad(st.one_of(*wrong))


def choice(names):
    return (good(st.sampled_from(names))
            | bad(st.sampled_from([n.upper() for n in names] + [n + "x" for n in names]
                                  + ["", "bogus"]) | JUNK | BOOLS | st.none()))


SEEDS = (good(st.none() | st.integers(0, 2**63) | st.integers(0, 99).map(np.random.default_rng))
         | bad(st.integers(max_value=-1) | BOOLS | JUNK | st.sampled_from([1.5, "1"])))

# Valid ranges are kept small so that every fit is quick; the tables' limits are larger.
PARAM_VALUES = {
    "n_chains": ints(2, 8, table_hi=10**7),
    "sweeps": ints(1, 3, table_hi=10**9),
    "burn_in": ints(0, 12, table_hi=10**9),
    "step_size": good(st.just("auto")) | floats(1e-3, 1e6, table_lo=0.0, table_hi=1e6, hi_open=False),
    "target_acceptance": floats(1e-3, 1.0, False, True, table_lo=1e-3, table_hi=1.0),
    "adapt_epochs": ints(0, 5),
    "move": good(st.just("auto")) | choice(["all", "single", "scan", "mala"]),
    "boundary": choice(["reflect", "reject"]),
    "lambda_solver": choice(["newton", "adam"]),
    "lr_lambda": floats(1e-6, 10.0, table_lo=0.0, table_hi=10.0, hi_open=False),
    "lambda_steps": ints(1, 3, table_hi=10**6),
    "min_ess": floats(1e-3, 1.0, table_lo=0.0, table_hi=1.0),
    "max_lambda_step": floats(1e-3, 1e3, table_lo=0.0, table_hi=1e3),
    "var_floor": floats(0.0, 1e-3, table_lo=0.0),
    "backend": good(st.just("cpu")) | bad(st.sampled_from(["gpu", "CPU", "tpu", ""]) | JUNK),
    "random_state": SEEDS,
    "lr_theta": good(st.just("auto")) | floats(1e-6, 10.0, table_lo=0.0, table_hi=10.0),
    "theta_kl_step": floats(1e-6, 10.0, table_lo=0.0, table_hi=10.0),
    "max_epochs": good(st.none()) | ints(1, 50).filter(lambda p: p[0] is not None),
    "theta_steps": ints(1, 3, table_hi=10**6),
    "batch_size": good(st.none()) | ints(1, 80).filter(lambda p: p[0] is not None),
}
PARAM_NAMES = sorted(PARAM_VALUES)


def _obs(kind="mlp"):
    return mme.nn.mlp([1, 6, 2], random_state=0) if kind == "mlp" else \
        mme.observables.polynomial(2)


OBSERVABLES = (good(st.sampled_from(["mlp", "poly"]).map(_obs))
               | bad(st.sampled_from([None, "mlp", [1, 6, 2], 3]) | st.just("mlp2").map(
                   lambda _: mme.nn.mlp([2, 4, 2], random_state=0))))
SUPPORTS = (good(st.sampled_from([SUPPORT, [-6, 6], (np.array([-6.0]), np.array([6.0])),
                                  (-10.0, 1e6)]))
            | bad(st.sampled_from([None, (6.0, -6.0), (-math.inf, 6.0), "ab", (-1.0, 1.0),
                                   (1.0,), ((-6, -6), (6, 6)), (math.nan, 6.0), (-6.0, "6"),
                                   ((-6, 6), 6), 6.0])))


def _finite_model(m):
    lo, hi = m.support_
    assert np.all(np.isfinite(m.lambda_)) and np.all(np.isfinite(m.observables_.theta))
    assert np.all((m.chains_ >= lo) & (m.chains_ <= hi))
    e = m.energy(np.linspace(lo, hi, 9))
    assert e.shape == (9,) and np.all(np.isfinite(e))
    return True


@pytest.fixture(scope="module")
def fitted():
    """A small fitted model, with every move compiled before any example runs."""
    for move in ("all", "single", "scan", "mala"):
        mme.MinMaxEnt(_obs(), SUPPORT, move=move, **TINY).fit(X, 1).sample(2)
    return mme.MinMaxEnt(_obs(), SUPPORT, **TINY).fit(X, epochs=2)


# ---------------------------------------------------------------------- targets
@FUZZ
@given(name=st.sampled_from(PARAM_NAMES + ["observables", "support", "comm"]), data=st.data())
def test_constructor_and_fit(fitted, name, data):
    if name == "observables":
        value, valid = data.draw(OBSERVABLES)
    elif name == "support":
        value, valid = data.draw(SUPPORTS)
    elif name == "comm":
        value, valid = data.draw(good(st.none()) | bad(st.sampled_from(["world", 1]) | JUNK))
    else:
        value, valid = data.draw(PARAM_VALUES[name])
    kw = {**TINY, "observables": _obs(), "support": SUPPORT, name: value}
    outcome("constructor+fit", valid, lambda: mme.MinMaxEnt(**kw).fit(X, epochs=2),
            _finite_model)


X_VALUES = (good(st.sampled_from(["data", "list", "int"]).map(
    lambda k: X if k == "data" else X.tolist() if k == "list" else np.round(X).astype(int)))
            | bad(st.sampled_from(["1d", "nan", "str", "empty", "outside", "3d", "2col", "none"])
                  .map(lambda k: {"1d": X[:, 0], "nan": np.full((5, 1), np.nan), "str": "X",
                                  "empty": np.zeros((0, 1)), "outside": X * 10,
                                  "3d": X[None], "2col": np.hstack([X, X]), "none": None}[k])))


FIT_ARGS = {
    "X": X_VALUES,
    "epochs": good(st.integers(0, 2)) | bad(st.sampled_from([-1, 1.5, "2", True, math.nan])),
    "checkpoint_every": ints(1, 3),
    "progress": good(st.booleans()) | bad(st.sampled_from(["no", 1, None])),
    "callback": good(st.sampled_from([None, lambda m, r: None])) | bad(st.sampled_from(
        [3, "cb"])),
    "checkpoint": good(st.sampled_from([None, "ck.npz"])) | bad(st.sampled_from([3, "", b"x"])),
}


def _one_suspect(data, table):
    """Draw every argument valid except possibly one, so a refusal points at one argument."""
    suspect = data.draw(st.sampled_from(sorted(table)))
    args = {}
    for name, strategy in table.items():
        strategy = strategy if name == suspect else strategy.filter(lambda p: p[1])
        args[name] = data.draw(strategy, label=name)
    return {k: v[0] for k, v in args.items()}, all(v[1] for v in args.values())


@FUZZ
@given(data=st.data())
def test_fit_arguments(fitted, tmp_path_factory, data):
    args, valid = _one_suspect(data, FIT_ARGS)
    m = copy.deepcopy(fitted)
    if args["checkpoint"] == "ck.npz":
        args["checkpoint"] = str(tmp_path_factory.mktemp("fuzz") / "ck.npz")
    X_arg = args.pop("X")
    outcome("fit arguments", valid, lambda: m.fit(X_arg, **args), _finite_model)


@FUZZ
@given(n=good(st.integers(1, 40)) | good(st.integers(1, 40).map(np.int64))
       | bad(st.sampled_from([0, -1, 10**13, 10**15, 2.5, "3", True, None, math.inf])),
       sweeps=good(st.sampled_from([None, 1, 2])) | bad(st.sampled_from([0, -2, 1.5, "1",
                                                                          False])))
def test_sample(fitted, n, sweeps):
    m = copy.deepcopy(fitted)
    lo, hi = m.support_

    def contract(xs):
        return (xs.shape == (int(n[0]), 1) and np.all(np.isfinite(xs))
                and np.all((xs >= lo) & (xs <= hi)))

    outcome("sample", n[1] and sweeps[1], lambda: m.sample(n[0], sweeps=sweeps[0]), contract)


ENERGY_X = (good(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20).map(
    lambda v: np.array(v)[:, None]))
            | bad(st.sampled_from(["nan", "inf", "str", "1d", "2col", "empty"]).map(
                lambda k: {"nan": np.array([[np.nan]]), "inf": np.array([[np.inf]]),
                           "str": [["a"]], "1d": np.zeros(3), "2col": np.zeros((3, 2)),
                           "empty": np.zeros((0, 1))}[k])))


@FUZZ
@given(x=ENERGY_X)
def test_energy(fitted, x):
    outcome("energy", x[1], lambda: fitted.energy(x[0]),
            lambda e: e.shape == (len(x[0]),) and np.all(np.isfinite(e)))


def _classifier(d=1):
    net = mme.nn.Sequential([*mme.nn.mlp([d, 4, 3], random_state=1).layers,
                             mme.nn.LogSoftmax()])
    return net


FIELDS = (good(st.integers(0, 2).map(lambda c: mme.fields.ClassifierField(_classifier(), c)))
          | bad(st.sampled_from(["net", "wrong_d", None, "field"]).map(
              lambda k: {"net": _classifier(),
                         "wrong_d": mme.fields.ClassifierField(_classifier(2), 0)}.get(k, k))))


FIELD_ARGS = {
    "field": FIELDS,
    "strength": floats(-1e6, 1e6) | bad(st.sampled_from([1e7, -1e9])),
    "base": good(st.booleans()) | bad(st.sampled_from(["no", 0, None])),
    "random_state": SEEDS,
}


@FUZZ
@given(data=st.data())
def test_with_field(fitted, data):
    args, valid = _one_suspect(data, FIELD_ARGS)

    def call():
        steered = fitted.with_field(args.pop("field"), **args)
        return steered, steered.sample(8)

    def contract(result):
        steered, xs = result
        lo, hi = fitted.support_
        return (xs.shape == (8, 1) and np.all((xs >= lo) & (xs <= hi))
                and 0.0 <= steered.field_ess_ <= 1.0 and _finite_model(steered))

    outcome("with_field", valid, call, contract)


@FUZZ
@given(name=st.sampled_from(PARAM_NAMES + ["no_such_param", "moves"]), data=st.data())
def test_set_params_then_sample_and_fit(fitted, name, data):
    value, valid = data.draw(PARAM_VALUES[name]) if name in PARAM_VALUES else (1, False)
    m = copy.deepcopy(fitted)
    if name == "n_chains":  # fixed once fitted: only the fitted count is valid
        valid = valid and int(value) == len(m.chains_)

    def call():
        m.set_params(**{name: value})
        return m.sample(5), m.fit(X, epochs=1)

    outcome("set_params", valid, call, lambda r: r[0].shape == (5, 1) and _finite_model(r[1]))


# ---------------------------------------------------------------------- observable maps
SIZES = (good(st.lists(st.integers(1, 6), min_size=2, max_size=4).map(lambda v: [1] + v[1:]))
         | bad(st.sampled_from([[], [1], [1, 0, 2], [1, -2], [1, 2.5], [1, "2"], "12", None,
                                [1, True], 3])))
OBS_ARGS = {
    "mlp": {"sizes": SIZES,
            # activation names are case-insensitive by design ("Tanh" is tanh)
            "activation": good(st.sampled_from(["tanh", "softplus", "sigmoid", "relu", "TANH"]))
            | bad(st.sampled_from(["tanhx", "bogus", "", None, 3, True])),
            "random_state": SEEDS},
    "polynomial": {"degree": ints(1, 4, table_hi=64),
                   "n_features": good(st.none()) | ints(1, 1).filter(lambda p: p[0] is not None)},
    "squared_projections": {"d": ints(2, 4, table_hi=10**5), "random_state": SEEDS},
}


@FUZZ
@given(kind=st.sampled_from(sorted(OBS_ARGS)), data=st.data())
def test_observable_constructors(kind, data):
    args, valid = _one_suspect(data, OBS_ARGS[kind])
    build = {"mlp": mme.nn.mlp, "polynomial": mme.observables.polynomial,
             "squared_projections": mme.observables.squared_projections}[kind]

    def contract(obs):
        d = obs.n_features or 1
        out = obs.forward(np.full((3, d), 0.5))
        return out.shape == (3, obs.n_observables) and np.all(np.isfinite(out))

    outcome(f"{kind} constructor", valid, lambda: build(**args), contract)


@FUZZ
@given(target=ints(0, 2), net=good(st.just("ok")) | bad(st.sampled_from(["plain", None, 3])))
def test_field_constructor(target, net):
    valid = target[1] and net[1] and not (isinstance(target[0], (int, float, np.integer))
                                          and target[0] > 2)
    network = {"ok": _classifier(), "plain": mme.nn.mlp([1, 3])}.get(net[0], net[0])
    outcome("ClassifierField constructor", valid,
            lambda: mme.fields.ClassifierField(network, target[0]),
            lambda f: np.all(np.isfinite(f(np.zeros((2, 1))))))


# ---------------------------------------------------------------------- checkpoints
JSON_JUNK = st.sampled_from([None, -1, 0, 2.5, 1e308, "x", "", [], {}, True, [1, 2], {"a": 1}])


@pytest.fixture(scope="module")
def checkpoint(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzzck") / "good.npz"
    fitted.save(path)
    return path


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(node, list) and node and len(node) < 50:
        for i, v in enumerate(node):
            yield from _leaves(v, path + (i,))
    yield path


@FUZZ
@given(kind=st.sampled_from(["truncate", "flip", "meta", "array"]), data=st.data())
def test_load_mutated_checkpoint(fitted, checkpoint, tmp_path_factory, kind, data):
    raw = checkpoint.read_bytes()
    bad_path = tmp_path_factory.mktemp("mut") / "m.npz"
    if kind == "truncate":
        bad_path.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1))])
    elif kind == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        b = bytearray(raw)
        b[i] ^= data.draw(st.integers(1, 255))
        bad_path.write_bytes(bytes(b))
    else:
        with np.load(checkpoint, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta")))
        if kind == "meta":
            leaves = sorted(_leaves(meta), key=repr)
            where = data.draw(st.sampled_from([p for p in leaves if p]))
            node = meta
            for k in where[:-1]:
                node = node[k]
            if data.draw(st.booleans()) and isinstance(node, dict):
                del node[where[-1]]
            else:
                node[where[-1]] = data.draw(JSON_JUNK)
        else:
            name = data.draw(st.sampled_from(sorted(arrays)))
            how = data.draw(st.sampled_from(["nan", "shape", "dtype", "scale"]))
            a = arrays[name]
            if how == "nan":
                arrays[name] = np.full_like(a, np.nan) if a.dtype.kind == "f" else a.reshape(-1)[:0]
            elif how == "shape":
                arrays[name] = np.concatenate([a.ravel(), a.ravel()])
            elif how == "dtype":
                arrays[name] = a.astype(np.int32 if a.dtype.kind == "f" else np.float32)
            else:
                arrays[name] = a * 100
        meta["checksum"] = mio._checksum(arrays)
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez(bad_path, **arrays)
    before = np.random.get_state()[1].copy()

    def call():
        try:
            m = mme.load(bad_path)
        except ModelFileError as exc:
            assert str(bad_path) in str(exc), "the error must name the file"
            raise
        return m, m.sample(4)

    def contract(result):
        m, xs = result
        lo, hi = m.support_
        return _finite_model(m) and np.all((xs >= lo) & (xs <= hi))

    # A mutation may be harmless (a history value, a byte in zip padding): loading is then
    # right, and the loaded model must still meet the contract. Anything else must be refused.
    kind_out = outcome_load(call, contract)
    assert np.array_equal(before, np.random.get_state()[1])
    assert kind_out in ("ok", "rejected")


def outcome_load(call, contract):
    """Like :func:`outcome`, for files whose validity is unknown: refusals must be
    ``ModelFileError``; successes must meet the contract."""
    try:
        result = call()
    except ModelFileError as exc:
        kind, detail = ("rejected", "") if str(exc) else ("raw_error", "empty message")
    except Exception as exc:  # noqa: BLE001
        kind, detail = "raw_error", f"{type(exc).__name__}: {exc}"
    else:
        try:
            ok = contract(result)
            detail = ""
        except Exception as exc:  # noqa: BLE001
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        kind = "ok" if ok else "contract"
    COUNTS["load mutated checkpoint", kind] += 1
    assert kind in ("ok", "rejected"), f"load: {kind} {detail}"
    return kind


# ---------------------------------------------------------------------- CLI --set
def _toml(value):
    """TOML text of a value, or None when TOML cannot write it."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) \
            else repr(v)
    if isinstance(value, str):
        return json.dumps(value)
    return None


@FUZZ
@given(name=st.sampled_from(PARAM_NAMES), data=st.data(), quoted=st.booleans())
def test_cli_set_values(name, data, quoted):
    value, valid = data.draw(PARAM_VALUES[name])
    text = _toml(value)
    if text is None:
        return
    if isinstance(value, str) and not quoted:
        text = value  # bare words are read as strings too
        if text.strip() != text or text in ("", "true", "false", "nan", "inf") or \
                _parses_as_number(text):
            return
    if name == "random_state" and isinstance(value, int) and value >= 2**63:
        return  # TOML integers are 64-bit signed
    cfg = {"data": {}, "observables": {"kind": "mlp", "sizes": [1, 6, 2]},
           "model": {"class": "MinMaxEnt", "support": [-6.0, 6.0], "n_chains": 8},
           "train": {}}

    def call():
        c = cfgmod.apply_overrides(cfg, [f"model.{name}={text}"])
        model = cfgmod.build_model(c)
        model._validate_params()     # what fit and the CLI's train do first
        return model

    outcome("CLI --set", valid, call)


def _parses_as_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False
