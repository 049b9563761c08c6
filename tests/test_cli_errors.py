"""Mistakes on the command line: each is answered by one ``error:`` line and no traceback.

Every case runs ``python -m mme_numba.cli`` as a user would and checks the exit status (2 for
usage, configuration and input-file errors), that stderr holds exactly one ``error:`` line
naming the key or file, and that no traceback is printed without ``-v``. All are found
before any kernel is compiled, so the table is cheap.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[data]
source = "gaussian_mixture"
n = 200
means = [-2.0, 2.0]
scales = [0.5, 0.5]
seed = 0

[observables]
kind = "mlp"
sizes = [1, 8, 2]
random_state = 0

[model]
class = "MinMaxEnt"
support = [-6.0, 6.0]
n_chains = 64
step_size = 3.0
random_state = 0

[train]
epochs = 2
checkpoint_every = 1
"""


def edit(old, new):
    """GOOD with one line changed (the mistake)."""
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


def run(args, cwd, env=None):
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "mme_numba.cli", *map(str, args)], cwd=cwd,
                          env=e, capture_output=True, text=True, timeout=120)


def _fake_model(path, **meta):
    np.savez(path, meta=np.array(json.dumps(meta)), theta=np.zeros(3))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("mistakes")
    (d / "good.toml").write_text(GOOD)
    (d / "folder.toml").mkdir()
    (d / "text.npy").write_text("1.0\n2.0\n")
    (d / "text.npz").write_text("this is not a model\n")
    np.save(d / "cube.npy", np.zeros((4, 2, 2)))
    nan = np.zeros((5, 1))
    nan[3, 0] = np.nan
    np.save(d / "nan.npy", nan)
    np.save(d / "words.npy", np.array([["1.0"], ["2.0"], ["x"]]))
    np.save(d / "two_cols.npy", np.zeros((10, 2)))
    np.save(d / "far.npy", np.array([[0.0], [1.0], [50.0]]))
    (d / "bad.csv").write_text("1.0\n2.0\n3.0,abc\n")
    (d / "ragged.csv").write_text("1.0,2.0\n3.0,4.0\n5.0\n")
    np.savez(d / "no_meta.npz", X=np.zeros((3, 1)))
    _fake_model(d / "network.npz", format_version=1, network={"layers": []})
    _fake_model(d / "newer.npz", format_version=99, mme_numba_version="9.0", **{"class": "MaxEnt"})
    # a run folder whose checkpoint (a stand-in: only its metadata is read) is at epoch 30
    run_dir = d / "run"
    run_dir.mkdir()
    _fake_model(run_dir / "model.npz", format_version=1, epoch=30, **{"class": "MinMaxEnt"})
    # a checkpoint cut short (a full disk, a copy interrupted): half of a model file
    cut = d / "cut"
    cut.mkdir()
    whole = (run_dir / "model.npz").read_bytes()
    (cut / "model.npz").write_bytes(whole[:len(whole) // 2])
    (d / "truncated.npz").write_bytes(whole[:len(whole) // 2])
    return d


#: (id, config text or None, command line, the text the error line must contain)
CASES = [
    # configuration files and TOML syntax
    ("missing-config", None, ["train", "missing.toml"], ["missing.toml", "no such"]),
    ("config-is-folder", None, ["train", "folder.toml"], ["folder.toml", "folder"]),
    ("toml-syntax", "[model\nn_chains = 3\n", ["train", "c.toml"], ["c.toml", "TOML", "line"]),
    ("toml-no-value", edit("n_chains = 64", "n_chains ="), ["train", "c.toml"],
     ["c.toml", "TOML"]),
    ("unknown-table", GOOD + "\n[modle]\nsweeps = 3\n", ["train", "c.toml"],
     ["[modle]", "did you mean [model]"]),
    # unknown and misspelled keys
    ("misspelled-model-key", edit("n_chains = 64", "n_chians = 64"), ["train", "c.toml"],
     ["[model] n_chians", "did you mean n_chains"]),
    ("misspelled-data-key", edit("means =", "meens ="), ["check", "c.toml"],
     ["[data] meens", "means"]),
    ("misspelled-observables-key", edit('kind = "mlp"', 'kind = "mlp"\nactivaton = "tanh"'),
     ["train", "c.toml"], ["[observables] activaton", "activation"]),
    ("misspelled-train-key", edit("epochs = 2", "epoch = 2"), ["train", "c.toml"],
     ["[train] epoch", "epochs"]),
    ("key-of-other-class", edit('class = "MinMaxEnt"', 'class = "MaxEnt"\nlr_theta = 0.1'),
     ["train", "c.toml"], ["[model] lr_theta", "MinMaxEnt"]),
    ("unknown-class", edit('class = "MinMaxEnt"', 'class = "MinMaxEnd"'), ["train", "c.toml"],
     ["[model] class", "MinMaxEnt"]),
    ("unknown-source", edit('source = "gaussian_mixture"', 'source = "gausian_mixture"'),
     ["train", "c.toml"], ["[data] source", "gaussian_mixture"]),
    ("unknown-kind", edit('kind = "mlp"', 'kind = "mpl"'), ["train", "c.toml"],
     ["[observables] kind", "mlp"]),
    # missing required keys name their table
    ("missing-support", edit("support = [-6.0, 6.0]", ""), ["train", "c.toml"],
     ["[model] support", "missing"]),
    ("file-source-without-path", edit('source = "gaussian_mixture"', 'source = "file"')
     .replace("n = 200\n", "").replace("means = [-2.0, 2.0]\n", "")
     .replace("scales = [0.5, 0.5]\n", "").replace("seed = 0\n", "", 1),
     ["train", "c.toml"], ["[data] path", "missing", "file"]),
    ("missing-sizes", edit("sizes = [1, 8, 2]", ""), ["train", "c.toml"],
     ["[observables] sizes", "missing"]),
    # wrong types and out-of-range values
    ("n_chains-string", edit("n_chains = 64", 'n_chains = "many"'), ["train", "c.toml"],
     ["[model] n_chains"]),
    ("n_chains-negative", edit("n_chains = 64", "n_chains = -5"), ["train", "c.toml"],
     ["[model] n_chains", "-5"]),
    ("n_chains-fraction", edit("n_chains = 64", "n_chains = 10.5"), ["train", "c.toml"],
     ["[model] n_chains", "10.5", "integer"]),
    ("sweeps-float", edit("n_chains = 64", "n_chains = 64\nsweeps = 2.5"), ["train", "c.toml"],
     ["[model] sweeps", "integer"]),
    ("support-reversed", edit("support = [-6.0, 6.0]", "support = [6.0, -6.0]"),
     ["train", "c.toml"], ["[model] support", "lo < hi"]),
    ("support-not-pair", edit("support = [-6.0, 6.0]", "support = 6.0"), ["train", "c.toml"],
     ["[model] support", "pair"]),
    ("move-unknown", edit("n_chains = 64", 'n_chains = 64\nmove = "sideways"'),
     ["train", "c.toml"], ["[model] move", "sideways"]),
    ("solver-unknown", edit("n_chains = 64", 'n_chains = 64\nlambda_solver = "newtn"'),
     ["train", "c.toml"], ["[model] lambda_solver", "newton"]),
    ("epochs-zero", edit("epochs = 2", "epochs = 0"), ["train", "c.toml"],
     ["[train] epochs", "auto"]),
    ("checkpoint-every-string", edit("checkpoint_every = 1", 'checkpoint_every = "often"'),
     ["train", "c.toml"], ["[train] checkpoint_every"]),
    ("data-n-zero", edit("n = 200", "n = 0"), ["train", "c.toml"], ["[data] n"]),
    ("sizes-wrong-type", edit("sizes = [1, 8, 2]", 'sizes = "1-8-2"'), ["train", "c.toml"],
     ["[observables] sizes"]),
    ("observables-wrong-width", edit("sizes = [1, 8, 2]", "sizes = [2, 8, 2]"),
     ["train", "c.toml"], ["[observables]", "2 features", "data have 1"]),
    ("data-outside-support", edit("support = [-6.0, 6.0]", "support = [-1.0, 1.0]"),
     ["train", "c.toml"], ["[model] support", "outside"]),
    # --set overrides
    ("set-no-table", None, ["train", "good.toml", "--set", "n_chains=3"], ["--set", "n_chains"]),
    ("set-misspelled", None, ["train", "good.toml", "--set", "model.n_chians=3"],
     ["[model] n_chians", "n_chains"]),
    ("set-bad-value", None, ["check", "good.toml", "--set", "model.n_chains=1"],
     ["[model] n_chains"]),
    # data files
    ("data-file-missing", None,
     ["train", "good.toml", "--set", "data.source=file", "--set", "data.path=nope.npy"],
     None),  # filled in below: other [data] keys must go
    ("data-text-as-npy", "FILE:text.npy", ["train", "c.toml"], ["text.npy", ".npy"]),
    ("data-non-numeric-csv", "FILE:bad.csv", ["train", "c.toml"],
     ["bad.csv", "line 3, column 2", "abc"]),
    ("data-ragged-csv", "FILE:ragged.csv", ["train", "c.toml"], ["ragged.csv", "line 3"]),
    ("data-3d", "FILE:cube.npy", ["train", "c.toml"], ["cube.npy", "shape"]),
    ("data-nan", "FILE:nan.npy", ["train", "c.toml"], ["nan.npy", "row 3, column 0"]),
    ("data-strings", "FILE:words.npy", ["train", "c.toml"], ["words.npy", "row 2, column 0"]),
    ("data-wrong-extension", "FILE:good.toml", ["train", "c.toml"], ["good.toml", "format"]),
    ("data-unknown-npz-key", "FILE:no_meta.npz\nkey = \"Y\"", ["train", "c.toml"],
     ["no_meta.npz", "'Y'", "X"]),
    # model files
    ("model-missing", None, ["evaluate", "nope.npz"], ["nope.npz", "no such"]),
    ("model-is-text", None, ["evaluate", "text.npz"], ["text.npz", "not a zip"]),
    ("model-no-metadata", None, ["sample", "no_meta.npz", "-n", 3, "-o", "s.npy"],
     ["no_meta.npz", "not an mme_numba model"]),
    ("model-is-network", None, ["plot", "network.npz"], ["network.npz", "network"]),
    ("model-truncated", None, ["sample", "truncated.npz", "-n", 3, "-o", "s.npy"],
     ["truncated.npz", "not a zip"]),
    ("resume-truncated-checkpoint", None, ["train", "good.toml", "--out", "cut", "--resume"],
     ["cut/model.npz", "not a zip"]),
    ("model-newer", None, ["evaluate", "newer.npz"], ["newer.npz", "newer"]),
    # option values
    ("sample-bad-extension", None, ["sample", "newer.npz", "-n", 3, "-o", "out.dat"],
     ["out.dat", ".npy"]),
    ("sample-missing-folder", None, ["sample", "newer.npz", "-n", 3, "-o", "no/dir/x.npy"],
     ["no/dir", "does not exist"]),
    ("sample-n-zero", None, ["sample", "newer.npz", "-n", 0, "-o", "x.npy"], ["-n", ">= 1"]),
    ("evaluate-steps-word", None, ["evaluate", "newer.npz", "--steps", "many"],
     ["--steps", "many"]),
    ("steer-strength-nan", None, ["steer", "newer.npz", "--classifier", "digits", "--target",
                                  1, "-n", 3, "-o", "x.npy", "--strength", "nan"],
     ["--strength"]),
    ("steer-digits-target-10", None, ["steer", "newer.npz", "--classifier", "digits",
                                      "--target", 10, "-n", 3, "-o", "x.npy"],
     ["--target 10", "0-9"]),
    ("epochs-negative", None, ["train", "good.toml", "--epochs", -3], ["--epochs", "-3"]),
    ("unknown-option", None, ["train", "good.toml", "--epocs", 3], ["--epocs"]),
    ("unknown-command", None, ["trian", "good.toml"], ["trian"]),
    # sweeps
    ("sweep-no-table", None, ["sweep", "good.toml", "--list"], ["good.toml", "no [sweep] table"]),
    ("sweep-axis-not-list", GOOD + "\n[sweep]\nseed = 3\n", ["sweep", "c.toml", "--list"],
     ["[sweep] seed", "not a list"]),
    ("sweep-axis-misspelled", GOOD + '\n[sweep]\n"modle.sweeps" = [1, 2]\n',
     ["sweep", "c.toml", "--list"], ["[sweep] modle.sweeps", "grid axis"]),
    ("sweep-axis-unknown-key", GOOD + '\n[sweep]\n"model.lr_thetaa" = [0.1, 0.2]\n',
     ["sweep", "c.toml", "--list"], ["[model] lr_thetaa", "lr_theta"]),
    ("sweep-axis-bad-value", GOOD + '\n[sweep]\n"model.n_chains" = [64, 10.5]\n',
     ["sweep", "c.toml", "--list"], ["[model] n_chains", "10.5"]),
    ("sweep-task-outside", GOOD + "\n[sweep]\nseed = [0, 1]\n",
     ["sweep", "c.toml", "--task-id", 2], ["task id 2", "0 to 1"]),
    ("gather-missing-folder", None, ["gather", "nodir"], ["nodir", "not a folder"]),
    ("resume-fewer-epochs", None,
     ["train", "good.toml", "--out", "run", "--resume", "--epochs", 10],
     ["[train] epochs", "10", "30"]),
]

_FILE_DATA = ('[data]\nsource = "file"\npath = "{}"\n'
              + GOOD[GOOD.index("[observables]"):])


def _case(case):
    name, text, args, expect = case
    if name == "data-file-missing":
        return name, _FILE_DATA.format("nope.npy"), ["train", "c.toml"], ["nope.npy", "no such"]
    if text and text.startswith("FILE:"):
        first, *rest = text[5:].split("\n")
        cfg = _FILE_DATA.format(first)
        if rest:
            cfg = cfg.replace(f'path = "{first}"', f'path = "{first}"\n' + "\n".join(rest))
        return name, cfg, args, expect
    return case


TABLE = [_case(c) for c in CASES]


def test_the_table_is_large_enough():
    assert len(TABLE) >= 30
    assert len({c[0] for c in TABLE}) == len(TABLE)


@pytest.mark.parametrize("name,text,args,expect", TABLE, ids=[c[0] for c in TABLE])
def test_mistake_gives_one_error_line(work, name, text, args, expect):
    if text is not None:
        (work / "c.toml").write_text(text)
    res = run(args, cwd=work)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert len(errors) == 1, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip() == errors[0], res.stderr   # nothing else on stderr
    for part in expect:
        assert part in errors[0], (part, errors[0])


def test_every_problem_is_reported_at_once(work):
    text = (edit("n_chains = 64", "n_chians = 64\nsweeps = 0")
            .replace("epochs = 2", "epochs = -1").replace('kind = "mlp"', 'kind = "mlp"\nx = 1'))
    (work / "many.toml").write_text(text)
    res = run(["check", "many.toml"], cwd=work)
    errors = res.stderr.splitlines()
    assert res.returncode == 2 and len(errors) == 4, res.stderr
    assert all(line.startswith("error: many.toml: [") for line in errors)
    for key in ("[model] n_chians", "[model] sweeps", "[train] epochs", "[observables] x"):
        assert any(key in line for line in errors), key


def test_traceback_only_with_verbose(work):
    res = run(["-v", "evaluate", "text.npz"], cwd=work)
    assert res.returncode == 2 and "Traceback" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: text.npz")
    res = run(["evaluate", "text.npz", "-v"], cwd=work)     # after the subcommand too
    assert "Traceback" in res.stderr


def test_resume_names_each_key_that_differs(work):
    (work / "run" / "config.json").write_text(json.dumps(
        {"data": json.loads(json.dumps({"source": "gaussian_mixture", "n": 200,
                                        "means": [-2.0, 2.0], "scales": [0.5, 0.5],
                                        "seed": 0})),
         "observables": {"kind": "mlp", "sizes": [1, 8, 2], "random_state": 0},
         "model": {"class": "MinMaxEnt", "support": [-6.0, 6.0], "n_chains": 64,
                   "step_size": 3.0, "random_state": 0},
         "train": {"epochs": 30}}))
    res = run(["train", "good.toml", "--out", "run", "--resume", "--epochs", 40,
               "--set", "model.n_chains=32", "--set", "data.seed=1"], cwd=work)
    errors = res.stderr.splitlines()
    assert res.returncode == 2 and len(errors) == 2, res.stderr
    assert "[data] seed" in errors[0] and "[model] n_chains" in errors[1]
    assert "32" in errors[1] and "64" in errors[1]


def test_check_accepts_the_example_configs(work):
    for path in sorted((ROOT / "examples" / "configs").glob("*.toml")):
        res = run(["check", path], cwd=work)
        assert res.returncode == 0 and ": ok:" in res.stdout, res.stderr


def test_cli_md_reference_is_generated_from_the_schema():
    """docs/cli.md lists every key of every table, as the schema renders it today."""
    from mme_numba import schema

    text = (ROOT / "docs" / "cli.md").read_text()
    section = text.split(schema.BEGIN, 1)[1].split(schema.END, 1)[0]
    assert section.strip() == schema.markdown().strip(), \
        "docs/cli.md is out of date: run python -m mme_numba.schema docs/cli.md"
    for table in schema.TABLES:
        for variant in schema.variants(table) or [None]:
            for key in schema.table_keys(table, variant):
                assert f"| `{key.name}` |" in section, (table, variant, key.name)


def test_schema_follows_the_estimators_signatures():
    import inspect

    import mme_numba as mme
    from mme_numba import schema

    for cls in (mme.MaxEnt, mme.MinMaxEnt):
        keys = {k.name for k in schema.table_keys("model", cls.__name__)} - {"class"}
        names = set()
        for klass in cls.__mro__:
            if "__init__" in vars(klass):
                names |= {n for n, p in inspect.signature(klass.__init__).parameters.items()
                          if p.kind is p.KEYWORD_ONLY or n == "support"}
        assert keys == names - {"comm"}


def test_validate_estimator_params_is_the_one_seam():
    import mme_numba as mme
    from mme_numba.config import validate_estimator_params

    assert validate_estimator_params(mme.MinMaxEnt, {"n_chains": 64, "step_size": 3.0}) == []
    bad = validate_estimator_params(mme.MinMaxEnt, {"n_chains": 1, "sweeps": 2.5,
                                                    "theta_steps": 0, "move": "x"})
    assert [p[0] for p in bad] == ["n_chains", "sweeps", "theta_steps", "move"]


def test_failure_while_running_is_one_line_with_status_1(work, monkeypatch, capsys):
    from mme_numba import cli, config

    def boom(*args, **kwargs):
        raise RuntimeError("the chains diverged\nsecond line")

    monkeypatch.setattr(config, "check_config", boom)
    assert cli.main(["check", str(work / "good.toml")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: the chains diverged (run with -v for the traceback)"]


def test_unreadable_files_are_named(work, monkeypatch):
    from mme_numba import datafiles

    real = os.access
    monkeypatch.setattr(datafiles.os, "access", lambda p, mode: False if str(p).endswith(
        "good.toml") else real(p, mode))
    with pytest.raises(datafiles.InputFileError, match="good.toml: not readable"):
        datafiles.check_readable(work / "good.toml")
