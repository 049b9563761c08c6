"""The batched PyTorch reference: every chain in one tensor, one network call per step.

This is how one would write the sampler in a deep-learning framework: a proposal for all
chains at once, one forward pass of the whole batch (``torch.no_grad``), a vectorised
accept/reject. The network is read from the same ``(spec, params)`` description that the
compiled kernels interpret, so both sides evaluate exactly the same energy. PyTorch is not
a dependency of mme_numba; this module is imported only by the benchmark workers.
"""

import numpy as np
import torch
import torch.nn.functional as F

from mme_numba.spec import CONV2D, DENSE, LOGSOFTMAX, RELU, SIGMOID, SOFTPLUS, SQUARE, TANH


def energy_function(spec, params, lam, dtype):
    """``H(X) = lam · O(X)`` for a batch ``X (n, d)`` as a closure over torch tensors."""
    ops = []
    for code, n_in, n_out, off, a, b, c, d in np.asarray(spec).tolist():
        if code == DENSE:
            W = torch.tensor(params[off:off + n_in * n_out].reshape(n_out, n_in), dtype=dtype)
            bias = (torch.tensor(params[off + n_in * n_out:off + n_in * n_out + n_out],
                                 dtype=dtype) if a else torch.zeros(n_out, dtype=dtype))
            ops.append(lambda h, W=W, bias=bias: torch.addmm(bias, h, W.T))
        elif code == CONV2D:
            c_out = n_out // (b * c)
            n_w = c_out * a * d * d
            W = torch.tensor(params[off:off + n_w].reshape(c_out, a, d, d), dtype=dtype)
            bias = torch.tensor(params[off + n_w:off + n_w + c_out], dtype=dtype)
            ops.append(lambda h, W=W, bias=bias, shape=(a, b, c), pad=d // 2:
                       F.conv2d(h.reshape(-1, *shape), W, bias, padding=pad).flatten(1))
        elif code == TANH:
            ops.append(torch.tanh)
        elif code == SOFTPLUS:
            ops.append(F.softplus)
        elif code == SIGMOID:
            ops.append(torch.sigmoid)
        elif code == RELU:
            ops.append(torch.relu)
        elif code == SQUARE:
            ops.append(torch.square)
        elif code == POWERS:   # x_j, x_j^2, ..., x_j^a (output index j * a + q)
            ops.append(lambda h, e=torch.arange(1, a + 1, dtype=dtype):
                       (h[:, :, None] ** e).flatten(1))
        elif code == LOGSOFTMAX:
            ops.append(lambda h: torch.log_softmax(h, dim=1))
        else:
            raise ValueError(f"op code {code} has no torch twin here")
    lam_t = torch.tensor(lam, dtype=dtype)

    def energy(X):
        h = X
        for op in ops:
            h = op(h)
        return h @ lam_t

    return energy


def _reflect(y, lo, hi):
    # fold into [lo, hi] by mirror reflections (the kernels' closed form)
    w = hi - lo
    t = torch.remainder(y - lo, 2.0 * w)
    return torch.clamp(lo + torch.where(t > w, 2.0 * w - t, t), lo, hi)


class BatchedSampler:
    """Metropolis chains on ``exp(-H)`` in a box, all chains advanced as one tensor.

    Parameters
    ----------
    spec, params, lam : ndarrays
        The energy, as for ``mme_numba.kernels.metropolis_sweeps``.
    x0 : ndarray (n_chains, d)
        Initial states, inside the box.
    lo, hi : float
        The box (the same in every coordinate).
    step : float
        Gaussian proposal std.
    move : {"all", "single"}
        All-coordinate proposals, or one random coordinate per chain per step.
    boundary : {"reflect", "reject"}
        The kernels' box rules: fold a coordinate outside back by mirror reflections, or
        reject a proposal with any coordinate outside.
    dtype : torch.dtype
    seed : int
    """

    def __init__(self, spec, params, lam, x0, lo, hi, step, move="all", boundary="reflect",
                 dtype=torch.float64, seed=0):
        if boundary not in ("reflect", "reject"):
            raise ValueError(f"boundary must be 'reflect' or 'reject', got {boundary!r}")
        self.energy = energy_function(spec, params, lam, dtype)
        self.dtype, self.move, self.boundary = dtype, move, boundary
        self.lo, self.hi, self.step = float(lo), float(hi), float(step)
        self.gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.x = torch.tensor(x0, dtype=dtype)
            self.h = self.energy(self.x)
        self.rows = torch.arange(self.x.shape[0])

    def _box(self, y):
        # the kernels' _propose: a coordinate inside stays as it is (not even rounded); one
        # outside is folded back (reflect), or marks the proposal as rejected (reject)
        out = (y < self.lo) | (y > self.hi)
        if self.boundary == "reject":
            return y, ~out
        return torch.where(out, _reflect(y, self.lo, self.hi), y), None

    @torch.no_grad()
    def steps(self, n_steps):
        """``n_steps`` proposals per chain; returns the number of proposals made."""
        n, d = self.x.shape
        for _ in range(n_steps):
            noise = self.step * torch.randn(n, dtype=self.dtype, generator=self.gen)
            if self.move == "all":
                y, inside = self._box(self.x + noise[:, None] if d == 1 else
                                      self.x + self.step * torch.randn(n, d, dtype=self.dtype,
                                                                       generator=self.gen))
            else:
                j = torch.randint(d, (n,), generator=self.gen)
                y = self.x.clone()
                y[self.rows, j], inside = self._box(y[self.rows, j] + noise)
            h_new = self.energy(y)
            u = torch.rand(n, dtype=self.dtype, generator=self.gen)
            accept = torch.log(u) < self.h - h_new
            if inside is not None:
                accept &= inside if inside.dim() == 1 else inside.all(dim=1)
            self.x = torch.where(accept[:, None], y, self.x)
            self.h = torch.where(accept, h_new, self.h)
        return n * n_steps
