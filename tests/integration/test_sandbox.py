"""Sandbox hosts over real SSH (sshd + dockerd containers): a 2-node Swarm, host keys
verified (unknown and changed keys refused), hosts.trust, idempotent swarm.init."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from .conftest import ROOT, SANDBOX, SANDBOX_PROJECT, sandbox_inv

pytestmark = pytest.mark.integration

NAME = SANDBOX


def inv(*args, project_root=None, **kw):
    return sandbox_inv(*args, project_root=project_root, **kw)


def test_sandbox_is_a_two_node_swarm(sandbox):
    lines = [ln.split() for ln in sandbox.stdout.splitlines() if ln.startswith(NAME)]
    assert sorted(lines) == [[f"{NAME}-manager", "Ready", "Leader"],
                             [f"{NAME}-worker", "Ready", "worker"]]
    key = SANDBOX_PROJECT[0] / ".sandbox" / "id_ed25519"
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_swarm_init_is_idempotent_over_ssh(sandbox):
    again = inv("swarm.init", "--env", "sandbox")
    assert again.returncode == 0, again.stderr
    assert "initialised" not in again.stderr and "joined" not in again.stderr
    assert again.stdout.count("Ready") == 2


@pytest.fixture
def known_hosts(sandbox):
    path = SANDBOX_PROJECT[0] / ".sandbox" / "known_hosts"
    saved = path.read_text()
    yield path
    path.write_text(saved)


def test_unknown_host_key_is_refused_then_trusted(known_hosts):
    known_hosts.write_text("")
    refused = inv("swarm.init", "--env", "sandbox")
    assert refused.returncode == 1
    assert "unknown host key" in refused.stderr and "inv hosts.trust --env sandbox" in refused.stderr
    assert "Traceback" not in refused.stderr
    no_tty = inv("hosts.trust", "--env", "sandbox", input="")
    assert no_tty.returncode == 1 and "refusing without --yes" in no_tty.stderr
    assert "SHA256:" in no_tty.stdout  # the fingerprint is shown before anything is recorded
    assert known_hosts.read_text() == ""
    trusted = inv("hosts.trust", "--env", "sandbox", "--yes")
    assert trusted.returncode == 0 and trusted.stdout.count("recorded in") == 2
    assert inv("swarm.init", "--env", "sandbox").returncode == 0


def test_changed_host_key_is_refused(known_hosts):
    lines = known_hosts.read_text().splitlines()
    manager, worker = lines[0].split(), lines[1].split()
    known_hosts.write_text(" ".join([manager[0], *worker[1:3]]) + "\n" + lines[1] + "\n")
    refused = inv("swarm.init", "--env", "sandbox")
    assert refused.returncode == 1 and "host key CHANGED" in refused.stderr
    kept = inv("hosts.trust", "--env", "sandbox", "--yes")
    assert kept.returncode == 1 and "not replacing it" in kept.stderr


def test_ssh_config_aliases_and_proxyjump_are_honoured(sandbox, tmp_path):
    """Hosts named by ~/.ssh/config aliases only: HostName, Port, User and IdentityFile
    come from there; the manager is reached through the worker (ProxyJump) at its
    sandbox-network address. known_hosts names the hosts really reached, jump host
    included, and a jump host with an unknown key is refused."""
    sandbox_dir = SANDBOX_PROJECT[0] / ".sandbox"
    real = {h["role"]: h for h in json.loads((sandbox_dir / "hosts.json").read_text())["hosts"]}
    project, home = tmp_path / "p", tmp_path / "home"
    shutil.copytree(ROOT / "compose", project / "compose", ignore=shutil.ignore_patterns("wheels"))
    (project / ".sandbox").mkdir()
    (home / ".ssh").mkdir(parents=True)
    key = sandbox_dir / "id_ed25519"
    worker, manager_ip = real["worker"], real["manager"]["swarm_addr"]
    (home / ".ssh" / "config").write_text(
        f"Host stg-worker\n  HostName 127.0.0.1\n  Port {worker['port']}\n  User root\n"
        f"  IdentityFile {key}\n"
        f"Host stg-manager\n  HostName {manager_ip}\n  User root\n  IdentityFile {key}\n"
        f"  ProxyJump stg-worker\n")
    aliases = [{"name": h["name"], "address": f"stg-{h['name']}", "role": h["role"],
                "swarm_addr": h["swarm_addr"]} for h in real.values()]
    (project / ".sandbox" / "hosts.json").write_text(json.dumps({"hosts": aliases}))
    known = project / ".sandbox" / "known_hosts"
    as_user = {"HOME": str(home)}

    def run(*args):
        return inv(*args, "--env", "sandbox", project_root=project, extra_env=as_user)

    trusted = run("hosts.trust", "--yes")
    assert trusted.returncode == 0, trusted.stderr
    assert "manager via stg-worker" in trusted.stdout  # the jump host was shown first
    recorded = sorted(line.split()[0] for line in known.read_text().splitlines())
    assert recorded == sorted([f"[127.0.0.1]:{worker['port']}", manager_ip])
    nodes = run("swarm.init")
    assert nodes.returncode == 0, nodes.stderr
    assert nodes.stdout.count("Ready") == 2
    # Only the manager's own key known: the jump host on the way is refused.
    known.write_text("".join(line + "\n" for line in known.read_text().splitlines()
                             if line.startswith(manager_ip)))
    refused = run("swarm.init")
    assert refused.returncode == 1, refused.stderr
    assert f"manager ([127.0.0.1]:{worker['port']}): unknown host key" in refused.stderr
    # Without the ssh config the alias means nothing: one clear line, no traceback.
    (home / ".ssh" / "config").unlink()
    lost = run("swarm.init")
    assert lost.returncode == 1, lost.stderr
    assert "manager (root@stg-manager:22) is unreachable over SSH (cannot connect: " in lost.stderr
    assert "Traceback" not in refused.stderr + lost.stderr


def test_provision_is_a_no_op_where_docker_runs(sandbox):
    r = inv("hosts.provision", "--env", "sandbox")
    assert r.returncode == 0 and r.stdout.count("present") == 2


def test_bad_inventory_is_refused_before_connecting(sandbox, tmp_path):
    project = tmp_path / "p"
    shutil.copytree(ROOT / "compose", project / "compose", ignore=shutil.ignore_patterns("wheels"))
    (project / ".sandbox").mkdir()
    (project / ".sandbox" / "hosts.json").write_text(
        '[{"name": "manager", "address": "127.0.0.1; touch /tmp/ops-pwned", "role": "manager"}]')
    r = inv("swarm.init", "--env", "sandbox", project_root=project)
    assert r.returncode == 1 and "invalid address" in r.stderr
    assert not os.path.exists("/tmp/ops-pwned")


def test_images_reach_every_node_over_ssh_once(sandbox, engine):
    from ops.base_images import BASE

    first = inv("images.deliver", "--env", "sandbox", "--image", BASE, timeout=600)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("1 image(s) sent") == 2 and "over SSH" in first.stderr
    for role in ("manager", "worker"):
        node = engine.containers.get(f"{NAME}-{role}")
        code, _ = node.exec_run(["docker", "image", "inspect", BASE])
        assert code == 0  # really loaded on the node
    again = inv("images.deliver", "--env", "sandbox", "--image", BASE)
    assert again.returncode == 0 and again.stdout.count("1 already present") == 2
    bad = inv("images.deliver", "--env", "sandbox", "--image", "x;touch /tmp/ops-pwned:1")
    assert bad.returncode == 1 and "invalid image name" in bad.stderr


HOLDER = """
import sys, time
from ops.runtime.ssh import open_checked
from ops.runtime.inventory import inventory
from ops.deploy.lock import DeployLock
from ops.runtime.runner import SshRunner
root = __import__("pathlib").Path(sys.argv[1])
inv = inventory("sandbox", {"hosts_file": ".sandbox/hosts.json",
                            "known_hosts": ".sandbox/known_hosts"}, root)
