"""Energies of narrow and wide networks at explicit lanes: what ``settings.TILE_BYTES`` and
``settings.BATCH_LANES_MAX`` are chosen from (``docs/performance.md``).

    NUMBA_NUM_THREADS=1 taskset -c 0 python benchmarks/tile.py

A block of ``lanes`` inputs keeps activation buffers of ``lanes x width`` values, so the tile
of a width-1024 network in float64 is ``lanes x 8 KiB``. Best of 7 interleaved calls per
lanes value, after a warm-up call; inputs per second.
"""

import json
import sys
import time

import numpy as np

import mme_numba as mme
from mme_numba.kernels import interpret
from mme_numba.spec import empty_term

import hostinfo

LANES = (32, 64, 128, 256)
NETWORKS = {  # name: (network, inputs, rows timed per call)
    "paper CNN (width 1024)": (lambda: mme.nn.paper_cnn(16), 64, 4096),
    "dense 64-1024-16": (lambda: mme.nn.mlp([64, 1024, 16]), 64, 4096),
    "MLP 1-32-32-2": (lambda: mme.nn.mlp([1, 32, 32, 2]), 1, 16384),
}


def rates(net, d, n, dtype, rounds=7):
    rng = np.random.default_rng(0)
    spec = net.describe()
    lam = rng.standard_normal(int(spec[-1, 2]))
    X = rng.uniform(0.0, 1.0, (n, d)).astype(dtype)
    spec, params, lam, s2, p2, l2 = interpret.check_terms(spec, net.kernel_params(), lam,
                                                          *empty_term(), d, dtype)
    out = np.empty(n, dtype)

    def call(lanes):
        t = time.perf_counter()
        with interpret.dynamic_schedule():
            interpret._energy_batch(spec, params, lam, X, s2, p2, l2, out, lanes)
        return time.perf_counter() - t

    for lanes in LANES:
        call(lanes)
    best = dict.fromkeys(LANES, np.inf)
    for _ in range(rounds):
        for lanes in LANES:
            best[lanes] = min(best[lanes], call(lanes))
    return {lanes: n / t for lanes, t in best.items()}, interpret.max_width(spec)


def main():
    print(hostinfo.describe(hostinfo.host()))
    result = {"host": hostinfo.host(), "lanes": LANES, "inputs_per_s": {}}
    for dtype in (np.float64, np.float32):
        for name, (make, d, n) in NETWORKS.items():
            r, width = rates(make(), d, n, dtype)
            key = f"{name}, {np.dtype(dtype).name}"
            result["inputs_per_s"][key] = {str(k): v for k, v in r.items()}
            item = np.dtype(dtype).itemsize
            print(f"{key:34s}" + "".join(f"  {k:3d} lanes ({k * item * width // 1024:5d} KiB) "
                                         f"{v / 1e3:8.1f} k/s" for k, v in r.items()))
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
