"""The mme-numba command line, run as a user would (subprocess), on tiny configurations.

The centre piece: a training run killed with SIGKILL after its first checkpoint and
continued with --resume ends bit-identical (λ, θ, chains, RNG states, metrics) to an
uninterrupted run.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mme_numba import config as cfgmod

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "examples" / "configs").glob("*.toml"))

TINY = """
[data]
source = "gaussian_mixture"
n = 200
seed = 0

[observables]
kind = "mlp"
sizes = [1, 8, 2]
random_state = 0

[model]
support = [-6.0, 6.0]
n_chains = 64
burn_in = 20
step_size = 3.0
lr_theta = 0.01
random_state = 0

[train]
epochs = 30
checkpoint_every = 10
eval_every = 10
"""


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def cli(*args, cwd, check=True):
    """Run ``python -m mme_numba.cli ARGS``; returns the CompletedProcess."""
    res = subprocess.run([sys.executable, "-m", "mme_numba.cli", *map(str, args)], cwd=cwd,
                         env=_env(), capture_output=True, text=True, timeout=120)
    if check and res.returncode != 0:
        raise AssertionError(f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}")
    return res


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "tiny.toml").write_text(TINY)
    return d


@pytest.fixture(scope="module")
def trained(workdir):
    res = cli("train", "tiny.toml", "--out", "run", "--no-progress", cwd=workdir)
    return workdir / "run", res


# ----------------------------------------------------------------------------- help
def test_help_for_every_command(workdir):
    out = cli("--help", cwd=workdir).stdout
    for cmd in ("train", "sample", "evaluate", "plot", "demo"):
        assert cmd in out
        sub = cli(cmd, "--help", cwd=workdir).stdout
        assert f"usage: mme-numba {cmd}" in sub
    assert "--resume" in cli("train", "--help", cwd=workdir).stdout
    assert cli("frobnicate", cwd=workdir, check=False).returncode == 2


# ----------------------------------------------------------------------------- train
def test_train_writes_run_folder(trained):
    run, res = trained
    for name in ("model.npz", "metrics.jsonl", "config.json", "history.png", "density.png"):
        assert (run / name).stat().st_size > 0, name
    recs = metrics(run)
    assert [r["epoch"] for r in recs] == list(range(1, 31))
    assert all(np.isfinite(r["chi2"]) and 0 <= r["acceptance"] <= 1 for r in recs)
    # quadrature entropy and KL every eval_every = 10 epochs, nowhere else
    assert [r["epoch"] for r in recs if "kl" in r] == [10, 20, 30]
    assert all(r["kl"] >= 0 and np.isfinite(r["entropy"]) for r in recs if "kl" in r)
    assert json.loads((run / "config.json").read_text())["model"]["n_chains"] == 64
    assert "trained MinMaxEnt to epoch 30" in res.stdout
    assert res.stderr.count("\r") == 0          # no progress bar when not a terminal


def test_train_refuses_to_clobber_and_checks_resume_config(trained, workdir):
    res = cli("train", "tiny.toml", "--out", "run", cwd=workdir, check=False)
    assert res.returncode != 0 and "--resume" in res.stderr
    res = cli("train", "tiny.toml", "--out", "run", "--resume", "--set", "model.n_chains=32",
              cwd=workdir, check=False)
    assert res.returncode != 0 and "[model] differs" in res.stderr
    # resuming a finished run with a larger --epochs extends it
    ext = workdir / "run_ext"
    cli("train", "tiny.toml", "--out", ext, "--epochs", "10", "--no-plots", cwd=workdir)
    cli("train", "tiny.toml", "--out", ext, "--epochs", "15", "--resume", "--no-plots",
        cwd=workdir)
    assert [r["epoch"] for r in metrics(ext)] == list(range(1, 16))


def test_kill9_then_resume_is_bit_identical(workdir):
    common = ["--epochs", "150", "--checkpoint-every", "10", "--no-progress", "--no-plots"]
    ref, killed = workdir / "ref", workdir / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "mme_numba.cli", "train", "tiny.toml",
                             "--out", str(killed), *common], cwd=workdir, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt, log = killed / "model.npz", killed / "metrics.jsonl"
    deadline = time.monotonic() + 90
    # Kill past the first checkpoint and a few epochs beyond it, so the metrics log holds
    # lines the checkpoint does not: --resume must drop them.
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpt.exists() and log.exists() and log.read_text().count("\n") >= 13:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    with np.load(ckpt) as f:
        ckpt_epoch = json.loads(str(f["meta"]))["epoch"]
    assert 10 <= ckpt_epoch < 150
    assert len(metrics(killed)) >= 13

    cli("train", "tiny.toml", "--out", killed, "--resume", *common, cwd=workdir)
    cli("train", "tiny.toml", "--out", ref, *common, cwd=workdir)
    with np.load(ref / "model.npz") as a, np.load(killed / "model.npz") as b:
        for key in ("lambda", "theta", "chains", "rng_state", "step", "adam_theta_m"):
            if key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert "theta" in a.files and "lambda" in a.files
    ra, rb = metrics(ref), metrics(killed)
    assert [r["epoch"] for r in rb] == list(range(1, 151))
    for x, y in zip(ra, rb):
        assert {k: v for k, v in x.items() if not k.startswith("t_")} == \
               {k: v for k, v in y.items() if not k.startswith("t_")}


# ----------------------------------------------------------------------------- sample
def test_sample_is_seeded_and_leaves_model_file_alone(trained, workdir):
    run, _ = trained
    before = digest(run / "model.npz")
    res = cli("sample", run / "model.npz", "-n", 100, "-o", "a.npy", "--seed", 5, cwd=workdir)
    assert "wrote 100 samples of dimension 1" in res.stdout
    cli("sample", run / "model.npz", "-n", 100, "-o", "b.npy", "--seed", 5, cwd=workdir)
    cli("sample", run / "model.npz", "-n", 100, "-o", "c.csv", "--seed", 6, "--sweeps", 3,
        cwd=workdir)
    a, b = np.load(workdir / "a.npy"), np.load(workdir / "b.npy")
    c = np.loadtxt(workdir / "c.csv", delimiter=",")
    assert a.shape == (100, 1) and np.all(np.abs(a) <= 6)
    np.testing.assert_array_equal(a, b)
    assert c.shape == (100,) and not np.array_equal(a[:, 0], c)
    assert digest(run / "model.npz") == before


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_table_and_json(trained, workdir):
    run, _ = trained
    res = cli("evaluate", run / "model.npz", "--steps", 60, "--json", "eval.json", cwd=workdir)
    rep = json.loads((workdir / "eval.json").read_text())
    e = rep["energy"]
    assert rep["epoch"] == 30 and rep["n_chains"] == 64 and e["n_steps"] == 60
    assert len(e["tau"]) == 64 and all(t > 0 for t in e["tau"])
    assert e["ess_total"] == pytest.approx(sum(60 / t for t in e["tau"]))
    assert e["rhat"] > 0.9 and 0 < rep["moved_fraction"] <= 1
    assert 0 <= rep["chi2"] < 10 and rep["kl"] >= 0
    # On the training data the cross-entropy matches the entropy up to the residual χ²
    # (docs/method.md §12): a loose check that the quadrature and the data were both found.
    assert abs(rep["cross_entropy"] - rep["entropy"]) < 0.5
    assert rep["true_entropy"] == pytest.approx(1.419, abs=0.01)  # ½ ln(2πe·0.25) + ln 2
    assert 0 <= rep["mode_crossing_fraction"] <= 1
    for label in ("split-R-hat energy", "tau_int energy", "ESS energy", "chi2 (Eq. 5)",
                  "KL(true || model)", "mixed"):
        assert label in res.stdout
    # 60 sweeps are too short to trust tau: the table repeats the warning.
    assert "warning: energy: trace of 60 steps is shorter" in res.stdout
    # 5 sweeps × 64 chains cannot reach the 400 effective draws: not mixed, and --strict
    # turns that into a failing exit status.
    strict = cli("evaluate", run / "model.npz", "--steps", 5, "--strict", cwd=workdir,
                 check=False)
    assert strict.returncode == 1 and "effective sample size" in strict.stdout


def test_evaluate_with_explicit_data_file(trained, workdir):
    run, _ = trained
    X = cfgmod.build_data(cfgmod.load_config(workdir / "tiny.toml")["data"])
    np.save(workdir / "data.npy", X)
    res = cli("evaluate", run / "model.npz", "--steps", 20, "--data", "data.npy", cwd=workdir)
    assert "chi2 (Eq. 5)" in res.stdout and "KL" not in res.stdout  # no known true density


# ----------------------------------------------------------------------------- plot
def test_plot_writes_figures(trained, workdir):
    run, _ = trained
    res = cli("plot", run / "model.npz", "--out", "figs", cwd=workdir)
    for name in ("history.png", "density.png"):
        assert (workdir / "figs" / name).stat().st_size > 5000
        assert name in res.stdout


# ----------------------------------------------------------------------------- demo
def test_demo_small(workdir):
    res = cli("demo", "--out", "demo", "--epochs", 5, "--no-progress",
              "--set", "model.n_chains=64", "--set", "model.burn_in=20", cwd=workdir)
    for name in ("density.png", "history.png", "model.npz", "metrics.jsonl"):
        assert (workdir / "demo" / name).stat().st_size > 0
    assert "KL(true || model)" in res.stdout and "mass on x > 0" in res.stdout
    kl = float(res.stdout.split("KL(true || model)")[1].split()[0])
    assert kl >= 0


# ----------------------------------------------------------------------------- configs
def test_overrides_parse_as_toml():
    assert cfgmod.parse_override("model.n_chains=256") == (("model", "n_chains"), 256)
    assert cfgmod.parse_override("model.support=[-8, 8]") == (("model", "support"), [-8, 8])
    assert cfgmod.parse_override("model.move=single") == (("model", "move"), "single")
    assert cfgmod.parse_override('train.out="a b"') == (("train", "out"), "a b")
    for bad in ("n_chains=3", "model=3", "nosuch.key=1", "model.x"):
        with pytest.raises(ValueError):
            cfgmod.parse_override(bad)


def test_load_config_defaults_and_overrides(workdir):
    cfg = cfgmod.load_config(workdir / "tiny.toml", ["model.sweeps=3", "data.n=50"])
    assert cfg["model"]["sweeps"] == 3 and cfg["model"]["class"] == "MinMaxEnt"
    assert cfg["train"]["out"] == str(Path("runs") / "tiny")
    assert cfgmod.build_data(cfg["data"]).shape == (50, 1)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_example_configs_build(path):
    cfg = cfgmod.load_config(path)
    X = cfgmod.build_data(cfg["data"])
    model = cfgmod.build_model(cfg)
    lo, hi = cfgmod.model_kwargs(cfg["model"])[1]["support"]
    assert X.ndim == 2 and X.shape[1] == model.observables.n_features
    assert np.all((X >= np.asarray(lo)) & (X <= np.asarray(hi)))  # fit() would refuse otherwise
    json.dumps(cfg)                                                # saved as config.json


def test_example_configs_cover_the_paper():
    assert {p.stem for p in CONFIGS} >= {"bimodal", "bimodal_10pts", "cauchy", "pca2d", "digits"}
