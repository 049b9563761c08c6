"""``dtype="float32"``: float32 kernels agree with float64 within float32 rounding, sample the
right density, and the estimators carry the dtype through fit, sample, save and load.

Bounds used below (float32 has a unit roundoff of 2**-24 ≈ 6e-8):

* ``fastmath.tanh32``: 3e-7 relative to ``tanh`` (measured 1.8e-7, about 3 ulp).
* energies of the same inputs: ``|H32 - H64| <= 1e-5 · Σ_i |λ_i| |O_i(x)|``, the scale of the
  sum before cancellation (measured 4.6e-7 for the MLP, 6.8e-7 for the paper CNN); the same
  bound for the energies a float32 sweep carries against a fresh float32 evaluation
  (measured up to 3.3e-6, the CNN's incremental random-scan kernel after 2 sweeps).
* statistics: sample mean and second moment of 4096 independent chains against quadrature,
  within 5 standard errors (seed 3; the error from the spread of the chains).
"""

import numpy as np
import pytest

import mme_numba as mme
from mme_numba import kernels as K
from mme_numba.kernels.fastmath import tanh_any
from mme_numba.spec import (BOUNDARY_REFLECT, BOUNDARY_REJECT, MOVE_ALL, MOVE_MALA, MOVE_SCAN,
                            MOVE_SINGLE, empty_term)

NONE = empty_term()
MOVES = (MOVE_ALL, MOVE_SINGLE, MOVE_SCAN)
BOUNDARIES = (BOUNDARY_REJECT, BOUNDARY_REFLECT)


def _net(kind):
    if kind == "mlp":
        net, box = mme.nn.mlp([1, 32, 32, 2], activation="tanh", random_state=0), (-6.0, 6.0)
    else:
        net, box = mme.nn.paper_cnn(16, random_state=0), (0.0, 1.0)
    spec = np.ascontiguousarray(net.describe(), np.int64)
    params = np.ascontiguousarray(net.kernel_params(), np.float64)
    lam = np.random.default_rng(1).normal(size=int(spec[-1, 2]))
    return spec, params, lam, box


def _inside(n, d, box, seed):
    return box[0] + (box[1] - box[0]) * np.random.default_rng(seed).random((n, d))


def test_tanh32_is_float32_and_within_3e_7():
    from numba import njit

    @njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = tanh_any(x[i])

    x = np.concatenate([np.linspace(-12, 12, 100001), np.logspace(-30, 1.2, 5001),
                        -np.logspace(-30, 1.2, 501)]).astype(np.float32)
    out = np.empty_like(x)
    apply(x, out)
    ref = np.tanh(x.astype(np.float64))
    assert out.dtype == np.float32
    nonzero = x != 0
    assert np.max(np.abs(out - ref)[nonzero] / np.abs(ref[nonzero])) < 3e-7
    assert np.all(out[~nonzero] == 0)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], np.float32)
    got = np.empty_like(special)
    apply(special, got)
    assert list(got[:4]) == [0.0, 0.0, 1.0, -1.0] and np.signbit(got[1]) and np.isnan(got[4])


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_float32_energies_and_observables_agree_with_float64(kind):
    spec, params, lam, box = _net(kind)
    X = _inside(300, int(spec[0, 1]), box, 2)
    O64 = K.observables_batch(spec, params, X)
    O32 = K.observables_batch(spec, params, X, dtype=np.float32)
    assert O32.dtype == np.float32
    assert np.max(np.abs(O32 - O64)) <= 1e-5 * np.max(np.abs(O64))
    e64 = K.energy_batch(spec, params, lam, X, *NONE)
    e32 = K.energy_batch(spec, params, lam, X, *NONE, dtype="float32")
    assert e32.dtype == np.float32
    scale = np.abs(O64) @ np.abs(lam)
    assert np.all(np.abs(e32 - e64) <= 1e-5 * scale)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("move", MOVES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_every_move_runs_in_float32(kind, move, boundary):
    """float32 sweeps keep float32 chains inside the box, carry energies equal to fresh
    float32 energies up to float32 rounding, and accept about as often as float64."""
    spec, params, lam, box = _net(kind)
    n, d = 64, int(spec[0, 1])
    sweeps = 2 if kind == "cnn" else 20
    acc = {}
    for dtype in (np.float64, np.float32):
        x = _inside(n, d, box, 4).astype(dtype)
        e = K.energy_batch(spec, params, lam, x, *NONE, dtype=dtype)
        accepted = np.zeros(n, np.int64)
        K.sweep(spec, params, lam, *NONE, x, e, box[0], box[1], 0.1 * (box[1] - box[0]),
                sweeps, move, boundary, K.seed_states(5, n), accepted)
        assert x.dtype == dtype and e.dtype == dtype
        assert np.all((x >= box[0]) & (x <= box[1]))
        fresh = K.energy_batch(spec, params, lam, x, *NONE, dtype=dtype)
        scale = np.abs(K.observables_batch(spec, params, x)) @ np.abs(lam)
        assert np.all(np.abs(e - fresh) <= 1e-5 * scale)
        acc[dtype] = accepted.sum()
    # the same streams: decisions differ only where float32 rounding tips a comparison
    assert abs(int(acc[np.float32]) - int(acc[np.float64])) <= 0.05 * acc[np.float64] + 5


def test_float32_lockstep_is_bit_identical_for_any_lanes():
    spec, params, lam, box = _net("mlp")
    out = []
    for lanes in (8, 64):
        x = _inside(100, 1, box, 6).astype(np.float32)
        e = K.energy_batch(spec, params, lam, x, *NONE, dtype=np.float32)
        K.sweep(spec, params, lam, *NONE, x, e, -6.0, 6.0, 1.0, 10, MOVE_ALL, BOUNDARY_REFLECT,
                K.seed_states(7, 100), np.zeros(100, np.int64), lanes=lanes)
        out.append((x, e))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])


