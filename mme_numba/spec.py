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
           "BOUNDARIES", "NO_FIELD", "empty_term", "is_compiled", "DTYPES", "kernel_dtype"]

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
