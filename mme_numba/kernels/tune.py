"""The lock-step width of the Metropolis sweeps, measured once per host and cached.

How many chains one thread advances in lock-step (the lanes of a block) changes only speed,
never results (every chain does its own arithmetic on its own random stream). The best
width depends on the CPU (``docs/performance.md``), so the most lanes a block may have
(:func:`lanes_max`) is chosen at first use by a short measurement of the all-coordinate and
the random-scan single-coordinate sweeps of a small MLP at 32, 64, 128 and 256 lanes
(interleaved rounds, about a second each), one cap per kind, and kept:

- in memory for the process, and in ``tuning.json`` under the cache directory
  (``$MME_NUMBA_CACHE_DIR``, else ``$XDG_CACHE_HOME/mme_numba``, else
  ``~/.cache/mme_numba``), keyed by CPU model, numba version and thread count;
- a candidate replaces the default (``settings.LANES_MAX``) only when it was at least
  ``settings.TUNE_MIN_GAIN`` faster, so a noisy measurement keeps the default.

``MME_NUMBA_TUNE=0`` switches the measurement off (the default is used); :func:`reset`
forgets the measured values of this host. A cache directory that cannot be written only
costs a measurement per process.
"""

import functools
import json
import os
import platform
import tempfile
import time

import numba
import numpy as np

from .. import settings
from ..spec import BOUNDARY_REFLECT, DENSE, SPEC_WIDTH, TANH, empty_term
from .interpret import dynamic_schedule, energy_batch
from .moves.all_coords import all_sweeps
from .moves.single import single_sweeps
from .rng import seed_states

__all__ = ["lanes_max", "measure_lanes", "reset", "cache_path", "host_key", "CANDIDATES",
           "KINDS"]

#: The caps tried (multiples of 8, the widest AVX-512 float64 register holds 8).
CANDIDATES = (32, 64, 128, 256)
#: The sweeps measured, each with its own cap: all-coordinate and random-scan single-coordinate.
KINDS = ("all", "single")

_memory = {}


def cache_path():
    """The JSON file that keeps the measured values (module docstring)."""
    root = os.environ.get("MME_NUMBA_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".cache")
        root = os.path.join(base, "mme_numba")
    return os.path.join(root, "tuning.json")


@functools.lru_cache(maxsize=None)
def cpu_model():
    """The CPU's name, with its family and model numbers where ``/proc/cpuinfo`` has them
    (``"AMD EPYC"`` alone does not say which generation)."""
    try:
        with open("/proc/cpuinfo") as fh:
            lines = fh.read().splitlines()
    except OSError:
        lines = []
    cpu = next((line.split(":", 1)[1].strip() for line in lines
                if line.startswith("model name")), platform.processor() or platform.machine())
    ids = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lines
                                                if line.startswith(("cpu family", "model\t")))}
    if ids:
        cpu += f" (family {ids.get('cpu family', '?')}, model {ids.get('model', '?')})"
    return cpu


def host_key(threads=None):
    """What a measured value is valid for: CPU model, numba version, thread count."""
    threads = numba.get_num_threads() if threads is None else int(threads)
    return f"{cpu_model()} | numba {numba.__version__} | {threads} threads"


def _enabled():
    return os.environ.get("MME_NUMBA_TUNE", "1").strip().lower() not in ("0", "off", "false",
                                                                       "no")


def _read(path):
    try:
        with open(path) as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}                       # absent or unreadable: measure again


def _save(path, data):
    # Atomic: a process reading the file sees the old or the new content, never a part.
    try:
        if not data:
            if os.path.exists(path):
                os.remove(path)
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass                            # read-only home: keep the value in memory only


