"""Systematic-scan single-coordinate Metropolis, chains in lock-step, with incremental updates.

One sweep visits the coordinates ``j = 0, 1, ..., d - 1`` in order. At coordinate ``j`` every
chain ``c`` proposes ``y_j = x_j + step[c] * xi`` (all other coordinates kept), applies the
boundary rule and accepts with the Metropolis rule. Each update leaves ``exp(-H)`` invariant
(it is a reversible Metropolis step on one coordinate whose choice does not depend on the
state), so a fixed-order composition of them does too: the standard systematic-scan sampler.

Why a second single-coordinate sampler next to the random-scan one of
:mod:`~mme_numba.kernels.moves.single`: with the coordinate
the same for every chain at every step, a block of ``lanes`` chains can run in lock-step
through the *incremental* update as well. Every loop below runs over lanes innermost with
the weights broadcast, so LLVM vectorizes it, and for conv observables the energy change of a
one-pixel move costs only the multiply-adds of the pixel's receptive field:

* **CONV2D prefix** (``spec`` starting with CONV2D, as in ``paper_cnn``): each chain keeps
  the output of every row of the prefix (conv pre-activations and activations, stored
  channel-last). A move of pixel ``(c, y, x)`` by ``delta`` adds ``W[:, c, ., .] delta`` to the
  ``k x k`` window of the first conv output, re-applies the activation there, adds the changed
  activations' contributions to the next conv output over the window grown by ``k // 2``, and
  so on. The new values go to a proposal buffer; accepted lanes take them over (a masked
  store, so a rejected lane keeps its state bit for bit).
* **Closing DENSE folded into the energy**: when a DENSE row ends the network,
  ``lam . (W a + b) = (W^T lam) . a + lam . b``, so the energy change is one dot product of
  ``v = W^T lam`` with the changed activations (``paper_cnn``: 400 multiply-adds instead of
  6400). A conv-only network folds ``lam`` itself. The activations under ``v`` then serve
  only the energy, so each chain keeps one number per image position, ``v[p] . a[p]``,
  instead of the activations (``paper_cnn``: 64 rows instead of 1024, which were a third of
  the kept state and the largest rows a proposal would read, write and commit). When rows follow
  the DENSE (a classifier field), its outputs are kept and updated, and the remaining rows
  run in full.
* **DENSE first row**: ``z = W x + b`` is kept and updated by one column of ``W``.
* Anything else is evaluated in full (lock-step) for every proposal.

``incremental=False`` evaluates every proposal in full; the chain is the same up to the
rounding of the energies (tested step for step).

Draw order per chain and coordinate (replayed by the full path and the CUDA kernels):
``u1, u2`` for the normal deviate ``sqrt(-2 log(1 - u1)) cos(2 pi u2)`` (with
:mod:`~mme_numba.kernels.fastmath`, as for all-coordinate moves), the boundary rule, then, if
the proposal is kept, one ``u`` for ``log(u) < H(x) - H(y)``. Every lane performs exactly the
arithmetic of a one-lane block, so results are bit-identical for any number of lanes and
threads. Every call starts from a full evaluation of its chains (the ``energy`` passed in is
not read), and returns the energies it carried through the incremental updates, so rounding
never accumulates beyond one call (tested: within 1e-10 of a fresh evaluation).
"""

import math
import threading

import numba
import numpy as np
from numba import njit, prange

from ... import settings
from ..fastmath import cos_2pi as _cos_2pi
from ..fastmath import log as _log
from ..interpret import (_apply_row_ls, _dot_ls, _elementwise_ls, _max_width, _tanh,
                         aligned_empty, dynamic_schedule, empty_rows, forward_lockstep)
from ..rng import uniform
from ...spec import CONV2D, DENSE, TANH
from .box import _propose, chain_args, load_block, store_block
from .single import _plan, _transposed_weights

__all__ = ["scan_sweeps", "term_plan", "release_scratch", "TERM_FULL", "TERM_DENSE",
           "TERM_CONV"]

TERM_FULL = 0   # full lock-step forward per proposal
TERM_DENSE = 1  # first row DENSE: its pre-activation kept and updated
TERM_CONV = 2   # CONV2D prefix kept and updated, closed by a folded or kept DENSE


# --- planning (Python) -----------------------------------------------------------------

