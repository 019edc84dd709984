"""The pure parts of a deploy under faults: nodes lost mid-rollout, stale node entries,
a switch that a cut connection cannot stop half-way, an abandoned lock."""

from __future__ import annotations

import json
import subprocess

import pytest

from ops.commands import deploy as deploy_cmd
from ops.commands import swarm as swarm_cmd
from ops.commands.line import beyond_hangup, cmd
from ops.facts import rollout, swarm_stack

A, B, C = "a" * 25, "b" * 25, "c" * 25


def _task(node, state="running", image="api:v2", desired="running", error="",
          created="2026-01-01T00:00:10Z"):
    return rollout.Task("t", 1, image, desired, state, error, node, created)


def _svc(update="updating"):
    return rollout.SwarmService("s", "api:v2", 2, {}, update, "", "2026-01-01T00:00:05Z")


def _ls(*rows):
    return "\n".join(json.dumps({"ID": i, "Hostname": h, "Status": s, "Availability": "Active"})
                     for i, h, s in rows)


def test_node_listing_parsed_and_lost_nodes_found():
    text = "WARNING: noise\n" + _ls((A + " *", "mgr", "Ready"), (B, "wrk", "Down"))
    nodes = rollout.parse_node_lines(text)
    assert set(nodes) == {A, B} and nodes[A].ready and not nodes[B].ready
    tasks = [_task(A), _task(B), _task(C)]  # C: removed from the node list
    assert rollout.lost_nodes(nodes, tasks) == {B, C}
    assert rollout.lost_nodes({}, tasks) == set()  # nothing read proves nothing


def test_a_dead_nodes_task_counts_for_nothing():
    """The manager still lists the dead node's task as running (3/2 healthy): without
    the node listing that waited out the whole timeout."""
    tasks = [_task(A), _task(A), _task(B)]
    assert rollout.assess(_svc(), tasks, "api:v2", 2).state == "wait"
    verdict = rollout.assess(_svc(), tasks, "api:v2", 2, lost={B})
    assert verdict.state == "done" and [t.node for t in verdict.lost] == [B]
    # Not enough left: waiting, and a task nothing can place is named.
    pending = _task(A, "pending", error="no suitable node (1 node not available)")
    verdict = rollout.assess(_svc(), [_task(A), _task(B), pending], "api:v2", 2, lost={B})
    assert verdict.state == "wait" and verdict.unplaceable == [pending]
    assert "no suitable node" in verdict.reason


def test_stale_entries_are_down_ones_whose_hostname_is_ready_elsewhere():
    nodes = list(rollout.parse_node_lines(_ls((A, "wrk", "Down"), (B, "wrk", "Ready"),
                                              (C, "gone", "Down"))).values())
    assert [(old.id, new.id) for old, new in rollout.stale_nodes(nodes)] == [(A, B)]
    snap_nodes = [swarm_stack.Node(A, "wrk", "", "worker", "down", "active"),
                  swarm_stack.Node(B, "wrk", "", "worker", "ready", "active"),
                  swarm_stack.Node(C, "gone", "", "worker", "down", "active")]
    ok, detail = swarm_stack.node_verdict(snap_nodes[0], snap_nodes, "sandbox")
    assert not ok and "inv swarm.prune --env sandbox" in detail and B[:12] in detail
    ok, detail = swarm_stack.node_verdict(snap_nodes[2], snap_nodes, "sandbox")
    assert not ok and "stale" not in detail  # Down, but nothing replaced it
    assert swarm_stack.node_verdict(snap_nodes[1], snap_nodes)[0]


def test_node_commands_validate_ids():
    assert swarm_cmd.node_rm([A]) == f"docker node rm {A}"
    with pytest.raises(ValueError):
        swarm_cmd.node_rm(["x; reboot"])
    assert swarm_cmd.set_heartbeat(3).endswith("--dispatcher-heartbeat 3s >/dev/null")
    line = deploy_cmd.services_state(["app_green"], nodes=True)
    assert line.count(deploy_cmd.NODES_MARK) == 1 and "docker node ls" in line
    assert deploy_cmd.NODES_MARK not in deploy_cmd.services_state(["app_green"])


def test_a_hangup_does_not_stop_the_switch_half_way(tmp_path):
    """The switch runs in its own session: SIGHUP to the caller's session (what sshd
    sends when the connection drops) kills the waiting shell, never the work."""
    done = tmp_path / "done"
    work = cmd("sh", "-c", f"sleep 1; echo written > {done}")
    shell = subprocess.Popen(["setsid", "sh", "-c", str(beyond_hangup(work))],
                             stdout=subprocess.PIPE, text=True)
    import os
    import signal
    import time

    time.sleep(0.3)
    os.killpg(shell.pid, signal.SIGHUP)
    shell.wait(timeout=5)
    assert shell.returncode == -signal.SIGHUP and not done.exists()
    deadline = time.monotonic() + 5
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert done.read_text() == "written\n"


