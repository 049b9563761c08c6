"""One compiled interpreter for every network architecture.

A network reaches the kernels as an int64 ``spec (n_rows, 8)`` (one row per
operation, ``[code, in_size, out_size, param_offset, a, b, c, d]``, see
``docs/architecture.md`` section 2) and one flat float64 parameter vector.
:func:`forward_one` walks the rows for one input vector, ping-ponging between
two scratch buffers of length :func:`max_width`; the batch kernels run it over
rows in parallel with per-thread scratch.

Energy convention of the batch and sampler kernels::

    H(x) = lam . O(x) + lam2 . O2(x)

where ``O`` is the output of ``(spec, params)`` and ``O2`` of ``(spec2, params2)``.
The second term is absent when ``spec2`` has zero rows (see :func:`empty_term`);
it carries steering fields such as ``-h log P_clf(c | x)`` (a LOGSOFTMAX head with
``lam2 = -h * onehot(c)``).
"""

import math

import numba
import numpy as np
from numba import njit, prange

__all__ = [
    "DENSE", "CONV2D", "TANH", "SOFTPLUS", "SIGMOID", "RELU", "SQUARE", "POWERS",
    "LOGSOFTMAX", "SPEC_WIDTH", "forward_one", "observables_batch", "energy_batch",
    "max_width", "validate_spec", "empty_term",
]

DENSE, CONV2D, TANH, SOFTPLUS, SIGMOID, RELU, SQUARE, POWERS, LOGSOFTMAX = range(9)
SPEC_WIDTH = 8
_CODE_NAMES = ("DENSE", "CONV2D", "TANH", "SOFTPLUS", "SIGMOID", "RELU", "SQUARE",
               "POWERS", "LOGSOFTMAX")


# --- elementwise activations --------------------------------------------------------
# Small scalar helpers: LLVM inlines them into the loops below, and a faster exact
# version (or a CUDA twin) can be swapped in at one place.

@njit(cache=True)
def _tanh(z):
    return math.tanh(z)


@njit(cache=True)
def _softplus(z):
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): never overflows, exact for large |z|.
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


@njit(cache=True)
def _sigmoid(z):
    # Branch so that exp never overflows.
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True)
def _relu(z):
    return z if z > 0.0 else 0.0


# --- one row --------------------------------------------------------------------------

@njit(cache=True)
def _dense(params, off, n_in, n_out, has_bias, src, dst):
    b_off = off + n_out * n_in
    for i in range(n_out):
        s = params[b_off + i] if has_bias else 0.0
        w = off + i * n_in
        for j in range(n_in):
            s += params[w + j] * src[j]
        dst[i] = s


@njit(cache=True)
def _conv2d(params, off, c_in, h, w, k, c_out, src, dst):
    # Stride 1, zero "same" padding k // 2, input/output flattened (C, H, W).
    pad = k // 2
    b_off = off + c_out * c_in * k * k
    hw = h * w
    for co in range(c_out):
        bias = params[b_off + co]
        for y in range(h):
            ky0 = max(0, pad - y)
            ky1 = min(k, h + pad - y)
            for x in range(w):
                kx0 = max(0, pad - x)
                kx1 = min(k, w + pad - x)
                s = bias
                for ci in range(c_in):
                    w_ci = off + (co * c_in + ci) * k * k
                    s_ci = ci * hw
                    for ky in range(ky0, ky1):
                        row = s_ci + (y + ky - pad) * w
                        w_row = w_ci + ky * k
                        for kx in range(kx0, kx1):
                            s += params[w_row + kx] * src[row + x + kx - pad]
                dst[co * hw + y * w + x] = s


@njit(cache=True)
def _powers(n_in, degree, src, dst):
    for j in range(n_in):
        v = src[j]
        p = v
        for q in range(degree):
            dst[j * degree + q] = p
            p *= v


@njit(cache=True)
def _logsoftmax(n, src, dst):
    m = src[0]
    for j in range(1, n):
        if src[j] > m:
            m = src[j]
    s = 0.0
    for j in range(n):
        s += math.exp(src[j] - m)
    shift = m + math.log(s)
    for j in range(n):
        dst[j] = src[j] - shift


