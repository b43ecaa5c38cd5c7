"""The layers of src/trainwire, read from every module's imports with ``ast``.

spec <- broker <- sdk <- tools <- serve <- cli: a package imports only its own layer and the
ones below it; ``integrations`` sits on the SDK; ``_errors`` is a leaf everyone may import.
Only the broker package imports pika, no two modules import each other (directly or round
a loop, counting imports inside functions and under ``TYPE_CHECKING``), and no module
imports another module's ``_private`` name. docs/architecture.md says what each layer owns.

``TRAINWIRE_ARCH_SRC`` points the checks at another tree's ``src`` folder (to show that an
older layout fails them).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(os.environ.get("TRAINWIRE_ARCH_SRC") or Path(__file__).resolve().parents[1] / "src")
ROOT_PACKAGE = "trainwire"

#: Layer of each top-level part of the package, lowest first. A module may import its own
#: layer and any lower one; ``_errors`` (rank 0) is importable everywhere.
RANKS = {
    "_errors": 0,
    "_spec": 1,
    "_broker": 2,
    "_sdk": 3,
    "_tools": 4,
    "_serve": 5,
    "_cli": 6,
}
#: What the framework integrations may import besides themselves: the SDK it reports through
#: and the two layers the SDK's own signatures are made of (no broker, tools, serve or CLI).
INTEGRATIONS_MAY_IMPORT = frozenset({"_sdk", "_spec", "_errors"})
#: The package's face (``trainwire/__init__.py``, ``__main__.py``) may import any layer;
#: importing ``trainwire`` itself (the public API) counts as importing the SDK.
FACADE = frozenset({ROOT_PACKAGE, f"{ROOT_PACKAGE}.__main__"})


@dataclass(frozen=True)
class Import:
    """One imported module (and the names taken from it) at a line of a module."""

    importer: str
    target: str
    names: tuple[str, ...]
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found = {_module_name(p): p for p in (SRC / ROOT_PACKAGE).rglob("*.py")}
    assert found, f"no modules under {SRC / ROOT_PACKAGE}"
    return found


def _absolute(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = modules()[importer].name == "__init__.py"
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports_of(name: str) -> list[Import]:
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(name, a.name, (), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(name, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules():  # ``from . import _x``: the submodule is imported
                    found.append(Import(name, sub, (), node.lineno))
                else:
                    found.append(Import(name, target, (alias.name,), node.lineno))
    return found


@cache
def all_imports() -> tuple[Import, ...]:
    return tuple(i for name in sorted(modules()) for i in _imports_of(name))


def ours() -> list[Import]:
    return [i for i in all_imports() if i.target.split(".")[0] == ROOT_PACKAGE]


def part(module: str) -> str:
    """``trainwire._sdk._run`` -> ``_sdk``; the package itself -> ``trainwire``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ROOT_PACKAGE


def rank(module: str) -> int:
    """The layer of an imported module (the public API is the SDK's; unknown: the top)."""
    if module == ROOT_PACKAGE:
        return RANKS["_sdk"]
    return RANKS.get(part(module), len(RANKS))


def where(i: Import) -> str:
    return f"{i.importer} (line {i.line}) imports {i.target}"


def listed(lines: list[str]) -> str:
    """One line per finding, each once."""
    return "\n".join(sorted(set(lines)))


def test_every_module_belongs_to_a_layer():
    known = set(RANKS) | {"integrations"}
    homeless = [m for m in modules() if m not in FACADE and part(m) not in known]
    assert not homeless, f"modules outside every layer {sorted(known)}: {sorted(homeless)}"


def test_packages_import_only_their_own_layer_and_lower_ones():
    wrong = [
        where(i)
        for i in ours()
        if i.importer not in FACADE
        and part(i.importer) in RANKS
        and rank(i.target) > RANKS[part(i.importer)]
    ]
    assert not wrong, "imports of a higher layer:\n" + listed(wrong)


def test_integrations_import_only_the_sdk_and_below():
    wrong = [
        where(i)
        for i in ours()
        if part(i.importer) == "integrations"
        and part(i.target) not in INTEGRATIONS_MAY_IMPORT | {"integrations"}
    ]
    assert not wrong, "integrations reaching past the SDK:\n" + listed(wrong)


def test_no_other_package_imports_the_integrations():
    wrong = [
        where(i)
        for i in ours()
        if part(i.target) == "integrations" and part(i.importer) != "integrations"
    ]
    assert not wrong, listed(wrong)


def test_only_the_broker_package_imports_pika():
    wrong = [
        where(i)
        for i in all_imports()
        if i.target.split(".")[0] == "pika" and part(i.importer) != "_broker"
    ]
    assert not wrong, "pika outside trainwire._broker:\n" + listed(wrong)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for i in ours():
        target = i.target
        while target not in modules() and "." in target:  # ``from x.y import name``
            target = target.rsplit(".", 1)[0]
        if target in modules() and target != i.importer:
            graph[i.importer].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_between_modules():
    cycles = _cycles(_graph())
    assert not cycles, "modules importing each other: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_loop_of_three():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_another_modules_private_name():
    wrong = [
        f"{where(i)} name {name}"
        for i in ours()
        for name in i.names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not wrong, "private names imported across modules:\n" + listed(wrong)