def test_the_switchs_output_and_status_pass_through():
    r = subprocess.run(["sh", "-c", str(beyond_hangup(cmd("sh", "-c", "echo out; echo err >&2; exit 4")))],
                       capture_output=True, text=True)
    assert (r.returncode, r.stdout) == (4, "out\nerr\n")
    audit = ("/var/lib/x/audit.log", '{"action":"switch"}')
    line = deploy_cmd.switch_upstream("/var/lib/x/upstream.conf", "set $api x;\n", "0123456789ab", audit)
    assert "setsid" in line and "audit.log" in line


def test_a_stale_lock_taken_over_is_reported(tmp_path):
    from ops.deploy.lock import DeployLock
    from ops.runtime.runner import LocalRunner

    seen = []
    base = str(tmp_path)
    holder = {"user": "u", "host": "elsewhere", "pid": 1, "since": "2020-01-01T00:00:00+00:00",
              "tag": "v9", "token": "0" * 32}
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "deploy.lock").write_text(json.dumps(holder))
    lock = DeployLock(LocalRunner(), "app", tag="v10", base=base,
                      on_stale=lambda h, why: seen.append((h["tag"], why)))
    lock.acquire()
    lock.release()
    assert seen and seen[0][0] == "v9" and "old" in seen[0][1]


def test_an_update_stuck_on_a_lost_nodes_task_is_recognised():
    """Swarm's start-first update waits for good on a task of the lost node: the new
    tasks run on the nodes left and the old ones stay up. That, and only that, is
    what a forced update unblocks."""
    old = _task(A, image="api:v1")
    stuck = rollout.assess(_svc(), [_task(A), _task(A), old, _task(B, "starting")], "api:v2", 2, lost={B})
    assert stuck.state == "wait" and stuck.only_old_left and stuck.old == 1
    slow = rollout.assess(_svc(), [_task(A), _task(A, "starting"), old], "api:v2", 2, lost={B})
    assert not slow.only_old_left
    assert "--force" in deploy_cmd.service_force_update("app_worker")


def test_the_line_that_says_what_went_wrong_is_the_one_shown():
    from ops.runtime.runner import last_line

    tar = ("tar: base.json: Cannot write: No space left on device\n"
           "tar: blue.json: Cannot open: File exists\n"
           "tar: Exiting with failure status due to previous errors\n")
    assert last_line(tar) == "tar: base.json: Cannot write: No space left on device"
    assert last_line("warning: x\nerror: the real one\n") == "error: the real one"
    assert last_line("tar: Exiting with failure status due to previous errors") .startswith("tar: Exiting")
    assert last_line("") == ""


def test_a_manager_that_cannot_answer_is_seen_and_unknown_nodes_are_not_lost():
    """After the manager's engine restarts, every node is `Unknown` until it reports in:
    not a lost node. The engine down, or no quorum, is said in one line."""
    nodes = rollout.parse_node_lines(_ls((A, "mgr", "Ready"), (B, "wrk", "Unknown")))
    assert rollout.lost_nodes(nodes, [_task(B)]) == set()
    assert rollout.engine_gone("Error: No such service: x\n") is None
    said = ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            "Is the docker daemon running?")
    assert rollout.engine_gone(f"Error: No such service: x\n{said}\n") == said
    assert rollout.engine_gone("Error response from daemon: rpc error: code = Unknown desc = "
                               "The swarm does not have a leader.")


def test_a_dropped_connection_is_said_as_such_not_as_an_exit_status():
    from ops.runtime.runner import Result, failure

    dropped = Result(("x",), -1, "", "")
    assert "SSH connection dropped" in failure(dropped) and "exit" not in failure(dropped)
    assert failure(dropped, local=True) == "(exit -1): no error output"
    assert failure(Result(("x",), 2, "", "tar: x: No space left on device\n")) == \
        "(exit 2): tar: x: No space left on device"


def test_the_fullest_filesystem_decides_the_disk_check():
    text = "/var/lib/docker 4194304 4000000\n/var/lib/ops-toolkit/app 4096 0\n/ 100 90\n/ 100 90\n"
    ok, warn, detail = swarm_stack.disk_verdict(text)
    assert not ok and warn and detail.startswith("/var/lib/ops-toolkit/app: 0% free") and "(FULL)" in detail
    ok, warn, detail = swarm_stack.disk_verdict("/var/lib/docker 1000 100\n")
    assert ok and warn and "under 15%" in detail and not detail.startswith("/")
