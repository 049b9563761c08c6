"""Array sweeps: ``mme-numba sweep CONFIG --list / --task-id K`` and ``mme-numba gather DIR``.

The centre piece: a 4-task grid run by task id as a SLURM job array would (with
``$SLURM_ARRAY_TASK_ID``), one task killed with SIGKILL after its first checkpoint and run
again (it resumes), and gather reporting 4 rows.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mme_numba import sweeps
from mme_numba.cli import main
from mme_numba.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]

GRID = """
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

[train]
epochs = {epochs}
checkpoint_every = 2
eval_every = 0
out = "grid"

[sweep]
seed = [0, 1]
"model.lr_theta" = [0.01, 0.003]
"""


def _config(tmp_path, epochs=6):
    path = tmp_path / "grid.toml"
    path.write_text(GRID.format(epochs=epochs))
    return path


def test_list_prints_the_number_of_tasks_and_the_grid_order_is_stable(tmp_path, capsys):
    path = _config(tmp_path)
    assert main(["sweep", str(path), "--list"]) == 0
    assert capsys.readouterr().out.strip() == "4"
    sweep = sweeps.load_sweep(path)
    assert [sweep.params(k) for k in range(4)] == [
        {"model.random_state": 0, "model.lr_theta": 0.01},
        {"model.random_state": 0, "model.lr_theta": 0.003},
        {"model.random_state": 1, "model.lr_theta": 0.01},
        {"model.random_state": 1, "model.lr_theta": 0.003}]
    cfg = sweep.task_config(3)
    assert cfg["model"]["random_state"] == 1 and cfg["model"]["lr_theta"] == 0.003
    assert cfg["train"]["out"].endswith("task-3") and "sweep" not in cfg


@pytest.mark.parametrize("table, match", [
    ('[sweep]\nseed = 3\n', "seed: 3 is not a list"),
    ('[sweep]\n"model.lr_theta" = []\n', "not a list"),
    ('[sweep]\n"modle.lr_theta" = [1]\n', "not a grid axis"),
    ('[sweep]\nranks = 0\n', "ranks"),
    ('[sweep]\nranks = 2\n', "no grid axis"),
])
def test_bad_sweep_tables_are_refused_before_anything_runs(tmp_path, table, match):
    path = tmp_path / "bad.toml"
    path.write_text(GRID.format(epochs=2).split("[sweep]")[0] + table)
    with pytest.raises(ConfigError, match=match):
        sweeps.load_sweep(path)


def test_task_id_errors_name_the_grid(tmp_path, monkeypatch, capsys):
    path = _config(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert main(["sweep", str(path)]) == 2
    assert "--task-id" in capsys.readouterr().err
    assert main(["sweep", str(path), "--task-id", "4"]) == 2
    assert "0 to 3" in capsys.readouterr().err
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "x")
    assert main(["sweep", str(path)]) == 2
    assert "SLURM_ARRAY_TASK_ID must be an integer" in capsys.readouterr().err


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["NUMBA_NUM_THREADS"] = "1"
    return env


EPOCHS = 150   # long enough for the kill to land mid-run, ~1 s a task


def test_a_killed_task_resumes_and_gather_reports_every_task(tmp_path, monkeypatch, capsys):
    path = _config(tmp_path, epochs=EPOCHS)
    monkeypatch.chdir(tmp_path)
    # task 2 as its own process, killed once its first checkpoint is on disk
    env = {**_env(), "SLURM_ARRAY_TASK_ID": "2"}
    task = tmp_path / "grid" / "task-2"
    proc = subprocess.Popen([sys.executable, "-m", "mme_numba.cli", "sweep", str(path)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (task / "model.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert (task / "model.npz").exists() and not (task / sweeps.RESULT_FILE).exists()

    # gather names the unfinished task
    assert main(["gather", "grid"]) == 0
    assert "unfinished: task-0, task-1, task-2, task-3" in capsys.readouterr().err

    # the whole array by $SLURM_ARRAY_TASK_ID; task 2 resumes from its checkpoint
    for k in range(4):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(k))
        assert main(["sweep", str(path)]) == 0, capsys.readouterr()
    assert f"trained to epoch {EPOCHS}" in capsys.readouterr().out
    info = json.loads((task / sweeps.TASK_FILE).read_text())
    assert info["attempts"] == 2 and info["params"]["model.random_state"] == 1
    metrics = (task / "metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(line)["epoch"] for line in metrics]
    assert epochs[0] == 1 and epochs[-1] == EPOCHS  # cut back to the checkpoint, continued

    # a finished task is not run again
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    assert main(["sweep", str(path)]) == 0
    assert "already finished" in capsys.readouterr().out

    assert main(["gather", "grid", "-o", "all.csv"]) == 0
    captured = capsys.readouterr()
    assert "4 finished" in captured.out and "unfinished" not in captured.err
    rows = list(csv.DictReader(open(tmp_path / "all.csv")))
    assert [int(r["task"]) for r in rows] == [0, 1, 2, 3]
    assert {r["model.lr_theta"] for r in rows} == {"0.01", "0.003"}
    for r in rows:
        assert int(r["epochs"]) == EPOCHS and float(r["chi2"]) >= 0 and float(r["wall_s"]) > 0
        assert float(r["kl"]) >= 0 and r["entropy"]


def test_gather_of_a_missing_folder_is_an_input_error(tmp_path, capsys):
    assert main(["gather", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_ranks_per_task_split_the_chains_and_match_one_process(tmp_path):
    """``ranks = 2`` under mpiexec: the task trains split over 2 ranks, bit-identical to one
    process (mme_numba.parallel), with one report and result.json written by rank 0."""
    import shutil

    import numpy as np

    pytest.importorskip("mpi4py")
    mpiexec = (shutil.which("mpiexec", path=os.path.dirname(sys.executable))
               or shutil.which("mpiexec"))
    if mpiexec is None:
        pytest.skip("no mpiexec")
    import mme_numba as mme

    text = GRID.format(epochs=4).replace('"model.lr_theta" = [0.01, 0.003]', "")
    (tmp_path / "mpi.toml").write_text(text + "ranks = 2\n")
    (tmp_path / "one.toml").write_text(text.replace('out = "grid"', 'out = "one"'))
    cmd = [sys.executable, "-m", "mme_numba.cli", "sweep"]
    res = subprocess.run([mpiexec, "-n", "2", *cmd, "mpi.toml", "--task-id", "1"],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("trained to epoch 4") == 1
    subprocess.run([*cmd, "one.toml", "--task-id", "1"], cwd=tmp_path, env=_env(), check=True,
                   capture_output=True, timeout=300)
    assert json.loads((tmp_path / "grid" / "task-1" / "result.json").read_text())["ranks"] == 2
    a = mme.load(tmp_path / "grid" / "task-1" / "model.npz")
    b = mme.load(tmp_path / "one" / "task-1" / "model.npz")
    np.testing.assert_array_equal(a.lambda_, b.lambda_)
    np.testing.assert_array_equal(a.chains_, b.chains_)
