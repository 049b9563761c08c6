"""mme_numba: Min-MaxEnt generative models with NumPy and Numba.

A Min-MaxEnt model is ``p(x) ∝ exp(-Σ_i λ_i O_i(x; θ))`` on a support box, with observables
``O`` given by small neural networks.  ``λ`` matches the data averages (maximum entropy) and
``θ`` minimizes the entropy of that maximum-entropy distribution.

Submodules and public names are imported lazily, so ``import mme_numba`` is cheap and has no
side effects (no thread or config mutation; the CUDA backend is only imported when asked for).
"""

from importlib import import_module

__version__ = "0.1.0"

_SUBMODULES = {
    "nn", "observables", "datasets", "kernels", "solvers", "quadrature", "diagnostics",
    "plotting", "fields", "baselines", "testing", "model", "io", "cli", "config", "core",
    "sweeps", "likelihood", "chains", "settings",
}
_NAMES = {
    "MaxEnt": "mme_numba.model",
    "MinMaxEnt": "mme_numba.model",
    "load": "mme_numba.model",
    "ModelFileError": "mme_numba.io",
}

__all__ = sorted(_SUBMODULES | set(_NAMES)) + ["__version__"]


def __getattr__(name):
    if name in _NAMES:
        value = getattr(import_module(_NAMES[name]), name)
    elif name in _SUBMODULES:
        value = import_module(f"mme_numba.{name}")
    else:
        raise AttributeError(f"module 'mme_numba' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__
