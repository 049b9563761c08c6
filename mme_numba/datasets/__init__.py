"""Datasets: the paper's synthetic mixtures and the 8×8 handwritten digits (shipped, offline)."""

from importlib import resources

import numpy as np

from .mixtures import (  # noqa: F401  (re-exported)
    cauchy_mixture,
    cauchy_mixture_logpdf,
    gaussian_mixture,
    gaussian_mixture_logpdf,
    truncated_logpdf,
)

__all__ = [
    "digits",
    "gaussian_mixture",
    "gaussian_mixture_logpdf",
    "cauchy_mixture",
    "cauchy_mixture_logpdf",
    "truncated_logpdf",
]

DIGITS_SHAPE = (8, 8)


def digits(n=None, *, labels=None, seed=None):
    """The 1797 optdigits 8×8 images, shipped inside the package (no download).

    Parameters
    ----------
    n : int, optional
        Return a subset of ``n`` images, drawn without replacement with ``seed``
        (the paper trains on 200). Default: all 1797, in file order.
    labels : sequence of int, optional
        Keep only these digit classes (before subsetting).
    seed : int or numpy.random.Generator, optional
        Seed for the subset draw.

    Returns
    -------
    X : ndarray, shape (n_samples, 64), float64 in [0, 1]
        Flattened row-major 8×8 images (pixel counts 0..16 divided by 16).
    y : ndarray, shape (n_samples,), int64
        Digit labels 0..9.

    Notes
    -----
    Alpaydin & Kaynak (1998), UCI ML repository, CC BY 4.0; see ``DIGITS_LICENSE.md``.
    """
    with resources.files(__name__).joinpath("optdigits_8x8.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as data:
            X = data["images"].astype(np.float64) / 16.0
            y = data["labels"].astype(np.int64)
    if labels is not None:
        keep = np.isin(y, np.asarray(labels, dtype=np.int64))
        X, y = X[keep], y[keep]
    if n is not None:
        n = int(n)
        if not 0 < n <= len(X):
            raise ValueError(f"digits: n must be in [1, {len(X)}], got {n}")
        idx = np.sort(np.random.default_rng(seed).choice(len(X), size=n, replace=False))
        X, y = X[idx], y[idx]
    return X, y
