"""Cold-start cost: import mme_numba and make the first kernel calls of a training run.

    NUMBA_CACHE_DIR=/some/dir python benchmarks/compile_cost.py

Prints one JSON line with the seconds spent importing and in the first call of each entry
point the sampler uses (``energy_batch``, ``observables_batch``, ``metropolis_sweeps`` with
all-coordinate, random-scan and systematic-scan single-coordinate moves) on the MLP problem.
With an empty cache directory these calls compile (what every process pays without
``cache=True``); run again with the same directory they load the compiled code from it.
"""

import json
import time

t0 = time.perf_counter()
import numpy as np  # noqa: E402

import mme_numba as mme  # noqa: E402
from mme_numba import kernels as K  # noqa: E402

t_import = time.perf_counter() - t0


def main():
    net = mme.nn.mlp([1, 32, 32, 2], activation="tanh", random_state=0)
    spec, params, lam = net.describe(), net.kernel_params(), np.array([1.0, -0.5])
    x = np.random.default_rng(0).uniform(-6, 6, (64, 1))
    term2 = K.empty_term()
    out = {"import": t_import}
    t = time.perf_counter()
    energy = K.energy_batch(spec, params, lam, x, *term2)
    out["energy_batch"] = time.perf_counter() - t
    t = time.perf_counter()
    K.observables_batch(spec, params, x)
    out["observables_batch"] = time.perf_counter() - t
    for move, name in ((K.MOVE_ALL, "sweeps_all"), (K.MOVE_SINGLE, "sweeps_single"),
                       (K.MOVE_SCAN, "sweeps_scan")):
        t = time.perf_counter()
        K.metropolis_sweeps(spec, params, lam, *term2, x, energy, -6.0, 6.0, np.ones(64), 1,
                            move, K.BOUNDARY_REFLECT, K.seed_states(0, 64),
                            np.zeros(64, np.int64))
        out[name] = time.perf_counter() - t
    out["total"] = time.perf_counter() - t0
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
