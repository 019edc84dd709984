"""Continuous archiving and point-in-time recovery with pgBackRest, on any platform's
backup site (ops.platforms.base.BackupSite): the repository is the environment's
`backup-repository` service; each database service is a stanza of it.

- `ensure_stanzas`: each database known to the repository (idempotent);
- `base_backup`: a full, differential or incremental base backup, then expiry;
- `restore_points`: a named point in the WAL, archived at once, recorded in the
  repository (its time picks the base backup a restore to it starts from);
- `restored`: a throwaway Postgres beside the repository (no network, the repository
  mounted read-only, its own data volume) recovered to a time, a name or the end of the
  archive; the caller dumps from it (the db.restore path then checks and swaps).
"""

from __future__ import annotations

import json
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from ..commands import docker
from ..commands import pgbackrest as br
from ..containers import Container
from ..errors import USAGE, OpsError
from ..facts import pgbackrest as facts
from ..runtime.runner import last_line
from . import base_schedule, targets
from .pgexec import run_sql

REPO_ROLE = "backup-repository"
POINTS = f"{br.REPO_PATH}/ops/restore-points.jsonl"
RESTORE_LABEL = "ops.role=pitr-restore"


@dataclass(frozen=True)
class Repository:
    """The repository service's running container."""

    service: str
    container: Container

    def run(self, line, what: str, timeout: float = 1800, input: str | None = None) -> str:
        proc = self.container.run(line, input=input, timeout=timeout, user="postgres")
        if proc.returncode != 0:
            detail = last_line(proc.stderr) or last_line(proc.stdout) or f"exit {proc.returncode}"
            raise OpsError(f"{what} failed: {detail}")
        return proc.stdout

    def info(self, stanza: str) -> facts.Stanza:
        return facts.parse_info(self.run(br.info(stanza), f"pgbackrest info of {stanza}", 120), stanza)

    def volume(self) -> str:
        """The named volume the repository lives on (what a restore container mounts)."""
        out = self.container.machine.run(docker.inspect(self.container.id).argv,
                                         "inspect the repository's container").stdout
        for m in (json.loads(out)[0].get("Mounts") or []):
            if m.get("Destination") == br.REPO_PATH and m.get("Name"):
                return m["Name"]
        raise OpsError(f"{self.service}: no volume at {br.REPO_PATH} (see compose/compose.yaml)")

    def points(self, stanza: str) -> list[dict]:
        text = self.run(["sh", "-c", f"cat {POINTS} 2>/dev/null || true"], "read the restore points")
        found = []
        for line in text.splitlines():
            try:
                p = json.loads(line)
            except ValueError:
                continue
            if p.get("stanza") == stanza:
                found.append(p)
        return found


def repository(site) -> Repository:
    """The environment's repository service, or one line saying there is none."""
    names = [n for n, labels in site.roles().items() if labels.get("ops.role") == REPO_ROLE]
    if not names:
        raise OpsError(f"--env {site.env}: no service with ops.role {REPO_ROLE} "
                       "(continuous archiving needs the pgbackrest service of compose/compose.yaml)")
    return Repository(names[0], site.locate(names[0]).container)


def databases(site, services=()) -> list[tuple[str, str]]:
    """(service, superuser) of each database service archived (not opted out)."""
    out = []
    for service in targets.backup_services(site.roles(), services):
        env = site.locate(service).env
        out.append((service, env.get("POSTGRES_USER") or "postgres"))
    return out


# pgBackRest's own lock: another backup (or stanza command) of the stanza is running.
BUSY = "is another pgBackRest process running"


class Busy(OpsError):
    """Another pgBackRest command holds the stanza's lock (an overlapping run)."""


def _stanza(site, repo: Repository, service: str, user: str) -> facts.Stanza:
    """What the repository holds of the stanza, which is created when it has none yet
    (creating one that exists takes its lock, which a running backup holds)."""
    stanza = repo.info(service)
    if stanza.status not in ("missing stanza", "missing stanza path"):
        return stanza
    try:
        repo.run(br.stanza_create(service, user), f"pgbackrest stanza-create for {service}", 300)
    except OpsError as exc:
        if BUSY in str(exc):
            raise Busy(f"{service}: another pgBackRest command holds its lock") from None
        raise
    _wake_archiver(site, service, user)
    return facts.Stanza(service, "no valid backups", (), None, None)


