"""examples/phi4.py, small: a 4x4 φ⁴ lattice with compiled observables.

MaxEnt recovers the couplings of the action within 4 statistical errors; the trainable
hopping direction moves most of the way from π/4 to θ* = atan2(β_v, β_h) in 40 epochs (the
full example, 8x8 and 150 epochs, is ``python examples/phi4.py``; numbers in docs/embedding.md).
"""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def phi4():
    spec = importlib.util.spec_from_file_location("phi4_example", ROOT / "examples" / "phi4.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_compiled_lattice_observables_match_numpy(phi4):
    import mme_numba as mme

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 16))
    P = X.reshape(5, 4, 4)
    nn = np.sum(P * (np.roll(P, -1, 2) + np.roll(P, -1, 1)), axis=(1, 2))
    O = mme.observables.compiled(phi4.phi4_observables, 3).forward(X)
    np.testing.assert_allclose(O, np.c_[np.sum(X**2, 1), np.sum(X**4, 1), nn], rtol=1e-12)
    # grad_x against finite differences
    w = np.array([0.3, -0.2, 0.7])
    g = np.zeros(16)
    phi4.phi4_grad_x(X[0], np.zeros(0), w, g)
    out = np.zeros(3)
    fd = np.zeros(16)
    for k in range(16):
        for s in (1, -1):
            x = X[0].copy()
            x[k] += s * 1e-6
            phi4.phi4_observables(x, np.zeros(0), out)
            fd[k] += s * (w @ out) / 2e-6
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)


def test_maxent_recovers_the_couplings_and_minmaxent_turns_the_hopping(phi4):
    c = phi4.ISOTROPIC
    X, _ = phi4.sample_action(4, 1500, **c, sweeps=200, seed=0)
    truth = np.array([c["k2"], c["k4"], -c["bh"]])
    sigma = phi4.fisher_errors(phi4.mme.observables.compiled(phi4.phi4_observables, 3)
                               .forward(X))
    _, lam = phi4.fit_couplings(X, epochs=70, n_chains=512, average=20)  # converged by ~40
    assert np.all(np.abs(lam - truth) < 4 * sigma), (lam, truth, sigma)

    a = phi4.ANISOTROPIC
    X2, _ = phi4.sample_action(4, 1500, **a, sweeps=200, seed=1)
    theta_star = math.atan2(a["bv"], a["bh"])
    _, thetas = phi4.learn_direction(X2, epochs=40, n_chains=512)
    assert abs(thetas[-5:].mean() - theta_star) < 0.5 * (math.pi / 4 - theta_star), thetas[-5:]
