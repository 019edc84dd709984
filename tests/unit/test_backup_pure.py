import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.backup import layout, manifest, retention
from ops.backup.db_lock import Busy, DbLock
from ops.commands import pg
from ops.errors import OpsError


def test_pg_dump_argv_with_snapshot():
    assert pg.pg_dump("app", "app", "00000004-00000040-1").argv == [
        "pg_dump", "-w", "-U", "app", "-d", "app", "--format=custom", "--snapshot=00000004-00000040-1"]
    assert pg.pg_dump("u", "d", compress=0).argv[-1] == "--compress=0"


@pytest.mark.parametrize("bad", ["a b", "x;drop", "$(id)", "../x", "", "a" * 64])
def test_db_names_are_validated(bad):
    with pytest.raises(ValueError):
        pg.pg_dump("u", bad)


def test_snapshot_ids_are_validated():
    with pytest.raises(ValueError):
        pg.pg_dump("u", "d", "1; DROP TABLE x")


def test_restore_argv_is_all_or_nothing():
    argv = pg.pg_restore_into("drill", "app").argv
    assert "--exit-on-error" in argv and "--single-transaction" in argv
    assert pg.pg_restore_read_all().argv == ["pg_restore", "--file=/dev/null"]


def test_parse_tagged_session_output():
    out = ("SNAPSHOT\t00000004-0000003F-1\nVERSION\t15.18\nCOUNT\tpublic.items\t5000\n"
           "COUNT\tbilling.Invoices\t300\nREADY\n")
    assert pg.parse_tagged(out) == {"SNAPSHOT": "00000004-0000003F-1", "VERSION": "15.18",
                                    "COUNT": {"public.items": 5000, "billing.Invoices": 300},
                                    "READY": True}
    assert "READY" not in pg.parse_tagged("SNAPSHOT\tx\n")


def test_layout_paths_and_stamps(tmp_path):
    when = datetime(2026, 3, 1, 2, 3, 4, tzinfo=UTC)
    d = layout.db_dir(tmp_path, "local", "app-db", "app")
    b = layout.new_backup(d, when)
    assert b.path == tmp_path / "local/app-db/app/20260301T020304Z.dump"
    assert b.manifest_path.name == "20260301T020304Z.dump.json"
    assert b.checksum_path.name == "20260301T020304Z.dump.sha256"
    assert (b.service, b.db, b.taken_at) == ("app-db", "app", when)


@pytest.mark.parametrize("part", ["..", ".", "a/b", "../../etc", "x y", "", "a;b", "$(id)"])
def test_layout_refuses_path_tricks(tmp_path, part):
    with pytest.raises(OpsError, match="invalid"):
        layout.db_dir(tmp_path, "local", part, "app")


def test_only_backups_with_a_manifest_count(tmp_path):
    d = tmp_path / "local/app-db/app"
    d.mkdir(parents=True)
    for name in ("20260101T000000Z.dump", "20260102T000000Z.dump", "20260103T000000Z.dump.partial"):
        (d / name).write_bytes(b"x")
    (d / "20260101T000000Z.dump.json").write_text("{}")
    (d / "20260102T000000Z.dump.sha256").write_text("x")
    assert [b.path.name for b in layout.backups_in(d)] == ["20260101T000000Z.dump"]
    assert sorted(p.name for p in layout.leftovers(d)) == [
        "20260102T000000Z.dump", "20260102T000000Z.dump.sha256", "20260103T000000Z.dump.partial"]


def test_resolve_file_stays_under_dest(tmp_path):
    dest = tmp_path / "backups"
    d = dest / "local/app-db/app"
    d.mkdir(parents=True)
    (d / "20260101T000000Z.dump").write_bytes(b"x")
    assert layout.resolve_file(dest, str(d / "20260101T000000Z.dump")).db == "app"
    outside = tmp_path / "20260101T000000Z.dump"
    outside.write_bytes(b"x")
    with pytest.raises(OpsError, match="not under the backup directory"):
        layout.resolve_file(dest, str(outside))
    with pytest.raises(OpsError, match="not under the backup directory"):
        layout.resolve_file(dest, str(d / "../../../../20260101T000000Z.dump"))
    with pytest.raises(OpsError, match="not a backup file"):
        layout.resolve_file(dest, str(d / "20260101T000000Z.dump.json"))


def test_checksum_line_roundtrip_and_malformed():
    sha = "a" * 64
    assert manifest.parse_checksum_line(manifest.checksum_line(sha, "f.dump")) == (sha, "f.dump")
    with pytest.raises(OpsError, match="malformed"):
        manifest.parse_checksum_line("nope")


def test_manifest_verification_state(tmp_path):
    p = tmp_path / "m.json"
    manifest.write(p, {"format": 1, "verifications": []})
    assert manifest.verified_level(manifest.read(p)) is None
    manifest.record_verification(p, {"level": "read", "ok": True})
    manifest.record_verification(p, {"level": "restore", "ok": True})
    assert manifest.verified_level(manifest.read(p)) == "restore"
    manifest.record_verification(p, {"level": "checksum", "ok": False})
    data = manifest.read(p)
    assert manifest.verified_level(data) is None and manifest.failed(data)
    p.write_text(json.dumps({"format": 99}))
    with pytest.raises(OpsError, match="not a backup manifest"):
        manifest.read(p)


