"""One digits fit with the defaults plus chosen settings, graded by the independent judge.

    python benchmarks/digits_settings.py                      # every setting at its default
    python benchmarks/digits_settings.py --epochs 100 --seed 0 --set lambda_solver=newton
    python benchmarks/digits_settings.py --epochs 200 --hidden 64 --set n_chains=256

Training images: 200 of the 1797 shipped digits drawn with ``default_rng(0)``; the other 1597
are the judge's held-out real images. Prints the training curve every 10 epochs (χ², entropy
estimate, |λ|, acceptance, sweeps) and, at the end, the judge's report on 1024 samples
(``mme_numba.judge``) as one JSON line.
"""

import argparse
import json
import time

import numpy as np

import mme_numba as mme
from mme_numba.judge import digit_judge
from zoo import _value  # benchmarks/ is the script folder


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", default="auto", type=lambda v: v if v == "auto" else int(v),
                    help='"auto" (the default: the model stops by itself) or a count')
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=None,
                    help="paper_cnn(16, hidden=N): a dense layer before the observables")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    settings = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    X, _ = mme.datasets.digits()
    idx = np.random.default_rng(0).choice(len(X), 200, replace=False)
    train, held = X[idx], np.delete(X, idx, axis=0)
    net = mme.nn.paper_cnn(16, random_state=args.seed, hidden=args.hidden)
    model = mme.MinMaxEnt(net, support=(0, 1), random_state=args.seed, **settings)
    t0 = time.perf_counter()

    def curve(m, r):
        if r["epoch"] % 10 == 0:
            print(json.dumps({"epoch": r["epoch"], "chi2": round(r["chi2"], 3),
                              "S": round(r["entropy_estimate"], 2),
                              "lambda_norm": round(r["lambda_norm"], 2),
                              "acceptance": round(r["acceptance"], 3), "sweeps": r.get("sweeps"),
                              "wall_s": round(time.perf_counter() - t0)}), flush=True)

    model.fit(train, epochs=args.epochs, callback=curve)
    fit_s = time.perf_counter() - t0
    report = digit_judge().report(model.sample(1024, sweeps=20), train, held)
    print(json.dumps({"settings": settings, "hidden": args.hidden, "epochs": args.epochs,
                      "seed": args.seed, "epochs_run": model.epoch_, "fit_s": round(fit_s),
                      "wall_s": round(time.perf_counter() - t0), **report}), flush=True)


if __name__ == "__main__":
    main()
