"""The benchmark problems: one energy, one set of chains, shared by every implementation.

Each function returns a dict with the network description ``spec``, its ``params``, the
multipliers ``lam``, initial chain states ``x0``, the box ``lo, hi`` (scalars) and the
proposal ``step``, all fixed by a seed, so the compiled kernels and the PyTorch reference
sample exactly the same distribution.
"""

import numpy as np

import mme_numba as mme

DENSE, CONV2D, TANH, SOFTPLUS, SIGMOID, RELU, SQUARE, POWERS, LOGSOFTMAX = range(9)


def _perturbed(theta, seed, scale):
    # Glorot weights and zero biases, perturbed so that biases are not all zero: closer to
    # a trained network than the initialisation.
    return theta + scale * np.random.default_rng(seed).standard_normal(theta.size)


def mlp_problem(n_chains=1024, seed=0):
    """The paper's 1-d observables: MLP 1 -> 32 -> 32 -> 2 (tanh) on ``[-6, 6]``."""
    net = mme.nn.mlp([1, 32, 32, 2], activation="tanh", random_state=seed)
    rng = np.random.default_rng(seed + 1)
    return {
        "name": "MLP 1-32-32-2 tanh",
        "spec": net.describe(),
        "params": _perturbed(net.kernel_params(), seed + 2, 0.3),
        "lam": np.array([1.3, -0.7]),
        "x0": rng.uniform(-6.0, 6.0, (n_chains, 1)),
        "lo": -6.0, "hi": 6.0, "step": 1.0,
    }


def cnn_problem(n_chains=512, seed=0):
    """The paper's digit observables: ``paper_cnn(16)`` on 8x8 images in ``[0, 1]``."""
    net = mme.nn.paper_cnn(16, random_state=seed)
    rng = np.random.default_rng(seed + 1)
    return {
        "name": "paper CNN (8x8 -> 16)",
        "spec": net.describe(),
        "params": _perturbed(net.kernel_params(), seed + 2, 0.05),
        "lam": 0.5 * rng.standard_normal(16),
        "x0": rng.uniform(0.0, 1.0, (n_chains, 64)),
        "lo": 0.0, "hi": 1.0, "step": 0.3,
    }


def flops_per_evaluation(spec):
    """Floating-point operations of one network evaluation plus the energy dot product.

    Counts 2 per multiply-add of DENSE and CONV2D rows (bias adds and activations are not
    counted), and ``2 m`` for ``lam · O``: the figure quoted as FLOP/s.
    """
    flops = 0
    for code, n_in, n_out, _, a, b, c, d in np.asarray(spec).tolist():
        if code == 0:
            flops += 2 * n_in * n_out
        elif code == 1:
            h, w, k = b, c, d
            c_out = n_out // (h * w)
            # exact tap count with "same" zero padding (taps falling outside are skipped)
            taps = sum(min(k, h + k // 2 - y) - max(0, k // 2 - y) for y in range(h)) * \
                sum(min(k, w + k // 2 - x) - max(0, k // 2 - x) for x in range(w))
            flops += 2 * c_out * a * taps
    return flops + 2 * int(np.asarray(spec)[-1, 2])


def scan_flops_per_proposal(spec, folded=True):
    """Floating-point operations of one incremental single-pixel update (``kernels/moves/scan.py``).

    For a ``conv(k) - act - conv(k) - act - dense`` network (``paper_cnn``), averaged over
    the pixels of the image (windows clipped at the borders): the first conv's window
    (``c1`` outputs per position), the second conv's contributions from every changed
    first-layer entry to each output it reaches, and the energy's change over the second
    conv's window: ``folded`` (``kernels/moves/scan.py``), one dot product with ``W^T lam``;
    otherwise (``kernels/moves/single.py``) every changed entry updates the ``m`` dense outputs,
    then ``lam . O``. 2 per multiply-add, activations not counted.
    """
    return 2 * _incremental(spec, folded)[0]


def _incremental(spec, folded):
    # (multiply-adds, activation calls) of one incremental update, averaged over the pixels
    spec = np.asarray(spec)
    h, w, k = int(spec[0, 5]), int(spec[0, 6]), int(spec[0, 7])
    c1 = int(spec[0, 2]) // (h * w)
    c2 = int(spec[2, 2]) // (h * w)
    m = int(spec[-1, 2])
    pad = k // 2

    def window(y, x, r):
        return [(a, b) for a in range(y - r, y + r + 1) for b in range(x - r, x + r + 1)
                if 0 <= a < h and 0 <= b < w]

    macs = calls = 0
    for y in range(h):
        for x in range(w):
            first = window(y, x, pad)
            macs += len(first) * c1
            macs += sum(len(window(a, b, pad)) for a, b in first) * c1 * c2
            second = len(window(y, x, 2 * pad))
            macs += second * c2 if folded else second * c2 * m + m
            calls += len(first) * c1 + second * c2
    return macs / (h * w), calls / (h * w)


# Transcendental calls per activated entry (exp, log, log1p, tanh each count one).
_CALLS = {TANH: 1, SOFTPLUS: 2, SIGMOID: 1}


def transcendentals_per_evaluation(spec):
    """Transcendental calls of one network evaluation: one per ``tanh``/``sigmoid`` entry, two
    per ``softplus`` (``exp``, ``log1p``), ``n + 1`` per ``logsoftmax`` of width ``n``."""
    calls = 0
    for code, n_in, *_ in np.asarray(spec).tolist():
        calls += _CALLS.get(code, 0) * n_in + (n_in + 1 if code == LOGSOFTMAX else 0)
    return calls


def transcendentals_per_proposal(spec, coordinates, incremental=False):
    """Transcendental calls of one Metropolis proposal: the network (a full evaluation, or
    the incremental update's activations) plus the draws: ``log``, ``sqrt`` and ``cos`` of a
    Box–Muller normal per moved coordinate and the acceptance test's ``log``."""
    net = _incremental(spec, True)[1] if incremental else transcendentals_per_evaluation(spec)
    return net + 3 * coordinates + 1
