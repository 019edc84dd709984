"""The runtime's machines: local engine or SSH decided once, in `build`; each kind
answers the verbs' questions (which host a node is, which nodes are separate machines,
how a process runs there, how an address is reached) without opening any connection."""

from __future__ import annotations

import contextlib

import pytest

from ops.environment import resolve
from ops.errors import OpsError
from ops.facts.swarm_stack import Node
from ops.runtime.fleet import THIS_ENGINE, OverSsh, ThisEngine, build
from ops.runtime.inventory import Host
from ops.runtime.runner import LocalRunner, SshRunner


class Inventory:
    manager = Host("m", "10.0.0.5", role="manager")
    hosts = [manager, Host("w", "10.0.0.6")]


class Conn:
    closed = False

    def close(self):
        self.closed = True


def node(hostname: str, addr: str = "") -> Node:
    return Node("id-" + hostname, hostname, addr, "worker", "ready", "active")


def test_build_gives_this_engine_for_an_engine_local_environment(tmp_path):
    where = resolve("local-swarm", {"local-swarm": {"engine": "local"}})
    machines = build("local-swarm", where, tmp_path)
    assert isinstance(machines, ThisEngine) and machines.inv is None
    assert machines.hosts == [THIS_ENGINE] and machines.workers == []
    assert machines.manager.swarm_addr == "127.0.0.1"  # a single-node Swarm advertises loopback


def test_build_reads_the_inventory_before_any_connection(tmp_path):
    where = resolve("staging", {"staging": {"hosts_file": "missing.json"}})
    with pytest.raises(OpsError, match="missing.json"):
        build("staging", where, tmp_path, connect=False)


def test_this_engine_is_every_node_and_runs_processes_here():
    machines = ThisEngine()
    runner = machines.runner(Host("other", "10.0.0.9"))
    assert isinstance(runner, LocalRunner) and runner is machines.manager_runner
    # Its errors name it as the Swarm's node (its processes are this machine's).
    assert runner.label("docker stack deploy failed") == "local: docker stack deploy failed"
    assert machines.host_of(node("docker-desktop")) is THIS_ENGINE
    # One machine however many nodes Swarm lists: one df, one log read.
    assert machines.separate([node("a"), node("b")]) == [node("a")]
    assert machines.url("10.0.1.7", 9090, 19090, None) == "http://10.0.1.7:9090"
    assert not machines.tunnels and machines.describe(THIS_ENGINE) == "this engine"
    assert machines.by_name() == {"local": THIS_ENGINE}
    machines.warm()  # nothing to open
    machines.close()


def test_over_ssh_maps_nodes_to_inventory_hosts_by_name_or_address():
    machines = OverSsh(Inventory(), Conn())
    assert machines.host_of(node("w")) is Inventory.hosts[1]
    assert machines.host_of(node("renamed", addr="10.0.0.5")) is Inventory.manager
    assert machines.host_of(node("stranger", addr="10.9.9.9")) is None
    assert machines.separate([node("a"), node("b")]) == [node("a"), node("b")]
    assert machines.tunnels and machines.describe(Inventory.manager) == "m (10.0.0.5)"
    assert machines.workers == [Inventory.hosts[1]]


def test_the_managers_own_connection_is_reused_not_reopened():
    conn = Conn()
    machines = OverSsh(Inventory(), manager_conn=conn)
    assert machines.hosts == Inventory.hosts
    runner = machines.manager_runner
    assert isinstance(runner, SshRunner) and runner.conn is conn and runner.name == "m"
    machines.close()
    assert conn.closed  # closed with the session


def test_a_url_over_ssh_is_a_tunnel_entered_on_the_callers_stack(monkeypatch):
    opened = []

    @contextlib.contextmanager
    def forward(transport, host, port, local_port):
        opened.append((transport, host, port, local_port))
        yield 40000
        opened.append("closed")

    monkeypatch.setattr("ops.runtime.tunnel.forward", forward)
    conn = type("Conn", (Conn,), {"transport": "t", "open": lambda self: None})()
    machines = OverSsh(Inventory(), manager_conn=conn)
    with contextlib.ExitStack() as stack:
        assert machines.url("10.0.1.7", 9090, None, stack) == "http://127.0.0.1:40000"
        assert opened == [("t", "10.0.1.7", 9090, 9090)]
    assert opened[-1] == "closed"  # the tunnel lasts as long as the caller's stack
