"""The package's import graph has no cycle, counting imports inside functions too.

Every ``import``/``from ... import`` statement anywhere in a module of ``mme_numba`` (module
level, inside functions and methods, under ``if``) is an edge from that module to the
``mme_numba`` module it names; ``from package import name`` is an edge to the submodule
``package.name`` where that is a module, else to the package. A cycle makes the order of
initialization matter and ties the layers together (``spec`` → ``nn`` → ``kernels`` → the
orchestration: data flows one way).
"""

import ast
from pathlib import Path

import pytest

import mme_numba

ROOT = Path(mme_numba.__file__).parent


def _modules():
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def _resolve(module, is_pkg, level, name):
    if level == 0:
        return name
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph():
    """``{module: {modules it imports}}`` over the modules of ``mme_numba``."""
    mods = _modules()
    graph = {m: set() for m in mods}
    for mod, (path, is_pkg) in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node.level, node.module)
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in mods else base)
            for t in targets:
                while t and t not in mods:  # "import a.b.c" of a non-module: its package
                    t = t.rpartition(".")[0]
                if t and t != mod and t.startswith("mme_numba"):
                    graph[mod].add(t)
    return graph


def find_cycle(graph):
    """One cycle as a list of modules ``[a, b, ..., a]``, or ``None``."""
    state = {}

    def visit(node, path):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def _without_package_inits(graph):
    # "from . import x" inside a package names the package __init__, which re-exports; an
    # __init__ that imports its own submodules is not a cycle of the layers.
    return {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}


def test_the_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "mme_numba.gpu" in graph["mme_numba.backends"]  # inside get_backend
    assert "mme_numba.spec" in graph["mme_numba.kernels.interpret"]


#: The layers below the orchestration: the tables, the networks, the kernels, the backends.
LOWER = ("mme_numba.spec", "mme_numba.settings", "mme_numba.nn", "mme_numba.observables",
         "mme_numba.kernels", "mme_numba.backends", "mme_numba.gpu")


def test_the_lower_layers_have_no_import_cycle():
    graph = _without_package_inits(import_graph())
    lower = {m: {t for t in ts if t.startswith(LOWER)} for m, ts in graph.items()
             if m.startswith(LOWER)}
    cycle = find_cycle(lower)
    assert cycle is None, " -> ".join(cycle)


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(_without_package_inits(import_graph()))
    assert cycle is None, " -> ".join(cycle)
