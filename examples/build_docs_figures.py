"""Rebuild the documentation's figures: rerun the examples, copy their figures into docs/figures/.

Every figure in ``docs/figures/`` comes from one entry of :data:`FIGURES` below: the command
that makes it (an example script or the CLI, with the full settings the docs report), the
folder it writes into (``runs/examples/<name>/``, never a CLI run folder) and the files to
copy. Each figure is copied as PNG (200 dpi) and SVG. ``docs/figures/BUILD.json`` records,
per figure, the command, the host it ran on (name, CPU, cores, Python, NumPy, Numba), the
commit, the date and the wall time, so a figure rebuilt elsewhere says so.

    python examples/build_docs_figures.py                  # everything (hours on 2 cores)
    python examples/build_docs_figures.py --only pca demo  # some of them
    python examples/build_docs_figures.py --no-run         # copy what runs/examples/ holds
    python examples/build_docs_figures.py --list           # names, commands, outputs

Run it from the repository root with the package installed (``pip install -e .``).
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS_FIGURES = ROOT / "docs" / "figures"
RECORD = DOCS_FIGURES / "BUILD.json"
RUNS = Path("runs/examples")
PY = sys.executable
CLI = [PY, "-c", "import sys; from mme_numba.cli import main; sys.exit(main(sys.argv[1:]))"]

#: name -> command (run from the repository root), output folder, {file stem there: stem in
#: docs/figures}. Entries run in this order; ``steering`` loads the model ``digits`` wrote.
FIGURES = {
    "demo": {
        "command": CLI + ["demo", "--out", str(RUNS / "demo"), "--no-progress"],
        "out": RUNS / "demo",
        "files": {"density": "demo_density", "history": "demo_history"},
    },
    "pca": {
        "command": [PY, "examples/pca.py", "--epochs", "300", "--d", "5", "--seed", "0",
                    "--out", str(RUNS / "pca")],
        "out": RUNS / "pca",
        "files": {"pca_entropy_angle": "pca_entropy_angle"},
    },
    "bimodal_n1000": {
        "command": [PY, "examples/bimodal.py", "--n", "1000", "--epochs", "1000", "--seed", "0",
                    "--out", str(RUNS / "bimodal")],
        "out": RUNS / "bimodal",
        "files": {"bimodal_n1000": "bimodal_n1000"},
    },
    "bimodal_n10": {
        "command": [PY, "examples/bimodal.py", "--n", "10", "--epochs", "1000", "--seed", "0",
                    "--out", str(RUNS / "bimodal")],
        "out": RUNS / "bimodal",
        "files": {"bimodal_n10": "bimodal_n10"},
    },
    "entropy_curve": {
        "command": [PY, "examples/entropy_curve.py", "--epochs", "400", "--seed", "0",
                    "--out", str(RUNS / "entropy_curve")],
        "out": RUNS / "entropy_curve",
        "files": {"entropy_curve": "entropy_curve"},
    },
    "cauchy_vs_vae": {
        "command": [PY, "examples/cauchy_vs_vae.py", "--epochs", "1000", "--vae-epochs", "2000",
                    "--seeds", "0", "1", "2", "--out", str(RUNS / "cauchy_vs_vae")],
        "out": RUNS / "cauchy_vs_vae",
        "files": {"cauchy_vs_vae": "cauchy_vs_vae"},
    },
    "digits": {
        # 200 epochs of the defaults (epochs="auto" runs longer than a docs rebuild should)
        "command": [PY, "examples/digits.py", "--epochs", "200", "--mixing-seconds", "0",
                    "--out", str(RUNS / "digits")],
        "out": RUNS / "digits",
        "files": {"digits_epochs": "digits_epochs", "digits_samples": "digits_samples"},
    },
    "steering": {
        "command": [PY, "examples/steering.py", "--model", str(RUNS / "digits" / "model.npz"),
                    "--rounds", "0", "--out", str(RUNS / "steering")],
        "out": RUNS / "steering",
        "files": {"steering": "steering"},
    },
}


def shown(command):
    """A command as a reader would type it (``python ...``, ``mme-numba ...``)."""
    if command[:len(CLI)] == CLI:
        return " ".join(["mme-numba", *map(str, command[len(CLI):])])
    return " ".join("python" if c == PY else str(c) for c in command)


def host():
    """What the figures' numbers depend on: the machine and the library versions."""
    import numba
    import numpy

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"hostname": platform.node(), "platform": platform.platform(), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": numpy.__version__, "numba": numba.__version__,
            "numba_threads": os.environ.get("NUMBA_NUM_THREADS", "default")}


def commit():
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return rev + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def _demo_svg(out):
    """The CLI writes PNGs only: redraw the demo's density and history from its model for the SVG."""
    import numpy as np

    import mme_numba as mme
    from mme_numba import config, plotting
    from mme_numba.cli import DEMO_CONFIG
    from mme_numba.datasets import truncated_logpdf
    from mme_numba.figstyle import save_figure

    model = mme.load(out / "model.npz")
    spec = DEMO_CONFIG["data"]
    logp = truncated_logpdf(config.true_logpdf(spec), *model.support_, n_grid=4001)
    fig = plotting.plot_density_1d(model, config.build_data(spec),
                                   true_density=lambda x: np.exp(logp(np.asarray(x)[:, None])))
    save_figure(fig, out / "density.png", svg=True)
    fig = plotting.plot_history(model)
    save_figure(fig, out / "history.png", svg=True)


def build(name, run=True, record=None):
    entry = FIGURES[name]
    out = entry["out"]
    seconds = None
    if run:
        print(f"[{name}] {shown(entry['command'])}", flush=True)
        t0 = time.perf_counter()
        subprocess.run(entry["command"], cwd=ROOT, check=True)
        if name == "demo":
            _demo_svg(ROOT / out)
        seconds = round(time.perf_counter() - t0, 1)
    copied = []
    for stem, dest in entry["files"].items():
        for suffix in (".png", ".svg"):
            src = ROOT / out / (stem + suffix)
            if not src.exists():
                raise FileNotFoundError(f"[{name}] {src} is missing: run without --no-run")
            shutil.copyfile(src, DOCS_FIGURES / (dest + suffix))
            copied.append(dest + suffix)
    print(f"[{name}] copied {', '.join(copied)} into {DOCS_FIGURES.relative_to(ROOT)}/")
    if record is not None:
        record[name] = {"files": copied, "command": shown(entry["command"]),
                        "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "seconds": seconds, "commit": commit(), "host": host()}
    return copied


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=list(FIGURES), help="rebuild these only")
    p.add_argument("--no-run", action="store_true",
                   help="copy the figures already in runs/examples/ (record them as copied)")
    p.add_argument("--list", action="store_true", help="print the figures and their commands")
    args = p.parse_args(argv)
    if args.list:
        for name, entry in FIGURES.items():
            print(f"{name}: {shown(entry['command'])}\n    -> {', '.join(entry['files'].values())}")
        return 0
    DOCS_FIGURES.mkdir(parents=True, exist_ok=True)
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    for name in args.only or FIGURES:
        build(name, run=not args.no_run, record=record)
        RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"recorded the host in {RECORD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
