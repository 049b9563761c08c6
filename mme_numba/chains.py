"""Persistent Markov chains as one value: :class:`Chains`.

A :class:`Chains` holds everything the sampler carries from one run to the next: positions,
per-chain random streams, step sizes, the hotter replicas of replica exchange (``betas``),
the step ladder's turn and switches, the adapted sweep count and whether burn-in is done.
It runs sweeps through a backend (:meth:`Chains.run`, what is sampled given as a
:class:`Target`), adapts its step sizes (:meth:`Chains.adapt_step`), its sweep count
(:meth:`Chains.adapt_sweeps`) and its tempering ladder, splits itself across MPI ranks and
gathers the ranks' rows back, and turns into and back from the arrays a checkpoint holds.
The estimators hold one and never touch the kernels themselves.
"""

from typing import NamedTuple

import numpy as np

from . import parallel, settings
from .backends import proposals_per_sweep
from .settings import (BURN_IN_BLOCK, LADDER_FACTOR, LADDER_MIN_ACCEPTANCE, LADDER_RETRY,
                       LADDER_RUNGS, LAG_HIGH, LAG_LOW, SWEEPS_GROW, SWEEPS_MAX, SWEEPS_MIN,
                       SWEEPS_SHRINK)
from .tempering import Replicas, adapt_ladder, resolve_ladder

__all__ = ["Chains", "Target", "as_dtype"]


def as_dtype(x, lo, hi, dtype):
    """``x`` as a C-contiguous array of ``dtype`` inside the kernels' box for that type.

    The same array when it already has ``dtype``. Otherwise (float64 chains of a model now
    sampled in float32, or a checkpoint's float64 copy) rounded to ``dtype`` and clipped to
    the float32 box inside ``[lo, hi]`` (``kernels.moves.box.float_box``), which moves a state
    by at most one float32 rounding.
    """
    if x.dtype == dtype:
        return np.ascontiguousarray(x)
    from .kernels.moves.box import float_box

    flo, fhi = float_box(lo, hi, dtype)
    return np.ascontiguousarray(np.clip(x.astype(dtype), flo.astype(dtype), fhi.astype(dtype)))


class Target(NamedTuple):
    """What the chains sample: ``exp(-λ·O(x; θ) - field)`` on the box ``[lo, hi]``.

    ``spec``/``params`` describe the observables for the kernels, ``field`` is the second
    energy term ``(spec2, params2, lam2)`` (``backends.NO_FIELD`` for none), ``move`` and
    ``boundary`` the proposal, ``comm`` the MPI communicator (or ``None``).
    """

    backend: object
    spec: np.ndarray
    params: np.ndarray
    lam: np.ndarray
    field: tuple
    move: str
    boundary: str
    lo: np.ndarray
    hi: np.ndarray
    comm: object = None

    @property
    def dtype(self):
        """The chains' dtype while sampling: the backend's arithmetic (float64 or float32)."""
        return getattr(self.backend, "dtype", np.float64)

    def energy(self, x, lam=None, params=None, field=None):
        """Energies of the rows ``x`` (optionally at other ``λ``, ``θ`` or field)."""
        return self.backend.energy(self.spec, self.params if params is None else params,
                                   self.lam if lam is None else lam, x,
                                   self.field if field is None else field)


