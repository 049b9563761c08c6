"""What a benchmark figure depends on: the CPU, its vector units, the core and thread counts,
the versions."""

import os
import platform

# The instruction sets that decide how wide the kernels' loops run (Linux /proc/cpuinfo names).
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def _cpuinfo():
    try:
        with open("/proc/cpuinfo") as fh:
            return fh.read().splitlines()
    except OSError:
        return []


def isa(lines=None):
    """The entries of ``ISA_FLAGS`` that the first CPU of ``/proc/cpuinfo`` reports."""
    lines = _cpuinfo() if lines is None else lines
    flags = next((line.split(":", 1)[1].split() for line in lines
                  if line.startswith("flags")), [])
    return [f for f in ISA_FLAGS if f in flags]


def host():
    """``{"cpu", "isa", "cores", "numba_threads", "python", "numba", "llvm", "numpy"}`` of this
    machine and process (``isa``: the vector-unit flags, :data:`ISA_FLAGS`; ``llvm``: the LLVM
    that numba compiles with)."""
    import llvmlite.binding
    import numba
    import numpy

    from mme_numba.kernels.tune import cpu_model  # with the generation ("AMD EPYC" does not say)

    lines = _cpuinfo()
    cpu = cpu_model()

    return {"cpu": cpu, "isa": isa(lines), "cores": os.cpu_count(),
            "numba_threads": os.environ.get("NUMBA_NUM_THREADS", "default"),
            "python": platform.python_version(), "numba": numba.__version__,
            "llvm": ".".join(map(str, llvmlite.binding.llvm_version_info)),
            "numpy": numpy.__version__}


def describe(info=None):
    """One line naming the host, printed above every table of figures."""
    h = host() if info is None else info
    isa_text = " ".join(f.upper() for f in h["isa"]) or "no AVX"
    return (f"host: {h['cpu']}, {h['cores']} cores, {isa_text}; numba {h['numba']} "
            f"(LLVM {h['llvm']}), NumPy {h['numpy']}, Python {h['python']}")
