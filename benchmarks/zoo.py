"""The problem zoo: how good a model ``MinMaxEnt(net, support).fit(X)`` gives, problem by problem.

    python benchmarks/zoo.py [--problems mix3,moons] [--seeds 0,1,2,3,4]
                             [--set lr_theta=0.01 --set lambda_solver=adam] [--epochs N]
                             [--baselines] [--out benchmarks/results/zoo.jsonl]
    python benchmarks/zoo.py --summary benchmarks/results/zoo.jsonl   # the markdown table

Each fit is one JSON line: problem, seed, settings, wall time, epochs run, rollbacks, and the
grade by an instrument the model does not control:

- d <= 2: ``KL(true ‖ model)`` by quadrature against the exact density
  (:mod:`mme_numba.datasets.zoo`), beside the exact Gaussian MaxEnt on the same data
  (moments ``x``, ``x²`` and, in 2-d, ``x₁x₂``; solved by quadrature, no sampling);
- PCA: the smallest ``|cos|`` between a learned axis and the matching eigenvector of the
  data's second-moment matrix.

``--baselines`` adds what a user would pick instead for d <= 2 (needs scikit-learn):
``KernelDensity`` with its bandwidth chosen by 5-fold cross-validation, and
``GaussianMixture`` with the component count chosen by BIC, both graded by the same
quadrature (their densities renormalised on the box).

Nothing is tuned here: the default run passes no setting at all. ``--set`` exists to measure
a tuned grid beside the defaults (``docs/results.md``).
"""

import argparse
import json
import sys
import time

import numpy as np

import mme_numba as mme
from mme_numba.datasets import zoo
from hostinfo import host  # benchmarks/ is the script folder


def _value(text):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def training_data(p, seed):
    """The ``n_train`` training rows of problem ``p`` for ``seed`` (a seed of its own)."""
    return p.sample(p.n_train, seed=10_000 + seed)


def observables_for(p, seed):
    if p.kind == "pca":
        return mme.observables.squared_projections(p.d, random_state=seed)
    return mme.nn.mlp(list(p.network), activation="tanh", random_state=seed)


def pca_min_cos(U, X):
    """Smallest ``max_k |u_k·e_j|`` over the eigenvectors ``e_j`` of ``XᵀX/n``."""
    _, vecs = np.linalg.eigh(X.T @ X / len(X))
    return float(np.min(np.max(np.abs(U @ vecs), axis=0)))


def gaussian_maxent_kl(p, X):
    """KL of the exact MaxEnt model with the moments of a Gaussian (by quadrature)."""
    from mme_numba import quadrature

    def observe(x):
        cols = [x, x * x]
        if p.d == 2:
            cols.append(x[:, :1] * x[:, 1:2])
        return np.concatenate(cols, axis=1)

    obar = observe(X).mean(axis=0)
    _, lam = quadrature.maxent_entropy(observe, obar, *p.support, n_grid=zoo._GRID[p.d])
    return p.kl_to(lambda x: observe(x) @ lam)


def sklearn_baselines(p, X, seed):
    """KL of KernelDensity (bandwidth by 5-fold CV) and GaussianMixture (components by BIC)."""
    from sklearn.mixture import GaussianMixture
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KernelDensity

    scale = float(np.mean(X.std(axis=0)))
    grid = {"bandwidth": scale * np.geomspace(0.02, 1.0, 25)}
    kde = GridSearchCV(KernelDensity(), grid, cv=5).fit(X).best_estimator_
    gmms = [GaussianMixture(k, n_init=2, random_state=seed).fit(X) for k in range(1, 13)]
    gmm = min(gmms, key=lambda g: g.bic(X))
    return {"kde_kl": p.kl_to(lambda x: -kde.score_samples(x)),
            "kde_bandwidth": float(kde.bandwidth),
            "gmm_kl": p.kl_to(lambda x: -gmm.score_samples(x)),
            "gmm_components": int(gmm.n_components)}


