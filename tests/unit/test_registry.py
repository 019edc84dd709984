"""Registry delivery, pure parts: registry names of images, the login/pull lines a node
runs, the settings (validated, password from the environment or a file), and how a
color's stack is deployed with or without a registry."""

from __future__ import annotations

import shlex

import pytest

from ops.commands import deploy as cmd
from ops.commands import registry as reg_cmd
from ops.errors import OpsError
from ops.remote.registry import Registry, parse_registry


@pytest.mark.parametrize("name, expected", [
    ("ops-example/api", "reg.example.com:5000/ops-example/api"),
    ("api", "reg.example.com:5000/api"),
    ("ghcr.io/acme/api", "reg.example.com:5000/acme/api"),  # its own registry part replaced
    ("localhost/api", "reg.example.com:5000/api"),
    ("127.0.0.1:5001/team/api", "reg.example.com:5000/team/api"),
])
def test_registry_name_keeps_the_path_and_replaces_any_registry(name, expected):
    assert reg_cmd.repository("reg.example.com:5000", name) == expected


@pytest.mark.parametrize("server", ["reg.example.com", "127.0.0.1:5000", "localhost:5000",
                                    "[::1]:5000", "registry-1.internal"])
def test_valid_servers(server):
    assert reg_cmd.check_server(server) == server


@pytest.mark.parametrize("server", ["", "reg.example.com/path", "reg;rm -rf /", "http://reg",
                                    "reg:0", "reg:70000", "-reg", "reg .com", "$(id)"])
def test_bad_servers_are_refused(server):
    with pytest.raises(ValueError, match="registry"):
        reg_cmd.check_server(server)


def test_login_takes_the_password_on_stdin_and_quotes_everything():
    line = reg_cmd.login("127.0.0.1:5000", "deploy")
    assert shlex.split(line)[:6] == ["docker", "login", "--username", "deploy",
                                     "--password-stdin", "127.0.0.1:5000"]
    with pytest.raises(ValueError):
        reg_cmd.login("127.0.0.1:5000", "bob;id")


def test_pull_needs_a_tagged_reference():
    assert shlex.split(reg_cmd.pull("127.0.0.1:5000/ops/api:v1"))[:4] == [
        "docker", "pull", "--quiet", "127.0.0.1:5000/ops/api:v1"]
    for bad in ("127.0.0.1:5000/ops/api", "127.0.0.1:5000/ops/api:v1;id"):
        with pytest.raises(ValueError):
            reg_cmd.pull(bad)


def test_registry_ref_of_a_local_image():
    reg = Registry("127.0.0.1:5000")
    assert reg.ref("ops-example/api:abc1234") == "127.0.0.1:5000/ops-example/api:abc1234"
    assert not reg.login
    with pytest.raises(ValueError):
        reg.ref("ops-example/api:bad tag")


def test_settings_string_form_and_no_registry(tmp_path):
    assert parse_registry("staging", None, tmp_path, {}) is None
    reg = parse_registry("staging", "reg.example.com", tmp_path, {})
    assert reg == Registry("reg.example.com") and not reg.login


def test_password_from_env_file_wins_over_password_file(tmp_path, monkeypatch):
    monkeypatch.delenv("REGISTRY_PASSWORD", raising=False)
    (tmp_path / "pw").write_text("from-file\n")
    raw = {"server": "reg.example.com", "user": "deploy", "password_file": "pw"}
    assert parse_registry("staging", raw, tmp_path, {}).password == "from-file"
    reg = parse_registry("staging", raw, tmp_path, {"REGISTRY_PASSWORD": "from-env-file"})
    assert reg.password == "from-env-file" and reg.login
    assert "from-env-file" not in repr(reg)  # never in a log line or a traceback


@pytest.mark.parametrize("raw, message", [
    ({"server": "reg.example.com", "user": "deploy"}, "needs REGISTRY_PASSWORD"),
    ({"server": "reg.example.com", "password_file": "pw"}, "needs registry.user"),
    ({"server": "reg.example.com", "user": "deploy", "password_file": "missing"},
     "password_file: No such file"),
    ({"server": "reg.example.com/x"}, "invalid registry server"),
    ({"server": "reg.example.com", "user": "a b", "password_file": "pw"}, "invalid registry user"),
    ({"server": "reg.example.com", "token": "x"}, "unknown registry key"),
    (["reg.example.com"], "host\\[:port\\] or a mapping"),
])
def test_bad_settings_are_refused_with_one_line(tmp_path, monkeypatch, raw, message):
    monkeypatch.delenv("REGISTRY_PASSWORD", raising=False)
    (tmp_path / "pw").write_text("pw\n")
    with pytest.raises(OpsError, match=message) as err:
        parse_registry("staging", raw, tmp_path, {})
    assert "\n" not in str(err.value)


def test_color_stack_pins_the_registry_digest_and_forwards_the_login():
    line = cmd.stack_deploy("/srv/rel/green.json", "opsdemo", False, "always", True)
    assert "--resolve-image always --with-registry-auth" in line
    plain = cmd.stack_deploy("/srv/rel/green.json", "opsdemo", False)
    assert "--resolve-image never" in plain and "registry-auth" not in plain
    with pytest.raises(ValueError):
        cmd.stack_deploy("/srv/rel/green.json", "opsdemo", False, "changed; id")
