"""Argument checks shared by the model classes and the functional core."""

import numpy as np


def as_generator(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise ValueError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}")


def parse_support(support, d):
    """``(lo, hi)`` as float64 arrays of shape ``(d,)``, validated."""
    if support is None:
        raise ValueError("support is required: a pair (lo, hi) of scalars or (d,) arrays; "
                         "bounded observables make p(x) non-normalizable on an unbounded domain")
    try:
        lo, hi = support
    except (TypeError, ValueError):
        raise ValueError(f"support must be a pair (lo, hi), got {support!r}") from None
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (d,)).copy()
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), (d,)).copy()
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("support bounds must be finite")
    if np.any(hi <= lo):
        raise ValueError(f"support must have lo < hi in every feature, got lo={lo}, hi={hi}")
    return lo, hi
