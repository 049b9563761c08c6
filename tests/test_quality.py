"""Sample-quality measures (mme_numba.quality): exact cases and a small real classifier."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from mme_numba import datasets, fields, nn, quality


def test_nn_distances_match_brute_force():
    rng = np.random.default_rng(0)
    A, B = rng.random((37, 5)), rng.random((23, 5))
    np.testing.assert_allclose(quality.nn_distances(A, B, chunk=8), cdist(A, B).min(axis=1),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(quality.nn_distances(B, B), 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="columns"):
        quality.nn_distances(A, B[:, :4])


def test_nn_ratio_separates_copies_real_and_noise():
    X, _ = datasets.digits()
    rng = np.random.default_rng(1)
    idx = rng.permutation(len(X))
    train, heldout, other = X[idx[:200]], X[idx[200:500]], X[idx[500:800]]
    assert quality.nn_distance_ratio(heldout, train, heldout)["ratio"] == pytest.approx(1.0)
    copies = quality.nn_distance_ratio(train[:50], train, heldout)
    assert copies["ratio"] == 0.0 and copies["copies"] == 1.0
    real = quality.nn_distance_ratio(other, train, heldout)
    assert 0.9 < real["ratio"] < 1.1  # fresh real digits look like held-out ones
    assert real["copies"] < 0.15
    noise = quality.nn_distance_ratio(rng.random((300, 64)), train, heldout)
    assert noise["ratio"] > 1.5 and noise["copies"] == 0.0


class _FixedClassifier:
    """A 'network' returning fixed log-probabilities, for exact checks of the scores."""

    def __init__(self, probs):
        self.logp = np.log(np.asarray(probs, dtype=np.float64))

    def forward(self, X):
        return self.logp[: len(X)]


def test_classifier_scores_exact():
    probs = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]
    s = quality.classifier_scores(_FixedClassifier(probs), np.zeros((4, 2)))
    assert s["mean_confidence"] == pytest.approx((0.7 + 0.8 + 0.6 + 0.6) / 4)
    np.testing.assert_allclose(s["class_fractions"], [0.5, 0.25, 0.25])
    f = np.array([0.5, 0.25, 0.25])
    assert s["effective_classes"] == pytest.approx(np.exp(-np.sum(f * np.log(f))))
    assert s["min_fraction"] == 0.25 and s["max_fraction"] == 0.5
    one = quality.classifier_scores(_FixedClassifier([[0.9, 0.1]] * 3), np.zeros((3, 2)))
    assert one["effective_classes"] == pytest.approx(1.0)  # mode collapse


def _grading_classifier(X, y, epochs):
    """The classifier that grades samples: plain cross-entropy (no adversarial training)."""
    history = []
    net = fields.train_classifier(nn.classifier_cnn(10, random_state=0), X, y, epochs=epochs,
                                  lr=2e-3, random_state=0, history=history, adversarial=0.0,
                                  noise=0.0, label_smoothing=0.0)
    return net, history


def test_small_classifier_learns_digits_and_is_less_sure_of_noise():
    X, y = datasets.digits()
    rng = np.random.default_rng(2)
    idx = rng.permutation(len(X))
    tr, te = idx[:500], idx[500:800]
    net, history = _grading_classifier(X[tr], y[tr], epochs=6)
    assert history[-1] < 0.5 * history[0]
    acc = quality.classifier_accuracy(net, X[te], y[te])
    assert acc > 0.85, acc
    report = quality.quality_report(X[te][:100], X[tr], X[te][100:], net)
    real, noise = report["classifier"], report["noise_classifier"]
    assert real["effective_classes"] > 8.0  # every digit class shows up
    assert real["mean_confidence"] > noise["mean_confidence"]
    assert report["noise_nn"]["ratio"] > 1.5 > report["nn"]["ratio"]
    with pytest.raises(ValueError, match="labels"):
        _grading_classifier(X[:5], np.array([0, 1, 2, 3, 10]), epochs=1)


def test_image_vae_baseline_trains_and_samples_in_the_box():
    from mme_numba.baselines.image_vae import ImageVAE

    X, _ = datasets.digits(n=100, seed=0)
    vae = ImageVAE(hidden=(32,), latent_dim=4, random_state=0).fit(X, epochs=40)
    losses = [r["loss"] for r in vae.history_]
    assert losses[-1] < 0.8 * losses[0]
    s = vae.sample(50, random_state=1)
    assert s.shape == (50, 64) and s.min() >= 0.0 and s.max() <= 1.0
    np.testing.assert_array_equal(s, vae.sample(50, random_state=1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ImageVAE().fit(X * 2.0 - 0.5, epochs=1)
