"""Off-site copies through rclone to a real SFTP server (an sshd container with its own
key and a verified host key): upload proven by the remote's checksum, listing, a
corrupted remote copy caught, restore from off-site, a failed upload that keeps the
local backup, and off-site retention."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ops.backup import layout, manifest
from ops.backup.repo_mirror import is_info

from .conftest import ROOT, free_port, inv
from .test_backup import CONTENT_SQL, psql

pytestmark = pytest.mark.integration

REMOTE = "offsite:/srv/backups"
REPO_MB = 192


@pytest.fixture(scope="module")
def sftp(engine):
    """sshd in a container, reached on loopback with a key of its own; its host keys
    recorded in a known_hosts file rclone checks."""
    from tests.support.sftp_target import sftp_target

    with sftp_target(ROOT, "offsite") as target:
        yield target


@pytest.fixture(scope="module")
def ostack(stack_env, sftp, tmp_path_factory):
    base = tmp_path_factory.mktemp("offsite")
    _, rclone_env = sftp
    env = {**stack_env, **rclone_env, "BACKUP_DIR": str(base / "backups"),
           "INVOKE_BACKUP_OFFSITE_REMOTES": REMOTE}
    # The repository on a 192 MB tmpfs, so that a test can fill it: made before `inv up`
    # with Compose's labels, Compose takes it as the stack's own (and removes it at down).
    project = stack_env["COMPOSE_PROJECT_NAME"]
    subprocess.run(["docker", "volume", "create", "--driver", "local", "--opt", "type=tmpfs",
                    "--opt", "device=tmpfs", "--opt", f"o=size={REPO_MB}m",
                    "--label", f"com.docker.compose.project={project}",
                    "--label", "com.docker.compose.volume=pgbackrest-repo",
                    f"{project}_pgbackrest-repo"], check=True, capture_output=True)
    up = inv("up", env=env, timeout=900)
    assert up.returncode == 0, up.stderr[-3000:]
    psql(env, "app-db", "CREATE TABLE notes (id int PRIMARY KEY, body text);"
                        "INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 500) g;")
    yield env
    shutil.rmtree(base, ignore_errors=True)


def _remote_files(server, sub="local/app-db/app") -> list[str]:
    code, out = server.exec_run(["sh", "-c", f"ls /srv/backups/{sub} 2>/dev/null"])
    return sorted(out.decode().split())


def _dir(env) -> Path:
    return Path(env["BACKUP_DIR"]) / "local" / "app-db" / "app"


def test_each_backup_is_copied_off_site_proven_and_listed(ostack, sftp):
    server, _ = sftp
    r = inv("db.backup", "-s", "app-db", env=ostack, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    b = layout.backups_in(_dir(ostack))[-1]
    assert f"off-site: {REMOTE}/local/app-db/app/{b.path.name} (verified: md5 (remote))" in r.stdout
    assert {b.path.name, b.checksum_path.name, b.manifest_path.name} <= set(_remote_files(server))
    copy = manifest.read(b.manifest_path)["offsite"][0]
    assert copy["remote"] == REMOTE and copy["verified_by"] == "md5 (remote)" and copy["verified_at"]
    # The remote manifest is the local one, this copy recorded in it (uploaded last).
    code, out = server.exec_run(["cat", f"/srv/backups/local/app-db/app/{b.manifest_path.name}"])
    assert json.loads(out)["offsite"][0]["path"] == copy["path"]
    prom = (Path(ostack["BACKUP_DIR"]) / "metrics" / "ops_backup.prom").read_text()
    assert ('ops_backup_offsite_last_copy_timestamp_seconds{database="app",env="local",'
            f'remote="{REMOTE}",service="app-db"}}') in prom

    listed = inv("db.list", "--offsite", "--json", env=ostack)
    assert listed.returncode == 0, listed.stderr
    rows = [row for row in json.loads(listed.stdout) if row["file"] == b.path.name]
    assert rows and rows[0]["complete"] and rows[0]["size"] == b.path.stat().st_size
    table = inv("db.list", "--offsite", env=ostack).stdout
    assert "complete" in table and b.path.name in table

    # Read back instead of the backend's checksum: the same copy, proven by its sha256.
    again = inv("db.backup", "-s", "app-db", env={**ostack, "INVOKE_BACKUP_OFFSITE_VERIFY": "download"},
                timeout=600)
    assert again.returncode == 0 and "(verified: sha256 (read back))" in again.stdout, again.stderr


def _repo_sums(container: str, root: str) -> dict[str, str]:
    """sha256 of every file of a pgBackRest repository tree (in a container)."""
    out = subprocess.run(["docker", "exec", container, "sh", "-c",
                          f"cd {root} && find . -type f ! -name '*.tmp' -exec sha256sum {{}} +"],
                         capture_output=True, text=True, check=True).stdout
    return {line.split("  ", 1)[1][2:]: line.split("  ", 1)[0] for line in out.splitlines()}


def test_the_pgbackrest_repository_is_mirrored_then_copied_off_site_proven(ostack, sftp):
    """db.backup mirrors the repository's volume here (new files only) and copies the
    mirror to each remote, proven by rclone check: file for file the repository's own
    bytes, on the remote and here."""
    server, _ = sftp
    first = inv("db.backup", "-s", "app-db", env=ostack, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    mirror = Path(ostack["BACKUP_DIR"]) / "local" / ".pgbackrest"
    line = re.search(r"^pgBackRest repository: (\d+) files here \((\d+) new, .*\) in (\S+)$",
                     first.stdout, re.M)
    assert line and Path(line.group(3)) == mirror, first.stdout
    assert f"  off-site: {REMOTE}/local/.pgbackrest (verified: hashes (remote))" in first.stdout
    again = inv("db.backup", "-s", "app-db", "--base", "incr", env=ostack, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    files, new = map(int, re.search(r"^pgBackRest repository: (\d+) files here \((\d+) new",
                                    again.stdout, re.M).groups())
    assert 0 < new < files  # only what the second run added (an incremental backup, WAL)
    repo = subprocess.run(["docker", "compose", "--project-name", ostack["COMPOSE_PROJECT_NAME"],
                           "--file", str(ROOT / "compose/compose.yaml"), "ps", "-q", "pgbackrest"],
                          env=ostack, capture_output=True, text=True, check=True).stdout.split()[0]
    theirs = _repo_sums(repo, "/var/lib/pgbackrest")
    here = {p.relative_to(mirror).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in mirror.rglob("*") if p.is_file()}
    remote = _repo_sums(server.id, "/srv/backups/local/.pgbackrest")
    assert "backup/app-db/backup.info" in here and "archive/app-db/archive.info" in here
    # Archiving goes on between the listing and now: every file here is the repository's.
    assert {k: v for k, v in theirs.items() if k in here and not is_info(k)} == \
        {k: v for k, v in here.items() if not is_info(k)}
    assert remote == here
    prom = (Path(ostack["BACKUP_DIR"]) / "metrics" / "ops_backup.prom").read_text()
    assert f'ops_pgbackrest_offsite_last_copy_timestamp_seconds{{env="local",remote="{REMOTE}"}}' in prom
    assert 'ops_pgbackrest_last_base_backup_timestamp_seconds{env="local",service="app-db"}' in prom
    assert 'service=".pgbackrest"' not in prom  # the mirror is no service's backups


def test_a_corrupted_remote_copy_is_caught_and_never_restored(ostack, sftp):
    server, _ = sftp
    if not layout.backups_in(_dir(ostack)):
        assert inv("db.backup", "-s", "app-db", env=ostack, timeout=600).returncode == 0
    name = layout.backups_in(_dir(ostack))[-1].path.name
    target = f"/srv/backups/local/app-db/app/{name}"
    flip = server.exec_run(["sh", "-c", f"printf 'X' | dd of={target} bs=1 seek=200 conv=notrunc"])
    assert flip.exit_code == 0, flip.output
    bad = inv("db.verify", "--offsite", "--latest", "-s", "app-db", "--level", "checksum", env=ostack)
    assert bad.returncode == 1 and "sha256 mismatch" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    entry = next(c for c in manifest.read(_dir(ostack) / f"{name}.json")["offsite"] if c["remote"] == REMOTE)
    assert entry["checked_ok"] is False and entry["checked_level"] == "checksum"
    before = psql(ostack, "app-db", CONTENT_SQL)
    refused = inv("db.restore", "--offsite", "--file", name, "-s", "app-db", "--yes", env=ostack)
    assert refused.returncode == 1 and "sha256 mismatch" in refused.stderr, refused.stderr
    assert psql(ostack, "app-db", CONTENT_SQL) == before  # untouched
    assert not [p for p in (Path(ostack["BACKUP_DIR"]) / ".offsite").rglob("*") if p.is_file()]


def test_restore_from_off_site_and_a_drill_of_the_remote_copy(ostack):
    assert inv("db.backup", "-s", "app-db", env=ostack, timeout=600).returncode == 0
    drill = inv("db.verify", "--offsite", "--latest", "-s", "app-db", "--level", "restore", env=ostack,
                timeout=600)
    assert drill.returncode == 0 and "row counts equal" in drill.stdout, drill.stderr
    original = psql(ostack, "app-db", CONTENT_SQL)
    psql(ostack, "app-db", "DELETE FROM notes WHERE id > 20;")
    r = inv("db.restore", "--offsite", "--latest", "-s", "app-db", "--yes", env=ostack, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "downloaded offsite:/srv/backups/local/app-db/app/" in r.stderr
    assert psql(ostack, "app-db", CONTENT_SQL) == original
    assert not [p for p in (Path(ostack["BACKUP_DIR"]) / ".offsite").rglob("*") if p.is_file()]


def test_a_failed_upload_fails_the_run_and_keeps_the_local_backup(ostack, tmp_path):
    metrics = tmp_path / "ops_backup.prom"
    env = {**ostack, "RCLONE_CONFIG_OFFSITE_PORT": str(free_port()),  # nothing listens there
           "INVOKE_BACKUP_METRICS_FILE": str(metrics)}
    before = len(layout.backups_in(_dir(ostack)))
    r = inv("db.backup", "--cron", "-s", "app-db", env=env, timeout=600)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"off-site copy to {REMOTE} failed, the local backup" in lines[0], lines
    assert f"pgBackRest repository: off-site copy to {REMOTE} failed" in lines[0], lines
    health = json.loads(inv("health", "--json", env=ostack).stdout)["checks"]
    archiving = [c for c in health if c["check"] == "archiving" and c["service"] == "app-db"]
    assert [c["status"] for c in archiving] == ["ok"], archiving  # local archiving goes on
    kept = layout.backups_in(_dir(ostack))
    assert len(kept) == before + 1
    assert manifest.verified_level(manifest.read(kept[-1].manifest_path)) in ("read", "restore")
    assert 'ops_backup_last_run_success{database="app",env="local",service="app-db"} 0.0' \
        in metrics.read_text()


def test_off_site_retention_keeps_the_policy_and_the_newest_complete_copy(ostack, sftp):
    server, _ = sftp
    if not layout.backups_in(_dir(ostack)):
        assert inv("db.backup", "-s", "app-db", env=ostack, timeout=600).returncode == 0
    newest = sorted(n for n in _remote_files(server) if n.endswith(".zst"))[-1]
    # Older copies of other days and months, and the debris of an interrupted upload.
    old = ["20250103T031700Z", "20250214T031700Z", "20250215T031700Z", "20250301T031700Z"]
    script = "; ".join(f"cp {newest}{s} {stamp}.dump.zst{s}"
                       for stamp in old for s in ("", ".sha256", ".json"))
    script += f"; cp {newest} 20250302T031700Z.dump.zst"
    assert server.exec_run(["sh", "-c", f"cd /srv/backups/local/app-db/app && {script}"]).exit_code == 0
    keep = {"INVOKE_BACKUP_OFFSITE_KEEP_LAST": "1", "INVOKE_BACKUP_OFFSITE_KEEP_DAILY": "0",
            "INVOKE_BACKUP_OFFSITE_KEEP_WEEKLY": "0", "INVOKE_BACKUP_OFFSITE_KEEP_MONTHLY": "2"}
    env = {**ostack, **keep}
    dry = inv("db.prune", "--offsite", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "20250302T031700Z.dump.zst (incomplete upload)" in dry.stdout
    # Kept: the newest (last 1, and this month's), and March 2025's newest (monthly 2).
    for stamp in ("20250215T031700Z", "20250214T031700Z", "20250103T031700Z"):
        assert f"{stamp}.dump.zst (retention)" in dry.stdout, dry.stdout
    assert "20250301T031700Z" not in dry.stdout
    assert f"{newest} (" not in dry.stdout
    assert len(_remote_files(server)) >= 3 * 5 + 1  # a dry run deletes nothing
    other = inv("db.prune", "--offsite", "--service", "auth-db", env=env)
    assert other.returncode == 0 and other.stdout.strip() == "nothing to prune", other.stdout
    assert len(_remote_files(server)) >= 3 * 5 + 1  # another service's copies are left alone
    done = inv("db.prune", "--offsite", env=env)
    assert done.returncode == 0, done.stderr
    left = {n.split(".")[0] for n in _remote_files(server)}
    assert left == {newest.split(".")[0], "20250301T031700Z"}
    listed = json.loads(inv("db.list", "--offsite", "--json", env=env).stdout)
    assert all(row["complete"] for row in listed)


def test_bad_off_site_settings_are_refused_in_one_line(ostack):
    for value, fragment in [(":sftp,host=x,pass=y:/p", "named rclone remote"),
                            ("-x:/p", "named rclone remote"), ("offsite:/srv/../etc", "'..' in its path")]:
        r = inv("db.list", "--offsite", env={**ostack, "INVOKE_BACKUP_OFFSITE_REMOTES": value})
        assert r.returncode == 1 and fragment in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert "pass=y" not in r.stderr  # an inline password is never echoed
    none = inv("db.list", "--offsite", env={**ostack, "INVOKE_BACKUP_OFFSITE_REMOTES": ""})
    assert none.returncode == 1 and "no off-site remote configured" in none.stderr
    wrong = inv("db.verify", "--offsite", "--latest", "--remote", "elsewhere", env=ostack)
    assert wrong.returncode == 1 and "not one of the off-site remotes" in wrong.stderr
    assert subprocess.run(["rclone", "version"], capture_output=True).returncode == 0


def _pitr_block() -> str:
    doc = (ROOT / "docs" / "backups.md").read_text()
    return doc.split("<!-- break-glass-pitr:", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]


def test_break_glass_point_in_time_restore_from_the_mirror_as_written(ostack, tmp_path):
    """docs/backups.md's by-hand point-in-time restore, run as written on the mirror
    db.backup keeps (the copy rclone sends off-site), only its names set to this test's:
    pgbackrest alone recovers a server holding the rows committed before the copy."""
    psql(ostack, "app-db", "CREATE TABLE IF NOT EXISTS by_hand (id int); TRUNCATE by_hand; "
                           "INSERT INTO by_hand SELECT generate_series(1, 77);")
    r = inv("db.backup", "-s", "app-db", env={**ostack, "INVOKE_BACKUP_OFFSITE_REMOTES": REMOTE},
            timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    name = f"ops-test-pitr-{secrets.token_hex(3)}"
    block = _pitr_block()
    for var, value in (("REPO", str(Path(ostack["BACKUP_DIR"]) / "local" / ".pgbackrest")),
                       ("NAME", name)):
        block = re.sub(rf"^{var}=\S+", f"{var}={value}", block, count=1, flags=re.M)
    try:
        ran = subprocess.run(["bash", "-c", block], capture_output=True, text=True, cwd=tmp_path,
                             timeout=600)
        assert ran.returncode == 0, ran.stderr[-2000:]
        assert "stanza: app-db" in ran.stdout and "recovered to " in ran.stdout, ran.stdout
        count = subprocess.run(["docker", "exec", name, "psql", "-X", "-At", "-U", "app", "-d", "app",
                                "-c", "SELECT count(*) FROM by_hand"], capture_output=True, text=True)
        assert count.stdout.strip() == "77", count.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", f"{name}-data", f"{name}-repo"], capture_output=True)
    assert not subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"name={name}"],
                              capture_output=True, text=True).stdout.strip()


def _archiving(env) -> dict:
    checks = json.loads(inv("health", "--json", env=env).stdout)["checks"]
    return next(c for c in checks if c["check"] == "archiving" and c["service"] == "app-db")


def test_the_repository_volume_full_fails_archiving_loudly_and_recovers_when_freed(ostack):
    """The repository's volume filled to the last byte: archive-push fails and `inv
    health` says so (exit 1, naming app-db's archiving), while the database keeps taking
    writes; once the space is freed, the next segment is archived and health is green."""
    repo = subprocess.run(["docker", "compose", "--project-name", ostack["COMPOSE_PROJECT_NAME"],
                           "--file", str(ROOT / "compose/compose.yaml"), "ps", "-q", "pgbackrest"],
                          env=ostack, capture_output=True, text=True, check=True).stdout.split()[0]
    filler = "/var/lib/pgbackrest/filler"
    subprocess.run(["docker", "exec", repo, "sh", "-c", f"dd if=/dev/zero of={filler} bs=1M "
                    f"count={REPO_MB} 2>/dev/null; df -k /var/lib/pgbackrest | tail -n 1"],
                   capture_output=True, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            psql(ostack, "app-db", "CREATE TABLE IF NOT EXISTS during_full (x int); "
                                   "INSERT INTO during_full SELECT generate_series(1, 1000); "
                                   "SELECT pg_switch_wal();")
            check = _archiving(ostack)
            if check["status"] == "FAIL":
                break
            assert time.monotonic() < deadline, check
            time.sleep(2)
        assert "archive-push failing" in check["detail"], check
        health = inv("health", env=ostack)
        assert health.returncode == 1 and "archiving" in health.stdout + health.stderr
        assert psql(ostack, "app-db", "SELECT count(*) FROM during_full;").strip() != "0"
    finally:
        subprocess.run(["docker", "exec", repo, "rm", "-f", filler], check=True)
    deadline = time.monotonic() + 120
    while True:  # new WAL wakes the archiver (as the database's own writes would)
        psql(ostack, "app-db", "INSERT INTO during_full VALUES (0); SELECT pg_switch_wal();")
        check = _archiving(ostack)
        if check["status"] == "ok":
            break
        assert time.monotonic() < deadline, check
        time.sleep(3)


def test_dr_drill_stands_the_stack_up_from_the_off_site_copy_and_measures_rto_and_rpo(ostack):
    """dr.drill: a throwaway Compose project restored from the SFTP copy alone (the
    repository's copy, fetched and proven), health-gated; RTO and per-database RPO
    printed; a missed target is exit 1 in one line; nothing of the drill is left."""
    psql(ostack, "app-db", "CREATE TABLE IF NOT EXISTS before_drill (id int); "
                           "INSERT INTO before_drill SELECT generate_series(1, 33);")
    assert inv("db.backup", env=ostack, timeout=600).returncode == 0  # both databases
    strict = {**ostack, "INVOKE_DR_RPO_TARGET": "0.001"}  # no copy is that fresh
    r = inv("dr.drill", "--json", env=strict, timeout=900)
    assert r.returncode == 1 and r.stdout, r.stderr[-3000:]
    result = json.loads(r.stdout)
    assert result["remote"] == REMOTE and 0 < result["rto_s"] < 300, result
    assert {d["service"] for d in result["databases"]} == {"app-db", "auth-db"}
    assert all(d["rpo_s"] is not None and d["rpo_s"] > 0 for d in result["databases"]), result
    assert r.stderr.strip().splitlines()[-1].startswith("error: drill missed its targets: app-db: RPO")
    # The seeds' plan: pending migrations run after the restore (the drill's `up` runs
    # them before the app starts); the restored schema was already up to date.
    assert "migrations: none pending" in r.stderr, r.stderr[-3000:]
    project = result["project"]
    for kind in ("container", "volume", "network"):
        left = subprocess.run(["docker", kind, "ls", *(["-a"] if kind == "container" else []), "-q",
                               "--filter", f"label=com.docker.compose.project={project}"],
                              capture_output=True, text=True).stdout.split()
        assert left == [], (kind, left)
    # The drill's heartbeat is in the source; the source kept serving throughout.
    assert int(psql(ostack, "app-db", "SELECT count(*) FROM ops_dr_heartbeat;").strip()) >= 1
    assert psql(ostack, "app-db", "SELECT count(*) FROM before_drill;").strip() == "33"

    refused = inv("dr.drill", env={**ostack, "INVOKE_BACKUP_OFFSITE_REMOTES": ""})
    assert refused.returncode == 2 and "set backup.offsite.remotes" in refused.stderr
    wrong = inv("dr.drill", "--remote", "elsewhere", env=ostack)
    assert wrong.returncode == 1 and "not one of the off-site remotes" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
