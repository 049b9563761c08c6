"""Steering graded by the independent judge (issue 14, item 4): a slow reproduction.

Steers a digits model toward every digit at h = STRENGTH with the default steering classifier
of ``mme-numba steer --classifier digits`` (``fields.refined_classifier(classifier_cnn(11),
model, X, y, rounds=0, steer_by=(plain, robust))``: the digits plus a "not a digit" class of
1024 of the model's own samples and of samples steered by two 10-class classifiers;
``benchmarks/steering.py --classifier model+steered``) and grades the samples with
``mme_numba.judge`` only. The model: ``$MME_STEERING_MODEL`` when set (a saved digits model),
else one trained here as the benchmark's was (``paper_cnn(16)``, 256 chains, seed 0, 300
epochs on 200 digits; several minutes).

Bounds asserted, for every digit (issue 14): at least 80 % of the samples are the target for
the judge, and the judge's mean top-class probability on them is at least 0.7.
The run is the benchmark's own, seeded: its h = 20 row in ``docs/data/steering_default.json``
(every digit: rate >= 0.9375, top-class >= 0.81) is what this test computes on that model.
Passed on 2026-12-07 with ``MME_STEERING_MODEL`` set, in 309 s on the shared 2-core AMD EPYC
machine (``NUMBA_NUM_THREADS=1``), building the classifier included.
"""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import mme_numba as mme

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _benchmark():
    if str(ROOT / "benchmarks") not in sys.path:  # the script imports its neighbour hostinfo
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_steering",
                                                  ROOT / "benchmarks" / "steering.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _model(tmp_path):
    path = os.environ.get("MME_STEERING_MODEL")
    if path:
        return path
    X, _ = mme.datasets.digits()
    train = np.random.default_rng(0).permutation(len(X))[:200]
    m = mme.MinMaxEnt(mme.nn.paper_cnn(16), support=(0.0, 1.0), n_chains=256,
                      random_state=0).fit(X[train], epochs=300)
    m.save(tmp_path / "model.npz")
    return tmp_path / "model.npz"


#: the documented strength (docs/results.md, Steering; mme-numba steer's default)
STRENGTH = 20


def test_steering_holds_under_the_independent_judge(tmp_path):
    bench = _benchmark()
    res = bench.run(_model(tmp_path), kind="model+steered", strengths=(STRENGTH,),
                    modes=("steered",), log=lambda *a: None)
    row = res["steered"][f"{STRENGTH:g}"]["digits"]
    rates = {c: round(d["judge_target_rate"], 3) for c, d in row.items()}
    tops = {c: round(d["judge_top_class_probability"], 3) for c, d in row.items()}
    assert min(rates.values()) >= 0.8, rates
    assert min(tops.values()) >= 0.7, tops
