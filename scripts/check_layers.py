#!/usr/bin/env python3
"""Fail on any import cycle inside a package, and on any import that goes up the layers.

    python3 scripts/check_layers.py [SRC_DIR] [PACKAGE]     (default: src ivr_engine)

Every ``import`` and ``from ... import`` counts, wherever it is written (inside a
function or under ``if TYPE_CHECKING:`` too): a lazy import that hides a cycle is still
a cycle. A module may import modules of its own layer or of a lower one; LAYERS below,
lowest first, is the same picture as ARCHITECTURE.md. The runtime package must not
import the dev kit (``ivr_devkit``) either.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

# Lowest first. A module belongs to the longest prefix that names it.
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["", "errors", "aio", "log"]),
    ("domain", ["domain", "prompts", "config"]),
    ("store", ["store", "transcript"]),
    ("protocols", ["ari", "ami", "mail"]),
    ("calls", ["calls"]),
    ("flows", ["flows"]),
    ("services", ["services", "dispatcher", "recovery", "lease"]),
    ("web", ["web"]),
    ("engine", ["engine", "telemetry"]),
    ("entry points", ["cli", "__main__", "sounds", "ops", "asterisk_conf"]),
]
FORBIDDEN = ("ivr_devkit",)


def modules(src: Path, package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import of ``name`` that stays in the package or
    reaches a forbidden one."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in known else base), node.lineno


def layer_of(name: str, package: str) -> int | None:
    rest = name.removeprefix(package).removeprefix(".")
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            hit = rest == prefix or (prefix and rest.startswith(prefix + "."))
            if hit and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
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
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def check(src: Path, package: str) -> list[str]:
    known = modules(src, package)
    graph: dict[str, set[str]] = {name: set() for name in known}
    problems = []
    for name, path in known.items():
        mine = layer_of(name, package)
        if mine is None:
            problems.append(f"{path}: module {name} has no layer: add it to LAYERS")
        for target, line in imports(name, path, known):
            if target.split(".")[0] in FORBIDDEN:
                problems.append(f"{path}:{line}: the runtime imports the dev kit ({target})")
                continue
            if target not in known:
                continue
            graph[name].add(target)
            theirs = layer_of(target, package)
            if mine is not None and theirs is not None and theirs > mine:
                problems.append(
                    f"{path}:{line}: {name} ({LAYERS[mine][0]}) imports {target}"
                    f" ({LAYERS[theirs][0]}), a higher layer"
                )
    for component in cycles(graph):
        problems.append("import cycle: " + " -> ".join(component))
    return problems


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else Path("src")
    package = argv[2] if len(argv) > 2 else "ivr_engine"
    problems = check(src, package)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{package}: {len(modules(src, package))} modules, no import cycle, layers respected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
