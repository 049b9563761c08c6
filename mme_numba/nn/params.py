"""The one flat parameter vector θ shared by every trainable observable map."""

import numpy as np

__all__ = ["FlatParameters"]


class FlatParameters:
    """Mixin: ``theta`` is one flat float64 array ``self._theta`` of size ``self.n_params``.

    Assigning ``obj.theta = v`` or calling ``set_theta(v)`` copies the values in, so views
    into ``_theta`` (per-layer parameters, derived caches) stay valid.
    """

    @property
    def theta(self):
        return self._theta

    @theta.setter
    def theta(self, value):
        self.set_theta(value)

    def set_theta(self, theta):
        """Copy ``theta (n_params,)`` into the parameter vector (views into it stay valid).

        Raises
        ------
        ValueError
            If ``theta`` has the wrong shape or non-finite entries.
        """
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (self.n_params,):
            raise ValueError(f"theta must have shape ({self.n_params},), got {theta.shape}")
        if not np.all(np.isfinite(theta)):
            raise ValueError("theta contains non-finite values (nan or inf)")
        if theta is not self._theta:
            self._theta[:] = theta
