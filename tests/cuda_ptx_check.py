"""Compile the CUDA kernels to PTX without a GPU: typing and NVVM code generation for real.

The simulator runs the kernels as Python, so it cannot tell whether numba's CUDA target
accepts them (it does not, for instance, compile the builtin ``min``/``max``). This script
compiles each named kernel for compute capability 9.0 with libNVVM, which needs a CUDA
toolkit but no driver: numba asks the current device for its compute capability while
compiling device functions, so that one query is answered with (9, 0).

Usage: ``python tests/cuda_ptx_check.py [--ptxas] [kernel ...]`` (default: all). Prints one
line per kernel; exit status 0 if all compiled, 2 if libNVVM is missing (the caller skips), 1
on a compile error. Run by ``tests/test_cuda.py``; must not run under the simulator.

``--ptxas`` also assembles each kernel with ``ptxas -arch=sm_90 -v`` (found on ``PATH``, under
``$CUDA_HOME/bin`` or next to libNVVM) and prints its registers per thread and the occupancy
they allow on an H100/H200 (65 536 registers and 2 048 threads per SM, 128-thread blocks,
registers allocated per warp in units of 256): the numbers ``docs/gpu.md`` records.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ptxas():
    """The ``ptxas`` executable, or None."""
    found = shutil.which("ptxas")
    if found:
        return found
    roots = [os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"]
    roots += [os.path.dirname(os.path.dirname(os.path.dirname(p)))
              for p in glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages",
                                              "nvidia", "cuda_nvcc", "nvvm", "lib64"))]
    for root in roots:
        cand = os.path.join(root, "bin", "ptxas")
        if root and os.path.exists(cand):
            return cand
    return None


def occupancy(regs, threads_per_block=128, regs_per_sm=65536, max_threads_per_sm=2048,
              max_blocks_per_sm=32):
    """Fraction of an sm_90 SM's 2 048 thread slots that ``regs`` registers per thread allow."""
    per_warp = -(-regs * 32 // 256) * 256
    warps_per_block = threads_per_block // 32
    blocks = min(max_blocks_per_sm, regs_per_sm // (per_warp * warps_per_block),
                 max_threads_per_sm // threads_per_block)
    return blocks * threads_per_block / max_threads_per_sm


def registers(ptx, arch="sm_90"):
    """``(registers per thread, spill stores, spill loads)`` that ptxas reports for ``ptx``."""
    exe = _ptxas()
    if exe is None:
        raise RuntimeError("ptxas not found")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "w") as fh:
            fh.write(ptx)
        res = subprocess.run([exe, f"-arch={arch}", "-v", src, "-o", os.path.join(tmp, "k.o")],
                             capture_output=True, text=True, check=True)
    text = res.stdout + res.stderr
    regs = int(re.findall(r"Used (\d+) registers", text)[-1])
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    st, ld = (int(v) for v in spills[-1]) if spills else (0, 0)
    return regs, st, ld


def float_ops(ptx):
    """``"f32 A, f64 B"``: the float32 and float64 arithmetic instructions (add, sub, mul, fma,
    div, min/max) in ``ptx``, conversions not counted: a float32 kernel whose network runs in
    float64 shows it here."""
    ops = re.findall(r"^\s*(?:@%p\d+\s+)?(?:add|sub|mul|fma|div|min|max|neg|abs)[.a-z]*"
                     r"\.f(32|64)\b", ptx, re.M)
    return f"f32 {ops.count('32')}, f64 {ops.count('64')}"


def main(names):
    want_regs = "--ptxas" in names
    names = [n for n in names if n != "--ptxas"]
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        print("run without NUMBA_ENABLE_CUDASIM")
        return 1
    from numba.core import types
    from numba.cuda.cudadrv import nvvm

    if not nvvm.is_available():
        print("libNVVM not found")
        return 2
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    class _Device:
        compute_capability = (9, 0)

    dispatcher.get_current_device = lambda: _Device()
    from mme_numba.kernels.cuda import chains, mala, swap

    kernels = {**vars(chains), **vars(mala), **vars(swap)}

    def signatures(F):
        """Every kernel's argument types for chains (and scratch) of the float type ``F``."""
        f1, f2, f3 = F[::1], F[:, ::1], F[:, :, ::1]
        d1 = types.float64[::1]  # lo, hi, step: float64 for either chain type
        i1, i2, u2 = types.int64[::1], types.int64[:, ::1], types.uint64[:, ::1]
        i, b = types.int64, types.boolean
        term = (i2, f1, f1)
        steps = (d1, d1, d1, i, i)  # lo, hi, step, n_sweeps, boundary

        def chain(args, scratch):  # device.chain_kernel's signature
            return (f2, f1, u2, i1, types.Tuple(args), types.Tuple(scratch))

        return {
            "_observables_kernel": (i2, f1, f2, f2, f3),
            "_energy_kernel": term + term + (f2, f1, f3, f3),
            **{f"_sweep_{kind}_kernel": chain(term + term + steps + (b,), (f3, f3, f2, f3))
               for kind in ("all", "dense", "single")},
            "_pixel_kernel": chain(term + (i,) + term + (i,) + steps + (b,), (f3,) * 6),
            "_mala_kernel": chain(term + term + steps, (f3,) * 4),
            "_draw_kernel": (u2, i, u2, types.float64[:, ::1]),
            "_swap_kernel": (f3, types.float64[:, ::1], d1, u2, i, i2),
        }

    # float32 runs every kernel but MALA's and the stream test's (float64 only)
    sigs = {(name, "float64"): sig for name, sig in signatures(types.float64).items()}
    sigs.update({(name, "float32"): sig for name, sig in signatures(types.float32).items()
                 if name not in ("_mala_kernel", "_draw_kernel")})
    failed = False
    for (name, dtype), sig in sigs.items():
        if names and name not in names:
            continue
        t0 = time.perf_counter()
        try:
            ptx, _ = cuda.compile_ptx(kernels[name].py_func, sig, cc=(9, 0))
        except Exception as exc:  # report every kernel, then fail
            if type(exc).__name__ == "DynamicLibNotFoundError":  # numba-cuda without NVRTC
                print(f"a CUDA toolkit library is missing: {exc}")
                return 2
            print(f"{name} {dtype}: FAILED {type(exc).__name__}: {exc}")
            failed = True
            continue
        line = (f"{name} {dtype}: ok, {len(ptx)} bytes of PTX in {time.perf_counter() - t0:.1f}"
                f" s; {float_ops(ptx)}")
        if want_regs:
            regs, st, ld = registers(ptx)
            line += (f"; sm_90: {regs} registers/thread, spill {st}/{ld} B, occupancy "
                     f"{100 * occupancy(regs):.1f} %")
        print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
