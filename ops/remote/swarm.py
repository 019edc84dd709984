"""Swarm membership: init the manager, join the workers (idempotent); Docker on
the hosts (`hosts.provision`)."""

from __future__ import annotations

import time

from ..commands import swarm as swarm_cmd
from ..errors import OpsError
from ..facts.values import load_json
from ..runtime.inventory import Inventory
from ..runtime.runner import SshRunner
from ..runtime.ssh import open_checked


def ensure(machines, out=None) -> list[dict]:
    """The manager in a Swarm (init, advertising its Swarm address), every worker a member
    of *that* Swarm (one left in another, whose manager lost its state, leaves and joins
    again), the stale entries of rejoined machines removed; then the nodes, once all are
    Ready: refused in one line when one is not. On `local-swarm` the one node is this
    engine."""
    manager = machines.manager
    addr = manager.swarm_addr or manager.endpoint
    m = machines.manager_runner
    state = m.run(swarm_cmd.node_state(), "swarm state").stdout.strip()
    if state == "inactive":
        m.run(swarm_cmd.init(addr), "docker swarm init")
        say(out, f"{manager.name}: swarm initialised (advertise {addr})")
    elif state != "active":
        raise OpsError(f"{machines.describe(manager)}: swarm state is {state!r}, "
                       "expected active or inactive")
    ensure_heartbeat(m, out)
    workers = machines.workers
    joined: list[str] = []  # node ids of the workers that (re)joined now
    if workers:
        token = m.run(swarm_cmd.worker_token(), "swarm join-token").stdout.strip()
        members = {n.get("ID") for n in nodes(m)}
    for w in workers:
        wr = machines.runner(w)
        state = wr.run(swarm_cmd.node_state(), "swarm state").stdout.strip()
        if state != "inactive":
            if state == "active" and wr.run(swarm_cmd.node_id(), "swarm node id").stdout.strip() in members:
                continue
            # In another Swarm (its manager was rebuilt), or stuck joining: start over.
            wr.run(swarm_cmd.leave(), "docker swarm leave")
            say(out, f"{w.name}: was {state} outside this swarm: left it")
        wr.run(swarm_cmd.join(token, addr), "docker swarm join")
        joined.append(wr.run(swarm_cmd.node_id(), "swarm node id").stdout.strip())
        say(out, f"{w.name}: joined the swarm")
    found = wait_nodes_ready(m, 1 + len(workers))
    if replaced(m, found, joined, out):  # a fresh listing: the removed entries are gone
        found = nodes(m)
    if prune_stale(m, found, out):
        found = nodes(m)
    ready = [n for n in found if n.get("Status") == "Ready"]
    if len(ready) < 1 + len(workers):
        raise OpsError(f"{manager.name}: {len(ready)} of {1 + len(workers)} nodes Ready after 60s ("
                       + ", ".join(f"{n.get('Hostname')} {n.get('Status')}" for n in found) + ")")
    for n in found:
        if n.get("Status") != "Ready":
            say(out, f"warning: node {n.get('Hostname')} ({n.get('ID')}) is {n.get('Status')} "
                     "and not in the inventory: `docker node rm` it on the manager if it is gone")
    return found


def say(out, text: str) -> None:
    if out:
        print(text, file=out)


def ensure_heartbeat(m, out=None) -> None:
    """The dispatcher heartbeat at swarm_cmd.HEARTBEAT (a dead node is Down sooner)."""
    current = m.run(swarm_cmd.heartbeat_period(), "swarm heartbeat").stdout.strip()  # e.g. 5s
    wanted = f"{swarm_cmd.HEARTBEAT}s"
    if current and current != wanted:
        m.run(swarm_cmd.set_heartbeat(), "docker swarm update --dispatcher-heartbeat")
        say(out, f"{m.name}: dispatcher heartbeat {current} -> {wanted} "
                 f"(a lost node is Down after ~{3 * swarm_cmd.HEARTBEAT}s)")


def replaced(m, found: list[dict], joined: list[str], out=None) -> bool:
    """Remove the entries a machine that just joined again leaves behind: same hostname,
    another id. Swarm may not have seen the old one Down yet (that takes ~3 heartbeats),
    but the machine is the new node now: its old entry is dead for sure."""
    by_id = {n.get("ID"): n for n in found}
    hosts = {by_id[i].get("Hostname") for i in joined if i in by_id}
    old = [n for n in found if n.get("Hostname") in hosts and n.get("ID") not in joined]
    if not old:
        return False
    m.run(swarm_cmd.node_rm([n["ID"] for n in old], force=True), "docker node rm (replaced entries)")
    for n in old:
        say(out, f"removed node entry {n.get('ID')} of {n.get('Hostname')}, which joined again as a new node")
    return True


def prune_stale(m, found: list[dict], out=None) -> list[str]:
    """Remove the Down entries whose hostname a Ready node has (rollout.stale_nodes);
    returns their descriptions."""
    from ..facts.rollout import NodeStatus, stale_nodes

    stale = stale_nodes([NodeStatus.from_ls(n) for n in found])
    if not stale:
        return []
    m.run(swarm_cmd.node_rm([old.id for old, _ in stale]), "docker node rm (stale entries)")
    done = [f"{old.hostname} ({old.id}, {old.status}; now {new.id})" for old, new in stale]
    for line in done:
        say(out, f"removed stale node entry {line}")
    return done


def nodes(manager) -> list[dict]:
    text = manager.run(swarm_cmd.node_ls(), "docker node ls").stdout
    found = load_json(text, f"{manager.name}: docker node ls", lines=True)
    for n in found:  # the CLI marks its own node's id with " *" in some versions
        n["ID"] = str(n.get("ID", "")).rstrip(" *")
    return found


def wait_nodes_ready(manager, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = nodes(manager)
        if sum(n.get("Status") == "Ready" for n in found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(1)


def provision(inv: Inventory, out) -> list[str]:
    done = []
    for h in inv.hosts:
        with open_checked(h, inv) as c:
            host = SshRunner(c, h.name)
            have = host.run(swarm_cmd.has_docker(), "docker check", check=False)
            if have.returncode == 0:
                print(f"{h.name}: Docker {have.stdout.strip()} present", file=out)
                continue
            host.run(swarm_cmd.install_docker(), "docker install")
            done.append(h.name)
            print(f"{h.name}: Docker installed", file=out)
    return done
