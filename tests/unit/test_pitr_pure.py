"""Point-in-time recovery's pure parts: pgBackRest's info output (captured from 2.45),
target times and the restorable window, which base backup is due, the command lines,
and the certificates both ends are given."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ops.backup import base_schedule
from ops.commands import pgbackrest as br
from ops.errors import OpsError
from ops.facts import pgbackrest as facts

INFO = (Path(__file__).parent.parent / "fixtures" / "pgbackrest" / "info-app-db-2.45.json").read_text()


def test_info_gives_the_base_backups_oldest_first_and_the_archived_wal():
    s = facts.parse_info(INFO, "app-db")
    assert s.ok and s.name == "app-db"
    assert [b.kind for b in s.backups] == ["full", "incr"]
    assert s.backups[0].label == "20261207-143258F" and s.backups[0].size == 30546000
    assert s.backups[0].repo_size == 4055432 and s.backups[0].wal_start == "000000010000000000000003"
    assert s.earliest == datetime.fromtimestamp(1796653985, UTC)
    assert s.newest.label.endswith("I")
    assert (s.wal_min, s.wal_max) == ("000000010000000000000001", "00000001000000000000000B")


def test_a_stanza_not_in_the_output_or_damaged_backups_are_no_starting_point():
    assert facts.parse_info(INFO, "auth-db").status == "missing stanza"
    data = json.loads(INFO)
    data[0]["backup"][0]["error"] = True
    data[0]["status"] = {"code": 2, "message": "no valid backups"}
    s = facts.parse_info(json.dumps(data), "app-db")
    assert [b.kind for b in s.backups] == ["incr"] and not s.ok and s.status == "no valid backups"
    with pytest.raises(ValueError, match="pgbackrest info: not JSON"):
        facts.parse_info("ERROR: [055]", "app-db")


@pytest.mark.parametrize("text, expected", [
    ("2026-12-07T14:03:00Z", datetime(2026, 12, 7, 14, 3, tzinfo=UTC)),
    ("2026-12-07T15:03:00+01:00", datetime(2026, 12, 7, 14, 3, tzinfo=UTC)),
    ("2026-12-07 14:03:00.250z", datetime(2026, 12, 7, 14, 3, 0, 250000, tzinfo=UTC)),
])
def test_target_times_are_rfc3339_with_an_offset(text, expected):
    assert facts.parse_target_time(text) == expected
    assert facts.target_time(expected) == expected.strftime("%Y-%m-%d %H:%M:%S") + \
        (".250" if expected.microsecond else "") + "+00"


@pytest.mark.parametrize("text, message", [
    ("2026-12-07T14:03:00", "give its offset"), ("yesterday", "not an RFC 3339 time"),
    ("", "not an RFC 3339 time"), ("2026-13-01T00:00:00Z", "not an RFC 3339 time"),
])
def test_a_time_without_an_offset_or_not_a_time_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        facts.parse_target_time(text)


def test_the_window_names_both_ends_whatever_is_wrong():
    now = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    earliest, latest = now - timedelta(hours=2), now - timedelta(seconds=20)
    assert facts.window_problem(now - timedelta(hours=1), earliest, latest, now) is None
    span = "restorable from 2026-12-07T13:00:00Z to 2026-12-07T14:59:40Z"
    assert facts.window_problem(now - timedelta(hours=3), earliest, latest, now) == \
        f"2026-12-07T12:00:00Z is before the oldest base backup ({span})"
    assert facts.window_problem(now + timedelta(minutes=1), earliest, latest, now) == \
        f"2026-12-07T15:01:00Z is in the future ({span})"
    assert facts.window_problem(now - timedelta(seconds=5), earliest, latest, now) == \
        f"2026-12-07T14:59:55Z is past the newest archived WAL ({span})"
    assert "no base backup yet" in facts.window_problem(now, None, None, now)


def _stanza(*backups) -> facts.Stanza:
    made = tuple(facts.BaseBackup(f"b{i}", kind, at, at, 0, 0, "", "")
                 for i, (kind, at) in enumerate(backups))
    return facts.Stanza("app-db", "ok", made, None, None)


def test_the_due_base_backup_follows_the_schedule():
    now = datetime(2026, 12, 7, tzinfo=UTC)
    p = base_schedule.Policy(full_every_days=7, diff_every_days=1)
    day = timedelta(days=1)
    assert base_schedule.due(_stanza(), now, p) == "full"
    assert base_schedule.due(_stanza(("full", now - 8 * day)), now, p) == "full"
    assert base_schedule.due(_stanza(("full", now - 3 * day)), now, p) == "diff"
    assert base_schedule.due(_stanza(("full", now - 3 * day), ("diff", now - day / 2)), now, p) == "incr"
    assert base_schedule.due(_stanza(("full", now - 3 * day), ("incr", now - day / 2)), now, p) == "diff"


def test_the_pitr_settings_are_checked():
    assert base_schedule.policy(None) == base_schedule.Policy()
    assert not base_schedule.policy(False).enabled
    assert base_schedule.policy({"retention_full": 4}).retention_full == 4
    for bad, message in (({"full_every_days": "x"}, "full_every_days must be a number"),
                         ({"retention_full": 0}, "retention_full must be a whole number"),
                         ({"keep": 3}, "unknown key"), ("weekly", "must be a mapping")):
        with pytest.raises(OpsError, match=message):
            base_schedule.policy(bad)


def test_the_command_lines_name_the_database_and_refuse_bad_input():
    line = br.backup("app-db", "app", "diff", 2, 7).argv
    assert line[:2] == ["pgbackrest", "--stanza=app-db"] and line[-1] == "backup"
    assert "--pg1-host=app-db" in line and "--pg1-user=app" in line and "--type=diff" in line
    assert "--repo1-retention-full=2" in line
    restore = br.restore("app-db", ("time", "2026-12-07 14:03:00+00")).argv
    assert "--type=time" in restore and "--target=2026-12-07 14:03:00+00" in restore
    assert "--target-action=promote" in restore and not any(a.startswith("--set") for a in restore)
    assert "--set=L1" in br.restore("app-db", ("name", "p"), "L1").argv
    assert "--type=default" in br.restore("app-db", None).argv
    with pytest.raises(ValueError):
        br.backup("app-db", "app", "weekly", 2, 7)
    with pytest.raises(ValueError):
        br.info("app;db")
    with pytest.raises(ValueError):
        br.restore("app-db", ("lsn", "0/1"))
    assert br.POINT_NAME.match("before-migration-2026.12.07") and not br.POINT_NAME.match("a b")


def test_each_end_gets_a_client_and_server_certificate_for_its_names(tmp_path, monkeypatch):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from ops.backup import archive_tls

    monkeypatch.setenv("OPS_TLS_DIR", str(tmp_path / "tls"))
    assert archive_tls.material(tmp_path, "local", [], [], issue=False) is None
    m = archive_tls.material(tmp_path, "local", ["app-db"], ["pgbackrest"])
    env = m.compose_env()
    assert set(env) == set(archive_tls.VARS.values())
    db = x509.load_pem_x509_certificate(env["OPS_PGBACKREST_DB_CERT"].encode())
    assert db.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "pgbackrest-db"
    usages = set(db.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    folder = tmp_path / "tls" / "pgbackrest" / "local"
    assert stat.S_IMODE((folder / "db.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "ca.key").stat().st_mode) == 0o600
    again = archive_tls.material(tmp_path, "local", ["app-db"], ["pgbackrest"])
    assert again.version == m.version  # nothing to renew: the same files
    grown = archive_tls.material(tmp_path, "local", ["app-db", "billing-db"], ["pgbackrest"])
    names = x509.load_pem_x509_certificate(grown.pems["db_cert"].encode()).extensions \
        .get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert {"app-db", "billing-db"} <= set(names) and grown.pems["ca"] == m.pems["ca"]
    assert archive_tls.material(tmp_path, "local", [], [], issue=False).version == grown.version


@pytest.mark.parametrize("out, ok, warn, says", [
    ("on 3 0 -1 0 0 50331648\n77882900000", True, False,
     "last archived 3s ago, 0 waiting, pg_wal 48.0 MiB, 72.5 GiB free"),
    ("on -1 0 -1 0 0 16777216\n1000000000", True, False, "nothing archived yet"),
    # failures before, archived since: healthy
    ("on 140 3 765 0 0 100663296\n77882900000", True, False, "last archived 140s ago"),
    ("on 40 12 2 1 30 100663296\n77882900000", False, False,
     "archive-push failing (12 failures, the last 2s ago)"),
    ("on 2 0 -1 2 20 33554432\n77882900000", True, True, "2 waiting (20s)"),
    ("on 2 0 -1 6 75 100663296\n77882900000", False, False, "archiving lags 75s"),
    ("on 2 0 -1 30 10 503316480\n900000000", False, False, "pg_wal is filling the volume"),
    ("off -1 0 -1 0 0 16777216\n1000000000", False, False, "archive_mode off: WAL is not archived"),
    ("psql: error: connection refused", False, False, "exit 2: psql: error"),
])
def test_the_archiver_verdict(out, ok, warn, says):
    from ops.facts.archiving import archiver_verdict

    verdict = archiver_verdict(0 if ok or "on" in out[:3] else 2, out)
    assert verdict[:2] == (ok, warn) and says in verdict[2], verdict


def test_the_base_backups_verdict_warns_before_it_fails():
    from ops.facts.archiving import base_backups_verdict

    now = datetime.fromtimestamp(1796653985, UTC) + timedelta(hours=1)
    ok, warn, detail = base_backups_verdict(0, INFO, now)
    assert (ok, warn) == (True, False) and "app-db incr" in detail
    ok, warn, detail = base_backups_verdict(0, INFO, now + timedelta(days=3))
    assert (ok, warn) == (True, True) and "newest base backup" in detail
    empty = json.dumps([{**json.loads(INFO)[0], "backup": [], "name": "auth-db"}])
    assert base_backups_verdict(0, empty, now)[:2] == (True, True)
    assert base_backups_verdict(0, "[]", now) == (True, True, "no stanza yet (inv up creates them)")
    assert base_backups_verdict(1, "ERROR: [103]", now)[0] is False


def test_a_stack_certificate_names_each_end_by_its_services_and_their_stack_names(tmp_path, monkeypatch):
    from cryptography import x509

    from ops.backup import archive_tls

    monkeypatch.setenv("OPS_TLS_DIR", str(tmp_path / "tls"))
    m = archive_tls.for_stack(tmp_path, "sandbox", {"app-db": "database", "pgbackrest": "backup-repository",
                                                    "api": "app"}, prefix="opsdemo")

    def names(pem):
        return set(x509.load_pem_x509_certificate(pem.encode()).extensions
                   .get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))

    assert names(m.pems["db_cert"]) == {"pgbackrest-db", "app-db", "opsdemo_app-db"}
    assert names(m.pems["repo_cert"]) == {"pgbackrest-repo", "pgbackrest", "opsdemo_pgbackrest"}


# -- the repository's mirror and off-site copy (repo_mirror, rclone) -----------------------

def test_listing_parsed_and_paths_that_climb_out_refused():
    from ops.backup import repo_mirror as rm

    text = ("backup/app-db/backup.info\t1234\t1765120000.5\n"
            "archive/app-db/15-1/0000000100000000/000000010000000000000003-abc.gz\t99\t1765120001.0\n")
    got = rm.parse_listing(text)
    assert got == {"backup/app-db/backup.info": (1234, 1765120000),
                   "archive/app-db/15-1/0000000100000000/000000010000000000000003-abc.gz": (99, 1765120001)}
    for bad in ("../etc/passwd", "/etc/passwd", "a//b", "a/./b", ".incoming/x.info", "a\nb", ""):
        with pytest.raises(OpsError, match="refused path"):
            rm.checked_path(bad)
    with pytest.raises(OpsError, match="unreadable line"):
        rm.parse_listing("just-a-name\n")


def test_plan_fetches_changed_files_info_first_and_deletes_what_expired():
    from ops.backup import repo_mirror as rm

    theirs = {"archive/a/archive.info": (10, 2), "archive/a/archive.info.copy": (10, 2),
              "archive/a/15-1/seg1.gz": (5, 1), "archive/a/15-1/seg2.gz": (5, 3),
              "backup/a/20261207-000000F/pg_data/x.gz": (7, 1)}
    mine = {"archive/a/archive.info": (9, 1), "archive/a/15-1/seg1.gz": (5, 1),
            "backup/a/20261201-000000F/pg_data/x.gz": (7, 1)}
    fetch, delete = rm.plan(theirs, mine)
    assert fetch == ["archive/a/archive.info", "archive/a/archive.info.copy",
                     "archive/a/15-1/seg2.gz", "backup/a/20261207-000000F/pg_data/x.gz"]
    assert delete == ["backup/a/20261201-000000F/pg_data/x.gz"]
    assert rm.plan(theirs, theirs) == ([], [])


def test_rclone_check_said_in_one_line_and_a_size_only_check_noticed():
    from ops.commands import rclone

    stderr = ("2026/12/07 17:59:53 ERROR : a/x: sizes differ\n"
              "2026/12/07 17:59:53 NOTICE: Local file system at /d: 1 differences found\n"
              "2026/12/07 17:59:53 Failed to check: 1 differences found\n")
    assert rclone.check_error(stderr) == "1 differences found (a/x: sizes differ)"
    assert rclone.hashes_unchecked("NOTICE: sftp://x: 12 hashes could not be checked")
    assert not rclone.hashes_unchecked("NOTICE: 0 differences found")
    assert rclone.check_tree("/m", "r:p", download=True).argv[-3:] == ["--", "/m", "r:p"]
    assert "--download" in rclone.check_tree("/m", "r:p", download=True).argv
    assert "--exclude=*.info" in rclone.copy_tree("/m", "r:p", exclude=("*.info",)).argv


def test_verify_report_read_as_a_problem_only_when_pgbackrest_says_error():
    report = ("2026-12-07 18:30:05.409 P01   INFO: invalid result 15-1/0000000100000000/"
              "000000010000000000000003-576c.gz: [29] raised from local-1 protocol: zlib threw error\n"
              "                                    [FormatError] on retry after 0ms\n"
              "2026-12-07 18:30:06.090 P00   INFO: stanza: app-db\n"
              "stanza: app-db\nstatus: error\n"
              "  archiveId: 15-1, total WAL checked: 9, total valid WAL: 8\n    other: 1\n")
    assert facts.verify_problem(report) == (
        "archiveId: 15-1, total WAL checked: 9, total valid WAL: 8; other: 1; "
        "first: 15-1/0000000100000000/000000010000000000000003-576c.gz")
    assert facts.verify_problem("") is None
    assert facts.verify_problem("stanza: app-db\nstatus: ok\n") is None


# -- dr.drill's targets and verdict (ops.dr.measure) ---------------------------------------

def test_drill_targets_parsed_and_bad_ones_refused():
    from ops.dr import measure

    assert measure.targets(None) == measure.Targets(300.0, 10.0)
    assert measure.targets({"rto_target": "5m", "rpo_target": "10s"}) == measure.Targets(300.0, 10.0)
    assert measure.targets({"rto_target": 90, "rpo_target": "0.5"}) == measure.Targets(90.0, 0.5)
    for bad in ({"rto_target": "soon"}, {"rpo_target": 0}, {"rto_target": "-1m"}, {"rto_target": "9d"}):
        with pytest.raises(OpsError, match=r"dr\.r[tp]o_target"):
            measure.targets(bad)
    with pytest.raises(OpsError, match="dr must be a mapping"):
        measure.targets(["5m"])


def test_drill_verdict_names_each_target_missed():
    from ops.dr import measure

    t = measure.Targets(300, 10)
    ok = measure.Database("app-db", 1000.0, 995.0, False)
    back = measure.Database("auth-db", 1000.0, 900.0, True)  # its heartbeat came back: nothing lost
    late = measure.Database("app-db", 1000.0, 950.0, False)
    none = measure.Database("x-db", 1000.0, None, False)
    assert (ok.rpo_s, back.rpo_s, late.rpo_s, none.rpo_s) == (5.0, 0.0, 50.0, None)
    assert measure.verdict(120, [ok, back], t) == []
    assert measure.verdict(301, [late, none], t) == [
        "RTO 301s is over the target 300s", "app-db: RPO 50.0s is over the target 10s",
        "x-db: the copy replayed no transaction (RPO unknown)"]


def test_a_passed_drill_and_the_repository_copies_are_in_the_metrics(tmp_path):
    from ops.backup import metrics

    root = tmp_path / "local"
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    metrics.record_drill(root, at, 41.5, 3.2)
    metrics.record_repo_copy(root, "offsite:/b", at)
    metrics.record_repo_copy(root, "s3:bucket", at + timedelta(hours=1))
    (root / ".pgbackrest" / "backup" / "app-db").mkdir(parents=True)  # the mirror: no service
    out = tmp_path / "ops_backup.prom"
    metrics.write(out, "local", root)
    text = out.read_text()
    assert f'ops_dr_last_pass_timestamp_seconds{{env="local"}} {at.timestamp()!r}' in text
    assert 'ops_dr_last_rto_seconds{env="local"} 41.5' in text
    assert 'ops_dr_last_rpo_seconds{env="local"} 3.2' in text
    assert 'ops_pgbackrest_offsite_last_copy_timestamp_seconds{env="local",remote="offsite:/b"}' in text
    assert 'remote="s3:bucket"' in text and ".pgbackrest" not in text
