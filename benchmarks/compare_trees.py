"""Before/after: the kernels of two source trees, measured interleaved in one run.

    git worktree add /tmp/before <commit>
    python benchmarks/compare_trees.py /tmp/before . --rounds 5
    python benchmarks/compare_trees.py . . --before-env MME_NUMBA_TUNE=0   # one tree, two settings

Each round runs one fresh process per tree, alternating, pinned to one core (``--cpu``) with
``NUMBA_NUM_THREADS=1`` (single-thread A/B ratios are the steady ones on a shared host;
``--threads N`` runs unpinned with N threads). A
process imports ``mme_numba`` from its tree and times, best of 11 calls after a warm-up call,
the sweeps on the MLP (all-coordinate and random-scan single-coordinate moves, 1024 chains)
and on the paper CNN (systematic scan, 512 chains) of ``benchmarks/problems.py``, and the
energies of 16384 inputs; with ``--suite mala-user``, the MALA sweeps of the same MLP and CNN
and the sweeps of compiled user observables (``observables.compiled``, 1024 chains of 16
coordinates; moves all, single, mala). Prints proposals (or inputs) per second per round, and the median
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

clock = time.process_time if sys.argv[3] == "cpu" else time.perf_counter

def best(f, reps=11):
    f()
    out = np.inf
    for _ in range(reps):
        t = clock(); f(); out = min(out, clock() - t)
    return out

def sweeps(p, move, n_sweeps):
    x = p["x0"].copy(); n = len(x)
    e = K.energy_batch(p["spec"], p["params"], p["lam"], x, *K.empty_term())
    rs, acc, step = K.seed_states(1, n), np.zeros(n, np.int64), np.full(n, p["step"])
    run = K.sweep if move == K.MOVE_MALA else K.metropolis_sweeps
    t = best(lambda: run(p["spec"], p["params"], p["lam"], *K.empty_term(), x, e, p["lo"],
                         p["hi"], step, n_sweeps, move, K.BOUNDARY_REFLECT, rs, acc))
    return n * n_sweeps * (1 if move in (K.MOVE_ALL, K.MOVE_MALA) else x.shape[1]) / t

def energy(p, n=16384):
    X = np.random.default_rng(0).uniform(p["lo"], p["hi"], (n, p["x0"].shape[1]))
    return n / best(lambda: K.energy_batch(p["spec"], p["params"], p["lam"], X,
                                           *K.empty_term()))

m, c = mlp_problem(), cnn_problem()
if sys.argv[2] == "metropolis":
    print(json.dumps({"mlp all-coordinate": sweeps(m, K.MOVE_ALL, 300),
                      "mlp single": sweeps(m, K.MOVE_SINGLE, 300),
                      "cnn scan": sweeps(c, K.MOVE_SCAN, 4),
                      "mlp energy": energy(m), "cnn energy": energy(c)}))
    sys.exit()
from numba import njit
from mme_numba.observables import compiled

@njit
def func(x, theta, out):  # sum x^2 and sum x^4
    for k in range(x.shape[0]):
        out[0] += x[k] * x[k]
        out[1] += x[k] ** 4

@njit
def grad_x(x, theta, w, g):
    for k in range(x.shape[0]):
        g[k] += 2.0 * w[0] * x[k] + 4.0 * w[1] * x[k] ** 3

def user(move, n_sweeps, n=1024, d=16):
    kern = compiled(func, 2, grad_x=grad_x, n_features=d)._kernels
    lam, theta = np.array([0.5, 0.1]), np.zeros(0)
    x = np.random.default_rng(0).uniform(-1.0, 1.0, (n, d))
    lo, hi = np.full(d, -3.0), np.full(d, 3.0)
    e = kern.energy(x, theta, lam)
    rs, acc, step = K.seed_states(1, n), np.zeros(n, np.int64), np.full(n, 0.3)
    t = best(lambda: kern.sweeps(theta, lam, x, e, lo, hi, step, n_sweeps, move,
                                 K.BOUNDARY_REFLECT, rs, acc))
    return n * n_sweeps * (d if move in (K.MOVE_SINGLE, K.MOVE_SCAN) else 1) / t

print(json.dumps({"mlp mala": sweeps(m, K.MOVE_MALA, 100), "cnn mala": sweeps(c, K.MOVE_MALA, 4),
                  "user all": user(K.MOVE_ALL, 100), "user single": user(K.MOVE_SINGLE, 10),
                  "user mala": user(K.MOVE_MALA, 100)}))
"""


def measure(tree, threads=1, extra_env=(), suite="metropolis", cpu=0, clock="wall"):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    env.update(kv.split("=", 1) for kv in extra_env)
    cmd = [sys.executable, "-c", _MEASURE, os.path.abspath(tree), suite, clock]
    if threads == 1 and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    out = subprocess.run(cmd, env=env, cwd="/", capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="NUMBA_NUM_THREADS of the measured processes (pinned to --cpu if 1)")
    ap.add_argument("--cpu", type=int, default=0, help="the core one-thread runs are pinned to")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="time calls by the wall clock, or by the process's CPU time (steadier "
                         "on a loaded host with one thread; counts every thread's time)")
    ap.add_argument("--before-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment of the first tree's processes (repeatable)")
    ap.add_argument("--after-env", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--suite", choices=("metropolis", "mala-user"), default="metropolis",
                    help="the Metropolis sweeps and energies above, or MALA (MLP, CNN) and "
                         "the compiled user observables' sweeps (all, single, mala)")
    args = ap.parse_args(argv)
    sys.path.insert(0, HERE)
    from hostinfo import host

    runs = {"before": [], "after": []}
    for r in range(args.rounds):
        for name in ("before", "after"):
            runs[name].append(measure(getattr(args, name), args.threads,
                                      getattr(args, name + "_env"), args.suite, args.cpu,
                                      args.clock))
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
