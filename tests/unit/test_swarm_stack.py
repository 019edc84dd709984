"""The deployed stack read from a real `docker inspect` snapshot (Docker 20.10, the
local engine in Swarm mode after `inv deploy --env local-swarm`), and the verdicts."""

import re
import subprocess
from pathlib import Path

import pytest

from ops.commands import cluster as cmd
from ops.errors import OpsError
from ops.facts import swarm_stack as cs
from ops.runtime.inventory import Host

SNAPSHOT = (Path(__file__).resolve().parents[1] / "fixtures" / "swarm-snapshot-20.10.txt").read_text()


@pytest.fixture
def snap():
    return cs.parse_snapshot(SNAPSHOT, "opsdemo-swarm")


def test_services_tasks_and_nodes_are_read(snap):
    assert sorted(snap.services) == ["app-db", "blue", "gateway", "redis"]
    roles = {name: cs.role(name, svc) for name, svc in snap.services.items()}
    assert roles == {"app-db": "database", "blue": "app", "gateway": "gateway", "redis": "cache"}
    name, blue = snap.service("api", "blue")
    assert name == "blue" and snap.services["blue"].name == "opsdemo-swarm_blue"
    assert blue.replicas == 2 and len(snap.running(blue)) == 2
    assert all(len(t.container) == 64 for t in snap.running(blue))
    assert [n.role for n in snap.nodes] == ["manager"] and snap.nodes[0].state == "ready"
    assert snap.live == ("blue", "cae78a8c8fac-dirty") and snap.live_color == "blue"


def test_no_upstream_file_means_no_live_color():
    before_switch = SNAPSHOT[:SNAPSHOT.index("@@ops-snapshot live")] + "@@ops-snapshot live\n"
    snap = cs.parse_snapshot(before_switch, "opsdemo-swarm")
    assert snap.live is None and snap.live_color is None and len(snap.services) == 4


def test_service_names_as_users_give_them(snap):
    assert snap.service("api@blue", None)[0] == "blue"
    assert snap.service("app-db", "blue")[0] == "app-db"
    with pytest.raises(OpsError, match=r"unknown service 'nope' in stack opsdemo-swarm \(known: api, app-db"):
        snap.service("nope", "blue")
    with pytest.raises(OpsError, match="'api@red': unknown color"):
        snap.service("api@red", "blue")
    with pytest.raises(OpsError, match="no live color yet"):
        snap.service("api", None)
    with pytest.raises(OpsError, match="unknown service 'api@green'"):
        snap.service("api@green", "blue")


def test_ps_rows_mark_the_live_color_and_name_nodes(snap):
    rows = {r["service"]: r for r in cs.ps_rows(snap, "blue")}
    assert rows["blue"]["live"] and not rows["app-db"]["live"]
    assert rows["blue"]["running"] == 2 and {t["node"] for t in rows["blue"]["tasks"]} == {"vm"}
    assert list(rows)[0] == "blue"  # colors first


def test_verdicts(snap):
    from dataclasses import replace

    blue = snap.services["blue"]
    assert cs.service_verdict(snap, "blue", "blue") == (True, "2/2 running on vm")
    snap.services["worker"] = replace(blue, replicas=0)
    assert cs.service_verdict(snap, "worker", "blue") == (False, "scaled to 0 replicas: nothing runs it")
    snap.services["green"] = replace(blue, id="x", replicas=0)
    assert cs.service_verdict(snap, "green", "blue") == (True, "idle color, scaled to 0")
    snap.services["blue"] = replace(blue, replicas=3)
    assert cs.service_verdict(snap, "blue", "blue")[0] is False
    down = cs.Node("n", "wrk", "10.0.0.2", "worker", "down", "active")
    assert cs.node_verdict(down) == (False, "worker, down, active, 10.0.0.2")


def test_scale_targets_refuse_what_cannot_scale(snap):
    """The live color and stateless services scale; data, host ports and taking the
    live color to 0 are refused, each saying why."""
    from dataclasses import replace

    snap.services["worker"] = replace(snap.services["blue"], name="opsdemo-swarm_worker",
                                      container_labels={"ops.role": "worker"})
    targets = cs.scale_targets(snap, {"api": 3, "worker": 2}, "blue")
    assert [(name, n) for name, _, n in targets] == [("blue", 3), ("worker", 2)]
    assert snap.services["gateway"].host_ports == (8090,)
    for wanted, why in (({"app-db": 2}, "stateful (role database)"),
                        ({"redis": 2}, "stateful (role cache)"),
                        ({"gateway": 2}, "publishes port(s) 8090 in host mode"),
                        ({"api": 0}, "blue is the live color: scaling it to 0"),
                        ({"api": 2, "api@blue": 3}, "'api@blue' names blue, given twice")):
        with pytest.raises(OpsError, match=re.escape(why)):
            cs.scale_targets(snap, wanted, "blue")
    snap.services["mq"] = replace(snap.services["worker"], container_labels={"ops.role": "broker"})
    with pytest.raises(OpsError, match="role broker"):
        cs.scale_targets(snap, {"mq": 2}, "blue")


