"""Compile the CUDA kernels to PTX without a GPU: typing and NVVM code generation for real.

The simulator runs the kernels as Python, so it cannot tell whether numba's CUDA target
accepts them (it does not, for instance, compile the builtin ``min``/``max``). This script
compiles each named kernel for compute capability 9.0 with libNVVM, which needs a CUDA
toolkit but no driver: numba asks the current device for its compute capability while
compiling device functions, so that one query is answered with (9, 0).

Usage: ``python tests/cuda_ptx_check.py [kernel ...]`` (default: all). Prints one line per
kernel; exit status 0 if all compiled, 2 if libNVVM is missing (the caller skips), 1 on a
compile error. Run by ``tests/test_cuda.py``; must not run under the simulator.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(names):
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
    from mme_numba.kernels import cuda as KC

    f1, f2, f3 = types.float64[::1], types.float64[:, ::1], types.float64[:, :, ::1]
    i1, i2, u2 = types.int64[::1], types.int64[:, ::1], types.uint64[:, ::1]
    i, b = types.int64, types.boolean
    term = (i2, f1, f1)
    sigs = {
        "_observables_kernel": (i2, f1, f2, f2, f3),
        "_energy_kernel": term + term + (f2, f1, f3, f3),
        "_sweep_kernel": term + term + (f2, f1, f1, f1, f1, i, i, i, u2, i1, b, f3, f3, f2, f3),
        "_pixel_kernel": term + (i,) + term + (i, f2, f1, f1, f1, f1, i, b, i, u2, i1)
        + (f3,) * 6,
        "_mala_kernel": term + term + (f2, f1, f1, f1, f1, i, i, u2, i1, f3, f3, f3, f3),
        "_draw_kernel": (u2, i, u2, f2),
    }
    failed = False
    for name in names or sorted(sigs):
        t0 = time.perf_counter()
        try:
            ptx, _ = cuda.compile_ptx(getattr(KC, name).py_func, sigs[name], cc=(9, 0))
        except Exception as exc:  # report every kernel, then fail
            print(f"{name}: FAILED {type(exc).__name__}: {exc}")
            failed = True
            continue
        print(f"{name}: ok, {len(ptx)} bytes of PTX in {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