def term_plan(spec, params, lam, incremental=True):
    """How :func:`scan_sweeps` evaluates one energy term ``lam . O(x)``.

    Parameters
    ----------
    spec, params, lam : ndarrays
        The term (``spec`` with zero rows: absent).
    incremental : bool
        ``False`` always gives ``TERM_FULL``.

    Returns
    -------
    kind : int
        ``TERM_FULL``, ``TERM_DENSE`` or ``TERM_CONV``.
    n_pre : int
        Rows whose outputs each chain keeps (``TERM_CONV``); the rows after them run in full,
        except a folded closing DENSE.
    fold : bool
        ``TERM_CONV`` only: the energy change is ``v . (change of row n_pre - 1)``.
    tw, toff : ndarrays
        The kept rows' weights re-laid channel-last (``images._transposed_weights``).
    v : ndarray
        The folded energy vector, channel-last (empty unless ``fold``).
    """
    dtype = np.asarray(params).dtype      # the chains' (float64 or float32)
    empty = np.zeros(0, dtype)
    none = (TERM_FULL, 0, False, empty, np.zeros(1, np.int64), empty)
    spec = np.asarray(spec)
    if spec.shape[0] == 0 or not incremental:
        return none
    if spec[0, 0] == DENSE:
        return (TERM_DENSE, 1, False) + none[3:]
    if spec[0, 0] != CONV2D:
        return none
    n_inc, aoff, geo = (np.asarray(a) for a in _plan(spec))
    n_inc = int(n_inc)
    n_rows = spec.shape[0]
    closes = spec[n_inc - 1, 0] == DENSE
    tw, toff = _transposed_weights(spec, params)
    lam = np.asarray(lam, np.float64)
    if n_inc == n_rows and closes:
        # lam . (W a + b) with W (n_out, C, H, W): v = W^T lam, re-laid (H, W, C); for float32
        # chains summed in float64 and rounded once
        code, n_in, n_out, off = (int(s) for s in spec[n_inc - 1, :4])
        c, h, w = (int(g) for g in geo[n_inc - 2])
        W = np.asarray(params[off:off + n_out * n_in], np.float64).reshape(n_out, c, h, w)
        v = np.tensordot(lam, W, axes=1).transpose(1, 2, 0).ravel()
        return TERM_CONV, n_inc - 1, True, tw, toff, np.ascontiguousarray(v, dtype)
    if n_inc == n_rows:
        # conv-only: O is the last row's output, channel-major
        c, h, w = (int(g) for g in geo[n_inc - 1])
        v = lam.reshape(c, h, w).transpose(1, 2, 0).ravel()
        return TERM_CONV, n_inc, True, tw, toff, np.ascontiguousarray(v, dtype)
    if closes:
        return TERM_CONV, n_inc, False, tw, toff, empty
    return none


# --- small lock-step helpers -------------------------------------------------------------

@njit(cache=True)
def _partial(spec, n_pre, fold):
    """Whether a folded TERM_CONV term keeps per-position energies for its last row.

    With ``fold`` and a last kept row that is elementwise (``CONV2D, TANH`` in
    ``paper_cnn``), that row's values serve only the energy, so each image position keeps
    ``s[p] = sum_c v[p, c] a[p, c]`` (one row instead of ``c``) and a proposal's energy change
    is ``sum_p (s_new[p] - s[p])`` over the window: the largest rows of the window are
    neither read, written nor committed.
    """
    return fold and n_pre > 0 and spec[n_pre - 1, 0] != CONV2D


@njit(cache=True)
def _copy_rows(src, dst, r0, r1):
    n_lanes = src.shape[1]
    for r in range(r0, r1):
        s = src[r]
        t = dst[r]
        for lane in range(n_lanes):
            t[lane] = s[lane]


@njit(cache=True)
def _select_rows(acc, new, kept, r0, r1):
    # kept[r] = new[r] where the lane accepted (a masked store: rejected lanes keep their bits,
    # and the kept rows are not read)
    n_lanes = acc.shape[0]
    for r in range(r0, r1):
        s = new[r]
        t = kept[r]
        for lane in range(n_lanes):
            if acc[lane]:
                t[lane] = s[lane]


@njit(cache=True, fastmath={"contract"})
def _taps(tw, w0, wstep, c_in, c_out, D, dbase, N, o):
    """``N[o + co] += sum_ci tw[w0 + ci * wstep + co] * D[dbase + ci]`` for every lane.

    Register blocking: four output channels by four input channels per pass (one loaded
    delta serves four outputs, one output load/store serves four inputs); the sum runs over
    ``ci`` left to right in blocks of four.
    """
    n_lanes = N.shape[1]
    co = 0
    while co + 4 <= c_out:
        n0, n1, n2, n3 = N[o + co], N[o + co + 1], N[o + co + 2], N[o + co + 3]
        ci = 0
        while ci + 4 <= c_in:
            a0, a1, a2, a3 = D[dbase + ci], D[dbase + ci + 1], D[dbase + ci + 2], D[dbase + ci + 3]
            p = w0 + ci * wstep + co
            u0, v0, s0, t0 = tw[p], tw[p + 1], tw[p + 2], tw[p + 3]
            p += wstep
            u1, v1, s1, t1 = tw[p], tw[p + 1], tw[p + 2], tw[p + 3]
            p += wstep
            u2, v2, s2, t2 = tw[p], tw[p + 1], tw[p + 2], tw[p + 3]
            p += wstep
            u3, v3, s3, t3 = tw[p], tw[p + 1], tw[p + 2], tw[p + 3]
            for lane in range(n_lanes):
                x0 = a0[lane]
                x1 = a1[lane]
                x2 = a2[lane]
                x3 = a3[lane]
                n0[lane] = n0[lane] + u0 * x0 + u1 * x1 + u2 * x2 + u3 * x3
                n1[lane] = n1[lane] + v0 * x0 + v1 * x1 + v2 * x2 + v3 * x3
                n2[lane] = n2[lane] + s0 * x0 + s1 * x1 + s2 * x2 + s3 * x3
                n3[lane] = n3[lane] + t0 * x0 + t1 * x1 + t2 * x2 + t3 * x3
            ci += 4
        while ci < c_in:
            a = D[dbase + ci]
            p = w0 + ci * wstep + co
            u, v, s, t = tw[p], tw[p + 1], tw[p + 2], tw[p + 3]
            for lane in range(n_lanes):
                xv = a[lane]
                n0[lane] += u * xv
                n1[lane] += v * xv
                n2[lane] += s * xv
                n3[lane] += t * xv
            ci += 1
        co += 4
    while co < c_out:
        nr = N[o + co]
        for ci in range(c_in):
            a = D[dbase + ci]
            u = tw[w0 + ci * wstep + co]
            for lane in range(n_lanes):
                nr[lane] += u * a[lane]
        co += 1


