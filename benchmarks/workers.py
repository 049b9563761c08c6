"""One benchmark contender per process, driven line by line from ``benchmarks/run.py``.

    python benchmarks/workers.py CONTENDER

The worker builds its problem, warms up (compiles), prints ``{"ready": ...}`` and then
answers each ``run THREADS`` line on stdin with one JSON line ``{"proposals", "flops",
"transcendentals", "wall", "cpu"}`` for one fixed amount of work. ``quit`` ends it. Keeping each contender
in its own process keeps PyTorch's and numba's thread pools apart and lets ``run.py``
interleave the contenders' repetitions, so that load from other processes hits all of
them alike.

Contenders (``CONTENDERS``): ``mlp/*`` sample the MLP problem with all-coordinate moves,
``cnn/*`` the CNN problem with single-pixel moves (random scan; ``cnn/mme-scan``: systematic
scan); ``*-f32``: mme_numba's float32 kernels (``dtype="float32"``: float32 chains, energies
and parameters); ``*/torch-*`` and ``*/jax-*`` are the batched peers (``torch_ref.py``, ``jax_ref.py``);
``peak`` and ``peak-f32`` multiply two large float64 / float32 matrices with NumPy's BLAS
(the machine's attainable FLOP/s, dgemm and sgemm).

Each answer also carries the contender's cost per proposal, counted from the network's
description (``problems.py``): ``flops`` (2 per multiply-add) and ``transcendentals``.
JAX fixes its thread count when it starts: ``run.py`` starts a JAX worker for one thread
with ``JAX_ONE_THREAD`` in its environment and one for all cores without it.
"""

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import problems  # noqa: E402

CONTENDERS = {
    # name: (problem, implementation, options)
    "mlp/mme": ("mlp", "mme", {}),
    "mlp/mme-f32": ("mlp", "mme", {"dtype": "float32"}),
    "mlp/mme-one-chain": ("mlp", "mme", {"lanes": 1}),
    "mlp/mme-passive": ("mlp", "mme", {}),   # run.py starts it with OMP_WAIT_POLICY=passive
    "mlp/torch-f64": ("mlp", "torch", {"dtype": "float64"}),
    "mlp/torch-f32": ("mlp", "torch", {"dtype": "float32"}),
    "cnn/mme-incremental": ("cnn", "images", {}),
    "cnn/mme-lockstep": ("cnn", "mme", {}),
    "cnn/mme-scan": ("cnn", "scan", {}),   # systematic scan, lock-step incremental
    "cnn/mme-scan-f32": ("cnn", "scan", {"dtype": "float32"}),
    "cnn/torch-f64": ("cnn", "torch", {"dtype": "float64"}),
    "cnn/torch-f32": ("cnn", "torch", {"dtype": "float32"}),
    "mlp/jax-f64": ("mlp", "jax", {"dtype": "float64"}),
    "mlp/jax-f32": ("mlp", "jax", {"dtype": "float32"}),
    "cnn/jax-f64": ("cnn", "jax", {"dtype": "float64"}),
    "cnn/jax-f32": ("cnn", "jax", {"dtype": "float32"}),
    "peak": ("peak", "numpy", {"dtype": "float64"}),
    "peak-f32": ("peak", "numpy", {"dtype": "float32"}),
}

# The XLA CPU flags that keep a JAX process on one thread (run.py sets them for one-thread
# workers; they must be in the environment before jax is imported).
JAX_ONE_THREAD = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false "
                                "intra_op_parallelism_threads=1"}

# Work per "run": enough for tens of milliseconds on one core.
MLP_SWEEPS = 20          # x 1024 chains
CNN_SWEEPS = 1           # x 64 pixels x 512 chains (compiled kernels)
CNN_TORCH_STEPS = 8      # x 512 chains (one proposal per chain per step)
PEAK_N = 1024            # (n x n) @ (n x n)


def _mme_runner(prob, impl, options):
    import numba

    from mme_numba import kernels as K

    p = prob
    n, d = p["x0"].shape
    options = dict(options)
    dtype = np.dtype(options.pop("dtype", "float64")).type
    x = p["x0"].astype(dtype)          # float32 chains run the float32 kernels
    term2 = K.empty_term()
    energy = K.energy_batch(p["spec"], p["params"], p["lam"], x, *term2, dtype=dtype)
    state = K.seed_states(0, n)
    accepted = np.zeros(n, np.int64)
    step = np.full(n, p["step"])
    lo, hi = np.full(d, p["lo"]), np.full(d, p["hi"])
    if impl == "images":
        from mme_numba.kernels.moves import single as images  # incremental conv kernel

        def work():
            images.single_pixel_sweeps(p["spec"], p["params"], p["lam"], *term2, x, energy, lo,
                                       hi, step, CNN_SWEEPS, K.BOUNDARY_REFLECT, state,
                                       accepted)
            return n * d * CNN_SWEEPS
    elif impl == "scan":
        def work():
            K.metropolis_sweeps(p["spec"], p["params"], p["lam"], *term2, x, energy, lo, hi,
                                step, CNN_SWEEPS, K.MOVE_SCAN, K.BOUNDARY_REFLECT, state,
                                accepted, **options)
            return n * d * CNN_SWEEPS
    elif d == 1:
        def work():
            K.metropolis_sweeps(p["spec"], p["params"], p["lam"], *term2, x, energy, lo, hi,
                                step, MLP_SWEEPS, K.MOVE_ALL, K.BOUNDARY_REFLECT, state,
                                accepted, **options)
            return n * MLP_SWEEPS
    else:
        def work():
            K.metropolis_sweeps(p["spec"], p["params"], p["lam"], *term2, x, energy, lo, hi,
                                step, CNN_SWEEPS, K.MOVE_SINGLE, K.BOUNDARY_REFLECT, state,
                                accepted, **options)
            return n * d * CNN_SWEEPS

    def run(threads):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        return work()

    return run


