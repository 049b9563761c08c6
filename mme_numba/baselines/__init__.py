"""Baselines the Min-MaxEnt models are compared against (imported lazily: autograd is optional)."""

__all__ = ["VAE"]


def __getattr__(name):
    if name == "VAE":
        from .vae import VAE

        return VAE
    raise AttributeError(f"module 'mme_numba.baselines' has no attribute {name!r}")