# --- one energy term ----------------------------------------------------------------------
# A term's kept state is A (rows, lanes); a proposal writes into N (same layout, only the
# touched window valid) the changes of conv/DENSE outputs and the new activations; commit
# takes them over for the accepted lanes.

@njit(cache=True)
def _conv_rebuild(spec, params, lam, n_pre, tw, toff, v, aoff, geo, xb, A, D, e):
    """:func:`_term_rebuild` for a folded TERM_CONV term, in the kept layout directly.

    Each CONV2D row starts from its bias and adds every input position's contributions
    through :func:`_taps` (the proposals' multiply-adds, at their speed), each elementwise
    row is applied to the kept rows, and ``e = v . (last kept row) + lam . b`` with ``b``
    the folded DENSE row's bias (none for a conv-only network). ``D`` gathers an image
    position's input channels when there are several.
    """
    h = spec[0, 5]
    w = spec[0, 6]
    hw = h * w
    n_lanes = A.shape[1]
    c_cur = spec[0, 1] // hw
    a_in = 0
    partial = _partial(spec, n_pre, True)
    for r in range(n_pre):
        code = spec[r, 0]
        c_out = geo[r, 0]
        a_out = aoff[r]
        if code != CONV2D and partial and r == n_pre - 1:
            # per-position energies s[p] = v[p] . a[p]; the row itself is not kept
            for p in range(hw):
                _elementwise_ls(code, A, a_in + p * c_out, D, 0, c_out)
                s = A[a_out + p]
                for lane in range(n_lanes):
                    s[lane] = 0.0
                for ch in range(c_out):
                    ve = v[p * c_out + ch]
                    dr = D[ch]
                    for lane in range(n_lanes):
                        s[lane] += ve * dr[lane]
            a_in = a_out
            continue
        if code != CONV2D:
            _elementwise_ls(code, A, a_in, A, a_out, hw * c_out)
            a_in = a_out
            continue
        k = spec[r, 7]
        pad = k // 2
        b_off = spec[r, 3] + c_out * c_cur * k * k
        for p in range(hw):
            for co in range(c_out):
                b = params[b_off + co]
                z = A[a_out + p * c_out + co]
                for lane in range(n_lanes):
                    z[lane] = b
        for iy in range(h):
            for ix in range(w):
                p = iy * w + ix
                if r > 0:
                    src, base = A, a_in + p * c_cur
                elif c_cur == 1:
                    src, base = xb, p
                else:  # channel-major x: gather the position's channels
                    for ci in range(c_cur):
                        xr = xb[ci * hw + p]
                        dr = D[ci]
                        for lane in range(n_lanes):
                            dr[lane] = xr[lane]
                    src, base = D, 0
                for oy in range(max(0, iy - pad), min(h, iy + pad + 1)):
                    for ox in range(max(0, ix - pad), min(w, ix + pad + 1)):
                        wt = toff[r] + ((iy - oy + pad) * k + ix - ox + pad) * c_out
                        _taps(tw, wt, k * k * c_out, c_cur, c_out, src, base, A,
                              a_out + (oy * w + ox) * c_out)
        a_in = a_out
        c_cur = c_out
    e0 = 0.0
    if n_pre < spec.shape[0]:  # the folded closing DENSE's bias
        n_out = spec[n_pre, 2]
        b_off = spec[n_pre, 3] + n_out * spec[n_pre, 1]
        if spec[n_pre, 4] == 1:
            for i in range(n_out):
                e0 += lam[i] * params[b_off + i]
    for lane in range(n_lanes):
        e[lane] = e0
    if partial:
        for p in range(hw):
            s = A[a_in + p]
            for lane in range(n_lanes):
                e[lane] += s[lane]
        return
    for i in range(hw * c_cur):
        ve = v[i]
        a = A[a_in + i]
        for lane in range(n_lanes):
            e[lane] += ve * a[lane]


