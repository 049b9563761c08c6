"""`mme-numba steer` and the network files it reads (save_network / load_network)."""

import subprocess
import sys

import numpy as np
import pytest

import mme_numba as mme
from mme_numba import fields
from mme_numba.io import load_network, save_network
from mme_numba.nn import Dense, LogSoftmax, Sequential, Tanh


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("steer")
    X = mme.datasets.gaussian_mixture(400, means=(-2, 2), scales=(0.5, 0.5), seed=0)
    model = mme.MaxEnt(mme.observables.polynomial(4), support=(-5.0, 5.0), n_chains=256,
                       sweeps=10, step_size=3.0, lambda_steps=3, random_state=0).fit(X, 60)
    model.save(d / "model.npz")
    clf = Sequential([Dense(1, 8), Tanh(), Dense(8, 2), LogSoftmax()], random_state=0)
    fields.train_classifier(clf, X, (X[:, 0] > 0).astype(int), epochs=40, lr=0.01)
    save_network(clf, d / "clf.npz")
    return d, X


def test_network_files_round_trip_and_reject_models(files):
    d, X = files
    clf = load_network(d / "clf.npz")
    assert isinstance(clf.layers[-1], LogSoftmax)
    np.testing.assert_array_equal(clf.forward(X), load_network(d / "clf.npz").forward(X))
    with pytest.raises(ValueError, match="not a saved mme_numba network"):
        load_network(d / "model.npz")


def test_steer_command_moves_samples_to_the_target_side(files):
    """Class 1 = right mode: with h = 3 over 90 % of the samples land at x > 0 (quadrature
    gives 0.95 for this field), against about half without steering."""
    d, _ = files
    out = d / "right.npy"
    res = subprocess.run([sys.executable, "-m", "mme_numba.cli", "steer", str(d / "model.npz"),
                          "--classifier", str(d / "clf.npz"), "--target", "1", "--strength",
                          "3", "-n", "256", "--sweeps", "30", "--seed", "1", "-o", str(out),
                          "--save-model", str(d / "steered.npz")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    xs = np.load(out)
    assert xs.shape == (256, 1)
    assert np.mean(xs[:, 0] > 0) > 0.9
    assert "classified as the target" in res.stdout
    steered = mme.load(d / "steered.npz")
    assert steered.field_strength_ == 3.0


def test_steer_command_names_bad_targets(files):
    d, _ = files
    res = subprocess.run([sys.executable, "-m", "mme_numba.cli", "steer", str(d / "model.npz"),
                          "--classifier", str(d / "clf.npz"), "--target", "7", "-n", "4",
                          "-o", str(d / "x.npy")], capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "target" in res.stderr
