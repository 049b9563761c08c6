"""Steering graded by the independent judge (issue 14, item 4): target rate against strength.

For a saved digits model, trains the steering classifier as ``mme steer --classifier digits``
does (``--classifier model+steered``, the default: ``fields.refined_classifier(classifier_cnn(
11), model, X, y, rounds=0, steer_by=(plain, robust))``, the 1797 shipped digits plus an 11th
class of 1024 of the model's own samples and, per digit, 64 samples steered at h = 5 by a plain
and by a robust 10-class classifier), or ``model`` (that class with the model's samples only:
``train_classifier(..., negatives=model)``), ``refined`` (model samples, then one round steered
by the classifier itself), the 10-class default of ``train_classifier`` (``default``, as
``steer --classifier digits-plain``), plain cross-entropy (``plain``), or the earlier hand
recipe (``negatives``: the model's chains and steered samples), then
for every digit ``c`` and strength ``h`` samples ``H(x) − h ln P_clf(c | x)`` and, as the
control, ``−h ln P_clf(c | x)`` alone (model energy off). The samples are graded by
``mme_numba.judge`` only (an SVC the field never saw): the share the judge calls ``c`` and the
judge's mean top-class probability. The field's own classifier rate is recorded beside them,
never used as the grade.

Sampling: ``--chains`` of the model's persistent chains (its first ones), each burned in
``--burn-in`` sweeps under the steered energy and then advanced ``--sweeps`` sweeps with the
model's own move; one state per chain. Writes JSON (default
``docs/data/steering_default.json``).

    python benchmarks/steering.py --model runs/examples/digits/model.npz --out out.json
    python benchmarks/steering.py --model M.npz --classifier plain --out plain.json
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import mme_numba as mme  # noqa: E402
from mme_numba import fields  # noqa: E402
from mme_numba.judge import digit_judge  # noqa: E402
from mme_numba.kernels import seed_states  # noqa: E402
from hostinfo import host  # benchmarks/ is the script folder

#: plain cross-entropy, the default before issue 14
PLAIN = dict(adversarial=0.0, noise=0.0, label_smoothing=0.0)
#: draws of the model for the "not a digit" class (``model``, ``refined``, ``model+steered``)
N_NEGATIVES = 1024


def classifier(kind, seed=0, model=None, burn_in=60, sweeps=60):
    """The steering classifier of ``kind`` (see the module docstring); ``negatives``: 11
    classes, the 11th the model's own chains and, for every digit, 64 samples steered at
    h = 5 by the plain and by the default classifier."""
    X, y = mme.datasets.digits()
    if kind == "refined":
        return fields.refined_classifier(mme.nn.classifier_cnn(11), model, X, y, epochs=30,
                                         random_state=seed, n_negatives=N_NEGATIVES)
    if kind == "model+steered":
        return fields.refined_classifier(
            mme.nn.classifier_cnn(11), model, X, y, rounds=0, epochs=30, random_state=seed,
            n_negatives=N_NEGATIVES, steer_by=(classifier("plain", seed),
                                               classifier("default", seed)))
    if kind == "model":
        return fields.train_classifier(mme.nn.classifier_cnn(11), X, y, epochs=30,
                                       random_state=seed, negatives=model,
                                       n_negatives=N_NEGATIVES)
    if kind == "negatives":
        neg = [model.chains_]
        for first in (classifier("plain", seed), classifier("default", seed)):
            neg += [steered_sample(model, first, c, 5.0, burn_in=burn_in, sweeps=sweeps,
                                   seed=c) for c in range(10)]
        return fields.train_classifier(mme.nn.classifier_cnn(11), X, y, epochs=30,
                                       random_state=seed, negatives=np.concatenate(neg))
    kwargs = PLAIN if kind == "plain" else {}
    return fields.train_classifier(mme.nn.classifier_cnn(10), X, y, epochs=30,
                                   random_state=seed, **kwargs)


def steered_sample(model, clf, target, strength, *, base=True, chains=64, burn_in=60,
                   sweeps=60, seed=0):
    """One state from each of ``chains`` steered chains (the model's first ones)."""
    s = model.with_field(fields.ClassifierField(clf, target), strength=strength, base=base,
                         random_state=seed)
    k = min(int(chains), len(s.chains_))
    s.chains_, s.step_ = s.chains_[:k].copy(), s.step_[:k].copy()
    s.rng_state_ = seed_states(seed, k)
    s.burn_in = int(burn_in)
    return s.sample(k, sweeps=sweeps)


def grade(judge, clf, xs, target):
    p = judge.predict_proba(xs)
    return {"judge_target_rate": float(np.mean(p.argmax(axis=1) == target)),
            "judge_top_class_probability": float(p.max(axis=1).mean()),
            "judge_target_probability": float(p[:, target].mean()),
            "field_classifier_rate": float(np.mean(clf.forward(xs).argmax(axis=1) == target))}


def run(model_path, kind="model+steered", strengths=(1, 2, 5, 10), modes=("steered", "field_only"),
        chains=64, burn_in=60, sweeps=60, seed=0, log=print, classifier_file=None):
    from mme_numba.io import load_network, save_network

    model = mme.load(model_path)
    judge = digit_judge()
    t0 = time.perf_counter()
    if classifier_file is not None and Path(classifier_file).exists():
        clf = load_network(classifier_file)  # trained by an earlier run of the same kind
        log(f"classifier loaded from {classifier_file}")
    else:
        clf = classifier(kind, seed, model, burn_in, sweeps)
        if classifier_file is not None:
            save_network(clf, classifier_file)
    t_clf = time.perf_counter() - t0
    log(f"classifier ready ({t_clf:.0f} s)")
    out = {"model": str(model_path), "classifier": kind,
           "classifier_settings": {"default": "train_classifier defaults", "plain": PLAIN,
                                   "model": f"defaults, classifier_cnn(11), negatives=model, "
                                            f"n_negatives={N_NEGATIVES}",
                                   "refined": f"fields.refined_classifier(classifier_cnn(11), "
                                              f"model, X, y, epochs=30, n_negatives="
                                              f"{N_NEGATIVES}) (1 round, h = 5, 64 per digit)",
                                   "model+steered": f"fields.refined_classifier(classifier_cnn"
                                                    f"(11), model, X, y, rounds=0, epochs=30, "
                                                    f"n_negatives={N_NEGATIVES}, steer_by=("
                                                    f"plain, default 10-class)) (h = 5, 64 "
                                                    f"per digit)",
                                   "negatives": "defaults, negatives= model and steered "
                                                "samples (see classifier())"}[kind],
           "chains": chains, "burn_in": burn_in, "sweeps": sweeps, "seed": seed,
           "move": model.move_, "host": host(), "classifier_train_s": t_clf,
           "unsteered": None, "steered": {}, "field_only": {}}
    # the model alone, sampled the same way (a field of strength 0)
    xs = steered_sample(model, clf, 0, 0.0, chains=chains, burn_in=burn_in, sweeps=sweeps,
                        seed=seed)
    p = judge.predict_proba(xs)
    out["unsteered"] = {"judge_top_class_probability": float(p.max(axis=1).mean()),
                        "judge_class_shares": (np.bincount(p.argmax(axis=1), minlength=10)
                                               / len(p)).tolist()}
    for mode, base in (("steered", True), ("field_only", False)):
        if mode not in modes:
            continue
        for h in strengths:
            rows = {}
            for c in range(10):
                t = time.perf_counter()
                xs = steered_sample(model, clf, c, h, base=base, chains=chains,
                                    burn_in=burn_in, sweeps=sweeps, seed=seed + c)
                rows[str(c)] = {**grade(judge, clf, xs, c), "wall_s": time.perf_counter() - t}
                log(f"{mode} h={h:g} digit {c}: judge rate "
                    f"{rows[str(c)]['judge_target_rate']:.2f}, top-class probability "
                    f"{rows[str(c)]['judge_top_class_probability']:.2f} "
                    f"({rows[str(c)]['wall_s']:.0f} s)")
            rates = [r["judge_target_rate"] for r in rows.values()]
            tops = [r["judge_top_class_probability"] for r in rows.values()]
            out[mode][f"{h:g}"] = {
                "digits": rows, "median_rate": float(np.median(rates)),
                "min_rate": float(np.min(rates)), "median_top": float(np.median(tops)),
                "min_top": float(np.min(tops)),
                "digits_meeting_item4": int(sum(r >= 0.8 and q >= 0.7
                                                for r, q in zip(rates, tops)))}
    out["wall_s"] = time.perf_counter() - t0
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a saved digits model (.npz)")
    p.add_argument("--classifier", default="model+steered",
                   choices=("model+steered", "model", "refined", "default", "plain",
                            "negatives"),
                   help="model+steered: what mme-numba steer --classifier digits trains; "
                        "model: 11 classes, the last the model's own samples only; default: "
                        "the 10-class default of train_classifier (steer --classifier "
                        "digits-plain)")
    p.add_argument("--strengths", type=float, nargs="+", default=[1, 2, 5, 10])
    p.add_argument("--modes", nargs="+", choices=("steered", "field_only"),
                   default=["steered", "field_only"],
                   help="with the model's energy, and/or the field alone (the control)")
    p.add_argument("--merge", action="store_true",
                   help="add the modes run to those already in --out (same model and "
                        "classifier), e.g. when the two modes ran as two processes")
    p.add_argument("--chains", type=int, default=64)
    p.add_argument("--burn-in", type=int, default=60)
    p.add_argument("--sweeps", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/data/steering_default.json")
    p.add_argument("--classifier-file", default=None,
                   help="load the classifier from this network file when it exists, else "
                        "train it and save it there (two processes of one measurement then "
                        "share it)")
    a = p.parse_args()
    res = run(a.model, a.classifier, a.strengths, a.modes, a.chains, a.burn_in, a.sweeps,
              a.seed, classifier_file=a.classifier_file)
    out = Path(a.out)
    if a.merge and out.exists():
        old = json.loads(out.read_text())
        if (old["model"], old["classifier"]) != (res["model"], res["classifier"]):
            raise SystemExit(f"{out} holds another model or classifier: not merged")
        for mode in ("steered", "field_only"):
            res[mode] = {**old.get(mode, {}), **res[mode]}
        res["wall_s"] = [old["wall_s"], res["wall_s"]]
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {a.out} ({res['wall_s']} s)")


if __name__ == "__main__":
    main()