@njit(cache=True)
def _term_rebuild(kind, n_pre, fold, spec, params, lam, tw, toff, v, aoff, geo, xb, A, wa, wb,
                  tmp, D, e):
    """Full forward of every lane from ``xb``: fills the kept rows ``A`` and ``e = lam . O``.

    ``aoff, geo``: the term's ``images._plan``, computed once per block by the caller. A
    folded TERM_CONV term is rebuilt by :func:`_conv_rebuild`, the others row by row.
    """
    if spec.shape[0] == 0:
        for lane in range(e.shape[0]):
            e[lane] = 0.0
        return
    if kind == TERM_CONV and fold:
        _conv_rebuild(spec, params, lam, n_pre, tw, toff, v, aoff, geo, xb, A, D, e)
        return
    h = spec[0, 5]
    w = spec[0, 6]
    src = xb
    use_a = True
    for r in range(spec.shape[0]):
        dst = wa if use_a else wb
        _apply_row_ls(spec[r], params, src, dst, tmp)
        if kind == TERM_DENSE and r == 0:
            _copy_rows(dst, A, 0, spec[0, 2])
        elif kind == TERM_CONV and r < n_pre:
            c = geo[r, 0]
            a = aoff[r]
            if spec[r, 0] == DENSE:
                for i in range(c):
                    A[a + i, :] = dst[i]
            else:
                hw = h * w
                for ch in range(c):
                    for p in range(hw):
                        A[a + p * c + ch, :] = dst[ch * hw + p]
        src = dst
        use_a = not use_a
    _dot_ls(lam, src, e)


@njit(cache=True, error_model="numpy")
def _tanh_stage_change(a_z, a_t, A, N, w, r0, r1, q0, q1, c, D, fold, v, e_acc):
    """:func:`_stage_change` for a conv stage ``CONV2D, TANH`` (the paper's), fused.

    One pass per window entry: the new pre-activation ``z = A + N`` into ``N``, then either
    ``t = tanh(z)`` into ``N`` and ``t - A`` into ``D``, or (``fold``, see :func:`_partial`)
    ``v t`` into the position's new energy ``s`` in ``N`` and ``s - A`` into ``e_acc``. The
    same operations in the same order as the general path, without its intermediate rows.
    """
    n_lanes = A.shape[1]
    n_chunk = (q1 - q0) * c
    for iy in range(r0, r1):
        e0 = (iy * w + q0) * c
        base = (iy - r0) * n_chunk
        if fold:
            for ix in range(q0, q1):
                p = iy * w + ix
                s_new = N[a_t + p]
                for lane in range(n_lanes):
                    s_new[lane] = 0.0
                for ch in range(c):
                    z_old = A[a_z + p * c + ch]
                    dz = N[a_z + p * c + ch]
                    ve = v[p * c + ch]
                    for lane in range(n_lanes):
                        z = z_old[lane] + dz[lane]
                        dz[lane] = z
                        s_new[lane] += ve * _tanh(z)
                s_old = A[a_t + p]
                for lane in range(n_lanes):
                    e_acc[lane] += s_new[lane] - s_old[lane]
            continue
        for i in range(n_chunk):
            z_old = A[a_z + e0 + i]
            dz = N[a_z + e0 + i]
            t_old = A[a_t + e0 + i]
            t_new = N[a_t + e0 + i]
            dd = D[base + i]
            for lane in range(n_lanes):
                z = z_old[lane] + dz[lane]
                dz[lane] = z
                t = _tanh(z)
                t_new[lane] = t
                dd[lane] = t - t_old[lane]


@njit(cache=True, error_model="numpy")
def _stage_change(spec, aoff, r_conv, r_end, A, N, c, w, r0, r1, q0, q1, Vn, D, S, fold, v,
                  e_acc):
    """New values of a conv stage over its window, and the change of its output.

    The stage is the CONV2D row ``r_conv`` (its change ``N`` already computed) and the
    elementwise rows after it, up to ``r_end``. Per window row of the image: the new
    pre-activation ``A + N`` into the chunk buffer ``Vn`` and, in place of the change, into
    ``N``; each elementwise row's new output into its rows of ``N`` (all committed on
    acceptance); then the change of the stage's output either into ``D`` (compact,
    position-major: the next row's input) or, with ``fold``, into ``e_acc += v . change``.
    With ``fold`` and an elementwise last row (:func:`_partial`), that row's new values go to
    the scratch rows ``S`` and ``N`` gets each position's new energy ``s = v . a``.
    Only new activations are evaluated; old ones are kept.
    """
    n_lanes = A.shape[1]
    n_chunk = (q1 - q0) * c
    a_last = aoff[r_end - 1]
    if r_end == r_conv + 2 and spec[r_conv + 1, 0] == TANH:
        _tanh_stage_change(aoff[r_conv], a_last, A, N, w, r0, r1, q0, q1, c, D, fold, v,
                           e_acc)
        return
    partial = fold and r_end > r_conv + 1  # _partial for this (last) stage
    for iy in range(r0, r1):
        e0 = (iy * w + q0) * c
        a = aoff[r_conv] + e0
        for i in range(n_chunk):
            ar = A[a + i]
            nr = N[a + i]
            vn = Vn[i]
            for lane in range(n_lanes):
                vn[lane] = ar[lane] + nr[lane]
                nr[lane] = vn[lane]
        for r in range(r_conv + 1, r_end):
            src, s0 = (Vn, 0) if r == r_conv + 1 else (N, aoff[r - 1] + e0)
            dst, d0 = (S, 0) if partial and r == r_end - 1 else (N, aoff[r] + e0)
            _elementwise_ls(spec[r, 0], src, s0, dst, d0, n_chunk)
        if partial:
            for ix in range(q0, q1):
                p = iy * w + ix
                s_new = N[a_last + p]
                for lane in range(n_lanes):
                    s_new[lane] = 0.0
                for ch in range(c):
                    ve = v[p * c + ch]
                    sr = S[(ix - q0) * c + ch]
                    for lane in range(n_lanes):
                        s_new[lane] += ve * sr[lane]
                s_old = A[a_last + p]
                for lane in range(n_lanes):
                    e_acc[lane] += s_new[lane] - s_old[lane]
            continue
        new = Vn if r_end == r_conv + 1 else N
        n0 = 0 if r_end == r_conv + 1 else a_last + e0
        if fold:
            for i in range(n_chunk):
                ve = v[e0 + i]
                ar = A[a_last + e0 + i]
                nr = new[n0 + i]
                for lane in range(n_lanes):
                    e_acc[lane] += ve * (nr[lane] - ar[lane])
        else:
            base = (iy - r0) * n_chunk
            for i in range(n_chunk):
                dd = D[base + i]
                ar = A[a_last + e0 + i]
                nr = new[n0 + i]
                for lane in range(n_lanes):
                    dd[lane] = nr[lane] - ar[lane]