class Chains:
    """Persistent chains (see the module docstring).

    Attributes
    ----------
    x : float64 or float32 (n_chains, d)
        Positions of the chains at ``β = 1``; a run leaves them in the dtype of its
        :class:`Target` (:func:`as_dtype`).
    rng_state : uint64 (n_chains, 4)
        Their Metropolis random streams.
    step : float64 (n_chains,)
        Gaussian proposal standard deviations.
    replicas : Replicas or None
        The hotter levels (``betas``).
    burned_in : bool
    ladder_turn, ladder_on, auto_sweeps :
        The step ladder's turn and the switches of its wide rungs; the ``sweeps="auto"`` count.
    start_energy : float64 (n_chains,)
        Energies before the last :meth:`run` (the lag measure of ``sweeps="auto"``).
    acceptance : float64 (n_chains,)
        Accepted fraction per chain of the last :func:`mme_numba.core.metropolis` call.
    """

    #: The ``sweeps="auto"`` count before any adaptation.
    auto_sweeps = SWEEPS_MIN

    def __init__(self, x, rng_state, step, replicas=None, *, burned_in=False):
        self.x = x
        self.rng_state = rng_state
        self.step = step
        self.replicas = replicas
        self.burned_in = bool(burned_in)
        self.ladder_turn = 0
        self.ladder_on = np.ones(LADDER_RUNGS, dtype=bool)
        self.start_energy = None
        self.end_energy_local = None
        self.acceptance = np.zeros(len(x))

    @classmethod
    def start(cls, lo, hi, n_chains, step, betas, rng):
        """Chains uniform on the box, streams and replicas all drawn from ``rng``."""
        from .kernels import seed_states

        chain_seed = int(rng.integers(2**63 - 1))
        rng_state = seed_states(chain_seed, n_chains)
        x = lo + (hi - lo) * rng.random((n_chains, len(lo)))
        chains = cls(x, rng_state, np.full(n_chains, float(step)))
        chains.sync_replicas(betas, lo, hi, rng)
        return chains

    def copy(self):
        new = Chains(self.x.copy(), self.rng_state.copy(), self.step.copy(),
                     None if self.replicas is None else self.replicas.copy(),
                     burned_in=self.burned_in)
        new.set_control_state(self.control_state())
        return new

    # ------------------------------------------------------------------ save / load
    def control_state(self):
        """The adaptation state as plain numbers (a checkpoint's ``controls``)."""
        return {"ladder_turn": self.ladder_turn, "ladder_on": self.ladder_on.tolist(),
                "auto_sweeps": self.auto_sweeps}

    def set_control_state(self, state):
        self.ladder_turn = int(state["ladder_turn"])
        self.ladder_on = np.asarray(state["ladder_on"], dtype=bool)
        self.auto_sweeps = int(state.get("auto_sweeps", SWEEPS_MIN))

    @classmethod
    def from_arrays(cls, arrays, replicas=None, *, burned_in=False):
        """Chains from the arrays of :meth:`arrays` (checked by the caller; the replicas
        rebuilt from theirs, the adaptation state set by :meth:`set_control_state`)."""
        return cls(arrays["chains"], arrays["rng_state"], arrays["step"], replicas,
                   burned_in=burned_in)

    def arrays(self):
        """The arrays a checkpoint stores (replicas' included)."""
        out = {"chains": self.x, "rng_state": self.rng_state, "step": self.step}
        if self.replicas is not None:
            out.update(self.replicas.arrays())
        return out

    # ------------------------------------------------------------------ MPI
    def split(self, comm):
        """``(start, stop)`` of the chains this rank sweeps."""
        return parallel.chain_bounds(len(self.x), comm)

    @staticmethod
    def gather(local, comm):
        """Every rank's rows of ``local``, in rank order, on every rank."""
        return parallel.gather_rows(local, comm)

    # ------------------------------------------------------------------ running
    def sync_replicas(self, betas, lo, hi, rng):
        """Start (or drop) the hotter levels when ``betas`` changed."""
        rep = self.replicas
        ladder, adaptive = resolve_ladder(betas)
        if ladder is None:
            self.replicas = None
        elif rep is None or rep.adaptive != adaptive or len(rep.betas) != len(ladder) or (
                not adaptive and not np.array_equal(rep.betas, ladder)):
            self.replicas = Replicas.start(ladder, adaptive, lo, hi, len(self.x), rng)

    def run(self, t, n_sweeps, ladder):
        """Advance every chain ``n_sweeps`` sweeps at ``t``; returns acceptance at ``β = 1``.

        With replicas every sweep of the model's chains is followed by one sweep of each
        hotter level and a round of neighbour swaps. ``ladder``: half the chains take the
        wide steps of the step ladder (:meth:`ladder_rungs`).
        """
        if self.replicas is None:
            return self._run_levels(t, n_sweeps, ladder)
        k = len(self.replicas.betas)
        accepted = np.zeros((len(self.x), k - 1), dtype=np.int64)
        proposed = np.zeros(k - 1)
        acc, start = [], None
        for _ in range(int(n_sweeps)):
            acc.append(self._tempered_sweep(t, ladder, accepted, proposed))
            start = self.start_energy if start is None else start
        self.start_energy = start
        with np.errstate(invalid="ignore"):
            self.replicas.swap_acceptance = accepted.sum(axis=0) / proposed
        return np.mean(acc, axis=0)

    def _tempered_sweep(self, t, ladder, accepted, proposed):
        """One sweep of every level, then one round of swaps (even or odd pairs in turn)."""
        rep = self.replicas
        acc = self._run_levels(t, 1, ladder)
        lo, hi, lam = t.lo, t.hi, t.lam
        spec2, params2, lam2 = t.field
        a, b = self.split(t.comm)
        K = len(rep.betas)
        x = np.empty((K, b - a, self.x.shape[1]), self.x.dtype)
        H = np.empty((K, b - a))
        x[0] = self.x[a:b]
        H[0] = self.end_energy_local       # the sweep carried it: no second energy pass
        cap = float(np.max(hi - lo))
        new_rng = np.empty_like(rep.rng[:, a:b])
        for r in range(1, K):
            beta = float(rep.betas[r])
            field = (spec2, params2, beta * lam2)
            xr = as_dtype(rep.x[r - 1, a:b], lo, hi, t.dtype)
            rng_r = np.ascontiguousarray(rep.rng[r - 1, a:b])
            e = np.ascontiguousarray(t.energy(xr, lam=beta * lam, field=field), dtype=xr.dtype)
            steps = np.ascontiguousarray(np.minimum(self.step[a:b] / np.sqrt(beta), cap))
            t.backend.sweep(t.spec, t.params, beta * lam, field, xr, e, lo, hi, steps, 1,
                            t.move, t.boundary, rng_r, np.zeros(b - a, np.int64))
            x[r], H[r], new_rng[r - 1] = xr, e / beta, rng_r
        swap_rng = np.ascontiguousarray(rep.swap_rng[a:b])
        local = np.zeros((b - a, K - 1), dtype=np.int64)
        t.backend.swap(x, H, rep.betas, swap_rng, rep.turn % 2, local)
        proposed[rep.turn % 2::2] += len(self.x)
        levels = [self.gather(x[r], t.comm) for r in range(K)]
        # one statement: Ctrl-C cannot leave the chains and their streams out of step
        (self.x, rep.x, rep.rng, rep.swap_rng, rep.turn) = (
            levels[0], np.stack(levels[1:]),
            np.stack([self.gather(new_rng[r], t.comm) for r in range(K - 1)]),
            self.gather(swap_rng, t.comm), rep.turn + 1)
        accepted += self.gather(local, t.comm)
        return acc

    def _run_levels(self, t, n_sweeps, ladder):
        """Advance the ``β = 1`` chains; acceptance of the chains on the adapted step, once
        per segment. Under MPI each rank sweeps its slice and the slices are gathered."""
        a, b = self.split(t.comm)
        rung = self.ladder_rungs(t.lo, t.hi) if ladder else None
        segments = [(n_sweeps, rung)]
        if rung is not None and np.any(rung) and n_sweeps >= 2:
            # two halves with the rungs swapped: every chain takes wide and local steps in
            # every run (one long sample() run left half the chains without wide steps)
            segments = [(n_sweeps // 2, rung), (n_sweeps - n_sweeps // 2,
                                                self.ladder_rungs(t.lo, t.hi))]
        local, start = [], None
        for sweeps, rung in segments:
            x = as_dtype(self.x[a:b], t.lo, t.hi, t.dtype)
            rng_state = np.ascontiguousarray(self.rng_state[a:b])
            energy = np.ascontiguousarray(t.energy(x), dtype=x.dtype)
            if start is None:
                start = energy.copy()   # before the run: the lag measure of sweeps="auto"
            accepted = np.zeros(b - a, dtype=np.int64)
            steps = self.step if rung is None else \
                self.step * self.ladder_multipliers(t.lo, t.hi)[rung]
            t.backend.sweep(t.spec, t.params, t.lam, t.field, x, energy, t.lo, t.hi,
                            np.ascontiguousarray(steps[a:b]), sweeps, t.move, t.boundary,
                            rng_state, accepted)
            # one statement: a KeyboardInterrupt cannot land between the two assignments
            self.x, self.rng_state = self.gather(x, t.comm), self.gather(rng_state, t.comm)
            accepted = self.gather(accepted, t.comm)
            acc = accepted / float(sweeps * proposals_per_sweep(t.move, self.x.shape[1]))
            if rung is not None:
                self._ladder_update(rung, acc)
                acc = acc[rung == 0]
            local.append(acc)
        self.start_energy = self.gather(start, t.comm)
        self.end_energy_local = energy     # this rank's chains after the run (for swaps)
        return np.concatenate(local)

    def burn_in(self, t, n_sweeps, ladder, target_acceptance=None):
        """Initial sweeps in blocks, adapting the step after each block when
        ``target_acceptance`` is given."""
        remaining = int(n_sweeps)
        while remaining > 0:
            block = min(BURN_IN_BLOCK, remaining)
            acc = self.run(t, block, ladder)
            if target_acceptance is not None:
                self.adapt_step(float(acc.mean()), target_acceptance, t.lo, t.hi)
            remaining -= block
        self.burned_in = True

    def draw(self, t, n, sweeps, ladder):
        """``n`` states: rounds of ``sweeps`` sweeps of every chain, each round's states taken.

        Runs go in blocks of at most ``SWEEP_BLOCK`` sweeps (the same results): Ctrl-C between
        blocks leaves consistent chains, every run storing chains and streams together.
        """
        out = np.empty((n, self.x.shape[1]), t.dtype)     # the chains' dtype
        k = len(self.x)
        for start in range(0, n, k):
            for done in range(0, sweeps, settings.SWEEP_BLOCK):
                self.run(t, min(settings.SWEEP_BLOCK, sweeps - done), ladder)
            out[start:start + k] = self.x[:n - start]
        return out

    # ------------------------------------------------------------------ adaptation
    def adapt_step(self, acceptance, target_acceptance, lo, hi):
        """Robbins–Monro update of log step toward ``target_acceptance`` (one for all)."""
        gain = np.log(max(acceptance, 1e-3) / target_acceptance)
        self.step = np.minimum(self.step * np.exp(gain), float(np.max(hi - lo)))

    def adapt_sweeps(self, before, after, auto):
        """Correlation across chains of the energies before and after an epoch's sweeps (at
        the same parameters); with ``auto`` it grows or shrinks the sweep count."""
        before, after = np.asarray(before), np.asarray(after)
        if len(before) < 3 or np.std(before) == 0 or np.std(after) == 0:
            return None
        rho = float(np.corrcoef(before, after)[0, 1])
        if auto and np.isfinite(rho):
            n = self.auto_sweeps
            if rho > LAG_HIGH:
                n = min(SWEEPS_MAX, int(np.ceil(SWEEPS_GROW * n)))
            elif rho < LAG_LOW:
                n = max(SWEEPS_MIN, int(np.floor(SWEEPS_SHRINK * n)))
            self.auto_sweeps = n
        return rho

    def adapt_ladder(self):
        """Move an adaptive tempering ladder toward equal swap rates."""
        rep = self.replicas
        if rep is not None and rep.adaptive:
            rep.betas = adapt_ladder(rep.betas, rep.swap_acceptance)

    def ladder_multipliers(self, lo, hi):
        """Step multipliers of the rungs: 1, 4, 16, … up to half the widest box side."""
        cap = 0.5 * float(np.max(hi - lo)) / float(self.step[0])
        mult = [1.0]
        while len(mult) < LADDER_RUNGS and mult[-1] * LADDER_FACTOR < cap:
            mult.append(mult[-1] * LADDER_FACTOR)
        if len(mult) < LADDER_RUNGS and cap > mult[-1] * 1.5:
            mult.append(cap)
        return np.asarray(mult)

    def ladder_rungs(self, lo, hi):
        """Rung of each chain for this run.

        Half the chains (alternating each run) use the adapted step, the other half wider
        steps up to half the box: a Metropolis kernel with any fixed step leaves the model
        invariant, so each chain still samples it, and the wide steps carry chains between
        modes that the adapted step, tuned for acceptance, does not cross (a bimodal target
        with modes 8σ apart was barely crossed at step 2σ).
        """
        k = len(self.ladder_multipliers(lo, hi))
        if len(self.ladder_on) != LADDER_RUNGS or self.ladder_turn % LADDER_RETRY == 0:
            self.ladder_on = np.ones(LADDER_RUNGS, dtype=bool)
        wide = [j for j in range(1, k) if self.ladder_on[j]]
        n = len(self.x)
        rung = np.zeros(n, dtype=np.int64)
        if wide:
            c = np.arange(n) + self.ladder_turn
            odd = c % 2 == 1
            rung[odd] = np.asarray(wide)[(c[odd] // 2) % len(wide)]
        self.ladder_turn += 1
        return rung

    def _ladder_update(self, rung, acc):
        on = self.ladder_on.copy()
        for j in range(1, LADDER_RUNGS):
            sel = rung == j
            if np.any(sel) and float(acc[sel].mean()) < LADDER_MIN_ACCEPTANCE:
                on[j] = False
        self.ladder_on = on
