"""Cost of compiled user observables against the built-in network interpreter.

The same observables, ``(x_j, x_j²)`` for each of ``d`` features, two ways: the built-in
``observables.polynomial(2)`` (one POWERS spec row, interpreted inside the compiled sampler)
and ``observables.compiled(func, 2d)`` with an ``@njit`` ``func`` (the kernels specialized to
the function). Both run the same chains (same draws; same decisions up to rounding).

Measured per kernel: all-coordinate Metropolis sweeps (``move="all"``, one proposal = one
full evaluation), single-coordinate sweeps (``"single"``: the built-in sampler does not
update POWERS incrementally either, so both re-evaluate everything), energies of many rows,
and the one-off compile time of the compiled set (first call, per function and process).
One thread, compile excluded from the rates, rounds interleaved, process CPU time, medians.
Writes JSON (default ``benchmarks/results/compiled_cost.json``).

    python benchmarks/compiled_cost.py [--d 8] [--reps 5] [--out path.json]
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit

import mme_numba as mme
from mme_numba import core
from mme_numba.backends import NO_FIELD, get_backend


@njit
def powers2(x, theta, out):
    for j in range(x.shape[0]):
        out[2 * j] = x[j]
        out[2 * j + 1] = x[j] * x[j]


def _time(fn, reps):
    t = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - t) / reps


def main(d=8, reps=5, n_chains=256, out=None):
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    lam = np.tile([0.0, 0.5], d)
    maps = {"polynomial": mme.observables.polynomial(2, n_features=d),
            "compiled": mme.observables.compiled(powers2, 2 * d, n_features=d)}
    be = get_backend("cpu")
    t0 = time.perf_counter()
    state = core.init_chains(maps["compiled"], (-5.0, 5.0), n_chains, seed=0)
    core.metropolis(maps["compiled"], lam, state, (-5.0, 5.0), 1.0, 1)
    core.metropolis(maps["compiled"], lam, state, (-5.0, 5.0), 1.0, 1, move="single")
    compile_s = time.perf_counter() - t0
    results = {name: {"all": [], "single": [], "energy": []} for name in maps}
    X = rng.uniform(-5, 5, size=(20000, d))
    sweeps = 200
    for _ in range(reps):
        for name, obs in maps.items():
            spec = np.ascontiguousarray(obs.describe())
            params = np.ascontiguousarray(obs.kernel_params(), dtype=np.float64)
            for move, n_sw in (("all", sweeps), ("single", max(1, sweeps // d))):
                x = state.x.copy()
                rs = state.rng_state.copy()
                e = be.energy(spec, params, lam, x, NO_FIELD)
                acc = np.zeros(n_chains, dtype=np.int64)

                def run():
                    be.sweep(spec, params, lam, NO_FIELD, x, e, -5.0, 5.0,
                             np.full(n_chains, 1.0), n_sw, move, "reflect", rs, acc)
                props = n_chains * n_sw * (d if move == "single" else 1)
                results[name][move].append(_time(run, 1) / props)
            results[name]["energy"].append(_time(lambda: be.energy(spec, params, lam, X,
                                                                   NO_FIELD), 3) / len(X))
    med = {name: {k: float(np.median(v)) for k, v in r.items()} for name, r in results.items()}
    ratio = {k: med["compiled"][k] / med["polynomial"][k] for k in med["compiled"]}
    report = {"d": d, "n_chains": n_chains, "threads": 1, "compile_s": compile_s,
              "seconds_per_proposal_or_row": med, "compiled_over_builtin": ratio,
              "machine": platform.processor() or platform.machine()}
    print(json.dumps(report, indent=2))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=8)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results/compiled_cost.json")
    a = p.parse_args()
    main(a.d, a.reps, out=a.out)