def _torch_runner(prob, options):
    import torch

    import torch_ref

    torch.set_num_threads(1)
    dtype = getattr(torch, options["dtype"])
    p = prob
    move = "all" if p["x0"].shape[1] == 1 else "single"
    sampler = torch_ref.BatchedSampler(p["spec"], p["params"], p["lam"], p["x0"], p["lo"],
                                       p["hi"], p["step"], move=move, dtype=dtype)
    with torch.no_grad():
        got = sampler.energy(torch.tensor(p["x0"], dtype=dtype)).double().numpy()
    _check_same_energy(p, got, "torch " + options["dtype"])
    n_steps = MLP_SWEEPS if move == "all" else CNN_TORCH_STEPS

    def run(threads):
        torch.set_num_threads(threads)
        return sampler.steps(n_steps)

    return run


def _jax_runner(prob, options):
    import jax_ref

    p = prob
    move = "all" if p["x0"].shape[1] == 1 else "single"
    sampler = jax_ref.BatchedSampler(p["spec"], p["params"], p["lam"], p["x0"], p["lo"],
                                     p["hi"], p["step"], move=move, dtype=options["dtype"])
    _check_same_energy(p, np.asarray(sampler.h, np.float64), "jax " + options["dtype"])
    n_steps = MLP_SWEEPS if move == "all" else CNN_TORCH_STEPS
    # threads: fixed when the process started (JAX_ONE_THREAD)
    return lambda threads: sampler.steps(n_steps)


def _check_same_energy(p, got, who):
    # Both sides must sample the same distribution: a peer's energies of the initial chains
    # against the compiled interpreter's (float32 to its own precision). One input at a time
    # (energy_one), because a parallel kernel would start numba's thread pool, whose
    # spinning threads would then slow the peer in this process.
    from mme_numba.kernels import interpret as N

    e2 = N.empty_term()
    bufs = [np.empty(N.max_width(p["spec"])) for _ in range(4)]
    want = np.array([N.energy_one(p["spec"], p["params"], p["lam"], *e2, x, *bufs)
                     for x in p["x0"]])
    tol = 1e-10 if who.endswith("float64") else 1e-4
    scale = max(1.0, float(np.abs(want).max()))
    if not np.allclose(got, want, rtol=tol, atol=tol * scale):
        raise AssertionError(f"{who} energies differ from the kernels' by "
                             f"{np.abs(got - want).max():.3g}")


def _peak_runner(dtype):
    rng = np.random.default_rng(0)
    A, B = (rng.standard_normal((PEAK_N, PEAK_N)).astype(dtype) for _ in range(2))

    def run(threads):
        A @ B
        return 0

    return run


def make(name):
    """The contender ``name``: ``(run(threads) -> proposals, cost)``, ``cost`` a dict of
    ``flops`` and ``transcendentals`` per proposal (for ``peak*``: ``flops`` per run)."""
    kind, impl, options = CONTENDERS[name]
    if kind == "peak":
        return _peak_runner(options["dtype"]), {"flops": 2 * PEAK_N ** 3}
    prob = problems.mlp_problem() if kind == "mlp" else problems.cnn_problem()
    spec = prob["spec"]
    moved = prob["x0"].shape[1] if kind == "mlp" else 1   # coordinates drawn per proposal
    # what each implementation does per proposal: the incremental kernels (scan, images)
    # update a window, the others evaluate the whole network
    incremental = impl in ("scan", "images")
    cost = {"flops": (problems.scan_flops_per_proposal(spec, folded=impl == "scan")
                      if incremental else problems.flops_per_evaluation(spec)),
            "transcendentals": problems.transcendentals_per_proposal(spec, moved, incremental)}
    if impl == "torch":
        return _torch_runner(prob, options), cost
    if impl == "jax":
        return _jax_runner(prob, options), cost
    return _mme_runner(prob, impl, options), cost


def main(name):
    t0 = time.perf_counter()
    try:
        run, cost = make(name)
        run(1)  # compile / warm up
    except ImportError as exc:
        print(json.dumps({"skip": f"{type(exc).__name__}: {exc}"}), flush=True)
        return
    print(json.dumps({"ready": time.perf_counter() - t0}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        threads = int(words[1]) if len(words) > 1 else 1
        wall, cpu = time.perf_counter(), time.process_time()
        proposals = run(threads)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(json.dumps({"proposals": proposals, **cost, "wall": wall, "cpu": cpu}),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
