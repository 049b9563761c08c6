"""Every ``python`` block of README.md and docs/*.md runs as a test (with sybil).

The blocks of one document run in order in one namespace, as a reader would run them, in a
fresh temporary working directory, so the files they write land there. A block preceded by
the line ``<!-- slow -->`` is marked ``slow`` (deselected by default, run with ``-m slow``);
``<!-- skip: next "reason" -->`` skips the next block (sybil's own directive).

    python -m pytest README.md docs          # the documentation only
"""

import os
import shutil
import tempfile

import pytest
from sybil import Sybil
from sybil.integration.pytest import SybilItem
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

SLOW_MARK = "<!-- slow -->"

# The sweeps' per-host lanes measurement (mme_numba/kernels/tune.py) caches its result in a
# user cache directory; a test run keeps its own (subprocesses inherit it), so it neither
# writes into the home directory nor depends on what an earlier run measured there.
os.environ.setdefault("MME_NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="mme_numba_cache_"))


def _enter_tmpdir(namespace):
    namespace["__cwd__"] = os.getcwd()
    namespace["__tmpdir__"] = tempfile.mkdtemp(prefix="mme_docs_")
    os.chdir(namespace["__tmpdir__"])


def _leave_tmpdir(namespace):
    os.chdir(namespace.pop("__cwd__"))
    shutil.rmtree(namespace.pop("__tmpdir__"), ignore_errors=True)


#: The documentation collector; tests/test_docs.py checks that it sees every document.
DOC_SYBIL = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["README.md", "docs/*.md"],
    excludes=[".*/*"],
    setup=_enter_tmpdir,
    teardown=_leave_tmpdir,
)
pytest_collect_file = DOC_SYBIL.pytest()


def _preceding_line(item):
    text = item.example.document.text[:item.example.start].rstrip()
    return text.rsplit("\n", 1)[-1].strip()


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    for item in items:
        if isinstance(item, SybilItem) and _preceding_line(item) == SLOW_MARK:
            item.add_marker(pytest.mark.slow)
