"""User observables as compiled functions: ``O(x; θ)`` from an ``@njit`` function.

A host code (a simulation, a lattice model, a potential) supplies its own observables as
numba-compiled functions of one configuration, and gets the same sampler and trainer as the
built-in networks::

    @njit
    def func(x, theta, out):            # x (d,), theta (p,), out (n_outputs,)
        out[0] = ...                    # write every output
    @njit
    def grad_theta(x, theta, w, g):     # optional: g (p,) += ∂(w·O(x; θ))/∂θ
        ...
    @njit
    def grad_x(x, theta, w, g):         # optional: g (d,) += ∂(w·O(x; θ))/∂x  (MALA)
        ...

    obs = mme.observables.compiled(func, n_outputs=3, theta=theta0, grad_theta=grad_theta)

How it runs: :func:`compiled` builds, once per ``(func, grad_theta, grad_x)`` and process,
a set of ``@njit(nogil=True)`` kernels that call the user's functions directly (numba
inlines a call to a compiled function that a closure captures): all-chain energies, the
Metropolis sweeps (moves ``"all"``, ``"single"``, ``"scan"``; ``"mala"`` with ``grad_x``),
the observables of many rows, and the θ-gradient accumulation of the trainer. The chains use
the same per-chain random streams and draw order as the built-in sampler
(:mod:`mme_numba.kernels.moves.box`), so results do not depend on the thread count. The
observable's ``describe()`` is one spec row of op code :data:`COMPILED` whose fifth entry is
the key of that kernel set; :class:`mme_numba.backends.CPUBackend` hands such specs to
:func:`kernels_of`. The CUDA backend does not run them.

Without ``grad_theta`` θ is fixed: fit with :class:`~mme_numba.MaxEnt`.
A saved model stores θ, ``n_outputs`` and the functions' names, not the functions:
``mme_numba.load(path, observables=obs)`` takes them back.
"""

import numpy as np
from numba import njit

from ..nn.params import FlatParameters
from ..spec import COMPILED, MOVE_ALL, MOVE_MALA, MOVE_SCAN, SPEC_WIDTH

__all__ = ["CompiledObservables", "compiled", "COMPILED", "kernels_of"]

#: Spec op code of a compiled user observable (the network ops are 0-8).
_N_BLOCKS = 64  # θ-gradient rows are summed in this many fixed blocks: thread-count independent

_BY_FUNCS = {}   # (func, grad_theta, grad_x) -> _Kernels
_BY_KEY = {}     # key -> _Kernels


def _is_compiled(f):
    from numba.core.dispatcher import Dispatcher

    return isinstance(f, Dispatcher)


def _name(f):
    if f is None:
        return None
    py = getattr(f, "py_func", f)
    return f"{getattr(py, '__module__', '?')}.{getattr(py, '__qualname__', repr(py))}"


@njit
def _no_grad(x, theta, w, g):  # stands in for a missing gradient (never called)
    pass


class _Kernels:
    """The compiled kernels of one ``(func, grad_theta, grad_x)`` and their entry points
    (arrays in, arrays out). Compiled at first use, once per process."""

    def __init__(self, key, func, grad_theta, grad_x):
        self.key = key
        self.func, self.grad_theta, self.grad_x = func, grad_theta, grad_x
        self._built = None

    def __getitem__(self, name):
        if self._built is None:
            self._built = _build(self.func, self.grad_theta or _no_grad,
                                 self.grad_x or _no_grad)
        return self._built[name]

    def observe(self, X, theta, m):
        out = np.zeros((len(X), m))
        _in_threads(self["observe"], len(X), X, theta, out)
        return out

    def energy(self, X, theta, lam):
        e = np.empty(len(X))
        _in_threads(self["energy"], len(X), X, theta, lam, e)
        return e

    def sweeps(self, theta, lam, x, energy, lo, hi, step, n_sweeps, move, boundary, rng_state,
               accepted):
        """In-place sweeps of the chains ``x``; ``move`` as in ``backends.MOVES``."""
        args = (theta, lam, x, energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted)
        if move == MOVE_ALL:
            _in_threads(self["sweeps_all"], len(x), *args)
        elif move == MOVE_MALA:
            _in_threads(self["sweeps_mala"], len(x), *args)
        else:
            _in_threads(self["sweeps_single"], len(x), *args, move == MOVE_SCAN)

    def backward_theta(self, X, theta, W):
        """``Σ_i ∂(W_i·O(X_i; θ))/∂θ``, summed over fixed row blocks in order."""
        nb = max(1, min(len(X), _N_BLOCKS))
        G = np.zeros((nb, theta.shape[0]))
        _in_threads(self["backward_theta"], nb, X, theta, W, G, nb)
        g = np.zeros(theta.shape[0])
        for row in G:
            g += row
        return g

    def backward_x(self, X, theta, W):
        dX = np.zeros(X.shape)
        _in_threads(self["backward_x"], len(X), X, theta, W, dX)
        return dX


