"""Single-pixel Metropolis throughput: incremental conv update against full recompute.

All kernels run the same chain (same draws, same decisions) on ``paper_cnn(16)`` observables
for 8×8 and 28×28 single-channel images; only the energy evaluation differs:

* ``incremental``: :func:`mme_numba.kernels.moves.single.single_pixel_sweeps`, windows only;
* ``full_lockstep``: ``metropolis_sweeps(move=MOVE_SINGLE, incremental=False)`` with its
  default lock-step lanes (a block of chains advanced together, vectorized over chains), a
  whole forward pass per proposal: the fastest full recompute the package has;
* ``full_1``: the same with ``lanes=1``, one chain at a time (the like-for-like scalar twin).

One thread (``numba.set_num_threads(1)``), compile excluded, repetitions interleaved round by
round so a load change on the shared machine hits every kernel alike. Rates are proposals per
second of process CPU time (``time.process_time``, robust to load from other jobs) and of wall
time, medians over rounds; the speedup is the median of per-round CPU-time ratios. Each kernel
gets a workload sized to take about a second (rates are per proposal). Writes JSON (default
``benchmarks/results/bench_incremental.json``).

    python benchmarks/bench_incremental.py [--reps 5] [--out path.json]
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numba
import numpy as np

from mme_numba import kernels as K
from mme_numba.kernels.moves import single as images
from mme_numba.nn import paper_cnn

EMPTY = K.empty_term()


def _setup(side, n_chains, seed=0):
    net = paper_cnn(16, image_shape=(side, side), random_state=seed)
    spec, params = net.describe(), net.kernel_params()
    rng = np.random.default_rng(seed)
    lam = rng.normal(size=16)
    d = side * side
    x = rng.random((n_chains, d))
    x[rng.random((n_chains, d)) < 0.5] = 0.0  # digits: about half the pixels at 0
    energy = K.energy_batch(spec, params, lam, x, *EMPTY)
    return spec, params, lam, x, energy, K.seed_states(seed, n_chains)


KINDS = ("incremental", "full_lockstep", "full_1")


def _time_one(kind, setup, n_chains, n_sweeps, step=0.3):
    spec, params, lam, x0, e0, rs0 = setup
    x, e, rs = x0[:n_chains].copy(), e0[:n_chains].copy(), rs0[:n_chains].copy()
    acc = np.zeros(n_chains, np.int64)
    d = x.shape[1]
    t0, c0 = time.perf_counter(), time.process_time()
    if kind == "incremental":
        images.single_pixel_sweeps(spec, params, lam, *EMPTY, x, e, 0.0, 1.0, step, n_sweeps,
                                   K.BOUNDARY_REFLECT, rs, acc)
    else:
        K.metropolis_sweeps(spec, params, lam, *EMPTY, x, e, np.zeros(d), np.ones(d), step,
                            n_sweeps, K.MOVE_SINGLE, K.BOUNDARY_REFLECT, rs, acc,
                            incremental=False, lanes=1 if kind == "full_1" else None)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n_prop = n_chains * n_sweeps * d
    return n_prop / cpu, n_prop / wall, float(acc.sum() / n_prop), x


# (side, {kind: (n_chains, n_sweeps)}): about a second per kernel and repetition.
SIZES = ((8, {"incremental": (64, 4), "full_lockstep": (64, 2), "full_1": (16, 1)}),
         (28, {"incremental": (32, 1), "full_lockstep": (32, 1), "full_1": (2, 1)}))


def run(reps=5, sizes=SIZES):
    """Measure every size; returns a list of result dicts (one per image side)."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    results = []
    try:
        for side, work in sizes:
            setup = _setup(side, max(n for n, _ in work.values()))
            xs = {}
            for kind in KINDS:  # compile, and check that all give one chain
                xs[kind] = _time_one(kind, setup, 2, 1)[3]
            rates = {k: {"cpu": [], "wall": []} for k in KINDS}
            acc = {}
            for _ in range(reps):
                for kind in KINDS:
                    cpu, wall, a, _ = _time_one(kind, setup, *work[kind])
                    rates[kind]["cpu"].append(cpu)
                    rates[kind]["wall"].append(wall)
                    acc[kind] = a
            rec = {"image": f"{side}x{side}", "n_features": side * side,
                   "workload": {k: list(v) for k, v in work.items()},
                   "acceptance": acc["incremental"],
                   "same_chain_max_abs_diff": float(max(np.abs(xs[k] - xs["incremental"]).max()
                                                        for k in KINDS))}
            for kind in KINDS:
                rec[f"{kind}_cpu_per_s"] = float(np.median(rates[kind]["cpu"]))
                rec[f"{kind}_wall_per_s"] = float(np.median(rates[kind]["wall"]))
                rec[f"{kind}_cpu_all"] = rates[kind]["cpu"]
            for kind in KINDS[1:]:
                rec[f"speedup_vs_{kind}"] = float(np.median(
                    np.array(rates["incremental"]["cpu"]) / np.array(rates[kind]["cpu"])))
            results.append(rec)
    finally:
        numba.set_num_threads(before)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"
                                         / "bench_incremental.json"))
    args = p.parse_args(argv)
    results = run(args.reps)
    print("proposals per CPU-second, one thread (wall-clock rate in brackets)")
    print(f"{'image':>7} {'incremental':>20} {'full lock-step':>20} {'full 1 chain':>20} "
          f"{'speedup vs lock-step':>21} {'vs 1 chain':>11}")
    for r in results:
        cells = [f"{r[k + '_cpu_per_s']:.3g} ({r[k + '_wall_per_s']:.3g})" for k in KINDS]
        print(f"{r['image']:>7} {cells[0]:>20} {cells[1]:>20} {cells[2]:>20} "
              f"{r['speedup_vs_full_lockstep']:>20.1f}x {r['speedup_vs_full_1']:>10.1f}x")
    for r in results:
        print(f"{r['image']}: acceptance {r['acceptance']:.3f}, largest state difference "
              f"between kernels {r['same_chain_max_abs_diff']:.1e}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"threads": 1, "reps": args.reps, "machine": platform.processor() or
            platform.machine(), "numba": numba.__version__,
            "note": "paper_cnn(16): conv 1->8 3x3, tanh, conv 8->16 3x3, tanh, dense -> 16"}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
