"""What a benchmark figure depends on: the CPU, the core and thread counts, the versions."""

import os
import platform


def host():
    """``{"cpu", "cores", "numba_threads", "python", "numba"}`` of this machine and process."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import numba

    return {"cpu": cpu, "cores": os.cpu_count(),
            "numba_threads": os.environ.get("NUMBA_NUM_THREADS", "default"),
            "python": platform.python_version(), "numba": numba.__version__}
