"""Host side of the CUDA kernels: argument checks, launch geometry, scratch and copies.

See :mod:`mme_numba.kernels.cuda` for the threads, the scratch layout and the device-resident
state.
"""

import numpy as np
from numba import cuda

from ..interpret import _as_f64, _check_term, check_terms, max_width
from ..moves.box import _check_inplace, chain_args
from ..moves.single import incremental_prefix
from .chains import _draw_kernel, _energy_kernel, _observables_kernel, _pixel_kernel
from .mala import _mala_kernel

__all__ = ["observables_batch", "energy_batch", "mala_sweeps", "single_pixel_sweeps", "draw",
           "Resident", "SCRATCH_BYTES", "THREADS_PER_BLOCK"]

SCRATCH_BYTES = 1 << 30
"""Upper bound on the global scratch one launch allocates (bytes); on a GPU also at most a
quarter of the device memory free when the launch is planned."""
THREADS_PER_BLOCK = 128
_DRAW_KINDS = {"u64": 0, "uniform": 1, "normal": 2}


def _scratch_budget():
    """Bytes of scratch one launch may allocate on the current device."""
    budget = SCRATCH_BYTES
    if not _simulator():
        free, _ = cuda.current_context().get_memory_info()
        budget = min(budget, int(free) // 4)
    return budget


def _thread_slots():
    """Threads the current device can hold at once (SMs x threads per SM); None in the
    simulator. A grid-stride launch gains nothing from more than two such waves."""
    if _simulator():
        return None
    dev = cuda.get_current_device()
    return int(dev.MULTIPROCESSOR_COUNT) * int(dev.MAX_THREADS_PER_MULTI_PROCESSOR)


def _simulator():
    from numba import config

    return bool(getattr(config, "ENABLE_CUDASIM", 0))


def _n_threads(n_items, bytes_per_thread):
    """Threads ``T`` for a grid-stride launch over ``n_items``: one per item where the scratch
    budget (and, on a GPU, two waves of the device's thread slots) allows, else the largest
    multiple of the block size under those caps (at least one block). Either way no
    launched thread owns a scratch column past ``T``: the grid covers exactly ``T`` threads
    when ``T < n_items``, and threads ``t >= T`` find no item when ``T == n_items`` (the
    kernels also stride by ``T``, the scratch width, and skip ``t >= T``)."""
    tpb = THREADS_PER_BLOCK
    cap = _scratch_budget() // max(1, bytes_per_thread)
    slots = _thread_slots()
    if slots is not None:
        cap = min(cap, 2 * slots)
    cap = cap // tpb * tpb
    return max(1, min(n_items, max(tpb, cap)))


def _launch(kernel, n_threads, *args):
    tpb = min(THREADS_PER_BLOCK, n_threads)
    kernel[(n_threads + tpb - 1) // tpb, tpb](*args)


class Resident:
    """Device copies of host arrays kept between calls, and a count of the copies made.

    ``get(key, host)`` returns a device array equal to ``host``: the one kept under ``key``
    when its host snapshot is bitwise equal to ``host`` (no copy), otherwise a fresh upload
    that replaces the older of the two kept under ``key`` (two, so that alternating values,
    the current and the previous θ, are both kept). ``keep(key, host, device)`` records that
    ``device`` (written by a kernel and copied into ``host``) equals ``host``. Snapshots are
    host copies, so any change to a host array, in place or not, is seen at the next call
    and re-uploaded: the device copy can never be stale.

    ``h2d``, ``d2h`` and ``allocations`` count host-to-device copies, device-to-host copies
    and device allocations, an upload's included (``tests/cuda_sim_checks.py`` counts the
    copies per training epoch independently, by wrapping the CUDA API).
    """

    def __init__(self, keep=True):
        self.enabled = bool(keep)
        self._slots = {}
        self._scratch = {}
        self.h2d = self.d2h = self.allocations = 0
        self.version = 0  # bumped by every upload: identifies the data a result came from

    @staticmethod
    def _same(a, b):
        return (a.shape == b.shape and a.dtype == b.dtype
                and np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8)))

    def find(self, key, host):
        """The device array kept under ``key`` equal to ``host``, or None."""
        for snap, dev, _ in self._slots.get(key, ()):
            if self._same(snap, host):
                return dev
        return None

    def tag(self, key, host):
        """The upload version of the kept copy equal to ``host`` (None if there is none)."""
        for snap, _, ver in self._slots.get(key, ()):
            if self._same(snap, host):
                return ver
        return None

    def get(self, key, host, transpose=False):
        """``transpose``: the device copy is ``host.T`` (chains and rows of points are kept
        ``(n_features, n)`` on the device, chain index fastest); the snapshot is ``host``."""
        host = np.ascontiguousarray(host)
        dev = self.find(key, host) if self.enabled else None
        if dev is None:
            dev = cuda.to_device(np.ascontiguousarray(host.T) if transpose else host)
            self.h2d += 1
            self.allocations += 1
            self.keep(key, host, dev)
        return dev

    def keep(self, key, host, dev, version=None):
        if not self.enabled:
            return
        if version is None:
            self.version += 1
            version = self.version
        slots = [s for s in self._slots.get(key, ()) if s[1] is not dev]
        self._slots[key] = ([(np.array(host, copy=True), dev, version)] + slots)[:2]

    def drop(self, key):
        self._slots.pop(key, None)

    def empty(self, key, shape, dtype=np.float64):
        """A device array of ``shape`` kept under ``key`` (contents undefined)."""
        shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        kept = self._scratch.get(key, []) if self.enabled else []
        for dev in kept:
            if dev.shape == shape and dev.dtype == dtype:
                return dev
        dev = cuda.device_array(shape, dtype=dtype)
        self.allocations += 1
        if self.enabled:  # two shapes per key: the chains' and the monitor rows'
            self._scratch[key] = [dev] + kept[:1]
        return dev

    def to_host(self, dev, out=None, transpose=False):
        """``dev`` copied into ``out`` (a new array if None); ``transpose``: ``dev.T``."""
        self.d2h += 1
        if transpose:
            host = dev.copy_to_host().T
            if out is None:
                return np.ascontiguousarray(host)
            out[...] = host
            return out
        return dev.copy_to_host() if out is None else dev.copy_to_host(out)

    def scratch(self, name, n_threads, *shape, dtype=np.float64):
        return self.empty(("scratch", name), shape + (n_threads,), dtype)