def _wake_archiver(site, service: str, user: str) -> None:
    """A segment completed before its stanza existed failed archive-push three times, and
    postgres's archiver then waits 60 s before it tries again (CI's first `inv health`
    after `inv up` said archiving FAIL). A configuration reload wakes it at once."""
    where = site.locate(service)
    run_sql(where.container, user, where.env.get("POSTGRES_DB") or user, "SELECT pg_reload_conf();")


def ensure_stanzas(site, repo: Repository, services=()) -> list[str]:
    made = []
    for service, user in databases(site, services):
        _stanza(site, repo, service, user)
        made.append(service)
    return made


def prepare(open_site, out, timeout: float = 120) -> None:
    """After `inv up` or a deploy: each database's stanza in the repository, so that its
    WAL is archived from the start (archive-push fails until the stanza exists, and
    pg_wal grows). Retried while the repository or a database is still starting; a
    failure is a warning (the stack itself is up; `inv health` shows archiving red).
    `open_site`: a fresh view of the platform's databases for each attempt."""
    deadline = time.monotonic() + timeout
    while True:
        site = open_site()
        try:
            if not any(labels.get("ops.role") == REPO_ROLE for labels in site.roles().values()):
                return  # a stack without the repository service: nothing is archived
            ensure_stanzas(site, repository(site))
            return
        except OpsError as exc:
            # No node can run the repository or a database (one is down): waiting the
            # minute out changes nothing.
            if time.monotonic() > deadline or "no suitable node" in str(exc):
                print(f"warning: continuous archiving is not set up: {exc} "
                      "(`inv db.backup` sets it up once the repository answers)", file=out)
                return
            time.sleep(3)
        finally:
            site.close()


def base_backup(site, repo: Repository, service: str, kind: str | None,
                policy: base_schedule.Policy, verify: bool = True) -> dict:
    """One base backup, of `kind` or of the kind the policy says is due; Busy when
    another one of the stanza runs (it is that run's). `verify`: then `pgbackrest
    verify`, every file of the stanza (backups and WAL) read back against its checksum."""
    (service, user), = databases(site, [service])
    stanza = _stanza(site, repo, service, user)
    kind = kind or base_schedule.due(stanza, datetime.now(UTC), policy)
    started = time.monotonic()
    try:
        repo.run(br.backup(service, user, kind, policy.retention_full, policy.retention_diff),
                 f"pgbackrest {kind} backup of {service}")
    except OpsError as exc:
        if BUSY in str(exc):
            raise Busy(f"{service}: a base backup is already running (pgBackRest's lock)") from None
        raise
    took = round(time.monotonic() - started, 1)
    verified = None
    if verify:
        problem = facts.verify_problem(repo.run(br.verify(service), f"pgbackrest verify of {service}"))
        if problem:
            raise OpsError(f"pgbackrest verify of {service}: the repository holds damaged files "
                           f"({problem})")
        verified = "pgbackrest verify"
    newest = repo.info(service).newest
    return {"service": service, "type": kind, "label": newest.label if newest else None,
            "verified": verified, "stopped": newest.stopped if newest else None,
            "size": newest.size if newest else None,
            "repo_size": newest.repo_size if newest else None,
            "duration_s": took}


def archiver(site, service: str) -> dict:
    """pg_stat_archiver of the live database: what it archived last, when, and failures."""
    where = site.locate(service)
    user = where.env.get("POSTGRES_USER") or "postgres"
    db = where.env.get("POSTGRES_DB") or user
    sql = ("SELECT 'A' || chr(9) || coalesce(last_archived_wal, '') || chr(9) || "
           "coalesce(extract(epoch FROM last_archived_time)::bigint::text, '') || chr(9) || "
           "failed_count || chr(9) || coalesce(last_failed_wal, '') || chr(9) || "
           "coalesce(extract(epoch FROM last_failed_time)::bigint::text, '') FROM pg_stat_archiver;")
    fields = run_sql(where.container, user, db, sql).strip().split("\t")
    wal, at, failed, failed_wal, failed_at = (fields[1:] + [""] * 5)[:5]
    return {"last_archived_wal": wal or None,
            "last_archived_time": datetime.fromtimestamp(int(at), UTC) if at else None,
            "failed_count": int(failed or 0), "last_failed_wal": failed_wal or None,
            "last_failed_time": datetime.fromtimestamp(int(failed_at), UTC) if failed_at else None}