def test_lock_is_exclusive_and_names_the_holder(tmp_path):
    with DbLock(tmp_path, "backup of app-db/app"):
        with pytest.raises(Busy, match=r"locked by another run: pid \d+ on "):
            with DbLock(tmp_path, "backup of app-db/app"):
                pass
    with DbLock(tmp_path, "again"):  # released on exit
        pass


# -- retention -----------------------------------------------------------------------
def items(times, verified=()):
    return [retention.Item(t.isoformat(), t, t in verified) for t in times]


def test_retention_keeps_last_n_and_periods():
    base = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    times = [base - timedelta(hours=12 * i) for i in range(60)]  # two a day for 30 days
    policy = retention.Policy(last=3, daily=5, weekly=3, monthly=2)
    kept = retention.keep(items(times, verified=times), policy)
    assert {t.isoformat() for t in times[:3]} <= kept
    days = {datetime.fromisoformat(k).date() for k in kept}
    assert len(days) >= 5
    assert len(kept) < len(times)


def test_retention_never_deletes_newest_verified():
    base = datetime(2026, 11, 22, tzinfo=UTC)
    times = [base - timedelta(days=i) for i in range(10)]
    old_verified = times[9]
    policy = retention.Policy(last=1, daily=0, weekly=0, monthly=0)
    doomed = retention.to_delete(items(times, verified=[old_verified]), policy)
    assert old_verified.isoformat() not in doomed
    assert times[0].isoformat() not in doomed


@pytest.mark.parametrize("bad", [{"last": 0}, {"daily": -1}, {"weekly": 1.5}])
def test_retention_policy_validation(bad):
    with pytest.raises(ValueError):
        retention.Policy(**bad)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1),
                             timezones=st.just(UTC)), min_size=1, max_size=60, unique=True),
       st.integers(1, 10), st.integers(0, 10), st.integers(0, 6), st.integers(0, 12),
       st.data())
def test_retention_properties(times, last, daily, weekly, monthly, data):
    verified = set(data.draw(st.lists(st.sampled_from(times), max_size=len(times))))
    its = items(times, verified)
    policy = retention.Policy(last, daily, weekly, monthly)
    kept = retention.keep(its, policy)
    doomed = retention.to_delete(its, policy)
    assert set(doomed).isdisjoint(kept) and len(doomed) + len(kept) == len(its)
    ordered = sorted(times, reverse=True)
    assert ordered[0].isoformat() in kept  # the newest backup always stays
    assert {t.isoformat() for t in ordered[:last]} <= kept
    if verified:
        assert max(verified).isoformat() in kept
    # never more kept than the policy allows (+1 for the protected verified one)
    assert len(kept) <= last + daily + weekly + monthly + 1


@pytest.mark.parametrize("env,yes,confirm,tty,expected", [
    ("local", True, None, False, "none"),
    ("local", False, None, True, "ask"),
    ("local", False, "app", False, "none"),
    ("staging", True, None, True, "type"),  # --yes alone is not enough outside local
    ("staging", False, "app", False, "none"),
    ("staging", True, "app", False, "none"),
])
def test_restore_confirmation(env, yes, confirm, tty, expected):
    from ops.backup.restore import confirmation

    assert confirmation(env, "app", yes, confirm, tty) == expected


@pytest.mark.parametrize("env,yes,confirm,tty,message", [
    ("local", False, None, False, "refusing without --yes"),
    ("staging", True, None, False, "pass --confirm app"),
    ("staging", False, "ap", True, "does not match"),
])
def test_restore_confirmation_refusals(env, yes, confirm, tty, message):
    from ops.backup.restore import confirmation

    with pytest.raises(OpsError, match=message):
        confirmation(env, "app", yes, confirm, tty)


def test_compare_counts_names_every_difference():
    from ops.backup.verify import compare_counts

    assert compare_counts({"a": 1, "b": 2}, {"a": 1, "b": 2}) == []
    assert compare_counts({"a": 1, "b": 2, "c": 0}, {"a": 1, "b": 3, "d": 5}) == [
        "b: 3 rows, manifest says 2", "c: missing after restore", "d: not in the manifest"]


def test_metrics_render_is_prometheus_text():
    from ops.backup.metrics import render

    text = render([("ops_backup_count", {"env": "local", "service": "app-db", "database": 'we"ird'}, 3),
                   ("ops_backup_last_size_bytes", {"env": "local", "service": "s", "database": "d"},
                    1763845000123)])
    lines = text.splitlines()
    assert "# TYPE ops_backup_count gauge" in lines
    assert 'ops_backup_count{database="we\\"ird",env="local",service="app-db"} 3.0' in lines
    assert 'ops_backup_last_size_bytes{database="d",env="local",service="s"} 1763845000123.0' in lines


