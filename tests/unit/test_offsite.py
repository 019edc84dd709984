"""rclone commands (their argv), its output parsers, and the off-site policy (pure)."""

from datetime import UTC, datetime

import pytest

from ops.backup import offsite
from ops.commands import rclone
from ops.errors import OpsError


def test_argv_is_exact_and_ends_options_before_paths():
    common = ["--low-level-retries=2", "--retries=1", "--stats=0", "--log-level=ERROR"]
    assert rclone.copyto("/b/x.dump.zst", "off:/srv/x.dump.zst").argv == [
        "rclone", "copyto", *common, "--", "/b/x.dump.zst", "off:/srv/x.dump.zst"]
    assert rclone.hashsum("md5", "off:/srv/x").argv == [
        "rclone", "hashsum", *common, "md5", "--", "off:/srv/x"]
    assert rclone.hashsum("sha256", "s3:b/x", download=True).argv[-4:] == [
        "sha256", "--download", "--", "s3:b/x"]
    assert rclone.lsjson("off:/srv/local").argv == ["rclone", "lsjson", *common, "--recursive",
                                               "--files-only", "--", "off:/srv/local"]
    assert rclone.deletefile("off:/a/b").argv[-2:] == ["--", "off:/a/b"]
    with pytest.raises(ValueError):
        rclone.hashsum("crc32", "off:/x")


@pytest.mark.parametrize("remote,joined", [
    ("off:/srv/backups", "off:/srv/backups/local/app-db/app"),
    ("off:/srv/backups/", "off:/srv/backups/local/app-db/app"),
    ("s3:bucket", "s3:bucket/local/app-db/app"),
    ("b2:", "b2:local/app-db/app"),
])
def test_remote_paths_join(remote, joined):
    assert rclone.join(remote, "local", "app-db", "app") == joined


@pytest.mark.parametrize("bad", [":s3,access_key_id=AKIA,secret_access_key=x:bucket", "-x:/p",
                                 "noremote", "off:/srv/../etc", "", "off:/a\nb", "a b:/x"])
def test_only_named_remotes_are_accepted_and_never_echoed(bad):
    with pytest.raises(OpsError) as exc:
        rclone.check_remote(bad)
    assert "secret" not in str(exc.value) and "AKIA" not in str(exc.value)


def test_hashsum_and_lsjson_parsers_on_real_output():
    # As rclone 1.60 printed them against the SFTP test server.
    assert rclone.parse_hashsum("e6136c626f5fefaf6440ca986ac38ab3  f.bin\n") == {
        "f.bin": "e6136c626f5fefaf6440ca986ac38ab3"}
    assert rclone.parse_hashsum("garbage\n\n") == {}
    err = ("2026/12/01 09:47:10 ERROR : f.bin: hash unsupported: hash type not supported\n"
           "2026/12/01 09:47:10 Failed to hashsum with 2 errors: last error was: hash unsupported")
    assert rclone.unsupported_hash(err)
    line = "2026/12/01 09:46:28 ERROR : x: couldn't connect SSH\n"
    assert rclone.error_line(line) == "x: couldn't connect SSH"
    items = rclone.parse_lsjson(
        '[{"Path":"x","Name":"x","Size":-1,"IsDir":true},'
        '{"Path":"x/f.bin","Name":"f.bin","Size":5000000,"ModTime":"2026-12-01T09:46:17Z","IsDir":false}]')
    assert items == [{"path": "x/f.bin", "size": 5000000, "modified": "2026-12-01T09:46:17Z"}]
    with pytest.raises(OpsError, match="unreadable"):
        rclone.parse_lsjson("{not json")


def _items(*names):
    return [{"path": n, "size": 10, "modified": ""} for n in names]


def test_remote_backups_are_complete_only_with_sidecar_and_manifest():
    found = offsite.group("off:/b", "local", _items(
        "app-db/app/20261201T031700Z.dump.zst", "app-db/app/20261201T031700Z.dump.zst.sha256",
        "app-db/app/20261201T031700Z.dump.zst.json", "app-db/app/20261202T031700Z.dump.zst",
        "auth-db/auth/20261130T031700Z.dump", "auth-db/auth/20261130T031700Z.dump.sha256",
        "auth-db/auth/20261130T031700Z.dump.json", "app-db/app/notes.txt", "stray.dump"))
    assert [(b.service, b.name, b.complete) for b in found] == [
        ("app-db", "20261201T031700Z.dump.zst", True), ("app-db", "20261202T031700Z.dump.zst", False),
        ("auth-db", "20261130T031700Z.dump", True)]
    assert found[0].path == "off:/b/local/app-db/app/20261201T031700Z.dump.zst"
    assert found[0].suffixes == ("", ".sha256", ".json") and found[1].suffixes == ("",)
    assert found[0].taken_at == datetime(2026, 12, 1, 3, 17, tzinfo=UTC)


def test_offsite_settings():
    o = offsite.offsite_config({"remotes": "a:/x, b:bucket", "verify": "download",
                                "keep": {"last": 2, "monthly": 24}},
                               {"RCLONE_CONFIG_A_TYPE": "sftp", "APP_DB_PASSWORD": "no"})
    assert o.remotes == ("a:/x", "b:bucket") and o.verify == "download"
    assert (o.policy.last, o.policy.daily, o.policy.monthly) == (2, 7, 24)
    assert dict(o.env) == {"RCLONE_CONFIG_A_TYPE": "sftp"}  # only rclone's own variables
    assert not offsite.offsite_config(None, {}).enabled
    for raw, message in [({"remotes": ["a:/x", "a:/x"]}, "listed twice"),
                         ({"verify": "maybe"}, "hash or download"),
                         ({"keep": {"last": 0}}, "at least 1"), ("x", "must be a mapping")]:
        with pytest.raises(OpsError, match=message):
            offsite.offsite_config(raw, {})
    o = offsite.offsite_config({"remotes": ["a:/x", "b:bucket"]}, {})
    assert offsite.pick_remote(o, None) == "a:/x" and offsite.pick_remote(o, "b") == "b:bucket"
    with pytest.raises(OpsError, match="not one of the off-site remotes"):
        offsite.pick_remote(o, "c")
    assert offsite.remotes_of(o) == ["a:/x", "b:bucket"] and offsite.remotes_of(o, "b") == ["b:bucket"]
    with pytest.raises(OpsError, match="no off-site remote configured"):
        offsite.remotes_of(offsite.offsite_config({}, {}))
