"""The migration step, the same on every kind of environment: ask what is pending, lint
it, make a restore point, run it. The platform gives the two ways to run the app's
migrate command in the new image (`pending`, `apply`) and the restore point."""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import OpsError
from . import gate, lint


@dataclass
class Runner:
    """How one environment runs its app's migrate command in the image to deploy.
    `pending()` returns the command's `--pending` stdout; `apply(say)` runs it, printing
    its lines through `say`, and returns (exit code, last line of its error output)."""

    pending: Callable[[], str]
    apply: Callable[[Callable[[str], None]], tuple[int, str]]
    # Asked only when something is pending: a maker of restore points named by its
    # argument, or None when the environment does not archive every database (yet).
    restore_point: Callable[[], Callable[[str], list[dict]] | None] = lambda: None


def command(setting) -> list[str]:
    """deploy.migrate: a command line (string or list); empty or false: no migrations."""
    if not setting:
        return []
    argv = shlex.split(setting) if isinstance(setting, str) else list(setting)
    if not all(isinstance(a, str) and a for a in argv):
        raise OpsError(f"deploy.migrate: a command line, not {setting!r}")
    return argv


def point_name(now: datetime | None = None) -> str:
    return f"pre-migrate-{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}"


def run(runner: Runner, say: Callable[[str], None], allow_breaking: bool = False,
        gate_breaking: bool = True,
        before_breaking: Callable[[list[lint.Finding]], None] | None = None) -> dict:
    """Pending migrations linted, a restore point, then applied. Refuses (nothing run)
    on a breaking finding unless `allow_breaking` (or not `gate_breaking`: `inv up`, where
    no older version keeps serving); allowed, `before_breaking(findings)` runs first. A
    failure names the migration, the database's error and the restore point."""
    try:
        pending = lint.parse_pending(runner.pending())
    except ValueError as exc:
        raise OpsError(f"migrations: the migrate command's --pending answer: {exc}") from None
    out: dict = {"pending": [m["file"] for m in pending], "applied": [], "restore_point": None}
    if not pending:
        say("migrations: none pending")
        return out
    found = gate.check(pending)
    for f in found:
        if not f.breaking or allow_breaking or not gate_breaking:
            say(f"{'warning' if f.breaking else 'advice'}: {f.describe()}")
    out["findings"] = [{"file": f.file, "line": f.line, "rule": f.rule, "breaking": f.breaking}
                       for f in found]
    refused = lint.refusal(found)
    if refused and gate_breaking and not allow_breaking:
        raise OpsError(refused)
    maker = runner.restore_point()
    if maker is None:
        say("migrations: no restore point (the databases are not archived yet)")
    else:
        name = point_name()
        try:
            maker(name)
            out["restore_point"] = name
            say(f"restore point {name} made on every database (inv db.restore --to-name {name})")
        except OpsError as exc:
            raise OpsError(f"migrations not run: no restore point could be made: {exc}") from None
    breaking = [f for f in found if f.breaking]
    if breaking and before_breaking is not None:
        before_breaking(breaking)  # allowed: e.g. maintenance mode for the switch
    say(f"migrations: applying {len(pending)}: {', '.join(out['pending'])}")
    code, detail = runner.apply(say)
    if code != 0:
        back = (f"; the way back: inv db.restore --to-name {out['restore_point']}"
                if out["restore_point"] else "")
        raise OpsError(f"{detail or f'the migrate command failed (exit {code})'}{back}")
    out["applied"] = out["pending"]
    return out


def error_line(stderr: str) -> str:
    """The migrate command's own last word (`migration ...`), else the last line: around
    it, Compose or the CLI may say how containers started."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    own = [ln for ln in lines if ln.startswith(("migration ", "migrations:"))]
    return (own or lines or [""])[-1][:500]


def stream(host, command, say: Callable[[str], None], env=None) -> tuple[int, str]:
    """Run `command` on `host` (a runtime runner: here or over SSH), each stdout line
    said as it comes; (exit code, error_line of its stderr)."""
    import io
    import subprocess

    with tempfile.TemporaryFile(mode="w+") as err:
        proc = host.popen(command, subprocess.DEVNULL, subprocess.PIPE, err, env=env)
        try:
            with io.TextIOWrapper(proc.stdout, errors="replace") as lines:
                for line in lines:
                    if line.strip():
                        say(line.rstrip())
            proc.wait()
        except BaseException:
            host.end(proc)
            raise
        err.seek(0)
        return proc.returncode, error_line(err.read())


def rollback_warning(records: list[dict], live_tag: str | None) -> str | None:
    """What to say before a rollback from `live_tag` when its deploy applied breaking
    migrations (allowed): the color rolled back to may fail on the new schema, and the
    restore point is the way back (pure; `records`: the deploy log, oldest first)."""
    deploy = next((r for r in reversed(records) if r.get("action") == "deploy"
                   and r.get("outcome") == "ok" and r.get("to_tag") == live_tag), None)
    migrations = (deploy or {}).get("migrations") or {}
    breaking = sorted({f["file"] for f in migrations.get("findings") or [] if f.get("breaking")})
    if not breaking or not migrations.get("applied"):
        return None
    point = migrations.get("restore_point")
    back = (f"`inv db.restore --to-name {point}` is the way back (what was written since is lost)"
            if point else "no restore point was made: restore a backup taken before it")
    return (f"warning: the deploy of {live_tag} ran breaking migrations ({', '.join(breaking)}): "
            f"the color rolled back to may not work on this schema; if it does not, {back}")