def _build(func, grad_theta, grad_x):
    """The kernels, specialized to the user's functions (numba compiles them at first call)."""
    from ..kernels.moves.box import _accept, _normal_all, _propose, _single_site_proposal
    from ..kernels.moves.mala import mala_chain_for
    from ..kernels.rng import normal

    @njit
    def h_one(x, theta, lam, o):
        for k in range(o.shape[0]):
            o[k] = 0.0
        func(x, theta, o)
        s = 0.0
        for k in range(o.shape[0]):
            s += lam[k] * o[k]
        return s

    @njit(nogil=True)
    def observe(a, b, X, theta, out):
        for i in range(a, b):
            func(X[i], theta, out[i])

    @njit(nogil=True)
    def energy(a, b, X, theta, lam, e):
        o = np.empty(lam.shape[0])
        for i in range(a, b):
            e[i] = h_one(X[i], theta, lam, o)

    @njit
    def h_grad(x, g, args):
        theta, lam, o = args
        for k in range(g.shape[0]):
            g[k] = 0.0
        grad_x(x, theta, lam, g)
        return h_one(x, theta, lam, o)

    chain_mala = mala_chain_for(h_grad)

    # One kernel per move, so that a fit compiles only the move it uses.
    @njit(nogil=True)
    def sweeps_all(a, b, theta, lam, x, energy, lo, hi, step, n_sweeps, boundary, rng_state,
                   accepted):
        d = x.shape[1]
        y = np.empty(d)
        o = np.empty(lam.shape[0])
        for c in range(a, b):
            h = energy[c]
            n_acc = 0
            for _ in range(n_sweeps):
                inside = True
                for k in range(d):
                    y[k], ok = _propose(x[c, k] + step[c] * _normal_all(rng_state, c), lo[k],
                                        hi[k], boundary)
                    inside = inside and ok
                if not inside:
                    continue
                h_new = h_one(y, theta, lam, o)
                if _accept(rng_state, c, h, h_new):
                    x[c, :] = y
                    h = h_new
                    n_acc += 1
            energy[c] = h
            accepted[c] += n_acc

    @njit(nogil=True)
    def sweeps_single(a, b, theta, lam, x, energy, lo, hi, step, n_sweeps, boundary,
                      rng_state, accepted, scan):
        # One coordinate per proposal, full re-evaluation of O: random coordinates (the
        # draws of kernels.moves.single's single-coordinate moves) or all of them in order.
        d = x.shape[1]
        o = np.empty(lam.shape[0])
        for c in range(a, b):
            xc = x[c]
            h = energy[c]
            n_acc = 0
            for t in range(n_sweeps * d):
                if scan:
                    j = t % d
                    old = xc[j]
                    yj, inside = _propose(old + step[c] * normal(rng_state, c), lo[j], hi[j],
                                          boundary)
                else:
                    j, old, yj, inside = _single_site_proposal(rng_state, c, xc, step[c], lo,
                                                               hi, boundary)
                if not inside:
                    continue
                xc[j] = yj
                h_new = h_one(xc, theta, lam, o)
                if _accept(rng_state, c, h, h_new):
                    h = h_new
                    n_acc += 1
                else:
                    xc[j] = old
            energy[c] = h
            accepted[c] += n_acc

    @njit(nogil=True)
    def sweeps_mala(a, b, theta, lam, x, energy, lo, hi, step, n_sweeps, boundary, rng_state,
                    accepted):
        args = (theta, lam, np.empty(lam.shape[0]))
        for c in range(a, b):
            chain_mala(c, x, energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted,
                       args)

    @njit(nogil=True)
    def backward_theta(a, b, X, theta, W, G, n_blocks):
        # blocks a..b of n_blocks fixed row blocks; G[k] collects block k
        n = X.shape[0]
        for k in range(a, b):
            for i in range(k * n // n_blocks, (k + 1) * n // n_blocks):
                grad_theta(X[i], theta, W[i], G[k])

    @njit(nogil=True)
    def backward_x(a, b, X, theta, W, dX):
        for i in range(a, b):
            grad_x(X[i], theta, W[i], dX[i])

    return {"observe": observe, "energy": energy, "sweeps_all": sweeps_all,
            "sweeps_single": sweeps_single, "sweeps_mala": sweeps_mala,
            "backward_theta": backward_theta, "backward_x": backward_x}


_POOL = None


def _in_threads(kernel, n, *args):
    """``kernel(a, b, *args)`` over ``[0, n)`` split in contiguous ranges, one per numba thread.

    The kernels are compiled with ``nogil=True`` and every item (chain, row, block) writes only
    its own outputs, so the split changes nothing in the results: they do not depend on the
    thread count. (Sequential kernels on a thread pool instead of ``parallel=True``: the
    parallel transform took 5-10x longer to compile, per user function.)
    """
    global _POOL
    import numba

    k = max(1, min(int(numba.get_num_threads()), n))
    if k == 1:
        kernel(0, n, *args)
        return
    if _POOL is None or _POOL._max_workers < k:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=k, thread_name_prefix="mme-compiled")
    edges = [n * i // k for i in range(k + 1)]
    futures = [_POOL.submit(kernel, edges[i], edges[i + 1], *args) for i in range(k)]
    for f in futures:
        f.result()


def _kernels_for(func, grad_theta, grad_x):
    key = (func, grad_theta, grad_x)
    k = _BY_FUNCS.get(key)
    if k is None:
        k = _Kernels(len(_BY_KEY) + 1, func, grad_theta, grad_x)
        _BY_FUNCS[key] = k
        _BY_KEY[k.key] = k
    return k


def kernels_of(spec):
    """The kernel set named by a :data:`COMPILED` spec row (the backends' dispatch)."""
    k = _BY_KEY.get(int(spec[0, 4]))
    if k is None:
        raise ValueError(f"no compiled observables registered under key {int(spec[0, 4])} in "
                         "this process")
    return k


def _first_line(exc):
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Failed in", "During:", "File ")):
            return line[:300]
    return text[:300] or type(exc).__name__


class CompiledObservables(FlatParameters):
    """Observables ``O(x; θ)`` computed by the user's compiled function (see :func:`compiled`).

    Attributes
    ----------
    func, grad_theta, grad_x : numba dispatchers (the gradients may be ``None``)
    n_observables : int
        ``n_outputs``.
    n_features : int or None
        ``d``, set from the data at the first :meth:`forward` when not given.
    theta : ndarray (p,)
        The parameters; assignment copies into the array (in-place updates work).
    trainable : bool
        Whether ``grad_theta`` was given (θ can be trained by :class:`~mme_numba.MinMaxEnt`).
    """

    def __init__(self, func, n_outputs, theta=None, grad_theta=None, grad_x=None,
                 n_features=None):
        from .._validation import check_param

        for name, f in (("func", func), ("grad_theta", grad_theta), ("grad_x", grad_x)):
            if (f is not None or name == "func") and not _is_compiled(f):
                raise TypeError(f"compiled: {name} must be a numba @njit function, got "
                                f"{f!r:.80}" + (" (decorate it with @numba.njit)"
                                                if callable(f) else ""))
        self.n_observables = int(check_param("n_outputs", n_outputs))
        n_features = check_param("n_features", n_features)
        self.n_features = None if n_features is None else int(n_features)
        if theta is None:
            theta = np.zeros(0)
        try:
            theta = np.array(theta, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"compiled: theta must be an array of numbers ({exc})") from None
        if not np.all(np.isfinite(theta)):
            raise ValueError("compiled: theta holds non-finite values (nan or inf)")
        self._theta = theta
        self.func, self.grad_theta, self.grad_x = func, grad_theta, grad_x
        self._kernels = _kernels_for(func, grad_theta, grad_x)
        self._probed = None
        if self.n_features is not None:
            self._probe(np.zeros(self.n_features))

    # -- parameters (theta / set_theta: FlatParameters) ----------------------------------
    @property
    def n_params(self):
        return self._theta.size

    @property
    def trainable(self):
        return self.grad_theta is not None

    # -- checks --------------------------------------------------------------------------
    def _probe(self, x):
        """Call each function once on ``x``: a wrong signature fails here, clearly."""
        d, m, p = x.shape[0], self.n_observables, self.n_params
        if self._probed == d:
            return
        x = np.ascontiguousarray(x, dtype=np.float64).copy()
        calls = [("func", self.func, f"func(x, theta, out) with x float64 ({d},), theta "
                  f"float64 ({p},), out float64 ({m},)", np.zeros(m))]
        if self.grad_theta is not None:
            calls.append(("grad_theta", self.grad_theta, f"grad_theta(x, theta, w, g) with "
                          f"w float64 ({m},), g float64 ({p},)", np.zeros(p)))
        if self.grad_x is not None:
            calls.append(("grad_x", self.grad_x, f"grad_x(x, theta, w, g) with w float64 "
                          f"({m},), g float64 ({d},)", np.zeros(d)))
        for name, f, how, buf in calls:
            args = (x, self._theta.copy(), buf) if name == "func" else \
                (x, self._theta.copy(), np.ones(m), buf)
            try:
                f(*args)
            except Exception as exc:
                raise TypeError(f"compiled: {name} {_name(f)} cannot be called as {how}: "
                                f"{_first_line(exc)}") from None
        self._probed = d

    def _check_X(self, X):
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"compiled: X must be 2-D (n_samples, n_features), got shape "
                             f"{X.shape}")
        if self.n_features is None:
            self.n_features = X.shape[1]
        elif X.shape[1] != self.n_features:
            raise ValueError(f"compiled: X has {X.shape[1]} features, the map expects "
                             f"{self.n_features}")
        self._probe(X[0] if len(X) else np.zeros(self.n_features))
        return X

    def _check_finite(self, values, X, what):
        bad = ~np.isfinite(values)
        if np.any(bad):
            i = int(np.flatnonzero(bad.reshape(len(X), -1).any(axis=1))[0])
            raise ValueError(f"compiled: {what} of {_name(self.func)} are not finite (nan or "
                             f"inf) at row {i}, x = {np.array2string(X[i], threshold=8)}")
        return values

    # -- the protocol --------------------------------------------------------------------
    def forward(self, X):
        """Observables ``(n, n_outputs)`` of the rows of ``X (n, d)``."""
        X = self._check_X(X)
        out = self._kernels.observe(X, self._theta, self.n_observables)
        return self._check_finite(out, X, "the observables")

    def backward(self, X, dO):
        """Gradient of ``sum(dO * O(X; θ))``: ``(dθ (p,), dX (n, d))``.

        ``dθ`` needs ``grad_theta`` and ``dX`` needs ``grad_x`` (``None`` without it).
        """
        X = self._check_X(X)
        dO = np.ascontiguousarray(dO, dtype=np.float64)
        if dO.shape != (len(X), self.n_observables):
            raise ValueError(f"compiled: dO must have shape {(len(X), self.n_observables)}, "
                             f"got {dO.shape}")
        if self.grad_theta is None:
            raise ValueError(f"compiled: {_name(self.func)} has no grad_theta, so its θ is "
                             "fixed: fit it with MaxEnt, or pass grad_theta= to "
                             "observables.compiled to train θ with MinMaxEnt")
        g = self._kernels.backward_theta(X, self._theta, dO)
        if not np.all(np.isfinite(g)):
            raise ValueError(f"compiled: grad_theta {_name(self.grad_theta)} wrote non-finite "
                             "values (nan or inf)")
        dX = None if self.grad_x is None else self._kernels.backward_x(X, self._theta, dO)
        return g, dX

    def describe(self):
        """One spec row ``[COMPILED, d, n_outputs, 0, key, 0, 0, 0]``."""
        if self.n_features is None:
            raise ValueError("compiled: n_features is unknown until the map sees data")
        spec = np.zeros((1, SPEC_WIDTH), dtype=np.int64)
        spec[0, :5] = (COMPILED, self.n_features, self.n_observables, 0, self._kernels.key)
        return spec

    def kernel_params(self):
        return self._theta

    def get_config(self):
        """What a file can hold: sizes and the functions' names (not the functions)."""
        return {"type": "Compiled", "func": _name(self.func), "n_outputs": self.n_observables,
                "n_features": self.n_features, "n_params": self.n_params,
                "grad_theta": _name(self.grad_theta), "grad_x": _name(self.grad_x)}

    @classmethod
    def from_config(cls, cfg):
        raise ValueError(f"the observables are the compiled function {cfg.get('func')!r} "
                         f"(n_outputs={cfg.get('n_outputs')}), which a file cannot hold: pass "
                         "them back, e.g. mme_numba.load(path, observables="
                         "mme_numba.observables.compiled(func, n_outputs, ...))")

    def copy(self):
        new = CompiledObservables.__new__(CompiledObservables)
        new.__dict__.update(self.__dict__)
        new._theta = self._theta.copy()
        return new

    def __deepcopy__(self, memo):
        return self.copy()   # the functions are shared, never copied

    def __copy__(self):
        return self.copy()

    def __reduce__(self):
        raise TypeError("compiled observables hold compiled functions and cannot be pickled; "
                        "save the model with model.save (θ is stored) and load it with "
                        "mme_numba.load(path, observables=obs)")

    def __repr__(self):
        return (f"compiled({_name(self.func)}, n_outputs={self.n_observables}, "
                f"n_params={self.n_params}, n_features={self.n_features})")


