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

import mme_numba as mme

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
    assert res.returncode == 2 and "[model] n_chains: cannot resume" in res.stderr
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
    # the NLL of the data is the cross-entropy: -mean ln p with ln Z by quadrature (d = 1)
    assert rep["nll"] == pytest.approx(rep["cross_entropy"], abs=1e-6)
    assert rep["nll_err"] < 1e-3 and rep["nll_sem"] > 0
    assert "NLL -<ln p>_data (nats)" in res.stdout and "ln Z" in res.stdout
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


# ----------------------------------------------------------------------------- conveniences
def _stderr_notes(res):
    return [line for line in res.stderr.splitlines() if line.startswith("note:")]


def _bare_model(trained, workdir):
    """The trained model copied alone into a folder (no config.json beside it)."""
    bare = workdir / "bare"
    bare.mkdir(exist_ok=True)
    (bare / "model.npz").write_bytes((trained[0] / "model.npz").read_bytes())
    return bare / "model.npz"


def _version(res, workdir, trained):
    import mme_numba

    assert res.stdout.strip() == f"mme-numba {mme_numba.__version__}"


def _txt(res, workdir, trained):
    x = np.loadtxt(workdir / "s.txt")
    assert x.shape == (20,) and not (workdir / "s.txt.npy").exists()
    assert "to s.txt" in res.stdout


def _npz(res, workdir, trained):
    with np.load(workdir / "s.npz") as f:
        assert f["X"].shape == (20, 1)


def _npy(res, workdir, trained):
    assert np.load(workdir / "s.npy").shape == (20, 1)


def _csv(res, workdir, trained):
    assert np.loadtxt(workdir / "s.csv", delimiter=",").shape == (20,)


def _quiet(res, workdir, trained):
    assert res.stderr == "" and "chains x sweeps" in res.stdout


def _evaluate_skips(res, workdir, trained):
    notes = _stderr_notes(res)
    assert any("no data" in n and "config.json" in n for n in notes), res.stderr
    assert any("chi2" in n and "skipped" in n for n in notes)
    assert "chi2 (Eq. 5)" not in res.stdout and "entropy S" in res.stdout
    assert len(notes) == len(set(notes))


def _plot_skips(res, workdir, trained):
    notes = _stderr_notes(res)
    assert any("density.png skipped" in n and "no data" in n for n in notes), res.stderr
    assert (workdir / "bare_figs" / "history.png").exists()
    assert not (workdir / "bare_figs" / "density.png").exists()


def _warnings_once(res, workdir, trained):
    both = res.stdout + res.stderr
    assert both.count("effective sample size") == 1, both
    assert res.returncode == 1                      # --strict: not mixed


def _check_ok(res, workdir, trained):
    assert "tiny.toml: ok: MinMaxEnt on 200 rows x 1 features" in res.stdout


def _resume_noop(res, workdir, trained):
    assert "to epoch 30" in res.stdout


#: (id, command line, expected exit status, check(res, workdir, trained)); MODEL is the
#: trained run's model, BARE the same model alone in a folder without its config.json.
CONVENIENCES = [
    ("version", ["--version"], 0, _version),
    ("o-txt-keeps-name", ["sample", "MODEL", "-n", 20, "-o", "s.txt", "--seed", 1], 0, _txt),
    ("o-npz", ["sample", "MODEL", "-n", 20, "-o", "s.npz", "--seed", 1], 0, _npz),
    ("o-npy", ["sample", "MODEL", "-n", 20, "-o", "s.npy", "--seed", 1], 0, _npy),
    ("o-csv", ["sample", "MODEL", "-n", 20, "-o", "s.csv", "--seed", 1], 0, _csv),
    ("quiet-before", ["-q", "evaluate", "BARE", "--steps", 20], 0, _quiet),
    ("quiet-after", ["evaluate", "BARE", "--steps", 20, "-q"], 0, _quiet),
    ("evaluate-says-what-it-skips", ["evaluate", "BARE", "--steps", 20], 0, _evaluate_skips),
    ("plot-says-what-it-skips", ["plot", "BARE", "--out", "bare_figs"], 0, _plot_skips),
    ("each-warning-once", ["evaluate", "MODEL", "--steps", 5, "--strict"], 1, _warnings_once),
    ("check", ["check", "tiny.toml"], 0, _check_ok),
    ("resume-to-the-same-epochs", ["train", "tiny.toml", "--out", "run", "--resume",
                                   "--no-plots"], 0, _resume_noop),
]


@pytest.mark.parametrize("name,args,status,check", CONVENIENCES,
                         ids=[c[0] for c in CONVENIENCES])
def test_convenience(trained, workdir, name, args, status, check):
    model, bare = trained[0] / "model.npz", _bare_model(trained, workdir)
    args = [model if a == "MODEL" else bare if a == "BARE" else a for a in args]
    res = cli(*args, cwd=workdir, check=False)
    assert res.returncode == status, res.stderr
    assert "Traceback" not in res.stderr
    check(res, workdir, trained)