def restore_points(site, repo: Repository, services, name: str) -> list[dict]:
    """The point `name` in each database's WAL (every one, or `services`); the name is
    checked, and new to every one of them, before any point is made."""
    if not br.POINT_NAME.match(name or ""):
        raise OpsError(f"restore point name {name!r}: letters, digits and . _ : - only, "
                       "up to 63, starting with a letter or digit", code=USAGE)
    chosen = databases(site, services)
    taken = [s for s, _ in chosen if any(p["name"] == name for p in repo.points(s))]
    if taken:
        raise OpsError(f"restore point {name!r} already exists for {', '.join(taken)}: "
                       "choose another name", code=USAGE)
    return [_restore_point(site, repo, s, user, name) for s, user in chosen]


def point_maker(site):
    """A maker of restore points on every database (`maker(name)`), or None when one of
    them is not archived yet (no stanza: a first start) or there is no repository."""
    try:
        repo = repository(site)
        chosen = databases(site)
        if not chosen or any(repo.info(s).status in ("missing stanza", "missing stanza path")
                             for s, _ in chosen):
            return None
    except OpsError:
        return None
    return lambda name: restore_points(site, repo, [], name)


def _restore_point(site, repo: Repository, service: str, user: str, name: str,
                   timeout: float = 60) -> dict:
    """A named point in the database's WAL, then a WAL switch, waited for until it is
    archived (restorable at once), and recorded with its time in the repository."""
    where = site.locate(service)
    db = where.env.get("POSTGRES_DB") or user
    out = run_sql(where.container, user, db,
                  f"SELECT 'P' || chr(9) || pg_create_restore_point({_lit(name)})::text || chr(9) || "  # noqa: S608 - a checked name (POINT_NAME)
                  "extract(epoch FROM clock_timestamp())::text || chr(9) || "
                  "pg_walfile_name(pg_switch_wal());")
    _, lsn, epoch, segment = out.strip().split("\t")
    deadline = time.monotonic() + timeout
    while (archiver(site, service)["last_archived_wal"] or "") < segment:
        if time.monotonic() > deadline:
            raise OpsError(f"restore point {name!r} made at {lsn}, but WAL {segment} was not archived "
                           f"within {timeout:.0f}s: see `inv health` (archiving)")
        time.sleep(0.5)
    at = datetime.fromtimestamp(float(epoch), UTC)
    record = {"stanza": service, "name": name, "lsn": lsn, "time": facts.iso(at)}
    repo.run(["sh", "-c", f"mkdir -p {br.REPO_PATH}/ops && cat >> {POINTS}"],
             "record the restore point", input=json.dumps(record) + "\n")
    return record


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def target_of(repo: Repository, service: str, to_time: str | None, to_name: str | None,
              latest: datetime | None, now: datetime | None = None):
    """((kind, value) or None, the base backup set or None, what it is in words),
    checked against what the repository can reach: one line naming the window when not."""
    now = now or datetime.now(UTC)
    stanza = repo.info(service)
    if not stanza.backups:
        raise OpsError(f"{service}: no base backup in the repository yet "
                       f"(`inv db.backup --service {service}` takes one)")
    if to_name is not None:
        points = {p["name"]: p for p in repo.points(service)}
        if to_name not in points:
            known = ", ".join(sorted(points)) or "none"
            raise OpsError(f"unknown restore point {to_name!r} for {service} (known: {known})", code=USAGE)
        at = facts.parse_target_time(points[to_name]["time"])
        usable = [b for b in stanza.backups if b.stopped <= at]
        if not usable:
            raise OpsError(f"restore point {to_name!r} ({facts.iso(at)}) is older than every base "
                           f"backup kept (oldest ends {facts.iso(stanza.earliest)})", code=USAGE)
        return ("name", to_name), usable[-1].label, f"restore point {to_name} ({facts.iso(at)})"
    if to_time is not None and to_time.strip().lower() == "latest":
        return None, None, "the end of the archive"
    if to_time is not None:
        try:
            when = facts.parse_target_time(to_time)
        except ValueError as exc:
            raise OpsError(str(exc), code=USAGE) from None
        problem = facts.window_problem(when, stanza.earliest, latest, now)
        if problem:
            raise OpsError(f"{service}: {problem}", code=USAGE)
        return ("time", facts.target_time(when)), None, facts.iso(when)
    return None, None, "the end of the archive"