def compiled(func, n_outputs, theta=None, grad_theta=None, grad_x=None, n_features=None):
    """Observables from the user's compiled functions (see the module docstring).

    Parameters
    ----------
    func : numba @njit function
        ``func(x, theta, out)`` writes the ``n_outputs`` observables of one configuration
        ``x (d,)`` into ``out`` (zeroed before each call).
    n_outputs : int
        Number of observables ``m``.
    theta : array_like (p,), optional
        Parameters passed to every call (default: none).
    grad_theta : numba @njit function, optional
        ``grad_theta(x, theta, w, g)`` adds ``∂(w·O(x; θ))/∂θ`` into ``g (p,)``. Without it θ
        stays fixed (:class:`~mme_numba.MaxEnt` only).
    grad_x : numba @njit function, optional
        ``grad_x(x, theta, w, g)`` adds ``∂(w·O(x; θ))/∂x`` into ``g (d,)``; needed by
        ``move="mala"``.
    n_features : int, optional
        ``d``; taken from the data at the first fit when omitted.

    Returns
    -------
    CompiledObservables

    Raises
    ------
    TypeError
        A function that is not compiled with numba, or (once ``d`` is known) that cannot be
        called with the signature above.
    """
    return CompiledObservables(func, n_outputs, theta, grad_theta, grad_x, n_features)
