"""The ops package's modules import each other without cycles, counting the imports
inside functions too (a lazy import hides a cycle from Python, not from a reader)."""

from __future__ import annotations

import ast
from pathlib import Path

OPS = Path(__file__).resolve().parents[2] / "ops"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(OPS.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The ops modules `path` imports (`from . import x` counts x when x is a module)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    return {m for m in found if m in modules and m != me}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle found by a depth-first walk, as the path that closes it."""
    out, state, stack = [], {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                out.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return out


def test_no_import_cycles_in_ops():
    files = sorted(OPS.rglob("*.py"))
    modules = {module_name(p) for p in files}
    # A package's __init__ is not a step of a cycle through its own modules.
    graph = {module_name(p): {m for m in imports(p, modules) if "." in m or m == "ops"}
             for p in files}
    graph = {m: {n for n in deps if not m.startswith(n + ".") and n != "ops"} for m, deps in graph.items()}
    found = cycles(graph)
    assert not found, "\n".join(" -> ".join(c) for c in found)


def test_the_walk_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_import_names_a_module_that_exists():
    """Imports inside functions run only when the function does: a moved module's stale
    relative import (`from .sandbox import ...` left in tests/support) fails here, not
    in the one integration test that calls it."""
    root = OPS.parent
    missing = []
    for path in [*sorted(OPS.rglob("*.py")), *sorted((root / "tests").rglob("*.py"))]:
        package = path.parent
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.parent
            elif (node.module or "").split(".")[0] in ("ops", "tests"):
                base = root
            else:
                continue
            target = base.joinpath(*(node.module or "").split(".")) if node.module else base
            names = [target / f"{a.name}.py" for a in node.names] + [target / a.name for a in node.names]
            if not (target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()
                    or any(n.exists() for n in names)):
                missing.append(f"{path.relative_to(root)}:{node.lineno} {'.' * node.level}{node.module}")
    assert not missing, missing
