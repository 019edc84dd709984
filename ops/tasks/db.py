"""Backup tasks: db.backup, db.verify, db.restore, db.list, db.prune, db.schedule, on
the local Compose stack or a deployed Swarm stack (its databases where they run, the
backups on this machine)."""

from __future__ import annotations

import json
from contextlib import contextmanager

from invoke import Collection, task

from ..errors import USAGE, OpsError
from ..text import table as table_rows
from .common import ENV_HELP, confirm, platform, user_errors


def _raw(c, env) -> dict:
    """invoke.yaml `backup:` overlaid by the environment's own (envs.<env>.backup)."""
    envs = c.config.get("envs") or {}
    own = (envs.get(env) or {}).get("backup") or {}
    return {**dict(c.config.get("backup") or {}), **dict(own)}


def _config(c, env):
    """(backup config, service module) of --env, without opening anything."""
    from ..backup import service

    with platform(c, env) as p:
        return service.backup_config(p.settings, _raw(c, env)), service


@contextmanager
def _ctx(c, env):
    """(site, backup config, service module): the site is where the platform of --env
    keeps its databases (ops.platforms.base.BackupSite), closed at the end."""
    from ..backup import service

    with platform(c, env) as p:
        cfg = service.backup_config(p.settings, _raw(c, env))
        site = p.backup_site()
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
            "base": "the pgBackRest base backup's type: full, diff or incr (default: the one "
                    "backup.pitr says is due)",
            "json": "print the results as JSON", "env": ENV_HELP})
@user_errors
def backup(c, service=None, db=None, cron=False, env="local", json_=False, base=None):
    """Take verified pg_dump backups, then each database's pgBackRest base backup."""
    import io
    import sys

    from .. import progress
    from ..commands.pgbackrest import BACKUP_TYPES

    if base is not None and base not in BACKUP_TYPES:
        raise OpsError(f"--base must be {', '.join(BACKUP_TYPES)}, not {base!r}", code=USAGE)
    if cron or json_:
        progress.quiet()
    chatter = io.StringIO() if cron else sys.stderr
    try:
        with _ctx(c, env) as (site, cfg, svc):
            results = svc.backup(site, cfg, service or [], db, out=chatter, drills=cron,
                                 reason="scheduled" if cron else "manual", base=base)
    except OpsError as exc:
        if cron:
            from ..backup import service as svc_mod

            cfg, _ = _config(c, env)
            svc_mod.notify_failure(cfg.webhook_url, env, str(exc))
        raise
    if cron:
        return
    if json_:
        print(json.dumps(results, indent=2, default=str))
        return
    for r in results:
        if "skipped" in r:
            print(f"{r['target']}: skipped, {r['skipped']}")
            continue
        if "base" in r:
            b = r["base"]
            print(f"{r['target']}: {b['type']} base backup {b['label']} ({human_size(b['size'])}, "
                  f"{human_size(b['repo_size'])} stored, {b['duration_s']}s; "
                  f"verified: {b.get('verified') or 'no'})")
            continue
        if "mirror" in r:
            m = r["mirror"]
            print(f"{r['target']}: {m['files']} files here ({m['fetched']} new, "
                  f"{human_size(m['bytes'])}; {m['deleted']} expired) in {m['path']}")
            for copy in r["offsite"]:
                print(f"  off-site: {copy['path']} (verified: {copy['verified_by']})")
            continue
        print(f"{r['target']}: {r['file']} (verified: {r['verified'] or 'no'})")
        for p in r.get("pruned", []):
            print(f"  pruned {p}")
        for copy in r.get("offsite", []):
            print(f"  off-site: {copy['path']} (verified: {copy['verified_by']})")


OFFSITE_HELP = "one of backup.offsite.remotes (NAME or NAME:path; default: the first)"


