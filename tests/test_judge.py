"""The independent digit judge (``mme_numba.judge``): it must tell digits from noise and real
from generated, or it grades nothing."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

import mme_numba as mme  # noqa: E402
from mme_numba.judge import change_rate, digit_judge, two_sample_accuracy  # noqa: E402


@pytest.fixture(scope="module")
def data():
    X, y = mme.datasets.digits()
    perm = np.random.default_rng(0).permutation(len(X))
    return X, y, perm[:200], perm[200:500], perm[500:900]


def test_real_digits_are_legible_covered_and_indistinguishable(data):
    X, y, tr, ho, other = data
    r = digit_judge().report(X[other], X[tr], X[ho], random_state=0)
    assert r["top_class_probability"] > 0.9
    assert r["classes_at_5pct"] == 10
    assert 0.85 < r["nn_ratio"] < 1.15
    # seed 0, 300 vs 300 real images: chance level within about 3 fold-SDs
    assert abs(r["two_sample_accuracy"] - 0.5) < 0.1, r


def test_noise_and_one_class_are_caught(data):
    X, y, tr, ho, other = data
    judge = digit_judge()
    noise = np.random.default_rng(1).random((300, 64))
    r = judge.report(noise, X[tr], X[ho])
    assert r["top_class_probability"] < 0.5 and r["nn_ratio"] > 2 and r["two_sample_accuracy"] > 0.95
    sevens = X[other][y[other] == 7]
    r7 = judge.report(sevens, X[tr], X[ho])
    assert r7["classes_at_5pct"] == 1 and r7["class_shares"][7] > 0.9
    # one class against all classes is told apart far above chance
    assert r7["two_sample_accuracy"] > 0.8


def test_copies_of_training_images_have_a_small_nn_ratio(data):
    X, y, tr, ho, other = data
    copies = X[tr] + np.random.default_rng(2).normal(0, 0.01, X[tr].shape)
    r = digit_judge().report(np.clip(copies, 0, 1), X[tr], X[ho])
    assert r["nn_ratio"] < 0.1 and r["copies"] > 0.9


def test_blurred_digits_are_distinguishable(data):
    X, y, tr, ho, other = data
    img = X[other].reshape(-1, 8, 8)
    blur = (img + np.roll(img, 1, 1) + np.roll(img, -1, 1) + np.roll(img, 1, 2) + np.roll(img, -1, 2)) / 5
    acc, sd = two_sample_accuracy(blur.reshape(-1, 64), X[ho], random_state=0)
    assert acc > 0.9, (acc, sd)


def test_change_rate_and_bad_input():
    assert change_rate([[0, 1], [0, 2], [1, 2]]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="labels"):
        change_rate([0, 1, 2])
    with pytest.raises(ValueError, match="generated"):
        digit_judge().report(np.zeros((5, 63)), np.zeros((5, 64)), np.zeros((5, 64)))
    with pytest.raises(ValueError, match="at least"):
        two_sample_accuracy(np.zeros((3, 64)), np.zeros((30, 64)))
