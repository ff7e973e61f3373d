"""The floor order of docs/architecture.md holds for every import in vgbench/: none points up a floor, none closes a
circle, every module has a floor. Imports inside functions count; ``if TYPE_CHECKING:`` blocks (never run) do not."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def floors_from_doc(text: str) -> dict[str, int]:
    """``| 2 | data | `vgbench.datasets`, ... |`` rows -> {module prefix: floor}."""
    out = {}
    for m in re.finditer(r"^\| (\d+) \| [a-z ]+ \| (.+) \|$", text, re.M):
        for name in re.findall(r"`([\w.]+)`", m.group(2)):
            if name in out:
                raise AssertionError(f"docs/architecture.md places {name} twice")
            out[name] = int(m.group(1))
    return out


def module_files(package: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(package.rglob("*.py")):
        parts = p.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The vgbench modules ``name`` imports at run time (``from pkg import mod`` resolves to ``pkg.mod``)."""
    tree = ast.parse(path.read_text(), str(path))
    type_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            type_only |= {id(x) for stmt in node.body for x in ast.walk(stmt)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def floor_of(module: str, floors: dict[str, int]) -> int | None:
    """The floor of the longest table name that is ``module`` or a package above it (``vgbench`` only itself)."""
    best = None
    for prefix, level in floors.items():
        covers = module == prefix or (prefix != "vgbench" and module.startswith(prefix + "."))
        if covers and (best is None or len(prefix) > len(best[0])):
            best = (prefix, level)
    return None if best is None else best[1]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def layout():
    modules = module_files(ROOT / "vgbench")
    graph = {m: imports_of(m, p, modules) for m, p in modules.items()}
    return modules, graph, floors_from_doc(DOC.read_text())


def test_every_module_has_a_floor(layout):
    modules, _, floors = layout
    assert len(floors) >= 7
    assert [m for m in modules if floor_of(m, floors) is None] == []


def test_no_import_points_up_a_floor(layout):
    _, graph, floors = layout
    up = [
        f"{m} (floor {floor_of(m, floors)}) imports {t} (floor {floor_of(t, floors)})"
        for m, ts in sorted(graph.items())
        for t in sorted(ts)
        if floor_of(t, floors) > floor_of(m, floors)
    ]
    assert up == []


def test_no_import_circle(layout):
    assert circles(layout[1]) == []


def test_the_checks_see_what_they_check(tmp_path):
    """The walker finds function-level and relative imports and skips TYPE_CHECKING; an upward import and a
    circle written into a small package are found."""
    pkg = tmp_path / "vgbench"
    (pkg / "metrics").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from vgbench.metrics import engine\n")
    (pkg / "metrics" / "__init__.py").write_text("")
    (pkg / "metrics" / "engine.py").write_text(
        "from typing import TYPE_CHECKING\nfrom .. import low\nif TYPE_CHECKING:\n    from vgbench import cli\n"
    )
    (pkg / "cli.py").write_text("")
    modules = module_files(pkg)
    graph = {m: imports_of(m, p, modules) for m, p in modules.items()}
    assert graph["vgbench.low"] == {"vgbench.metrics.engine"}
    assert graph["vgbench.metrics.engine"] == {"vgbench.low"}
    floors = floors_from_doc("| 0 | foundation | `vgbench`, `vgbench.low` |\n| 4 | metrics | `vgbench.metrics` |\n")
    assert floor_of("vgbench.low", floors) == 0 and floor_of("vgbench.metrics.engine", floors) == 4
    assert floor_of("vgbench.cli", floors) is None
    assert circles(graph) == [["vgbench.low", "vgbench.metrics.engine"]]