def fit_one(name, seed, settings=None, epochs=None, baselines=False):
    """Fit problem ``name`` with ``seed`` and the given settings; returns one result dict."""
    p = zoo.problem(name)
    X = training_data(p, seed)
    settings = dict(settings or {})
    model = mme.MinMaxEnt(observables_for(p, seed), support=p.support, random_state=seed,
                          **settings)
    out = {"problem": name, "seed": seed, "settings": settings, "d": p.d,
           "fixed_epochs": epochs}
    t = time.perf_counter()
    try:
        model.fit(X) if epochs is None else model.fit(X, epochs=epochs)
        out["error"] = None
    except Exception as exc:  # a failed fit is a result to record, not a crash of the zoo
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["wall_s"] = time.perf_counter() - t
    out["epochs"] = int(getattr(model, "epoch_", 0))
    hist = getattr(model, "history_", [])
    out["rollbacks"] = int(hist[-1].get("rollbacks", 0)) if hist else 0
    out["final_chi2"] = float(hist[-1]["chi2"]) if hist else None
    if not model.is_fitted:
        return out
    if p.kind == "pca":
        obs = getattr(model, "observables_", model.observables)
        out["min_cos"] = pca_min_cos(obs.basis(), X)
    else:
        kl = p.kl_to(model.energy)
        out["kl"] = kl if np.isfinite(kl) else None
        out["gauss_kl"] = gaussian_maxent_kl(p, X)
        if baselines:
            out.update(sklearn_baselines(p, X, seed))
    return out




def summarize(path):
    """A markdown table of a JSON-lines file written by this script: medians and worst cases."""
    rows, hosts = {}, []
    with open(path) as fh:
        for line in fh:
            r = json.loads(line)
            if "host" in r:
                hosts.append(r["host"]["cpu"])
                continue
            # runs of a fixed epoch count are another setting than epochs="auto"
            settings = dict(r["settings"], **({"epochs": r["fixed_epochs"]}
                                              if r.get("fixed_epochs") else {}))
            key = (r["problem"], json.dumps(settings, sort_keys=True))
            rows.setdefault(key, []).append(r)

    def stat(values, worst=max):
        values = [v for v in values if v is not None]
        if not values:
            return "–"
        return f"{np.median(values):.3g} ({worst(values):.3g})"

    out = [f"Host: {', '.join(sorted(set(hosts)))}", "",
           "| problem | settings | fits | KL median (worst) | Gaussian MaxEnt | KL / Gaussian "
           "(worst) | KDE (CV) | GMM (BIC) | PCA min cos (worst) | epochs | wall s | "
           "rollbacks | failed |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (name, settings), rs in rows.items():
        ratio = [r["kl"] / r["gauss_kl"] for r in rs if r.get("kl") is not None and r.get("gauss_kl")]
        out.append("| " + " | ".join([
            name, settings if settings != "{}" else "defaults", str(len(rs)),
            stat([r.get("kl") for r in rs]), stat([r.get("gauss_kl") for r in rs]),
            stat(ratio), stat([r.get("kde_kl") for r in rs]), stat([r.get("gmm_kl") for r in rs]),
            stat([r.get("min_cos") for r in rs], worst=min),
            stat([r["epochs"] for r in rs]), stat([r["wall_s"] for r in rs]),
            str(sum(r["rollbacks"] for r in rs)),
            str(sum(1 for r in rs if r["error"] or (r.get("kl") is None and "min_cos" not in r))),
        ]) + " |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", default=",".join(zoo.PROBLEMS))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--baselines", action="store_true")
    ap.add_argument("--out", default=None, help="append JSON lines here as well")
    ap.add_argument("--summary", default=None, metavar="JSONL",
                    help="print the markdown table of an earlier run and exit")
    args = ap.parse_args(argv)
    if args.summary:
        print(summarize(args.summary))
        return
    settings = dict(kv.split("=", 1) for kv in args.set)
    settings = {k: _value(v) for k, v in settings.items()}
    sink = open(args.out, "a") if args.out else None
    print(json.dumps({"host": host(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}),
          file=sink or sys.stdout, flush=True)
    for name in args.problems.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            res = fit_one(name, seed, settings, args.epochs, args.baselines)
            line = json.dumps(res)
            print(line, flush=True)
            if sink:
                print(line, file=sink, flush=True)
    if sink:
        sink.close()


if __name__ == "__main__":
    main()
