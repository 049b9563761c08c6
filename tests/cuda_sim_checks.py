"""CUDA kernels against the CPU kernels and the naive twins (``tests/naive.py``).

Not collected by a plain ``pytest`` run (the file name has no ``test_`` prefix):
``tests/test_cuda.py`` runs it in a subprocess with ``NUMBA_ENABLE_CUDASIM=1``, which must
be set before numba is imported. On a machine with a GPU it can also be run directly,
``pytest tests/cuda_sim_checks.py``, and then checks the real device.

Tolerances: random states and accept counts must be identical everywhere. Positions,
energies and observables agree to 1e-12 in the simulator (absolute and relative; 1e-9
after three training epochs, where λ solves and θ steps pass rounding on) and to 1e-10
(1e-6 after training) on a GPU, which contracts multiply-adds (``TOL``, ``TRAIN_TOL``): the
device code performs the CPU's
operations in the CPU's order, but compilers may fuse multiply-adds (LLVM where a CPU kernel
allows contraction, NVVM on the GPU) and libdevice's ``exp``/``log``/``cos`` differ from the
C library in the last bit, so last-bit differences are expected and not a bug. Tests are
tiny: the simulator runs each GPU thread as a Python thread.
"""

import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))
import naive  # noqa: E402

from mme_numba import kernels as K  # noqa: E402
from mme_numba.backends import CPUBackend  # noqa: E402
from mme_numba.kernels.moves import mala as M  # noqa: E402
from mme_numba.kernels.moves import single as I  # noqa: E402
from mme_numba.gpu import CUDABackend, cuda_unavailable_reason  # noqa: E402

if cuda_unavailable_reason() is not None:
    pytest.skip(cuda_unavailable_reason(), allow_module_level=True)

from mme_numba.kernels import cuda as KC  # noqa: E402
from mme_numba.kernels.cuda import launch as KL  # noqa: E402

# The simulator multiplies numpy uint64 scalars, which warn on (intended) wrap-around.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

EMPTY = K.empty_term()

# The simulator runs the device code as Python: no fused multiply-adds, the C library's
# math. A GPU contracts a*b + c into one rounding (NVVM does by default) and uses
# libdevice, so there single operations agree to ~1e-15 and differences grow through long
# chains and through training (λ solves and ADAM steps amplify them; ADAM's eps turns a
# gradient that is zero up to rounding into a ~1e-9 step). TOL bounds positions, energies
# and observables; TRAIN_TOL λ, θ and chains after three training epochs.
from numba import config as _numba_config  # noqa: E402

SIMULATOR = bool(getattr(_numba_config, "ENABLE_CUDASIM", 0))
if SIMULATOR:
    # The simulator runs a block's threads as Python threads and waits for them (and for
    # every syncthreads) by polling them while holding the GIL; a thread gets the GIL back
    # only after the switch interval (5 ms by default). Kernels that synchronise often then
    # spend most of their time waiting: a 0.1 ms interval made these checks several times
    # faster on 2 cores, the results being the same.
    sys.setswitchinterval(1e-4)
TOL = 1e-12 if SIMULATOR else 1e-10
TRAIN_TOL = 1e-9 if SIMULATOR else 1e-6


def assert_same(actual, desired, tol=TOL):
    """Floats equal up to rounding (relative and absolute ``tol``)."""
    np.testing.assert_allclose(actual, desired, rtol=tol, atol=tol)


def build(d, layers, seed=0, scale=0.7):
    """Spec and random params from layer tuples: ``("dense", n_out, bias)``,
    ``("conv", c_in, h, w, k, c_out)``, ``("act", code)``, ``("powers", degree)``."""
    rows, n_params, size = [], 0, d
    for layer in layers:
        kind = layer[0]
        if kind == "dense":
            rows.append([K.DENSE, size, layer[1], n_params, int(layer[2]), 0, 0, 0])
            n_params += layer[1] * size + (layer[1] if layer[2] else 0)
            size = layer[1]
        elif kind == "conv":
            _, c_in, h, w, k, c_out = layer
            rows.append([K.CONV2D, size, c_out * h * w, n_params, c_in, h, w, k])
            n_params += c_out * c_in * k * k + c_out
            size = c_out * h * w
        elif kind == "act":
            rows.append([layer[1], size, size, 0, 0, 0, 0, 0])
        else:  # powers
            rows.append([K.POWERS, size, size * layer[1], 0, layer[1], 0, 0, 0])
            size *= layer[1]
    params = scale * np.random.default_rng(seed).standard_normal(n_params)
    return np.array(rows, dtype=np.int64).reshape(-1, 8), params


ACTS = [K.TANH, K.SOFTPLUS, K.SIGMOID, K.RELU, K.SQUARE, K.LOGSOFTMAX]
NETS = {f"dense-{code}-bias{bias}": (3, [("dense", 5, bias), ("act", code), ("dense", 2, True)])
        for code in ACTS for bias in (False, True)}
NETS["powers"] = (2, [("powers", 3), ("dense", 2, False)])
NETS["conv"] = (9, [("conv", 1, 3, 3, 3, 2), ("act", K.RELU), ("conv", 2, 3, 3, 1, 1),
                    ("act", K.TANH), ("dense", 3, True), ("act", K.LOGSOFTMAX)])
NETS["single-dense"] = (2, [("dense", 3, True)])
SECOND = build(3, [("dense", 4, True), ("act", K.LOGSOFTMAX)], seed=9)


# --------------------------------------------------------------------------- streams
@pytest.mark.parametrize("kind", ["u64", "uniform", "normal"])
def test_streams_match_cpu_and_naive_bit_for_bit(kind):
    state0 = K.seed_states(12345, 5, first_chain=3)
    state = state0.copy()
    out = KC.draw(state, 9, kind)
    cpu_state = state0.copy()
    cpu_draw = {"u64": K.next_u64, "uniform": K.uniform, "normal": K.normal}[kind]
    cpu = np.array([[cpu_draw(cpu_state, c) for _ in range(9)] for c in range(5)])
    # Integer and uniform draws are exact everywhere; normals go through log/cos.
    check = assert_same if kind == "normal" else np.testing.assert_array_equal
    np.testing.assert_array_equal(state, cpu_state)
    check(out, cpu)
    for c in range(5):
        rng = naive.Xoshiro(state0[c])
        ref = [getattr(rng, "next_u64" if kind == "u64" else kind)() for _ in range(9)]
        check(out[c], np.array(ref, dtype=out.dtype))
        np.testing.assert_array_equal(state[c], rng.state())