@task(help={"file": "a backup file (.dump or .dump.zst) under the backup directory; with "
                    "--offsite, the name of an off-site copy",
            "latest": "the newest backup of each database (narrow with --service/--db)",
            "service": "with --latest: only this service", "db": "with --latest: only this database",
            "level": "checksum | read | restore (restore drill in a throwaway container)",
            "offsite": "download the off-site copy and prove it here (removed afterwards)",
            "remote": OFFSITE_HELP,
            "on": "where a restore drill runs on a Swarm environment: here (default; the "
                  "image fetched from the manager when missing) or manager (backup.drill_on)",
            "json": "print the results as JSON", "env": ENV_HELP})
@user_errors
def verify(c, env="local", file=None, latest=False, service=None, db=None, level="read",
           offsite=False, remote=None, on=None, json_=False):  # env first: Invoke gives it -e
    """Prove backups: checksum, read every block, or a full restore drill."""
    import dataclasses

    from ..backup.manifest import LEVELS

    if json_:
        from .. import progress

        progress.quiet()
    if level not in LEVELS:  # before anything is looked up, downloaded or run
        raise OpsError(f"--level must be {', '.join(LEVELS)}, not {level!r}", code=USAGE)
    cfg, svc = _config(c, env)
    place = svc.drill_place(on, "--on") if on is not None else None
    if offsite:
        chosen = svc.offsite_pick(cfg, env, remote, file, latest, service, db)
    else:
        chosen = svc.pick(cfg, env, file, latest, service, db)
    with _ctx(c, env) as (site, cfg, svc):
        if place:
            cfg = dataclasses.replace(cfg, drill_on=place)
        entries = (svc.offsite_verify(site, cfg, chosen, level) if offsite
                   else svc.verify(site, cfg, chosen, level))
    if json_:
        print(json.dumps(entries, indent=2, default=str))
        return
    for entry in entries:
        print(f"ok  {entry['level']:8} {entry['file']}  ({entry['detail']}; {entry['duration_s']}s)")


@task(name="list", help={"json": "print JSON", "service": "only this service",
                         "offsite": "the off-site copies (every remote, or --remote)",
                         "remote": OFFSITE_HELP, "env": ENV_HELP})
@user_errors
def list_(c, json_=False, service=None, offsite=False, remote=None, env="local"):
    """List backups with size, age and verification state."""
    cfg, svc = _config(c, env)
    if offsite:
        return _list_offsite(svc.offsite_list(cfg, env, remote, service), json_, env)
    rows = [svc.describe(b) for b in svc.all_backups(cfg, env, service)]
    table = [("SERVICE", "DB", "TAKEN (UTC)", "AGE", "SIZE", "VERIFIED", "FILE")]
    for r in rows:
        state = "ERROR" if "error" in r else ("FAILED" if r["failed"] and not r["verified"]
                                               else (r["verified"] or "no"))
        table.append((r["service"], r["database"], r.get("taken_at") or "?",
                      human_age(r["age_s"]) if "age_s" in r else "?", human_size(r.get("size")),
                      state, r["file"]))
    _show(rows, json_, f"no backups under {cfg.dest / env}", table)


def _show(rows: list[dict], json_: bool, empty: str, table: list[tuple]) -> None:
    """JSON, or an aligned table whose last column (the file) is left as it is."""
    if json_:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print(empty)
        return
    print("\n".join(table_rows(table)))


def _list_offsite(found, json_: bool, env: str) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    rows = [{"remote": b.remote, "service": b.service, "database": b.db, "file": b.name,
             "path": b.path, "size": b.size, "taken_at": b.taken_at.isoformat(),
             "age_s": int((now - b.taken_at).total_seconds()), "complete": b.complete}
            for b in found]
    table = [("REMOTE", "SERVICE", "DB", "AGE", "SIZE", "STATE", "FILE")]
    table += [(r["remote"], r["service"], r["database"], human_age(r["age_s"]), human_size(r["size"]),
               "complete" if r["complete"] else "INCOMPLETE", r["file"]) for r in rows]
    _show(rows, json_, f"no off-site backups of --env {env}", table)


@task(help={"dry_run": "only show what would be deleted", "service": "only this service",
            "offsite": "apply backup.offsite.keep to the off-site copies instead",
            "remote": OFFSITE_HELP, "env": ENV_HELP})
