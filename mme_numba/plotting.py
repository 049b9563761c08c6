"""Figures for training curves, learned densities and image samples.

Every function builds a :class:`matplotlib.figure.Figure` directly (no
``pyplot``, no global backend switch), so it works headless, in scripts and in
notebooks alike, and leaves the caller's matplotlib state untouched. Each one
returns the figure and, given ``path``, also writes it there with
:func:`mme_numba.figstyle.save_figure` (PNG at 200 dpi; it refuses unlabelled axes). All of
them draw in the package's one style, :mod:`mme_numba.figstyle`. Equation numbers in labels
(Eq. n) are those of ``docs/method.md``.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from matplotlib.figure import Figure

from mme_numba import quadrature
from mme_numba.figstyle import DPI, legend_outside, save_figure, styled

logger = logging.getLogger(__name__)

__all__ = ["plot_history", "plot_density_1d", "plot_density_2d", "plot_image_grid",
           "plot_image_rows"]

#: History keys plotted by :func:`plot_history`, in panel order, with axis labels.
HISTORY_PANELS = {
    "chi2": ("χ² (Eq. 5)", True),
    "acceptance": ("acceptance rate", False),
    "entropy": ("entropy S (nats)", False),
    "entropy_estimate": ("tracked entropy estimate (nats)", False),
    "kl": ("KL(p_true ‖ p) (nats)", True),
    "ess_fraction": ("reweighting ESS fraction", False),
    "step_size": ("proposal step size (data units)", True),
}


def _save(fig, path, dpi=DPI):
    return save_figure(fig, path, dpi=dpi)


def _flat_images(samples, shape, name):
    """``samples`` as a float64 ``(n, H*W)`` array, or a ValueError that names ``name``."""
    imgs = np.asarray(samples, dtype=np.float64)
    h, w = shape
    if imgs.ndim != 2 or imgs.shape[1] != h * w:
        raise ValueError(f"{name} must be (n, {h * w}) for shape {shape}, got {imgs.shape}")
    return imgs


def _energy_and_support(model_or_energy, support):
    """Return ``(energy_fn, (lo, hi))`` from a fitted model or an energy callable."""
    if hasattr(model_or_energy, "energy"):
        energy = model_or_energy.energy
        if support is None:
            support = getattr(model_or_energy, "support_", None)
    elif callable(model_or_energy):
        energy = model_or_energy
    else:
        raise TypeError("expected a fitted model (with .energy) or an energy callable")
    if support is None:
        raise ValueError("support=(lo, hi) is required with a bare energy function")
    return energy, support


def _grid_density(energy, support, d, n_grid):
    """Normalised density by Simpson quadrature on a ``d``-dim grid of the support box."""
    lo, hi = (np.broadcast_to(np.ravel(s), (d,)) for s in support)
    n_grid = n_grid + 1 - n_grid % 2     # Simpson's rule needs an odd node count
    points, log_p = quadrature.log_density_grid(energy, lo, hi, n_grid)
    axes = [np.unique(points[:, k]) for k in range(d)]
    return axes, np.exp(log_p).reshape((n_grid,) * d)


@styled
def plot_history(history, keys=None, path=None, figsize=None):
    """Training curves: χ², acceptance, entropy/KL where recorded, per epoch.

    Parameters
    ----------
    history : list of dict, or a fitted model with ``history_``
        One record per epoch with an ``epoch`` key (else the index is used).
    keys : sequence of str, optional
        Which record keys to plot, one panel each. Default: those of
        :data:`HISTORY_PANELS` recorded (non-None) with at least two distinct values.
    path : str or path-like, optional
        Where to save the figure.
    figsize : tuple, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    records = list(getattr(history, "history_", history))
    if not records:
        raise ValueError("history is empty: fit the model for at least one epoch")
    epochs = np.array([r.get("epoch", i + 1) for i, r in enumerate(records)], dtype=float)
    if keys is None:
        # Panels for recorded keys that change (a frozen step size is no curve to look at).
        keys = [k for k in HISTORY_PANELS
                if len({repr(r[k]) for r in records if r.get(k) is not None}) > 1]
    if not keys:
        raise ValueError("no plottable keys in history")
    n_cols = min(3, len(keys))
    n_rows = math.ceil(len(keys) / n_cols)
    fig = Figure(figsize=figsize or (4.0 * n_cols, 3.0 * n_rows), layout="constrained")
    axs = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axs[len(keys):]:
        fig.delaxes(ax)
    for ax, key in zip(axs, keys):
        label, log = HISTORY_PANELS.get(key, (key, False))
        vals = np.array([np.nan if r.get(key) is None else float(np.mean(r[key]))
                         for r in records])
        ok = np.isfinite(vals)
        ax.plot(epochs[ok], vals[ok], ".-" if ok.sum() < 30 else "-", lw=1)
        if log and np.all(vals[ok] > 0):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    return _save(fig, path)


