"""The documentation stands alone and matches the repository.

- every relative link, image and repository path named in README.md and docs/*.md exists;
- nothing in the repository cites a file outside it (the method is docs/method.md);
- examples write into runs/examples/<name>/, apart from the CLI's run folders, and every
  figure in docs/figures/ is rebuilt by examples/build_docs_figures.py, at >= 150 dpi.

The python blocks of the same documents run as tests through sybil (``conftest.py``).
"""

import importlib.util
import re
import struct
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("mme_numba", "docs", "examples", "tests", "benchmarks", ".ci")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REPO_PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./-]*[\w/])" % "|".join(re.escape(t) for t in TOP))
TICKED_FILE = re.compile(r"`([\w./-]+\.(?:py|md|toml|cfg))`")


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = heading.strip().lower()
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def _anchors(path):
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", path.read_text(), re.M)}


def _named(doc):
    """(kind, name, candidates): every relative link and repository path in ``doc``."""
    text = doc.read_text()
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            if target.startswith("#"):
                yield "anchor", target, [doc.with_name(doc.name + target)]
            continue
        yield "link", target, [doc.parent / target]
    for m in REPO_PATH.finditer(text):
        yield "path", m.group(1), [ROOT / m.group(1)]
    for m in TICKED_FILE.finditer(text):
        # a bare or partial name (`layers.py` beside `mme_numba/nn/`): some file must end so
        name = m.group(1)
        yield "file", name, [ROOT / f for f in _tracked() if ("/" + f).endswith("/" + name)]


def _tracked():
    if not hasattr(_tracked, "files"):
        _tracked.files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True,
                                        text=True, check=True).stdout.split()
    return _tracked.files


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_file_named_in_the_docs_exists(doc):
    missing = []
    for kind, name, candidates in _named(doc):
        ok = False
        for cand in candidates:
            path_part, _, anchor = str(cand).partition("#")
            target = Path(path_part)
            if not target.exists():
                continue
            ok = not anchor or (target.suffix == ".md" and anchor in _anchors(target))
            if ok:
                break
        if not ok:
            missing.append(f"{kind} {name}")
    assert not missing, f"{doc.name} names what the repository lacks: {missing}"


def test_the_link_checker_sees_links_paths_and_anchors(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("# A λ title\nsee [m](docs/method.md), `examples/nope.py`, `cli.md`, "
                   "[a](#a-λ-title)\n")
    kinds = {(k, n) for k, n, _ in _named(doc)}
    assert {("link", "docs/method.md"), ("path", "examples/nope.py"), ("file", "cli.md"),
            ("anchor", "#a-λ-title")} <= kinds
    assert "a-λ-title" in _anchors(doc)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_is_collected_by_the_doc_runner(doc):
    """Python code sits in ``python`` fences (other spellings would not run), and the sybil
    collector in conftest.py parses every document, so each block runs as a test."""
    sys.path.insert(0, str(ROOT))
    try:
        from conftest import DOC_SYBIL
    finally:
        sys.path.remove(str(ROOT))
    from sybil.evaluators.python import PythonEvaluator

    assert DOC_SYBIL.should_parse(doc)
    fences = re.findall(r"^```(\S*)", doc.read_text(), re.M)
    assert not set(fences) & {"py", "python3", "pycon", "ipython"}, fences
    blocks = [e for e in DOC_SYBIL.parse(doc).examples()
              if isinstance(e.region.evaluator, PythonEvaluator)]
    assert len(blocks) == fences.count("python")


def test_nothing_cites_a_file_outside_the_repository():
    files = _tracked()
    outside = re.compile(r"METHOD\.md|DESIGN\.md|paper\.txt|shared/")
    hits = []
    for name in files:
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".toml", ".cfg", ".txt", ""):
            continue
        if path.resolve() == Path(__file__).resolve() or not path.is_file():
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if outside.search(line):
                hits.append(f"{name}:{i}")
    assert not hits, f"citations of files outside the repository: {hits}"


def test_method_has_the_sections_the_code_cites():
    text = (ROOT / "docs" / "method.md").read_text()
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", text, re.M)}
    assert sections == set(range(1, 13))
    cited = set()
    for path in [*ROOT.glob("mme_numba/**/*.py"), *ROOT.glob("examples/**/*"),
                 *ROOT.glob("tests/*.py"), *DOCS]:
        if path.is_file():
            for group in re.findall(r"docs/method\.md`?\s*((?:§\d+(?:,\s*)?)+)",
                                    path.read_text(errors="replace")):
                cited |= {int(n) for n in re.findall(r"§(\d+)", group)}
    assert cited and cited <= sections


def _load_build_script():
    spec = importlib.util.spec_from_file_location(
        "build_docs_figures", ROOT / "examples" / "build_docs_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_examples_write_apart_from_the_cli_and_never_into_docs():
    cli_outs = set()
    for cfg in (ROOT / "examples" / "configs").glob("*.toml"):
        m = re.search(r'^out\s*=\s*"([^"]+)"', cfg.read_text(), re.M)
        cli_outs.add(Path(m.group(1)) if m else Path("runs") / cfg.stem)
    for script in sorted((ROOT / "examples").glob("*.py")):
        text = script.read_text()
        assert "savefig(" not in text, f"{script.name}: save through figstyle.save_figure"
        assert not re.search(r'"docs"\s*/\s*"figures"', text) or script.name == \
            "build_docs_figures.py", f"{script.name} writes into docs/figures"
        for out in re.findall(r'^OUT = Path\("([^"]+)"\)', text, re.M):
            assert Path(out).parent == Path("runs/examples"), (script.name, out)
            assert Path(out) not in cli_outs
    build = _load_build_script()
    for name, entry in build.FIGURES.items():
        assert Path(entry["out"]).parent == Path("runs/examples"), name
        assert Path(entry["out"]) not in cli_outs


def _png_size(path):
    """(width, height) in pixels and the pHYs resolution in dots per inch (None if absent)."""
    data = path.read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    dpi = None
    i = data.find(b"pHYs")
    if i > 0:
        ppm_x, _, unit = struct.unpack(">IIB", data[i + 4:i + 13])
        dpi = ppm_x * 0.0254 if unit == 1 else None
    return width, height, dpi


def test_every_docs_figure_has_a_build_entry():
    build = _load_build_script()
    built = {dest for entry in build.FIGURES.values() for dest in entry["files"].values()}
    figures = {p.stem for p in (ROOT / "docs" / "figures").glob("*.png")}
    assert figures <= built, f"figures no command rebuilds: {sorted(figures - built)}"


def test_rebuilt_figures_are_at_150_dpi_with_svg_and_recorded_hosts():
    import json

    record_path = ROOT / "docs" / "figures" / "BUILD.json"
    if not record_path.exists():
        pytest.skip("no figure rebuilt yet")
    record = json.loads(record_path.read_text())
    assert record
    for name, entry in record.items():
        assert entry["command"] and entry["host"]["hostname"] is not None, name
        for file in entry["files"]:
            path = ROOT / "docs" / "figures" / file
            assert path.exists(), file
            if path.suffix == ".png":
                assert _png_size(path)[2] >= 149.5, file
                assert path.with_suffix(".svg").exists(), file


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
