"""Backups against real Postgres containers: round trip with content checksums,
consistency under writes, corruption detection, kill -9, overlap, database down."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ops.backup import layout, manifest

from .conftest import ROOT, inv

pytestmark = pytest.mark.integration

# md5 of every row's text, per table: equal content, not just equal counts.
CONTENT_SQL = (
    "SELECT n.nspname || '.' || c.relname || '=' || "
    "(xpath('/row/h/text()', query_to_xml(format("
    "'SELECT md5(coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''')) AS h FROM %I.%I t',"
    " n.nspname, c.relname), false, true, '')))[1]::text "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1;"
)

SEED_SQL = """
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, payload jsonb, at timestamptz);
INSERT INTO items (name, payload, at)
  SELECT 'item ' || g, jsonb_build_object('g', g, 'tags', ARRAY['a', 'b']), now() - g * interval '1 min'
  FROM generate_series(1, 20000) g;
CREATE SCHEMA "Billing";
CREATE TABLE "Billing"."Invoices" (id int PRIMARY KEY, amount numeric(12, 2), note text);
INSERT INTO "Billing"."Invoices" SELECT g, g * 1.25, CASE WHEN g % 7 = 0 THEN NULL ELSE 'n' END
  FROM generate_series(1, 3000) g;
CREATE TABLE empty_table (id int);
CREATE TABLE writes (id bigserial PRIMARY KEY, v text);
"""


@pytest.fixture(scope="module")
def bstack(stack_env, tmp_path_factory):
    env = {**stack_env, "BACKUP_DIR": str(tmp_path_factory.mktemp("backups"))}
    result = inv("up", env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    psql(env, "app-db", SEED_SQL)
    return env


def container(env, service) -> str:
    out = subprocess.run(["docker", "compose", "--project-name", env["COMPOSE_PROJECT_NAME"],
                          "--file", str(ROOT / "compose/compose.yaml"), "ps", "-q", service],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    return out[0]


def psql(env, service, sql, db=None) -> str:
    db = db or {"app-db": "app", "auth-db": "auth"}[service]
    proc = subprocess.run(["docker", "exec", "-i", container(env, service), "sh", "-c",
                           f'psql -X -q -At -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d {db}'],
                          input=sql, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def dest(env) -> Path:
    return Path(env["BACKUP_DIR"]) / "local"


def suffix(b: layout.Backup) -> str:
    """`.dump` or `.dump.zst`: copies keep the compression of their original."""
    return b.path.name[len("20000101T000000Z"):]


def latest(env, service, db) -> layout.Backup:
    return layout.backups_in(dest(env) / service / db)[-1]


def test_round_trip_restores_equal_content(bstack):
    result = inv("db.backup", env=bstack)
    assert result.returncode == 0, result.stderr
    assert "app-db/app:" in result.stdout and "auth-db/auth:" in result.stdout
    assert "(verified: read)" in result.stdout
    b = latest(bstack, "app-db", "app")
    data = manifest.read(b.manifest_path)
    assert data["tables"]["public.items"] == 20000
    assert data["reason"] == "manual"  # a backup someone ran is not a scheduled one
    assert data["tables"]["Billing.Invoices"] == 3000
    assert data["tables"]["public.empty_table"] == 0
    assert data["server_version"].startswith("15.") and "pg_dump (PostgreSQL) 15." in data["pg_dump_version"]
    assert manifest.sha256_file(b.path) == (data["sha256"], data["size"])
    assert oct(b.path.stat().st_mode & 0o777) == "0o600"
    # Restore into a scratch database on the same server; compare every table's content.
    source = psql(bstack, "app-db", CONTENT_SQL)
    psql(bstack, "app-db", "CREATE DATABASE scratch;", db="app")
    try:
        # A plain shell pipeline, independent of the toolkit's own restore code.
        decompress = "zstd -dc" if b.compressed else "cat"
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c",
             f"{decompress} '{b.path}' | docker exec -i {container(bstack, 'app-db')} sh -c "
             "'pg_restore --exit-on-error -U \"$POSTGRES_USER\" -d scratch'"],
            capture_output=True)
        assert proc.returncode == 0, proc.stderr
        assert psql(bstack, "app-db", CONTENT_SQL, db="scratch") == source
    finally:
        psql(bstack, "app-db", "DROP DATABASE scratch;", db="app")


def test_both_compressions_round_trip(bstack):
    """zstd on the host (the default when installed) and pg_dump's own, both restorable."""
    for mode, ext, label in (("zstd", ".dump.zst", "zstd -3"), ("pg_dump", ".dump", "pg_dump default")):
        env = {**bstack, "INVOKE_BACKUP_COMPRESSION": mode}
        r = inv("db.backup", "--service", "auth-db", env=env)
        assert r.returncode == 0, r.stderr
        b = latest(bstack, "auth-db", "auth")
        assert b.path.name.endswith(ext) and b.compressed == (mode == "zstd")
        assert manifest.read(b.manifest_path)["compression"].startswith(label)
        drill = inv("db.verify", "--file", str(b.path), "--level", "restore", env=bstack)
        assert drill.returncode == 0, drill.stderr
    bad = inv("db.backup", env={**bstack, "INVOKE_BACKUP_COMPRESSION": "rar"})
    assert bad.returncode == 1 and "backup.compression must be auto, zstd or pg_dump" in bad.stderr


