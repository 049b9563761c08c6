"""Array sweeps: one configuration, a grid of trainings, one task per array index.

A configuration's ``[sweep]`` table lists the values to try; the grid is their Cartesian
product, in a stable order (the keys as written, the last one varying fastest)::

    [sweep]
    seed = [0, 1]                      # shorthand for "model.random_state"
    "model.lr_theta" = [0.01, 0.003]   # any "table.key" of the configuration
    ranks = 2                          # optional: MPI ranks per task (not a grid axis)

Task ``k`` (``0 <= k < n_tasks``) is the base configuration with the ``k``-th combination
applied as ``--set`` overrides, trained into ``<train.out>/task-<k>/`` (the usual run folder:
``config.json``, ``model.npz``, ``metrics.jsonl``) plus ``task.json`` (its grid values) and,
once finished, ``result.json`` (final χ², entropy and KL where known, wall time). Running a
task again resumes it from its checkpoint; a finished task is not run again.
:func:`gather` collects the ``result.json`` files into one CSV row per finished task and
names the tasks that have not finished.

The ``mme-numba sweep`` and ``mme-numba gather`` commands are thin wrappers around
:func:`load_sweep`, :func:`run_task` and :func:`gather`; ``examples/sbatch_sweep.sh`` runs a
grid as a SLURM job array.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import os
from pathlib import Path

from .schema import ALIASES, OPTIONS, check_sweep_table

__all__ = ["Sweep", "load_sweep", "check_sweep_table", "run_task", "gather", "TASK_ENV",
           "SWEEP_FILE", "TASK_FILE", "RESULT_FILE"]

logger = logging.getLogger(__name__)

#: Environment variable read for the task id when none is given (SLURM job arrays).
TASK_ENV = "SLURM_ARRAY_TASK_ID"
SWEEP_FILE = "sweep.json"
TASK_FILE = "task.json"
RESULT_FILE = "result.json"


class Sweep:
    """The grid of a configuration file's ``[sweep]`` table.

    Attributes
    ----------
    path : Path
        The configuration file.
    axes : list of (str, list)
        ``("table.key", values)`` in the order written.
    ranks : int
        MPI ranks per task asked for (1: none).
    out : Path
        The sweep folder (the base configuration's ``train.out``).
    """

    def __init__(self, path, table, out, overrides=()):
        self.path = Path(path)
        self.axes = [(ALIASES.get(k, k), list(v)) for k, v in table.items() if k not in OPTIONS]
        self.ranks = int(table.get("ranks", 1))
        self.out = Path(out)
        self.overrides = list(overrides)

    @property
    def n_tasks(self):
        return math.prod(len(v) for _, v in self.axes)

    def params(self, k):
        """The grid values of task ``k``: ``{"table.key": value}``."""
        k = self._check_task(k)
        combo = next(itertools.islice(itertools.product(*(v for _, v in self.axes)), k, None))
        return {name: value for (name, _), value in zip(self.axes, combo)}

    def _check_task(self, k):
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.n_tasks:
            raise ValueError(f"task id must be an integer in [0, {self.n_tasks - 1}] (the grid "
                             f"of {self.path} has {self.n_tasks} tasks), got {k!r}")
        return k

    def task_dir(self, k):
        return self.out / f"task-{self._check_task(k)}"

    def task_config(self, k):
        """The resolved configuration of task ``k`` (validated like ``mme-numba check``)."""
        from .config import load_config

        extra = [f"{name}={json.dumps(value)}" for name, value in self.params(k).items()]
        cfg = load_config(self.path, [*self.overrides, *extra])
        cfg["train"]["out"] = str(self.task_dir(k))
        return cfg


def load_sweep(path, overrides=()):
    """The :class:`Sweep` of configuration file ``path``.

    Raises
    ------
    mme_numba.config.ConfigError
        No ``[sweep]`` table, or a bad one, or a base configuration that does not validate.
    """
    from .config import ConfigError, Problem, load_config, read_toml

    raw = read_toml(path)
    if "sweep" not in raw:
        raise ConfigError([Problem("no [sweep] table", expected='a [sweep] table, e.g. '
                                   'seed = [0, 1]')], file=path)
    base = load_config(path, overrides)     # checks [sweep] and everything else
    sweep = Sweep(path, raw["sweep"], base["train"]["out"], overrides)
    # every value of every axis, checked as the task that uses it will be (cheap: no data)
    problems = []
    for name, values in sweep.axes:
        for value in values:
            try:
                load_config(path, [*overrides, f"{name}={json.dumps(value)}"])
            except ConfigError as exc:
                problems += [p for p in exc.problems if p not in problems]
    if problems:
        raise ConfigError(problems)
    return sweep


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _mpi_comm(ranks):
    """The world communicator when this process runs under MPI with several ranks.

    MPI is only initialized when the sweep asks for ranks or a launcher set the rank count
    (``srun``/``mpiexec``), so plain array tasks never load mpi4py.
    """
    launched = any(os.environ.get(v, "1") not in ("", "1")
                   for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS"))
    if ranks <= 1 and not launched:
        return None
    from . import parallel

    return parallel.world()


def run_task(sweep, k, overwrite=False, progress=False):
    """Train task ``k`` of ``sweep`` into its folder, resuming from its checkpoint.

    Under ``mpiexec``/``srun`` with several ranks the task's chains are split across them
    (:mod:`mme_numba.parallel`); only rank 0 writes files.

    Returns
    -------
    dict
        The task's result record (also written to ``task-<k>/result.json``), with
        ``"skipped": True`` when the task had already finished and ``"root"``: whether this
        process is rank 0 (the one that writes and reports).
    """
    from . import parallel
    from . import runs

    out = sweep.task_dir(k)
    cfg = sweep.task_config(k)
    done = _read_json(out / RESULT_FILE)
    if done is not None and not overwrite:
        return {**done, "skipped": True}
    comm = _mpi_comm(sweep.ranks)
    size = 1 if comm is None else comm.Get_size()
    if size != sweep.ranks:
        logger.warning("[sweep] asks for %d MPI ranks per task, this task runs on %d: start it "
                       "with srun or mpiexec -n %d (examples/sbatch_sweep.sh)", sweep.ranks,
                       size, sweep.ranks)
    root = parallel.is_root(comm)
    if root:
        out.mkdir(parents=True, exist_ok=True)
        runs.write_json(sweep.out / SWEEP_FILE, {"config": str(sweep.path), "n_tasks": sweep.n_tasks,
                                             "axes": [name for name, _ in sweep.axes]})
        task = _read_json(out / TASK_FILE) or {"task": k, "attempts": 0}
        task.update(params=sweep.params(k), attempts=int(task.get("attempts", 0)) + 1)
        runs.write_json(out / TASK_FILE, task)
    if comm is not None:
        comm.Barrier()
    model, X, seconds = runs.train_run(cfg, out, resume=not overwrite, overwrite=overwrite,
                                  progress=progress, comm=comm)
    last = model.history_[-1] if model.history_ else {}
    result = {"task": k, **sweep.params(k), "epochs": int(model.epoch_),
              "chi2": last.get("chi2"), "entropy": None, "kl": None,
              "wall_s": seconds, "ranks": 1 if comm is None else comm.Get_size()}
    if model.n_features_in_ <= 2:
        lo, hi = model.support_
        quality = runs.quality(model, X, runs.true_logpdf_of(cfg["data"], lo, hi),
                               with_true_entropy=False)
        result["entropy"] = quality.get("entropy")
        result["kl"] = quality.get("kl")
    else:
        result["entropy"] = last.get("entropy_estimate")
    if root:
        task = _read_json(out / TASK_FILE) or {}
        result["attempts"] = task.get("attempts", 1)
        result["wall_s"] = float(task.get("wall_s", 0.0)) + seconds
        task["wall_s"] = result["wall_s"]
        runs.write_json(out / TASK_FILE, task)
        runs.write_json(out / RESULT_FILE, result)
    return {**result, "root": root}


def gather(folder, output=None):
    """One CSV row per finished task of the sweep in ``folder``.

    Parameters
    ----------
    folder : path-like
        The sweep folder (``train.out`` of the configuration).
    output : path-like, optional
        The CSV file (default ``folder/results.csv``).

    Returns
    -------
    rows : list of dict
        The finished tasks' results, by task id.
    unfinished : list of int
        Tasks started but not finished, and (when ``sweep.json`` gives the grid size) tasks
        never started.
    path : Path
        The CSV written.
    """
    folder = Path(folder)
    if not folder.is_dir():
        from .datafiles import InputFileError

        raise InputFileError(folder, "is not a folder", "a sweep folder (train.out of the "
                             "configuration)")
    ids = set()
    for p in folder.glob("task-*"):
        if p.is_dir() and p.name[5:].isdigit():
            ids.add(int(p.name[5:]))
    info = _read_json(folder / SWEEP_FILE) or {}
    n_tasks = info.get("n_tasks")
    if isinstance(n_tasks, int):
        ids |= set(range(n_tasks))
    rows, unfinished = [], []
    for k in sorted(ids):
        result = _read_json(folder / f"task-{k}" / RESULT_FILE)
        if result is None:
            unfinished.append(k)
        else:
            result.pop("skipped", None)
            rows.append(result)
    columns = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    path = Path(output) if output is not None else folder / "results.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns or ["task"], restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: ("" if v is None else v) for c, v in row.items()})
    return rows, unfinished, path


def task_id_from_env():
    """The task id in ``$SLURM_ARRAY_TASK_ID``, or ``None``."""
    text = os.environ.get(TASK_ENV)
    if text is None or text.strip() == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"${TASK_ENV} must be an integer task id, got {text!r}") from None

