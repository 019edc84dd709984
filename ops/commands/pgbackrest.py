"""pgBackRest command lines (pure), run as `postgres` in the repository service's
container (ops-pgbackrest repo) or in a throwaway restore container beside it.

A stanza is a database service (its name). The repository reaches each database
through the database's TLS server: the stanza-only options naming it are given here,
on each command, so the repository service needs no change when the stack gains one."""

from __future__ import annotations

import re

from .line import Line, cmd

TLS_DIR = "/run/pgbackrest"  # where ops-pgbackrest puts the TLS files (0600, postgres)
PGDATA = "/var/lib/postgresql/data"
REPO_PATH = "/var/lib/pgbackrest"
STANZA = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
BACKUP_TYPES = ("full", "diff", "incr")
# A restore point's name: what pg_create_restore_point takes, kept plain (it is written
# on command lines and into the registry of points).
POINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")


def check_stanza(name: str) -> str:
    if not isinstance(name, str) or not STANZA.match(name):
        raise ValueError(f"invalid stanza (service) name {name!r}")
    return name


def _pg(stanza: str, user: str) -> list[str]:
    """The database's options, for commands that reach it from the repository."""
    return [f"--pg1-host={stanza}", "--pg1-host-type=tls", f"--pg1-host-ca-file={TLS_DIR}/ca.crt",
            f"--pg1-host-cert-file={TLS_DIR}/tls.crt", f"--pg1-host-key-file={TLS_DIR}/tls.key",
            f"--pg1-path={PGDATA}", f"--pg1-user={user}"]


def _base(stanza: str) -> list[str]:
    return ["pgbackrest", f"--stanza={check_stanza(stanza)}"]


def stanza_create(stanza: str, user: str) -> Line:
    """Idempotent: on a stanza that exists for this same database it changes nothing."""
    return cmd(*_base(stanza), *_pg(stanza, user), "stanza-create")


def check(stanza: str, user: str) -> Line:
    """Both ends configured, and a WAL segment archived within archive-timeout."""
    return cmd(*_base(stanza), *_pg(stanza, user), "--archive-timeout=30", "check")


def backup(stanza: str, user: str, kind: str, retention_full: int, retention_diff: int) -> Line:
    """A base backup (`kind`: full, diff or incr), then expiry by the retention (pgBackRest
    keeps the WAL that its remaining backups need)."""
    if kind not in BACKUP_TYPES:
        raise ValueError(f"backup type must be {', '.join(BACKUP_TYPES)}, not {kind!r}")
    # Bundled: the small files of a cluster in a few files, not one file each (a full
    # backup of an empty database was 2,500 files to mirror and copy off-site).
    return cmd(*_base(stanza), *_pg(stanza, user), f"--type={kind}", "--start-fast", "--repo1-bundle",
               f"--repo1-retention-full={int(retention_full)}",
               f"--repo1-retention-diff={int(retention_diff)}", "backup")


def info(stanza: str, repo_path: str | None = None) -> Line:
    """`repo_path`: read that directory (a restore container's mount), not the config's."""
    return cmd(*_base(stanza), *([f"--repo1-path={repo_path}"] if repo_path else []), "--output=json", "info")


def verify(stanza: str) -> Line:
    """Every file of the repository read back against its checksum."""
    return cmd(*_base(stanza), "--output=text", "--log-level-console=info", "verify")


def restore(stanza: str, target: tuple[str, str] | None, backup_set: str | None = None) -> Line:
    """Into an empty PGDATA of a throwaway container that mounts the repository:
    `target` ("time", RFC 3339) or ("name", a restore point), or None for the end of the
    archive. The restored server promotes when it reaches the target; archive_mode is
    turned off by the caller, so it never pushes WAL to the live stanza. `backup_set`:
    the base backup to start from (pgBackRest picks one for a time, not for a name)."""
    argv = [*_base(stanza), f"--pg1-path={PGDATA}", f"--repo1-path={REPO_PATH}",
            "--log-level-file=off", "--log-level-console=warn"]
    if target is not None:
        kind, value = target
        if kind not in ("time", "name"):
            raise ValueError(f"restore target must be time or name, not {kind!r}")
        argv += [f"--type={kind}", f"--target={value}", "--target-action=promote"]
    else:
        argv += ["--type=default"]
    if backup_set:
        argv.append(f"--set={backup_set}")
    return cmd(*argv, "restore")
