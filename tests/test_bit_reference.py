"""Bit references: SHA-256 of every kernel's output on tiny fixed problems.

The hashes were taken on the kernels before the restructuring of ``kernels/`` (issue 16), so
a refactor that keeps a move's arithmetic must keep its bits. Where a change of arithmetic is
intended, the hash of that case is updated in a commit of its own that says so (and the
move's statistical tests must pass unchanged).

Cases: every move (``all``, ``single``, ``scan``, ``mala``) x a small MLP and the paper CNN
on 8x8 x ``reject``/``reflect`` x with/without a second energy term (a steering field), run
through the CPU backend (the path the models take); replica swaps; ``observables_batch``,
``energy_batch``, ``energy_grad_batch`` and the NumPy backprop of the networks.

The hashes hold for any thread count (every chain and row has its own arithmetic), not for
every CPU: one table per host arithmetic recorded (``cases.arithmetic``; the AMD hosts, and an
Intel Xeon where the CNN scan and NumPy's backprop differ in the last bits); elsewhere the
test skips. ``python tests/test_bit_reference.py`` prints the table for the current code.
"""

import hashlib

import numpy as np
import pytest

from cases import pinned
from mme_numba import kernels as K
from mme_numba.backends import NO_FIELD, get_backend
from mme_numba.kernels.moves.mala import energy_grad_batch
from mme_numba.kernels.moves.swap import replica_swaps
from mme_numba.nn import classifier_cnn, mlp, paper_cnn

N_CHAINS = 5
N_SWEEPS = {"all": 6, "single": 2, "scan": 2, "mala": 6}
STEP = {"all": 0.3, "single": 0.4, "scan": 0.4, "mala": 0.3}


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:32]


def _term(net, seed):
    m = net.describe()[-1, 2]
    return net.describe(), net.kernel_params(), 4.0 * np.random.default_rng(seed).normal(size=m)


def _network(name):
    """``(term, field, d)``: the energy term, a steering-field term and the dimension."""
    if name == "mlp":
        net = mlp([6, 10, 4], activation="tanh", random_state=1)
        field = mlp([6, 5, 3], activation="softplus", output_activation="logsoftmax",
                    random_state=2)
        return _term(net, 3), _term(field, 4), 6
    net = paper_cnn(n_outputs=6, image_shape=(8, 8), channels=(3, 4), random_state=5)
    field = classifier_cnn(n_classes=4, image_shape=(8, 8), channels=(2, 3), hidden=5,
                           random_state=6)
    return _term(net, 7), _term(field, 8), 64


def _start(term, field, d, seed, boundary):
    rng = np.random.default_rng(seed)
    x = 0.1 + 0.8 * rng.random((N_CHAINS, d))
    if boundary == "reflect":
        x[:, ::5] = 0.0  # on the lower face, as many pixels are
    energy = K.energy_batch(*term, x, *field)
    return x, energy, K.seed_states(seed, N_CHAINS), np.zeros(N_CHAINS, np.int64)


def sweep_case(net, move, boundary, with_field):
    term, field, d = _network(net)
    field = field if with_field else NO_FIELD
    x, energy, rng_state, accepted = _start(term, field, d, 11, boundary)
    step = STEP[move] * (1.0 + 0.1 * np.arange(N_CHAINS))
    if move in ("all", "mala"):
        step /= np.sqrt(d / 6)  # the all-coordinate moves of the CNN must accept some
    get_backend("cpu").sweep(*term, field, x, energy, 0.0, 1.0, step, N_SWEEPS[move], move,
                             boundary, rng_state, accepted)
    n_proposals = N_CHAINS * N_SWEEPS[move] * (d if move in ("single", "scan") else 1)
    assert 0 < accepted.sum() < n_proposals, "a case must both accept and reject"
    return _digest(x, energy, rng_state, accepted)


