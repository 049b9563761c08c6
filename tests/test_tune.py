"""The per-host lanes cap of the sweeps (``mme_numba/kernels/tune.py``): measured once,
cached per CPU model, numba version and thread count, switchable off, resettable, and never
a change of results."""

import json

import numpy as np
import pytest

from mme_numba import kernels as K
from mme_numba import settings
from mme_numba.kernels import tune


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty cache directory and memory; ``calls`` counts the measurements, which return
    ``fake["seconds"]`` instead of timing anything."""
    monkeypatch.setenv("MME_NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MME_NUMBA_TUNE", raising=False)
    monkeypatch.setattr(tune, "_memory", {})
    fake = {"seconds": {32: 3e-9, 64: 2e-9, 128: 1e-9, 256: 1.5e-9}, "calls": 0}

    def measure(kind):
        # "single" is fastest at 64 here, "all" where fake["seconds"] says
        fake["calls"] += kind == "all"
        return dict(fake["seconds"]) if kind == "all" else {32: 2e-9, 64: 1e-9, 128: 3e-9,
                                                              256: 3e-9}

    monkeypatch.setattr(tune, "measure_lanes", measure)
    return fake


def test_the_fastest_cap_is_measured_once_and_kept_on_disk(fresh):
    assert tune.lanes_max() == 128
    assert tune.lanes_max("single") == 64
    assert tune.lanes_max("all") == 128
    assert fresh["calls"] == 1
    saved = json.loads(open(tune.cache_path()).read())
    entry = saved[tune.host_key()]
    assert entry["lanes_max"] == {"all": 128, "single": 64}
    assert entry["ns_per_proposal"]["all"]["128"] == 1.0
    tune._memory.clear()                       # a new process: read from the file
    assert tune.lanes_max() == 128 and fresh["calls"] == 1


def test_a_gain_below_the_threshold_keeps_the_default(fresh):
    d = settings.LANES_MAX
    fresh["seconds"] = {c: 1e-9 for c in tune.CANDIDATES}
    fresh["seconds"][256] = 1e-9 / (settings.TUNE_MIN_GAIN - 0.02)
    assert 256 != d and tune.lanes_max() == d


def test_the_thread_count_is_part_of_the_key(fresh):
    assert tune.host_key(1) != tune.host_key(2)
    assert tune.host_key(3).endswith("| 3 threads")


def test_switched_off_it_measures_nothing(fresh, monkeypatch):
    monkeypatch.setenv("MME_NUMBA_TUNE", "0")
    assert tune.lanes_max() == settings.LANES_MAX
    assert fresh["calls"] == 0
    with pytest.raises(FileNotFoundError):
        open(tune.cache_path())


def test_an_unreadable_cache_file_is_measured_again_and_rewritten(fresh):
    path = tune.cache_path()
    with open(path, "w") as fh:
        fh.write("{not json")
    assert tune.lanes_max() == 128 and fresh["calls"] == 1
    assert json.loads(open(path).read())[tune.host_key()]["lanes_max"]["all"] == 128
    tune._memory.clear()
    with open(path, "w") as fh:                  # a value that is not a candidate
        json.dump({tune.host_key(): {"lanes_max": {"all": 7, "single": 64}}}, fh)
    assert tune.lanes_max() == 128 and fresh["calls"] == 2


def test_reset_forgets_this_host_only(fresh):
    path = tune.cache_path()
    with open(path, "w") as fh:
        json.dump({"Another CPU | numba 0 | 1 threads": {"lanes_max": {"all": 32}}}, fh)
    assert tune.lanes_max() == 128
    tune.reset()
    saved = json.loads(open(path).read())
    assert list(saved) == ["Another CPU | numba 0 | 1 threads"]
    assert tune.lanes_max() == 128 and fresh["calls"] == 2


def test_a_cache_directory_that_cannot_be_written_costs_only_the_file(fresh, tmp_path,
                                                                      monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("MME_NUMBA_CACHE_DIR", str(blocker / "below"))
    assert tune.lanes_max() == 128 and tune.lanes_max() == 128
    assert fresh["calls"] == 1


@pytest.mark.parametrize("kind", tune.KINDS)
def test_the_real_measurement_times_every_candidate(kind):
    seconds = tune.measure_lanes(kind, candidates=(8, 16), rounds=1, target_s=0.001)
    assert set(seconds) == {8, 16}
    assert all(np.isfinite(t) and 0 < t < 1e-3 for t in seconds.values())


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        tune.lanes_max("scan")
    with pytest.raises(ValueError, match="kind must be one of"):
        tune.measure_lanes("mala")


@pytest.mark.parametrize("move", [K.MOVE_ALL, K.MOVE_SINGLE])
def test_the_chosen_cap_never_changes_the_chains(move, monkeypatch):
    spec, params, lam, x0 = tune._mlp_problem(600, seed=3)
    runs = []
    for cap in (32, 256):
        monkeypatch.setattr(tune, "lanes_max", lambda kind, cap=cap: cap)
        x = x0.copy()
        e = K.energy_batch(spec, params, lam, x, *K.empty_term())
        rs, acc = K.seed_states(4, len(x)), np.zeros(len(x), np.int64)
        K.sweep(spec, params, lam, *K.empty_term(), x, e, -6.0, 6.0, 0.8, 20, move,
                K.BOUNDARY_REFLECT, rs, acc)
        runs.append((x, e, rs, acc))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