def test_draw_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        KC.draw(K.seed_states(0, 2), 3, "gaussian")


# --------------------------------------------------------------------------- networks
@pytest.mark.parametrize("name", sorted(NETS))
def test_observables_and_energies_match_cpu_and_naive(name):
    d, layers = NETS[name]
    spec, params = build(d, layers, seed=len(name))
    X = 2.0 * np.random.default_rng(1).standard_normal((5, d))
    O = KC.observables_batch(spec, params, X)
    assert_same(O, K.observables_batch(spec, params, X))
    np.testing.assert_allclose(O, [naive.naive_forward(spec, params, x) for x in X],
                               rtol=TOL, atol=TOL)
    lam = np.linspace(-1.0, 1.5, O.shape[1])
    terms = [EMPTY]
    if d == 3:
        terms.append((*SECOND, np.array([0.3, -1.0, 2.0, 0.5])))
    for term in terms:
        H = KC.energy_batch(spec, params, lam, X, *term)
        assert_same(H, K.energy_batch(spec, params, lam, X, *term))
        np.testing.assert_allclose(H, [naive.naive_energy(spec, params, lam, x, *term)
                                       for x in X], rtol=TOL, atol=TOL)


def test_batch_edge_cases_and_errors_follow_the_cpu():
    spec, params = build(3, [("dense", 2, True)])
    X = np.ones((4, 3))
    np.testing.assert_array_equal(KC.observables_batch(EMPTY[0], EMPTY[1], X), X)
    assert KC.observables_batch(spec, params, np.zeros((0, 3))).shape == (0, 2)
    assert KC.energy_batch(spec, params, np.ones(2), np.zeros((0, 3)), *EMPTY).shape == (0,)
    with pytest.raises(ValueError, match="expects 3 input features"):
        KC.observables_batch(spec, params, np.ones((2, 4)))
    with pytest.raises(ValueError, match="lam has 3 entries"):
        KC.energy_batch(spec, params, np.ones(3), X, *EMPTY)
    with pytest.raises(ValueError, match="at least one row"):
        KC.energy_batch(EMPTY[0], EMPTY[1], np.ones(2), X, *EMPTY)


# --------------------------------------------------------------------------- sampler
def run_both(spec, params, lam, term, x0, lo, hi, step, n_sweeps, move, boundary, seed,
             incremental=True):
    """The same sweeps on CPU and CUDA from copies of the same inputs."""
    energy0 = K.energy_batch(spec, params, lam, x0, *term)
    state0 = K.seed_states(seed, len(x0))
    out = []
    for mod in (K, KC):
        x, e, s, a = x0.copy(), energy0.copy(), state0.copy(), np.zeros(len(x0), np.int64)
        mod.metropolis_sweeps(spec, params, lam, *term, x, e, lo, hi, step, n_sweeps, move,
                              boundary, s, a, incremental=incremental)
        out.append((x, e, s, a))
    return out, (energy0, state0)


def assert_chains_equal(cpu, gpu):
    np.testing.assert_array_equal(gpu[2], cpu[2])  # rng states
    np.testing.assert_array_equal(gpu[3], cpu[3])  # accept counts
    assert_same(gpu[0], cpu[0])
    assert_same(gpu[1], cpu[1])


