"""One style for every figure of the package, its examples and its documentation.

- :data:`RC`: the matplotlib settings (font sizes, line widths, no top/right spines,
  frameless legends, deterministic SVG), applied with :func:`style` or :func:`styled`, never
  globally, so the caller's matplotlib state is left alone.
- :func:`legend_outside`: a legend beside the axes, never over the data.
- :func:`save_figure`: writes PNG at :data:`DPI` (at least :data:`MIN_DPI`) and, on request,
  an SVG beside it; it refuses a figure with an axis that shows tick labels but has no label.

Every figure in ``mme_numba.plotting`` and ``examples/`` is built under :func:`style` and
written by :func:`save_figure`. Labels say the quantity and its unit: ``"x (data units)"``,
``"entropy (nats)"``, ``"wall time (s)"``; a count or a rate has no unit (``"epoch"``).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import matplotlib

logger = logging.getLogger(__name__)

__all__ = ["RC", "DPI", "MIN_DPI", "style", "styled", "legend_outside", "unlabelled_axes",
           "save_figure"]

#: Resolution of written PNGs, and the smallest one :func:`save_figure` accepts.
DPI = 200
MIN_DPI = 150

RC = {
    "font.size": 9.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 9.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "legend.fontsize": 8.0,
    "figure.titlesize": 10.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "lines.linewidth": 1.5,
    "lines.markersize": 4.0,
    "legend.frameon": False,
    "image.interpolation": "nearest",
    "savefig.dpi": DPI,
    "svg.fonttype": "path",       # the same glyphs on every host
    "svg.hashsalt": "mme_numba",  # stable element ids: reruns give the same SVG
}


def style():
    """Context manager applying :data:`RC` (``with style(): ...``)."""
    return matplotlib.rc_context(RC)


def styled(func):
    """Decorator: run a figure-building function under :func:`style`."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with style():
            return func(*args, **kwargs)
    return wrapper


def legend_outside(ax, loc="right", **kwargs):
    """A legend beside the axes (``loc="right"``) or above them (``"top"``), off the data.

    Returns the :class:`matplotlib.legend.Legend`; extra keywords go to ``ax.legend``.
    """
    if loc == "right":
        kw = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    elif loc == "top":
        kw = dict(loc="lower left", bbox_to_anchor=(0.0, 1.02), borderaxespad=0.0,
                  ncol=kwargs.pop("ncol", 3))
    else:
        raise ValueError(f"legend_outside: loc must be 'right' or 'top', got {loc!r}")
    kw.update(kwargs)
    return ax.legend(**kw)


def _shows_ticklabels(axis, sides):
    if not axis.get_visible() or len(axis.get_ticklocs()) == 0:
        return False
    params = axis.get_tick_params(which="major")
    return any(params.get(f"label{side}", side in ("bottom", "left")) for side in sides)


def unlabelled_axes(fig):
    """Descriptions of the axes of ``fig`` that show tick labels without an axis label.

    An axis counts as labelled by its own label or by the figure's ``supxlabel`` /
    ``supylabel``. Axes switched off and axes without ticks (image panels) need no label.
    """
    sup_x = getattr(fig, "_supxlabel", None) is not None and fig._supxlabel.get_text()
    sup_y = getattr(fig, "_supylabel", None) is not None and fig._supylabel.get_text()
    missing = []
    for i, ax in enumerate(fig.get_axes()):
        if not ax.axison or not ax.get_visible():
            continue
        name = f"axes {i}" + (f" ({ax.get_title()!r})" if ax.get_title() else "")
        if (_shows_ticklabels(ax.xaxis, ("bottom", "top")) and not ax.get_xlabel()
                and not sup_x):
            missing.append(f"{name}: x axis")
        if (_shows_ticklabels(ax.yaxis, ("left", "right")) and not ax.get_ylabel()
                and not sup_y):
            missing.append(f"{name}: y axis")
    return missing


def save_figure(fig, path, *, dpi=DPI, svg=False):
    """Write ``fig`` to ``path`` (PNG, or the format its suffix names); return ``fig``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or path-like or None
        Nothing is written when None (the plotting functions' default).
    dpi : int, default :data:`DPI`
        At least :data:`MIN_DPI`.
    svg : bool, default False
        Also write ``path`` with the suffix ``.svg`` (the documentation's figures have both).

    Raises
    ------
    ValueError
        If ``dpi < MIN_DPI`` or an axis shows tick labels without an axis label.
    """
    if path is None:
        return fig
    if dpi < MIN_DPI:
        raise ValueError(f"save_figure: dpi={dpi} is below the minimum of {MIN_DPI}")
    missing = unlabelled_axes(fig)
    if missing:
        raise ValueError("save_figure: refusing to write a figure with unlabelled axes ("
                         + "; ".join(missing) + "): give each a label with its unit")
    path = Path(path)
    with style():
        fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.04)
        logger.info("wrote %s", path)
        if svg:
            svg_path = path.with_suffix(".svg")
            fig.savefig(svg_path, bbox_inches="tight", pad_inches=0.04,
                        metadata={"Date": None})
            logger.info("wrote %s", svg_path)
    return fig
