"""One-shot GPU check of the CUDA backend: correctness against the CPU kernels, then throughput.

Run once on a machine with an NVIDIA GPU (see ``docs/gpu.md``)::

    python benchmarks/gpu_check.py --out gpu_check.json   # meant to fit 15 min (not yet timed)

Sections, in order, each printed as JSON lines as it completes (a time-out still leaves
the earlier ones): the import check (every module of the package, under whichever CUDA
target is installed), correctness, chain counts that cross the scratch cap (8192, 32768,
262 144 chains, with the thread count each launch used), registers per thread and the
occupancy they allow, throughput, and one training epoch with its transfer counts.

It smoke-tests anywhere with the CUDA simulator (tiny sizes, no timings worth reading)::

    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu_check.py --quick

Correctness: the same chains (same seeds, states, steps) advanced by the CPU and the CUDA
backends, for an MLP (all-coordinate moves; single-coordinate moves with the incremental
first layer; MALA) and the digits CNN with a classifier steering field (random-scan and
systematic-scan single-pixel moves, incremental conv windows on both; MALA). It reports the
fraction of chains whose random state and accept count are identical (expected 1.0) and the
largest position/energy difference (expected below 1e-9: libdevice and fused multiply-adds
change the last bits only). Observables and energies of random points are compared too.
The exit status is 1 if any check fails.

float32 (``dtype="float32"``, every move but MALA): the same checks against the CPU's float32
kernels, where float32 rounding (the GPU contracts multiply-adds, the CPU contracts others)
may flip an accept decision that falls within ~1e-6 of a tie: the fraction of identical
chains is expected near 1.0, and the chains that stayed identical within 1e-3. Throughput
is measured in both dtypes.

Throughput: proposals per second of the CPU backend (all cores) and of the CUDA backend (one
thread per chain) for growing chain counts, excluding compilation (timed separately as the
first call).
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
from mme_numba.backends import CPUBackend, proposals_per_sweep  # noqa: E402
from mme_numba.gpu import CUDABackend, cuda_unavailable_reason  # noqa: E402
from tests.cuda_ptx_check import occupancy  # noqa: E402

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


def start(case, n_chains, seed=0, dtype="float64"):
    spec, params, lam, field, d, lo, hi, _ = case
    x = np.random.default_rng(seed).uniform(lo, hi, (n_chains, d)).astype(dtype)
    return (x, K.energy_batch(spec, params, lam, x, *field, np.dtype(dtype).type),
            K.seed_states(seed, n_chains))


def sweep(backend, case, x, e, state, n_sweeps, move, boundary):
    spec, params, lam, field, _, lo, hi, step = case
    acc = np.zeros(len(x), np.int64)
    backend.sweep(spec, params, lam, field, x, e, lo, hi, np.full(len(x), step), n_sweeps,
                  move, boundary, state, acc)
    return acc


def import_check():
    """Import every module of the package (numba-cuda's hook must not capture any)."""
    import importlib
    import pkgutil

    from numba import cuda

    names = [m.name for m in pkgutil.walk_packages(mme.__path__, "mme_numba.")]
    for name in names:
        importlib.import_module(name)
    return dict(section="import", modules=len(names),
                caught_by_hook=[n for n in names if "numba.cuda" in n],
                cuda_target="numba-cuda" if "numba_cuda" in (cuda.__file__ or "")
                else "numba built-in", ok=True)


_THREADS = []


def _spy_threads():
    """Record the thread count of every launch (to show which runs hit the scratch cap)."""
    from mme_numba.kernels.cuda import launch as KL

    real = KL._n_threads

    def spy(n_items, bytes_per_thread):
        _THREADS.append(real(n_items, bytes_per_thread))
        return _THREADS[-1]

    KL._n_threads = spy


def registers():
    """Registers per thread of every compiled kernel specialisation, and the occupancy."""
    from mme_numba.kernels.cuda import chains, mala

    kernels = {**vars(chains), **vars(mala)}
    out = []
    for name in ("_observables_kernel", "_energy_kernel", "_sweep_all_kernel",
                 "_sweep_dense_kernel", "_sweep_single_kernel", "_pixel_kernel", "_mala_kernel",
                 "_draw_kernel"):
        kernel = kernels[name]
        try:
            regs = kernel.get_regs_per_thread()
        except Exception as exc:  # not compiled in this run, or an API difference
            out.append(dict(section="registers", kernel=name, error=str(exc)[:200]))
            continue
        for sig, n in (regs.items() if isinstance(regs, dict) else [(None, regs)]):
            out.append(dict(section="registers", kernel=name, signature=str(sig)[:120],
                            registers=int(n), occupancy_128=occupancy(int(n))))
    return out


def training_epoch(backend_name, n_chains, quick):
    """One MinMaxEnt epoch (after burn-in) on ``backend_name``: seconds and, on CUDA, the
    host-device copies it made."""
    X = np.random.default_rng(0).normal(size=(200, 2))
    m = mme.MinMaxEnt(mme.nn.mlp([2, 32, 32, 2], random_state=0), support=(-4.0, 4.0),
                      n_chains=n_chains, sweeps=2 if quick else 10, burn_in=2 if quick else 20,
                      random_state=0, backend=backend_name)
    m.fit(X, epochs=1)   # burn-in and compilation
    be = m._backend_obj
    before = dict(getattr(be, "transfers", {}))
    t0 = time.perf_counter()
    m.fit(X, epochs=1)
    dt = time.perf_counter() - t0
    after = dict(getattr(be, "transfers", {}))
    return dict(section="training_epoch", device=backend_name, n_chains=n_chains,
                seconds=dt, transfers={k: after[k] - before.get(k, 0) for k in after})


def correctness(name, quick, n_chains, n_sweeps, move, boundary, dtype="float64"):
    case = net_case(name, quick)
    spec, params, lam, field, d, lo, hi, _ = case
    cpu, gpu = CPUBackend(dtype), CUDABackend(dtype)
    X = np.random.default_rng(1).uniform(lo, hi, (8 if quick else 1000, d))
    O_cpu, O_gpu = cpu.observe(spec, params, X), gpu.observe(spec, params, X)
    H_cpu, H_gpu = cpu.energy(spec, params, lam, X, field), gpu.energy(spec, params, lam, X, field)
    x, e, s = start(case, n_chains, dtype=dtype)
    runs = []
    del _THREADS[:]
    for backend in (cpu, gpu):
        xc, ec, sc = x.copy(), e.copy(), s.copy()
        runs.append((xc, ec, sc, sweep(backend, case, xc, ec, sc, n_sweeps, move, boundary)))
    (xa, ea, sa, aa), (xb, eb, sb, ab) = runs
    same_chain = np.all(sa == sb, axis=1) & (aa == ab)
    f32 = dtype == "float32"
    kept = same_chain if f32 else np.ones(len(same_chain), bool)  # float32: rare flips
    res = dict(case=name, dtype=dtype, n_chains=n_chains, n_sweeps=n_sweeps, move=move,
               boundary=boundary,
               max_abs_observables=float(np.max(np.abs(O_cpu - O_gpu))),
               max_abs_energy_points=float(np.max(np.abs(H_cpu - H_gpu))),
               chains_identical_fraction=float(np.mean(same_chain)),
               max_abs_dx=float(np.max(np.abs(xa - xb)[kept], initial=0.0)),
               max_abs_denergy=float(np.max(np.abs(ea - eb)[kept], initial=0.0)),
               threads_per_launch=sorted(set(_THREADS)),
               acceptance=float(aa.sum() / (n_chains * n_sweeps
                                            * proposals_per_sweep(move, d))))
    res["ok"] = bool(res["chains_identical_fraction"] >= (0.99 if f32 else 1.0) and max(
        res["max_abs_observables"], res["max_abs_energy_points"], res["max_abs_dx"],
        res["max_abs_denergy"]) < (1e-3 if f32 else TOL))
    return res


def throughput(backend, name, quick, n_chains, n_sweeps, move):
    case = net_case(name, quick)
    x, e, s = start(case, n_chains, dtype=np.dtype(backend.dtype).name)
    t0 = time.perf_counter()
    sweep(backend, case, x, e, s, 1, move, "reflect")  # compiles on first use
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    sweep(backend, case, x, e, s, n_sweeps, move, "reflect")
    dt = time.perf_counter() - t0
    n_prop = n_chains * n_sweeps * proposals_per_sweep(move, case[4])
    return dict(device=backend.name, dtype=np.dtype(backend.dtype).name, case=name,
                move=move, n_chains=n_chains,
                n_sweeps=n_sweeps, seconds=dt, first_call_seconds=t_first,
                proposals_per_s=n_prop / dt)


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

    q = args.quick
    info = dict(python=platform.python_version(), numba=__import__("numba").__version__,
                simulator=bool(config.ENABLE_CUDASIM), cpu_threads=__import__("numba")
                .get_num_threads())
    if not config.ENABLE_CUDASIM:
        dev = cuda.get_current_device()
        info.update(gpu=dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name),
                    compute_capability=list(dev.compute_capability))
    print(json.dumps(info))
    results = dict(info=info, correctness=[], throughput=[])
    results["import"] = import_check()
    print(json.dumps(results["import"]), flush=True)
    _spy_threads()
    checks = [("mlp", 4 if q else 512, 2 if q else 20, "all", "reflect"),
              ("mlp", 4 if q else 512, 1 if q else 5, "single", "reject"),
              ("mlp", 4 if q else 512, 2 if q else 20, "mala", "reflect"),
              ("cnn", 2 if q else 128, 1, "single", "reflect"),
              ("cnn", 2 if q else 128, 1, "scan", "reflect"),
              ("cnn", 2 if q else 128, 1 if q else 5, "mala", "reflect")]
    # chain counts that cross the scratch cap (CNN single-pixel and MALA scratch is large:
    # their launches run fewer threads than chains; threads_per_launch shows it)
    # (1 GiB of scratch: the CNN's single-pixel launches hold 8064 threads, MALA 15 488,
    # all-pixel 32 256; a GPU with under 4 GiB free lowers them)
    checks += [("cnn", 3 if q else n, 1, "single", "reflect") for n in
               ((3,) if q else (8192, 32768, 262144))]
    checks += [("cnn", 3 if q else n, 1, "mala", "reflect") for n in ((3,) if q else (32768,))]
    checks += [("cnn", 3 if q else n, 2, "all", "reflect") for n in
               ((3,) if q else (32768, 262144))]
    checks = [c + ("float64",) for c in checks]
    checks += [c[:5] + ("float32",) for c in checks[:5] if c[3] != "mala"]
    for name, n_chains, n_sweeps, move, boundary, dtype in checks:
        t0 = time.perf_counter()
        r = correctness(name, q, n_chains, n_sweeps, move, boundary, dtype)
        r["seconds"] = time.perf_counter() - t0
        results["correctness"].append(r)
        print(json.dumps(r), flush=True)
    cpu, gpu = CPUBackend(), CUDABackend()
    cpu32, gpu32 = CPUBackend("float32"), CUDABackend("float32")
    if not config.ENABLE_CUDASIM:
        results["registers"] = registers()
        for r in results["registers"]:
            print(json.dumps(r), flush=True)
    if q:
        plan = [(cpu, "mlp", 4, 2, "all"), (gpu, "mlp", 4, 2, "all"),
                (gpu32, "mlp", 4, 2, "all")]
    else:
        plan = [(cpu, "mlp", 16384, 50, "all"), (cpu, "mlp", 16384, 10, "single"),
                (cpu, "mlp", 16384, 20, "mala"), (cpu, "cnn", 1024, 1, "single"),
                (cpu, "cnn", 1024, 2, "scan"), (cpu, "cnn", 256, 5, "mala")]
        plan += [(gpu, "mlp", n, 50, "all") for n in (4096, 32768, 262144)]
        plan += [(gpu, "mlp", n, 5, "single") for n in (4096, 65536, 262144)]
        plan += [(gpu, "mlp", n, 20, "mala") for n in (4096, 65536)]
        plan += [(gpu, "cnn", n, 1, "single") for n in (1024, 8192, 32768)]
        plan += [(gpu, "cnn", n, 1, "scan") for n in (8192, 32768)]
        plan += [(gpu, "cnn", n, 5, "mala") for n in (1024, 8192)]
        plan += [(cpu32, "mlp", 16384, 50, "all"), (cpu32, "cnn", 1024, 2, "scan")]
        plan += [(gpu32, "mlp", n, 50, "all") for n in (32768, 262144)]
        plan += [(gpu32, "mlp", 262144, 5, "single")]
        plan += [(gpu32, "cnn", n, 1, m) for n in (8192, 32768) for m in ("single", "scan")]
    for backend, name, n_chains, n_sweeps, move in plan:
        r = throughput(backend, name, q, n_chains, n_sweeps, move)
        results["throughput"].append(r)
        print(json.dumps(r), flush=True)
    results["training"] = [training_epoch(b, 4 if q else 32768, q) for b in ("cpu", "cuda")]
    for r in results["training"]:
        print(json.dumps(r), flush=True)
    ok = all(r["ok"] for r in results["correctness"])
    print("CORRECTNESS", "OK" if ok else "FAILED")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