def swap_case():
    K_, n, d = 4, N_CHAINS, 3
    rng = np.random.default_rng(12)
    x = rng.random((K_, n, d))
    energy = rng.normal(size=(K_, n)) * 3.0
    rng_state = K.seed_states(13, n)
    accepted = np.zeros((n, K_ - 1), np.int64)
    betas = np.array([1.0, 0.7, 0.45, 0.2])
    for parity in (0, 1, 0, 1):
        replica_swaps(x, energy, betas, rng_state, parity, accepted)
    return _digest(x, energy, rng_state, accepted)


def batch_case(net, with_field):
    term, field, d = _network(net)
    field = field if with_field else NO_FIELD
    X = np.random.default_rng(14).random((7, d))
    obs = K.observables_batch(term[0], term[1], X)
    e = K.energy_batch(*term, X, *field)
    eg, g = energy_grad_batch(*term, X, *field)
    return _digest(obs, e, eg, g)


def backprop_case(net):
    nets = {"mlp": lambda: mlp([6, 10, 4], activation="tanh", random_state=1),
            "cnn": lambda: paper_cnn(n_outputs=6, image_shape=(8, 8), channels=(3, 4),
                                     random_state=5)}
    model = nets[net]()
    X = np.random.default_rng(15).random((7, model.n_features))
    dO = np.random.default_rng(16).normal(size=(7, model.describe()[-1, 2]))
    return _digest(model.forward(X), *model.backward(X, dO))


SWEEP_CASES = [(net, move, boundary, f) for net in ("mlp", "cnn")
               for move in ("all", "single", "scan", "mala")
               for boundary in ("reject", "reflect") for f in (False, True)]

ZEN = {  # taken on main at 5f70446 (before issue 16), 1 and 2 threads, AMD Zen 3 and 5
    'mlp-all-reject-plain': '8af5f2202341d13f5e9f22ae72b62843',
    'mlp-all-reject-field': '4bbf135c852dd0bbcf2540f9858e2e74',
    'mlp-all-reflect-plain': '9b0c0cba242e52ea141a9264a0c09b6d',
    'mlp-all-reflect-field': 'bb8655611f0752505a6253a6c79fe0a2',
    'mlp-single-reject-plain': 'b3146ecd28d7c64c7f52c37a1b3910e0',
    'mlp-single-reject-field': '5fd63334063495b8ed6ba8781d3427ad',
    'mlp-single-reflect-plain': '7147b55f77ca6a7cc8c64069be887af3',
    'mlp-single-reflect-field': 'c33c518577b55e876c565fcf87bee669',
    'mlp-scan-reject-plain': '39bd58bb10a21e8647f24acb3a3f3c98',
    'mlp-scan-reject-field': '69faf49e6bd2386f0131a3e469adbff7',
    'mlp-scan-reflect-plain': 'bf8d356d9ba16c8de813f39508bcd0d4',
    'mlp-scan-reflect-field': 'ffb3ab99b83d9a3e9d78f6d8479174bc',
    'mlp-mala-reject-plain': 'edec1fe93d7b9fc7ebdcf84b268712b5',
    'mlp-mala-reject-field': '97daee07bdd26e7c0cf84e2edfbded4e',
    'mlp-mala-reflect-plain': 'a89d09e6a22e7d409d570c0b09c88249',
    'mlp-mala-reflect-field': '405388e770a0f6712c5b6eab2c88d304',
    'cnn-all-reject-plain': '1bfd1c562a33678f64eb42c17299faa2',
    'cnn-all-reject-field': '8f8dbce321b1c01222361d4f343f5d2c',
    'cnn-all-reflect-plain': 'f4f157efda8104f70dfa7fc622cbcf98',
    'cnn-all-reflect-field': 'fa62ac72783d7aa1a9cdb17474d020c0',
    'cnn-single-reject-plain': 'f1718a055f62f1e48ccc00bf25d1694c',
    'cnn-single-reject-field': 'd3ec6c74a9045b21e8b896810fd193f1',
    'cnn-single-reflect-plain': '732d43304862ee5b95327a63463e38ca',
    'cnn-single-reflect-field': '7f2dcd100adde953dbbf23eb9639656c',
    'cnn-scan-reject-plain': '3a20eac2b047b13dbfb0674e66e12f8c',
    'cnn-scan-reject-field': '8f591877b2b10958acbb758edd7dc013',
    'cnn-scan-reflect-plain': 'f3c7b597b3906b01e21a8459f15b2526',
    'cnn-scan-reflect-field': '04a430dae3caa07c53132c7fd6a6d64d',
    'cnn-mala-reject-plain': 'ea44ad88ebd4fa3362ac169c6d16f784',
    'cnn-mala-reject-field': '378995f9f8fe905f7571ee4f49016834',
    'cnn-mala-reflect-plain': '63ae1bb4b322d799c97fa001f2cc7403',
    'cnn-mala-reflect-field': '440e9f90b6222dba35101062558d725a',
    'swaps': 'b2c62303de8800e300c29e71c7e909b0',
    'batch-mlp-0': 'acc3cb1eac112f585e87bcfe4f566869',
    'batch-mlp-1': 'c32044036922aaf1ab39ec8acddcb786',
    'backprop-mlp': 'ccfb8233c56ea7ef91b9fb73793c2b57',
    'batch-cnn-0': '4097875b7e74b1f7d3b3f95db3f25d37',
    'batch-cnn-1': 'c346bf1be2526aaf42fe98fef2914046',
    'backprop-cnn': '9d5900aa55c0564db7ad57ba05602a28',
}

