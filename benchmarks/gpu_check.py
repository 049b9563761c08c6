"""One-shot GPU check of the CUDA backend: correctness against the CPU kernels, then throughput.

Run once on a machine with an NVIDIA GPU (see ``docs/gpu.md``)::

    python benchmarks/gpu_check.py --out gpu_check.json        # about 2-4 minutes

It smoke-tests anywhere with the CUDA simulator (tiny sizes, no timings worth reading)::

    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu_check.py --quick

Correctness: the same chains (same seeds, states, steps) advanced by the CPU and the CUDA
kernels, for an MLP (all-coordinate moves, and single-coordinate moves with the incremental
first layer), and the digits CNN with a classifier steering field (single-coordinate moves,
full forwards). It reports the fraction of chains whose random state and accept count are
identical (expected 1.0) and the largest position/energy difference (expected below 1e-9:
libdevice and fused multiply-adds change the last bits only). Observables and energies of
random points are compared too. The exit status is 1 if any check fails.

Throughput: Metropolis proposals per second on the CPU (``prange`` over chains, all cores)
and on the GPU (one thread per chain) for growing chain counts, excluding compilation
(timed separately as the first call).
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mme_numba as mme  # noqa: E402
from mme_numba import kernels as K  # noqa: E402
from mme_numba.cuda_backend import cuda_unavailable_reason  # noqa: E402

TOL = 1e-9


def net_case(name, quick):
    """(spec, params, lam, field, d, lo, hi, step) for one benchmark network."""
    if name == "mlp":
        net = mme.nn.mlp([2, 32, 32, 2], random_state=0)
        field = K.empty_term()
        lo, hi, step = -4.0, 4.0, 1.0
    else:  # digits CNN with a steering field -h log P_clf(c=3 | x), h = 2
        shape = (4, 4) if quick else (8, 8)
        net = mme.nn.paper_cnn(image_shape=shape, random_state=0)
        clf = mme.nn.classifier_cnn(image_shape=shape, random_state=1)
        lam2 = np.zeros(clf.n_observables)
        lam2[3] = -2.0
        field = (np.ascontiguousarray(clf.describe(), np.int64),
                 np.ascontiguousarray(clf.kernel_params(), np.float64), lam2)
        lo, hi, step = 0.0, 1.0, 0.3
    spec = np.ascontiguousarray(net.describe(), np.int64)
    params = np.ascontiguousarray(net.kernel_params(), np.float64)
    lam = np.linspace(-3.0, 3.0, net.n_observables)
    return spec, params, lam, field, net.n_features, lo, hi, step


def start(case, n_chains, seed=0):
    spec, params, lam, field, d, lo, hi, _ = case
    x = np.random.default_rng(seed).uniform(lo, hi, (n_chains, d))
    return x, K.energy_batch(spec, params, lam, x, *field), K.seed_states(seed, n_chains)


def sweep(mod, case, x, e, state, n_sweeps, move, boundary):
    spec, params, lam, field, _, lo, hi, step = case
    acc = np.zeros(len(x), np.int64)
    mod.metropolis_sweeps(spec, params, lam, *field, x, e, lo, hi, np.full(len(x), step),
                          n_sweeps, move, boundary, state, acc)
    return acc


def correctness(KC, name, quick, n_chains, n_sweeps, move, boundary):
    case = net_case(name, quick)
    spec, params, lam, field, d, lo, hi, _ = case
    X = np.random.default_rng(1).uniform(lo, hi, (8 if quick else 1000, d))
    O_cpu, O_gpu = K.observables_batch(spec, params, X), KC.observables_batch(spec, params, X)
    H_cpu = K.energy_batch(spec, params, lam, X, *field)
    H_gpu = KC.energy_batch(spec, params, lam, X, *field)
    x, e, s = start(case, n_chains)
    runs = []
    for mod in (K, KC):
        xc, ec, sc = x.copy(), e.copy(), s.copy()
        runs.append((xc, ec, sc, sweep(mod, case, xc, ec, sc, n_sweeps, move, boundary)))
    (xa, ea, sa, aa), (xb, eb, sb, ab) = runs
    same_chain = np.all(sa == sb, axis=1) & (aa == ab)
    res = dict(case=name, n_chains=n_chains, n_sweeps=n_sweeps, move=move, boundary=boundary,
               max_abs_observables=float(np.max(np.abs(O_cpu - O_gpu))),
               max_abs_energy_points=float(np.max(np.abs(H_cpu - H_gpu))),
               chains_identical_fraction=float(np.mean(same_chain)),
               max_abs_dx=float(np.max(np.abs(xa - xb))),
               max_abs_denergy=float(np.max(np.abs(ea - eb))),
               acceptance=float(aa.sum() / (n_chains * n_sweeps * (d if move else 1))))
    res["ok"] = bool(res["chains_identical_fraction"] == 1.0 and max(
        res["max_abs_observables"], res["max_abs_energy_points"], res["max_abs_dx"],
        res["max_abs_denergy"]) < TOL)
    return res


def throughput(mod, device, name, quick, n_chains, n_sweeps, move):
    case = net_case(name, quick)
    x, e, s = start(case, n_chains)
    t0 = time.perf_counter()
    sweep(mod, case, x, e, s, 1, move, K.BOUNDARY_REFLECT)  # compiles on first use
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    sweep(mod, case, x, e, s, n_sweeps, move, K.BOUNDARY_REFLECT)
    dt = time.perf_counter() - t0
    n_prop = n_chains * n_sweeps * (case[4] if move == K.MOVE_SINGLE else 1)
    return dict(device=device, case=name, move=move, n_chains=n_chains, n_sweeps=n_sweeps,
                seconds=dt, first_call_seconds=t_first, proposals_per_s=n_prop / dt)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (simulator smoke test)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    reason = cuda_unavailable_reason()
    if reason is not None:
        print(f"CUDA backend unavailable: {reason}")
        return 2
    from numba import config, cuda
    from mme_numba.kernels import cuda as KC

    q = args.quick
    info = dict(python=platform.python_version(), numba=__import__("numba").__version__,
                simulator=bool(config.ENABLE_CUDASIM), cpu_threads=__import__("numba")
                .get_num_threads())
    if not config.ENABLE_CUDASIM:
        dev = cuda.get_current_device()
        info.update(gpu=dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name),
                    compute_capability=list(dev.compute_capability))
    print(json.dumps(info))
    checks = [("mlp", 4 if q else 512, 2 if q else 20, K.MOVE_ALL, K.BOUNDARY_REFLECT),
              ("mlp", 4 if q else 512, 1 if q else 5, K.MOVE_SINGLE, K.BOUNDARY_REJECT),
              ("cnn", 2 if q else 128, 1, K.MOVE_SINGLE, K.BOUNDARY_REFLECT)]
    results = dict(info=info, correctness=[], throughput=[])
    for name, n_chains, n_sweeps, move, boundary in checks:
        t0 = time.perf_counter()
        r = correctness(KC, name, q, n_chains, n_sweeps, move, boundary)
        r["seconds"] = time.perf_counter() - t0
        results["correctness"].append(r)
        print(json.dumps(r))
    if q:
        plan = [("cpu", K, "mlp", 4, 2, K.MOVE_ALL), ("gpu", KC, "mlp", 4, 2, K.MOVE_ALL)]
    else:
        plan = [("cpu", K, "mlp", 16384, 50, K.MOVE_ALL),
                ("cpu", K, "mlp", 16384, 10, K.MOVE_SINGLE),
                ("cpu", K, "cnn", 512, 1, K.MOVE_SINGLE)]
        plan += [("gpu", KC, "mlp", n, 50, K.MOVE_ALL) for n in (4096, 32768, 262144)]
        plan += [("gpu", KC, "mlp", n, 5, K.MOVE_SINGLE) for n in (4096, 65536, 262144)]
        plan += [("gpu", KC, "cnn", n, 1, K.MOVE_SINGLE) for n in (1024, 8192)]
    for device, mod, name, n_chains, n_sweeps, move in plan:
        r = throughput(mod, device, name, q, n_chains, n_sweeps, move)
        results["throughput"].append(r)
        print(json.dumps(r))
    ok = all(r["ok"] for r in results["correctness"])
    print("CORRECTNESS", "OK" if ok else "FAILED")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
