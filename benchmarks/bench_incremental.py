"""Single-pixel Metropolis throughput: incremental conv update against full recompute.

Both kernels run the same chain (same draws, same decisions) on ``paper_cnn(16)`` observables
for 8×8 and 28×28 single-channel images; only the energy evaluation differs:

* ``full``: ``metropolis_sweeps(move=MOVE_SINGLE, incremental=False)``, a whole forward
  pass per proposal (cost ∝ image size);
* ``incremental``: :func:`mme_numba.kernels.images.single_pixel_sweeps`, windows only.

One thread (``numba.set_num_threads(1)``), compile excluded, repetitions interleaved
(``inc, full, inc, full, ...``) so a load change on the shared machine hits both alike;
the table reports the median and the spread over repetitions. Writes JSON (default
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
from mme_numba.kernels import images
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


def _time_one(kind, setup, n_sweeps, step=0.3):
    spec, params, lam, x0, e0, rs0 = setup
    x, e, rs = x0.copy(), e0.copy(), rs0.copy()
    acc = np.zeros(len(x), np.int64)
    d = x.shape[1]
    t0 = time.perf_counter()
    if kind == "incremental":
        images.single_pixel_sweeps(spec, params, lam, *EMPTY, x, e, 0.0, 1.0, step, n_sweeps,
                                   K.BOUNDARY_REFLECT, rs, acc)
    else:
        K.metropolis_sweeps(spec, params, lam, *EMPTY, x, e, np.zeros(d), np.ones(d), step,
                            n_sweeps, K.MOVE_SINGLE, K.BOUNDARY_REFLECT, rs, acc,
                            incremental=False)
    dt = time.perf_counter() - t0
    n_prop = len(x) * n_sweeps * d
    return n_prop / dt, float(acc.sum() / n_prop), x


def run(reps=5, sizes=((8, 16, 4), (28, 2, 1))):
    """Measure every size; returns a list of result dicts (one per image side)."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    results = []
    try:
        for side, n_chains, n_sweeps in sizes:
            setup = _setup(side, n_chains)
            for kind in ("incremental", "full"):  # compile, and check both give one chain
                _time_one(kind, _setup(side, 1), 1)
            xi = _time_one("incremental", setup, n_sweeps)[2]
            xf = _time_one("full", setup, n_sweeps)[2]
            rates = {"incremental": [], "full": []}
            acc = {}
            for _ in range(reps):
                for kind in ("incremental", "full"):
                    r, a, _ = _time_one(kind, setup, n_sweeps)
                    rates[kind].append(r)
                    acc[kind] = a
            med = {k: float(np.median(v)) for k, v in rates.items()}
            results.append({
                "image": f"{side}x{side}", "n_features": side * side, "n_chains": n_chains,
                "sweeps": n_sweeps, "proposals_per_rep": n_chains * n_sweeps * side * side,
                "incremental_per_s": med["incremental"], "full_per_s": med["full"],
                "incremental_all": rates["incremental"], "full_all": rates["full"],
                "speedup": med["incremental"] / med["full"],
                "acceptance": acc["incremental"],
                "same_chain_max_abs_diff": float(np.abs(xi - xf).max()),
            })
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
    print(f"{'image':>7} {'incremental /s':>15} {'full /s':>12} {'speedup':>8} "
          f"{'acceptance':>10} {'|x_inc - x_full|':>17}")
    for r in results:
        spread = (min(r["incremental_all"]) / r["incremental_per_s"],
                  max(r["incremental_all"]) / r["incremental_per_s"])
        print(f"{r['image']:>7} {r['incremental_per_s']:>15.4g} {r['full_per_s']:>12.4g} "
              f"{r['speedup']:>7.1f}x {r['acceptance']:>10.3f} "
              f"{r['same_chain_max_abs_diff']:>17.1e}   (inc. spread {spread[0]:.2f}-"
              f"{spread[1]:.2f} of median)")
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
