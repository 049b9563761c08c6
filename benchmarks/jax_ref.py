"""The batched JAX reference: the sampler as a JAX user would write it.

One ``jax.jit``-compiled function advances every chain through a whole run of ``n_steps``
Metropolis steps: ``lax.fori_loop`` over the steps, each step one proposal for all chains
at once (one array), one forward pass of the whole batch, a vectorised accept/reject, and
``jax.random`` keys split inside the loop. float32 and float64 (``jax_enable_x64`` is
switched on at import, and every array of a float32 sampler is created as float32, so
nothing is promoted). The network is read from the same ``(spec, params, lam)`` description
that the compiled kernels interpret, so both sides evaluate exactly the same energy.

Moves and the box rule are the kernels' (``mme_numba.kernels.moves``): all-coordinate
Gaussian moves or one coordinate drawn at random per chain per step (random scan);
``boundary="reflect"`` folds a coordinate outside ``[lo, hi]`` back by mirror reflections,
``"reject"`` rejects a proposal with any coordinate outside. Acceptance is
``log(u) < H(x) - H(y)``. The random streams are JAX's, not the kernels' xoshiro: the chains
are equal in distribution, not bit for bit.

JAX is not a dependency of mme_numba; this module is imported only by the benchmark
workers and ``tests/test_peers.py`` (``pip install -e .[bench]``).
"""

import functools

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

DENSE, CONV2D, TANH, SOFTPLUS, SIGMOID, RELU, SQUARE, POWERS, LOGSOFTMAX = range(9)


def _dense(W, bias):
    # on a flat batch, or on NHWC images flattened in (H, W, C) order (W's columns permuted)
    return lambda h: h.reshape(h.shape[0], -1) @ W.T + bias


def _conv(W, bias):
    # NHWC images, HWIO kernel, stride 1, zero "same" padding: the kernels' CONV2D row. NHWC
    # is JAX's (and Flax's) layout and XLA's fast one on CPU: the paper CNN's float32 forward
    # ran 2.9x faster than with NCHW.
    return lambda h: lax.conv_general_dilated(h, W, (1, 1), "SAME",
                                              dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias


def _to_nhwc(c, h, w):
    # the kernels' flat (C, H, W) order to NHWC images
    return lambda x: x.reshape(-1, c, h, w).transpose(0, 2, 3, 1)


def _to_flat(x):
    # NHWC images back to the kernels' flat (C, H, W) order
    return x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)


def _powers(degree):
    # x_j, x_j^2, ..., x_j^degree for each input j (output index j * degree + q)
    exps = jnp.arange(1, degree + 1)
    return lambda h: (h[:, :, None] ** exps).reshape(h.shape[0], -1)


def energy_function(spec, params, lam, dtype=jnp.float64):
    """``H(X) = lam · O(X)`` for a batch ``X (n, d)``, a pure function of ``X``.

    Between convolutions the activations stay NHWC images (elementwise rows do not care);
    a DENSE row after them reads them with its weight columns permuted to (H, W, C) order,
    and any other row gets them back in the kernels' flat (C, H, W) order.
    """
    params = np.asarray(params, dtype=np.float64)
    ops = []
    images = None   # (H, W, C) while the activations are NHWC images, else None (flat)
    for code, n_in, n_out, off, a, b, c, d in np.asarray(spec).tolist():
        if code == DENSE:
            W = params[off:off + n_in * n_out].reshape(n_out, n_in)
            if images is not None:
                W = W.reshape(n_out, images[2], images[0], images[1]).transpose(0, 2, 3, 1)
                images = None
            bias = (jnp.asarray(params[off + n_in * n_out:off + n_in * n_out + n_out], dtype)
                    if a else jnp.zeros(n_out, dtype))
            ops.append(_dense(jnp.asarray(W.reshape(n_out, n_in), dtype), bias))
        elif code == CONV2D:
            c_out = n_out // (b * c)
            n_w = c_out * a * d * d
            W = params[off:off + n_w].reshape(c_out, a, d, d).transpose(2, 3, 1, 0)
            bias = jnp.asarray(params[off + n_w:off + n_w + c_out], dtype)
            if images is None:
                ops.append(_to_nhwc(a, b, c))
            ops.append(_conv(jnp.asarray(W, dtype), bias))
            images = (b, c, c_out)
        elif code in (TANH, SOFTPLUS, SIGMOID, RELU, SQUARE):
            pass   # elementwise: any layout
        elif images is not None:
            ops.append(_to_flat)
            images = None
        if code == TANH:
            ops.append(jnp.tanh)
        elif code == SOFTPLUS:
            ops.append(jax.nn.softplus)
        elif code == SIGMOID:
            ops.append(jax.nn.sigmoid)
        elif code == RELU:
            ops.append(jax.nn.relu)
        elif code == SQUARE:
            ops.append(jnp.square)
        elif code == POWERS:
            ops.append(_powers(a))
        elif code == LOGSOFTMAX:
            ops.append(functools.partial(jax.nn.log_softmax, axis=1))
        elif code not in (DENSE, CONV2D):
            raise ValueError(f"op code {code} has no JAX twin here")
    if images is not None:
        ops.append(_to_flat)
    lam_j = jnp.asarray(lam, dtype)

    def energy(X):
        h = X
        for op in ops:
            h = op(h)
        return h @ lam_j

    return energy


