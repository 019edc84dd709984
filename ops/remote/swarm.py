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
    """The manager in a Swarm (init, advertising its Swarm address), every worker joined;
    then the nodes, once all are ready. On `local-swarm` the one node is this engine."""
    manager = machines.manager
    addr = manager.swarm_addr or manager.endpoint
    m = machines.manager_runner
    state = m.run(swarm_cmd.node_state(), "swarm state").stdout.strip()
    if state == "inactive":
        m.run(swarm_cmd.init(addr), "docker swarm init")
        if out:
            print(f"{manager.name}: swarm initialised (advertise {addr})", file=out)
    elif state != "active":
        raise OpsError(f"{machines.describe(manager)}: swarm state is {state!r}, "
                       "expected active or inactive")
    workers = machines.workers
    if workers:
        token = m.run(swarm_cmd.worker_token(), "swarm join-token").stdout.strip()
    for w in workers:
        wr = machines.runner(w)
        if wr.run(swarm_cmd.node_state(), "swarm state").stdout.strip() == "inactive":
            wr.run(swarm_cmd.join(token, addr), "docker swarm join")
            if out:
                print(f"{w.name}: joined the swarm", file=out)
    return wait_nodes_ready(m, 1 + len(workers))


def nodes(manager) -> list[dict]:
    text = manager.run(swarm_cmd.node_ls(), "docker node ls").stdout
    return load_json(text, f"{manager.name}: docker node ls", lines=True)


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
