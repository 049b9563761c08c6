"""The benchmark peers (``benchmarks/jax_ref.py``, ``benchmarks/torch_ref.py``) sample the right
distribution, so no speed-up is measured against a broken peer.

Each peer samples a 1-d energy on a box whose density is large at a wall (so the boundary rule
matters), and its histogram is compared bin by bin with the exact bin probabilities from
quadrature. The chains are independent, so the standard error of a bin's frequency comes from
the spread of the per-chain frequencies (which carries the autocorrelation within a chain);
the check fails when any bin is off by more than ``Z_MAX`` standard errors (chains seeded with
``seed=7``; the correct peers measured 1.9-2.4). Tests below show that the same check rejects
a peer with a broken acceptance rule (36-38 standard errors) or boundary rule (222).

Skipped when jax / torch is not installed (``pip install -e .[bench]``); CI does not install
them.
"""

import os
import re
import sys

import numpy as np
import pytest

import mme_numba as mme
from mme_numba import quadrature as q

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))

POWERS = 7          # the spec op code (mme_numba.observables.polynomial)
Z_MAX = 5.0         # per-bin tolerance in standard errors (20 bins)
N_CHAINS = 2048
BURN_IN, N_SNAPSHOTS, THIN = 400, 150, 4
BINS = 20

# H(x) = 0.3 x - 1.2 x^2 + 0.1 x^3 + 0.25 x^4 on [-2, 2]: two wells, the deeper one against
# the left wall (a quarter of the mass in the outermost two bins)
POLY = {"spec": np.array([[POWERS, 1, 4, 0, 4, 0, 0, 0]], np.int64), "params": np.zeros(0),
        "lam": np.array([0.3, -1.2, 0.1, 0.25]), "lo": -2.0, "hi": 2.0}


def _poly_energy(x):
    return np.polyval([0.25, 0.1, -1.2, 0.3, 0.0], x[:, 0])


def _mlp_case():
    # a small tanh MLP: the energy read from the network description, the exact one from
    # the NumPy network
    net = mme.nn.mlp([1, 8, 2], activation="tanh", random_state=3)
    lam = np.array([2.0, -1.5])
    case = {"spec": net.describe(), "params": net.kernel_params(), "lam": lam,
            "lo": -3.0, "hi": 3.0}
    return case, lambda x: net.forward(x) @ lam


def _bin_probabilities(energy, lo, hi):
    # exact: Simpson on each bin, normalised over the box
    edges = np.linspace(lo, hi, BINS + 1)
    mass = []
    for a, b in zip(edges[:-1], edges[1:]):
        nodes, weights = q.simpson_weights(a, b, 201)
        mass.append(weights @ np.exp(-energy(nodes[:, None])))
    mass = np.array(mass)
    return mass / mass.sum()


def _sample(peer, case, dtype, boundary="reflect", lam_scale=1.0, seed=7):
    """``(n_chains, N_SNAPSHOTS)`` states of ``peer``'s chains after burn-in."""
    x0 = np.random.default_rng(seed).uniform(case["lo"], case["hi"], (N_CHAINS, 1))
    if peer == "jax":
        jax_ref = pytest.importorskip("jax_ref")
        sampler = jax_ref.BatchedSampler(case["spec"], case["params"],
                                         lam_scale * case["lam"], x0, case["lo"], case["hi"],
                                         1.0, move="all", boundary=boundary, dtype=dtype,
                                         seed=seed)
        state = lambda: np.asarray(sampler.x, np.float64)[:, 0]  # noqa: E731
    else:
        torch = pytest.importorskip("torch")
        import torch_ref

        sampler = torch_ref.BatchedSampler(case["spec"], case["params"],
                                           lam_scale * case["lam"], x0, case["lo"],
                                           case["hi"], 1.0, move="all", boundary=boundary,
                                           dtype=getattr(torch, dtype), seed=seed)
        state = lambda: sampler.x.double().numpy()[:, 0]  # noqa: E731
    sampler.steps(BURN_IN)
    out = np.empty((N_CHAINS, N_SNAPSHOTS))
    for s in range(N_SNAPSHOTS):
        sampler.steps(THIN)
        out[:, s] = state()
    return out


def _max_z(samples, probabilities, lo, hi):
    """The largest |frequency - probability| over the bins, in standard errors."""
    assert samples.min() >= lo and samples.max() <= hi   # the box rule keeps chains inside
    idx = np.clip(((samples - lo) / (hi - lo) * BINS).astype(int), 0, BINS - 1)
    per_chain = np.stack([(idx == b).mean(axis=1) for b in range(BINS)], axis=1)
    freq = per_chain.mean(axis=0)
    se = per_chain.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    return float(np.max(np.abs(freq - probabilities) / np.maximum(se, 1e-12)))


