"""The crontab line for backups, and installing it idempotently (one line per env)."""

from __future__ import annotations

import re
from pathlib import Path

from ..commands.line import cmd
from ..errors import OpsError
from ..shell import run

FIELD = re.compile(r"^[0-9*/,\-]+$")


def check_schedule(at: str) -> str:
    fields = at.split()
    if at.startswith("@") and at in ("@hourly", "@daily", "@weekly", "@monthly"):
        return at
    if len(fields) != 5 or not all(FIELD.match(f) for f in fields):
        raise OpsError(f"invalid cron schedule {at!r}: five fields of digits, * / , - (or @daily)")
    return " ".join(fields)


def marker(env: str) -> str:
    return f"# ops-toolkit backup env={env}"


def cron_line(at: str, root: Path, env: str) -> str:
    command = cmd(str(root / "scripts" / "backup-cron"), "--env", env)
    return f"{check_schedule(at)} {command} {marker(env)}"


def merged(current: str, line: str, env: str) -> str:
    """Crontab text with this env's line replaced (or added); other lines untouched."""
    kept = [ln for ln in current.splitlines() if not ln.rstrip().endswith(marker(env))]
    return "\n".join([*kept, line]) + "\n"


def install(line: str, env: str) -> None:
    listed = run(["crontab", "-l"], check=False)
    current = listed.stdout if listed.ok else ""  # "no crontab for user" is fine
    run(["crontab", "-"], input=merged(current, line, env), what="crontab install")
