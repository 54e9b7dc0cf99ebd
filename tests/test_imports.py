"""No import cycle inside echocaptions, between modules or between its packages.

The import graph is read from the source (``ast``), not by importing: every
``import`` and ``from ... import`` naming an echocaptions module counts, at
module level or inside a function (a deferred import is still a dependency).
An import of a module's own ancestor package is not an edge: Python runs a
package's ``__init__`` before any of its modules anyway. Packages are the
first level below ``echocaptions`` (``echocaptions.captions``,
``echocaptions.imaging``, ...; a top-level module is its own package).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "echocaptions"
PACKAGE = "echocaptions"


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported(module: str, path: Path, node: ast.AST, known: dict[str, Path]) -> list[str]:
    """The package modules one import statement names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        # `from pkg import mod` names the module pkg.mod; `from mod import name` names mod.
        names = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
    else:
        return []
    out = []
    for name in names:
        while name and name not in known:  # `import a.b.c` where c is not a module: its module
            name = name.rpartition(".")[0]
        if name:
            out.append(name)
    return out


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line of the first import}}`` inside the package."""
    known = module_files(root)
    graph: dict[str, dict[str, int]] = {m: {} for m in known}
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            for name in _imported(module, path, node, known):
                if name != module and not module.startswith(name + "."):
                    graph[module].setdefault(name, node.lineno)
    return graph


def package_graph(graph: dict[str, dict[str, int]]) -> dict[str, dict[str, str]]:
    """``{package: {imported package: 'module -> module (line N)' of one import}}``."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for module, targets in graph.items():
        for target, line in targets.items():
            a, b = _package(module), _package(target)
            if a != b:
                out[a].setdefault(b, f"{module} -> {target} (line {line})")
    return out


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def cycles(graph: dict[str, dict[str, object]]) -> list[list[str]]:
    """The strongly connected components of more than one node (each one is a cycle or several)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(component: list[str], graph: dict[str, dict[str, object]]) -> str:
    members = set(component)
    return "; ".join(f"{a} -> {b} ({how})" for a in component for b, how in graph[a].items() if b in members)


def test_the_checker_finds_a_cycle_and_follows_relative_and_deferred_imports(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from echocaptions.sub import a  # noqa\n")
    (pkg / "sub" / "a.py").write_text("from . import b\nfrom echocaptions.sub import helper\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..top import g\n")
    (pkg / "top.py").write_text("import echocaptions.sub.a\n")
    (pkg / "sub" / "helper.py").write_text("import echocaptions.sub\n")
    graph = import_graph(pkg)
    assert graph["echocaptions.sub.a"] == {"echocaptions.sub.b": 1, "echocaptions.sub.helper": 2}
    assert graph["echocaptions.sub.helper"] == {}, "an import of its own package is no edge"
    assert cycles(graph) == [["echocaptions.sub.a", "echocaptions.sub.b", "echocaptions.top"]]
    assert cycles(package_graph(graph)) == [["echocaptions.sub", "echocaptions.top"]]


def test_no_module_imports_itself_back() -> None:
    graph = import_graph()
    assert "echocaptions.pipeline" in graph and graph["echocaptions.pipeline"], "the graph was not read"
    found = cycles(graph)
    assert not found, "import cycles between modules: " + " | ".join(_describe(c, graph) for c in found)


def test_no_package_imports_itself_back() -> None:
    graph = package_graph(import_graph())
    found = cycles(graph)
    assert not found, "import cycles between packages: " + " | ".join(_describe(c, graph) for c in found)


@pytest.mark.parametrize(
    "module", ["echocaptions.pipeline", "echocaptions.imaging.stage", "echocaptions.captions.stage", "echocaptions.cli"]
)
def test_each_entry_module_imports_on_its_own(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- the layers of ARCHITECTURE.md

REPO = ROOT.parent


def _contracts() -> list[dict]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: import-linter brings tomli
        import tomli as tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]


def _lint_imports(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.is_file(), f"{exe} missing: install the dev extra (pip install -e '.[dev]')"
    return subprocess.run([str(exe), "--no-cache", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_the_import_contracts_hold() -> None:
    done = _lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Contracts: {len(_contracts())} kept, 0 broken" in done.stdout


def test_architecture_md_lists_the_contracted_layers() -> None:
    """The map and the guard say the same: the layer block of ARCHITECTURE.md is the package contract's."""
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = text.split("## Which package may import which", 1)[1].split("```", 2)[1]
    documented = [line.strip() for line in block.strip().splitlines()]
    layers = next(c for c in _contracts() if not c.get("containers"))["layers"]
    contracted = [" | ".join(part.strip().removeprefix("echocaptions.") for part in layer.split("|"))
                  for layer in layers if layer != "echocaptions.__main__"]
    assert documented == contracted
    inner = next(c for c in _contracts() if c.get("containers") == ["echocaptions.captions"])["layers"]
    assert "Inside `captions`: `" + "` → `".join(inner) + "`." in " ".join(text.split())


def test_a_broken_layer_is_reported(tmp_path: Path) -> None:
    """The check reads the real graph: put the pipeline below the sources it imports, and it fails."""
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["echocaptions"]\n\n'
        '[[tool.importlinter.contracts]]\nname = "upside down"\ntype = "layers"\n'
        'layers = ["echocaptions.sources", "echocaptions.pipeline"]\n',
        encoding="utf-8",
    )
    done = _lint_imports("--config", str(config))
    assert done.returncode != 0
    assert "upside down BROKEN" in done.stdout
    assert "echocaptions.pipeline" in done.stdout and "echocaptions.sources" in done.stdout
