"""The CUDA backend without a GPU: the kernels in the numba CUDA simulator, and compiled to PTX.

``NUMBA_ENABLE_CUDASIM=1`` only takes effect if it is set before numba is imported, so the
simulator checks (``tests/cuda_sim_checks.py``) run in a subprocess with that environment.
They compare the CUDA kernels with the CPU kernels and ``tests/naive.py``: random states and
accept counts identical, positions, energies and observables within 1e-12 (see that file's
docstring). The simulator cannot tell whether numba's CUDA target compiles the kernels, so
``tests/cuda_ptx_check.py`` compiles every kernel to PTX with libNVVM (skipped without a CUDA
toolkit).
"""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code_or_args, sim, timeout):
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if sim:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    args = code_or_args if isinstance(code_or_args, list) else ["-c", code_or_args]
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cuda_kernels_match_cpu_in_the_simulator():
    probe = _run("from numba import cuda; assert cuda.is_available()", sim=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip("the numba CUDA simulator cannot start here:\n" + probe.stderr[-2000:])
    res = _run(["-m", "pytest", "tests/cuda_sim_checks.py", "-q", "-p", "no:cacheprovider"],
               sim=True, timeout=900)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    assert " passed" in res.stdout and "skipped" not in res.stdout, res.stdout[-3000:]


def test_every_kernel_compiles_to_ptx_for_a_real_gpu():
    res = _run(["tests/cuda_ptx_check.py"], sim=False, timeout=600)
    if res.returncode == 2:
        pytest.skip("no libNVVM (CUDA toolkit) here: " + res.stdout.strip())
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert res.stdout.count(": ok,") == 16, res.stdout  # 9 float64, 7 float32


def test_every_module_imports_with_the_installed_cuda_target():
    """numba-cuda installs an import hook that captures every module whose dotted name
    contains ``numba.cuda`` (``mme_numba.cuda_backend`` was one: RecursionError on import).
    No module of the package may have such a name, and every module, the CUDA kernels
    included, must import (in the simulator, so no driver is needed) with whichever CUDA
    target is installed: numba-cuda where the ``[cuda]`` extra is, numba's own otherwise."""
    res = _run(textwrap.dedent("""
        import importlib, pkgutil
        import mme_numba
        names = [m.name for m in pkgutil.walk_packages(mme_numba.__path__, "mme_numba.")]
        assert "mme_numba.gpu" in names and "mme_numba.kernels.cuda" in names, names
        caught = [n for n in names if "numba.cuda" in n]
        assert not caught, caught
        for name in names:
            importlib.import_module(name)
        from numba import cuda
        print("numba-cuda" if "numba_cuda" in (cuda.__file__ or "") else "built-in",
              len(names))
    """), sim=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]


def test_importing_the_backend_module_does_not_import_numba_cuda():
    res = _run(textwrap.dedent("""
        import sys
        import mme_numba.gpu
        assert "numba.cuda" not in sys.modules, "numba.cuda imported eagerly"
    """), sim=False, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]


def test_without_gpu_or_simulator_the_backend_says_how_to_enable_the_simulator():
    res = _run(textwrap.dedent("""
        from numba import cuda
        from mme_numba.gpu import CUDABackend, cuda_unavailable_reason
        if cuda.is_available():
            print("GPU")
        else:
            assert "NUMBA_ENABLE_CUDASIM=1" in cuda_unavailable_reason()
            try:
                CUDABackend()
            except RuntimeError as exc:
                assert "NUMBA_ENABLE_CUDASIM=1" in str(exc), str(exc)
                print("RAISED")
    """), sim=False, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    if res.stdout.strip() == "GPU":
        pytest.skip("a GPU is available here: the error path cannot be exercised")
    assert res.stdout.strip() == "RAISED"


def test_the_cuda_backend_is_reachable_by_name_and_fails_clearly_without_a_gpu():
    from mme_numba.backends import get_backend
    from mme_numba.gpu import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason is None:
        assert get_backend("cuda").name == "cuda"
    else:
        with pytest.raises(RuntimeError):
            get_backend("cuda")