def _terms(res, spec, params, lam, spec2=None, params2=None, lam2=None):
    names = ("spec", "params", "lam", "spec2", "params2", "lam2")
    return tuple(res.get(n, a) for n, a in zip(names, (spec, params, lam, spec2, params2, lam2))
                 if a is not None)


def _input_rows(res, X):
    """``X`` on the device: the kept chains when ``X`` equals them, else an upload."""
    d_X = res.find("x", X) if res.enabled else None
    return (d_X, True) if d_X is not None else (res.get("X", X, transpose=True), False)


def observables_batch(spec, params, X, dtype=np.float64, resident=None):
    """Observables ``O(x; θ)`` of every row of ``X``, computed on the GPU.

    Parameters
    ----------
    spec, params, X, dtype : as in :func:`mme_numba.kernels.observables_batch` (same results)
    resident : Resident, optional
        Device copies kept between calls (``X`` equal to the kept chains is not copied).

    Returns
    -------
    ndarray of ``dtype``, shape (n_samples, n_observables)
    """
    X = _as_f64(X, "X", 2, dtype)
    spec, params, _ = _check_term(spec, params, None, X.shape[1], ("spec", "params", None),
                                  X.dtype)
    if spec.shape[0] == 0:
        return X.copy()
    n = X.shape[0]
    out = np.empty((n, int(spec[-1, 2])), X.dtype)
    if n == 0:
        return out
    res = Resident(keep=False) if resident is None else resident
    width = max_width(spec)
    n_threads = _n_threads(n, 2 * width * X.itemsize)
    d_out = res.empty("observables", out.shape[::-1], X.dtype)
    d_spec, d_params = _terms(res, spec, params, None)
    _launch(_observables_kernel, n_threads, d_spec, d_params, _input_rows(res, X)[0], d_out,
            res.scratch("buf", n_threads, 2, width, dtype=X.dtype))
    return res.to_host(d_out, out, transpose=True)


