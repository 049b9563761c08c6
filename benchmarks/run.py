"""The benchmark suite in one command: sampler throughput against batched PyTorch and JAX,
FLOP/s against the machine's peak, thread scaling, training time and compile cost.

    python benchmarks/run.py [--rounds 15] [--train-epochs 1000] [--json PATH] [--quick]

Every contender (``benchmarks/workers.py``) lives in its own process and does a fixed
amount of work per repetition; repetitions are interleaved round by round (in a rotating
order), so a burst of load from other processes hits every contender alike. Reported per
contender: the median rate over rounds by CPU time (``process_time``: what the code costs,
steady on a shared machine) and by wall time. Ratios are medians of per-round ratios.
Thread scaling is by wall time (CPU time cannot show it). PyTorch and JAX columns are
skipped when torch or jax is not installed (``pip install -e .[bench]``). Every table is
printed under a line naming the host (CPU, vector ISA, cores, numba and LLVM versions), and
every contender with its FLOPs and transcendental calls per proposal and the fraction of
this host's measured dgemm (float64 contenders) or sgemm (float32) peak it reaches. Results
are printed as tables and written as JSON.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import hostinfo  # noqa: E402
from workers import CONTENDERS, JAX_ONE_THREAD  # noqa: E402

ONE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                  "NUMBA_NUM_THREADS": "1", **JAX_ONE_THREAD}
# The peers' thread scaling: PyTorch sets its threads per call, JAX per process.
PEERS = [f"{problem}/{peer}-{dtype}" for problem in ("mlp", "cnn") for peer in ("torch", "jax")
         for dtype in ("f64", "f32")]


class Worker:
    """A contender's process: ``run(threads)`` returns one measurement dict."""

    def __init__(self, name, env):
        self.name = name
        contender = name.split("@")[0]   # "mlp/jax-f32@2": that contender, started for 2
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "workers.py"),
                                      contender],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=ROOT, env=env)
        self.hello = json.loads(self.proc.stdout.readline() or '{"skip": "worker died"}')
        if "skip" in self.hello:
            self.close()

    @property
    def alive(self):
        return "skip" not in self.hello

    def run(self, threads=1):
        self.proc.stdin.write(f"run {threads}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            self.proc.wait(timeout=60)


def _env(extra):
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _interleave(workers, schedule, rounds, results):
    """``rounds`` rounds of the ``(worker, threads, label)`` schedule, rotating its order."""
    for r in range(rounds):
        shift = r % len(schedule)
        for name, threads, label in schedule[shift:] + schedule[:shift]:
            results.setdefault(label, []).append(workers[name].run(threads))


def _start(names, env_for):
    workers, skipped = {}, {}
    for name in names:
        w = Worker(name, _env(env_for(name)))
        if w.alive:
            workers[name] = w
        else:
            skipped[name] = w.hello["skip"]
    return workers, skipped


def _close(workers):
    for w in workers.values():
        w.close()


def throughput(rounds, max_threads, only=None):
    """Interleaved repetitions; returns ``({label: [measurements]}, {name: why skipped})``.

    Two phases. First every contender on one thread (numba's workers started with one
    thread too, so no idle pool spins next to the others). Then the thread scaling of the
    MLP sampler (default OpenMP wait policy and ``OMP_WAIT_POLICY=passive``), of the CNN
    scan sampler and of the peers, 1 vs ``max_threads`` threads, each contender in a phase
    of its own: the spinning pool threads of an idle worker would otherwise steal wall time
    from the others. A JAX contender is two workers, one started for one thread and one for
    all cores.
    """
    def one_thread(name):
        return dict(ONE_THREAD_ENV)

    names = [n for n in CONTENDERS if n != "mlp/mme-passive"
             and (only is None or n in only)]
    workers, skipped = _start(names, one_thread)
    results = {}
    try:
        _interleave(workers, [(n, 1, n) for n in workers], rounds, results)
    finally:
        _close(workers)
    if max_threads > 1:
        def threaded(name):
            extra = {"NUMBA_NUM_THREADS": str(max_threads), "OPENBLAS_NUM_THREADS": "1"}
            if name == "mlp/mme-passive":
                extra["OMP_WAIT_POLICY"] = "passive"
            return extra

        # One contender at a time: an idle worker of another contender keeps its OpenMP pool
        # spinning for a while after each call and would take a core from this one.
        for name in ("mlp/mme", "mlp/mme-passive", "cnn/mme-scan", *PEERS):
            if only is not None and name not in only:
                continue
            if "/jax-" in name:
                ends = [f"{name}@1", f"{name}@{max_threads}"]
                workers, more = _start(ends, lambda n: (dict(ONE_THREAD_ENV) if n == ends[0]
                                                        else threaded(n)))
                schedule = [(n, 1, n) for n in ends if n in workers]
            else:
                workers, more = _start([name], threaded)
                label = "mlp/mme-default" if name == "mlp/mme" else name
                schedule = [(name, t, f"{label}@{t}") for t in (1, max_threads)
                            if name in workers]
            skipped.update({k: v for k, v in more.items() if k.split("@")[0] not in skipped})
            try:
                _interleave(workers, schedule, rounds, results)
            finally:
                _close(workers)
    return results, skipped


def summarize(results):
    """Median rates per label and median paired ratios."""
    rate = {}
    for label, ms in results.items():
        if label.startswith("peak"):
            rate[label] = {"gflops_cpu": [m["flops"] / m["cpu"] / 1e9 for m in ms],
                           "gflops_wall": [m["flops"] / m["wall"] / 1e9 for m in ms]}
        else:
            rate[label] = {"rate_cpu": [m["proposals"] / m["cpu"] for m in ms],
                           "rate_wall": [m["proposals"] / m["wall"] for m in ms],
                           "flops": ms[0]["flops"],
                           "transcendentals": ms[0].get("transcendentals")}
    summary = {}
    for label, r in rate.items():
        summary[label] = {k: (float(np.median(v)) if isinstance(v, list) else v)
                          for k, v in r.items()}
        for k, v in r.items():   # the spread over rounds beside every median
            if isinstance(v, list):
                summary[label][k + "_range"] = [float(min(v)), float(max(v))]

    def ratio(a, b, key="rate_cpu"):
        if a not in rate or b not in rate:
            return None
        return float(np.median(np.array(rate[a][key]) / np.array(rate[b][key])))

    for label, s in summary.items():
        if "flops" in s:
            # float32 contenders against the sgemm peak, all others against dgemm
            peak = summary.get("peak-f32" if "-f32" in label else "peak", {}).get("gflops_cpu")
            s["gflops_cpu"] = s["rate_cpu"] * s["flops"] / 1e9
            s["percent_of_peak"] = 100 * s["gflops_cpu"] / peak if peak else None
    ratios = {}
    for problem, ours in (("mlp", ["mlp/mme", "mlp/mme-f32", "mlp/mme-one-chain"]),
                          ("cnn", ["cnn/mme-scan", "cnn/mme-scan-f32", "cnn/mme-incremental",
                                   "cnn/mme-lockstep"])):
        for a in ours:
            # every sampler against PyTorch; the headline ones (float64 and float32)
            # against JAX too
            peers = ("torch", "jax") if a in ours[:2] else ("torch",)
            for b in (f"{problem}/{peer}-{dtype}" for peer in peers for dtype in ("f64", "f32")):
                value = ratio(a, b)
                if value is not None:
                    ratios[f"{a} / {b}"] = value
                value = ratio(a, b, "rate_wall")
                if value is not None:
                    ratios[f"{a} / {b} (wall)"] = value
    for a, b in (("mlp/mme", "mlp/mme-one-chain"), ("cnn/mme-scan", "cnn/mme-incremental"),
                 ("mlp/mme-f32", "mlp/mme"), ("cnn/mme-scan-f32", "cnn/mme-scan")):
        value = ratio(a, b)
        if value is not None:
            ratios[f"{a} / {b}"] = value
    for label in summary:
        if "@" in label and not label.endswith("@1"):
            one = label.split("@")[0] + "@1"
            ratios[f"{label} / {one} (wall)"] = ratio(label, one, "rate_wall")
    return summary, ratios


def train(epochs, variants):
    """The 1-d experiment once per environment variant (fresh process each)."""
    out = []
    for name, extra in variants:
        res = subprocess.run([sys.executable, os.path.join(HERE, "train_1d.py"), str(epochs)],
                             capture_output=True, text=True, cwd=ROOT, env=_env(extra))
        if res.returncode != 0:
            out.append({"variant": name, "env": extra, "error": res.stderr[-2000:]})
            continue
        out.append({"variant": name, "env": extra, **json.loads(res.stdout.splitlines()[-1])})
    return out


def compile_cost():
    """Cold start (empty numba cache) and warm start (the cache that run wrote)."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold (compiles: no cache)", "warm (loads cache=True files)"):
            res = subprocess.run([sys.executable, os.path.join(HERE, "compile_cost.py")],
                                 capture_output=True, text=True, cwd=ROOT,
                                 env=_env({"NUMBA_CACHE_DIR": cache}))
            out[label] = (json.loads(res.stdout.splitlines()[-1]) if res.returncode == 0
                          else {"error": res.stderr[-2000:]})
    return out


def _fmt(v, scale=1.0, digits=2):
    return "-" if v is None else f"{v / scale:.{digits}f}"


def print_report(summary, ratios, skipped, trains, compiles, max_threads, host_line=None):
    host_line = host_line or hostinfo.describe()
    print(f"\n{host_line}")
    print("Sampler throughput, one thread, float64 unless marked f32 (median over rounds, "
          "[min, max] by CPU time)")
    print(f"{'contender':22s} {'prop/s (cpu)':>12s} {'[min, max]':>19s} {'prop/s (wall)':>13s} "
          f"{'FLOP/prop':>10s} {'transc.':>7s} {'GFLOP/s':>8s} {'% peak':>7s}")
    for label, s in summary.items():
        if label.startswith("peak") or "@" in label:
            continue
        lo, hi = s["rate_cpu_range"]
        print(f"{label:22s} {s['rate_cpu']:12.4g} {f'[{lo:.3g}, {hi:.3g}]':>19s} "
              f"{s['rate_wall']:13.4g} {s['flops']:10.0f} {_fmt(s['transcendentals'], digits=0):>7s} "
              f"{_fmt(s['gflops_cpu']):>8s} {_fmt(s['percent_of_peak'], digits=1):>7s}")
    for label, what in (("peak", "dgemm"), ("peak-f32", "sgemm")):
        if label in summary:
            lo, hi = summary[label]["gflops_cpu_range"]
            print(f"{f'peak: 1024^3 {what}':22s} {'':12s} {f'[{lo:.3g}, {hi:.3g}]':>19s} "
                  f"{'':13s} {'':10s} {'':7s} {summary[label]['gflops_cpu']:8.2f} {'100.0':>7s}")
    print("(FLOP/prop: 2 per multiply-add of the network and lam.O; transc.: tanh etc. plus the "
          "draws' log, sqrt, cos and the acceptance log; % peak: of dgemm for float64, sgemm "
          "for f32, NumPy's BLAS on one thread)")
    for name, why in skipped.items():
        print(f"{name:22s} skipped: {why}")
    scaled = [label for label in summary if "@" in label and not label.endswith("@1")]
    if scaled:
        print(f"\n{host_line}")
        print(f"Thread scaling (wall time, 1 -> {max_threads} threads)")
        for label in scaled:
            base = label.split("@")[0] + "@1"
            print(f"  {base[:-2]:24s} {summary[base]['rate_wall']:10.4g} -> "
                  f"{summary[label]['rate_wall']:10.4g} prop/s: "
                  f"{_fmt(ratios.get(f'{label} / {base} (wall)'))}x")
    print(f"\n{host_line}")
    print("Ratios (median of per-round ratios; CPU time unless marked wall)")
    for key, value in ratios.items():
        print(f"  {key:60s} {_fmt(value)}x")
    if trains:
        print(f"\n{host_line}")
        print("Training: 1-d experiment (MinMaxEnt, MLP 1-32-32-2, 1000 points, 1024 chains)")
        for t in trains:
            if "error" in t:
                print(f"  {t['variant']:44s} failed: {t['error'][-300:]}")
                continue
            print(f"  {t['variant']:44s} {t['epochs']} epochs: wall {t['wall']:.1f} s, "
                  f"cpu {t['cpu']:.1f} s (sample {t['t_sample']:.1f}, lambda "
                  f"{t['t_lambda']:.1f}, theta {t['t_theta']:.1f} s wall)")
    if compiles:
        print(f"\n{host_line}")
        print("Cold start: import + first call of each kernel entry point")
        for label, c in compiles.items():
            if "error" in c:
                print(f"  {label:32s} failed: {c['error'][-300:]}")
            else:
                print(f"  {label:32s} total {c['total']:.1f} s (import {c['import']:.1f} s, "
                      f"sweeps_all {c['sweeps_all']:.1f} s, sweeps_single "
                      f"{c['sweeps_single']:.1f} s, sweeps_scan {c['sweeps_scan']:.1f} s)")


def _machine():
    info = {**hostinfo.host(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    if hasattr(os, "getloadavg"):
        info["loadavg_start"] = os.getloadavg()
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:   # e.g. taskset -c 0
        info["affinity"] = sorted(affinity(0))
    for peer in ("torch", "jax"):
        try:
            info[peer] = __import__(peer).__version__
        except ImportError:
            info[peer] = None
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                        help="thread count for the scaling row (default: 2)")
    parser.add_argument("--train-epochs", type=int, default=1000)
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds, 50 training epochs, no compile test: a smoke run")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "latest.json"))
    parser.add_argument("--only", default=None,
                        help="comma-separated contenders (workers.CONTENDERS) to run, e.g. "
                             "mlp/mme,mlp/mme-f32,mlp/jax-f32,peak,peak-f32")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.train_epochs, args.no_compile = 3, 50, True
    started = time.time()
    meta = {"command": "python benchmarks/run.py " + " ".join(argv or sys.argv[1:]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "rounds": args.rounds, **_machine()}
    only = None if args.only is None else set(args.only.split(","))
    if only is not None and only - set(CONTENDERS):
        parser.error(f"unknown contenders: {sorted(only - set(CONTENDERS))}")
    results, skipped = throughput(args.rounds, args.threads, only)
    summary, ratios = summarize(results)
    trains = [] if args.no_train else train(args.train_epochs, [
        (f"{args.threads} threads, default environment",
         {"NUMBA_NUM_THREADS": str(args.threads)}),
        (f"{args.threads} threads, passive OpenMP wait, 1 BLAS thread",
         {"NUMBA_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "passive",
          "OPENBLAS_NUM_THREADS": "1"}),
        ("1 thread", {"NUMBA_NUM_THREADS": "1", **ONE_THREAD_ENV}),
    ])
    compiles = {} if args.no_compile else compile_cost()
    if hasattr(os, "getloadavg"):
        meta["loadavg_end"] = os.getloadavg()
    meta["seconds"] = time.time() - started
    host_line = hostinfo.describe(meta) + (f"; cores allowed {meta['affinity']}"
                                           if "affinity" in meta else "")
    print_report(summary, ratios, skipped, trains, compiles, args.threads, host_line)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "throughput": summary, "ratios": ratios, "skipped": skipped,
                   "raw": results, "train": trains, "compile": compiles}, f, indent=1)
    print(f"\nwrote {args.json} ({meta['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
