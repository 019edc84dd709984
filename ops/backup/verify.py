"""Proving a backup: checksum (size + sha256 vs manifest), read (every block decoded by
pg_restore), restore (a drill into a throwaway Postgres of the same image, then row
counts compared with the manifest's, which were taken in the dump's own snapshot)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

from ..commands import docker, pg
from ..containers import Container
from ..errors import OpsError
from ..runtime.runner import LOCAL, Runner
from . import layout, manifest
from .pgexec import feed_from, run_sql

LEVELS = manifest.LEVELS


class VerificationFailed(OpsError):
    pass


def check_consistency(backup: layout.Backup, data: dict) -> None:
    """The manifest must describe this very file, in this very directory."""
    if data.get("file") != backup.path.name:
        raise VerificationFailed(f"{backup.manifest_path}: describes {data.get('file')!r}, "
                                 f"not {backup.path.name!r}")
    if data.get("database") != backup.db or data.get("service") != backup.service:
        raise VerificationFailed(
            f"{backup.manifest_path}: belongs to {data.get('service')}/{data.get('database')}, "
            f"but sits under {backup.service}/{backup.db}")


def checksum(backup: layout.Backup, data: dict) -> str:
    check_consistency(backup, data)
    sidecar_sha, sidecar_name = manifest.parse_checksum_line(
        backup.checksum_path.read_text(encoding="utf-8") if backup.checksum_path.exists() else "")
    if sidecar_name != backup.path.name or sidecar_sha != data.get("sha256"):
        raise VerificationFailed(f"{backup.checksum_path}: does not match the manifest")
    sha, size = manifest.sha256_file(backup.path)
    if size != data.get("size"):
        raise VerificationFailed(f"{backup.path}: size {size} bytes, manifest says {data.get('size')}")
    if sha != data.get("sha256"):
        raise VerificationFailed(f"{backup.path}: sha256 mismatch (file changed or corrupt)")
    return f"sha256 and size ({size} bytes) match"


def read_all(backup: layout.Backup, container: Container) -> str:
    feed_from(container.exec(pg.pg_restore_read_all(), stdin=True), backup.path,
              f"pg_restore read of {backup.path.name}", decompress=backup.compressed)
    return "every block read by pg_restore"


def compare_counts(expected: dict, actual: dict) -> list[str]:
    problems = []
    for table in sorted(set(expected) | set(actual)):
        if table not in actual:
            problems.append(f"{table}: missing after restore")
        elif table not in expected:
            problems.append(f"{table}: not in the manifest")
        elif expected[table] != actual[table]:
            problems.append(f"{table}: {actual[table]} rows, manifest says {expected[table]}")
    return problems


def drill_run_argv(image: str, name: str, db: str) -> list[str]:
    """A throwaway Postgres of the environment's image with no network at all: nothing
    but `docker exec` reaches it, so it needs no password (none to pass or to leak)."""
    return docker.run_detached(image, name, "ops.role=restore-drill", {
        "POSTGRES_HOST_AUTH_METHOD": "trust", "POSTGRES_USER": "drill",
        "POSTGRES_DB": pg.check_db_name(db)}).argv


def restore_drill(backup: layout.Backup, data: dict, image: str, machine: Runner = LOCAL) -> str:
    """Restore into a throwaway container of the same image, on `machine` (this one, or a
    Swarm manager over SSH, the backup streamed to it); compare row counts exactly."""
    name = f"ops-drill-{secrets.token_hex(4)}"
    db = pg.check_db_name(data["database"])
    started = machine.run(drill_run_argv(image, name, db), check=False, timeout=120)
    if started.returncode != 0:
        raise OpsError(f"restore drill on {machine.name}: docker run {image} failed: "
                       f"{started.stderr.strip()[-300:]}")
    drill = Container(started.stdout.strip(), machine)
    try:
        _wait_ready(drill, "drill", db)
        feed_from(drill.exec(pg.pg_restore_into("drill", db), stdin=True), backup.path,
                  f"restore drill of {backup.path.name}", decompress=backup.compressed)
        actual = pg.parse_tagged(run_sql(drill, "drill", db, pg.ROW_COUNTS_SQL))["COUNT"]
    finally:
        machine.run(docker.remove(drill.id, volumes=True).argv, check=False, timeout=120)
    problems = compare_counts(data.get("tables") or {}, actual)
    if problems:
        raise VerificationFailed(f"restore drill of {backup.path.name}: " + "; ".join(problems[:5]))
    where = "" if machine.local else f" on {machine.name}"
    return f"restored into a throwaway {image}{where}; {len(actual)} tables, row counts equal"


def _wait_ready(drill: Container, user: str, db: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = drill.machine.run(docker.is_running(drill.id).argv, check=False)
        if state.stdout.strip() != "true":
            logs = drill.machine.run(docker.logs_tail(drill.id, 10).argv, check=False)
            raise OpsError(f"restore drill container exited: {(logs.stdout + logs.stderr)[-300:]}")
        # TCP, not the socket: the init-time server listens on the socket only.
        if drill.run(["pg_isready", "-q", "-h", "127.0.0.1", "-U", user, "-d", db]).returncode == 0:
            return
        time.sleep(0.5)
    raise OpsError(f"restore drill database not ready after {timeout:.0f}s")


def verify(backup: layout.Backup, level: str, container: Container | None, image: str | None,
           drill_on: Runner = LOCAL) -> dict:
    """Run checks up to `level`; record the outcome in the manifest; raise on failure."""
    if level not in LEVELS:
        raise OpsError(f"unknown level {level!r} (use {', '.join(LEVELS)})")
    data = manifest.read(backup.manifest_path)
    started = time.monotonic()
    details = []
    try:
        details.append(checksum(backup, data))
        if LEVELS.index(level) >= 1:
            if not container:
                raise OpsError("level read needs the database's container (is the stack up?)")
            details.append(read_all(backup, container))
        if level == "restore":
            details.append(restore_drill(backup, data, image or data.get("image"), drill_on))
        ok, detail = True, "; ".join(details)
    except OpsError as exc:
        ok, detail = False, str(exc)
    entry = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "level": level, "ok": ok,
             "detail": detail, "duration_s": round(time.monotonic() - started, 3)}
    if backup.manifest_path.exists():
        manifest.record_verification(backup.manifest_path, entry)
    if not ok:
        raise VerificationFailed(f"{backup.path}: {level} verification failed: {detail}")
    return entry
