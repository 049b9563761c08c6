"""What replica exchange (``betas=``) buys, measured against an instrument the model does not control.

Two measurements, each written as JSON lines to ``--out``:

* ``bimodal``: a 0.2 / 0.8 mixture of Gaussians at -3 and +3 (std 0.5), fitted by ``MaxEnt``
  with ``polynomial(4)`` observables and a fixed small step (0.1, no step ladder), with and
  without replicas. Graded by the fitted model's mass right of 0, by quadrature, against the
  data's share.
* ``digits``: on a saved digits model, how often a chain's class changes between snapshots
  ``--every`` sweeps apart, labels by the independent judge (``mme_numba.judge``), with and
  without replicas, and the wall time of each.

    python benchmarks/tempering.py bimodal --seeds 0 1 2 3 4 --out tempering.jsonl
    python benchmarks/tempering.py digits --model runs/examples/digits/model.npz --out tempering.jsonl
"""

import argparse
import json
import time

import numpy as np

import mme_numba as mme
from mme_numba import quadrature
from hostinfo import host  # benchmarks/ is the script folder




def bimodal(seed, betas, epochs=150, n_chains=256):
    X = mme.datasets.gaussian_mixture(n=2000, means=(-3, 3), scales=(0.5, 0.5),
                                      weights=(0.2, 0.8), seed=seed)
    t0 = time.perf_counter()
    m = mme.MaxEnt(mme.observables.polynomial(4), support=(-6, 6), n_chains=n_chains,
                   step_size=0.1, betas=betas, random_state=seed).fit(X, epochs=epochs)
    wall = time.perf_counter() - t0
    pts, logp = quadrature.log_density_grid(m.energy, *m.support_)
    _, log_w, _ = quadrature.grid(*m.support_)
    p = np.exp(logp + log_w)
    last = m.history_[-1]
    return {"problem": "bimodal", "seed": seed, "betas": betas, "epochs": epochs,
            "n_chains": n_chains, "data_right": float(np.mean(X[:, 0] > 0)),
            "model_right": float(p[np.asarray(pts)[:, 0] > 0].sum()),
            "chains_right": float(np.mean(m.chains_[:, 0] > 0)),
            "swap_acceptance": last.get("swap_acceptance"), "ladder": last.get("betas"),
            "rollbacks": last.get("rollbacks"), "wall_s": wall}


def digit_changes(path, betas, snapshots=40, every=5, seed=0):
    from mme_numba.judge import change_rate, digit_judge

    judge = digit_judge()
    m = mme.load(path)
    m.set_params(betas=betas)
    m.sample(len(m.chains_), sweeps=20)            # let the replicas (if any) settle
    labels = []
    t0 = time.perf_counter()
    for _ in range(snapshots):
        m.sample(len(m.chains_), sweeps=every)
        labels.append(judge.predict(m.chains_))
    wall = time.perf_counter() - t0
    labels = np.array(labels)
    shares = np.bincount(labels[-1], minlength=10) / labels.shape[1]
    rep = m.replicas_
    return {"problem": "digits", "model": str(path), "betas": betas, "snapshots": snapshots,
            "sweeps_between": every, "n_chains": int(labels.shape[1]),
            "change_rate": change_rate(labels),
            "chains_that_changed": float(np.mean(np.any(labels != labels[0], axis=0))),
            "final_class_shares": shares.round(3).tolist(),
            "swap_acceptance": None if rep is None else rep.swap_acceptance.tolist(),
            "wall_s": wall}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["bimodal", "digits"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--ladders", default="none,4,8",
                    help="comma-separated betas: none or an int number of levels")
    ap.add_argument("--model", help="digits: a saved digits model (.npz)")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--out", default="tempering.jsonl")
    args = ap.parse_args()
    ladders = [None if s == "none" else int(s) for s in args.ladders.split(",")]
    meta = {"host": host(), "date": time.strftime("%Y-%m-%d")}
    with open(args.out, "a") as fh:
        for betas in ladders:
            runs = ([bimodal(s, betas, args.epochs) for s in args.seeds] if args.what == "bimodal"
                    else [digit_changes(args.model, betas)])
            for r in runs:
                r.update(meta)
                fh.write(json.dumps(r) + "\n")
                fh.flush()
                print({k: v for k, v in r.items() if k not in ("host", "ladder")}, flush=True)


if __name__ == "__main__":
    main()