@pytest.mark.parametrize("peer", ["jax", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("boundary", ["reflect", "reject"])
def test_peer_samples_the_polynomial_density(peer, dtype, boundary):
    p = _bin_probabilities(_poly_energy, POLY["lo"], POLY["hi"])
    assert p[:2].sum() > 0.2   # the wall matters
    z = _max_z(_sample(peer, POLY, dtype, boundary), p, POLY["lo"], POLY["hi"])
    assert z < Z_MAX, f"{peer} {dtype} {boundary}: a bin is off by {z:.1f} standard errors"


@pytest.mark.parametrize("peer", ["jax", "torch"])
def test_peer_samples_the_mlp_density(peer):
    case, energy = _mlp_case()
    p = _bin_probabilities(energy, case["lo"], case["hi"])
    z = _max_z(_sample(peer, case, "float64"), p, case["lo"], case["hi"])
    assert z < Z_MAX, f"{peer}: a bin is off by {z:.1f} standard errors"


@pytest.mark.parametrize("peer", ["jax", "torch"])
def test_check_rejects_a_wrong_acceptance_rule(peer):
    # accepting with exp(-0.8 ΔH) (a mis-scaled acceptance test) samples exp(-0.8 H)
    p = _bin_probabilities(_poly_energy, POLY["lo"], POLY["hi"])
    z = _max_z(_sample(peer, POLY, "float64", lam_scale=0.8), p, POLY["lo"], POLY["hi"])
    assert z > 3 * Z_MAX


def test_check_rejects_a_wrong_boundary_rule(monkeypatch):
    # clipping at the walls instead of folding: proposals pile up on the wall
    jax_ref = pytest.importorskip("jax_ref")
    monkeypatch.setattr(jax_ref, "reflect", lambda y, lo, hi: jax_ref.jnp.clip(y, lo, hi))
    p = _bin_probabilities(_poly_energy, POLY["lo"], POLY["hi"])
    z = _max_z(_sample("jax", POLY, "float64"), p, POLY["lo"], POLY["hi"])
    assert z > 2 * Z_MAX


@pytest.mark.parametrize("problem", ["mlp", "cnn"])
def test_peers_evaluate_the_benchmark_energies(problem):
    # the benchmark's two energies (the paper's MLP, paper_cnn(16) on 8x8) against the NumPy
    # network: both peers read the same (spec, params, lam) as the kernels
    jax_ref = pytest.importorskip("jax_ref")
    torch = pytest.importorskip("torch")
    import torch_ref

    net = (mme.nn.mlp([1, 32, 32, 2], activation="tanh", random_state=0) if problem == "mlp"
           else mme.nn.paper_cnn(16, random_state=0))
    rng = np.random.default_rng(5)
    d = 1 if problem == "mlp" else 64
    X = rng.uniform(-3.0 if d == 1 else 0.0, 3.0 if d == 1 else 1.0, (64, d))
    lam = rng.standard_normal(net.describe()[-1, 2])
    want = net.forward(X) @ lam
    for dtype, tol in (("float64", 1e-10), ("float32", 1e-4)):
        E = jax_ref.energy_function(net.describe(), net.kernel_params(), lam, dtype)
        got_jax = np.asarray(E(jax_ref.jnp.asarray(X, dtype)), np.float64)
        E = torch_ref.energy_function(net.describe(), net.kernel_params(), lam,
                                      getattr(torch, dtype))
        got_torch = E(torch.tensor(X, dtype=getattr(torch, dtype))).double().numpy()
        scale = max(1.0, np.abs(want).max())
        np.testing.assert_allclose(got_jax, want, rtol=tol, atol=tol * scale)
        np.testing.assert_allclose(got_torch, want, rtol=tol, atol=tol * scale)


def test_jax_float32_run_stays_in_float32():
    # x64 is on for the float64 sampler; a float32 run must not be promoted anywhere
    jax_ref = pytest.importorskip("jax_ref")
    import jax

    case, _ = _mlp_case()
    s = jax_ref.BatchedSampler(case["spec"], case["params"], case["lam"],
                               np.zeros((16, 1)), -3.0, 3.0, 1.0, dtype="float32")
    jaxpr = str(jax.make_jaxpr(s._run)(s.key, s.x, s.h, 3))
    # (jax.random.uniform takes its default bounds 0.0 and 1.0 as float64 scalars, ``f64[]``,
    # and converts them; no array may be float64)
    assert re.search(r"f32\[\d", jaxpr) and not re.search(r"f64\[\d", jaxpr)
