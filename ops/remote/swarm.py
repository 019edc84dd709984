"""Swarm membership over SSH: init the manager, join the workers (idempotent)."""

from __future__ import annotations

import time

from ..commands import swarm as cmd
from ..errors import OpsError
from ..facts.values import load_json
from ..runtime.inventory import Host, Inventory
from ..runtime.ssh import open_checked, run


def ensure(inv: Inventory, out=None) -> list[dict]:
    manager = inv.manager
    addr = manager.swarm_addr or manager.endpoint
    with open_checked(manager, inv) as m:
        state = run(m, cmd.node_state(), manager, "swarm state").stdout.strip()
        if state == "inactive":
            run(m, cmd.init(addr), manager, "docker swarm init")
            if out:
                print(f"{manager.name}: swarm initialised (advertise {addr})", file=out)
        elif state != "active":
            raise OpsError(f"{manager.name}: swarm state is {state!r}, expected active or inactive")
        token = run(m, cmd.worker_token(), manager, "swarm join-token").stdout.strip()
        for w in inv.workers:
            with open_checked(w, inv) as wc:
                wstate = run(wc, cmd.node_state(), w, "swarm state").stdout.strip()
                if wstate == "inactive":
                    run(wc, cmd.join(token, addr), w, "docker swarm join")
                    if out:
                        print(f"{w.name}: joined the swarm", file=out)
        return wait_nodes_ready(m, manager, 1 + len(inv.workers))


LOCAL = Host("local", "localhost", role="manager")


def ensure_local(ctx, out=None) -> list[dict]:
    """The local engine as a single-node Swarm (for `--env local` deploys): the same
    commands, run through an Invoke Context instead of a Fabric Connection."""
    state = run(ctx, cmd.node_state(), LOCAL, "swarm state").stdout.strip()
    if state == "inactive":
        run(ctx, cmd.init("127.0.0.1"), LOCAL, "docker swarm init")
        if out:
            print("local: swarm initialised (single node, advertise 127.0.0.1)", file=out)
    elif state != "active":
        raise OpsError(f"local engine: swarm state is {state!r}, expected active or inactive")
    return wait_nodes_ready(ctx, LOCAL, 1)


def nodes(conn, host) -> list[dict]:
    text = run(conn, cmd.node_ls(), host, "docker node ls").stdout
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
            have = run(c, cmd.has_docker(), h, "docker check", warn=True)
            if have.exited == 0:
                print(f"{h.name}: Docker {have.stdout.strip()} present", file=out)
                continue
            run(c, cmd.install_docker(), h, "docker install")
            done.append(h.name)
            print(f"{h.name}: Docker installed", file=out)
    return done
