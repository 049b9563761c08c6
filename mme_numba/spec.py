"""The codes every layer reads, defined once: network ops, moves, boundaries, the empty field.

A network is described to the compiled kernels by an int64 table ``spec (n_rows,
SPEC_WIDTH)``, one row per operation: ``[code, n_in, n_out, offset into θ, a, b, c, d]``
(``docs/architecture.md``). This module imports only NumPy, so ``nn/``, ``observables/``,
``kernels/`` (CPU and CUDA) and the orchestration all import it without cycles.
"""

import numpy as np

__all__ = ["DENSE", "CONV2D", "TANH", "SOFTPLUS", "SIGMOID", "RELU", "SQUARE", "POWERS",
           "LOGSOFTMAX", "COMPILED", "CODE_NAMES", "SPEC_WIDTH", "MOVE_ALL", "MOVE_SINGLE",
           "MOVE_MALA", "MOVE_SCAN", "MOVES", "BOUNDARY_REJECT", "BOUNDARY_REFLECT",
           "BOUNDARIES", "NO_FIELD", "empty_term", "is_compiled", "validate_spec", "DTYPES",
           "kernel_dtype"]

# --- network op codes (the first entry of a spec row)
DENSE, CONV2D, TANH, SOFTPLUS, SIGMOID, RELU, SQUARE, POWERS, LOGSOFTMAX = range(9)
CODE_NAMES = ("DENSE", "CONV2D", "TANH", "SOFTPLUS", "SIGMOID", "RELU", "SQUARE", "POWERS",
              "LOGSOFTMAX")
#: One-row spec of compiled user observables (``observables/user.py``): own kernels.
COMPILED = 99
SPEC_WIDTH = 8

# --- moves: one proposal of every coordinate (all, mala) or one per coordinate (single, scan)
MOVE_ALL, MOVE_SINGLE, MOVE_MALA, MOVE_SCAN = 0, 1, 2, 3
#: The move names the models accept, and their codes.
MOVES = {"all": MOVE_ALL, "single": MOVE_SINGLE, "mala": MOVE_MALA, "scan": MOVE_SCAN}

# --- what a proposal outside the box does
BOUNDARY_REJECT, BOUNDARY_REFLECT = 0, 1
BOUNDARIES = {"reject": BOUNDARY_REJECT, "reflect": BOUNDARY_REFLECT}


def validate_spec(spec, n_params):
    """Check a network description against the layout the interpreter reads.

    Parameters
    ----------
    spec : array_like of int, shape (n_rows, 8)
        Zero rows is valid (an absent energy term).
    n_params : int
        Length of the parameter vector the spec indexes into.

    Returns
    -------
    ndarray of int64, shape (n_rows, 8)
        ``spec`` as a C-contiguous int64 array.

    Raises
    ------
    ValueError
        With the offending row and the reason.
    """
    arr = np.asarray(spec)
    if arr.ndim != 2 or arr.shape[1] != SPEC_WIDTH:
        raise ValueError(f"spec must have shape (n_rows, {SPEC_WIDTH}), got {arr.shape}")
    if arr.shape[0] and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"spec must be an integer array, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    n_params = int(n_params)
    if n_params < 0:
        raise ValueError("params must be a 1-D array")
    prev_out = None
    for r, row in enumerate(arr.tolist()):
        code, n_in, n_out, off, a, b, c, d = row

        def fail(msg):
            name = CODE_NAMES[code] if 0 <= code < len(CODE_NAMES) else str(code)
            raise ValueError(f"spec row {r} ({name}): {msg}; row = {row}")

        if not 0 <= code < len(CODE_NAMES):
            fail("unknown op code")
        if n_in < 1 or n_out < 1:
            fail("in_size and out_size must be positive")
        if prev_out is not None and n_in != prev_out:
            fail(f"in_size {n_in} != previous row's out_size {prev_out}")
        prev_out = n_out
        n_used = 0
        if code == DENSE:
            if a not in (0, 1):
                fail("has_bias (column a) must be 0 or 1")
            n_used = n_out * n_in + (n_out if a else 0)
        elif code == CONV2D:
            if min(a, b, c, d) < 1 or d % 2 == 0:
                fail("needs C_in, H, W >= 1 and an odd kernel size k")
            if n_in != a * b * c:
                fail(f"in_size must be C_in*H*W = {a * b * c}")
            if n_out % (b * c):
                fail(f"out_size must be a multiple of H*W = {b * c}")
            c_out = n_out // (b * c)
            n_used = c_out * a * d * d + c_out
        elif code == POWERS:
            if a < 1 or n_out != n_in * a:
                fail("needs degree a >= 1 and out_size = in_size * degree")
        elif n_out != n_in:
            fail("elementwise op needs out_size == in_size")
        if n_used:
            if off < 0 or off + n_used > n_params:
                fail(f"parameters [{off}, {off + n_used}) exceed params of length {n_params}")
    return arr


def is_compiled(spec):
    """Whether ``spec`` is the one-row description of compiled user observables."""
    spec = np.asarray(spec)
    return spec.ndim == 2 and spec.shape[0] > 0 and int(spec[0, 0]) == COMPILED


def empty_term():
    """``(spec, params, lam)`` of an absent second energy term: zero rows and zero params."""
    return np.zeros((0, SPEC_WIDTH), np.int64), np.zeros(0), np.zeros(0)


#: The absent field ``(spec2, params2, lam2)``: the energy is ``lam . O(x)`` alone.
NO_FIELD = empty_term()


#: The floating-point types the kernels compile for (``dtype=`` of the estimators).
DTYPES = {"float64": np.float64, "float32": np.float32}


def kernel_dtype(dtype, name="dtype"):
    """``np.float64`` or ``np.float32`` from a name (``"float32"``) or a NumPy type; a clear
    ``ValueError`` for anything else."""
    for key, value in DTYPES.items():
        if isinstance(dtype, str) and dtype == key:
            return value
        if not isinstance(dtype, (str, bool)) and dtype is not None:
            try:
                if np.dtype(dtype) == np.dtype(value):
                    return value
            except TypeError:
                break
    raise ValueError(f"{name} must be 'float64' or 'float32' (or np.float64, np.float32), "
                     f"got {dtype!r}")