@styled
def plot_density_1d(model, X, support=None, true_density=None, n_grid=1001, bins=50,
                    path=None, ax=None, title=None):
    """Learned density by quadrature against a histogram of the data (1-d).

    Parameters
    ----------
    model : fitted model or callable
        Anything with ``.energy(X (n, 1)) -> (n,)`` (its ``support_`` is used
        when ``support`` is None), or such an energy function itself.
    X : array_like, shape (n_samples, 1)
        Training data, shown as a density histogram.
    support : pair of float, optional
        Integration interval ``(lo, hi)``.
    true_density : callable, optional
        ``true_density(x (n_grid,)) -> (n_grid,)``, drawn dashed for comparison.
    n_grid, bins : int
        Quadrature points and histogram bins.
    path : str or path-like, optional
    ax : matplotlib Axes, optional
        Draw into this axes instead of a new figure.
    title : str, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    energy, support = _energy_and_support(model, support)
    (xs,), p = _grid_density(energy, support, 1, n_grid)
    lo, hi = xs[0], xs[-1]
    fig = ax.figure if ax is not None else Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = ax if ax is not None else fig.subplots()
    X = np.asarray(X, dtype=np.float64).reshape(-1)
    ax.hist(X, bins=bins, range=(lo, hi), density=True, color="0.8",
            label=f"data (n={X.size})")
    ax.plot(xs, p, color="C0", lw=2, label="learned p(x)")
    if true_density is not None:
        ax.plot(xs, true_density(xs), "k--", lw=1.2, label="true density")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("x (data units)")
    ax.set_ylabel("density (1 / data unit)")
    if title:
        ax.set_title(title)
    legend_outside(ax)
    return _save(fig, path)


@styled
def plot_density_2d(model, X, support=None, n_grid=121, path=None, max_points=2000,
                    title=None):
    """Learned 2-d density by quadrature (filled contours) with the data on top.

    Parameters
    ----------
    model : fitted model or callable
        Anything with ``.energy(X (n, 2)) -> (n,)``, or such a function.
    X : array_like, shape (n_samples, 2)
    support : pair, optional
        ``(lo, hi)``, scalars or shape ``(2,)``; default the model's ``support_``.
    n_grid : int, default 121
        Points per axis.
    path : str or path-like, optional
    max_points : int, default 2000
        At most this many data points are drawn (the first ones).
    title : str, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    energy, support = _energy_and_support(model, support)
    (g0, g1), p = _grid_density(energy, support, 2, n_grid)
    fig = Figure(figsize=(5.0, 4.2), layout="constrained")
    ax = fig.subplots()
    cs = ax.contourf(g0, g1, p.T, levels=20, cmap="viridis")
    fig.colorbar(cs, ax=ax, label="learned p(x) (1 / data unit²)")
    X = np.asarray(X, dtype=np.float64)[:max_points]
    ax.scatter(X[:, 0], X[:, 1], s=3, c="w", alpha=0.6, linewidths=0, label="data")
    ax.set_xlabel("x₁ (data units)")
    ax.set_ylabel("x₂ (data units)")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return _save(fig, path)


@styled
def plot_image_grid(samples, shape=(8, 8), n_cols=None, vmin=0.0, vmax=1.0, cmap="gray_r",
                    path=None, title=None):
    """Draw flattened images on a grid.

    Parameters
    ----------
    samples : array_like, shape (n_images, H*W)
        Flattened rows (e.g. ``model.sample(64)`` on 8×8 digits).
    shape : tuple of int, default (8, 8)
        ``(H, W)`` of one image.
    n_cols : int, optional
        Columns of the grid; default ``ceil(sqrt(n_images))``.
    vmin, vmax : float
        Colour range (the support of the pixel values).
    cmap : str, default "gray_r"
    path : str or path-like, optional
    title : str, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    imgs = _flat_images(samples, shape, "samples")
    h, w = shape
    n = imgs.shape[0]
    n_cols = n_cols or math.ceil(math.sqrt(n))
    n_rows = math.ceil(n / n_cols)
    fig = Figure(figsize=(0.9 * n_cols, 0.9 * n_rows + (0.3 if title else 0.0)))
    axs = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, ax in enumerate(axs.ravel()):
        ax.set_axis_off()
        if i < n:
            ax.imshow(imgs[i].reshape(h, w), cmap=cmap, vmin=vmin, vmax=vmax,
                      interpolation="nearest")
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.92 if title else 0.98,
                        wspace=0.08, hspace=0.08)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


@styled
def plot_image_rows(rows, shape=(8, 8), n_cols=10, vmin=0.0, vmax=1.0, cmap="gray_r",
                    cell=0.8, path=None, dpi=DPI):
    """One labelled row of images per entry of ``rows``: samples by epoch, by target, ...

    Parameters
    ----------
    rows : mapping of label -> array_like, shape (n_images, H*W)
        Rows in order; the first ``n_cols`` images of each are drawn (fewer leave the rest
        of the row blank).
    shape : tuple of int, default (8, 8)
        ``(H, W)`` of one image.
    n_cols : int, default 10
    vmin, vmax : float
        Colour range (the support of the pixel values).
    cmap : str, default "gray_r"
    cell : float, default 0.8
        Size of one image in inches.
    path : str or path-like, optional
    dpi : int, default 200
        Resolution of the written file (at least 150).

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    h, w = shape
    labels = list(rows)
    if not labels:
        raise ValueError("rows is empty: nothing to draw")
    imgs = {key: _flat_images(rows[key], shape, f"row {key!r}") for key in labels}
    margin = 0.4 + 0.07 * max(len(str(key)) for key in labels)  # the labels, fontsize 8
    fig = Figure(figsize=(cell * n_cols + margin, cell * len(labels) + 0.2))
    axs = fig.subplots(len(labels), n_cols, squeeze=False)
    for r, key in enumerate(labels):
        for c in range(n_cols):
            ax = axs[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():       # a thin frame on all four sides
                spine.set_visible(True)
                spine.set_linewidth(0.4)
                spine.set_color("0.6")
            if c < imgs[key].shape[0]:
                ax.imshow(imgs[key][c].reshape(h, w), cmap=cmap, vmin=vmin, vmax=vmax,
                          interpolation="nearest")
            else:
                ax.set_axis_off()
        axs[r, 0].set_ylabel(str(key), rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout(pad=0.2, w_pad=0.1, h_pad=0.1)
    return _save(fig, path, dpi)