@user_errors
def prune(c, dry_run=False, service=None, offsite=False, remote=None, env="local"):
    """Apply retention (backup.keep in invoke.yaml); never deletes the newest verified backup."""
    cfg, svc = _config(c, env)
    if offsite:
        from ..backup import offsite as offsite_mod

        gone = [x for r in offsite_mod.remotes_of(cfg.offsite, remote)
                for x in offsite_mod.prune(cfg.offsite, env, r, dry_run, service)]
        for rb, why in gone:
            print(f"{'would delete' if dry_run else 'deleted'} {rb.path} ({why})")
        if not gone:
            print("nothing to prune")
        return
    if dry_run:
        removed = svc.prune(cfg, env, service, dry_run)
    else:
        with _ctx(c, env) as (site, cfg, svc):
            removed = svc.prune(cfg, env, service, dry_run, site)
    verb = "would delete" if dry_run else "deleted"
    for b, why in removed:
        print(f"{verb} {b.path} ({why})")
    if not removed:
        print("nothing to prune")


@task(help={"file": "the backup file (.dump or .dump.zst) to restore",
            "latest": "the newest backup of the service's database",
            "service": "the database service to restore into (required)",
            "db": "the database to replace (default: the backup's own database; with "
                  "--to-time/--to-name: the service's POSTGRES_DB)",
            "to_time": "point-in-time recovery to this RFC 3339 time (2026-12-07T14:03:00Z), "
                       "or `latest` (the end of the archive), from the pgBackRest repository",
            "to_name": "point-in-time recovery to a restore point (inv db.restore-point)",
            "yes": "do not ask (outside --env local the database name must still be typed, "
                   "or given with --confirm)",
            "confirm": "the database name, typed ahead for non-interactive restores",
            "offsite": "download the off-site copy (--file NAME or --latest), prove it, "
                            "then restore it the same way",
            "remote": OFFSITE_HELP, "env": ENV_HELP})
@user_errors
def restore(c, env="local", service=None, file=None, latest=False, db=None, yes=False,
            confirm_=None, offsite=False, remote=None, to_time=None, to_name=None):
    """Restore a backup or a point in time: safety backup first, restore beside, then swap."""
    import sys

    if not service:
        raise OpsError("--service is required: the database service to restore into", code=USAGE)
    pitr = to_time is not None or to_name is not None
    if to_time is not None and to_name is not None:
        raise OpsError("--to-time or --to-name, not both", code=USAGE)
    if pitr and (file or latest or offsite):
        raise OpsError("--to-time/--to-name restore from the pgBackRest repository: "
                       "not with --file, --latest or --offsite", code=USAGE)
    fetched = None
    with _ctx(c, env) as (site, cfg, svc):
        if pitr:
            return _restore_point_in_time(svc, site, cfg, service, db, to_time, to_name, yes,
                                          confirm_, env)
        if offsite:
            from ..backup import offsite as offsite_mod

            rb = svc.offsite_pick(cfg, env, remote, file, latest, service, db)[0]
            fetched = offsite_mod.fetch(cfg.offsite, rb, cfg.dest)
            print(f"downloaded {rb.path}", file=sys.stderr)
            file, latest = str(fetched.path), False
        try:
            _restore(svc, site, cfg, service, file, latest, db, yes, confirm_, env)
        finally:
            if fetched is not None:
                from ..backup.prune import remove

                remove(fetched)  # the download: the remote copy stays


def _ask(question: str, db: str, env: str, yes: bool, confirm_) -> None:
    import sys

    from ..backup.restore import confirmation

    how = confirmation(env, db, yes, confirm_, sys.stdin.isatty())
    if how == "ask":
        confirm(question, yes=False)
    elif how == "type":
        typed = input(f"{question}\nType the database name to confirm: ").strip()
        if typed != db:
            raise OpsError("cancelled: the name did not match; nothing was changed")