@njit(cache=True, error_model="numpy")
def _conv_propose(spec, params, lam, n_pre, fold, tw, toff, v, aoff, geo, j, delta, A, N,
                  work, rect, e_old, e_new, wa, wb, tmp):
    """Energy of the proposals ``x_j += delta`` (per lane) for a TERM_CONV term.

    ``A`` keeps every prefix row's output (channel-last). Over the touched window a proposal
    writes into ``N`` the *change* of each CONV2D row's output (and of a kept closing DENSE),
    which :func:`_stage_change` replaces by the *new value* (as it writes the new value of
    each elementwise row); only new activations are evaluated, old ones are read from ``A``.
    :func:`_conv_commit` takes them over for the accepted lanes. Per stage the change of its
    output feeds the next conv row through :func:`_taps` (``work[1]``, compact and
    position-major), or the folded energy.
    """
    h = spec[0, 5]
    w = spec[0, 6]
    hw = h * w
    n_lanes = delta.shape[0]
    Vn = work[0]
    D = work[1]
    H = work[2]
    ci0 = j // hw  # the changed input: one pixel of one channel (channel-major x)
    y0 = (j % hw) // w
    x0 = j % w
    r0, r1, q0, q1 = y0, y0 + 1, x0, x0 + 1
    for lane in range(n_lanes):
        e_new[lane] = 0.0
    c_cur = 1
    r = 0
    while r < n_pre:
        code = spec[r, 0]
        c_out = geo[r, 0]
        a_out = aoff[r]
        t = toff[r]
        if code == CONV2D:
            k = spec[r, 7]
            pad = k // 2
            s0, s1 = max(0, r0 - pad), min(h, r1 + pad)
            t0, t1 = max(0, q0 - pad), min(w, q1 + pad)
            if r == 0:
                for oy in range(s0, s1):
                    for ox in range(t0, t1):
                        wt = t + ((ci0 * k + y0 - oy + pad) * k + x0 - ox + pad) * c_out
                        o = a_out + (oy * w + ox) * c_out
                        for co in range(c_out):
                            u = tw[wt + co]
                            nr = N[o + co]
                            for lane in range(n_lanes):
                                nr[lane] = u * delta[lane]
            else:
                c_in = c_cur
                nq = q1 - q0
                for oy in range(s0, s1):
                    for e in range(a_out + (oy * w + t0) * c_out, a_out + (oy * w + t1) * c_out):
                        nr = N[e]
                        for lane in range(n_lanes):
                            nr[lane] = 0.0
                for iy in range(r0, r1):
                    for ix in range(q0, q1):
                        dbase = ((iy - r0) * nq + ix - q0) * c_in
                        for oy in range(max(0, iy - pad), min(h, iy + pad + 1)):
                            for ox in range(max(0, ix - pad), min(w, ix + pad + 1)):
                                wt = t + ((iy - oy + pad) * k + ix - ox + pad) * c_out
                                _taps(tw, wt, k * k * c_out, c_in, c_out, D, dbase, N,
                                      a_out + (oy * w + ox) * c_out)
            r0, r1, q0, q1 = s0, s1, t0, t1
            r_end = r + 1
            while r_end < n_pre and spec[r_end, 0] != CONV2D and spec[r_end, 0] != DENSE:
                r_end += 1
            for rr in range(r, r_end):
                rect[rr, 0] = r0
                rect[rr, 1] = r1
                rect[rr, 2] = q0
                rect[rr, 3] = q1
            _stage_change(spec, aoff, r, r_end, A, N, c_out, w, r0, r1, q0, q1, Vn, D, H,
                          r_end == n_pre and fold, v, e_new)
            c_cur = c_out
            r = r_end
        else:  # the kept closing DENSE (rows follow it): its change from D
            for i in range(c_out):
                nr = N[a_out + i]
                for lane in range(n_lanes):
                    nr[lane] = 0.0
            nq = q1 - q0
            for iy in range(r0, r1):
                for ix in range(q0, q1):
                    p0 = (iy * w + ix) * c_cur
                    i0 = ((iy - r0) * nq + ix - q0) * c_cur
                    for cc in range(c_cur):
                        dd = D[i0 + cc]
                        wt = t + (p0 + cc) * c_out
                        for i in range(c_out):
                            u = tw[wt + i]
                            nr = N[a_out + i]
                            for lane in range(n_lanes):
                                nr[lane] += u * dd[lane]
            for i in range(c_out):  # the new outputs, input of the rows that follow
                ar = A[a_out + i]
                nr = N[a_out + i]
                hr = H[i]
                for lane in range(n_lanes):
                    hr[lane] = ar[lane] + nr[lane]
            r += 1
    if fold:
        for lane in range(n_lanes):
            e_new[lane] = e_old[lane] + e_new[lane]
    else:
        _dot_ls(lam, forward_lockstep(spec, params, H[:geo[n_pre - 1, 0]], n_pre, wa, wb, tmp),
                e_new)