@pytest.mark.parametrize("move", [K.MOVE_ALL, K.MOVE_SINGLE])
@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
@pytest.mark.parametrize("second", [False, True])
@pytest.mark.parametrize("incremental", [True, False])
def test_sweeps_match_cpu_step_for_step_and_the_naive_sampler(move, boundary, second,
                                                              incremental):
    spec, params = build(3, [("dense", 5, True), ("act", K.TANH), ("dense", 2, True)], seed=4)
    lam = np.array([0.7, -1.2])
    term = (*SECOND, np.array([0.3, -1.0, 2.0, 0.5])) if second else EMPTY
    x0 = np.random.default_rng(2).uniform(-1.0, 1.0, (4, 3))
    step = np.array([0.3, 0.8, 1.5, 3.0])  # large steps exercise the walls
    (cpu, gpu), (e0, s0) = run_both(spec, params, lam, term, x0, -1.5, 1.5, step, 4, move,
                                    boundary, seed=7, incremental=incremental)
    assert_chains_equal(cpu, gpu)
    assert 0 < gpu[3].sum() < 4 * 4 * (3 if move == K.MOVE_SINGLE else 1)  # some of each
    nx, ne, ns, na = naive.naive_metropolis(spec, params, lam, *term, x0, e0,
                                            np.full(3, -1.5), np.full(3, 1.5), step, 4, move,
                                            boundary, s0, np.zeros(4, np.int64))
    np.testing.assert_array_equal(gpu[2], ns)
    np.testing.assert_array_equal(gpu[3], na)
    np.testing.assert_allclose(gpu[0], nx, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(gpu[1], ne, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("move", [K.MOVE_ALL, K.MOVE_SINGLE])
def test_conv_net_sweeps_match_cpu(move):
    spec, params = build(9, NETS["conv"][1], seed=3)
    lam = np.array([1.0, -0.5, 0.25])
    x0 = np.random.default_rng(5).uniform(0.0, 1.0, (3, 9))
    (cpu, gpu), _ = run_both(spec, params, lam, EMPTY, x0, 0.0, 1.0, np.full(3, 0.4), 2,
                             move, K.BOUNDARY_REFLECT, seed=11)
    assert_chains_equal(cpu, gpu)


def test_fewer_threads_than_chains_gives_the_same_chains(monkeypatch):
    """Grid-stride loop: with 2 threads for 5 chains each thread runs several chains."""
    monkeypatch.setattr(KL, "SCRATCH_BYTES", 1)
    monkeypatch.setattr(KL, "THREADS_PER_BLOCK", 2)
    assert KL._n_threads(5, 1000) == 2
    spec, params = build(2, [("dense", 3, True), ("act", K.SOFTPLUS), ("dense", 1, True)])
    x0 = np.random.default_rng(0).uniform(-1.0, 1.0, (5, 2))
    for move in (K.MOVE_ALL, K.MOVE_SINGLE):
        (cpu, gpu), _ = run_both(spec, params, np.array([1.0]), EMPTY, x0, -2.0, 2.0,
                                 np.full(5, 0.7), 3, move, K.BOUNDARY_REJECT, seed=1)
        assert_chains_equal(cpu, gpu)
    X = np.random.default_rng(1).standard_normal((5, 2))
    assert_same(KC.observables_batch(spec, params, X), K.observables_batch(spec, params, X))
    assert_same(KC.energy_batch(spec, params, np.ones(1), X, *EMPTY),
                K.energy_batch(spec, params, np.ones(1), X, *EMPTY))


def test_a_scratch_cap_that_is_not_a_multiple_of_the_block_size_never_overruns(monkeypatch):
    """The scratch budget is lowered, at every launch, to room for 6.5 threads with blocks of
    4: the cap rounds down to 4 threads (one block) for 10 chains. Rounding the cap up, or
    launching two blocks of 4 over a 6-column scratch, would index past it (the simulator
    raises IndexError). Every chain is compared with the CPU for every move."""
    monkeypatch.setattr(KL, "THREADS_PER_BLOCK", 4)
    real, seen = KL._n_threads, []

    def capped(n_items, bytes_per_thread):
        monkeypatch.setattr(KL, "SCRATCH_BYTES", 6 * bytes_per_thread + bytes_per_thread // 2)
        seen.append(real(n_items, bytes_per_thread))
        return seen[-1]

    monkeypatch.setattr(KL, "_n_threads", capped)
    spec, params = build(2, [("dense", 3, True), ("act", K.TANH), ("dense", 2, True)], seed=2)
    lam = np.array([1.0, -0.5])
    x0 = np.random.default_rng(3).uniform(-1.0, 1.0, (10, 2))
    step = np.linspace(0.2, 1.5, 10)
    for move in (K.MOVE_ALL, K.MOVE_SINGLE, K.MOVE_SCAN):
        (cpu, gpu), _ = run_both(spec, params, lam, SECOND_TERM(), x0, -1.5, 1.5, step, 2,
                                 move, K.BOUNDARY_REFLECT, seed=5)
        assert_chains_equal(cpu, gpu)
    runs = []
    for mod in (M, KC):
        x, s, a = x0.copy(), K.seed_states(6, 10), np.zeros(10, np.int64)
        e = K.energy_batch(spec, params, lam, x, *EMPTY)
        mod.mala_sweeps(spec, params, lam, *EMPTY, x, e, -1.5, 1.5, step, 2,
                        K.BOUNDARY_REFLECT, s, a)
        runs.append((x, e, s, a))
    assert_chains_equal(*runs)
    cspec, cparams = build(9, NETS["conv"][1], seed=3)
    clam = np.array([1.0, -0.5, 0.25])
    X = np.random.default_rng(5).uniform(0.0, 1.0, (10, 9))
    runs = []
    for single in (I.single_pixel_sweeps, KC.single_pixel_sweeps):
        x, s, a = X.copy(), K.seed_states(4, 10), np.zeros(10, np.int64)
        e = K.energy_batch(cspec, cparams, clam, x, *EMPTY)
        single(cspec, cparams, clam, *EMPTY, x, e, 0.0, 1.0, np.full(10, 0.4), 1,
               K.BOUNDARY_REFLECT, s, a)
        runs.append((x, e, s, a))
    assert_chains_equal(*runs)
    assert_same(KC.observables_batch(spec, params, x0), K.observables_batch(spec, params, x0))
    assert_same(KC.energy_batch(spec, params, lam, x0, *EMPTY),
                K.energy_batch(spec, params, lam, x0, *EMPTY))
    assert seen and set(seen) == {4}, seen


def SECOND_TERM():
    """A second energy term on 2 features."""
    return (*build(2, [("dense", 4, True), ("act", K.LOGSOFTMAX)], seed=9),
            np.array([0.3, -1.0, 2.0, 0.5]))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_chains=st.integers(1, 3), d=st.integers(1, 3),
       hidden=st.integers(1, 4), move=st.sampled_from([K.MOVE_ALL, K.MOVE_SINGLE]),
       boundary=st.sampled_from([K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT]),
       step=st.floats(0.05, 5.0))
def test_random_small_problems_match_cpu(seed, n_chains, d, hidden, move, boundary, step):
    spec, params = build(d, [("dense", hidden, True), ("act", K.SIGMOID), ("dense", 2, True)],
                         seed=seed % 1000)
    x0 = np.random.default_rng(seed).uniform(-1.0, 1.0, (n_chains, d))
    (cpu, gpu), _ = run_both(spec, params, np.array([2.0, -1.0]), EMPTY, x0, -1.0, 1.0,
                             np.full(n_chains, step), 3, move, boundary, seed=seed)
    assert_chains_equal(cpu, gpu)


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_mala_matches_cpu_step_for_step(name, boundary):
    """Every op code through the backward pass; the second term where the input is 3-d."""
    d, layers = NETS[name]
    spec, params = build(d, layers, seed=len(name))
    lam = np.linspace(-1.0, 1.5, int(spec[-1, 2]))
    term = (*SECOND, np.array([0.3, -1.0, 2.0, 0.5])) if d == 3 else EMPTY
    x0 = np.random.default_rng(1).uniform(-1.0, 1.0, (3, d))
    e0 = K.energy_batch(spec, params, lam, x0, *term)
    step = np.array([0.2, 0.8, 2.0])  # small, medium, and large enough to hit the walls
    runs = []
    for mod in (M, KC):
        x, e, s, a = x0.copy(), e0.copy(), K.seed_states(5, 3), np.zeros(3, np.int64)
        mod.mala_sweeps(spec, params, lam, *term, x, e, -1.5, 1.5, step, 4, boundary, s, a)
        runs.append((x, e, s, a))
    assert_chains_equal(*runs)
    assert runs[1][3].sum() > 0


def test_mala_argument_checks():
    spec, params = build(2, [("dense", 1, True)])
    x, e = np.zeros((2, 2)), np.zeros(2)
    s, a = K.seed_states(0, 2), np.zeros(2, np.int64)
    with pytest.raises(ValueError, match="positive step"):
        KC.mala_sweeps(spec, params, np.ones(1), *EMPTY, x, e, -1.0, 1.0, 0.0, 1, 1, s, a)
    with pytest.raises(ValueError, match="boundary"):
        KC.mala_sweeps(spec, params, np.ones(1), *EMPTY, x, e, -1.0, 1.0, 0.5, 1, 3, s, a)


IMAGE_NETS = {  # (d, layers) with a CONV2D first row: every kind of incremental prefix
    "conv-tanh-conv-relu-dense": (18, [("conv", 2, 3, 3, 3, 2), ("act", K.TANH),
                                       ("conv", 2, 3, 3, 3, 3), ("act", K.RELU),
                                       ("dense", 2, True), ("act", K.TANH), ("dense", 2, True)]),
    "conv-only": (12, [("conv", 1, 3, 4, 3, 2), ("act", K.SOFTPLUS), ("conv", 2, 3, 4, 1, 1)]),
    "conv-sigmoid-dense-logsoftmax": (9, [("conv", 1, 3, 3, 3, 2), ("act", K.SIGMOID),
                                          ("dense", 4, True), ("act", K.LOGSOFTMAX)]),
    "conv-k5-square-dense": (16, [("conv", 1, 4, 4, 5, 2), ("act", K.SQUARE),
                                  ("dense", 3, False)]),
}


def _image_case(name, second):
    """A conv net of IMAGE_NETS, its multipliers, a second term ("conv": a conv classifier,
    incremental too; "dense": recomputed; "none") and three starting images."""
    d, layers = IMAGE_NETS[name]
    spec, params = build(d, layers, seed=3)
    lam = np.linspace(-1.0, 1.5, int(spec[-1, 2]))
    c_in, h, w = (int(v) for v in spec[0, 4:7])
    head = [("dense", 3, True), ("act", K.LOGSOFTMAX)]
    if second == "conv":
        term = (*build(d, [("conv", c_in, h, w, 3, 1), ("act", K.TANH)] + head, seed=8),
                np.array([0.5, -2.0, 1.0]))
    elif second == "dense":
        term = (*build(d, head, seed=8), np.array([0.5, -2.0, 1.0]))
    else:
        term = EMPTY
    return spec, params, lam, term, np.random.default_rng(1).uniform(0.0, 1.0, (3, d))


@pytest.mark.parametrize("name", sorted(IMAGE_NETS))
@pytest.mark.parametrize("second", ["none", "conv", "dense"])
@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_single_pixel_moves_match_the_cpu_image_kernel(name, second, boundary):
    """Incremental conv windows on the GPU against images.single_pixel_sweeps; the second
    term incremental too ("conv") or recomputed ("dense"). Most cases also reject some
    in-box proposals, which exercises the undo of the windows."""
    spec, params, lam, term, x0 = _image_case(name, second)
    e0 = K.energy_batch(spec, params, lam, x0, *term)
    runs = []
    for sweeps in (I.single_pixel_sweeps, KC.single_pixel_sweeps):
        x, e, s, a = x0.copy(), e0.copy(), K.seed_states(5, 3), np.zeros(3, np.int64)
        sweeps(spec, params, lam, *term, x, e, 0.0, 1.0, np.array([0.2, 0.5, 1.5]), 2,
               boundary, s, a)
        runs.append((x, e, s, a))
    assert_chains_equal(*runs)
    assert runs[1][3].sum() > 0
    # The incrementally updated energies are the energies of the final states.
    assert_same(runs[1][1], K.energy_batch(spec, params, lam, runs[1][0], *term))


# --------------------------------------------------------------------------- systematic scan
# MOVE_SCAN: the CPU runs kernels/moves/scan.py (chains in lock-step, its own incremental updates,
# every call starting from a full evaluation of its chains); the GPU runs the
# single-coordinate chains with j = it mod d and no coordinate draw, carrying the energies.
# Draws and accept decisions are identical; positions and energies agree to rounding, so
# energies are compared with a tolerance, never bit for bit.

def assert_energies_fresh(spec, params, lam, term, run):
    """The energies a run returns are those of its final states (to rounding)."""
    assert_same(run[1], K.energy_batch(spec, params, lam, run[0], *term))


@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
@pytest.mark.parametrize("second", [False, True])
@pytest.mark.parametrize("incremental", [True, False])
def test_scan_sweeps_match_the_cpu_scan_kernel(boundary, second, incremental):
    """MLP (first row DENSE: incremental or in full), with and without a field term."""
    spec, params = build(3, [("dense", 5, True), ("act", K.TANH), ("dense", 2, True)], seed=4)
    lam = np.array([0.7, -1.2])
    term = (*SECOND, np.array([0.3, -1.0, 2.0, 0.5])) if second else EMPTY
    x0 = np.random.default_rng(2).uniform(-1.0, 1.0, (4, 3))
    step = np.array([0.3, 0.8, 1.5, 3.0])  # large steps exercise the walls
    (cpu, gpu), (_, s0) = run_both(spec, params, lam, term, x0, -1.5, 1.5, step, 4,
                                   K.MOVE_SCAN, boundary, seed=7, incremental=incremental)
    assert_chains_equal(cpu, gpu)
    assert 0 < gpu[3].sum() < 4 * 4 * 3  # some of each
    for run in (cpu, gpu):
        assert_energies_fresh(spec, params, lam, term, run)
    if boundary == K.BOUNDARY_REFLECT:
        # every proposal kept: u1, u2 and the acceptance uniform, no coordinate draw
        s_ref = s0.copy()
        KC.draw(s_ref, 4 * 3 * 3, "u64")
        np.testing.assert_array_equal(gpu[2], s_ref)


@pytest.mark.parametrize("name, incremental", [("powers", True), ("conv", False)])
@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_scan_sweeps_in_full_match_the_cpu_scan_kernel(name, incremental, boundary):
    """The full-forward chains: a first row neither DENSE nor CONV2D, and a conv net with
    ``incremental=False`` (not routed to the single-pixel kernel)."""
    d, layers = NETS[name]
    spec, params = build(d, layers, seed=3)
    lam = np.linspace(-1.0, 1.5, int(spec[-1, 2]))
    x0 = np.random.default_rng(5).uniform(0.0, 1.0, (3, d))
    (cpu, gpu), _ = run_both(spec, params, lam, EMPTY, x0, 0.0, 1.0, np.array([0.2, 0.5, 1.5]),
                             2, K.MOVE_SCAN, boundary, seed=11, incremental=incremental)
    assert_chains_equal(cpu, gpu)
    assert gpu[3].sum() > 0
    assert_energies_fresh(spec, params, lam, EMPTY, gpu)


@pytest.mark.parametrize("name", sorted(IMAGE_NETS))
@pytest.mark.parametrize("second", ["none", "conv", "dense"])
@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
def test_scan_on_conv_nets_matches_the_cpu_scan_kernel(name, second, boundary):
    """metropolis_sweeps(MOVE_SCAN) on a CONV2D-first spec runs the single-pixel kernel in
    scan order, against every incremental plan of kernels/moves/scan.py (folded closing DENSE,
    folded conv-only, kept DENSE with rows after it) and a conv or dense field."""
    spec, params, lam, term, x0 = _image_case(name, second)
    (cpu, gpu), _ = run_both(spec, params, lam, term, x0, 0.0, 1.0,
                             np.array([0.2, 0.5, 1.5]), 2, K.MOVE_SCAN, boundary, seed=5)
    assert_chains_equal(cpu, gpu)
    assert gpu[3].sum() > 0
    assert_energies_fresh(spec, params, lam, term, gpu)


def test_scan_and_random_scan_draw_differently():
    """``scan`` is a real switch of the pixel kernel: the random scan draws more numbers."""
    spec, params = build(9, IMAGE_NETS["conv-sigmoid-dense-logsoftmax"][1], seed=3)
    lam = np.linspace(-1.0, 1.5, 4)
    x0 = np.random.default_rng(1).uniform(0.0, 1.0, (2, 9))
    e0 = K.energy_batch(spec, params, lam, x0, *EMPTY)
    states = []
    for scan in (False, True):
        x, e, s, a = x0.copy(), e0.copy(), K.seed_states(5, 2), np.zeros(2, np.int64)
        KC.single_pixel_sweeps(spec, params, lam, *EMPTY, x, e, 0.0, 1.0, 0.3, 1,
                               K.BOUNDARY_REFLECT, s, a, scan=scan)
        states.append(s)
    for n_draws, s in zip((4 * 9, 3 * 9), states):  # reflect: every proposal kept
        s_ref = K.seed_states(5, 2)
        KC.draw(s_ref, n_draws, "u64")
        np.testing.assert_array_equal(s, s_ref)


def test_single_pixel_sweeps_need_a_conv_first_row():
    spec, params = build(2, [("dense", 1, True)])
    with pytest.raises(ValueError, match="CONV2D"):
        KC.single_pixel_sweeps(spec, params, np.ones(1), *EMPTY, np.zeros((1, 2)), np.zeros(1),
                               -1.0, 1.0, 0.5, 1, 0, K.seed_states(0, 1),
                               np.zeros(1, np.int64))


def test_sweep_argument_checks_and_no_ops():
    spec, params = build(2, [("dense", 1, True)])
    lam = np.ones(1)
    x = np.zeros((2, 2))
    e = K.energy_batch(spec, params, lam, x, *EMPTY)
    s, a = K.seed_states(0, 2), np.zeros(2, np.int64)
    args = lambda **kw: dict(dict(x=x, energy=e, lo=-1.0, hi=1.0, step=0.5, n_sweeps=1,  # noqa
                                  move=0, boundary=0, rng_state=s, accepted=a), **kw)
    for bad, match in [(dict(x=x.astype(np.float16)), "x must be"),
                       (dict(x=x.astype(np.float32)), "energy must be .* float32"),
                       (dict(rng_state=s.astype(np.int64)), "rng_state must be"),
                       (dict(lo=1.0), "lo < hi"), (dict(move=2), "move"),
                       (dict(move=7), "MOVE_SCAN"),
                       (dict(boundary=5), "boundary"), (dict(n_sweeps=-1), "non-negative")]:
        with pytest.raises(ValueError, match=match):
            KC.metropolis_sweeps(spec, params, lam, *EMPTY, **args(**bad))
    s0 = s.copy()
    KC.metropolis_sweeps(spec, params, lam, *EMPTY, **args(n_sweeps=0))
    np.testing.assert_array_equal(s, s0)
    np.testing.assert_array_equal(a, 0)


# --------------------------------------------------------------------------- float32
# float32 chains: the CPU's float32 kernels are the reference. The draws and the accept
# decisions are the same; the energies differ by float32 rounding (the simulator rounds
# numpy float32 scalars operation by operation, the CPU contracts multiply-adds and computes
# softplus and sigmoid in float64), so floats are compared to F32_TOL, and the float32 chains
# are also compared with the float64 chains of the same seed.
F32_TOL = 2e-5


def assert_f32_chains_close(cpu, gpu, tol=F32_TOL):
    np.testing.assert_array_equal(gpu[2], cpu[2])  # rng states
    np.testing.assert_array_equal(gpu[3], cpu[3])  # accept counts
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["dense-%d-biasTrue" % K.TANH, "dense-%d-biasFalse" % K.RELU,
                                  "dense-%d-biasTrue" % K.SOFTPLUS, "powers", "conv"])
def test_float32_batches_match_the_cpu_float32_kernels(name):
    d, layers = NETS[name]
    spec, params = build(d, layers, seed=len(name))
    X = 2.0 * np.random.default_rng(1).standard_normal((5, d))
    O = KC.observables_batch(spec, params, X, np.float32)
    assert O.dtype == np.float32
    np.testing.assert_allclose(O, K.observables_batch(spec, params, X, np.float32),
                               rtol=F32_TOL, atol=F32_TOL)
    np.testing.assert_allclose(O, K.observables_batch(spec, params, X), rtol=1e-4, atol=1e-4)
    lam = np.linspace(-1.0, 1.5, O.shape[1])
    H = KC.energy_batch(spec, params, lam, X, *EMPTY, np.float32)
    assert H.dtype == np.float32
    np.testing.assert_allclose(H, K.energy_batch(spec, params, lam, X, *EMPTY, np.float32),
                               rtol=F32_TOL, atol=F32_TOL)
    np.testing.assert_allclose(H, K.energy_batch(spec, params, lam, X, *EMPTY), rtol=1e-4,
                               atol=1e-4)


def _f32_runs(spec, params, lam, term, x0, lo, hi, step, n_sweeps, move, boundary, seed,
              incremental=True):
    """The same sweeps from the same start: CPU float32, CUDA float32, CPU float64."""
    runs = []
    for mod, dtype in ((K, np.float32), (KC, np.float32), (K, np.float64)):
        x = x0.astype(dtype)  # starts inside the box in either type
        e = K.energy_batch(spec, params, lam, x, *term, dtype)
        s, a = K.seed_states(seed, len(x0)), np.zeros(len(x0), np.int64)
        mod.sweep(spec, params, lam, *term, x, e, lo, hi, step, n_sweeps, move, boundary, s, a,
                  incremental=incremental)
        runs.append((x, e, s, a))
    return runs


@pytest.mark.parametrize("move", [K.MOVE_ALL, K.MOVE_SINGLE, K.MOVE_SCAN])
@pytest.mark.parametrize("boundary", [K.BOUNDARY_REJECT, K.BOUNDARY_REFLECT])
@pytest.mark.parametrize("incremental", [True, False])
def test_float32_sweeps_match_the_cpu_float32_kernels_and_float64(move, boundary, incremental):
    spec, params = build(3, [("dense", 5, True), ("act", K.TANH), ("dense", 2, True)], seed=4)
    lam = np.array([0.7, -1.2])
    term = (*SECOND, np.array([0.3, -1.0, 2.0, 0.5]))
    x0 = np.random.default_rng(2).uniform(-1.0, 1.0, (4, 3))
    step = np.array([0.3, 0.8, 1.5, 3.0])  # large steps exercise the walls
    cpu, gpu, f64 = _f32_runs(spec, params, lam, term, x0, -1.5, 1.5, step, 4, move, boundary,
                              seed=7, incremental=incremental)
    assert gpu[0].dtype == gpu[1].dtype == np.float32
    assert_f32_chains_close(cpu, gpu)
    assert 0 < gpu[3].sum() < 4 * 4 * (1 if move == K.MOVE_ALL else 3)  # some of each
    assert_f32_chains_close(f64, gpu, tol=1e-4)  # the float64 chain, to float32 rounding
    # the energies carried through the sweeps are those of the final states
    np.testing.assert_allclose(gpu[1], K.energy_batch(spec, params, lam, gpu[0], *term,
                                                      np.float32), rtol=F32_TOL, atol=F32_TOL)


@pytest.mark.parametrize("move", [K.MOVE_SINGLE, K.MOVE_SCAN])
@pytest.mark.parametrize("second", ["none", "conv"])
def test_float32_single_pixel_moves_match_the_cpu_float32_kernels(move, second):
    spec, params, lam, term, x0 = _image_case("conv-tanh-conv-relu-dense", second)
    cpu, gpu, f64 = _f32_runs(spec, params, lam, term, x0, 0.0, 1.0,
                              np.array([0.2, 0.5, 1.5]), 2, move, K.BOUNDARY_REFLECT, seed=5)
    assert_f32_chains_close(cpu, gpu)
    assert gpu[3].sum() > 0
    assert_f32_chains_close(f64, gpu, tol=1e-4)
    np.testing.assert_allclose(gpu[1], K.energy_batch(spec, params, lam, gpu[0], *term,
                                                      np.float32), rtol=F32_TOL, atol=F32_TOL)


def test_float32_backend_and_training_match_the_cpu_in_float32():
    """``CUDABackend("float32")`` against ``CPUBackend("float32")``, then three MinMaxEnt
    epochs with ``dtype="float32"`` on each: the same streams and acceptances, float32
    chains, λ and θ equal to float32 rounding carried through the λ solves and θ steps."""
    import mme_numba as mme

    cpu, gpu = CPUBackend("float32"), CUDABackend("float32")
    spec, params = build(3, [("dense", 4, True), ("act", K.TANH), ("dense", 2, True)])
    lam = np.array([1.0, -0.5])
    field = (*SECOND, np.array([0.3, -1.0, 2.0, 0.5]))
    X = np.random.default_rng(3).uniform(-1.0, 1.0, (4, 3))
    O = gpu.observe(spec, params, X)
    assert O.dtype == np.float64  # computed in float32, handed on as float64, as on the CPU
    np.testing.assert_allclose(O, cpu.observe(spec, params, X), rtol=F32_TOL, atol=F32_TOL)
    np.testing.assert_allclose(gpu.energy(spec, params, lam, X, field),
                               cpu.energy(spec, params, lam, X, field), rtol=F32_TOL,
                               atol=F32_TOL)
    for move in ("all", "single", "scan"):
        runs = []
        for be in (cpu, gpu):
            x, s, a = X.astype(np.float32), K.seed_states(2, 4), np.zeros(4, np.int64)
            e = be.energy(spec, params, lam, x, field).astype(np.float32)
            be.sweep(spec, params, lam, field, x, e, -1.0, 1.0, np.full(4, 0.5), 3, move,
                     "reflect", s, a)
            runs.append((x, e, s, a))
        assert_f32_chains_close(*runs)
    Xt = np.random.default_rng(0).normal(size=(40, 2))
    models = []
    for backend in ("cpu", "cuda"):
        m = mme.MinMaxEnt(mme.nn.mlp([2, 5, 2], random_state=0), support=(-4.0, 4.0),
                          n_chains=5, sweeps=3, burn_in=10, step_size=0.8, dtype="float32",
                          random_state=0)
        if backend == "cuda":
            m.backend, m._backend_obj = "cuda", CUDABackend("float32")
        models.append(m.fit(Xt, epochs=3))
    mc, mg = models
    assert mg.chains_.dtype == np.float32
    np.testing.assert_array_equal(mg.rng_state_, mc.rng_state_)
    assert [h["acceptance"] for h in mg.history_] == [h["acceptance"] for h in mc.history_]
    np.testing.assert_allclose(mg.chains_, mc.chains_, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mg.lambda_, mc.lambda_, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mg.observables_.theta, mc.observables_.theta, rtol=1e-4,
                               atol=1e-4)


def test_float32_refuses_mala_on_the_gpu_as_on_the_cpu():
    spec, params = build(2, [("dense", 1, True)])
    x, e = np.zeros((2, 2), np.float32), np.zeros(2, np.float32)
    for mod in (K, KC):
        with pytest.raises(ValueError, match="MOVE_MALA runs in float64 only"):
            mod.sweep(spec, params, np.ones(1), *EMPTY, x, e, -1.0, 1.0, 0.5, 1, K.MOVE_MALA,
                      K.BOUNDARY_REJECT, K.seed_states(0, 2), np.zeros(2, np.int64))


# --------------------------------------------------------------------------- backend
def test_backend_matches_cpu_backend():
    cpu, gpu = CPUBackend(), CUDABackend()
    assert gpu.name == "cuda"
    spec, params = build(3, [("dense", 4, True), ("act", K.TANH), ("dense", 2, True)])
    lam = np.array([1.0, -0.5])
    field = (*SECOND, np.array([0.3, -1.0, 2.0, 0.5]))
    X = np.random.default_rng(3).uniform(-1.0, 1.0, (4, 3))
    assert_same(gpu.observe(spec, params, X), cpu.observe(spec, params, X))
    assert_same(gpu.energy(spec, params, lam, X), cpu.energy(spec, params, lam, X))
    assert_same(gpu.energy(spec, params, lam, X, field), cpu.energy(spec, params, lam, X, field))
    for move in ("all", "single", "scan", "mala"):
        runs = []
        for be in (cpu, gpu):
            x, s, a = X.copy(), K.seed_states(2, 4), np.zeros(4, np.int64)
            e = be.energy(spec, params, lam, x, field)
            be.sweep(spec, params, lam, field, x, e, -1.0, 1.0, np.full(4, 0.5), 3, move,
                     "reflect", s, a)
            runs.append((x, e, s, a))
        assert_chains_equal(*runs)
    with pytest.raises(ValueError, match="move"):
        gpu.sweep(spec, params, lam, field, x, e, -1.0, 1.0, 0.5, 1, "gibbs", "reject", s, a)
    with pytest.raises(ValueError, match="boundary"):
        gpu.sweep(spec, params, lam, field, x, e, -1.0, 1.0, 0.5, 1, "all", "wrap", s, a)


def test_backend_single_moves_on_a_conv_net_use_the_incremental_image_kernels():
    """Both backends route single moves on a conv net to their incremental kernels: same
    draws and accept decisions, energies equal up to rounding (TOL)."""
    spec, params = build(9, NETS["conv"][1], seed=3)
    lam = np.array([1.0, -0.5, 0.25])
    X = np.random.default_rng(5).uniform(0.0, 1.0, (3, 9))
    runs = []
    for be in (CPUBackend(), CUDABackend()):
        x, s, a = X.copy(), K.seed_states(4, 3), np.zeros(3, np.int64)
        e = be.energy(spec, params, lam, x)
        be.sweep(spec, params, lam, EMPTY, x, e, 0.0, 1.0, np.full(3, 0.4), 2, "single",
                 "reflect", s, a)
        runs.append((x, e, s, a))
    (xc, ec, sc, ac), (xg, eg, sg, ag) = runs
    np.testing.assert_array_equal(sg, sc)
    np.testing.assert_array_equal(ag, ac)
    np.testing.assert_allclose(xg, xc, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(eg, ec, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("boundary", ["reject", "reflect"])
def test_backend_scan_on_a_conv_net_with_a_field_matches_cpu_backend(boundary):
    """A 3x3 image through mme_numba.nn (Conv2D, tanh, Dense) with a classifier field:
    both backends route "scan" to their incremental conv kernels; same draws and accept
    decisions, positions and energies equal up to rounding (each backend carries its own
    incremental energies, summed in a different order)."""
    from mme_numba.nn import Conv2D, Dense, Sequential, activation

    net = Sequential([Conv2D(1, 2, 3, (3, 3)), activation("tanh"), Dense(18, 3)],
                     random_state=0)
    net.set_theta(net.theta + 0.1 * np.random.default_rng(0).standard_normal(net.n_params))
    spec, params = net.describe(), net.kernel_params()
    lam = np.array([1.0, -0.5, 0.25])
    clf = Sequential([Dense(9, 2), activation("logsoftmax")], random_state=1)
    field = (clf.describe(), clf.kernel_params(), np.array([0.0, -1.5]))
    X = np.random.default_rng(5).uniform(0.0, 1.0, (3, 9))
    runs = []
    for be in (CPUBackend(), CUDABackend()):
        x, s, a = X.copy(), K.seed_states(4, 3), np.zeros(3, np.int64)
        e = be.energy(spec, params, lam, x, field)
        be.sweep(spec, params, lam, field, x, e, 0.0, 1.0, np.array([0.2, 0.6, 1.5]), 2,
                 "scan", boundary, s, a)
        runs.append((x, e, s, a))
    assert_chains_equal(*runs)
    assert runs[1][3].sum() > 0
    assert_energies_fresh(spec, params, lam, field, runs[1])


@pytest.mark.parametrize("move", ["all", "single", "scan", "mala"])
def test_model_trained_on_cuda_equals_model_trained_on_cpu(move):
    """Three MinMaxEnt epochs (burn-in, λ and θ steps) give identical chains, λ, θ, streams."""
    import mme_numba as mme

    X = np.random.default_rng(0).normal(size=(40, 2))
    models = []
    for backend in ("cpu", "cuda"):
        m = mme.MinMaxEnt(mme.nn.mlp([2, 5, 2], random_state=0), support=(-4.0, 4.0),
                          n_chains=5, sweeps=3, burn_in=10, step_size=0.8, move=move,
                          random_state=0)
        if backend == "cuda":  # inject the backend: independent of get_backend's wiring
            m.backend, m._backend_obj = "cuda", CUDABackend()
        models.append(m.fit(X, epochs=3))
    cpu, gpu = models
    assert gpu._backend_obj.name == "cuda"
    np.testing.assert_array_equal(gpu.rng_state_, cpu.rng_state_)
    assert_same(gpu.chains_, cpu.chains_, tol=TRAIN_TOL)
    assert_same(gpu.lambda_, cpu.lambda_, tol=TRAIN_TOL)
    # Chains differ in the last bits (the CPU contracts fastmath's tanh into fused
    # multiply-adds, the simulator cannot), and θ's ADAM (eps 1e-8) turns a gradient that is
    # zero up to rounding, as the output biases' is, into steps of ~1e-9: those two entries
    # get an absolute tolerance, every other entry of θ must agree to TRAIN_TOL.
    theta_gpu, theta_cpu = gpu.observables_.theta, cpu.observables_.theta
    np.testing.assert_allclose(theta_gpu[:-2], theta_cpu[:-2], rtol=TRAIN_TOL, atol=TRAIN_TOL)
    np.testing.assert_allclose(theta_gpu[-2:], theta_cpu[-2:], rtol=0, atol=100 * TRAIN_TOL)
    assert [h["acceptance"] for h in gpu.history_] == [h["acceptance"] for h in cpu.history_]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_training_epoch_keeps_the_chains_on_the_device(dtype):
    """Transfers per epoch once the chains live on the device: counted by wrapping the CUDA
    API (every upload, allocation and download), not by the backend's own counters. After
    the first epoch no chain-sized array (chains, random states, energies) is uploaded; an
    epoch uploads only what the host changed (θ, λ, the previous θ and λ of the entropy
    tracker, its monitor rows, adapted steps) and downloads what the trainer reads."""
    import mme_numba as mme
    from numba import cuda

    n, d = 16, 2
    log = []
    to_device, device_array = cuda.to_device, cuda.device_array
    array_type = type(to_device(np.zeros(1)))
    copy_to_host = array_type.copy_to_host

    def up(a, *args, **kw):
        log.append(("h2d", np.shape(a)))
        return to_device(a, *args, **kw)

    def alloc(shape, *args, **kw):
        log.append(("alloc", shape))
        return device_array(shape, *args, **kw)

    def down(self, *args, **kw):
        log.append(("d2h", self.shape))
        return copy_to_host(self, *args, **kw)

    X = np.random.default_rng(0).normal(size=(40, d))
    m = mme.MinMaxEnt(mme.nn.mlp([d, 5, 2], random_state=0), support=(-4.0, 4.0), n_chains=n,
                      sweeps=2, burn_in=4, step_size=0.8, dtype=dtype, random_state=0)
    m.backend, m._backend_obj = "cuda", CUDABackend(dtype)
    marks = []
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(cuda, "to_device", up)
        mp.setattr(cuda, "device_array", alloc)
        mp.setattr(array_type, "copy_to_host", down)
        m.fit(X, epochs=4, callback=lambda model, rec: marks.append(len(log)))
    finally:
        mp.undo()
    counters = m._backend_obj.transfers
    assert counters["h2d"] == sum(k == "h2d" for k, _ in log)
    assert counters["d2h"] == sum(k == "d2h" for k, _ in log)
    for a, b in zip(marks[1:-1], marks[2:]):  # epochs 3 and 4
        epoch = log[a:b]
        uploads = [shape for kind, shape in epoch if kind == "h2d"]
        assert (n, d) not in uploads and (n, 4) not in uploads, uploads
        assert (n,) not in uploads, uploads  # energies stay; steps are fixed here
        assert len(uploads) <= 6, uploads
        downloads = [shape for kind, shape in epoch if kind == "d2h"]
        assert len(downloads) <= 8, downloads  # chains' energies, the sweep's x, energy,
        # states and accept counts, observables, two energies of the monitor rows
        allocs = [shape for kind, shape in epoch if kind == "alloc"]
        print("epoch uploads", uploads, "downloads", downloads, "allocations", allocs)
        assert len(allocs) <= 1, allocs  # the chains' new energies
    assert m.epoch_ == 4


@pytest.mark.parametrize("parity", [0, 1])
def test_replica_swaps_match_the_cpu_kernel(parity):
    """Same swap decisions, states, energies, streams and counts as the CPU kernel, on a
    ladder where about half the swaps are accepted (and every pair of levels is exercised)."""
    from mme_numba.kernels.moves.swap import replica_swaps

    rng = np.random.default_rng(parity)
    L, n, d = 5, 37, 3
    x0 = rng.normal(size=(L, n, d))
    e0 = rng.normal(scale=3.0, size=(L, n))
    betas = np.array([1.0, 0.7, 0.45, 0.25, 0.1])
    runs = []
    for kernel in (replica_swaps, KC.replica_swaps):
        x, e = x0.copy(), e0.copy()
        state = K.seed_states(11, n)
        acc = np.zeros((n, L - 1), np.int64)
        for turn in range(3):
            kernel(x, e, betas, state, (parity + turn) % 2, acc)
        runs.append((x, e, state, acc))
    (xc, ec, sc, ac), (xg, eg, sg, ag) = runs
    np.testing.assert_array_equal(sg, sc)
    np.testing.assert_array_equal(ag, ac)
    np.testing.assert_array_equal(xg, xc)     # swaps move values: no arithmetic, exact
    np.testing.assert_array_equal(eg, ec)
    assert 0 < ac.sum() < 3 * n * (L - 1) // 2


def test_replica_swaps_argument_checks_are_the_cpu_ones():
    x, e = np.zeros((3, 4, 2)), np.zeros((3, 4))
    state, acc = K.seed_states(0, 4), np.zeros((4, 2), np.int64)
    with pytest.raises(ValueError, match="betas must have shape"):
        KC.replica_swaps(x, e, np.ones(2), state, 0, acc)
    with pytest.raises(ValueError, match="accepted must be"):
        KC.replica_swaps(x, e, np.ones(3), state, 0, np.zeros((4, 3), np.int64))
    with pytest.raises(ValueError, match="parity must be 0 or 1"):
        KC.replica_swaps(x, e, np.ones(3), state, 2, acc)


def test_tempered_training_on_cuda_equals_tempered_training_on_cpu():
    """``betas=`` on the CUDA backend: sweeps of every level and the swaps run on the device,
    and two epochs give the CPU's chains, replicas, ladder and streams."""
    import mme_numba as mme

    X = np.random.default_rng(1).normal(size=(30, 1))
    models = []
    for backend in ("cpu", "cuda"):
        m = mme.MaxEnt(mme.observables.polynomial(2), support=(-4.0, 4.0), n_chains=6,
                       sweeps=2, burn_in=4, step_size=0.5, betas=[1.0, 0.5, 0.2],
                       random_state=3)
        if backend == "cuda":
            m.backend, m._backend_obj = "cuda", CUDABackend()
        models.append(m.fit(X, epochs=2))
    cpu, gpu = models
    assert gpu._backend_obj.name == "cuda"
    np.testing.assert_array_equal(gpu.rng_state_, cpu.rng_state_)
    assert_same(gpu.chains_, cpu.chains_, tol=TRAIN_TOL)
    assert_same(gpu.lambda_, cpu.lambda_, tol=TRAIN_TOL)
    rc, rg = cpu.replicas_, gpu.replicas_
    np.testing.assert_array_equal(rg.swap_rng, rc.swap_rng)
    assert_same(rg.x, rc.x, tol=TRAIN_TOL)
    np.testing.assert_array_equal(rg.swap_acceptance, rc.swap_acceptance)
