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


# The layer order of docs/architecture.md, lowest first. A module may import its own
# layer and those below it, never one above (imports inside functions count).
LAYERS = [
    ("base", {"errors", "files", "owner", "config", "environment", "envfile", "tls", "text",
              "progress"}),
    ("pure", {"commands", "facts", "scaling", "plan"}),
    ("runtime", {"shell", "docker_api", "engine_socket", "containers", "runtime",
                 "remote"}),
    ("features", {"backup", "deploy", "rotation", "monitoring", "audit", "health",
                  "early_probe", "logsearch", "routing", "release", "gateway_tls",
                  "wheelhouse", "base_images", "sandbox", "dr", "migrations",
                  "maintenance", "hooks"}),
    ("platforms", {"platforms"}),
    ("tasks", {"tasks"}),
]


def layer_of(module: str) -> int | None:
    """The layer index of an ops module (`ops.backup.take` -> features), None for `ops`."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    found = [i for i, (_, tops) in enumerate(LAYERS) if parts[1] in tops]
    assert found, f"{module} is in no layer of LAYERS: add it (and to docs/architecture.md)"
    return found[0]


def test_no_module_imports_a_higher_layer():
    files = sorted(OPS.rglob("*.py"))
    modules = {module_name(p) for p in files}
    wrong = []
    for p in files:
        me = module_name(p)
        mine = layer_of(me)
        for dep in sorted(imports(p, modules)):
            theirs = layer_of(dep)
            if mine is not None and theirs is not None and theirs > mine:
                wrong.append(f"{me} ({LAYERS[mine][0]}) imports {dep} ({LAYERS[theirs][0]})")
    assert not wrong, "\n".join(wrong)


def test_a_platform_never_imports_another_kind():
    """A kind of environment is its own package: adding or removing one touches no other."""
    files = sorted((OPS / "platforms").rglob("*.py"))
    modules = {module_name(p) for p in OPS.rglob("*.py")}
    wrong = []
    for p in files:
        me = module_name(p).split(".")
        if len(me) < 4 or me[2] == "base":
            continue
        for dep in imports(p, modules):
            parts = dep.split(".")
            if parts[:2] == ["ops", "platforms"] and len(parts) > 2 and parts[2] not in (me[2], "base"):
                wrong.append(f"{'.'.join(me)} imports {dep}")
    assert not wrong, wrong


def test_the_layers_are_the_ones_documented():
    doc = (OPS.parent / "docs" / "architecture.md").read_text()
    for name, tops in LAYERS:
        for top in sorted(tops):
            assert f"`{top}" in doc, f"docs/architecture.md does not place `{top}` ({name})"


def test_every_module_is_in_the_architecture_doc():
    doc = (OPS.parent / "docs" / "architecture.md").read_text()
    missing = [str(p.relative_to(OPS)) for p in sorted(OPS.rglob("*.py"))
               if p.name != "__init__.py" and p.stem not in doc]
    assert not missing, f"docs/architecture.md does not list {missing}"


def test_docker_commands_are_built_in_ops_commands_only():
    """An argument list that starts with "docker" is a builder's job (ops/commands/):
    one place says how each docker command is spelled and quoted."""
    found = []
    for path in sorted(OPS.rglob("*.py")):
        if path.is_relative_to(OPS / "commands"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.List) and len(node.elts) > 1:
                first = node.elts[0]
                if isinstance(first, ast.Constant) and first.value == "docker":
                    found.append(f"{path.relative_to(OPS)}:{node.lineno}")
    assert not found, found


def test_processes_start_only_in_the_runner():
    """Every process on any host starts through ops/runtime/runner.py (run, popen,
    attached, put, fetch): no other module calls subprocess, os.system/popen or opens an
    SSH exec channel of its own (channel.py is the SSH runner's Popen)."""
    starts = {("subprocess", n) for n in ("run", "Popen", "call", "check_call", "check_output")}
    starts |= {("os", "system"), ("os", "popen")}
    found = []
    for path in sorted(OPS.rglob("*.py")):
        if path in (OPS / "runtime" / "runner.py", OPS / "runtime" / "channel.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                name = owner.id if isinstance(owner, ast.Name) else None
                if (name, node.func.attr) in starts or node.func.attr == "exec_command":
                    found.append(f"{path.relative_to(OPS)}:{node.lineno}")
    assert not found, found