@njit(cache=True)
def _conv_commit(spec, n_pre, fold, aoff, geo, rect, acc, A, N):
    # the accepted lanes take over the proposal: the new values of conv and elementwise rows
    # (the very sums the proposal evaluated) or per-position energies (_partial), A + N for a
    # kept DENSE row (N: its change)
    w = spec[0, 6]
    n_lanes = acc.shape[0]
    partial = _partial(spec, n_pre, fold)
    for r in range(n_pre):
        a = aoff[r]
        c = 1 if partial and r == n_pre - 1 else geo[r, 0]
        if spec[r, 0] == DENSE:
            e0, e1 = a, a + c
            ranges = 1
        else:
            ranges = rect[r, 1] - rect[r, 0]
        for q in range(ranges):
            if spec[r, 0] != DENSE:
                iy = rect[r, 0] + q
                e0 = a + (iy * w + rect[r, 2]) * c
                e1 = a + (iy * w + rect[r, 3]) * c
            if spec[r, 0] == DENSE:
                for e in range(e0, e1):
                    ar = A[e]
                    nr = N[e]
                    for lane in range(n_lanes):
                        ar[lane] = ar[lane] + nr[lane] if acc[lane] else ar[lane]
            else:
                _select_rows(acc, N, A, e0, e1)


@njit(cache=True)
def _term_propose(kind, n_pre, fold, spec, params, lam, tw, toff, v, aoff, geo, j, delta, xb,
                  A, N, work, rect, e_old, e_new, wa, wb, tmp):
    """``e_new = lam . O(x with x_j + delta)`` per lane (``xb`` already holds the proposal)."""
    n_lanes = delta.shape[0]
    if spec.shape[0] == 0:
        for lane in range(n_lanes):
            e_new[lane] = 0.0
    elif kind == TERM_CONV:
        _conv_propose(spec, params, lam, n_pre, fold, tw, toff, v, aoff, geo, j, delta, A, N,
                      work, rect,
                      e_old, e_new, wa, wb, tmp)
    elif kind == TERM_DENSE:
        d = xb.shape[0]
        n_hid = spec[0, 2]
        off = spec[0, 3]
        for i in range(n_hid):
            u = params[off + i * d + j]
            ar = A[i]
            nr = N[i]
            for lane in range(n_lanes):
                nr[lane] = ar[lane] + u * delta[lane]
        _dot_ls(lam, forward_lockstep(spec, params, N[:n_hid], 1, wa, wb, tmp), e_new)
    else:
        _dot_ls(lam, forward_lockstep(spec, params, xb, 0, wa, wb, tmp), e_new)


@njit(cache=True)
def _term_commit(kind, n_pre, fold, spec, aoff, geo, rect, acc, A, N):
    if spec.shape[0] == 0:
        return
    if kind == TERM_CONV:
        _conv_commit(spec, n_pre, fold, aoff, geo, rect, acc, A, N)
    elif kind == TERM_DENSE:
        _select_rows(acc, N, A, 0, spec[0, 2])


def _kept_rows(kind, n_pre, fold, spec):
    if kind == TERM_CONV:
        spec = np.ascontiguousarray(spec, np.int64)
        aoff = _plan(spec)[1]
        if _partial(spec, n_pre, fold):  # the last row: one energy per image position
            return int(aoff[n_pre - 1] + spec[0, 5] * spec[0, 6])
        return max(1, int(aoff[-1]))
    if kind == TERM_DENSE:
        return int(spec[0, 2])
    return 1