def _mlp_problem(n_chains, seed=0):
    # MLP 1 -> 32 -> 32 -> 2 with tanh (the paper's 1-d observables), spec written out so
    # that this module needs nothing above the kernels.
    rows = [(DENSE, 1, 32, 1), (TANH, 32, 32, 0), (DENSE, 32, 32, 1), (TANH, 32, 32, 0),
            (DENSE, 32, 2, 1)]
    spec = np.zeros((len(rows), SPEC_WIDTH), np.int64)
    offset = 0
    for i, (code, n_in, n_out, bias) in enumerate(rows):
        spec[i, :5] = code, n_in, n_out, offset, bias
        if code == DENSE:
            offset += n_in * n_out + n_out
    rng = np.random.default_rng(seed)
    params = rng.standard_normal(offset) * 0.5
    x = rng.uniform(-6.0, 6.0, (n_chains, 1))
    return spec, params, np.array([1.3, -0.7]), x


def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def measure_lanes(kind="all", candidates=CANDIDATES, rounds=5, target_s=0.01):
    """Seconds per proposal of the ``kind`` sweep (``"all"``: all-coordinate, ``"single"``:
    random-scan single-coordinate) of the MLP at each lanes cap, best of ``rounds``
    interleaved calls after one warm-up call each: ``{lanes: seconds}``."""
    _check_kind(kind)
    threads = numba.get_num_threads()
    n = 4 * threads * max(candidates)           # every cap gets four blocks per thread
    spec, params, lam, x0 = _mlp_problem(n)
    spec2, params2, lam2 = empty_term()
    lo, hi = np.array([-6.0]), np.array([6.0])
    step = np.full(n, 1.0)
    e0 = energy_batch(spec, params, lam, x0, spec2, params2, lam2)

    def call(lanes, n_sweeps):
        x, e = x0.copy(), e0.copy()
        args = (spec, params, lam, spec2, params2, lam2, x, e, lo, hi, step, n_sweeps,
                BOUNDARY_REFLECT, seed_states(1, n), np.zeros(n, np.int64))
        t = time.perf_counter()
        with dynamic_schedule():
            if kind == "all":
                all_sweeps(*args, lanes)
            else:
                single_sweeps(*args, True, lanes)
        return time.perf_counter() - t

    for lanes in candidates:
        call(lanes, 1)                                          # compile or load, warm up
    per_sweep = max(call(settings.LANES_MAX, 2) / 2, 1e-7)
    n_sweeps = int(min(max(target_s / per_sweep, 1), 1000))
    best = {lanes: np.inf for lanes in candidates}
    for _ in range(int(rounds)):
        for lanes in candidates:
            best[lanes] = min(best[lanes], call(lanes, n_sweeps))
    return {lanes: t / (n * n_sweeps) for lanes, t in best.items()}


def _choose(seconds):
    default = settings.LANES_MAX
    fastest = min(seconds, key=seconds.get)
    if default in seconds and seconds[fastest] > seconds[default] / settings.TUNE_MIN_GAIN:
        return default
    return int(fastest)


def _valid(entry):
    caps = entry.get("lanes_max") if isinstance(entry, dict) else None
    return isinstance(caps, dict) and all(caps.get(k) in CANDIDATES for k in KINDS)


def lanes_max(kind="all"):
    """The most chains per lock-step block of the ``kind`` sweeps (``"all"`` or
    ``"single"``) on this host and thread count: measured at first use and cached (module
    docstring), or ``settings.LANES_MAX`` with ``MME_NUMBA_TUNE=0``."""
    _check_kind(kind)
    if not _enabled():
        return settings.LANES_MAX
    key = host_key()
    if key not in _memory:
        path = cache_path()
        entry = _read(path).get(key)
        if not _valid(entry):
            seconds = {k: measure_lanes(k) for k in KINDS}
            entry = {"lanes_max": {k: _choose(seconds[k]) for k in KINDS},
                     "ns_per_proposal": {k: {str(c): round(t * 1e9, 3)
                                             for c, t in seconds[k].items()} for k in KINDS},
                     "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
            _save(path, {**_read(path), key: entry})
        _memory[key] = {k: int(entry["lanes_max"][k]) for k in KINDS}
    return _memory[key][kind]


def reset():
    """Forget the measured values of this host (every thread count): the next sweep
    measures again."""
    _memory.clear()
    path = cache_path()
    prefix = cpu_model() + " | "
    _save(path, {k: v for k, v in _read(path).items() if not k.startswith(prefix)})