def test_files_are_written_with_the_umask(trained):
    umask = os.umask(0)
    os.umask(umask)
    run, _ = trained
    for name in ("model.npz", "metrics.jsonl", "config.json"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


NOTICE_SCRIPT = """
import sys
from mme_numba import cli
cli._announce_compilation()
sys.path.insert(0, sys.argv[1])
from kernels_for_notice import f, g
print(f(1.0) + g(2.0))
"""

KERNELS = """
from numba import njit

@njit(cache=True)
def f(x):
    return x + 1.0

@njit(cache=True)
def g(x):
    return 2.0 * x
"""


def test_compile_notice_mechanism(tmp_path):
    """Two kernels compiled: one note; loaded from a warm cache: none (a cheap stand-in for
    the slow test below, which compiles the real kernels)."""
    (tmp_path / "kernels_for_notice.py").write_text(KERNELS)
    env = {**_env(), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", NOTICE_SCRIPT, str(tmp_path)], env=env,
                           capture_output=True, text=True, timeout=300) for _ in range(2)]
    assert all(r.returncode == 0 and r.stdout.strip() == "6.0" for r in runs), runs
    assert runs[0].stderr.count("note: compiling") == 1, runs[0].stderr
    assert runs[1].stderr == ""


@pytest.mark.slow
def test_compile_notice_once_and_not_when_cached(trained, workdir, tmp_path):
    """A cold numba cache: one note (with an estimate); the same command again: none."""
    run, _ = trained
    env = {**_env(), "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    args = [sys.executable, "-m", "mme_numba.cli", "sample", str(run / "model.npz"), "-n", "4",
            "-o", "cold.npy"]
    cold = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=600)
    assert cold.returncode == 0, cold.stderr
    notes = [line for line in cold.stderr.splitlines() if "compiling" in line]
    assert len(notes) == 1 and "minute" in notes[0], cold.stderr
    warm = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=600)
    assert warm.returncode == 0 and "compiling" not in warm.stderr, warm.stderr


def test_steer_keeps_its_classifier_with_the_run(tmp_path, monkeypatch):
    from mme_numba.runs import CLASSIFIER_FILE, PLAIN_CLASSIFIER_FILE, classifier_cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run = tmp_path / "run"
    run.mkdir()
    model = run / "model.npz"
    model.write_bytes(b"model one")
    # 'digits' depends on the model: one file per model file's bytes, in the run folder
    mine = classifier_cache(model)
    assert mine.parent == run and mine.name.startswith(CLASSIFIER_FILE.split("{")[0])
    assert classifier_cache(model, "digits-plain") == run / PLAIN_CLASSIFIER_FILE
    # a classifier already in the user cache is reused for a run that has none
    cached = tmp_path / "cache" / "mme_numba" / mine.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert classifier_cache(model) == cached
    mine.write_bytes(b"")
    assert classifier_cache(model) == mine
    # a changed model file (retrained, resumed) gets its own classifier
    model.write_bytes(b"model two")
    assert classifier_cache(model) != mine
    with pytest.raises(ValueError, match="kind"):
        classifier_cache(model, "letters")


DIGITS_TOML = """
[data]
source = "digits"
n = 200
seed = 0

[observables]
kind = "paper_cnn"
n_outputs = 16

[model]
class = "MinMaxEnt"
support = [0.0, 1.0]
n_chains = 32
burn_in = 2
random_state = 0

[train]
epochs = 2
"""


def test_the_judge_in_evaluate_takes_the_digits_the_model_did_not_see_as_its_yardstick():
    pytest.importorskip("sklearn")
    from mme_numba import runs

    X, _ = mme.datasets.digits(200, seed=0)
    train, heldout = runs.digit_split(X)
    assert len(heldout) == 1797 - 200
    assert not ({r.tobytes() for r in heldout} & {r.tobytes() for r in X})
    assert runs.digit_split(np.random.default_rng(0).random((50, 64))) is None
    r = runs.judge(np.random.default_rng(1).random((64, 64)), X)
    assert r["nn_ratio"] > 2 and r["top_class_probability"] < 0.5


@pytest.mark.slow
def test_evaluate_grades_a_digits_model_with_the_independent_judge(tmp_path):
    pytest.importorskip("sklearn")
    (tmp_path / "d.toml").write_text(DIGITS_TOML)
    cli("train", "d.toml", "--out", "run", "--no-progress", cwd=tmp_path)
    res = cli("evaluate", "run/model.npz", "--steps", "3", "--json", "ev.json", cwd=tmp_path)
    for line in ("judge: top-class probability", "judge: digits at >= 5 % of samples",
                 "judge: nearest-neighbour ratio", "judge: two-sample accuracy"):
        assert line in res.stdout, res.stdout
    judge = json.loads((tmp_path / "ev.json").read_text())["judge"]
    # two epochs from uniform noise: the judge must see noise, not digits
    assert judge["nn_ratio"] > 2 and judge["two_sample_accuracy"] > 0.9
    # 64-d data that are not the shipped digits: the judge is skipped, and evaluate says why
    np.save(tmp_path / "other.npy", np.random.default_rng(0).random((50, 64)))
    res = cli("evaluate", "run/model.npz", "--steps", "3", "--data", "other.npy", cwd=tmp_path)
    assert "judge:" not in res.stdout and "digit judge skipped" in res.stderr, res.stderr