def _restore(svc, site, cfg, service, file, latest, db, yes, confirm_, env) -> None:
    """Check, confirm (the name typed outside local), then the safe restore."""
    plan = svc.prepare_restore(site, cfg, service, file, latest, db)
    _ask(f"Replace database {plan.target.db!r} of {service} ({env}) with "
         f"{plan.backup.path.name} ({plan.data.get('started_at')})?", plan.target.db, env, yes, confirm_)
    _swap_in(svc, site, cfg, service, plan)


def _swap_in(svc, site, cfg, service, plan) -> None:
    import sys

    from ..backup.restore import comparison_table

    safety, result = svc.run_restore(site, cfg, plan)
    print(f"safety backup of the current {plan.target.db}: {safety.path}", file=sys.stderr)
    print(comparison_table(result))
    print(f"restored {plan.backup.path.name} into {service}/{plan.target.db}")


def _restore_point_in_time(svc, site, cfg, service, db, to_time, to_name, yes, confirm_, env) -> None:
    """Checked against the repository's window, confirmed, recovered in a throwaway
    server beside the repository, dumped from it (a verified backup like any other),
    then swapped in the way every restore is."""
    import sys

    from ..backup import layout, pitr, targets
    from ..backup.pgexec import Database
    from ..backup.take import take

    targets.backup_services(site.roles(), [service])  # an unknown or non-database service: one line
    repo = pitr.repository(site)
    where = site.locate(service)
    user = where.env.get("POSTGRES_USER") or "postgres"
    db = db or where.env.get("POSTGRES_DB") or user
    layout.safe_part("database", db)  # before anything is recovered: one line, exit 2
    try:
        latest = pitr.archiver(site, service)["last_archived_time"]
    except OpsError:
        latest = None  # the database is down (the reason to restore): the archive's end
    target, backup_set, what = pitr.target_of(repo, service, to_time, to_name, latest)
    _ask(f"Replace database {db!r} of {service} ({env}) with its state at {what}?", db, env, yes,
         confirm_)
    print(f"recovering {service} to {what} beside the repository ...", file=sys.stderr)
    with pitr.restored(repo, service, where.image, user, target, backup_set) as copy:
        source = Database(service, copy, where.image, user, db)
        backup = take(source, layout.db_dir(cfg.dest, env, service, db), env, cfg.attempts,
                      reason=f"point-in-time copy at {what} (pgBackRest)", zstd_level=cfg.zstd_level)
    print(f"point-in-time copy: {backup.path}", file=sys.stderr)
    try:
        plan = svc.prepare_restore(site, cfg, service, str(backup.path), False, db)
    except OpsError as exc:
        raise OpsError(f"{service}/{db} not replaced: {exc}; the point-in-time copy is kept "
                       f"(once the database is up: inv db.restore -s {service} --file {backup.path})",
                       code=exc.code) from None
    _swap_in(svc, site, cfg, service, plan)


@task(name="restore-point",
      help={"name": "the point's name (letters, digits, . _ : -)",
            "service": "only this database service (repeatable; default: every database)",
            "json": "print JSON", "env": ENV_HELP},
      iterable=["service"])
@user_errors
def restore_point(c, name, service=None, env="local", json_=False):
    """Make a named point every database can be recovered to (db.restore --to-name)."""
    from ..backup import pitr

    with _ctx(c, env) as (site, cfg, svc):
        made = pitr.restore_points(site, pitr.repository(site), service or [], name)
    if json_:
        print(json.dumps(made, indent=2))
        return
    for p in made:
        print(f"{p['stanza']}: restore point {p['name']} at {p['time']} (WAL {p['lsn']}, archived)")


@task(help={"at": "cron schedule (default: 17 3 * * *)",
            "install": "add the line to this user's crontab (idempotent)", "env": ENV_HELP})
@user_errors
def schedule(c, at="17 3 * * *", install=False, env="local"):
    """Print (or install) the crontab line that runs scripts/backup-cron."""
    from ..backup import schedule as schedule_mod

    with platform(c, env) as p:
        line = schedule_mod.cron_line(at, p.settings.root, env)
    if install:
        schedule_mod.install(line, env)
        print(f"installed: {line}")
    else:
        print(line)


ns = Collection("db", backup, verify, list_, prune, restore, restore_point, schedule)
