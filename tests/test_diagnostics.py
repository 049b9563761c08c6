"""Diagnostics against processes with known answers (AR(1), iid, unmixed chains)."""

import logging

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mme_numba import diagnostics as dg


def ar1(rho, n_steps, n_chains, seed):
    """Stationary AR(1) chains x_t = rho x_{t-1} + sqrt(1 - rho²) ξ_t, unit variance."""
    rng = np.random.default_rng(seed)
    xi = rng.standard_normal((n_steps, n_chains))
    x = np.empty_like(xi)
    x[0] = xi[0]
    s = np.sqrt(1.0 - rho * rho)
    for t in range(1, n_steps):
        x[t] = rho * x[t - 1] + s * xi[t]
    return x


def naive_acf(x):
    """Direct O(n²) autocorrelation of one chain: the oracle for the FFT version."""
    n = len(x)
    xc = x - x.mean()
    c = np.array([np.dot(xc[: n - t], xc[t:]) / n for t in range(n)])
    return c / c[0]


@settings(deadline=None, max_examples=20)
@given(n=st.integers(2, 70), seed=st.integers(0, 2**16))
def test_fft_acf_matches_direct_sum(n, seed):
    x = np.random.default_rng(seed).standard_normal((n, 3))
    rho = dg.autocorr_function(x)
    for k in range(3):
        np.testing.assert_allclose(rho[:, k], naive_acf(x[:, k]), atol=1e-12)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_integrated_time_of_ar1(rho):
    tau_true = (1 + rho) / (1 - rho)
    x = ar1(rho, 20000, 16, seed=1)
    tau = dg.integrated_time(x)
    assert tau.shape == (16,)
    # Sokal's estimator: relative sd about sqrt(2 (2M+1) / n) per chain, M ≈ 5τ
    # (0.14 at rho = 0.9); the mean over 16 chains is within 6%, each chain within 40%.
    assert abs(tau.mean() / tau_true - 1) < 0.06
    assert np.all(np.abs(tau / tau_true - 1) < 0.4)
    assert abs(dg.integrated_time(x, pooled=True) / tau_true - 1) < 0.06
    ess = dg.effective_sample_size(x)
    np.testing.assert_allclose(ess, 20000 / tau)


def test_integrated_time_1d_and_constant_chain():
    x = ar1(0.5, 5000, 1, seed=2)[:, 0]
    assert isinstance(dg.integrated_time(x), float)
    assert abs(dg.integrated_time(x) / 3.0 - 1) < 0.2
    const = np.ones((100, 2))
    np.testing.assert_allclose(dg.integrated_time(const), 1.0)


def test_split_rhat_iid_near_one():
    x = np.random.default_rng(3).standard_normal((1000, 8))
    assert abs(dg.split_rhat(x) - 1) < 0.01
    assert abs(dg.split_rhat(x, rank_normalize=False) - 1) < 0.01


def test_split_rhat_detects_shifted_chains():
    x = np.random.default_rng(4).standard_normal((1000, 4))
    x[:, 0] += 1.0  # one chain stuck in another mode
    assert dg.split_rhat(x) > 1.1
    assert dg.split_rhat(x, rank_normalize=False) > 1.1


def test_split_rhat_detects_drift_within_one_chain():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1000, 1)) + np.linspace(0, 3, 1000)[:, None]
    assert dg.split_rhat(x) > 1.2


def test_rank_normalised_rhat_detects_scale_difference():
    # Same mean, different spread: invisible to the classic R-hat, caught by the folded one.
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2000, 4))
    x[:, :2] *= 3.0
    assert abs(dg.split_rhat(x, rank_normalize=False) - 1) < 0.01
    assert dg.split_rhat(x) > 1.05


def test_mixing_report_quiet_for_mixed_chains(caplog):
    x = ar1(0.5, 4000, 8, seed=7)
    with caplog.at_level(logging.WARNING, logger="mme_numba.diagnostics"):
        rep = dg.mixing_report(x, acceptance=0.4)
    assert rep["mixed"] and rep["warnings"] == []
    assert rep["rhat"] < 1.01
    assert not caplog.records
    assert rep["n_steps"] == 4000 and rep["n_chains"] == 8 and rep["acceptance"] == 0.4
    assert abs(rep["tau_mean"] / 3.0 - 1) < 0.1
    assert rep["ess_total"] == pytest.approx(sum(rep["ess"]))


def test_mixing_report_warns_for_unmixed_chains(caplog):
    x = ar1(0.99, 300, 4, seed=8)
    x[:, :2] += 3.0
    with caplog.at_level(logging.WARNING, logger="mme_numba.diagnostics"):
        rep = dg.mixing_report(x)
    assert not rep["mixed"]
    joined = " ".join(rep["warnings"])
    assert "R-hat" in joined and "effective sample size" in joined and "shorter" in joined
    assert len(caplog.records) == len(rep["warnings"])


def test_chi2_eq5():
    r = np.array([0.1, -0.2])
    v = np.array([0.01, 0.04])
    assert dg.chi2(r, v) == pytest.approx(1.0 + 1.0)
    batch = dg.chi2(np.stack([r, 2 * r]), v)
    np.testing.assert_allclose(batch, [2.0, 8.0])
    # A constant observable (zero variance) with a mismatch dominates rather than dividing by 0.
    assert np.isfinite(dg.chi2([1e-3], [0.0])) and dg.chi2([1e-3], [0.0]) > 1e5
    assert dg.chi2([0.0], [0.0]) == 0.0


def test_mode_crossing_fraction():
    x = np.full((10, 4), -1.0)
    x[5, 1] = 2.0           # chain 1 crossed once
    x[:, 3] = 1.0           # chain 3 never left the right mode
    assert dg.mode_crossing_fraction(x) == pytest.approx(0.25)
    assert dg.mode_crossing_fraction(x[:, :, None]) == pytest.approx(0.25)
    assert dg.mode_crossing_fraction(x, threshold=5.0) == 0.0
    with pytest.raises(ValueError):
        dg.mode_crossing_fraction(np.zeros((3, 2, 2)))


def test_short_trace_warns_but_does_not_flag_mixing(caplog):
    # tau = 19: R-hat ≈ sqrt(1 + (tau - 1) / 300) ≈ 1.03 and ESS fine, but 600 < 50 tau
    x = ar1(0.9, 600, 64, seed=9)
    with caplog.at_level(logging.WARNING, logger="mme_numba.diagnostics"):
        rep = dg.mixing_report(x)
    assert rep["mixed"] and rep["rhat"] < 1.05 and rep["ess_total"] > 400
    assert len(rep["warnings"]) == 1 and "shorter" in rep["warnings"][0]