# --- the block of chains -------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _scan_block(c0, n_live, x, energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted,
                spec, params, lam, kind, n_pre, fold, tw, toff, v, A, N,
                spec2, params2, lam2, kind2, n_pre2, fold2, tw2, toff2, v2, A2, N2, work,
                n_lanes, width):
    # A, N, A2, N2, work: this block's scratch (see scan_sweeps), written before read
    d = x.shape[1]
    xb, streams, step_b = load_block(c0, n_live, n_lanes, x, lo, step, rng_state)
    st = streams.T                      # st[lane] is one xoshiro state
    wa = empty_rows(width, n_lanes, x.dtype)
    wb = empty_rows(width, n_lanes, x.dtype)
    tmp = empty_rows(2, n_lanes, x.dtype)
    rect = np.zeros((max(n_pre, 1), 4), np.int64)
    rect2 = np.zeros((max(n_pre2, 1), 4), np.int64)
    e1 = np.empty(n_lanes, x.dtype)
    e2 = np.empty(n_lanes, x.dtype)
    e1n = np.empty(n_lanes, x.dtype)
    e2n = np.empty(n_lanes, x.dtype)
    _, aoff, geo = _plan(spec)      # once per block, not per proposal
    _, aoff2, geo2 = _plan(spec2)
    _term_rebuild(kind, n_pre, fold, spec, params, lam, tw, toff, v, aoff, geo, xb, A, wa, wb,
                  tmp, work[1], e1)
    _term_rebuild(kind2, n_pre2, fold2, spec2, params2, lam2, tw2, toff2, v2, aoff2, geo2, xb,
                  A2, wa, wb, tmp, work[1], e2)
    full = kind == TERM_FULL or (spec2.shape[0] > 0 and kind2 == TERM_FULL)
    log_r = np.empty(n_lanes)          # the draws stay float64 for float32 chains
    cos_t = np.empty(n_lanes)
    y = np.empty(n_lanes, x.dtype)     # the proposal, rounded once to the chains' dtype
    old = np.empty(n_lanes, x.dtype)
    delta = np.zeros(n_lanes, x.dtype)
    inside = np.zeros(n_lanes, np.bool_)
    acc = np.zeros(n_lanes, np.bool_)
    u = np.ones(n_lanes)
    n_acc = np.zeros(n_lanes, np.int64)
    for _ in range(n_sweeps):
        for j in range(d):
            xj = xb[j]
            # the normal deviates (the all-coordinate formula), one loop per step
            for lane in range(n_live):
                log_r[lane] = 1.0 - uniform(st, lane)
                cos_t[lane] = uniform(st, lane)
            for lane in range(n_live):
                log_r[lane] = _log(log_r[lane])
            for lane in range(n_live):
                cos_t[lane] = _cos_2pi(cos_t[lane])
            for lane in range(n_live):
                y[lane] = xj[lane] + step_b[lane] * (math.sqrt(-2.0 * log_r[lane])
                                                     * cos_t[lane])
            for lane in range(n_lanes):  # boundary rule; dead lanes propose no change
                old[lane] = xj[lane]
                if lane < n_live:
                    yv, ok = _propose(y[lane], lo[j], hi[j], boundary)
                else:
                    yv, ok = old[lane], False
                if not ok:
                    yv = old[lane]
                y[lane] = yv
                inside[lane] = ok
                delta[lane] = yv - old[lane]
            if full:
                for lane in range(n_lanes):
                    xj[lane] = y[lane]
            _term_propose(kind, n_pre, fold, spec, params, lam, tw, toff, v, aoff, geo, j,
                          delta, xb, A, N, work, rect, e1, e1n, wa, wb, tmp)
            _term_propose(kind2, n_pre2, fold2, spec2, params2, lam2, tw2, toff2, v2, aoff2,
                          geo2, j, delta, xb, A2, N2, work, rect2, e2, e2n, wa, wb, tmp)
            for lane in range(n_live):  # acceptance uniforms, only for kept proposals
                if inside[lane]:
                    u[lane] = uniform(st, lane)
            any_acc = False
            for lane in range(n_lanes):
                # float32 energies: each term promoted to float64 first (exact)
                ok = inside[lane] and _log(u[lane]) < (
                    (np.float64(e1[lane]) + np.float64(e2[lane]))
                    - (np.float64(e1n[lane]) + np.float64(e2n[lane])))
                acc[lane] = ok
                any_acc = any_acc or ok
            for lane in range(n_lanes):
                xj[lane] = y[lane] if acc[lane] else old[lane]
            if any_acc:
                _term_commit(kind, n_pre, fold, spec, aoff, geo, rect, acc, A, N)
                _term_commit(kind2, n_pre2, fold2, spec2, aoff2, geo2, rect2, acc, A2, N2)
                for lane in range(n_lanes):
                    e1[lane] = e1n[lane] if acc[lane] else e1[lane]
                    e2[lane] = e2n[lane] if acc[lane] else e2[lane]
                    n_acc[lane] += 1 if acc[lane] else 0
    # the carried energies: exact up to the rounding of one call's incremental updates (the
    # next call rebuilds everything from x and never reads them)
    for lane in range(n_lanes):
        e1[lane] += e2[lane]
    store_block(c0, n_live, xb, streams, e1, n_acc, x, rng_state, energy, accepted)