def test_schedule_line_and_merge():
    from pathlib import Path

    from ops.backup import schedule

    line = schedule.cron_line("17 3 * * *", Path("/srv/my ops"), "local")
    assert line == "17 3 * * * '/srv/my ops/scripts/backup-cron' --env local # ops-toolkit backup env=local"
    merged = schedule.merged("MAILTO=x\n5 1 * * * old # ops-toolkit backup env=local\n", line, "local")
    assert merged == f"MAILTO=x\n{line}\n"
    for bad in ("* * * *", "* * * * * rm", "1 2 3 4 $(id)", "@reboot"):
        with pytest.raises(OpsError, match="invalid cron schedule"):
            schedule.check_schedule(bad)


def test_backup_services_from_roles():
    from ops.backup.targets import backup_services

    roles = {"app-db": {"ops.role": "database"}, "auth-db": {"ops.role": "database"},
             "old-db": {"ops.role": "database", "ops.backup": "false"}, "redis": {"ops.role": "cache"}}
    assert backup_services(roles) == ["app-db", "auth-db"]
    assert backup_services(roles, ["old-db"]) == ["old-db"]  # named: taken even if opted out
    with pytest.raises(OpsError, match="redis is not a database service"):
        backup_services(roles, ["redis"])
    with pytest.raises(OpsError, match=r"unknown service 'nope' \(known: app-db, auth-db"):
        backup_services(roles, ["nope"])


class _Site:
    """A site whose auth-db cannot be reached: discovery goes on past it."""
    env = "local"

    def roles(self):
        return {"app-db": {"ops.role": "database"}, "auth-db": {"ops.role": "database"}}

    def default_db(self, service):
        return "auth"

    def locate(self, service):
        raise OpsError(f"{service}: no container")


def test_discovery_reports_every_unreachable_service_with_its_databases():
    from ops.backup.targets import discover

    found, unreachable = discover(_Site(), known=lambda s: ["app", "extra"] if s == "app-db" else [])
    assert found == []
    assert [(u.service, u.dbs) for u in unreachable] == [("app-db", ("app", "extra")),
                                                         ("auth-db", ("auth",))]
    assert str(unreachable[1].error) == "auth-db: no container"
    _, named = discover(_Site(), ["auth-db"], db="other")
    assert named[0].dbs == ("other",)


@pytest.mark.parametrize("configured,env,expected", [
    ("", "local", "/b/metrics/ops_backup.prom"),
    ("", "sandbox", "/b/metrics/ops_backup_sandbox.prom"),
    ("default", "staging", "/b/metrics/ops_backup_staging.prom"),
    ("/var/lib/node/x.prom", "local", "/var/lib/node/x.prom"),
    ("m/x.prom", "prod", "/root/m/x_prod.prom"),
    ("none", "sandbox", None),
])
def test_each_environment_has_its_own_metrics_file(configured, env, expected):
    from pathlib import Path

    from ops.backup.service import metrics_path

    got = metrics_path(configured, Path("/b"), Path("/root"), env)
    assert (str(got) if got else None) == expected


def test_stages_name_the_program_they_run():
    from ops.containers import Container, Stage
    from ops.platforms.swarm.backup_site import Throwaway

    c = Container("abc123")
    assert c.exec(["pg_dump", "-U", "app"]).argv == ["docker", "exec", "abc123", "pg_dump", "-U", "app"]
    assert c.exec(["psql"], stdin=True).program == "psql"
    assert Stage(["zstd", "-q"]).program == "zstd"
    check = Throwaway("ops-local/postgres:15").exec(["pg_restore", "--file=/dev/null"], stdin=True)
    assert check.argv == ["docker", "run", "--rm", "-i", "--network", "none", "--label",
                          "ops.role=backup-check", "--entrypoint", "pg_restore",
                          "ops-local/postgres:15", "--file=/dev/null"]
    assert check.program == "docker"


def test_the_managers_lock_refuses_a_second_holder_and_goes_with_its_holder(tmp_path):
    """flock(1) held by a command that lives as long as the block (here on this machine;
    on a cluster the same command runs on the manager over SSH)."""
    import os

    from ops.backup.db_lock import Busy
    from ops.platforms.swarm.backup_site import manager_lock
    from ops.runtime.runner import LOCAL as HERE

    with manager_lock(HERE, str(tmp_path / "locks"), "app-db.app", "backup of app-db/app"):
        with pytest.raises(Busy) as exc:
            with manager_lock(HERE, str(tmp_path / "locks"), "app-db.app", "backup of app-db/app"):
                pass
        assert exc.value.code == 75 and f"pid {os.getpid()}" in str(exc.value)
        with manager_lock(HERE, str(tmp_path / "locks"), "auth-db.auth", "other"):
            pass  # another database: its own lock
    with manager_lock(HERE, str(tmp_path / "locks"), "app-db.app", "backup of app-db/app"):
        pass  # released with the block
