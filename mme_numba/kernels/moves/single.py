"""Random-scan single-coordinate Metropolis moves (``MOVE_SINGLE``), with incremental energies.

Each of the ``d`` proposals of a sweep draws its coordinate ``j``, then ``y_j = x_j + step[c]
* normal()``, the box rule and the acceptance test (:mod:`.box`). Three ways to score it:

* first row DENSE: :func:`single_sweeps` keeps that layer's pre-activation per chain and
  updates it by one column of ``W``, chains in lock-step blocks;
* first row CONV2D: :func:`single_pixel_sweeps`, below, one chain at a time;
* otherwise (or ``incremental=False``): a full lock-step forward per proposal.

Single-pixel moves for convolutional observables
------------------------------------------------
A network whose spec starts with ``CONV2D`` rows (interleaved with elementwise rows) and then a
``DENSE`` row is evaluated incrementally: each chain keeps the activations of that prefix
(pre- and post-activation of every conv layer and the DENSE output) and a proposal that changes
pixel ``(c, y, x)`` by ``δ``

* adds ``W[:, c, ., .] δ`` to the ``k×k`` window of the first conv layer's pre-activation,
* re-applies the elementwise rows on that window only,
* adds the changed activations' contributions to the next conv layer over the window grown by
  ``k // 2`` on each side (``(2k−1)²`` for the second ``k×k`` layer), and so on,
* updates the DENSE outputs by the changed entries only (``out += W[:, i] Δa_i``),

then evaluates the remaining rows (for ``paper_cnn`` none: λ·O directly). The per-move cost
depends on the kernel sizes and channel counts but not on the image size.

Activations are stored channel-last, ``(H, W, C)``, and the conv and DENSE weights are re-laid
once per call (:func:`_transposed_weights`) so that every innermost update loop runs over
contiguous output channels (``docs/performance.md``). Every changed entry is first copied
into an undo buffer with the same layout as the activations; a rejected proposal copies it
back (bit-exact, so rejections never drift) and the same buffer provides the ``Δa`` of the
next row. Activations are rebuilt from ``x`` at the start of every call, so rounding from
accepted updates cannot accumulate beyond one call.

The proposal and draw order are exactly those of the full-recompute single-move kernel of
:func:`single_sweeps` (random-scan pixel, Gaussian step, boundary rule, one uniform
for the acceptance), so both produce the same chain up to the rounding of the energies.
A second energy term (steering fields) is updated the same way when its spec also starts with
``CONV2D``, and recomputed in full otherwise.
"""

import numpy as np
from numba import njit, prange

from ..interpret import (_apply_row, _dense_ls, _dot, _max_width, elementwise, energy_lockstep,
                         forward_rows, is_elementwise)
from .box import _accept, _single_site_proposal, block_buffers, chain_args
from ...spec import CONV2D, DENSE

__all__ = ["single_sweeps", "supports_incremental", "incremental_prefix",
           "single_pixel_sweeps"]


# --- lock-step chains: a first DENSE row updated incrementally, or full forwards ----------

