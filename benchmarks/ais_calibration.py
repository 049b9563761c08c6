"""Are the AIS error bars honest? ``ln Z`` by AIS against exact values, over many seeds.

Cases (the oracles of ``tests/test_likelihood.py``):

* ``separable10``, ``separable64``: separable quadratic energies from ``polynomial(2)`` in 10
  and 64 dimensions on ``[−3, 4]^d``, exact ``ln Z`` from one 1-d quadrature per coordinate;
* ``trained2d``: ``mlp([2, 16, 3])`` trained 60 epochs on two blobs, against grid quadrature.

For each seed: error = AIS − exact, the reported standard error and ``z = error / std_err``.
With honest bars the z-scores spread like a standard normal: ``sd(z)`` near 1, no ``|z|`` far
above 3 in 20 seeds, and the reported error close to the observed spread of the errors.

    python benchmarks/ais_calibration.py separable10 --chains 512 --seeds 20
    python benchmarks/ais_calibration.py separable64 --chains 1024 --seeds 20 --sweeps 1

Prints one JSON line per case (the host from ``hostinfo.host()``).
"""

import argparse
import json
import pathlib
import sys

import numpy as np

from hostinfo import host  # benchmarks/ is the script folder

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from test_likelihood import quadratic_model, trained_2d_model  # noqa: E402  (the oracles)

from mme_numba import likelihood  # noqa: E402


def oracle(case):
    if case == "trained2d":
        model, _ = trained_2d_model()
        return model, model.log_partition(method="quadrature")[0]
    return quadratic_model(int(case.removeprefix("separable")))


def calibrate(case, chains, seeds, **ais):
    model, exact = oracle(case)
    runs = [likelihood.anneal(model, n_chains=chains, random_state=s, **ais) for s in seeds]
    err = np.array([r.log_z - exact for r in runs])
    se = np.array([r.std_err for r in runs])
    z = err / se
    return {"case": case, "chains": chains, **ais, "seeds": [int(s) for s in seeds],
            "exact": float(exact), "error": err.round(5).tolist(),
            "std_err": se.round(5).tolist(),
            "median_abs_error": float(np.median(np.abs(err))),
            "max_abs_error": float(np.max(np.abs(err))), "sd_error": float(np.std(err, ddof=1)),
            "mean_std_err": float(np.mean(se)), "max_abs_z": float(np.max(np.abs(z))),
            "sd_z": float(np.std(z, ddof=1)),
            "beta_steps": int(np.median([len(r.betas) for r in runs])),
            "seconds_per_run": float(np.mean([r.seconds for r in runs])), "host": host()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cases", nargs="+", choices=["separable10", "separable64", "trained2d"])
    p.add_argument("--chains", type=int, default=512)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--sweeps", type=int, default=None, help="sweeps per β (default: anneal's)")
    p.add_argument("--cess", type=float, default=None)
    a = p.parse_args(argv)
    ais = {k: v for k, v in (("sweeps", a.sweeps), ("cess", a.cess)) if v is not None}
    for case in a.cases:
        print(json.dumps(calibrate(case, a.chains, range(a.seeds), **ais)), flush=True)


if __name__ == "__main__":
    main()
