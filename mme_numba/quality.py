"""Sample-quality measures for generated images: memorization, legibility, mode coverage.

* **Nearest-neighbour distance ratio** (:func:`nn_distance_ratio`): mean Euclidean distance from
  each generated image to its nearest training image, divided by the same mean for held-out
  real images. Held-out real images are the yardstick of "a new digit from the same
  distribution": a ratio far below 1 means the model copies training images (memorization),
  far above 1 means the samples are off the data manifold (noise, blur).
* **Classifier scores** (:func:`classifier_scores`): a classifier trained on real labelled
  digits (:func:`mme_numba.nn.classifier_cnn`, i.e. two 3×3 tanh
  convolutions 1→8→16, a 64-unit tanh layer and a log-softmax over 10 classes, trained by ADAM
  on the mean negative log-likelihood with the NumPy backprop:
  :func:`mme_numba.fields.train_classifier` with ``adversarial=0, noise=0,
  label_smoothing=0``) reads every generated image.
  Mean confidence ``<max_c P(c|x)>`` measures legibility; the fraction of samples given to each
  class, and its entropy as an effective number of classes ``exp(H)`` (10 = every class equally
  often), measure mode coverage. Confidence is only meaningful next to the same score of
  held-out real digits and of noise, which is why :func:`quality_report` returns all three.
"""

import logging

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["nn_distances", "nn_distance_ratio", "classifier_accuracy",
           "classifier_scores", "quality_report"]


def _rows(X, name):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n, d), got shape {X.shape}")
    return X


def nn_distances(A, B, chunk=512):
    """Euclidean distance from each row of ``A`` to its nearest row of ``B``.

    Parameters
    ----------
    A : array_like, shape (n, d)
    B : array_like, shape (m, d)
    chunk : int
        Rows of ``A`` per block (bounds the ``(chunk, m)`` distance matrix).

    Returns
    -------
    ndarray, shape (n,)
    """
    A, B = _rows(A, "A"), _rows(B, "B")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"A and B need the same number of columns, got {A.shape[1]} and "
                         f"{B.shape[1]}")
    b2 = np.einsum("ij,ij->i", B, B)
    out = np.empty(len(A))
    for s in range(0, len(A), chunk):
        a = A[s:s + chunk]
        d2 = np.einsum("ij,ij->i", a, a)[:, None] + b2[None, :] - 2.0 * a @ B.T
        out[s:s + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def nn_distance_ratio(generated, train, heldout):
    """Nearest-training-image distance of generated samples relative to held-out real images.

    Parameters
    ----------
    generated : array_like, shape (n, d)
    train : array_like, shape (m, d)
        The images the model was trained on.
    heldout : array_like, shape (k, d)
        Real images not in ``train``.

    Returns
    -------
    dict
        ``ratio`` = ``generated_to_train / heldout_to_train`` (≈ 1: as novel as real digits,
        ≪ 1: memorized, ≫ 1: off the data), the two mean distances, and
        ``copies``: the fraction of generated samples closer to a training image than the
        5th percentile of held-out distances (near-duplicates).
    """
    g = nn_distances(generated, train)
    h = nn_distances(heldout, train)
    return {"ratio": float(g.mean() / h.mean()), "generated_to_train": float(g.mean()),
            "heldout_to_train": float(h.mean()),
            "copies": float(np.mean(g < np.percentile(h, 5.0)))}


def classifier_accuracy(net, X, y):
    """Fraction of ``X`` whose most probable class is ``y``."""
    return float(np.mean(np.argmax(net.forward(_rows(X, "X")), axis=1) == np.asarray(y)))


def classifier_scores(net, X):
    """Legibility and mode coverage of images ``X`` as read by a classifier.

    Parameters
    ----------
    net : network
        Returns ``log P(c | x)``, shape ``(n, n_classes)`` (e.g. from
        :func:`mme_numba.fields.train_classifier`).
    X : array_like, shape (n, d)

    Returns
    -------
    dict
        ``mean_confidence`` ``<max_c P(c|x)>``; ``class_fractions`` (list, sums to 1): the share
        of samples assigned to each class; ``effective_classes`` ``exp(-Σ f ln f)`` (1 to
        ``n_classes``); ``min_fraction``, ``max_fraction``.
    """
    logp = net.forward(_rows(X, "X"))
    p = np.exp(logp)
    n_classes = p.shape[1]
    frac = np.bincount(np.argmax(p, axis=1), minlength=n_classes) / len(p)
    nz = frac[frac > 0]
    return {"mean_confidence": float(p.max(axis=1).mean()),
            "class_fractions": frac.tolist(),
            "effective_classes": float(np.exp(-np.sum(nz * np.log(nz)))),
            "min_fraction": float(frac.min()), "max_fraction": float(frac.max())}


def quality_report(generated, train, heldout, net, random_state=0):
    """All quality numbers for one set of generated images, with real and noise references.

    Parameters
    ----------
    generated : array_like, shape (n, d)
    train : array_like, shape (m, d)
        The model's training images.
    heldout : array_like, shape (k, d)
        Real images the model never saw.
    net : network
        Classifier returning log-probabilities (:func:`mme_numba.fields.train_classifier`).
    random_state : int
        Seeds the uniform-noise reference.

    Returns
    -------
    dict
        ``nn`` (:func:`nn_distance_ratio`), ``classifier`` (:func:`classifier_scores`) for the
        generated images; ``heldout_classifier`` for the held-out real images; ``noise_nn`` and
        ``noise_classifier`` for as many uniform-noise images as generated ones.
    """
    generated = _rows(generated, "generated")
    noise = np.random.default_rng(random_state).random(generated.shape)
    return {"nn": nn_distance_ratio(generated, train, heldout),
            "classifier": classifier_scores(net, generated),
            "heldout_classifier": classifier_scores(net, heldout),
            "noise_nn": nn_distance_ratio(noise, train, heldout),
            "noise_classifier": classifier_scores(net, noise)}