def energy_batch(spec, params, lam, X, spec2, params2, lam2, dtype=np.float64, resident=None):
    """Energies ``H(x) = lam . O(x) + lam2 . O2(x)`` of every row of ``X``, on the GPU.

    Parameters
    ----------
    spec, params, lam, X, spec2, params2, lam2, dtype : as in
        :func:`mme_numba.kernels.energy_batch` (same results)
    resident : Resident, optional
        Device copies kept between calls: ``X`` equal to the kept chains is not copied, and
        its energies stay on the device for the next sweep.

    Returns
    -------
    ndarray of ``dtype``, shape (n_samples,)
    """
    X = _as_f64(X, "X", 2, dtype)
    spec, params, lam, spec2, params2, lam2 = check_terms(spec, params, lam, spec2, params2,
                                                          lam2, X.shape[1], X.dtype)
    n = X.shape[0]
    out = np.empty(n, X.dtype)
    if n == 0:
        return out
    res = Resident(keep=False) if resident is None else resident
    width, width2 = max_width(spec), max_width(spec2)
    n_threads = _n_threads(n, 2 * (width + width2) * X.itemsize)
    d_X, chains = _input_rows(res, X)
    if chains:  # the chains' energies: kept for the next sweep, so in their own array
        d_out = cuda.device_array(n, dtype=X.dtype)
        res.allocations += 1
    else:
        d_out = res.empty("energies", (n,), X.dtype)
    _launch(_energy_kernel, n_threads, *_terms(res, spec, params, lam, spec2, params2, lam2),
            d_X, d_out, res.scratch("buf", n_threads, 2, width, dtype=X.dtype),
            res.scratch("buf2", n_threads, 2, width2, dtype=X.dtype))
    res.to_host(d_out, out)
    if chains:
        res.keep("energy", out, d_out)
    return out


_TERM_KEYS = ("spec", "params", "lam", "n_inc", "spec2", "params2", "lam2", "n_inc2")


def _run_chains(kernel, per_thread, terms, x, energy, lo, hi, step, n_sweeps, boundary,
                rng_state, accepted, scan, scratch, resident):
    """Launch ``kernel`` (a :func:`~.device.chain_kernel`) with ``args = (*terms, lo, hi, step,
    n_sweeps, boundary[, scan])`` (no ``scan`` if None) and ``scratch(s)``, ``s(name, *shape)``
    a scratch array of the chains' dtype, on device copies of the arrays (kept ones where
    ``resident`` holds them), copy ``x, energy, rng_state`` back and add the kernel's accept
    counts to ``accepted``. ``per_thread``: scratch entries per thread."""
    res = Resident(keep=False) if resident is None else resident
    n_threads = _n_threads(x.shape[0], per_thread * x.itemsize)
    keys = _TERM_KEYS if len(terms) == 8 else _TERM_KEYS[:3] + _TERM_KEYS[4:7]
    args = tuple(res.get(k, a) if isinstance(a, np.ndarray) else a for k, a in zip(keys, terms))
    args += (res.get("lo", lo), res.get("hi", hi), res.get("step", step), np.int64(n_sweeps),
             np.int64(boundary)) + (() if scan is None else (bool(scan),))
    d_x = res.get("x", x, transpose=True)
    d_energy, d_state = res.get("energy", energy), res.get("state", rng_state)
    d_acc = res.empty("accepted", accepted.shape, np.int64)
    _launch(kernel, n_threads, d_x, d_energy, d_state, d_acc, args,
            scratch(lambda name, *shape: res.scratch(name, n_threads, *shape, dtype=x.dtype)))
    for key, host, dev in (("x", x, d_x), ("energy", energy, d_energy),
                           ("state", rng_state, d_state)):
        res.to_host(dev, host, transpose=key == "x")
        res.keep(key, host, dev)
    accepted += res.to_host(d_acc)


