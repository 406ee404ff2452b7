"""The package's shape (issue 12): no import cycle among fastrepr's modules, no argparse outside fastrepr/cli,
no printing outside fastrepr/cli and fastrepr/bench, no file over ~600 lines.

The import graph comes from the AST of every module: each ``import``/``from ... import`` of a fastrepr module,
at top level or inside a function (a function-level import is still a dependency, only a later one), is an
edge; ``from package import name`` is an edge to the submodule when ``name`` is one, else to the package."""
import ast
from pathlib import Path

import pytest

import fastrepr

ROOT = Path(fastrepr.__file__).parent
MAX_LINES = 620  # "files under ~600 lines"


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ["fastrepr", *path.relative_to(ROOT).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


MODULES = _modules()


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


TREES = {name: ast.parse(path.read_text(), str(path)) for name, (path, _) in MODULES.items()}


def _edges(name: str) -> set[str]:
    path, is_pkg = MODULES[name]
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.split(".")[0] == "fastrepr"]
            out |= {t for t in targets if t in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if module.split(".")[0] != "fastrepr" or module not in MODULES:
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                if sub in MODULES:
                    out.add(sub)
                elif alias.name in _top_level_names(TREES[module]) or not MODULES[module][1]:
                    out.add(module)
                # else: a compiled submodule (fastrepr._C), not part of the graph
    out.discard(name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_and_relative_imports():
    graph = {name: _edges(name) for name in MODULES}
    assert "fastrepr.bench" in graph["fastrepr.cli.bench"]  # `from .. import bench` inside main()
    assert "fastrepr._native" in graph["fastrepr._backend"]
    assert "fastrepr" not in graph["fastrepr._native"]  # `from . import _C`: the extension, not the package


def test_no_import_cycle():
    graph = {name: _edges(name) for name in MODULES}
    assert _cycles(graph) == []


def test_text_and_evaluation_do_not_import_each_other():
    graph = {name: _edges(name) for name in MODULES}
    for a, b in (("text", "evaluation"), ("evaluation", "text")):
        crossing = [(m, d) for m in graph if m.startswith(f"fastrepr.{a}") for d in graph[m]
                    if d.startswith(f"fastrepr.{b}")]
        assert crossing == []


def _library(name: str) -> bool:
    return not name.startswith(("fastrepr.cli", "fastrepr.bench"))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_library_modules_hold_no_argparse_and_no_print(name):
    tree = TREES[name]
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    if not name.startswith("fastrepr.cli"):
        assert "argparse" not in imported
    if _library(name):
        prints = [n.lineno for n in ast.walk(tree)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"]
        assert prints == [], f"{name}: print( at lines {prints}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_files_stay_under_600_lines(name):
    lines = MODULES[name][0].read_text().count("\n")
    assert lines <= MAX_LINES, f"{name}: {lines} lines"


def test_the_bench_harness_imports_nothing_else_of_fastrepr():
    assert _edges("fastrepr.bench.harness") == set()
