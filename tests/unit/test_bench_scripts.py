"""The benchmark scripts outside the test suite still fit the code they drive.

They run for minutes on their own stacks and sandboxes, so the suite does not run them
(`BENCH_QUICK=1 scripts/bench-X` does, in a minute or a few each). What breaks them
between runs is the code moving under them: a module renamed, a helper removed. Every
name they import, at the top or inside a function, must still exist; every script
docs/benchmarks.md names must exist and run the Python file it wraps."""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
BENCH = sorted(SCRIPTS.glob("bench_*.py")) + [SCRIPTS / "audit_compare.py", SCRIPTS / "benchlib.py"]


def imported_names(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for each `from M import N` and (module, None) for each `import M`,
    wherever they sit in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, a.name) for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names]
    return found


@pytest.fixture(scope="module", autouse=True)
def importable():
    sys.path[:0] = [str(SCRIPTS), str(ROOT)]
    yield
    for p in (str(SCRIPTS), str(ROOT)):
        sys.path.remove(p)


@pytest.mark.parametrize("script", BENCH, ids=lambda p: p.name)
def test_every_name_a_benchmark_imports_exists(script):
    missing = []
    for module, name in imported_names(script):
        if module.split(".")[0] not in ("ops", "tests", "benchlib", "docker", "requests",
                                        "yaml", "invoke"):
            continue  # the standard library
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            missing.append(f"{module}: {exc}")
            continue
        if name is not None and not hasattr(mod, name):
            try:  # a submodule: `from ops.commands import image_refs`
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{script.name} imports what no longer exists: {missing}"


def test_every_benchmark_the_docs_name_exists_and_wraps_its_python_file():
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    named = sorted(set(re.findall(r"`scripts/((?:bench|audit)-[a-z-]+)", text)))
    assert len(named) >= 7, named
    for name in named:
        wrapper = SCRIPTS / name
        assert wrapper.is_file(), f"docs/benchmarks.md names scripts/{name}: missing"
        target = name.replace("-", "_") + ".py"
        assert target in wrapper.read_text(), f"scripts/{name} does not run {target}"
        assert (SCRIPTS / target).is_file(), target


def test_the_quick_mode_shrinks_every_knob_and_an_explicit_value_wins(monkeypatch):
    import benchlib

    monkeypatch.setattr(benchlib, "QUICK", True)
    monkeypatch.delenv("BENCH_RUNS", raising=False)
    assert benchlib.knob("RUNS", 5, 1) == 1
    monkeypatch.setenv("BENCH_RUNS", "3")
    assert benchlib.knob("RUNS", 5, 1) == 3
    monkeypatch.setenv("BENCH_SECONDS", "2.5")
    assert benchlib.knob("SECONDS", 10.0, 2.0) == 2.5
    monkeypatch.setattr(benchlib, "QUICK", False)
    monkeypatch.delenv("BENCH_RUNS")
    assert benchlib.knob("RUNS", 5, 1) == 5
    monkeypatch.setenv("BENCH_RUNS", "lots")
    with pytest.raises(SystemExit, match="BENCH_RUNS='lots' is not a number"):
        benchlib.knob("RUNS", 5, 1)
