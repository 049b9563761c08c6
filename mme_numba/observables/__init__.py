"""Observable maps ``O(x; θ)``: any :mod:`mme_numba.nn` network, fixed and analytic maps, and
the user's own compiled functions (:func:`compiled`).

Every map follows the protocol of ``docs/architecture.md`` §1 (``forward``, ``backward``,
``describe``, ``kernel_params``, ``theta``, ``get_config``/``from_config``, ``copy``).
"""

from .user import CompiledObservables, compiled
from .polynomial import Polynomial, polynomial
from .projections import SquaredProjections, squared_projections

__all__ = ["Polynomial", "polynomial", "SquaredProjections", "squared_projections",
           "CompiledObservables", "compiled", "from_config"]


def from_config(cfg):
    """Rebuild an observable map (without parameters) from its ``get_config()`` dict."""
    kind = cfg.get("type")
    if kind == "Polynomial":
        return Polynomial.from_config(cfg)
    if kind == "SquaredProjections":
        return SquaredProjections.from_config(cfg)
    if kind == "Compiled":
        return CompiledObservables.from_config(cfg)   # raises: a file cannot hold a function
    if kind == "Sequential":
        from ..nn import Sequential

        return Sequential.from_config(cfg)
    raise ValueError(f"unknown observable map type {kind!r} in saved configuration")
