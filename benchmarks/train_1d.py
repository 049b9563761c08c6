"""Time the paper's 1-d experiment: MinMaxEnt, MLP 1-32-32-2, 1000 points, 1024 chains.

    python benchmarks/train_1d.py [EPOCHS]

Prints one JSON line: wall and CPU seconds of ``fit`` (after a 1-epoch warm-up that pays
compilation), the summed per-epoch times of the three phases from ``history_`` and the
final chi2. Settings follow ``examples/configs/bimodal.toml``. Thread counts come from the
environment (``NUMBA_NUM_THREADS``, ``OMP_WAIT_POLICY``, ``OPENBLAS_NUM_THREADS``), which
``benchmarks/run.py`` varies.
"""

import json
import sys
import time

import mme_numba as mme


def main(epochs=1000):
    X = mme.datasets.gaussian_mixture(n=1000, means=(-2.0, 2.0), scales=(0.5, 0.5), seed=0)
    obs = mme.nn.mlp([1, 32, 32, 2], activation="tanh", random_state=0)
    model = mme.MinMaxEnt(obs, support=(-6.0, 6.0), n_chains=1024, sweeps=10, step_size=3.0,
                          lambda_solver="newton", lr_theta=0.01, random_state=0)
    t = time.perf_counter()
    model.fit(X, epochs=1)            # burn-in and compilation
    warm_up = time.perf_counter() - t
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(X, epochs=epochs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    hist = model.history_[1:]
    out = {"epochs": epochs, "wall": wall, "cpu": cpu, "warm_up": warm_up,
           "chi2": hist[-1]["chi2"] if hist else None}
    for key in ("t_sample", "t_lambda", "t_theta"):
        out[key] = sum(r[key] for r in hist)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
