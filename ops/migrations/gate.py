"""Pending migrations checked before they run: written to a scratch directory and linted
with squawk (each file as yoyo will run it: in a transaction or not), judged by lint.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..commands import squawk
from ..errors import OpsError
from ..shell import run
from . import lint

SQUAWK_FOUND = 1  # squawk's exit when it reports findings (the report is still JSON)


def check(pending: list[dict]) -> list[lint.Finding]:
    """Every finding of squawk in the pending migrations, breaking ones first per file."""
    if not pending:
        return []
    found: list[lint.Finding] = []
    with tempfile.TemporaryDirectory(prefix="ops-migrations-") as tmp:
        by_mode: dict[bool, dict[str, dict]] = {True: {}, False: {}}
        for m in pending:
            path = Path(tmp, m["file"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(m["sql"], encoding="utf-8")
            by_mode[lint.transactional(m["sql"])][str(path)] = m
        for in_tx, files in by_mode.items():
            if not files:
                continue
            r = run(squawk.lint(sorted(files), in_tx), check=False, what="squawk", timeout=60)
            if r.returncode not in (0, SQUAWK_FOUND):
                raise OpsError(f"squawk failed (exit {r.returncode}): "
                               f"{(r.stderr or r.stdout).strip()[-300:] or 'no output'}")
            sources = {p: m["sql"] for p, m in files.items()}
            for m in files.values():
                found += lint.concurrently_in_transaction(m["file"], m["sql"])
            for f in lint.findings(r.stdout, sources):
                found.append(lint.Finding(files[f.file]["file"] if f.file in files else f.file,
                                          f.line, f.rule, f.message, f.statement))
    return sorted(found, key=lambda f: (f.file, f.line, not f.breaking))
