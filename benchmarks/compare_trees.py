"""Before/after: the kernels of two source trees, measured interleaved in one run.

    git worktree add /tmp/before <commit>
    python benchmarks/compare_trees.py /tmp/before . --rounds 5
    python benchmarks/compare_trees.py . . --before-env MME_NUMBA_TUNE=0   # one tree, two settings

Each round runs one fresh process per tree, alternating, pinned to core 0 with
``NUMBA_NUM_THREADS=1`` (single-thread A/B ratios are the steady ones on a shared host;
``--threads N`` runs unpinned with N threads). A
process imports ``mme_numba`` from its tree and times, best of 11 calls after a warm-up call,
the sweeps on the MLP (all-coordinate and random-scan single-coordinate moves, 1024 chains)
and on the paper CNN (systematic scan, 512 chains) of ``benchmarks/problems.py``, and the
energies of 16384 inputs. Prints proposals (or inputs) per second per round, and the median
ratio second tree / first tree with the host. Both trees must have ``kernels.sweep``'s
``metropolis_sweeps`` and ``benchmarks/problems.py`` (true since the kernels had lock-step
blocks).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

_MEASURE = r"""
import json, sys, time
root = sys.argv[1]
sys.path[:0] = [root, root + "/benchmarks"]
import numpy as np
import mme_numba
assert mme_numba.__file__.startswith(root), mme_numba.__file__
from mme_numba import kernels as K
from problems import cnn_problem, mlp_problem

def best(f, reps=11):
    f()
    out = np.inf
    for _ in range(reps):
        t = time.perf_counter(); f(); out = min(out, time.perf_counter() - t)
    return out

def sweeps(p, move, n_sweeps):
    x = p["x0"].copy(); n = len(x)
    e = K.energy_batch(p["spec"], p["params"], p["lam"], x, *K.empty_term())
    rs, acc, step = K.seed_states(1, n), np.zeros(n, np.int64), np.full(n, p["step"])
    t = best(lambda: K.metropolis_sweeps(p["spec"], p["params"], p["lam"], *K.empty_term(), x,
                                         e, p["lo"], p["hi"], step, n_sweeps, move,
                                         K.BOUNDARY_REFLECT, rs, acc))
    return n * n_sweeps * (1 if move == K.MOVE_ALL else x.shape[1]) / t

def energy(p, n=16384):
    X = np.random.default_rng(0).uniform(p["lo"], p["hi"], (n, p["x0"].shape[1]))
    return n / best(lambda: K.energy_batch(p["spec"], p["params"], p["lam"], X,
                                           *K.empty_term()))

m, c = mlp_problem(), cnn_problem()
print(json.dumps({"mlp all-coordinate": sweeps(m, K.MOVE_ALL, 300),
                  "mlp single": sweeps(m, K.MOVE_SINGLE, 300),
                  "cnn scan": sweeps(c, K.MOVE_SCAN, 4),
                  "mlp energy": energy(m), "cnn energy": energy(c)}))
"""


def measure(tree, threads=1, extra_env=()):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    env.update(kv.split("=", 1) for kv in extra_env)
    cmd = [sys.executable, "-c", _MEASURE, os.path.abspath(tree)]
    if threads == 1 and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    out = subprocess.run(cmd, env=env, cwd="/", capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="NUMBA_NUM_THREADS of the measured processes (pinned to core 0 if 1)")
    ap.add_argument("--before-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment of the first tree's processes (repeatable)")
    ap.add_argument("--after-env", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    sys.path.insert(0, HERE)
    from hostinfo import host

    runs = {"before": [], "after": []}
    for r in range(args.rounds):
        for name in ("before", "after"):
            runs[name].append(measure(getattr(args, name), args.threads,
                                      getattr(args, name + "_env")))
            print(r, name, json.dumps(runs[name][-1]), flush=True)
    print("host:", json.dumps(host()))
    print(f"{'kernel':20s} {'before':>12s} {'after':>12s} {'after/before':>13s}  per round")
    for k in runs["before"][0]:
        b = [x[k] for x in runs["before"]]
        a = [x[k] for x in runs["after"]]
        per = " ".join(f"{y / x:.3f}" for x, y in zip(b, a))
        print(f"{k:20s} {statistics.median(b):12.4g} {statistics.median(a):12.4g} "
              f"{statistics.median(a) / statistics.median(b):13.3f}  {per}")


if __name__ == "__main__":
    main()
