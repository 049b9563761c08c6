"""Checkpoints are verified before use: every mutated file raises ModelFileError naming it.

Each mutation below rewrites a good checkpoint (recomputing the checksum unless the mutation
is about the checksum, so the specific check is the one exercised), loads it, and asserts a
``ModelFileError`` whose message names the file, with NumPy's global random state untouched.
"""

import json
import os
import re

import numpy as np
import pytest

import mme_numba as mme
from mme_numba import io as mio
from mme_numba import ModelFileError

X = mme.datasets.gaussian_mixture(100, means=(-2, 2), scales=(0.5, 0.5), seed=0)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "good.npz"
    m = mme.MinMaxEnt(mme.nn.mlp([1, 6, 2], random_state=0), (-6.0, 6.0), n_chains=8, sweeps=2,
                      burn_in=4, lambda_solver="adam", random_state=0).fit(X, epochs=2)
    m.save(path)
    return path


def _read(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def _write(path, arrays, meta, checksum=True):
    arrays = dict(arrays)
    if checksum and isinstance(meta, dict):
        meta["checksum"] = mio._checksum(arrays)
    arrays["meta"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    np.savez(path, **arrays)


def _global_state():
    s = np.random.get_state()
    return (s[0], s[1].copy(), *s[2:])


def _same_state(a, b):
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


def _arrays(fn):
    def mutate(arrays, meta):
        fn(arrays)
        return arrays, meta
    return mutate


def _meta(fn):
    def mutate(arrays, meta):
        fn(meta)
        return arrays, meta
    return mutate


def _drop(d, key):
    d.pop(key)


def _set(d, key, value):
    d[key] = value


ARRAY_KEYS = ["theta", "lambda", "chains", "rng_state", "step", "support_lo", "support_hi",
              "adam_lambda_m"]
META_KEYS = ["class", "params", "observables", "epoch", "n_features_in", "burned_in",
             "numpy_rng", "history"]

MUTATIONS = {
    **{f"missing array {k}": (_arrays(lambda a, k=k: _drop(a, k)), "missing array|incomplete")
       for k in ARRAY_KEYS},
    **{f"missing metadata {k}": (_meta(lambda m, k=k: _drop(m, k)), f"no '{k}'")
       for k in META_KEYS},
    "chains wrong shape": (_arrays(lambda a: _set(a, "chains", a["chains"][:-1])), "shape"),
    "lambda wrong shape": (_arrays(lambda a: _set(a, "lambda", np.zeros(5))), "shape"),
    "theta disagrees with the network": (
        _arrays(lambda a: _set(a, "theta", a["theta"][:-1])), "parameters"),
    "nan lambda": (_arrays(lambda a: a["lambda"].__setitem__(0, np.nan)), "non-finite"),
    "inf theta": (_arrays(lambda a: a["theta"].__setitem__(0, np.inf)), "non-finite"),
    "nan chains": (_arrays(lambda a: a["chains"].__setitem__((0, 0), np.nan)), "non-finite"),
    "chains outside the support": (
        _arrays(lambda a: a["chains"].__setitem__((0, 0), 7.0)), "outside the support"),
    "chains float32": (
        _arrays(lambda a: _set(a, "chains", a["chains"].astype(np.float32))), "dtype"),
    "rng_state int64": (
        _arrays(lambda a: _set(a, "rng_state", a["rng_state"].astype(np.int64))), "dtype"),
    "negative step": (_arrays(lambda a: a["step"].__setitem__(0, -1.0)), "positive"),
    "bit generator 'seed'": (
        _meta(lambda m: m["numpy_rng"].__setitem__("bit_generator", "seed")), "bit_generator"),
    "broken rng state": (
        _meta(lambda m: m["numpy_rng"].__setitem__("state", "x")), "numpy_rng"),
    "unknown move": (_meta(lambda m: m["params"].__setitem__("move", "bogus")), "move"),
    "n_chains a string": (_meta(lambda m: m["params"].__setitem__("n_chains", "8")), "n_chains"),
    "lr_lambda infinite": (
        _meta(lambda m: m["params"].__setitem__("lr_lambda", float("inf"))), "lr_lambda"),
    "unknown parameter": (_meta(lambda m: m["params"].__setitem__("colour", 1)), "colour"),
    "unknown metadata key": (_meta(lambda m: _set(m, "extra", 1)), "extra"),
    "class names a callable": (_meta(lambda m: _set(m, "class", "os.system")), "class"),
    "newer format": (_meta(lambda m: _set(m, "format_version", 99)), "newer"),
    "format version a string": (_meta(lambda m: _set(m, "format_version", "2")), "format"),
    "epoch negative": (_meta(lambda m: _set(m, "epoch", -1)), "epoch"),
    "epoch a float": (_meta(lambda m: _set(m, "epoch", 2.5)), "epoch"),
    "burned_in a string": (_meta(lambda m: _set(m, "burned_in", "no")), "burned_in"),
    "history not a list": (_meta(lambda m: _set(m, "history", 3)), "history"),
    "unknown layer type": (
        _meta(lambda m: m["observables"]["layers"][0].__setitem__("type", "Eval")), "layer"),
    "observables not a mapping": (_meta(lambda m: _set(m, "observables", [1])), "observables"),
    "controls not a mapping": (_meta(lambda m: _set(m, "controls", [])), "controls"),
    "controls ladder flags null": (
        _meta(lambda m: m["controls"].__setitem__("ladder_on", None)), "ladder_on"),
    "controls with a NaN": (
        _meta(lambda m: m["controls"].__setitem__("rate_factor", float("nan"))), "rate_factor"),
    "support disagrees": (
        _meta(lambda m: m["params"].__setitem__("support", [-5.0, 6.0])), "support"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_mutated_checkpoint_raises_model_file_error(good, tmp_path, name):
    mutate, match = MUTATIONS[name]
    arrays, meta = _read(good)
    arrays, meta = mutate(arrays, meta)
    bad = tmp_path / "bad.npz"
    _write(bad, arrays, meta)
    before = _global_state()
    with pytest.raises(ModelFileError, match=re.escape(repr(str(bad)))) as info:
        mme.load(bad)
    assert re.search(match, str(info.value)), str(info.value)
    assert _same_state(before, _global_state())


def test_stale_checksum_is_corruption(good, tmp_path):
    arrays, meta = _read(good)
    arrays["lambda"] = arrays["lambda"] + 1e-12     # silent corruption: a plausible value
    bad = tmp_path / "bad.npz"
    _write(bad, arrays, meta, checksum=False)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        mme.load(bad)


@pytest.mark.parametrize("cut", [0, 10, 200, 0.5, -20])
def test_truncated_or_empty_file(good, tmp_path, cut):
    data = good.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (cut % len(data) if cut < 0 else cut)
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[:n])
    before = _global_state()
    with pytest.raises(ModelFileError, match=re.escape(repr(str(bad)))):
        mme.load(bad)
    assert _same_state(before, _global_state())


@pytest.mark.parametrize("content, match", [
    (b"hello, not a model", "cannot be read"),
    (b"\x93NUMPY", "cannot be read"),
])
def test_not_a_model_file(tmp_path, content, match):
    bad = tmp_path / "x.npz"
    bad.write_bytes(content)
    with pytest.raises(ModelFileError, match=match):
        mme.load(bad)


def test_broken_metadata_and_a_bare_array(good, tmp_path):
    arrays, meta = _read(good)
    bad = tmp_path / "bad.npz"
    _write(bad, arrays, "{not json")
    with pytest.raises(ModelFileError, match="does not parse"):
        mme.load(bad)
    np.save(tmp_path / "arr.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match="not an .npz"):
        mme.load(tmp_path / "arr.npy")
    np.savez(bad, meta=np.zeros(3))
    with pytest.raises(ModelFileError, match="one JSON string"):
        mme.load(bad)


def test_pickled_arrays_are_refused_not_unpickled(tmp_path):
    bad = tmp_path / "pickle.npz"
    np.savez(bad, meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="cannot be read"):
        mme.load(bad)


def test_model_file_error_is_a_value_error_and_missing_files_stay_file_not_found(tmp_path):
    assert issubclass(ModelFileError, ValueError)
    with pytest.raises(FileNotFoundError):
        mme.load(tmp_path / "nope.npz")


def test_good_checkpoint_round_trips_and_format_1_still_loads(good, tmp_path):
    m = mme.load(good)
    assert m.is_fitted and m.epoch_ == 2
    arrays, meta = _read(good)
    meta.pop("checksum")
    meta["format_version"] = 1
    old = tmp_path / "v1.npz"
    _write(old, arrays, meta, checksum=False)
    np.testing.assert_array_equal(mme.load(old).lambda_, m.lambda_)


def test_a_loaded_model_owns_its_trained_copy(good):
    m = mme.load(good)
    assert m.observables is not m.observables_
    np.testing.assert_array_equal(m.observables.theta, m.observables_.theta)


def test_networks_are_verified_too(tmp_path):
    net = mme.nn.mlp([1, 4, 2], random_state=0)
    path = tmp_path / "net.npz"
    mio.save_network(net, path)
    np.testing.assert_array_equal(mio.load_network(path).theta, net.theta)
    arrays, meta = _read(path)
    arrays["theta"] = arrays["theta"] * 2
    _write(path, arrays, meta, checksum=False)
    with pytest.raises(ModelFileError, match="checksum"):
        mio.load_network(path)
    os.remove(path)