def test_disk_verdict():
    assert cs.disk_verdict("1000 500") == (True, False, "50% free (0.0 GiB of 0.0 GiB)")
    ok, warn, detail = cs.disk_verdict("1000 100")
    assert ok and warn and "under 15%" in detail
    assert cs.disk_verdict("1000 0")[0] is False
    assert cs.disk_verdict("df: /var/lib/docker: No such file")[0] is False


def test_garbage_is_one_clear_line():
    with pytest.raises(OpsError, match="unreadable cluster state"):
        cs.parse_snapshot("Cannot connect to the Docker daemon", "x")
    # An answer without one of the four parts (e.g. an older toolkit's command) is refused.
    with pytest.raises(OpsError, match="unreadable cluster state"):
        cs.parse_snapshot(SNAPSHOT[:SNAPSHOT.index("@@ops-snapshot live")], "opsdemo-swarm")
    broken = SNAPSHOT.replace('"Spec"', '"Spec', 1)
    with pytest.raises(OpsError, match=r"docker inspect \(services\): unreadable answer"):
        cs.parse_snapshot(broken, "opsdemo-swarm")


def test_nodes_map_to_inventory_hosts():
    hosts = [Host("mgr", "127.0.0.1", 2201, role="manager", swarm_addr="172.18.0.2"),
             Host("wrk", "wrk.example.com", role="worker")]
    assert cs.host_for_node(cs.Node("1", "mgr", "", "manager", "ready", "active"), hosts).name == "mgr"
    assert cs.host_for_node(cs.Node("2", "ip-10-0-0-1", "172.18.0.2", "", "", ""), hosts).name == "mgr"
    assert cs.host_for_node(cs.Node("3", "wrk.example.com", "", "", "", ""), hosts).name == "wrk"
    assert cs.host_for_node(cs.Node("4", "other", "10.9.9.9", "", "", ""), hosts) is None


def test_builders_quote_everything():
    assert cmd.container_exec("a" * 12, ["sh", "-c", "echo $HOME; rm -rf /"]) == (
        "docker exec aaaaaaaaaaaa sh -c 'echo $HOME; rm -rf /'")
    with pytest.raises(ValueError):
        cmd.container_exec("abc;reboot", ["true"])
    line = cmd.service_logs(["app_blue", "app_db"], follow=True, tail="5", since="10m; reboot")
    each = "docker service logs --no-trunc --follow --tail 5 --since '10m; reboot'"
    assert line == f"{each} app_blue 2>&1 & {each} app_db 2>&1 & wait"
    line = cmd.snapshot("app;x", "/var/lib/ops toolkit/app/live/upstream.conf")
    assert "'label=com.docker.stack.namespace=app;x'" in line and "'app;x'" in line
    assert "'/var/lib/ops toolkit/app/live/upstream.conf'" in line


def test_logs_without_follow_are_bounded_and_a_hung_service_is_named(tmp_path):
    """Run the built line with a stand-in `docker` whose logs of one service never end:
    the other's lines come back, and the hung one is said on stderr (docker/cli#4678)."""
    fake = tmp_path / "docker"
    fake.write_text('#!/bin/sh\nfor last; do :; done\n'
                    '[ "$last" = "app db" ] && exec sleep 30\necho "line of $last"\n')
    fake.chmod(0o755)
    line = cmd.service_logs(["app_blue", "app db"]).replace(f" {cmd.SERVICE_LOGS_WAIT} ", " 1 ")
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=20,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert out.stdout == "line of app_blue\n"
    assert cmd.hung_services(out.stderr) == ["app db"]
    assert cmd.hung_services("other\n@@ops-logs-hungry x\n") == []
    assert "timeout" not in cmd.service_logs(["app_blue"], follow=True)


@pytest.mark.parametrize("info,why", [
    ("active true", None),
    ("active false", "a Swarm worker, not a manager"),
    ("inactive false", "not in a Swarm (its Swarm state: inactive)"),
    ("pending false", "not in a Swarm (its Swarm state: pending)"),
    ("", "not in a Swarm (its Swarm state: unknown)"),
])
def test_why_a_node_cannot_be_the_manager(info, why):
    assert cs.not_a_manager(info) == why