@njit(parallel=True, cache=True)
def _scan_sweeps(x, energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted,
                 spec, params, lam, kind, n_pre, fold, tw, toff, v, A, N,
                 spec2, params2, lam2, kind2, n_pre2, fold2, tw2, toff2, v2, A2, N2, work,
                 n_lanes):
    n_chains = x.shape[0]
    width = max(3, _max_width(spec), _max_width(spec2), x.shape[1])
    n_blocks = (n_chains + n_lanes - 1) // n_lanes
    for b in prange(n_blocks):
        t = numba.get_thread_id()  # the thread's scratch: reused block after block
        c0 = b * n_lanes
        _scan_block(c0, min(n_chains, c0 + n_lanes) - c0, x, energy, lo, hi, step, n_sweeps,
                    boundary, rng_state, accepted, spec, params, lam, kind, n_pre, fold, tw,
                    toff, v, A[t], N[t], spec2, params2, lam2, kind2, n_pre2, fold2, tw2, toff2,
                    v2, A2[t], N2[t], work[t], n_lanes, width)


_scratch = threading.local()


def _workspace(n_slices, shapes, dtype=np.float64):
    """Scratch arrays ``(n_slices,) + shape`` of ``dtype`` (the chains'), aligned to cache
    lines (``interpret.aligned_empty``) and reused by this thread's calls.

    One slice per numba thread (``numba.get_thread_id``) holds a block's kept rows
    (megabytes): allocated per call they cost page faults (``docs/performance.md``). Every
    call writes them before reading, so reuse carries nothing over. One set per calling
    thread (the last shapes); a set with more slices serves a call with fewer threads, so
    alternating thread counts do not reallocate.
    """
    cached = getattr(_scratch, "arrays", None)
    if cached is None or tuple(a.shape[1:] for a in cached) != shapes or \
            cached[0].shape[0] < n_slices or cached[0].dtype != dtype:
        _scratch.arrays = None  # release the old set first
        cached = _scratch.arrays = tuple(aligned_empty((n_slices,) + s, dtype) for s in shapes)
    return cached


def release_scratch():
    """Free the scratch arrays this thread's :func:`scan_sweeps` calls keep (see its Notes).

    The next call allocates them again; results never depend on it.
    """
    _scratch.arrays = None


def scan_lanes(n_chains, rows=0, itemsize=8):
    """Lanes per block for :func:`scan_sweeps` (a multiple of 8).

    ``settings.SCAN_LANES``, halved while a block's kept state (``rows`` floats of
    ``itemsize`` bytes per lane) would pass ``settings.SCAN_STATE_BYTES`` (but not below 64
    for that reason), and fewer when there are too few chains for one block per thread.
    """
    most = settings.SCAN_LANES
    while most > 64 and int(itemsize) * max(int(rows), 1) * most > settings.SCAN_STATE_BYTES:
        most //= 2
    per_block = -(-max(int(n_chains), 1) // numba.get_num_threads())
    return int(max(8, min(most, -(-per_block // 8) * 8)))


def scan_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                boundary, rng_state, accepted, incremental=True, lanes=None):
    """Systematic-scan single-coordinate Metropolis sweeps, chains in lock-step, in place.

    Arguments as :func:`mme_numba.kernels.sweep.sweep` (without ``move``; the module docstring
    gives the scan, the draw order and the incremental updates). ``energy`` is not read: every
    call evaluates its chains in full first, and returns the energies carried through the
    incremental updates. ``lanes`` defaults to :func:`scan_lanes`.

    The blocks' kept and proposed rows live in scratch arrays that the calling thread keeps for
    its next call: one slice per numba thread, twice the kept state of a block (``paper_cnn``
    at 256 lanes: 8.6 MB; :func:`scan_lanes` keeps it under ``settings.SCAN_STATE_BYTES`` where
    it can). :func:`release_scratch` frees them.
    """
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted, allow_float32=True)
    n_chains = x.shape[0]
    if n_chains == 0 or n_sweeps == 0:
        return
    p1 = term_plan(spec, params, lam, incremental)
    p2 = term_plan(spec2, params2, lam2, incremental)
    rows1, rows2 = _kept_rows(*p1[:3], spec), _kept_rows(*p2[:3], spec2)
    lanes = scan_lanes(n_chains, rows1 + rows2, x.itemsize) if lanes is None else int(lanes)
    if lanes < 1:
        raise ValueError(f"lanes must be a positive integer, got {lanes}")
    # one slice per thread: get_thread_id() < get_num_threads() in the kernel
    A, N, A2, N2, work = _workspace(
        numba.get_num_threads(),
        ((rows1, lanes), (rows1, lanes), (rows2, lanes), (rows2, lanes),
         (3, max(rows1, rows2, x.shape[1]), lanes)), x.dtype)
    with dynamic_schedule():
        _scan_sweeps(x, energy, lo, hi, step, n_sweeps, int(boundary), rng_state, accepted,
                     spec, params, lam, *p1, A, N, spec2, params2, lam2, *p2, A2, N2, work,
                     lanes)
