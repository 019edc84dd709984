from pathlib import Path

import pytest

from ops.commands import swarm
from ops.errors import OpsError
from ops.runtime.inventory import Host, inventory, parse_host

ROOT = Path("/proj")


def NO_SSH_CONFIG(alias: str) -> dict:  # noqa: N802 - a constant-like lookup
    return {"hostname": alias}


def test_parse_host_defaults_and_key_path():
    h = parse_host({"name": "mgr1", "address": "10.0.0.5", "role": "manager", "key": "k/id"}, ROOT)
    assert h == Host("mgr1", "10.0.0.5", 22, "root", "/proj/k/id", "manager", None)
    assert h.known_hosts_name == "10.0.0.5"
    assert parse_host({"name": "w", "address": "h.example", "port": 2222}, ROOT).known_hosts_name == \
        "[h.example]:2222"


@pytest.mark.parametrize("raw,message", [
    ({"name": "a;b", "address": "h"}, "invalid host name"),
    ({"name": "ok", "address": "h; rm -rf /"}, "invalid address"),
    ({"name": "ok", "address": "$(id)"}, "invalid address"),
    ({"name": "ok", "address": "h", "port": "22; x"}, "invalid port"),
    ({"name": "ok", "address": "h", "port": 70000}, "invalid port"),
    ({"name": "ok", "address": "h", "user": "root`id`"}, "invalid user"),
    ({"name": "ok", "address": "h", "role": "boss"}, "role must be"),
    ({"name": "ok", "address": "h", "swarm_addr": "1.2.3.4 --force"}, "invalid swarm_addr"),
])
def test_parse_host_rejects_metacharacters(raw, message):
    with pytest.raises(OpsError, match=message):
        parse_host(raw, ROOT)


def test_inventory_needs_exactly_one_manager(tmp_path):
    two = {"hosts": [{"name": "a", "address": "h1", "role": "manager"},
                     {"name": "b", "address": "h2", "role": "manager"}]}
    with pytest.raises(OpsError, match="exactly one host must have role manager"):
        inventory("staging", two, tmp_path, NO_SSH_CONFIG)
    with pytest.raises(OpsError, match="has no hosts"):
        inventory("staging", {}, tmp_path)
    with pytest.raises(OpsError, match=r"run `inv sandbox.up`"):
        inventory("sandbox", {"hosts_file": ".sandbox/hosts.json"}, tmp_path)
    inv = inventory("staging", {"hosts": [{"name": "a", "address": "h1", "role": "manager"},
                                          {"name": "b", "address": "h2"}]}, tmp_path, NO_SSH_CONFIG)
    assert inv.manager.name == "a" and [w.name for w in inv.workers] == ["b"]
    assert inv.known_hosts == tmp_path / "ssh/known_hosts"


def test_ssh_config_alias_supplies_hostname_port_user_and_the_entry_wins(tmp_path):
    import paramiko

    ssh = paramiko.SSHConfig.from_text(
        "Host stg-*\n  HostName 10.1.2.3\n  Port 2200\n  User deploy\n"
        "Host evil\n  HostName 10.0.0.1;id\n")
    inv = inventory("staging", {"hosts": [
        {"name": "m", "address": "stg-m", "role": "manager"},
        {"name": "w", "address": "stg-w", "port": 22, "user": "ops"},
        {"name": "x", "address": "10.9.9.9"}]}, tmp_path, ssh.lookup)
    m, w, x = inv.hosts
    assert (m.endpoint, m.port, m.user, m.known_hosts_name) == ("10.1.2.3", 2200, "deploy",
                                                                "[10.1.2.3]:2200")
    assert m.address == "stg-m"  # Fabric still gets the alias (ProxyJump, IdentityFile)
    assert (w.endpoint, w.port, w.user, w.known_hosts_name) == ("10.1.2.3", 22, "ops", "10.1.2.3")
    assert (x.endpoint, x.port, x.user, x.hostname) == ("10.9.9.9", 22, "root", None)
    with pytest.raises(OpsError, match="invalid HostName"):
        inventory("staging", {"hosts": [{"name": "e", "address": "evil", "role": "manager"}]},
                  tmp_path, ssh.lookup)


