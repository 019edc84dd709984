"""Remote tasks: sandbox.up/down, hosts.trust/provision, swarm.init."""

from __future__ import annotations

import sys

from invoke import Collection, task

from ..errors import OpsError
from .common import ENV_HELP, confirm, platform, project_root, settings, user_errors


def _inventory(c, env, task):
    """The SSH hosts of --env (a kind or an environment without them refuses in one line)."""
    with platform(c, env) as p:
        return p.ssh_hosts(task)


@task(help={"env": "environment whose settings (DEBIAN_MIRROR) apply (default: local)",
            "registry": "also run a registry (with a login) that --env sandbox deploys through"})
@user_errors
def sandbox_up(c, env="local", registry=False):
    """Start two sandbox hosts (sshd + dockerd containers) as a 2-node Swarm: --env sandbox."""
    from .. import sandbox
    from ..runtime.fleet import OverSsh
    from ..runtime.inventory import inventory

    s = settings(c, env)
    sandbox.up(project_root(), s.variables.get("DEBIAN_MIRROR", ""), registry=registry)
    _ensure_swarm(OverSsh(inventory("sandbox", (c.config.get("envs") or {}).get("sandbox") or {},
                                    s.root)))
    print("sandbox ready: use --env sandbox")


@task(help={"env": "accepted for symmetry; the sandbox is the same for every env"})
@user_errors
def sandbox_down(c, env="local"):
    """Remove the sandbox hosts, their network, key and known_hosts."""
    from .. import sandbox

    settings(c, env)  # validates --env like every task

    removed = sandbox.down(project_root())
    print("removed: " + (", ".join(removed) if removed else "nothing (no sandbox)"))


@task(help={"yes": "record the keys without asking", "env": ENV_HELP})
@user_errors
def trust(c, yes=False, env="local"):
    """Show each host's SSH key fingerprint (jump hosts first) and record it in known_hosts."""
    from ..runtime import trust as trust_mod
    from ..runtime.inventory import known_hosts_name
    from ..runtime.ssh import connection, path

    inv = _inventory(c, env, "hosts.trust")
    seen: set[str] = set()
    for h in inv.hosts:
        hops = len(path(connection(h, inv)))
        for i in range(hops):
            # A fresh Connection per hop: it loads the keys recorded for the hops before.
            hop = path(connection(h, inv))[i]
            name = known_hosts_name(hop.host, hop.port)
            label = h.name if i == hops - 1 else f"{h.name} via {hop.original_host}"
            if name in seen:
                continue
            seen.add(name)
            key = trust_mod.remote_key(hop, label)
            state = trust_mod.status(inv.known_hosts, name, key)
            fp = trust_mod.fingerprint(key)
            print(f"{label:12} {name:24} {key.get_name():20} {fp}  {state}")
            if state == "trusted":
                continue
            if state == "CHANGED":
                raise OpsError(f"{label}: host key CHANGED from the recorded one; not replacing "
                               f"it. If the host was rebuilt, delete its line in {inv.known_hosts} first")
            confirm(f"Trust {label} ({name}) with key {fp}?", yes)
            trust_mod.record(inv.known_hosts, name, key)
            print(f"{label}: recorded in {inv.known_hosts}")


@task(help={"env": ENV_HELP})
@user_errors
def provision(c, env="local"):
    """Install the Docker engine on Debian/Ubuntu hosts that lack it (idempotent)."""
    from ..remote import swarm

    swarm.provision(_inventory(c, env, "hosts.provision"), sys.stdout)


@task(name="init", help={"env": ENV_HELP})
@user_errors
def swarm_init(c, env="local"):
    """Init the Swarm on the manager and join the workers (idempotent); list the nodes.
    With --env local-swarm: this machine's engine as a single-node Swarm."""
    with platform(c, env) as p:
        _print_nodes(p.init_cluster())


@task(name="prune", help={"env": ENV_HELP})
@user_errors
def swarm_prune(c, env="local"):
    """Remove stale node entries: Down, their hostname Ready as a newer node (a machine
    that rejoined after its engine's state was lost). Other Down nodes are left alone:
    `inv health` names them; `docker node rm` on the manager once they are gone for good."""
    with platform(c, env) as p:
        removed = p.prune_nodes()
    print("removed: " + ("; ".join(removed) if removed else "nothing (no stale node entry)"))


def _ensure_swarm(machines) -> None:
    """Init and join (idempotent), then list the nodes."""
    from ..remote import swarm

    try:
        nodes = swarm.ensure(machines, out=sys.stderr)
    finally:
        machines.close()
    _print_nodes(nodes)


def _print_nodes(nodes) -> None:
    for n in nodes:
        print(f"{n.get('Hostname'):24} {n.get('Status'):6} {n.get('ManagerStatus') or 'worker'}")


sandbox_ns = Collection("sandbox")
sandbox_ns.add_task(sandbox_up, name="up")
sandbox_ns.add_task(sandbox_down, name="down")
hosts_ns = Collection("hosts", trust, provision)
swarm_ns = Collection("swarm", swarm_init, swarm_prune)
