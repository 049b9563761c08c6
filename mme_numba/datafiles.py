"""Files a user hands to mme_numba: data rows, saved models, sample outputs.

Each problem is an :class:`InputFileError` whose message starts with the path and says what
kind of problem it is (missing, not readable, not a zip archive, not an mme_numba model,
written by a newer version, wrong shape, a non-numeric entry at a given row and column).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["InputFileError", "DATA_FORMATS", "SAMPLE_FORMATS", "read_data_file",
           "check_readable", "check_model_file", "load_model", "sample_format",
           "write_samples"]

#: Data file formats read by :func:`read_data_file` (``[data] source = "file"``).
DATA_FORMATS = (".npy", ".npz", ".csv", ".txt")
#: Sample file formats written by :func:`write_samples` (``sample -o``, ``steer -o``).
SAMPLE_FORMATS = (".npy", ".npz", ".csv", ".txt")

_NPY_MAGIC = b"\x93NUMPY"


class InputFileError(ValueError):
    """A file mme_numba was given cannot be used; the message names the path."""

    def __init__(self, path, problem, expected=None):
        self.path = str(path)
        self.problem = problem
        self.expected = expected
        super().__init__(f"{path}: {problem}" + (f" ({expected})" if expected else ""))


def check_readable(path, what="file"):
    """Raise :class:`InputFileError` unless ``path`` is an existing, readable file."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, f"no such {what}")
    if path.is_dir():
        raise InputFileError(path, "is a folder", f"a {what}")
    if not os.access(path, os.R_OK):
        raise InputFileError(path, "not readable (permission denied)")
    return path


# ----------------------------------------------------------------------------- data
def read_data_file(path, key="X"):
    """Rows of a data file as a float64 array of shape ``(n_samples, n_features)``.

    Parameters
    ----------
    path : str or path-like
        ``.npy``; ``.npz`` (array ``key``); ``.csv`` (comma-separated) or ``.txt``
        (whitespace-separated), ``#`` comments and blank lines skipped. A 1-D array is one
        feature.
    key : str
        Array name in a ``.npz`` archive.

    Returns
    -------
    ndarray, shape (n_samples, n_features)

    Raises
    ------
    InputFileError
        Naming the file and, for bad entries, the line and column (text files) or the
        ``[row, column]`` index (arrays).
    """
    path = check_readable(path, "data file")
    suffix = path.suffix.lower()
    if suffix not in DATA_FORMATS:
        raise InputFileError(path, f"unknown data file format {suffix or '(no extension)'!r}",
                             "one of " + ", ".join(DATA_FORMATS))
    if suffix in (".csv", ".txt"):
        return _check_array(path, _read_text(path, "," if suffix == ".csv" else None))
    if suffix == ".npz":
        if not zipfile.is_zipfile(path):
            raise InputFileError(path, "not a zip archive, so not a .npz file")
        try:
            with np.load(path, allow_pickle=False) as f:
                if key not in f.files:
                    raise InputFileError(path, f"has no array {key!r}",
                                         "arrays in it: " + (", ".join(f.files) or "none")
                                         + "; set [data] key")
                X = f[key]
        except InputFileError:
            raise
        except ValueError as exc:
            raise InputFileError(path, f"array {key!r} cannot be read without pickle: {exc}",
                                 "a numeric array") from None
        return _check_array(path, X)
    with open(path, "rb") as fh:
        if fh.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise InputFileError(path, "not a .npy file (no NumPy header)",
                                 "a file written by numpy.save; text data must end in "
                                 ".csv or .txt")
    try:
        X = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise InputFileError(path, f"cannot be read without pickle: {exc}",
                             "a numeric array") from None
    return _check_array(path, X)


def _read_text(path, sep):
    rows, width, first = [], None, None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            fields = [f.strip() for f in (text.split(sep) if sep else text.split())]
            row = []
            for col, value in enumerate(fields, 1):
                try:
                    row.append(float(value))
                except ValueError:
                    raise InputFileError(path, f"line {lineno}, column {col}: {value!r} is not "
                                         "a number", "numbers only") from None
            if width is None:
                width, first = len(row), lineno
            elif len(row) != width:
                raise InputFileError(path, f"line {lineno} has {len(row)} columns, line {first} "
                                     f"has {width}", "the same number of columns in every row")
            rows.append(row)
    if not rows:
        raise InputFileError(path, "has no rows")
    return np.asarray(rows, dtype=np.float64)