def test_swarm_commands_quote_everything():
    assert swarm.init("10.0.0.5") == "docker swarm init --advertise-addr 10.0.0.5"
    token = "SWMTKN-1-abc123-def456"
    assert swarm.join(token, "10.0.0.5") == f"docker swarm join --token {token} 10.0.0.5:2377"
    with pytest.raises(ValueError):
        swarm.join("SWMTKN-1-x; rm -rf /", "10.0.0.5")
    assert swarm.init("a b") == "docker swarm init --advertise-addr 'a b'"


def test_image_references_and_git_tags():
    from ops.commands import image_refs as images

    assert images.reference("ops-example/api", "abc123") == "ops-example/api:abc123"
    assert images.reference("registry.local:5000/team/api", "1.2.3") == \
        "registry.local:5000/team/api:1.2.3"
    for name, tag in [("x;rm -rf /", "1"), ("api", "1 2"), ("api", "$(id)"), ("API", "1")]:
        with pytest.raises(ValueError):
            images.reference(name, tag)
    assert images.tags_from_git("76b4c3204dcc", ["v1.4.0", "nightly", "2.0.0-rc.1"], False) == [
        "76b4c3204dcc", "1.4.0", "2.0.0-rc.1"]
    assert images.tags_from_git("76b4c3204dcc", ["v1.4.0"], "0a1b2c3d") == [
        "76b4c3204dcc-dirty-0a1b2c3d"]
    with pytest.raises(ValueError):
        images.tags_from_git("76b4c3204dcc", [], "x; id")
    with pytest.raises(ValueError):
        images.tags_from_git("HEAD; id", [], False)


def test_lock_commands_quote_and_validate(tmp_path):
    import subprocess

    from ops.commands import deploy_lock as lock

    record = '{"user": "o\'brien; rm -rf /"}'
    line = lock.acquire("opsdemo", record, str(tmp_path))
    assert "'\"'\"'" in line  # the quote inside the JSON is escaped for the remote shell
    first = subprocess.run(["sh", "-c", str(line)], capture_output=True, text=True)
    second = subprocess.run(["sh", "-c", str(line)], capture_output=True, text=True)
    assert (first.returncode, second.returncode) == (0, 1)  # only one creator
    assert (tmp_path / "opsdemo" / "deploy.lock").read_text() == record + "\n"
    assert sorted(p.name for p in (tmp_path / "opsdemo").iterdir()) == ["deploy.lock", "textfile"]
    for bad in ("../x", "a b", "$(id)", ""):
        with pytest.raises(ValueError):
            lock.lock_path(bad)
    with pytest.raises(ValueError):
        lock.release_if("opsdemo", "x; rm -rf /")


def test_stale_reasons():
    from datetime import UTC, datetime, timedelta

    from ops.deploy.lock import stale_reason

    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    fresh = {"host": "laptop", "pid": 42, "since": (now - timedelta(minutes=5)).isoformat()}
    assert stale_reason(fresh, now, here="laptop", alive=lambda p: True) is None
    assert "no longer running" in stale_reason(fresh, now, here="laptop", alive=lambda p: False)
    # another machine's pid says nothing here: only age makes it stale
    assert stale_reason(fresh, now, here="other", alive=lambda p: False) is None
    old = {**fresh, "since": (now - timedelta(hours=3)).isoformat()}
    assert "3.0 h old" in stale_reason(old, now, here="other", alive=lambda p: True)
    assert stale_reason({"raw": "garbage"}, now, here="x") is None  # unreadable: respect it