def test_restore_drill_matches_counts_taken_under_writes(bstack):
    stop = threading.Event()
    cid = container(bstack, "app-db")

    def writer():  # a steady stream of commits while the backup runs
        proc = subprocess.Popen(["docker", "exec", "-i", cid, "sh", "-c",
                                 'psql -X -q -U "$POSTGRES_USER" -d app'], stdin=subprocess.PIPE,
                                text=True, stdout=subprocess.DEVNULL)
        while not stop.is_set():
            proc.stdin.write("INSERT INTO writes (v) SELECT md5(g::text) FROM generate_series(1, 200) g;\n")
            proc.stdin.flush()
            time.sleep(0.01)
        proc.stdin.close()
        proc.wait()

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.5)
        result = inv("db.backup", "--service", "app-db", env=bstack)
        assert result.returncode == 0, result.stderr
    finally:
        stop.set()
        t.join()
    b = latest(bstack, "app-db", "app")
    counted = manifest.read(b.manifest_path)["tables"]["public.writes"]
    total_now = int(psql(bstack, "app-db", "SELECT count(*) FROM writes;"))
    assert 0 < counted < total_now  # writes happened during and after the snapshot
    drill = inv("db.verify", "--file", str(b.path), "--level", "restore", env=bstack)
    assert drill.returncode == 0, drill.stderr
    assert "row counts equal" in drill.stdout
    data = manifest.read(b.manifest_path)
    assert manifest.verified_level(data) == "restore"
    leftover = subprocess.run(["docker", "ps", "-aq", "--filter", "label=ops.role=restore-drill"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert leftover == []  # the throwaway drill container was removed


def _copy_as(b: layout.Backup, stamp: str, content: bytes | None = None,
             fix_manifest: bool = False, data_override: dict | None = None) -> layout.Backup:
    """A copy of a backup under another timestamp, optionally damaged."""
    new = layout.Backup(b.path.with_name(stamp + suffix(b)))
    raw = b.path.read_bytes() if content is None else content
    new.path.write_bytes(raw)
    data = {**manifest.read(b.manifest_path), "file": new.path.name, "verifications": []}
    if fix_manifest:  # the manifest agrees with the damaged file: only `read` can tell
        data["sha256"], data["size"] = manifest.sha256_file(new.path)
    data.update(data_override or {})
    manifest.write(new.manifest_path, data)
    new.checksum_path.write_text(manifest.checksum_line(data["sha256"], new.path.name))
    return new


def _cleanup(*backups):
    for b in backups:
        for p in (b.path, b.manifest_path, b.checksum_path):
            p.unlink(missing_ok=True)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncation_detected_by_checksum_and_by_reading(bstack, fraction):
    b = latest(bstack, "app-db", "app")
    raw = b.path.read_bytes()
    cut = raw[: int(len(raw) * fraction)]
    plain = _copy_as(b, "20000101T000001Z", cut)
    matching = _copy_as(b, "20000101T000002Z", cut, fix_manifest=True)
    try:
        r = inv("db.verify", "--file", str(plain.path), "--level", "checksum", env=bstack)
        assert r.returncode == 1 and "size" in r.stderr and "Traceback" not in r.stderr
        r = inv("db.verify", "--file", str(matching.path), "--level", "checksum", env=bstack)
        assert r.returncode == 0  # the manifest was rewritten to match ...
        r = inv("db.verify", "--file", str(matching.path), "--level", "read", env=bstack)
        assert r.returncode == 1, r.stdout  # ... but reading every block catches it
        assert "read verification failed" in r.stderr
        assert manifest.failed(manifest.read(matching.manifest_path))
    finally:
        _cleanup(plain, matching)


def test_flipped_byte_empty_file_and_foreign_manifest(bstack):
    b = latest(bstack, "app-db", "app")
    raw = bytearray(b.path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    flipped = _copy_as(b, "20000101T000003Z", bytes(raw))
    empty = _copy_as(b, "20000101T000004Z", b"")
    other = latest(bstack, "auth-db", "auth")
    foreign = _copy_as(b, "20000101T000005Z",
                       data_override={k: v for k, v in manifest.read(other.manifest_path).items()
                                      if k in ("database", "service")})
    try:
        r = inv("db.verify", "--file", str(flipped.path), "--level", "checksum", env=bstack)
        assert r.returncode == 1 and "sha256 mismatch" in r.stderr
        r = inv("db.verify", "--file", str(empty.path), "--level", "checksum", env=bstack)
        assert r.returncode == 1 and "size 0 bytes" in r.stderr
        r = inv("db.verify", "--file", str(foreign.path), "--level", "checksum", env=bstack)
        assert r.returncode == 1 and "belongs to auth-db/auth" in r.stderr
        listing = json.loads(inv("db.list", "--json", env=bstack).stdout)
        states = {Path(x["file"]).name: x for x in listing}
        flipped_state = states[flipped.path.name]
        assert flipped_state["failed"] and not flipped_state["verified"]
    finally:
        _cleanup(flipped, empty, foreign)


@pytest.fixture(scope="module")
def big_table(bstack):
    """Enough data that pg_dump takes a few seconds: time to interfere with it."""
    psql(bstack, "app-db", "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v "
                           "FROM generate_series(1, 1500000) g;")
    yield
    psql(bstack, "app-db", "DROP TABLE big;")


def _start_backup(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "invoke", "db.backup", "--service", "app-db"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for_partial(directory: Path, proc, timeout=60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = [p for p in directory.glob("*.partial") if p.stat().st_size > 0]
        if parts:
            return parts[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no partial file appeared")


def test_kill_9_leaves_nothing_that_looks_valid(bstack, big_table):
    directory = dest(bstack) / "app-db" / "app"
    before = [b.path.name for b in layout.backups_in(directory)]
    proc = _start_backup(bstack)
    partial = _wait_for_partial(directory, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [b.path.name for b in layout.backups_in(directory)] == before
    assert not layout.Backup(partial.with_suffix("")).manifest_path.exists()
    time.sleep(2)  # let the orphaned docker exec notice the closed pipe
    result = inv("db.backup", "--service", "app-db", env=bstack, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "removed leftover of an interrupted run" in result.stderr
    assert not list(directory.glob("*.partial"))
    assert len(layout.backups_in(directory)) == len(before) + 1


def test_overlapping_run_is_refused_and_first_completes(bstack, big_table):
    directory = dest(bstack) / "app-db" / "app"
    before = len(layout.backups_in(directory))
    first = _start_backup(bstack)
    _wait_for_partial(directory, first)
    second = inv("db.backup", "--service", "app-db", env=bstack)
    assert second.returncode == 75, second.stderr
    assert "locked by another run: pid" in second.stderr and "it was left alone" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert len(layout.backups_in(directory)) == before + 1


def test_database_down_bounded_retries_then_clear_failure(bstack):
    cid = container(bstack, "auth-db")
    subprocess.run(["docker", "stop", cid], check=True, capture_output=True)
    try:
        result = inv("db.backup", "--service", "auth-db", "--db", "auth", env=bstack, timeout=120)
        assert result.returncode == 1
        assert "attempt 3/3" in result.stderr and "gave up after 3 attempts" in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("error: backup failed: auth-db/auth")
        assert "Traceback" not in result.stderr
        assert not list((dest(bstack) / "auth-db" / "auth").glob("*.partial"))
    finally:
        subprocess.run(["docker", "start", cid], check=True, capture_output=True)
        inv("health", "--wait", "90", env=bstack, timeout=200)


def test_bad_names_are_refused(bstack):
    for args, fragment in [(["--service", "redis"], "not a database service"),
                           (["--service", "nope"], "unknown service 'nope'"),
                           (["--db", "x;drop table items"], "invalid database name")]:
        r = inv("db.backup", *args, env=bstack)
        assert r.returncode == 1 and fragment in r.stderr, r.stderr
    outside = Path(bstack["BACKUP_DIR"]).parent / "20260101T000000Z.dump"
    r = inv("db.verify", "--file", str(outside), env=bstack)
    assert r.returncode == 1 and "not under the backup directory" in r.stderr


def test_list_shows_state(bstack):
    r = inv("db.list", env=bstack)
    assert r.returncode == 0
    assert "app-db" in r.stdout and "restore" in r.stdout and "read" in r.stdout


@pytest.fixture(scope="module", autouse=True)
def _drop_backup_dir(bstack):
    yield
    shutil.rmtree(bstack["BACKUP_DIR"], ignore_errors=True)
    assert not os.path.exists(bstack["BACKUP_DIR"])


# -- continuous archiving (pgBackRest) ----------------------------------------------------

TICKS = ("CREATE TABLE IF NOT EXISTS ticks (id bigserial PRIMARY KEY, "
         "at timestamptz DEFAULT clock_timestamp());")


def _writer(env, seconds: float, every: float = 0.02) -> subprocess.Popen:
    """One row per `every` s (50 commits/s), each committed, for `seconds`: in one psql
    session inside the database container (bounded: it stops by itself)."""
    loops = int(seconds / every)
    sql = (f"DO $$ BEGIN FOR i IN 1..{loops} LOOP INSERT INTO ticks DEFAULT VALUES; COMMIT; "
           f"PERFORM pg_sleep({every}); END LOOP; END $$;")
    proc = subprocess.Popen(["docker", "exec", "-i", container(env, "app-db"), "sh", "-c",
                             'psql -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d app'],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    proc.stdin.write(sql + "\n")
    proc.stdin.close()
    return proc


def _count(env, where: str = "true") -> int:
    return int(psql(env, "app-db", f"SELECT count(*) FROM ticks WHERE {where};").strip())  # noqa: S608


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_point_in_time_recovery_to_a_name_and_a_time_and_bad_targets_change_nothing(bstack):
    """Under 50 commits/s: a named point and a time are each recovered (beside the
    live database, then swapped in), holding exactly the rows committed before them;
    targets out of the window, unknown names and malformed times are one line naming
    what is restorable, exit 2, and change nothing."""
    psql(bstack, "app-db", TICKS + "TRUNCATE ticks;")
    base = inv("db.backup", "--service", "app-db", "--base", "full", env=bstack, timeout=600)
    assert base.returncode == 0, base.stderr[-2000:]
    assert re.search(r"^app-db \(pgBackRest\): full base backup \S+F ", base.stdout, re.M), base.stdout
    writer = _writer(bstack, 16)  # still writing at `t`, however long the point takes
    time.sleep(2)
    point = inv("db.restore-point", "before-batch", "--service", "app-db", "--json", env=bstack)
    assert point.returncode == 0, point.stderr
    p_time = datetime.fromisoformat(json.loads(point.stdout)[0]["time"].replace("Z", "+00:00"))
    time.sleep(2)
    t = datetime.now(UTC)
    assert writer.wait(timeout=90) == 0, writer.stderr.read()
    # The writer's last segment reaches the archive (a named point waits for that).
    assert inv("db.restore-point", "after-batch", "-s", "app-db", env=bstack).returncode == 0
    total = _count(bstack)
    before_t = (_count(bstack, f"at <= '{_iso(t - timedelta(seconds=0.05))}'"),
                _count(bstack, f"at <= '{_iso(t)}'"))
    before_p = (_count(bstack, f"at <= '{_iso(p_time - timedelta(seconds=0.05))}'"),
                _count(bstack, f"at <= '{_iso(p_time)}'"))
    assert 0 < before_p[0] and before_t[1] < total

    for args, says in ((["--to-time", "2001-01-01T00:00:00Z"], r"is before the oldest base backup "
                        r"\(restorable from \S+Z to \S+Z\)"),
                       (["--to-time", "2999-01-01T00:00:00Z"], r"is in the future \(restorable from"),
                       (["--to-time", "2026-12-07 14:00"], r"give its offset"),
                       (["--to-name", "no-such-point"], r"unknown restore point 'no-such-point' for "
                        r"app-db \(known: after-batch, before-batch\)"),
                       (["--to-name", "before-batch", "--latest"], r"not with --file, --latest")):
        bad = inv("db.restore", "-s", "app-db", *args, "--yes", env=bstack)
        assert bad.returncode == 2 and re.search(says, bad.stderr), (args, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    bad_db = inv("db.restore", "-s", "app-db", "--to-time", "latest", "--db", "x;y", "--yes", env=bstack)
    assert bad_db.returncode == 1 and "invalid database name 'x;y'" in bad_db.stderr
    assert "recovering" not in bad_db.stderr  # refused before anything is recovered
    assert _count(bstack) == total  # nothing changed

    by_time = inv("db.restore", "-s", "app-db", "--to-time", _iso(t), "--yes", env=bstack, timeout=600)
    assert by_time.returncode == 0, by_time.stderr[-2000:]
    assert before_t[0] <= _count(bstack) <= before_t[1]
    by_name = inv("db.restore", "-s", "app-db", "--to-name", "before-batch", "--yes", env=bstack,
                  timeout=600)
    assert by_name.returncode == 0, by_name.stderr[-2000:]
    assert before_p[0] <= _count(bstack) <= before_p[1]
    copy = latest(bstack, "app-db", "app")  # the safety copy, taken before the swap
    assert manifest.read(copy.manifest_path)["reason"].startswith("safety copy")
    left = subprocess.run(["docker", "ps", "-aq", "--filter", "label=ops.role=pitr-restore"],
                          capture_output=True, text=True).stdout.split()
    assert left == []
    health = inv("health", "--json", env=bstack)
    archiving = [c for c in json.loads(health.stdout)["checks"] if c["check"] == "archiving"]
    assert {c["service"] for c in archiving} == {"app-db", "auth-db"}
    assert all(c["status"] in ("ok", "warn") for c in archiving), archiving


def test_kill_9_under_writes_loses_seconds_at_most_and_the_copy_is_kept(bstack):
    """The database killed with -9 under 50 commits/s and kept down (its volume as good
    as lost): the repository alone, recovered to its end, holds every row committed up
    to a few seconds before the kill. The recovered copy is kept as a verified backup
    (the live database cannot take it while down) and the rows lost are counted: the
    RPO, at most 10 s of commits (archive_timeout 5 s, asynchronous push)."""
    psql(bstack, "app-db", TICKS + "TRUNCATE ticks;")
    base = inv("db.backup", "--service", "app-db", "--base", "incr", env=bstack, timeout=600)
    assert base.returncode == 0, base.stderr[-2000:]
    db = container(bstack, "app-db")
    writer = _writer(bstack, 30)
    time.sleep(9)
    subprocess.run(["docker", "update", "--restart=no", db], check=True, capture_output=True)
    try:
        subprocess.run(["docker", "kill", "--signal", "KILL", db], check=True, capture_output=True)
        writer.wait(timeout=30)
        kept = inv("db.restore", "-s", "app-db", "--to-time", "latest", "--yes", env=bstack, timeout=600)
        assert kept.returncode == 1, kept.stderr
        assert "app-db/app not replaced" in kept.stderr and "the point-in-time copy is kept" in kept.stderr
        path = Path(re.search(r"--file (\S+)\)", kept.stderr).group(1))
        copy = latest(bstack, "app-db", "app")
        assert copy.path == path and "point-in-time copy" in manifest.read(copy.manifest_path)["reason"]
        recovered = manifest.read(copy.manifest_path)["tables"]["public.ticks"]
    finally:
        subprocess.run(["docker", "update", "--restart=unless-stopped", db], capture_output=True)
        subprocess.run(["docker", "start", db], check=True, capture_output=True)
    deadline = time.monotonic() + 120
    while subprocess.run(["docker", "exec", db, "pg_isready", "-q", "-h", "127.0.0.1"]).returncode:
        assert time.monotonic() < deadline
        time.sleep(1)
    committed = _count(bstack)  # crash recovery kept every commit on the volume
    lost = committed - recovered
    rate = committed / 9  # the writer's own pace on this machine (50/s when idle)
    print(f"\nkill -9 after 9 s of writes: {committed} committed, {recovered} in the repository, "
          f"{lost} lost ({lost / rate:.1f} s of commits at {rate:.0f}/s)")
    assert recovered > 0 and 0 <= lost <= 10 * rate


def _archiver(env, service) -> tuple[int, int]:
    out = psql(env, service, "SELECT archived_count, failed_count FROM pg_stat_archiver;")
    archived, failed = out.strip().split("|")
    return int(archived), int(failed)


def test_wal_completed_before_its_stanza_is_archived_as_soon_as_the_stanza_is_made(bstack):
    """A segment completed before the repository knew the database (a busy database at
    first start; here: its stanza removed) fails archive-push three times, and postgres
    then waits 60 s before trying again. `inv up`, which makes the stanza, wakes the
    archiver: archiving is green at once, not a minute later (CI's first health check
    after `inv up` once said FAIL)."""
    repo = container(bstack, "pgbackrest")
    subprocess.run(["docker", "exec", repo, "rm", "-rf", "/var/lib/pgbackrest/archive/auth-db",
                    "/var/lib/pgbackrest/backup/auth-db"], check=True)
    archived, failed = _archiver(bstack, "auth-db")
    psql(bstack, "auth-db", "CREATE TABLE IF NOT EXISTS early (x int); INSERT INTO early VALUES (1); "
                            "SELECT pg_switch_wal();")
    deadline = time.monotonic() + 60
    while _archiver(bstack, "auth-db")[1] < failed + 3:  # the archiver gave up for now
        assert time.monotonic() < deadline, "archive-push never failed without a stanza"
        time.sleep(1)
    up = inv("up", env=bstack, timeout=300)
    assert up.returncode == 0, up.stderr[-2000:]
    deadline = time.monotonic() + 15  # well before the archiver's own 60 s retry
    while _archiver(bstack, "auth-db")[0] <= archived:
        assert time.monotonic() < deadline, "the segment waited for the archiver's 60 s retry"
        time.sleep(1)
    health = inv("health", "--json", env=bstack)
    auth = [c for c in json.loads(health.stdout)["checks"]
            if c["check"] == "archiving" and c["service"] == "auth-db"]
    assert [c["status"] for c in auth] == ["ok"], auth


def test_a_damaged_file_in_the_repository_fails_the_run_naming_it(bstack):
    """`pgbackrest verify` after each base backup reads the stanza's files back: one
    archived WAL segment with four bytes flipped fails db.backup (exit 1, one line naming
    the file), though pgBackRest 2.45 itself exits 0; put back, the next run passes."""
    repo = container(bstack, "pgbackrest")
    found = subprocess.run(["docker", "exec", repo, "sh", "-c",
                            "ls /var/lib/pgbackrest/archive/app-db/*/*/*.gz | tail -n 1"],
                           capture_output=True, text=True, check=True).stdout.strip()
    keep = f"/tmp/{Path(found).name}"
    subprocess.run(["docker", "exec", repo, "sh", "-c", f"cp -p {found} {keep} && printf XXXX | "
                    f"dd of={found} bs=1 seek=100 conv=notrunc 2>/dev/null"], check=True)
    try:
        bad = inv("db.backup", "-s", "app-db", "--base", "incr", env=bstack, timeout=600)
        assert bad.returncode == 1, bad.stdout
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert "pgbackrest verify of app-db: the repository holds damaged files" in lines[0]
        assert f"first: {found.split('/archive/app-db/')[1]}" in lines[0], lines
    finally:
        subprocess.run(["docker", "exec", repo, "sh", "-c", f"cp -p {keep} {found} && rm {keep}"], check=True)
    good = inv("db.backup", "-s", "app-db", "--base", "incr", env=bstack, timeout=600)
    assert good.returncode == 0 and "verified: pgbackrest verify" in good.stdout, good.stderr


def test_the_repository_killed_mid_backup_lists_nothing_partial_and_the_next_run_completes(bstack):
    """kill -9 of the repository's server while a full base backup streams (its container
    goes with it, and the backup running in it): the run fails in one line; pgBackRest
    lists no backup that is not whole (the one killed is not in its info); the container
    comes back (restart policy), archiving goes on, and the next run's backup completes
    and is listed."""
    repo = container(bstack, "pgbackrest")
    labels = "ls /var/lib/pgbackrest/backup/app-db | grep -E '^[0-9]{8}-[0-9]{6}F' || true"
    before = set(subprocess.run(["docker", "exec", repo, "sh", "-c", labels],
                                capture_output=True, text=True, check=True).stdout.split())
    listed = json.loads(subprocess.run(["docker", "exec", "-u", "postgres", repo, "pgbackrest",
                                        "--stanza=app-db", "--output=json", "info"],
                                       capture_output=True, text=True, check=True).stdout)
    whole = {b["label"] for b in listed[0]["backup"]}
    run = subprocess.Popen([sys.executable, "-m", "invoke", "db.backup", "-s", "app-db", "--base", "full"],
                           cwd=ROOT, env=bstack,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while True:  # its directory appears as the backup starts
        now = set(subprocess.run(["docker", "exec", repo, "sh", "-c", labels],
                                 capture_output=True, text=True).stdout.split())
        if now - before:
            break
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.1)
    # As the kernel's OOM killer would: its main process, from this host (`docker kill`
    # counts as a manual stop, after which the restart policy does not restart it).
    init = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", repo], capture_output=True,
                          text=True, check=True).stdout.strip()
    main = Path(f"/proc/{init}/task/{init}/children").read_text().split()[0]
    os.kill(int(main), signal.SIGKILL)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 1, out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "app-db (pgBackRest)" in lines[0] and "Traceback" not in err, err
    deadline = time.monotonic() + 120
    while subprocess.run(["docker", "exec", "-u", "postgres", repo, "pgbackrest", "server-ping"],
                         capture_output=True).returncode:
        assert time.monotonic() < deadline, "the repository did not come back"
        time.sleep(1)
    listed = json.loads(subprocess.run(["docker", "exec", "-u", "postgres", repo, "pgbackrest",
                                        "--stanza=app-db", "--output=json", "info"],
                                       capture_output=True, text=True, check=True).stdout)
    assert {b["label"] for b in listed[0]["backup"]} == whole  # nothing half-written listed
    again = inv("db.backup", "-s", "app-db", "--base", "full", env=bstack, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    label = re.search(r"^app-db \(pgBackRest\): full base backup (\S+F) ", again.stdout, re.M).group(1)
    listed = json.loads(subprocess.run(["docker", "exec", "-u", "postgres", repo, "pgbackrest",
                                        "--stanza=app-db", "--output=json", "info"],
                                       capture_output=True, text=True, check=True).stdout)
    assert label in {b["label"] for b in listed[0]["backup"]}
    health = json.loads(inv("health", "--json", env=bstack).stdout)["checks"]
    archiving = [c for c in health if c["check"] == "archiving" and c["service"] == "app-db"]
    assert [c["status"] for c in archiving] == ["ok"], archiving
