"""The estimator protocol shared by :class:`~mme_numba.MaxEnt` and :class:`~mme_numba.MinMaxEnt`.

scikit-learn conventions without the dependency: hyperparameters from the ``__init__``
signature (``get_params``/``set_params``, validated like the constructor), a per-object
re-entrant lock, pickling without the lock or the backend object, the fitted flag, and the
checks of input arrays.
"""

import difflib
import inspect
import threading

import numpy as np

from ._validation import check_observables, check_param, check_params, parse_support
from .backends import get_backend
from .spec import kernel_dtype


class Estimator:
    """Base of the estimators: parameters, lock, fitted state and input checks."""

    # Parameters whose change after the first fit could not reach the learned state.
    _fixed_once_fitted = ("observables", "support", "n_chains")
    # (``dtype`` may change: the chains are rounded to the new type at their next run)

    @property
    def _backend(self):
        """The backend object of ``backend`` and ``dtype`` (rebuilt when either changes)."""
        dtype = kernel_dtype(getattr(self, "dtype", "float64"))
        obj = getattr(self, "_backend_obj", None)
        if obj is None or obj.name != self.backend or getattr(obj, "dtype", np.float64) != dtype:
            self._backend_obj = get_backend(self.backend, dtype)
        return self._backend_obj

    def _current_observables(self):
        """The trained copy ``observables_`` once fitted; before, the map passed (read only)."""
        obs = getattr(self, "observables_", None)
        return check_observables(self.observables) if obs is None else obs

    def _param_names(self):
        names = []
        for klass in type(self).__mro__:
            if "__init__" in vars(klass):
                sig = inspect.signature(klass.__init__)
                names += [name for name, p in sig.parameters.items()
                          if name != "self" and name not in names
                          and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return names

    def get_params(self, deep=False):
        """Hyperparameters, as passed to ``__init__`` (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set hyperparameters; returns ``self``."""
        names = self._param_names()
        for key, value in params.items():
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                raise ValueError(f"{type(self).__name__} has no parameter {key!r}"
                                 + (f"; did you mean {close[0]!r}?" if close else ""))
            check_param(key, value)
            if self.is_fitted and key in self._fixed_once_fitted:
                if key == "support":
                    same = all(np.array_equal(a, b) for a, b in
                               zip(parse_support(value, self.n_features_in_), self.support_))
                elif key == "n_chains":
                    same = int(value) == len(self.chains_)
                else:
                    same = value is getattr(self, key)
                if not same:
                    raise ValueError(f"{key} cannot change once the model is fitted (it shapes "
                                     f"the learned state); clone the model and fit the clone")
        with self._lock:
            for key, value in params.items():
                setattr(self, key, value)
        return self

    def _validate_params(self):
        """Every hyperparameter against its entry in ``mme_numba._validation.PARAMS``."""
        check_params(self.get_params())
        if kernel_dtype(getattr(self, "dtype", "float64")) == np.float32:
            from .observables.user import CompiledObservables

            if self.move == "mala":
                raise ValueError("move='mala' runs in float64 only: use dtype='float64' or "
                                 "another move ('all', 'single', 'scan')")
            if isinstance(self._current_observables(), CompiledObservables):
                raise ValueError("compiled observables (observables.compiled) run in float64 "
                                 "only: use dtype='float64'")
        if getattr(self, "_trains_theta", False) and \
                getattr(self.observables, "trainable", True) is False:
            raise ValueError(f"MinMaxEnt trains θ, but {self.observables!r} has no grad_theta: "
                             "its θ is fixed. Fit it with MaxEnt, or pass grad_theta= to "
                             "observables.compiled")

    @property
    def _lock(self):
        """Re-entrant lock serializing ``fit``/``sample``/``energy`` on this model (a callback
        running inside ``fit`` may call ``sample``). Created on first use, never copied."""
        lock = self.__dict__.get("_lock_obj")
        if lock is None:
            lock = self.__dict__.setdefault("_lock_obj", threading.RLock())
        return lock

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lock_obj", None)      # a lock is per object; the copy makes its own
        state.pop("_backend_obj", None)   # holds modules; rebuilt from ``backend`` on use
        return state

    @property
    def is_fitted(self):
        return hasattr(self, "lambda_")

    def _check_fitted(self, what):
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__}.{what}: the model is not fitted yet; call fit(X) first")

    def _check_X(self, X, name="X"):
        if isinstance(X, (str, bytes)) or X is None:
            raise TypeError(f"{name} must be a 2-D array of numbers, got {X!r:.80}")
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a 2-D array of numbers ({exc})") from None
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{name} has no rows")
        if not np.all(np.isfinite(X)):
            raise ValueError(f"{name} contains NaN or infinite values")
        d = getattr(self, "n_features_in_", None)
        if d is not None and X.shape[1] != d:
            raise ValueError(f"{name} has {X.shape[1]} features, the model was fitted with {d}")
        return X


def check_inside(X, lo, hi):
    """``ValueError`` when a row of ``X`` lies outside the box ``[lo, hi]``."""
    outside = np.any((X < lo) | (X > hi), axis=1)
    if np.any(outside):
        raise ValueError(f"{int(outside.sum())} of {len(X)} data rows lie outside the support "
                         f"box [{lo}, {hi}]; widen the support or clip the data")