def test_jump_hosts_are_locked_down_like_the_target(tmp_path, monkeypatch):
    """Fabric builds ProxyJump hosts as Connections that accept any key: every hop gets
    the reject policy and the project's known_hosts (real Fabric objects, no network)."""
    import paramiko

    from ops.runtime.inventory import known_hosts_name
    from ops.runtime.ssh import connection, path

    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(
        "Host bastion\n  HostName 198.51.100.7\n  Port 2022\n"
        "Host inner\n  HostName 10.0.0.9\n  ProxyJump bastion\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    known = tmp_path / "known_hosts"
    known.write_text("[198.51.100.7]:2022 ssh-ed25519 "
                     "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    inv = inventory("staging", {"hosts": [{"name": "m", "address": "inner", "role": "manager"}],
                                "known_hosts": str(known)}, tmp_path)
    hops = path(connection(inv.manager, inv))
    assert [(c.host, c.port) for c in hops] == [("198.51.100.7", 2022), ("10.0.0.9", 22)]
    assert [known_hosts_name(c.host, c.port) for c in hops] == ["[198.51.100.7]:2022", "10.0.0.9"]
    for c in hops:
        assert isinstance(c.client._policy, paramiko.RejectPolicy)
    assert hops[0].client.get_host_keys().lookup("[198.51.100.7]:2022")
    assert inv.manager.known_hosts_name == "10.0.0.9"


def test_delivery_note_never_says_minus_zero():
    from ops.remote.image_transfer import delivery_note

    assert delivery_note(385_000_000, 384_990_000) == "385.0 MB over SSH; the whole image"
    assert delivery_note(2_000_000, 2_000_000) == "2.0 MB over SSH; the whole image"
    assert delivery_note(31_000, 385_031_000) == "0.0 MB over SSH; the node had the other 385 MB"


def test_each_host_runs_every_host_at_once_and_raises_the_first_failure_after_all():
    import threading

    from ops.runtime.fanout import each_host

    hosts = [Host("manager", "10.0.0.1", role="manager"), Host("w1", "10.0.0.2"), Host("w2", "10.0.0.3")]
    together = threading.Barrier(3, timeout=5)  # one host at a time would break it

    def step(h):
        together.wait()
        return h.address

    assert each_host(hosts, step) == {"manager": "10.0.0.1", "w1": "10.0.0.2", "w2": "10.0.0.3"}
    finished = []

    def failing(h):
        together.wait()
        if h.name != "manager":
            raise OpsError(f"{h.name}: docker load failed")
        finished.append(h.name)

    with pytest.raises(OpsError, match="^w1: docker load failed$"):
        each_host(hosts, failing)
    assert finished == ["manager"]  # the others ran to their end




CTRL_C = """
import signal, threading
from ops.runtime.fanout import each_host
from ops.runtime.inventory import Host
signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal delivers it
started = threading.Barrier(3)
def step(host):
    started.wait()
    threading.Event().wait(30)  # a long transfer
def report():
    started.wait()
    print("waiting", flush=True)
threading.Thread(target=report, daemon=True).start()
each_host([Host("a", "10.0.0.1"), Host("b", "10.0.0.2")], step)
"""


def test_ctrl_c_ends_each_host_at_once_while_its_steps_still_run():
    """A transfer that takes minutes holds up neither Ctrl-C nor the exit after it."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", CTRL_C], cwd=Path(__file__).parents[2],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "waiting"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)  # the steps wait 30 s: only an exit that does not wait returns
    finally:
        proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr.read()


def test_an_unreachable_host_is_named_with_what_to_do():
    from ops.runtime.inventory import Host
    from ops.runtime.ssh import unreachable

    worker = Host("worker", "10.0.0.7", port=2222, user="deploy", role="worker")
    line = unreachable(worker, "staging", "No existing session")
    assert line.startswith("worker (deploy@10.0.0.7:2222) is unreachable over SSH "
                           "(No existing session): check that it is up")
    assert "`ssh -p 2222 deploy@10.0.0.7`" in line and "drain" in line and "staging inventory" in line
    manager = Host("manager", "10.0.0.5", role="manager")
    assert "nothing in staging can change until it does" in unreachable(manager, "staging", "x")
    assert "\n" not in line


@pytest.mark.parametrize(("url", "message"), [
    ("http://s.example.com", "plain HTTP; the gateway serves HTTPS only"),
    ("https://s.example.com/path", "invalid url"),
    ("https://s.example.com;id", "invalid url"),
])
def test_the_public_url_is_https(url, message):
    from ops.runtime.inventory import parse_url

    with pytest.raises(OpsError, match=message):
        parse_url("staging", url)
    assert parse_url("staging", "https://s.example.com:8443/") == "https://s.example.com:8443"