@njit(cache=True)
def _apply_row(row, params, src, dst):
    code = row[0]
    n_in = row[1]
    n_out = row[2]
    if code == DENSE:
        _dense(params, row[3], n_in, n_out, row[4] == 1, src, dst)
    elif code == CONV2D:
        _conv2d(params, row[3], row[4], row[5], row[6], row[7],
                n_out // (row[5] * row[6]), src, dst)
    elif code == TANH:
        for j in range(n_in):
            dst[j] = _tanh(src[j])
    elif code == SOFTPLUS:
        for j in range(n_in):
            dst[j] = _softplus(src[j])
    elif code == SIGMOID:
        for j in range(n_in):
            dst[j] = _sigmoid(src[j])
    elif code == RELU:
        for j in range(n_in):
            dst[j] = _relu(src[j])
    elif code == SQUARE:
        for j in range(n_in):
            dst[j] = src[j] * src[j]
    elif code == POWERS:
        _powers(n_in, row[4], src, dst)
    else:  # LOGSOFTMAX (validate_spec rejects unknown codes)
        _logsoftmax(n_in, src, dst)


# --- whole network --------------------------------------------------------------------

@njit(cache=True)
def forward_rows(spec, params, x, first_row, work_a, work_b):
    """Evaluate rows ``first_row ..`` of ``spec`` on ``x``; see :func:`forward_one`.

    ``x`` must not alias ``work_a`` or ``work_b``. Used by the sampler to restart
    the network after an incrementally updated first layer.
    """
    cur = x[:x.shape[0]]
    use_a = True
    for r in range(first_row, spec.shape[0]):
        dst = work_a if use_a else work_b
        _apply_row(spec[r], params, cur, dst)
        cur = dst[:spec[r, 2]]
        use_a = not use_a
    return cur


@njit(cache=True)
def forward_one(spec, params, x, work_a, work_b):
    """Evaluate the network ``(spec, params)`` on one input vector.

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)
        Network description (validated with :func:`validate_spec`).
    params : ndarray of float64, shape (n_params,)
    x : ndarray of float64, shape (n_features,)
        Input; not modified and must not alias the scratch buffers.
    work_a, work_b : ndarray of float64, shape (>= max_width(spec),)
        Scratch buffers, overwritten.

    Returns
    -------
    ndarray of float64, shape (n_observables,)
        A view into ``work_a`` or ``work_b`` (``x`` itself if ``spec`` has no rows);
        copy it before reusing the buffers.
    """
    return forward_rows(spec, params, x, 0, work_a, work_b)


@njit(cache=True)
def _max_width(spec):
    w = 1
    for r in range(spec.shape[0]):
        w = max(w, spec[r, 1], spec[r, 2])
    return w


@njit(cache=True)
def _dot(lam, out):
    s = 0.0
    for k in range(out.shape[0]):
        s += lam[k] * out[k]
    return s


@njit(cache=True)
def energy_one(spec, params, lam, spec2, params2, lam2, x, wa, wb, wa2, wb2):
    """``H(x) = lam . O(x) + lam2 . O2(x)`` for one vector ``x (n_features,)``.

    The second term is skipped when ``spec2`` has no rows. ``wa, wb`` (``wa2, wb2``) are
    scratch buffers of length ``max_width(spec)`` (``max_width(spec2)``).
    """
    h = _dot(lam, forward_rows(spec, params, x, 0, wa, wb))
    if spec2.shape[0] > 0:
        h += _dot(lam2, forward_rows(spec2, params2, x, 0, wa2, wb2))
    return h


def _chunk_size(n):
    # Results never depend on the chunking (each row is computed alone); chunks only
    # amortize scratch allocation while leaving several chunks per thread. Computed in
    # Python: numba.get_num_threads() inside a kernel would defeat on-disk caching.
    return max(1, min(64, n // (4 * numba.get_num_threads())))


@njit(parallel=True, cache=True)
def _observables_batch(spec, params, X, out, chunk):
    n = X.shape[0]
    m = out.shape[1]
    width = _max_width(spec)
    n_chunks = (n + chunk - 1) // chunk
    for c in prange(n_chunks):
        wa = np.empty(width)
        wb = np.empty(width)
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            o = forward_rows(spec, params, X[i], 0, wa, wb)
            for k in range(m):
                out[i, k] = o[k]


@njit(parallel=True, cache=True)
def _energy_batch(spec, params, lam, X, spec2, params2, lam2, out, chunk):
    n = X.shape[0]
    width = _max_width(spec)
    width2 = _max_width(spec2)
    n_chunks = (n + chunk - 1) // chunk
    for c in prange(n_chunks):
        wa = np.empty(width)
        wb = np.empty(width)
        wa2 = np.empty(width2)
        wb2 = np.empty(width2)
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            out[i] = energy_one(spec, params, lam, spec2, params2, lam2, X[i], wa, wb, wa2, wb2)


# --- Python entry points (cheap checks, then the compiled kernels) --------------------

def _as_f64(a, name, ndim):
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return a


def _n_outputs(spec, n_features):
    return int(spec[-1, 2]) if spec.shape[0] else int(n_features)


def _check_term(spec, params, lam, n_features, names):
    spec = validate_spec(spec, np.shape(params)[0] if np.ndim(params) == 1 else -1)
    params = _as_f64(params, names[1], 1)
    if spec.shape[0] and spec[0, 1] != n_features:
        raise ValueError(f"{names[0]} expects {spec[0, 1]} input features, got {n_features}")
    if lam is not None:
        lam = _as_f64(lam, names[2], 1)
        if spec.shape[0] and lam.shape[0] != spec[-1, 2]:
            raise ValueError(f"{names[2]} has {lam.shape[0]} entries but {names[0]} "
                             f"outputs {spec[-1, 2]}")
    return spec, params, lam


def observables_batch(spec, params, X):
    """Observables ``O(x; θ)`` of every row of ``X`` (parallel over rows).

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)
    params : ndarray of float64, shape (n_params,)
    X : ndarray of float64, shape (n_samples, n_features)

    Returns
    -------
    ndarray of float64, shape (n_samples, n_observables)
    """
    X = _as_f64(X, "X", 2)
    spec, params, _ = _check_term(spec, params, None, X.shape[1], ("spec", "params", None))
    if spec.shape[0] == 0:
        return X.copy()
    out = np.empty((X.shape[0], _n_outputs(spec, X.shape[1])))
    _observables_batch(spec, params, X, out, _chunk_size(X.shape[0]))
    return out


def energy_batch(spec, params, lam, X, spec2, params2, lam2):
    """Energies ``H(x) = lam . O(x) + lam2 . O2(x)`` of every row of ``X`` (parallel over rows).

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)
    params : ndarray of float64, shape (n_params,)
    lam : ndarray of float64, shape (n_observables,)
    X : ndarray of float64, shape (n_samples, n_features)
    spec2, params2, lam2 : ndarrays
        Second energy term, same layout; ``spec2`` with zero rows means "absent"
        (see :func:`empty_term`).

    Returns
    -------
    ndarray of float64, shape (n_samples,)
    """
    X = _as_f64(X, "X", 2)
    spec, params, lam = _check_term(spec, params, lam, X.shape[1], ("spec", "params", "lam"))
    spec2, params2, lam2 = _check_term(spec2, params2, lam2, X.shape[1],
                                       ("spec2", "params2", "lam2"))
    if spec.shape[0] == 0:
        raise ValueError("spec must have at least one row")
    out = np.empty(X.shape[0])
    _energy_batch(spec, params, lam, X, spec2, params2, lam2, out,
                  _chunk_size(X.shape[0]))
    return out


def empty_term():
    """The "absent" second energy term: ``(spec2, params2, lam2)`` with zero rows.

    Returns
    -------
    tuple of (ndarray int64 (0, 8), ndarray float64 (0,), ndarray float64 (0,))
    """
    return np.zeros((0, SPEC_WIDTH), np.int64), np.zeros(0), np.zeros(0)


def max_width(spec):
    """Scratch buffer length :func:`forward_one` needs: the widest activation of ``spec``.

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)

    Returns
    -------
    int
        ``max(in_size, out_size)`` over rows, at least 1.
    """
    spec = np.asarray(spec)
    if spec.ndim != 2 or spec.shape[0] == 0:
        return 1
    return int(max(1, spec[:, 1:3].max()))


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
            name = _CODE_NAMES[code] if 0 <= code < len(_CODE_NAMES) else str(code)
            raise ValueError(f"spec row {r} ({name}): {msg}; row = {row}")

        if not 0 <= code < len(_CODE_NAMES):
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