@njit(cache=True)
def _block_single(c0, n_live, n_lanes, spec, params, lam, spec2, params2, lam2, x, energy,
                  lo, hi, step, n_sweeps, boundary, rng_state, accepted, incremental):
    # xb (d, lanes) holds the block's states. With ``incremental`` (first row DENSE) the
    # first layer's pre-activation z = W x + b is kept per lane and updated by
    # z' = z + W[:, j] (y_j - x_j), O(n_hidden) instead of O(n_hidden d); z is rebuilt from
    # x at every call, so rounding cannot accumulate beyond one call.
    d = x.shape[1]
    xb, scratch, h_old, h_new, inside = block_buffers(d, n_lanes, spec, spec2, x.dtype)
    for lane in range(n_lanes):
        c = c0 + lane
        for k in range(d):
            xb[k, lane] = x[c, k] if lane < n_live else lo[k]
    for lane in range(n_live):
        h_old[lane] = energy[c0 + lane]
    n_acc = np.zeros(n_lanes, np.int64)
    j_of = np.zeros(n_lanes, np.int64)
    old = np.empty(n_lanes, x.dtype)
    new = np.empty(n_lanes, x.dtype)
    n_hid = spec[0, 2] if incremental else 1
    off = spec[0, 3]
    z = np.empty((n_hid, n_lanes), x.dtype)
    z_new = np.empty((n_hid, n_lanes), x.dtype)
    dx = np.zeros(n_lanes, x.dtype)
    if incremental:
        _dense_ls(params, off, d, n_hid, spec[0, 4] == 1, xb, z)
    has_second = spec2.shape[0] > 0
    for _ in range(n_sweeps * d):
        for lane in range(n_live):
            c = c0 + lane
            j, _, yj, ok = _single_site_proposal(rng_state, c, xb[:, lane], step[c], lo, hi,
                                                 boundary)
            j_of[lane] = j
            new[lane] = yj
            inside[lane] = ok
        for lane in range(n_live):
            j = j_of[lane]
            old[lane] = xb[j, lane]
            dx[lane] = new[lane] - old[lane]
        if incremental:
            for i in range(n_hid):
                zi = z[i]
                zn = z_new[i]
                w = off + i * d
                for lane in range(n_lanes):
                    zn[lane] = zi[lane] + params[w + j_of[lane]] * dx[lane]
            if has_second:
                for lane in range(n_live):
                    xb[j_of[lane], lane] = new[lane]
            energy_lockstep(spec, params, lam, spec2, params2, lam2, z_new, 1, xb, scratch,
                            h_new)
        else:
            for lane in range(n_live):
                xb[j_of[lane], lane] = new[lane]
            energy_lockstep(spec, params, lam, spec2, params2, lam2, xb, 0, xb, scratch,
                            h_new)
        for lane in range(n_live):
            c = c0 + lane
            j = j_of[lane]
            if inside[lane] and _accept(rng_state, c, h_old[lane], h_new[lane]):
                xb[j, lane] = new[lane]
                h_old[lane] = h_new[lane]
                n_acc[lane] += 1
                if incremental:
                    for i in range(n_hid):
                        z[i, lane] = z_new[i, lane]
            else:
                xb[j, lane] = old[lane]
    for lane in range(n_live):
        c = c0 + lane
        for k in range(d):
            x[c, k] = xb[k, lane]
        energy[c] = h_old[lane]
        accepted[c] += n_acc[lane]


