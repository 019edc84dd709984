"""Backup tasks: db.backup, db.verify, db.restore, db.list, db.prune, db.schedule, on
the local Compose stack or a deployed Swarm stack (its databases where they run, the
backups on this machine)."""

from __future__ import annotations

import json
from contextlib import contextmanager

from invoke import Collection, task

from ..environment import COMPOSE, SWARM
from ..errors import OpsError
from .common import ENV_HELP, confirm, target, user_errors


def _settings(c, env, task):
    s, where = target(c, env, f"db.{task}", {COMPOSE, SWARM}, family="db")
    return s, where


def _config(c, env, task):
    from ..backup import service

    s, _ = _settings(c, env, task)
    return service.backup_config(s, c.config.get("backup", {})), service


@contextmanager
def _ctx(c, env, task):
    """(site, backup config, service module): the site is where the databases are, the
    Compose project or the deployed stack (its connections closed at the end)."""
    from ..backup import service, sites

    s, where = _settings(c, env, task)
    cfg = service.backup_config(s, c.config.get("backup", {}))
    if where.kind == SWARM:
        from ..deploy.session import Session

        site = sites.SwarmSite(Session(s, where, c.config))
    else:
        from ..stack import Stack

        site = sites.ComposeSite(Stack(s))
    try:
        yield site, cfg, service
    finally:
        site.close()


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
            "cron": "for cron: silent on success; one line on stderr and non-zero exit on "
                    "failure; failure webhook; restore drills when due",
            "env": ENV_HELP})
@user_errors
def backup(c, service=None, db=None, cron=False, env="local"):
    """Take verified pg_dump backups (atomic files, sha256, manifest, per-database lock)."""
    import io
    import sys

    chatter = io.StringIO() if cron else sys.stderr
    try:
        with _ctx(c, env, "backup") as (site, cfg, svc):
            results = svc.backup(site, cfg, service or [], db, out=chatter, drills=cron,
                                 reason="scheduled" if cron else "manual")
    except OpsError as exc:
        if cron:
            from ..backup import service as svc_mod

            cfg, _ = _config(c, env, "backup")
            svc_mod.notify_failure(cfg.webhook_url, env, str(exc))
        raise
    if cron:
        return
    for r in results:
        print(f"{r['target']}: {r['file']} (verified: {r['verified'] or 'no'})")
        for p in r.get("pruned", []):
            print(f"  pruned {p}")


@task(help={"file": "a backup file (.dump or .dump.zst) under the backup directory",
            "latest": "the newest backup of each database (narrow with --service/--db)",
            "service": "with --latest: only this service", "db": "with --latest: only this database",
            "level": "checksum | read | restore (restore drill in a throwaway container)",
            "env": ENV_HELP})
@user_errors
def verify(c, file=None, latest=False, service=None, db=None, level="read", env="local"):
    """Prove backups: checksum, read every block, or a full restore drill."""
    cfg, svc = _config(c, env, "verify")
    chosen = svc.pick(cfg, env, file, latest, service, db)
    with _ctx(c, env, "verify") as (site, cfg, svc):
        entries = svc.verify(site, cfg, chosen, level)
    for entry in entries:
        print(f"ok  {entry['level']:8} {entry['file']}  ({entry['detail']}; {entry['duration_s']}s)")


@task(name="list", help={"json": "print JSON", "service": "only this service", "env": ENV_HELP})
@user_errors
def list_(c, json_=False, service=None, env="local"):
    """List backups with size, age and verification state."""
    cfg, svc = _config(c, env, "list")
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


@task(help={"dry_run": "only show what would be deleted", "service": "only this service",
            "env": ENV_HELP})
@user_errors
def prune(c, dry_run=False, service=None, env="local"):
    """Apply retention (backup.keep in invoke.yaml); never deletes the newest verified backup."""
    cfg, svc = _config(c, env, "prune")
    if dry_run:
        removed = svc.prune(cfg, env, service, dry_run)
    else:
        with _ctx(c, env, "prune") as (site, cfg, svc):
            removed = svc.prune(cfg, env, service, dry_run, site)
    verb = "would delete" if dry_run else "deleted"
    for b, why in removed:
        print(f"{verb} {b.path} ({why})")
    if not removed:
        print("nothing to prune")


@task(help={"file": "the backup file (.dump or .dump.zst) to restore",
            "latest": "the newest backup of the service's database",
            "service": "the database service to restore into (required)",
            "db": "the database to replace (default: the backup's own database)",
            "yes": "do not ask (outside --env local the database name must still be typed, "
                   "or given with --confirm)",
            "confirm": "the database name, typed ahead for non-interactive restores",
            "env": ENV_HELP})
@user_errors
def restore(c, service=None, file=None, latest=False, db=None, yes=False, confirm_=None,
            env="local"):
    """Restore a verified backup: safety backup first, restore beside, then swap."""
    import sys

    from ..backup.restore import comparison_table, confirmation

    if not service:
        raise OpsError("--service is required: the database service to restore into")
    with _ctx(c, env, "restore") as (site, cfg, svc):
        plan = svc.prepare_restore(site, cfg, service, file, latest, db)
        question = (f"Replace database {plan.target.db!r} of {service} ({env}) with "
                    f"{plan.backup.path.name} ({plan.data.get('started_at')})?")
        how = confirmation(env, plan.target.db, yes, confirm_, sys.stdin.isatty())
        if how == "ask":
            confirm(question, yes=False)
        elif how == "type":
            typed = input(f"{question}\nType the database name to confirm: ").strip()
            if typed != plan.target.db:
                raise OpsError("cancelled: the name did not match; nothing was changed")
        safety, result = svc.run_restore(site, cfg, plan)
    print(f"safety backup of the current {plan.target.db}: {safety.path}", file=sys.stderr)
    print(comparison_table(result))
    print(f"restored {plan.backup.path.name} into {service}/{plan.target.db}")


@task(help={"at": "cron schedule (default: 17 3 * * *)",
            "install": "add the line to this user's crontab (idempotent)", "env": ENV_HELP})
@user_errors
def schedule(c, at="17 3 * * *", install=False, env="local"):
    """Print (or install) the crontab line that runs scripts/backup-cron."""
    from ..backup import schedule as schedule_mod

    s, _ = _settings(c, env, "schedule")
    line = schedule_mod.cron_line(at, s.root, env)
    if install:
        schedule_mod.install(line, env)
        print(f"installed: {line}")
    else:
        print(line)


ns = Collection("db", backup, verify, list_, prune, restore, schedule)
