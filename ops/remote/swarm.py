"""Swarm membership: init the manager, join the workers (idempotent); Docker on
the hosts (`hosts.provision`)."""

from __future__ import annotations

import time

from ..commands import swarm as swarm_cmd
from ..errors import OpsError
from ..facts.values import load_json
from ..runtime.inventory import Inventory
from ..runtime.ssh import open_checked, run


def ensure(machines, out=None) -> list[dict]:
    """The manager in a Swarm (init, advertising its Swarm address), every worker joined;
    then the nodes, once all are ready. On `local-swarm` the one node is this engine."""
    manager = machines.manager
    addr = manager.swarm_addr or manager.endpoint
    m = machines.manager_conn
    state = run(m, swarm_cmd.node_state(), manager, "swarm state").stdout.strip()
    if state == "inactive":
        run(m, swarm_cmd.init(addr), manager, "docker swarm init")
        if out:
            print(f"{manager.name}: swarm initialised (advertise {addr})", file=out)
    elif state != "active":
        raise OpsError(f"{machines.describe(manager)}: swarm state is {state!r}, "
                       "expected active or inactive")
    workers = machines.workers
    if workers:
        token = run(m, swarm_cmd.worker_token(), manager, "swarm join-token").stdout.strip()
    for w in workers:
        wc = machines.connection(w)
        if run(wc, swarm_cmd.node_state(), w, "swarm state").stdout.strip() == "inactive":
            run(wc, swarm_cmd.join(token, addr), w, "docker swarm join")
            if out:
                print(f"{w.name}: joined the swarm", file=out)
    return wait_nodes_ready(m, manager, 1 + len(workers))


def nodes(conn, host) -> list[dict]:
    text = run(conn, swarm_cmd.node_ls(), host, "docker node ls").stdout
    return load_json(text, f"{host.name}: docker node ls", lines=True)


def wait_nodes_ready(conn, host, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = nodes(conn, host)
        if sum(n.get("Status") == "Ready" for n in found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(1)


def provision(inv: Inventory, out) -> list[str]:
    done = []
    for h in inv.hosts:
        with open_checked(h, inv) as c:
            have = run(c, swarm_cmd.has_docker(), h, "docker check", warn=True)
            if have.exited == 0:
                print(f"{h.name}: Docker {have.stdout.strip()} present", file=out)
                continue
            run(c, swarm_cmd.install_docker(), h, "docker install")
            done.append(h.name)
            print(f"{h.name}: Docker installed", file=out)
    return done