def _wait_promoted(c: Container, user: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = c.run(["psql", "-X", "-A", "-t", "-w", "-U", user, "-d", "postgres", "-c",
                      "SELECT pg_is_in_recovery();"], user="postgres", timeout=30)
        if proc.returncode == 0 and proc.stdout.strip() == "f":
            return
        last = last_line(proc.stderr) or proc.stdout.strip()
        running = c.run(["pg_ctl", "status", "-D", br.PGDATA], user="postgres", timeout=30)
        if running.returncode != 0:
            log = c.run(["sh", "-c", f"tail -n 5 {br.PGDATA}/restore.log"], user="postgres")
            raise OpsError(f"the restored server stopped: {' | '.join(log.stdout.strip().splitlines()[-3:])}")
        time.sleep(0.5)
    raise OpsError(f"the restored server did not finish recovery within {timeout:.0f}s ({last})")


@contextmanager
def restored(repo: Repository, service: str, image: str, user: str, target, backup_set,
             timeout: float = 900):
    """A throwaway Postgres recovered from the repository to `target` (see target_of),
    yielded as a container; removed with its data whatever happens."""
    with recovered(repo.container.machine, image, repo.volume(), service, user, target, backup_set,
                   timeout=timeout) as c:
        yield c


@contextmanager
def recovered(machine, image: str, volume: str, service: str, user: str, target=None,
              backup_set=None, data_volume: str | None = None, timeout: float = 900):
    """A Postgres recovered from the repository on `volume` (read-only), in a throwaway
    container on `machine`; its data on an anonymous volume removed with it, or on
    `data_volume`, which is kept (the caller stops the server cleanly first)."""
    name = f"ops-pitr-{secrets.token_hex(4)}"
    mounts = {volume: br.REPO_PATH, **({data_volume: br.PGDATA} if data_volume else {})}
    started = machine.run(docker.run_beside(image, name, RESTORE_LABEL, mounts,
                                            read_only=(volume,)).argv, check=False, timeout=120)
    if started.returncode != 0:
        raise OpsError(f"restore container on {machine.name}: docker run {image} failed: "
                       f"{last_line(started.stderr)}")
    c = Container(started.stdout.strip(), machine)
    try:
        proc = c.run(br.restore(service, target, backup_set).argv, user="postgres", timeout=timeout)
        if proc.returncode != 0:
            if "no backup set found" in proc.stderr:
                raise OpsError(f"pgbackrest restore of {service}: the repository holds no base backup "
                               f"of it (db.backup takes one)")
            raise OpsError(f"pgbackrest restore of {service}: {last_line(proc.stderr) or proc.returncode}")
        # Never archive from the copy: its promotion starts a timeline the live stanza
        # must not receive. Local connections only.
        proc = c.run(["pg_ctl", "start", "-W", "-D", br.PGDATA, "-l", f"{br.PGDATA}/restore.log", "-o",
                      "-c archive_mode=off -c listen_addresses=''"],
                     user="postgres", timeout=60)
        if proc.returncode != 0:
            raise OpsError(f"the restored server did not start: {last_line(proc.stderr)}")
        _wait_promoted(c, user, timeout)
        yield c
    finally:
        machine.run(docker.remove(c.id, volumes=True).argv, check=False, timeout=120)