def mala_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                boundary, rng_state, accepted, resident=None):
    """MALA sweeps on the GPU, in place on the host arrays.

    Arguments, draw order and results as :func:`mme_numba.kernels.moves.mala.mala_sweeps`
    (one GPU thread per chain, input gradients by a backward pass through the spec).
    """
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted)
    if not np.all(step > 0):
        raise ValueError("MALA needs a positive step in every chain")
    if x.shape[0] == 0 or n_sweeps == 0:
        return
    d = x.shape[1]
    width = max(max_width(spec), max_width(spec2))
    n_act, n_act2 = int(spec[:, 2].sum()), max(1, int(spec2[:, 2].sum()))
    _run_chains(_mala_kernel, 4 * d + n_act + n_act2 + 2 * width,
                (spec, params, lam, spec2, params2, lam2), x, energy, lo, hi, step, n_sweeps,
                boundary, rng_state, accepted, None,
                lambda s: (s("vec", 4, d), s("acts", 1, n_act), s("acts2", 1, n_act2),
                           s("grads", 2, width)), resident)


def single_pixel_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                        n_sweeps, boundary, rng_state, accepted, scan=False, resident=None):
    """Single-pixel sweeps with incremental conv updates, on the GPU, in place.

    Arguments as :func:`mme_numba.kernels.moves.single.single_pixel_sweeps`. Random scan: its
    draws; systematic scan (``scan=True``: proposal ``it`` changes pixel ``it mod n_features``
    and draws no pixel): those of :func:`mme_numba.kernels.moves.scan.scan_sweeps`. Either way
    the chain is the CPU's up to the rounding of the energies (~1e-14 relative).
    """
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted, allow_float32=True)
    if incremental_prefix(spec) == 0:
        raise ValueError("single_pixel_sweeps needs a spec whose first row is CONV2D")
    if x.shape[0] == 0 or n_sweeps == 0:
        return
    _pixel_chains(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                  boundary, rng_state, accepted, scan=scan, resident=resident)


def _pixel_chains(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                  boundary, rng_state, accepted, scan, resident=None):
    """Launch the single-pixel kernel on checked arguments (``spec`` starting with CONV2D)."""
    n_inc, n_inc2 = incremental_prefix(spec), incremental_prefix(spec2)
    width, width2 = max_width(spec), max_width(spec2)
    n_act = int(spec[:n_inc, 2].sum())
    n_act2 = max(1, int(spec2[:n_inc2, 2].sum()))
    _run_chains(_pixel_kernel, 2 * width + 2 * width2 + 2 * n_act + 2 * n_act2,
                (spec, params, lam, np.int64(n_inc), spec2, params2, lam2, np.int64(n_inc2)),
                x, energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted, scan,
                lambda s: (s("buf", 2, width), s("buf2", 2, width2), s("acts", 1, n_act),
                           s("undo", 1, n_act), s("acts2", 1, n_act2), s("undo2", 1, n_act2)),
                resident)


def draw(rng_state, n_draws, kind="uniform"):
    """``n_draws`` numbers from every chain's stream on the GPU (to test the streams).

    Parameters
    ----------
    rng_state : ndarray of uint64, shape (n_chains, 4)
        Advanced in place, exactly as the CPU ``next_u64``/``uniform``/``normal`` would.
    n_draws : int
    kind : {"u64", "uniform", "normal"}

    Returns
    -------
    ndarray, shape (n_chains, n_draws)
        uint64 for ``"u64"``, float64 otherwise.
    """
    if kind not in _DRAW_KINDS:
        raise ValueError(f"kind must be one of {sorted(_DRAW_KINDS)}, got {kind!r}")
    _check_inplace(rng_state, "rng_state", np.uint64, (np.shape(rng_state)[0], 4))
    n_chains, n_draws = rng_state.shape[0], int(n_draws)
    code = _DRAW_KINDS[kind]
    out_u64 = np.zeros((n_chains, n_draws), dtype=np.uint64)  # both the same shape: the
    out_f64 = np.zeros((n_chains, n_draws))                    # kernel writes one of them
    if n_chains == 0 or n_draws == 0:
        return out_u64 if code == 0 else out_f64
    d_state, d_u64, d_f64 = (cuda.to_device(a) for a in (rng_state, out_u64, out_f64))
    _launch(_draw_kernel, n_chains, d_state, np.int64(code), d_u64, d_f64)
    d_state.copy_to_host(rng_state)
    return d_u64.copy_to_host() if code == 0 else d_f64.copy_to_host()