def _check_array(path, X):
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise InputFileError(path, f"has shape {X.shape}", "a 2-D array (n_samples, n_features)")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InputFileError(path, f"has shape {X.shape}", "at least one row and one column")
    if X.dtype.kind not in "biuf":
        flat = X.reshape(len(X), -1)
        for i, j in np.ndindex(*flat.shape):
            try:
                float(flat[i, j])
            except (TypeError, ValueError):
                raise InputFileError(path, f"row {i}, column {j}: {flat[i, j]!r} is not a "
                                     "number", "a numeric array") from None
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:  # pragma: no cover - caught above
            raise InputFileError(path, str(exc), "a numeric array") from None
    X = np.asarray(X, dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputFileError(path, f"row {i}, column {j}: {X[i, j]} "
                             f"({int(bad.sum())} entries are not finite)", "finite numbers")
    return X


# ----------------------------------------------------------------------------- models
def check_model_file(path):
    """Raise :class:`InputFileError` unless ``path`` looks like a model ``mme_numba.load`` reads.

    Returns
    -------
    meta : dict
        The model's metadata.
    """
    from mme_numba import __version__
    from mme_numba.io import FORMAT_VERSION, READABLE_VERSIONS

    path = check_readable(path, "model file")
    if not zipfile.is_zipfile(path):
        raise InputFileError(path, "not a zip archive, so not an mme_numba model",
                             "a model.npz written by train or mme_numba.save")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "meta" not in f.files:
                raise InputFileError(path, "not an mme_numba model (no metadata)",
                                     "a model.npz written by train or mme_numba.save")
            meta = json.loads(str(f["meta"]))
    except InputFileError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputFileError(path, f"not an mme_numba model ({exc})") from None
    if not isinstance(meta, dict):
        raise InputFileError(path, "not an mme_numba model (bad metadata)")
    if "network" in meta and "class" not in meta:
        raise InputFileError(path, "is a saved network, not a model",
                             "a model; networks go to steer --classifier")
    version = meta.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise InputFileError(path, f"written by a newer mme_numba "
                             f"({meta.get('mme_numba_version', '?')}, file format {version})",
                             f"this is mme_numba {__version__}, reading format "
                             f"{FORMAT_VERSION}: upgrade mme_numba")
    if version not in READABLE_VERSIONS or "class" not in meta:
        raise InputFileError(path, f"not an mme_numba model (format version {version!r})",
                             f"format {FORMAT_VERSION}")
    return meta


def load_model(path):
    """:func:`mme_numba.load` after :func:`check_model_file`; problems name the file."""
    import mme_numba

    check_model_file(path)
    try:
        return mme_numba.load(path)
    except InputFileError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFileError(path, f"not a usable mme_numba model: {exc}") from None


# ----------------------------------------------------------------------------- samples
def sample_format(path):
    """The format of a sample output file, from its extension; checks the folder exists.

    Returns
    -------
    str
        One of :data:`SAMPLE_FORMATS`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SAMPLE_FORMATS:
        raise InputFileError(path, f"unknown output format {suffix or '(no extension)'!r}",
                             "a name ending in " + ", ".join(SAMPLE_FORMATS))
    folder = path.parent
    if not folder.is_dir():
        raise InputFileError(path, f"folder {folder} does not exist")
    if path.is_dir():
        raise InputFileError(path, "is a folder", "a file name")
    return suffix


def write_samples(path, X):
    """Write ``X`` to exactly ``path``, in the format its extension names.

    ``.npy`` (``numpy.save``), ``.npz`` (array ``X``), ``.csv`` (comma-separated) or ``.txt``
    (space-separated); both text formats read back with :func:`read_data_file`.
    """
    suffix = sample_format(path)
    X = np.asarray(X)
    with open(path, "wb") as fh:  # a file object: numpy appends no extension to it
        if suffix == ".npy":
            np.save(fh, X)
        elif suffix == ".npz":
            np.savez(fh, X=X)
        else:
            np.savetxt(fh, X, delimiter="," if suffix == ".csv" else " ", fmt="%.17g")
