"""Steering a trained digits model without retraining (paper §I.3, Fig. 6–7).

Loads the model written by ``examples/digits.py`` (or trains a shorter one if it is missing),
trains a CNN classifier on real labelled digits the model never saw, and samples from

- ``H(x) − h ln P_clf(c | x)`` for each digit ``c`` (conditional generation, Eq. 22–23 of the
  paper; docs/method.md §10);
- ``−h ln P_clf(c | x)`` alone (the model switched off: the paper's control, Fig. 7d);
- ``H(x) − h ln D(x)`` with a discriminator refined adversarially (Eq. 20–21), retraining only
  the discriminator.

It reports the target-class rate, the classifier's confidence and the nearest-neighbour
distance ratio (1 ≈ as close to the training images as real held-out digits; far above 1 =
noise), writes ``<out>/steering.png`` (and ``.svg``) and ``<out>/steering.json`` (default
``runs/examples/steering/``); ``python examples/build_docs_figures.py`` copies the figure into
``docs/figures/``. The method: ``docs/method.md`` §10.

    python examples/steering.py [--model runs/examples/digits/model.npz] [--strength 2.0]
                                [--out runs/examples/steering]
"""

import argparse
import json
import logging
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import mme_numba as mme  # noqa: E402
from mme_numba import fields, quality  # noqa: E402
from mme_numba.figstyle import save_figure  # noqa: E402

OUT = Path("runs/examples/steering")
MODEL = Path("runs/examples/digits/model.npz")   # written by examples/digits.py


def split(seed=0, n_train=200, n_eval=300):
    """The same split as examples/digits.py: model training, held-out, classifier images."""
    perm = np.random.default_rng(seed).permutation(1797)
    return (np.sort(perm[:n_train]), np.sort(perm[n_train:n_train + n_eval]),
            np.sort(perm[n_train + n_eval:]))


def describe(samples, clf, train, heldout, target=None):
    logp = clf.forward(samples)
    pred = logp.argmax(axis=1)
    nn = quality.nn_distance_ratio(samples, train, heldout)
    out = {"mean_confidence": float(np.exp(logp.max(axis=1)).mean()),
           "class_counts": np.bincount(pred, minlength=10).tolist(),
           "nn_distance_ratio": nn["ratio"], "near_copies": nn["copies"]}
    if target is not None:
        out["target_rate"] = float(np.mean(pred == target))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(MODEL), help=f"trained model (default {MODEL})")
    p.add_argument("--strength", type=float, default=2.0)
    p.add_argument("--sweeps", type=int, default=40, help="sweeps per steered draw")
    p.add_argument("--n", type=int, default=64, help="samples per target")
    p.add_argument("--rounds", type=int, default=2, help="adversarial refinement rounds")
    p.add_argument("--out", default=str(OUT), help=f"output folder (default {OUT})")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    X, y = mme.datasets.digits()
    tr, ev, rest = split()
    fallback = out / "model.npz"
    if Path(args.model).exists() or fallback.exists():
        model = mme.load(args.model if Path(args.model).exists() else fallback)
    else:
        print(f"{args.model} not found: training a 300-epoch model (about 3 minutes)")
        model = mme.MinMaxEnt(mme.nn.paper_cnn(16), support=(0.0, 1.0), n_chains=256,
                              sweeps=2, burn_in=20, step_size=0.3, move="single",
                              lambda_solver="adam", lr_lambda=0.05, lr_theta=1e-3,
                              random_state=0).fit(X[tr], epochs=300)
        model.save(out / "model.npz")

    t0 = time.perf_counter()
    clf = fields.train_classifier(mme.nn.classifier_cnn(10), X[rest], y[rest], epochs=30,
                                  random_state=0)
    acc = float(np.mean(clf.forward(X[ev]).argmax(axis=1) == y[ev]))
    print(f"classifier: {acc:.3f} accuracy on {len(ev)} held-out digits "
          f"({time.perf_counter() - t0:.0f} s)")
    report = {"classifier_accuracy": acc, "strength": args.strength, "targets": {}}
    report["unsteered"] = describe(model.sample(args.n, sweeps=args.sweeps), clf, X[tr], X[ev])

    rows = {}
    for c in range(10):
        steered = model.with_field(fields.ClassifierField(clf, c), strength=args.strength)
        s = steered.sample(args.n, sweeps=args.sweeps)
        rows[f"target {c}"] = s
        report["targets"][c] = {**describe(s, clf, X[tr], X[ev], target=c),
                                "field_ess": steered.field_ess_}
        print(f"target {c}: rate {report['targets'][c]['target_rate']:.2f}, "
              f"NN ratio {report['targets'][c]['nn_distance_ratio']:.2f}")
    only = model.with_field(fields.ClassifierField(clf, 3), strength=args.strength, base=False)
    rows["field only (3)"] = only.sample(args.n, sweeps=args.sweeps)
    report["field_only_3"] = describe(rows["field only (3)"], clf, X[tr], X[ev], target=3)
    print(f"field only, target 3: rate {report['field_only_3']['target_rate']:.2f}, "
          f"NN ratio {report['field_only_3']['nn_distance_ratio']:.2f}")

    disc = mme.nn.classifier_cnn(2, random_state=1)
    steered_d, hist = fields.adversarial_refinement(model, disc, X[tr], rounds=args.rounds,
                                                    strength=args.strength, n_samples=args.n,
                                                    sweeps=args.sweeps, epochs=20)
    rows["discriminator"] = steered_d.sample(args.n, sweeps=args.sweeps)
    report["adversarial"] = {"rounds": hist,
                             **describe(rows["discriminator"], clf, X[tr], X[ev])}
    print("adversarial refinement:", hist)
    report["wall_s"] = time.perf_counter() - t0

    fig = mme.plotting.plot_image_rows(rows, cell=0.7)
    save_figure(fig, out / "steering.png", svg=True)
    (out / "steering.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'steering.json'}")  # the figure's path is logged by plotting


if __name__ == "__main__":
    main()
