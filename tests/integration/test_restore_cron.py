"""db.restore, db.prune, the cron mode (silence, metrics, webhook, drills), db.schedule."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from ops.backup import layout, manifest

from .conftest import base_images, free_port, inv
from .test_backup import CONTENT_SQL, container, psql, suffix

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rstack(stack_env, tmp_path_factory):
    base = tmp_path_factory.mktemp("restore")
    env = {**stack_env, "BACKUP_DIR": str(base / "backups")}
    result = inv("up", env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    psql(env, "app-db", "CREATE TABLE notes (id int PRIMARY KEY, body text);"
                        "INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 1000) g;")
    yield env
    shutil.rmtree(base, ignore_errors=True)


def dir_of(env, service="app-db", db="app") -> Path:
    return Path(env["BACKUP_DIR"]) / "local" / service / db


def newest(env, service="app-db", db="app") -> layout.Backup:
    """The newest backup, taking one first when there is none (tests run alone too)."""
    if not layout.backups_in(dir_of(env, service, db)):
        r = inv("db.backup", "--service", service, "--db", db, env=env)
        assert r.returncode == 0, r.stderr
    return layout.backups_in(dir_of(env, service, db))[-1]


def test_restore_round_trip_with_safety_backup(rstack):
    assert inv("db.backup", "--service", "app-db", env=rstack).returncode == 0
    good = newest(rstack)
    original = psql(rstack, "app-db", CONTENT_SQL)
    psql(rstack, "app-db", "DELETE FROM notes WHERE id > 10; INSERT INTO notes VALUES (5000, 'new');")
    damaged = psql(rstack, "app-db", CONTENT_SQL)
    r = inv("db.restore", "--file", str(good.path), "--service", "app-db", "--yes", env=rstack)
    assert r.returncode == 0, r.stderr
    assert psql(rstack, "app-db", CONTENT_SQL) == original
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("public.notes"))
    assert line.split() == ["public.notes", "11", "1000", "1000"]  # before, after, backup
    # The state just before the restore was kept as a verified safety backup.
    safety = layout.backups_in(dir_of(rstack))[-1]
    data = manifest.read(safety.manifest_path)
    assert data["reason"].startswith("safety copy before restoring") and data["tables"]["public.notes"] == 11
    assert manifest.verified_level(data) == "read"
    assert "app__" not in psql(rstack, "app-db", "SELECT string_agg(datname, ',') FROM pg_database;")
    assert damaged != original
    assert inv("health", "--wait", "60", env=rstack, timeout=120).returncode == 0  # api reconnected


def test_restore_refuses_corrupt_backup_and_touches_nothing(rstack):
    good = newest(rstack)
    bad = layout.Backup(good.path.with_name("20000101T000000Z" + suffix(good)))
    raw = bytearray(good.path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.path.write_bytes(bytes(raw))
    data = {**manifest.read(good.manifest_path), "file": bad.path.name, "verifications": []}
    manifest.write(bad.manifest_path, data)
    bad.checksum_path.write_text(manifest.checksum_line(data["sha256"], bad.path.name))
    before = psql(rstack, "app-db", CONTENT_SQL)
    count_before = len(layout.backups_in(dir_of(rstack)))
    r = inv("db.restore", "--file", str(bad.path), "--service", "app-db", "--yes", env=rstack)
    assert r.returncode == 1 and "sha256 mismatch" in r.stderr and "Traceback" not in r.stderr
    assert psql(rstack, "app-db", CONTENT_SQL) == before
    assert len(layout.backups_in(dir_of(rstack))) == count_before  # not even a safety backup
    # Once failed, always refused (the failure is recorded in its manifest).
    r = inv("db.restore", "--file", str(bad.path), "--service", "app-db", "--yes", env=rstack)
    assert r.returncode == 1 and "refusing" in r.stderr and "verification failed" in r.stderr
    for p in (bad.path, bad.manifest_path, bad.checksum_path):
        p.unlink()


def test_restore_needs_confirmation_and_matching_service(rstack):
    good = newest(rstack)
    r = inv("db.restore", "--file", str(good.path), "--service", "app-db", env=rstack, input="")
    assert r.returncode == 1 and "refusing without --yes" in r.stderr
    r = inv("db.restore", "--file", str(good.path), "--service", "auth-db", "--yes", env=rstack)
    assert r.returncode == 1 and "is a backup of app-db, not auth-db" in r.stderr
    r = inv("db.restore", "--latest", env=rstack)
    assert r.returncode == 2 and "--service is required" in r.stderr  # the command line's fault


def test_failed_restore_leaves_database_as_it_was(rstack):
    """A backup whose data cannot be restored (manifest counts lie): nothing is swapped."""
    good = newest(rstack)
    liar = layout.Backup(good.path.with_name("20000101T000001Z" + suffix(good)))
    shutil.copyfile(good.path, liar.path)
    data = {**manifest.read(good.manifest_path), "file": liar.path.name, "verifications": []}
    data["tables"] = {**data["tables"], "public.notes": 999999}
    manifest.write(liar.manifest_path, data)
    liar.checksum_path.write_text(manifest.checksum_line(data["sha256"], liar.path.name))
    before = psql(rstack, "app-db", CONTENT_SQL)
    r = inv("db.restore", "--file", str(liar.path), "--service", "app-db", "--yes", env=rstack)
    assert r.returncode == 1 and "differs from the manifest" in r.stderr
    assert psql(rstack, "app-db", CONTENT_SQL) == before
    dbs = psql(rstack, "app-db", "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database;")
    assert dbs.strip() == "app,postgres,template0,template1"  # the side database is gone
    for p in (liar.path, liar.manifest_path, liar.checksum_path):
        p.unlink()


def _fake_history(directory: Path, days: int) -> None:
    """Copies of the newest backup dated back `days` days (one a day), all verified."""
    src = layout.backups_in(directory)[-1]
    data = manifest.read(src.manifest_path)
    for i in range(1, days + 1):
        when = datetime.now(UTC) - timedelta(days=i)
        b = layout.new_backup(directory, when, zstd=src.compressed)
        shutil.copyfile(src.path, b.path)
        manifest.write(b.manifest_path, {**data, "file": b.path.name, "started_at": when.isoformat()})
        b.checksum_path.write_text(manifest.checksum_line(data["sha256"], b.path.name))


def test_prune_dry_run_then_policy(rstack):
    directory = dir_of(rstack, "auth-db", "auth")
    assert inv("db.backup", "--service", "auth-db", env=rstack).returncode == 0
    _fake_history(directory, 40)
    total = len(layout.backups_in(directory))
    dry = inv("db.prune", "--dry-run", "--service", "auth-db", env=rstack)
    assert dry.returncode == 0 and "would delete" in dry.stdout
    assert len(layout.backups_in(directory)) == total  # dry run deletes nothing
    would = dry.stdout.count("would delete")
    r = inv("db.prune", "--service", "auth-db", env=rstack)
    assert r.returncode == 0 and r.stdout.count("deleted") == would
    left = layout.backups_in(directory)
    assert len(left) == total - would
    # defaults: last 7, daily 7, weekly 4, monthly 6 -> a bounded set, newest kept
    assert len(left) <= 7 + 7 + 4 + 6
    assert left[-1].taken_at > datetime.now(UTC) - timedelta(hours=1)


class Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_cron_mode_silent_metrics_webhook_and_failure(rstack, tmp_path):
    metrics = tmp_path / "ops_backup.prom"
    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**rstack, "BACKUP_WEBHOOK_URL": f"http://127.0.0.1:{server.server_port}/hook",
           "INVOKE_BACKUP_METRICS_FILE": str(metrics)}
    try:
        ok = inv("db.backup", "--cron", env=env, timeout=600)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout == "" and ok.stderr == ""  # silent on success
        assert manifest.read(newest(env).manifest_path)["reason"] == "scheduled"
        text = metrics.read_text()
        assert 'ops_backup_last_run_success{database="app",env="local",service="app-db"} 1.0' in text
        assert "ops_backup_last_success_timestamp_seconds" in text
        assert 'ops_backup_last_verification_ok{database="auth",env="local",level="restore"' in text
        assert "ops_backup_last_restore_drill_timestamp_seconds" in text  # a drill was due
        assert Hook.received == []

        cid = container(rstack, "auth-db")
        subprocess.run(["docker", "stop", cid], check=True, capture_output=True)
        try:
            bad = inv("db.backup", "--cron", "--service", "auth-db", "--db", "auth", env=env,
                      timeout=300)
        finally:
            subprocess.run(["docker", "start", cid], check=True, capture_output=True)
        assert bad.returncode == 1 and bad.stdout == ""
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: backup failed: auth-db/auth")
        assert len(Hook.received) == 1 and "auth-db/auth" in Hook.received[0]["text"]
        text = metrics.read_text()
        assert 'ops_backup_last_run_success{database="auth",env="local",service="auth-db"} 0.0' in text
        assert 'ops_backup_last_run_success{database="app",env="local",service="app-db"} 1.0' in text

        # Every database at once, auth-db's stopped: app-db is still backed up, and auth's
        # failed run is recorded (the databases could not even be listed).
        apps = len(layout.backups_in(dir_of(rstack)))
        subprocess.run(["docker", "stop", cid], check=True, capture_output=True)
        try:
            mixed = inv("db.backup", "--cron", env={**env, "INVOKE_BACKUP_ATTEMPTS": "1"}, timeout=300)
        finally:
            subprocess.run(["docker", "start", cid], check=True, capture_output=True)
        assert mixed.returncode == 1 and mixed.stdout == ""
        lines = mixed.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: backup failed: auth-db/auth"), lines
        assert "app-db" not in lines[0]
        assert len(layout.backups_in(dir_of(rstack))) == apps + 1
        text = metrics.read_text()
        assert 'ops_backup_last_run_success{database="app",env="local",service="app-db"} 1.0' in text
        assert 'ops_backup_last_run_success{database="auth",env="local",service="auth-db"} 0.0' in text
        run = json.loads((dir_of(rstack, "auth-db", "auth") / ".last-run.json").read_text())
        assert not run["ok"] and "is not running" in run["error"]
    finally:
        server.shutdown()
        inv("health", "--wait", "90", env=rstack, timeout=200)


def test_schedule_prints_and_installs_idempotently(rstack):
    r = inv("db.schedule", env=rstack)
    assert r.returncode == 0
    assert r.stdout.strip().startswith("17 3 * * * ") and "scripts/backup-cron --env local" in r.stdout
    bad = inv("db.schedule", "--at", "* * * ; rm -rf /", env=rstack)
    assert bad.returncode == 1 and "invalid cron schedule" in bad.stderr
    if shutil.which("crontab") is None:
        return
    saved = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    try:
        subprocess.run(["crontab", "-"], input="# keep me\n", text=True, check=True)
        for _ in range(2):
            assert inv("db.schedule", "--install", "--at", "5 4 * * *", env=rstack).returncode == 0
        tab = subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout
        assert tab.count("ops-toolkit backup env=local") == 1 and "# keep me" in tab
        assert "5 4 * * * " in tab
    finally:
        if saved.returncode == 0:
            subprocess.run(["crontab", "-"], input=saved.stdout, text=True, check=True)
        else:
            subprocess.run(["crontab", "-r"], capture_output=True)


def _break_glass_block() -> str:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "backups.md").read_text()
    after = doc.split("<!-- break-glass:", 1)[1]
    return after.split("```sh\n", 1)[1].split("```", 1)[0]


def test_break_glass_by_hand_follows_the_readme_literally(rstack, engine, tmp_path):
    """docs/backups.md's break-glass block, run as written (only BACKUP and NEWDB set to this
    test's), against a plain Postgres reached through libpq's variables: the sidecar
    checks, every block reads, the restore's row counts equal the manifest's; a flipped
    byte stops it at the first step."""
    good = newest(rstack)
    expected = manifest.read(good.manifest_path)["tables"]
    password, port = secrets.token_urlsafe(12), free_port()
    image = base_images().get("POSTGRES_IMAGE", "postgres:15.10-bookworm")
    server = engine.containers.run(image, detach=True,
                                   ports={"5432/tcp": ("127.0.0.1", port)},
                                   environment={"POSTGRES_PASSWORD": password},
                                   labels={"ops.test": "break-glass"})
    try:
        libpq = {"PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres",
                 "PGPASSWORD": password, "PATH": "/usr/bin:/bin"}
        deadline = time.monotonic() + 60
        while subprocess.run(["pg_isready", "-q"], env=libpq).returncode != 0:
            assert time.monotonic() < deadline, server.logs()[-500:]
            time.sleep(0.5)
        block = _break_glass_block()
        for name, value in (("BACKUP", str(good.path)), ("NEWDB", "app_restored")):
            block = re.sub(rf"^{name}=\S+", f"{name}={value}", block, count=1, flags=re.M)
        ran = subprocess.run(["bash", "-c", block], env=libpq, capture_output=True, text=True,
                             cwd=tmp_path, timeout=300)
        assert ran.returncode == 0, ran.stderr
        assert f"{good.path.name}: OK" in ran.stdout
        counts = dict(line.rsplit(" ", 1) for line in ran.stdout.splitlines() if line.startswith("public."))
        assert {k: int(v) for k, v in counts.items()} == expected, ran.stdout

        broken = tmp_path / good.path.name
        shutil.copy(good.path, broken)
        shutil.copy(good.checksum_path, tmp_path / good.checksum_path.name)
        with open(broken, "r+b") as fh:
            fh.seek(100)
            byte = fh.read(1)
            fh.seek(100)
            fh.write(bytes([byte[0] ^ 0xFF]))
        block = re.sub(r"^BACKUP=\S+", f"BACKUP={broken}", block, count=1, flags=re.M)
        block = re.sub(r"^NEWDB=\S+", "NEWDB=never_made", block, count=1, flags=re.M)
        stopped = subprocess.run(["bash", "-c", block], env=libpq, capture_output=True, text=True,
                                 cwd=tmp_path, timeout=300)
        assert stopped.returncode != 0 and "FAILED" in stopped.stdout + stopped.stderr
        listed = subprocess.run(["psql", "-X", "-At", "-d", "postgres", "-c",
                                 "SELECT datname FROM pg_database"], env=libpq, capture_output=True,
                                text=True)
        assert "never_made" not in listed.stdout.split()
    finally:
        server.remove(force=True, v=True)