def _moments_by_quadrature(energy, lo, hi, n=20001):
    x = np.linspace(lo, hi, n)
    w = np.exp(-(energy(x) - energy(x).min()))
    w /= np.trapezoid(w, x)
    return np.trapezoid(x * w, x), np.trapezoid(x * x * w, x)


@pytest.mark.parametrize("move", MOVES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_float32_and_float64_sample_a_known_density(move, boundary):
    """A double well ``H = -1.5 x² + 0.3 x⁴ + 0.4 x`` on [-3, 2.5] (mass at the wall):
    first and second moments of 4096 chains match quadrature within 5 standard errors, in
    float32 and in float64 (seed 3; 300 burn-in sweeps, then 8 states per chain 25 sweeps
    apart, averaged per chain so that the chains are the independent units)."""
    obs = mme.observables.polynomial(4, n_features=1)
    spec = np.ascontiguousarray(obs.describe(), np.int64)
    params = np.ascontiguousarray(obs.kernel_params(), np.float64)
    lam = np.array([0.4, -1.5, 0.0, 0.3])
    lo, hi = -3.0, 2.5
    mean, second = _moments_by_quadrature(lambda x: lam @ np.stack([x, x**2, x**3, x**4]),
                                          lo, hi)
    n = 4096
    for dtype in (np.float64, np.float32):
        x = _inside(n, 1, (lo, hi), 3).astype(dtype)
        e = K.energy_batch(spec, params, lam, x, *NONE, dtype=dtype)
        rng_state = K.seed_states(3, n)
        acc = np.zeros(n, np.int64)
        K.sweep(spec, params, lam, *NONE, x, e, lo, hi, 1.2, 300, move, boundary, rng_state,
                acc)
        m1, m2 = np.zeros(n), np.zeros(n)
        for _ in range(8):
            K.sweep(spec, params, lam, *NONE, x, e, lo, hi, 1.2, 25, move, boundary,
                    rng_state, acc)
            m1 += x[:, 0] / 8
            m2 += x[:, 0].astype(np.float64) ** 2 / 8
        for got, want in ((m1, mean), (m2, second)):
            se = got.std() / np.sqrt(n)
            assert abs(got.mean() - want) < 5 * se, (dtype, got.mean(), want, se)


def test_kernel_arguments_refuse_mixed_or_unsupported_dtypes():
    spec, params, lam, _ = _net("mlp")
    x = np.zeros((4, 1), np.float32)
    with pytest.raises(ValueError, match="energy must be a writeable C-contiguous float32"):
        K.sweep(spec, params, lam, *NONE, x, np.zeros(4), -6.0, 6.0, 1.0, 1, MOVE_ALL,
                BOUNDARY_REFLECT, K.seed_states(0, 4), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="MOVE_MALA runs in float64 only"):
        K.sweep(spec, params, lam, *NONE, x, np.zeros(4, np.float32), -6.0, 6.0, 1.0, 1,
                MOVE_MALA, BOUNDARY_REFLECT, K.seed_states(0, 4), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="dtype must be 'float64' or 'float32'"):
        K.energy_batch(spec, params, lam, x, *NONE, dtype=np.float16)


# --- the estimators ----------------------------------------------------------------------

X1 = mme.datasets.gaussian_mixture(n=400, means=(-2, 2), scales=(0.5, 0.5), seed=0)


@pytest.mark.parametrize("bad", ["float16", "double", np.float16, np.int32, 32, None, True])
def test_a_bad_dtype_is_refused_naming_the_parameter(bad):
    model = mme.MaxEnt(mme.observables.polynomial(2), support=(-6.0, 6.0), dtype=bad)
    with pytest.raises(ValueError, match=r"dtype must be 'float64' or 'float32'"):
        model.fit(X1, epochs=1)
    with pytest.raises(ValueError, match=r"dtype must be 'float64' or 'float32'"):
        mme.MaxEnt(mme.observables.polynomial(2), support=(-6.0, 6.0)).set_params(dtype=bad)


def test_float32_refuses_mala_clearly():
    obs = mme.observables.polynomial(2)
    with pytest.raises(ValueError, match="move='mala' runs in float64 only"):
        mme.MaxEnt(obs, support=(-6.0, 6.0), move="mala", dtype="float32").fit(X1, epochs=1)


def test_minmaxent_fits_in_float32_and_keeps_its_dtype_through_save_and_load(tmp_path):
    kw = dict(n_chains=128, burn_in=20, sweeps=5, random_state=0)
    model = mme.MinMaxEnt(mme.nn.mlp([1, 8, 8, 2], activation="tanh", random_state=0),
                          support=(-6.0, 6.0), dtype="float32", **kw).fit(X1, epochs=15)
    assert model.get_params()["dtype"] == "float32"
    assert model.chains_.dtype == np.float32
    assert model.lambda_.dtype == np.float64 and np.all(np.isfinite(model.lambda_))
    assert np.all(np.isfinite(model.observables_.theta))
    assert all(np.isfinite(h["chi2"]) for h in model.history_)
    xs = model.sample(256)
    assert xs.dtype == np.float32 and np.all((xs >= -6) & (xs <= 6))
    e = model.energy(xs)
    assert e.dtype == np.float64 and np.all(np.isfinite(e))
    model.save(tmp_path / "f32.npz")
    loaded = mme.load(tmp_path / "f32.npz")
    assert loaded.get_params()["dtype"] == "float32"
    assert loaded.chains_.dtype == np.float32
    assert np.array_equal(loaded.chains_, model.chains_)
    model.fit(X1, epochs=2)
    loaded.fit(X1, epochs=2)
    assert np.array_equal(loaded.lambda_, model.lambda_)
    assert np.array_equal(loaded.chains_, model.chains_)


def test_numpy_types_are_accepted_and_the_default_is_float64():
    model = mme.MaxEnt(mme.observables.polynomial(2), support=(-6.0, 6.0), n_chains=64,
                       burn_in=10, random_state=0, dtype=np.float32).fit(X1, epochs=3)
    assert model._backend.dtype == np.float32 and model.chains_.dtype == np.float32
    default = mme.MaxEnt(mme.observables.polynomial(2), support=(-6.0, 6.0), n_chains=64,
                         burn_in=10, random_state=0).fit(X1, epochs=3)
    assert default.get_params()["dtype"] == "float64" and default.chains_.dtype == np.float64
    # same streams: the float32 model's λ is the float64 one up to float32 rounding effects
    assert np.allclose(model.lambda_, default.lambda_, rtol=0.05, atol=0.05)


def test_replica_exchange_runs_in_float32():
    model = mme.MaxEnt(mme.observables.polynomial(4), support=(-6.0, 6.0), n_chains=64,
                       burn_in=10, betas=3, random_state=0, dtype="float32").fit(X1, epochs=3)
    assert model.chains_.dtype == np.float32 and model.replicas_.x.dtype == np.float32
    assert np.all(np.isfinite(model.lambda_)) and np.all(np.abs(model.chains_) <= 6.0)
