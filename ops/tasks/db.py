"""Backup tasks: db.backup, db.verify, db.list."""

from __future__ import annotations

import json

from invoke import Collection, task

from .common import ENV_HELP, settings, user_errors


def _ctx(c, env):
    from ..backup import service
    from ..stack import Stack

    s = settings(c, env)
    return Stack(s), service.backup_config(s, c.config.get("backup", {})), service


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def human_age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@task(iterable=["service"],
      help={"service": "a database service to back up (repeatable; default: every Postgres "
                       "service not labelled ops.backup=false)",
            "db": "one database (default: every database of the service)",
            "env": ENV_HELP})
@user_errors
def backup(c, service=None, db=None, env="local"):
    """Take verified pg_dump backups (atomic files, sha256, manifest, per-database lock)."""
    stack, cfg, svc = _ctx(c, env)
    for r in svc.backup(stack, cfg, service or [], db):
        print(f"{r['target']}: {r['file']} (verified: {r['verified'] or 'no'})")


@task(help={"file": "a backup file (.dump) under the backup directory",
            "latest": "the newest backup of each database (narrow with --service/--db)",
            "service": "with --latest: only this service", "db": "with --latest: only this database",
            "level": "checksum | read | restore (restore drill in a throwaway container)",
            "env": ENV_HELP})
@user_errors
def verify(c, file=None, latest=False, service=None, db=None, level="read", env="local"):
    """Prove backups: checksum, read every block, or a full restore drill."""
    stack, cfg, svc = _ctx(c, env)
    chosen = svc.pick(cfg, env, file, latest, service, db)
    for entry in svc.verify(stack, cfg, chosen, level):
        print(f"ok  {entry['level']:8} {entry['file']}  ({entry['detail']}; {entry['duration_s']}s)")


@task(name="list", help={"json": "print JSON", "service": "only this service", "env": ENV_HELP})
@user_errors
def list_(c, json_=False, service=None, env="local"):
    """List backups with size, age and verification state."""
    _, cfg, svc = _ctx(c, env)
    rows = [svc.describe(b) for b in svc.all_backups(cfg, env, service)]
    if json_:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print(f"no backups under {cfg.dest / env}")
        return
    table = [("SERVICE", "DB", "TAKEN (UTC)", "AGE", "SIZE", "VERIFIED", "FILE")]
    for r in rows:
        state = "ERROR" if "error" in r else ("FAILED" if r["failed"] and not r["verified"]
                                               else (r["verified"] or "no"))
        table.append((r["service"], r["database"], r.get("taken_at") or "?",
                      human_age(r["age_s"]) if "age_s" in r else "?", human_size(r.get("size")),
                      state, r["file"]))
    widths = [max(len(t[i]) for t in table) for i in range(6)]
    for t in table:
        print("  ".join(t[i].ljust(widths[i]) for i in range(6)) + "  " + t[6])


ns = Collection("db", backup, verify, list_)
