"""The zoo's exact densities and its quadrature KL, the instrument that grades the defaults
(``benchmarks/zoo.py``)."""

import numpy as np
import pytest

from mme_numba.datasets import zoo

DENSITIES = zoo.problem_names(kind="density")


@pytest.mark.parametrize("name", DENSITIES)
def test_density_is_normalised_and_kl_of_itself_is_zero(name):
    p = zoo.problem(name)
    points, log_w, lp = p._grid()
    assert np.exp(lp + log_w).sum() == pytest.approx(1.0, abs=1e-9)
    assert abs(p.kl_to(lambda x: -p.log_density(x))) < 1e-9


@pytest.mark.parametrize("name", ["bimodal", "checkerboard"])
def test_kl_is_shift_invariant_even_for_huge_energies(name):
    # A saturated network gave every point the energy 7.7e48; without the shift the
    # quadrature lost the weights to rounding and reported KL = -2.08 (checkerboard).
    p = zoo.problem(name)
    uniform = p.kl_to(lambda x: np.zeros(len(x)))
    assert uniform > 0.1
    for c in (-1e48, 7.7e48):
        assert p.kl_to(lambda x, c=c: np.full(len(x), c)) == pytest.approx(uniform, rel=1e-12)


@pytest.mark.parametrize("name", DENSITIES)
def test_samples_follow_the_density(name):
    # Mean of the draws against the quadrature mean, within 5 standard errors (seed 0).
    p = zoo.problem(name)
    x = p.sample(20000, seed=0)
    lo, hi = p.support
    assert np.all((x >= lo) & (x <= hi))
    points, log_w, lp = p._grid()
    mass = np.exp(lp + log_w)
    mean = mass @ points
    sd = np.sqrt(np.maximum(mass @ points ** 2 - mean ** 2, 0.0))
    assert np.all(np.abs(x.mean(axis=0) - mean) < 5 * sd / np.sqrt(len(x)) + 1e-3)
