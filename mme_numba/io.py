"""The file format of saved models and networks: one ``.npz`` of arrays plus JSON metadata.

Reading verifies a file before anything in it is used (:class:`Reader`): structure, shapes,
dtypes, finite values, names from fixed sets, and a SHA-256 checksum of the arrays stored in
the metadata. Any file that cannot be trusted raises :class:`ModelFileError` (a
``ValueError``) naming the file. Reading never unpickles, never calls anything a file names
(bit generators come from a fixed allow-list) and never touches NumPy's global state.
Files are written atomically (temporary file in the same folder, ``fsync``, ``os.replace``):
a crash mid-write leaves the previous file intact.

What a model's file holds, and how a model is rebuilt from it, is :mod:`mme_numba.checkpoint`;
this module knows no estimator.
"""

import json
import os
import tempfile

import numpy as np

__all__ = ["write", "Reader", "save_network", "load_network", "FORMAT_VERSION",
           "READABLE_VERSIONS", "ModelFileError"]

#: Version 2 adds the checksum of the arrays; version 1 files (no checksum) still load.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


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



def write(path, meta, arrays):
    """Write ``arrays`` and the JSON ``meta`` (checksum and format version added) atomically."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    meta = {"format_version": FORMAT_VERSION, **meta, "checksum": _checksum(arrays)}
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
    r = Reader(path)
    meta = r.meta
    if "network" not in meta:
        r.fail("not a saved mme_numba network (it may be a model: use mme_numba.load)")
    r.check_keys(meta, {"format_version", "network", "checksum"}, "metadata")
    net = r.network(meta["network"], r.float_array("theta", 1), "network")
    return net




class Reader:
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


