"""MPI: a run with chains split over 2 ranks is bit-identical to the single-process run."""

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("mpi4py")
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")

SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    import mme_numba as mme
    from mme_numba import parallel
    comm = parallel.world()
    X = mme.datasets.gaussian_mixture(200, means=(-2, 2), scales=(0.5, 0.5), seed=0)
    m = mme.MinMaxEnt(mme.nn.mlp([1, 8, 2], random_state=0), support=(-6.0, 6.0),
                      n_chains=65, sweeps=3, burn_in=10, batch_size=50, comm=comm,
                      move=sys.argv[2], random_state=7)
    m.fit(X, epochs=4, checkpoint=sys.argv[1] + ".npz", checkpoint_every=2)
    s = m.sample(100)
    if parallel.is_root(comm):
        size = 1 if comm is None else comm.Get_size()
        np.save(sys.argv[1] + f"-{size}.npy",
                np.concatenate([s.ravel(), m.lambda_, m.observables_.theta]))
""")


@pytest.mark.parametrize("move", ["all", "scan"])
def test_two_ranks_match_one_process_bit_for_bit(tmp_path, move):
    # "scan" runs lock-step blocks whose size follows the chains per rank (65 vs 32 + 33):
    # the result must not depend on it
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = str(tmp_path / "out")
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), out, move], check=True, env=env, timeout=300)
    subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script), out, move], check=True,
                   env=env, timeout=300)
    one, two = np.load(out + "-1.npy"), np.load(out + "-2.npy")
    np.testing.assert_array_equal(one, two)
    import mme_numba as mme

    assert mme.load(out + ".npz").epoch_ == 4