@njit(parallel=True, cache=True)
def single_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps,
                  boundary, rng_state, accepted, incremental, n_lanes):
    """``n_sweeps * d`` random-scan proposals per chain, in place, ``n_lanes`` chains per
    lock-step block; a full forward per proposal unless ``incremental`` (first row DENSE).
    Arguments checked by :func:`.box.chain_args`."""
    n_chains = x.shape[0]
    for b in prange((n_chains + n_lanes - 1) // n_lanes):
        c0 = b * n_lanes
        _block_single(c0, min(n_chains, c0 + n_lanes) - c0, n_lanes, spec, params, lam, spec2,
                      params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary, rng_state,
                      accepted, incremental)



# --- the incremental prefix of a spec -----------------------------------------------------

@njit(cache=True)
def _plan(spec):
    """Rows updated incrementally and their output geometry.

    Returns ``n_inc`` (0 if the first row is not CONV2D), ``aoff (n_inc + 1,)`` offsets of each
    row's output in the flat activation buffer and ``geo (n_inc, 3)`` = ``(C, H, W)`` of each
    output (``(n_out, 1, 1)`` for the closing DENSE row).
    """
    n_rows = spec.shape[0]
    n_inc = 0
    if n_rows > 0 and spec[0, 0] == CONV2D:
        h = spec[0, 5]
        w = spec[0, 6]
        n_inc = 1
        while n_inc < n_rows:
            code = spec[n_inc, 0]
            if code == CONV2D and spec[n_inc, 5] == h and spec[n_inc, 6] == w:
                n_inc += 1
            elif is_elementwise(code):
                n_inc += 1
            elif code == DENSE:
                n_inc += 1
                break
            else:
                break
    aoff = np.zeros(n_inc + 1, np.int64)
    geo = np.zeros((max(n_inc, 1), 3), np.int64)
    for r in range(n_inc):
        aoff[r + 1] = aoff[r] + spec[r, 2]
        if spec[r, 0] == DENSE:
            geo[r, 0] = spec[r, 2]
            geo[r, 1] = 1
            geo[r, 2] = 1
        else:
            h = spec[0, 5]
            w = spec[0, 6]
            geo[r, 0] = spec[r, 2] // (h * w)
            geo[r, 1] = h
            geo[r, 2] = w
    return n_inc, aoff, geo


@njit(cache=True)
def _rebuild(spec, params, x, n_inc, aoff, geo, acts, chw_a, chw_b):
    """Full forward of the incremental prefix from ``x``; ``acts`` stored channel-last."""
    src = x
    use_a = True
    for r in range(n_inc):
        n_out = spec[r, 2]
        dst = chw_a[:n_out] if use_a else chw_b[:n_out]
        _apply_row(spec[r], params, src, dst)
        c = geo[r, 0]
        hw = geo[r, 1] * geo[r, 2]
        a = aoff[r]
        for ch in range(c):
            for p in range(hw):
                acts[a + p * c + ch] = dst[ch * hw + p]
        src = dst
        use_a = not use_a


@njit(cache=True)
def _elementwise_run(code, src, dst, dst_old, p0, p1):
    """Save ``dst[p0:p1]`` to ``dst_old`` and recompute it from ``src``."""
    for p in range(p0, p1):
        dst_old[p] = dst[p]
    elementwise(code, src, dst, p0, p1)


@njit(cache=True)
def _save_rect(dst, dst_old, c, w, r0, r1, q0, q1):
    for iy in range(r0, r1):
        for p in range((iy * w + q0) * c, (iy * w + q1) * c):
            dst_old[p] = dst[p]


@njit(cache=True)
def _propose_term(spec, params, lam, tw, toff, x, x_old_j, j, n_inc, aoff, geo, acts, undo,
                  rect, wa, wb, chw):
    """Energy term ``lam . O`` after pixel ``j`` changed (``x`` holds the new value).

    Updates ``acts`` (channel-last) in place, old values saved in ``undo`` and the touched
    rectangles in ``rect``; call :func:`_restore_term` to undo on rejection.
    """
    h = spec[0, 5]
    w = spec[0, 6]
    hw = h * w
    ci = j // hw  # the changed input: one pixel of one channel of x (channel-major)
    y = (j % hw) // w
    xx = j % w
    r0, r1, q0, q1 = y, y + 1, xx, xx + 1
    for r in range(n_inc):
        code = spec[r, 0]
        dst = acts[aoff[r]:aoff[r + 1]]
        dst_old = undo[aoff[r]:aoff[r + 1]]
        c_out = geo[r, 0]
        t = toff[r]
        if code == CONV2D:
            k = spec[r, 7]
            pad = k // 2
            s0, s1 = max(0, r0 - pad), min(h, r1 + pad)
            t0, t1 = max(0, q0 - pad), min(w, q1 + pad)
            _save_rect(dst, dst_old, c_out, w, s0, s1, t0, t1)
            c_in = spec[r, 4]
            for iy in range(r0, r1):
                for ix in range(q0, q1):
                    for cc in range(c_in):
                        if r == 0:
                            if cc != ci:
                                continue
                            delta = x[j] - x_old_j
                        else:
                            i = (iy * w + ix) * c_in + cc
                            delta = acts[aoff[r - 1] + i] - undo[aoff[r - 1] + i]
                        if delta == 0.0:
                            continue
                        for oy in range(max(0, iy - pad), min(h, iy + pad + 1)):
                            for ox in range(max(0, ix - pad), min(w, ix + pad + 1)):
                                wt = t + ((cc * k + iy - oy + pad) * k + ix - ox + pad) * c_out
                                o = (oy * w + ox) * c_out
                                for co in range(c_out):
                                    dst[o + co] += tw[wt + co] * delta
            r0, r1, q0, q1 = s0, s1, t0, t1
        elif code == DENSE:  # closes the prefix; r > 0 because the prefix starts with CONV2D
            for i in range(c_out):
                dst_old[i] = dst[i]
            c_in = geo[r - 1, 0]
            a_in = aoff[r - 1]
            for iy in range(r0, r1):
                for p in range((iy * w + q0) * c_in, (iy * w + q1) * c_in):
                    delta = acts[a_in + p] - undo[a_in + p]
                    if delta == 0.0:
                        continue
                    wt = t + p * c_out
                    for i in range(c_out):
                        dst[i] += tw[wt + i] * delta
        else:  # local elementwise: recompute the rectangle from its (updated) input
            src = acts[aoff[r - 1]:aoff[r]]
            for iy in range(r0, r1):
                _elementwise_run(code, src, dst, dst_old, (iy * w + q0) * c_out,
                                 (iy * w + q1) * c_out)
        rect[r, 0] = r0
        rect[r, 1] = r1
        rect[r, 2] = q0
        rect[r, 3] = q1
    last = acts[aoff[n_inc - 1]:aoff[n_inc]]
    if spec[n_inc - 1, 0] != DENSE:
        # The rows after the prefix read channel-major activations.
        c = geo[n_inc - 1, 0]
        for ch in range(c):
            for p in range(hw):
                chw[ch * hw + p] = last[p * c + ch]
        last = chw[:last.shape[0]]
    return _dot(lam, forward_rows(spec, params, last, n_inc, wa, wb))


@njit(cache=True)
def _restore_term(spec, n_inc, aoff, geo, acts, undo, rect):
    """Undo :func:`_propose_term` (copies the saved entries back, bit-exact)."""
    w = spec[0, 6]
    for r in range(n_inc):
        a = aoff[r]
        c = geo[r, 0]
        if spec[r, 0] == DENSE:
            for i in range(c):
                acts[a + i] = undo[a + i]
            continue
        for iy in range(rect[r, 0], rect[r, 1]):
            for p in range(a + (iy * w + rect[r, 2]) * c, a + (iy * w + rect[r, 3]) * c):
                acts[p] = undo[p]


@njit(cache=True)
def _chain_pixels(c, spec, params, lam, tw, toff, spec2, params2, lam2, tw2, toff2, x,
                  energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted, wa, wb, wa2,
                  wb2, chw_a, chw_b):
    d = x.shape[1]
    xc = x[c]
    n_inc, aoff, geo = _plan(spec)
    acts = np.empty(aoff[n_inc], x.dtype)
    undo = np.empty(aoff[n_inc], x.dtype)
    rect = np.zeros((n_inc, 4), np.int64)
    _rebuild(spec, params, xc, n_inc, aoff, geo, acts, chw_a, chw_b)
    has_second = spec2.shape[0] > 0
    n_inc2, aoff2, geo2 = _plan(spec2)
    acts2 = np.empty(aoff2[n_inc2], x.dtype)
    undo2 = np.empty(aoff2[n_inc2], x.dtype)
    rect2 = np.zeros((max(n_inc2, 1), 4), np.int64)
    if n_inc2 > 0:
        _rebuild(spec2, params2, xc, n_inc2, aoff2, geo2, acts2, chw_a, chw_b)
    h = energy[c]
    n_acc = 0
    for _ in range(n_sweeps * d):
        j, old, yj, inside = _single_site_proposal(rng_state, c, xc, step[c], lo, hi, boundary)
        if not inside:
            continue
        xc[j] = yj  # own row only; restored below on rejection
        h_new = _propose_term(spec, params, lam, tw, toff, xc, old, j, n_inc, aoff, geo, acts,
                              undo, rect, wa, wb, chw_a)
        if has_second:
            if n_inc2 > 0:
                h_new += _propose_term(spec2, params2, lam2, tw2, toff2, xc, old, j, n_inc2,
                                       aoff2, geo2, acts2, undo2, rect2, wa2, wb2, chw_a)
            else:
                h_new += _dot(lam2, forward_rows(spec2, params2, xc, 0, wa2, wb2))
        if _accept(rng_state, c, h, h_new):
            h = h_new
            n_acc += 1
        else:
            xc[j] = old
            _restore_term(spec, n_inc, aoff, geo, acts, undo, rect)
            if n_inc2 > 0:
                _restore_term(spec2, n_inc2, aoff2, geo2, acts2, undo2, rect2)
    energy[c] = h
    accepted[c] += n_acc


@njit(parallel=True, cache=True)
def _single_pixel_sweeps(spec, params, lam, tw, toff, spec2, params2, lam2, tw2, toff2, x,
                         energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted):
    width = _max_width(spec)
    width2 = _max_width(spec2)
    for c in prange(x.shape[0]):
        wa = np.empty(width, x.dtype)
        wb = np.empty(width, x.dtype)
        wa2 = np.empty(width2, x.dtype)
        wb2 = np.empty(width2, x.dtype)
        chw_a = np.empty(max(width, width2), x.dtype)
        chw_b = np.empty(max(width, width2), x.dtype)
        _chain_pixels(c, spec, params, lam, tw, toff, spec2, params2, lam2, tw2, toff2, x,
                      energy, lo, hi, step, n_sweeps, boundary, rng_state, accepted, wa, wb,
                      wa2, wb2, chw_a, chw_b)


def _transposed_weights(spec, params):
    """Weights of the prefix rows re-laid for channel-last activations.

    CONV2D ``W (C_out, C_in, k, k)`` becomes ``(C_in, k, k, C_out)`` and the closing DENSE
    ``W (n_out, C, H, W)`` becomes ``(H, W, C, n_out)``, so the innermost update loops run over
    contiguous output channels (vectorizable). Built once per call, shared by all chains.
    Returns ``(tw, toff)`` with row ``r``'s block at ``tw[toff[r]:]``.
    """
    n_inc, _, geo = _plan(spec)
    blocks, toff = [], [0]
    for r in range(n_inc):
        code, n_in, n_out, off, a, b, c, k = (int(v) for v in spec[r])
        if code == CONV2D:
            c_out = n_out // (b * c)
            W = params[off:off + c_out * a * k * k].reshape(c_out, a, k, k)
            blocks.append(W.transpose(1, 2, 3, 0).ravel())
        elif code == DENSE:
            cp, hp, wp = (int(v) for v in geo[r - 1])
            W = params[off:off + n_out * n_in].reshape(n_out, cp, hp, wp)
            blocks.append(W.transpose(2, 3, 1, 0).ravel())
        else:
            blocks.append(np.zeros(0, params.dtype))
        toff.append(toff[-1] + blocks[-1].size)
    tw = np.ascontiguousarray(np.concatenate(blocks) if blocks else np.zeros(0, params.dtype))
    return tw, np.asarray(toff, np.int64)


# --- Python entry points --------------------------------------------------------------------

def supports_incremental(spec):
    """Whether :func:`single_pixel_sweeps` can run ``spec`` (its first row is ``CONV2D``).

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)

    Returns
    -------
    bool
    """
    spec = np.asarray(spec)
    return spec.ndim == 2 and spec.shape[0] > 0 and int(spec[0, 0]) == CONV2D


def incremental_prefix(spec):
    """Number of leading rows of ``spec`` updated incrementally by single-pixel moves.

    CONV2D rows of one spatial shape and local elementwise rows (tanh, softplus, sigmoid,
    ReLU, square), closed by at most one DENSE row; the rows after it are evaluated in full
    from the DENSE output. 0 if the first row is not CONV2D.

    Parameters
    ----------
    spec : ndarray of int64, shape (n_rows, 8)

    Returns
    -------
    int
    """
    spec = np.ascontiguousarray(spec, dtype=np.int64)
    return int(_plan(spec)[0])


def single_pixel_sweeps(spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step,
                        n_sweeps, boundary, rng_state, accepted):
    """Random-scan single-pixel Metropolis sweeps with incremental conv updates, in place.

    Arguments as :func:`mme_numba.kernels.sweep.sweep` (without ``move``); ``spec`` must start
    with a ``CONV2D`` row, and ``spec2`` is updated incrementally too when it does. The same
    chain, draw order and arguments as :func:`single_sweeps` with full forwards (up to the
    rounding of the energies, ~1e-14), at a per-proposal cost independent of the image size.
    """
    spec, params, lam, spec2, params2, lam2, lo, hi, step, n_sweeps = chain_args(
        spec, params, lam, spec2, params2, lam2, x, energy, lo, hi, step, n_sweeps, boundary,
        rng_state, accepted, allow_float32=True)
    n_chains = x.shape[0]
    if not supports_incremental(spec):
        raise ValueError("single_pixel_sweeps needs a spec whose first row is CONV2D")
    if n_chains == 0 or n_sweeps == 0:
        return
    tw, toff = _transposed_weights(spec, params)
    tw2, toff2 = _transposed_weights(spec2, params2)
    _single_pixel_sweeps(spec, params, lam, tw, toff, spec2, params2, lam2, tw2, toff2, x,
                         energy, lo, hi, step, n_sweeps, int(boundary), rng_state, accepted)
