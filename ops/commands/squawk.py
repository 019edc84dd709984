"""The squawk command (PostgreSQL migration linter; squawk-cli on PyPI, its binary in this
virtualenv's bin). Pure."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .line import Line, cmd

PG_VERSION = "15"  # the stack's PostgreSQL: rules that depend on it are judged for it
# Said of every statement, and answered by the runner rather than by each file: the
# example app's migrate command sets lock_timeout for its whole session (a migration
# queued behind a lock gives up instead of stalling the live color's queries behind it),
# and a backfill may rightly run for minutes.
EXCLUDED = ("require-lock-timeout", "require-statement-timeout")


def program() -> str:
    beside = Path(sys.executable).parent / "squawk"
    return str(beside) if beside.exists() else (shutil.which("squawk") or "squawk")


def lint(paths: Sequence[str], in_transaction: bool) -> Line:
    """A JSON report of `paths`; `in_transaction`: each file runs in one transaction
    (yoyo's default), so a CONCURRENTLY inside it is found too."""
    return cmd(program(), "--reporter", "json", "--pg-version", PG_VERSION,
               f"--exclude={','.join(EXCLUDED)}",
               *(["--assume-in-transaction"] if in_transaction else []), *paths)