with open_checked(inv.manager, inv) as conn, DeployLock(SshRunner(conn, "manager"), "opsdemo", tag="v-test"):
    print("LOCKED", flush=True)
    time.sleep(120)
"""


def _hold_lock():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(SANDBOX_PROJECT[0])], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OPS_SANDBOX": NAME})
    assert proc.stdout.readline().strip() == "LOCKED", proc.stderr.read()
    return proc


def test_deploy_lock_refuses_second_holder_and_frees_on_sigterm(sandbox):
    import signal

    proc = _hold_lock()
    try:
        status = inv("deploy.status", "--env", "sandbox")
        assert status.returncode == 0 and "locked by" in status.stdout and "v-test" in status.stdout
        assert "STALE" not in status.stdout
        data = __import__("json").loads(inv("deploy.status", "--env", "sandbox", "--json").stdout)
        assert data["lock"]["pid"] == proc.pid and "token" not in data["lock"]
        # A second holder is refused, naming the first.
        second = _hold_lock_expect_refusal()
        assert second.returncode == 1 and f"pid {proc.pid}" in second.stderr
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert "deploy lock released" in proc.stderr.read()
    finally:
        proc.kill()
    after = inv("deploy.status", "--env", "sandbox")
    assert "not locked" in after.stdout


def _hold_lock_expect_refusal():
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", HOLDER, str(SANDBOX_PROJECT[0])], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OPS_SANDBOX": NAME})


def test_deploy_lock_left_by_kill_9_is_stale_and_taken_over(sandbox):
    import signal

    proc = _hold_lock()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = inv("deploy.status", "--env", "sandbox")
    assert "STALE" in status.stdout and "no longer running" in status.stdout
    again = _hold_lock()  # takes it over with a warning, then holds it
    try:
        status = inv("deploy.status", "--env", "sandbox")
        assert f"pid {again.pid}" in status.stdout and "STALE" not in status.stdout
    finally:
        again.kill()
        again.wait()
    unlocked = inv("deploy.unlock", "--env", "sandbox")
    assert unlocked.returncode == 0 and "removed the lock" in unlocked.stdout
    assert "not locked" in inv("deploy.status", "--env", "sandbox").stdout


@pytest.fixture
def manager_conn(sandbox):
    from ops.runtime.ssh import open_checked

    conn = open_checked(*_manager_inventory())
    yield conn
    conn.close()


def test_a_remote_command_streams_like_a_local_process(manager_conn, tmp_path):
    """The SSH runner: binary output straight into a file, stdin fed from a file, a
    pipeline mixing a remote and a local stage, exit codes, put/fetch, a timeout that
    ends the remote command's whole tree, and a connection dropped mid-stream giving -1
    (never 0) with the file shorter than what was sent."""
    import hashlib
    import subprocess

    from ops.backup.pgexec import pipeline
    from ops.containers import Stage
    from ops.errors import OpsError
    from ops.runtime.channel import ChannelProcess
    from ops.runtime.runner import SshRunner
    from ops.runtime.ssh import open_checked

    machine = SshRunner(manager_conn, "manager")
    out = tmp_path / "out.bin"
    with open(out, "wb") as fh:
        proc = ChannelProcess(manager_conn, "head -c 20000000 /dev/urandom | tee /tmp/ops-chan.bin",
                              stdout=fh)
        assert proc.wait() == 0
    remote_sha = machine.run(["sha256sum", "/tmp/ops-chan.bin"]).stdout.split()[0]
    assert hashlib.sha256(out.read_bytes()).hexdigest() == remote_sha
    assert out.stat().st_size == 20_000_000

    with open(out, "rb") as fh:  # the other way: a local file into a remote stdin
        back = machine.popen(["sha256sum"], fh, subprocess.PIPE, subprocess.DEVNULL)
        assert back.stdout.read().split()[0].decode() == remote_sha
        assert back.wait() == 0
        back.stdout.close()

    gz = tmp_path / "out.gz"
    with open(gz, "wb") as fh:  # remote | local, pipefail
        pipeline([Stage(["cat", "/tmp/ops-chan.bin"], machine), ["gzip", "-1"]],
                 subprocess.DEVNULL, fh, "copy")
    assert subprocess.run(["gzip", "-t", str(gz)]).returncode == 0
    with pytest.raises(Exception, match=r"copy: sh on manager \(exit 3\)"):
        pipeline([Stage(["sh", "-c", "echo no >&2; exit 3"], machine), ["cat"]],
                 subprocess.DEVNULL, subprocess.DEVNULL, "copy")
    assert machine.run(["sh", "-c", "exit 7"], check=False).returncode == 7
    with pytest.raises(OpsError, match=r"^manager: seven failed \(exit 7\): why$"):
        machine.run(["sh", "-c", "echo why >&2; exit 7"], "seven")

    # put: a folder whole, bigger than a command line may be; fetch reads it back.
    big = "x" * 300_000
    machine.put("/tmp/ops-put", {"a.json": "{}", "big.txt": big})
    assert machine.fetch("/tmp/ops-put/big.txt") == big and machine.fetch("/tmp/ops-put/no") == ""
    machine.put("/tmp/ops-put", {"b.json": "[]"})
    assert machine.run(["ls", "/tmp/ops-put"]).stdout.split() == ["b.json"]

    # A timeout ends the remote tree, a child in a subshell included (not only once
    # it next writes to the closed channel).
    started = time.monotonic()
    with pytest.raises(OpsError, match="manager: stuck: timed out after 2s"):
        machine.run(["sh", "-c", "(sleep 300; :) & echo $! > /tmp/ops-to.pid; sleep 301"],
                    "stuck", timeout=2)
    assert time.monotonic() - started < 10
    # The signal is sent as `timeout` exits; the subshell's end may trail it by a moment
    # on a loaded machine: it must be gone within seconds, not left running.
    left = machine.run(["sh", "-c", "for i in $(seq 50); do kill -0 $(cat /tmp/ops-to.pid) "
                        "2>/dev/null || { echo gone; exit; }; sleep 0.1; done; echo alive"]).stdout.strip()
    assert left == "gone"

    # The connection dies mid-stream (its sshd session killed on the manager): -1.
    with open(out, "wb") as fh:
        slow = ChannelProcess(manager_conn, "echo $PPID > /tmp/ops-chan.pid; "
                              "while :; do head -c 65536 /dev/zero; sleep 0.05; done", stdout=fh)
        time.sleep(1.5)
        killer = SshRunner(open_checked(*_manager_inventory()), "manager")
        killer.run(["sh", "-c", "kill -9 $(cat /tmp/ops-chan.pid)"])
        assert slow.wait(timeout=30) == -1
        killer.conn.close()
    assert 0 < out.stat().st_size < 20_000_000
    machine.run(["rm", "-rf", "/tmp/ops-chan.bin", "/tmp/ops-chan.pid", "/tmp/ops-put",
                 "/tmp/ops-to.pid"])


def test_a_tunnel_listens_before_it_is_used_and_survives_a_refused_channel(manager_conn):
    """ops.runtime.tunnel through the manager's connection to its own sshd: the first
    connection right after entering works every time (Fabric's forward_local binds in a
    thread and can refuse it), a preferred port another process holds is not shared,
    and a far end that refuses closes that connection only."""
    import socket

    from ops.runtime.tunnel import forward

    def banner(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            return s.recv(64)

    manager_conn.open()
    for _ in range(30):
        with forward(manager_conn.transport, "127.0.0.1", 22) as port:
            assert banner(port).startswith(b"SSH-2.0-")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        held = taken.getsockname()[1]
        with forward(manager_conn.transport, "127.0.0.1", 22, preferred=held) as port:
            assert port != held and banner(port).startswith(b"SSH-2.0-")
    with forward(manager_conn.transport, "127.0.0.1", 1) as port:  # nothing listens there
        assert banner(port) == b"" and banner(port) == b""  # closed, never refused
    with pytest.raises(ConnectionRefusedError):  # the block's end closed the listener
        banner(port)


def _manager_inventory():
    from ops.runtime.inventory import inventory

    hosts = inventory("sandbox", {"hosts_file": ".sandbox/hosts.json",
                                  "known_hosts": ".sandbox/known_hosts"}, SANDBOX_PROJECT[0])
    return hosts.manager, hosts