# An Intel Xeon (family 6, model 167; LLVM CPU "rocketlake", OpenBLAS "SkylakeX"), main at
# 7ff1881, whose Zen hashes equal the table above: the CNN scan's vector code and the BLAS
# matrix products of the backprop round differently there; every other case is the same.
ROCKETLAKE = {**ZEN,
              'cnn-scan-reject-plain': '261c2bdbf527376a54e1d5cb670a1def',
              'cnn-scan-reflect-plain': '94eaf558f7256f7c8d2715cd59efb64f',
              'cnn-scan-reflect-field': '6dcfc0bf82cff4280110885b040b00fe',
              'backprop-mlp': 'bfbba5fba727e2d3fe722cd78ffe62ca',
              'backprop-cnn': 'c0b468c36c1671cde5feb95100148ce1'}

REFERENCES = {"zen": ZEN, "rocketlake/SkylakeX": ROCKETLAKE}


def _key(*parts):
    return "-".join(str(p) for p in parts)


@pytest.mark.parametrize("net,move,boundary,with_field", SWEEP_CASES)
def test_sweep_bits(net, move, boundary, with_field):
    key = _key(net, move, boundary, "field" if with_field else "plain")
    assert sweep_case(net, move, boundary, with_field) == pinned(REFERENCES)[key]


def test_swap_bits():
    assert swap_case() == pinned(REFERENCES)["swaps"]


@pytest.mark.parametrize("net", ["mlp", "cnn"])
@pytest.mark.parametrize("with_field", [False, True])
def test_batch_bits(net, with_field):
    assert batch_case(net, with_field) == pinned(REFERENCES)[_key("batch", net, int(with_field))]


@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_backprop_bits(net):
    assert backprop_case(net) == pinned(REFERENCES)[_key("backprop", net)]


def table():
    """The reference table of the current code."""
    out = {}
    for net, move, boundary, f in SWEEP_CASES:
        out[_key(net, move, boundary, "field" if f else "plain")] = sweep_case(
            net, move, boundary, f)
    out["swaps"] = swap_case()
    for net in ("mlp", "cnn"):
        for f in (False, True):
            out[_key("batch", net, int(f))] = batch_case(net, f)
        out[_key("backprop", net)] = backprop_case(net)
    return out


if __name__ == "__main__":
    for k, v in table().items():
        print(f"    {k!r}: {v!r},")