def reflect(y, lo, hi):
    """Fold ``y`` into ``[lo, hi]`` by mirror reflections (the kernels' closed form)."""
    w = hi - lo
    t = jnp.remainder(y - lo, 2 * w)
    return jnp.clip(lo + jnp.where(t > w, 2 * w - t, t), lo, hi)


def make_run(energy, n_chains, d, lo, hi, step, move="all", boundary="reflect",
             dtype=jnp.float64):
    """The whole run as one compiled function ``run(key, x, h, n_steps) -> (key, x, h, acc)``.

    ``x (n_chains, d)`` and ``h (n_chains,)`` are the states and their energies, ``acc`` the
    accepted proposals per chain in this run. ``n_steps`` is a traced argument, so runs of any
    length share one compilation.
    """
    if move not in ("all", "single"):
        raise ValueError(f"move must be 'all' or 'single', got {move!r}")
    if boundary not in ("reflect", "reject"):
        raise ValueError(f"boundary must be 'reflect' or 'reject', got {boundary!r}")
    lo, hi, step = (jnp.asarray(v, dtype) for v in (lo, hi, step))
    cols = jnp.arange(d, dtype=jnp.int32)

    def box(v):
        # the kernels' _propose: a coordinate inside stays as it is (not even rounded); one
        # outside is folded back (reflect), or rejects the proposal (reject)
        out = (v < lo) | (v > hi)
        if boundary == "reject":
            return v, ~jnp.any(out, axis=1)
        return jnp.where(out, reflect(v, lo, hi), v), True

    def one_step(_, carry):
        key, x, h, acc = carry
        key, k_move, k_coord, k_accept = jax.random.split(key, 4)
        if move == "all":
            y, inside = box(x + step * jax.random.normal(k_move, (n_chains, d), dtype))
        else:
            j = jax.random.randint(k_coord, (n_chains, 1), 0, d, dtype=jnp.int32)
            noise = step * jax.random.normal(k_move, (n_chains, 1), dtype)
            v, inside = box(jnp.take_along_axis(x, j, axis=1) + noise)
            y = jnp.where(cols[None, :] == j, v, x)
        h_new = energy(y)
        u = jax.random.uniform(k_accept, (n_chains,), dtype)
        accept = (jnp.log(u) < h - h_new) & inside
        x = jnp.where(accept[:, None], y, x)
        h = jnp.where(accept, h_new, h)
        return key, x, h, acc + accept.astype(jnp.int32)

    @jax.jit
    def run(key, x, h, n_steps):
        acc = jnp.zeros(n_chains, jnp.int32)
        return lax.fori_loop(0, n_steps, one_step, (key, x, h, acc))

    return run


class BatchedSampler:
    """Metropolis chains on ``exp(-H)`` in a box, all chains advanced as one array.

    The parameters are those of ``torch_ref.BatchedSampler`` (the energy ``spec, params,
    lam``; ``x0 (n_chains, d)``; the box ``lo, hi``; ``step``; ``move``; ``boundary``;
    ``seed``), with ``dtype`` a name, ``"float32"`` or ``"float64"``. ``last_accepted``
    holds the accepted proposals per chain of the last :meth:`steps` call.
    """

    def __init__(self, spec, params, lam, x0, lo, hi, step, move="all", boundary="reflect",
                 dtype="float64", seed=0):
        self.dtype = jnp.dtype(dtype)
        self.energy = energy_function(spec, params, lam, self.dtype)
        n, d = np.shape(x0)
        self._run = make_run(self.energy, n, d, lo, hi, step, move, boundary, self.dtype)
        self.key = jax.random.key(seed)
        self.x = jnp.asarray(x0, self.dtype)
        self.h = jax.jit(self.energy)(self.x)
        self.last_accepted = jnp.zeros(n, jnp.int32)

    def steps(self, n_steps):
        """``n_steps`` proposals per chain; returns the number of proposals made."""
        self.key, self.x, self.h, self.last_accepted = self._run(self.key, self.x, self.h,
                                                                  n_steps)
        self.x.block_until_ready()
        return self.x.shape[0] * n_steps
